"""A seeded mutation fuzzer for gpukit's DICOM reading: ``python -m benchmarks.fuzz --cases 10000``.

Each case takes one source file (real scans from ``../shared/data`` and small
synthetic series written by :func:`gpukit.testing.write_series`), mutates it
(bit flips, truncation, inserted and deleted bytes, length fields set to huge
or odd values, VR swaps, nested sequences cut short), then runs
:func:`gpukit.scan` on a folder holding it and :func:`gpukit.load` on the file.

The contract checked for every case:

* only :class:`gpukit.GpukitError` subclasses escape (anything else is an *escape*);
* nothing hangs (*hang*: the case was stopped by the watchdog after
  :data:`HANG_SECONDS`, or its child had to be killed);
* the time per case is measured: over :data:`CASE_SECONDS` it is reported as
  *slow* (a figure of this benchmark; the tests assert no escape, memory or
  hang finding, not a speed);
* Python-visible allocations (``tracemalloc`` peak, which numpy reports to)
  stay under 10x ``max(file size, the clean source's pixel bytes)`` plus a
  fixed slack (*memory*); the child also runs under an address-space limit,
  so a 4 GB allocation fails (and shows as an escaped ``MemoryError``).

Cases run in child processes, many per child; a child that hangs is killed and
the run resumes after the case it was on. Mutations are derived from
``(seed, case number)`` alone, so any case can be replayed with ``--replay N``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CASE_SECONDS = 2.0
#: the per-case watchdog: a case still running after this is stuck (a hang), whatever the machine's load
HANG_SECONDS = 30.0
MEMORY_FACTOR = 10
MEMORY_SLACK = 16 << 20          # interpreter-side overhead of one scan + load (pydicom datasets, lists)

_HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GPUKIT_TEST_DATA", _HERE.parent.parent / "shared" / "data"))

#: real files used by default (small ones first; ``large`` adds the rest)
REAL_SMALL = (
    "mr_siemens_sag_fieldmap/In/2_gre_field_mapping/1.dcm",
    "ts_compressed/In/1.dcm", "ts_compressed/In/2.dcm", "ts_compressed/In/3.dcm", "ts_compressed/In/4.dcm",
    "ts_compressed/In/5.dcm", "ts_compressed/In/6.dcm", "ts_compressed/In/7.dcm", "ts_compressed/In/8.dcm",
    "ts_compressed/In/9.dcm",
    "ct_philips_tilt/In/Philips/S21610/DIRFILE",
    "pydicom_data_subset/data_store/data/emri_small.dcm",
    "pydicom_data_subset/data_store/data/emri_small_RLE.dcm",
    "pydicom_data_subset/data_store/data/emri_small_big_endian.dcm",
    "pydicom_data_subset/data_store/data/emri_small_jpeg_2k_lossless.dcm",
    "pydicom_data_subset/data_store/data/emri_small_jpeg_ls_lossless.dcm",
)
REAL_LARGE = (
    "ct_philips_1mm/In/Philips/S21570/S2020/I10",
    "ct_philips_tilt/In/Philips/S21610/S1000/I10",
    "enh_mr_siemens_xa30/In/8_gre_field_mapping/0001_1.3.12.2.1107.5.2.43.67093.2022071112105821698004979.dcm",
    "pydicom_data_subset/data_store/data/MR2_J2KI.dcm",
    "pydicom_data_subset/data_store/data/eCT_Supplemental.dcm",
)

_VRS = [v.encode() for v in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD",
                             "OF", "OL", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "TM", "UC", "UI", "UL", "UN",
                             "UR", "US", "UT", "OV", "SV", "UV")]
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


# -- sources ------------------------------------------------------------------------------------------
def synthetic_sources(folder: Path) -> list[Path]:
    """A few small synthetic files: explicit/implicit VR, multi-frame, RLE, and one with nested sequences."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from gpukit import testing

    def nested(ds, k):
        inner = Dataset()
        inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        inner.ReferencedSOPInstanceUID = "1.2.3.4.5.6"
        deeper = Dataset()
        deeper.CodeValue = "113691"
        deeper.CodingSchemeDesignator = "DCM"
        deeper.CodeMeaning = "IEC Body Dosimetry Phantom"
        inner.PurposeOfReferenceCodeSequence = Sequence([deeper])
        ds.ReferencedImageSequence = Sequence([inner, inner])
        ds.add_new(0x00291010, "OB", b"\x01\x02" * 20)

    out = []
    kinds = [
        ("explicit", dict(transfer_syntax=testing.EXPLICIT_VR_LITTLE_ENDIAN)),
        ("implicit", dict(transfer_syntax=testing.IMPLICIT_VR_LITTLE_ENDIAN, extra=nested)),
        ("nested", dict(transfer_syntax=testing.EXPLICIT_VR_LITTLE_ENDIAN, extra=nested)),
        ("multiframe", dict(transfer_syntax=testing.EXPLICIT_VR_LITTLE_ENDIAN, multiframe=True)),
        ("rle", dict(transfer_syntax=testing.RLE_LOSSLESS)),
    ]
    for name, kw in kinds:
        d = folder / name
        try:
            testing.write_series(d, shape=(2, 16, 12), **kw)
        except Exception as exc:   # an encoder missing here: use the others
            print(f"fuzz: synthetic {name} not written ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        out.append(sorted(p for p in d.iterdir() if p.is_file())[0])
    del pydicom
    return out


def real_sources(large: bool = False) -> list[Path]:
    names = REAL_SMALL + (REAL_LARGE if large else ())
    return [DATA / n for n in names if (DATA / n).is_file()]


def clean_pixel_bytes(path: Path) -> int:
    """Bytes of the decoded pixels of an unmutated source (for the memory bound)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * \
            int(ds.get("NumberOfFrames", 1) or 1) * (int(ds.BitsAllocated) // 8)
    except Exception:
        return 0


# -- mutations ----------------------------------------------------------------------------------------
def _elements(data: bytes) -> list[tuple[int, int, bool]]:
    """Tolerant walk: (element start, header length, explicit) for elements at any nesting level."""
    if len(data) < 144 or data[128:132] != b"DICM":
        return []
    out = []
    pos = 132
    n = len(data)
    explicit_ds = True
    ts = b""
    # file meta, explicit
    while pos + 8 <= n:
        g, e = struct.unpack_from("<HH", data, pos)
        if g != 2:
            break
        vr = data[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            ln, hl = struct.unpack_from("<I", data, pos + 8)[0] if pos + 12 <= n else 0, 12
        else:
            ln, hl = struct.unpack_from("<H", data, pos + 6)[0], 8
        if e == 0x10:
            ts = data[pos + hl:pos + hl + ln].rstrip(b"\x00 ")
        out.append((pos, hl, True))
        pos += hl + ln
    explicit_ds = ts != b"1.2.840.10008.1.2"
    encaps = False
    for _ in range(4000):
        if pos + 8 > n:
            break
        g, e = struct.unpack_from("<HH", data, pos)
        if g == 0xFFFE:
            ln = struct.unpack_from("<I", data, pos + 4)[0]
            out.append((pos, 8, False))
            if encaps and e == 0xE000 and ln != 0xFFFFFFFF:
                pos += 8 + ln
            else:
                pos += 8
            continue
        if explicit_ds and data[pos + 4:pos + 6] in _VRS:
            vr = data[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > n:
                    break
                ln, hl = struct.unpack_from("<I", data, pos + 8)[0], 12
            else:
                ln, hl = struct.unpack_from("<H", data, pos + 6)[0], 8
            out.append((pos, hl, True))
        else:
            vr = b""
            ln, hl = struct.unpack_from("<I", data, pos + 4)[0], 8
            out.append((pos, hl, False))
        if g == 0x7FE0 and e == 0x0010:
            if ln == 0xFFFFFFFF:
                encaps = True
                pos += hl
                continue
            break
        if ln == 0xFFFFFFFF or vr == b"SQ":
            pos += hl          # step into the sequence
        else:
            pos += hl + ln
    return out


def _header_end(data: bytes, elems) -> int:
    return max([p + h for p, h, _ in elems] + [min(len(data), 2048)])


def mutate(data: bytes, rng: random.Random, depth: int = 0) -> tuple[bytes, str]:
    """One mutation of ``data``; returns (mutated bytes, description)."""
    if len(data) < 2:
        return data + bytes([rng.randrange(256)]), "one byte appended to an (almost) empty file"
    elems = _elements(data)
    hend = _header_end(data, elems)
    ops = ["bitflip", "truncate", "insert", "delete", "length", "length", "vr", "sequence"]
    op = rng.choice(ops + (["multi"] if depth == 0 else []))
    b = bytearray(data)
    if op == "multi":
        desc = []
        for _ in range(rng.randint(2, 4)):
            d2, why = mutate(bytes(b), rng, 1)
            b = bytearray(d2)
            desc.append(why)
        return bytes(b), "multi[" + "; ".join(desc) + "]"
    if op == "bitflip":
        k = rng.randint(1, 8)
        where = []
        for _ in range(k):
            i = rng.randrange(min(len(b), hend + 64))
            b[i] ^= 1 << rng.randrange(8)
            where.append(i)
        return bytes(b), f"bitflip at {where}"
    if op == "truncate":
        cut = rng.choice([rng.randrange(len(b)), rng.randrange(min(len(b), hend + 16))])
        return bytes(b[:cut]), f"truncate at {cut}"
    if op == "insert":
        i = rng.randrange(min(len(b), hend + 16))
        k = rng.choice([1, 1, 2, 3, 4, 8, 16])
        b[i:i] = bytes(rng.randrange(256) for _ in range(k))
        return bytes(b), f"insert {k} at {i}"
    if op == "delete":
        i = rng.randrange(min(len(b), hend + 16))
        k = rng.choice([1, 1, 2, 3, 4, 8, 16])
        del b[i:i + k]
        return bytes(b), f"delete {k} at {i}"
    if not elems:
        return mutate(data, rng, depth)
    if op == "length":
        pos, hl, explicit = rng.choice(elems)
        huge = [0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFF0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF - 1, 1 << 24, 0]
        if hl == 12:
            old = struct.unpack_from("<I", b, pos + 8)[0]
            new = rng.choice(huge + [old + 1, max(old - 1, 0), old | 1, old * 2 + 1])
            struct.pack_into("<I", b, pos + 8, new & 0xFFFFFFFF)
        elif explicit:
            old = struct.unpack_from("<H", b, pos + 6)[0]
            new = rng.choice([0xFFFF, 0xFFFE, 0, old + 1, max(old - 1, 0), old | 1, 0x8001])
            struct.pack_into("<H", b, pos + 6, new & 0xFFFF)
        else:
            old = struct.unpack_from("<I", b, pos + 4)[0]
            new = rng.choice(huge + [old + 1, max(old - 1, 0), old | 1])
            struct.pack_into("<I", b, pos + 4, new & 0xFFFFFFFF)
        return bytes(b), f"length of element at {pos}: {old} -> {new}"
    if op == "vr":
        cands = [e for e in elems if e[2] and e[1] in (8, 12) and bytes(b[e[0] + 4:e[0] + 6]) in _VRS]
        if not cands:
            return mutate(data, rng, depth)
        pos, hl, _ = rng.choice(cands)
        old = bytes(b[pos + 4:pos + 6])
        new = rng.choice(_VRS)
        b[pos + 4:pos + 6] = new
        return bytes(b), f"VR at {pos}: {old.decode()} -> {new.decode()}"
    # nested sequences cut short
    items = [e for e in elems if struct.unpack_from("<H", data, e[0])[0] == 0xFFFE]
    seqs = [e for e in elems if e[2] and data[e[0] + 4:e[0] + 6] == b"SQ"] + items
    if not seqs:
        return mutate(data, rng, depth)
    pos, hl, _ = rng.choice(seqs)
    how = rng.choice(["cut", "drop-delimiter", "shrink"])
    if how == "cut":
        cut = pos + rng.randrange(hl + 24)
        return bytes(b[:cut]), f"file cut inside the sequence/item at {pos} (at {cut})"
    if how == "drop-delimiter":
        delims = [e[0] for e in items if struct.unpack_from("<H", data, e[0] + 2)[0] in (0xE00D, 0xE0DD)
                  and e[0] > pos]
        if delims:
            d = delims[0]
            del b[d:d + 8]
            return bytes(b), f"delimiter at {d} removed"
    lp = pos + (8 if hl == 12 else 4)
    old = struct.unpack_from("<I", b, lp)[0]
    new = rng.randrange(0, 64) if old in (0, 0xFFFFFFFF) else rng.randrange(0, max(old, 1))
    struct.pack_into("<I", b, lp, new)
    return bytes(b), f"sequence/item length at {pos}: {old} -> {new}"


def make_case(sources: list[Path], seed: int, n: int) -> tuple[Path, bytes, str]:
    rng = random.Random(f"{seed}:{n}")
    src = sources[n % len(sources)]
    data, desc = mutate(src.read_bytes(), rng)
    return src, data, desc


# -- the child: runs cases, one JSON line per case ----------------------------------------------------------
class _CaseTimeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _CaseTimeout()


def _child(spec_path: str) -> None:
    import resource
    import tracemalloc
    import warnings

    spec = json.loads(Path(spec_path).read_text())
    sources = [Path(p) for p in spec["sources"]]
    clean = spec["clean_bytes"]
    import gpukit
    from gpukit.errors import GpukitError

    # address-space cap: what is mapped now plus 2 GiB: a 4 GB allocation cannot succeed
    try:
        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        cap = vm + (2 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (OSError, ValueError, StopIteration):
        pass
    signal.signal(signal.SIGALRM, _on_alarm)
    work = Path(tempfile.mkdtemp(prefix="gpukit-fuzz-"))
    out = sys.stdout
    try:
        for n in spec["cases"]:
            src, data, desc = make_case(sources, spec["seed"], n)
            d = work / f"c{n}"
            d.mkdir()
            f = d / "x.dcm"
            f.write_bytes(data)
            print(json.dumps({"start": n}), file=out, flush=True)
            res = {"case": n, "source": str(src), "mutation": desc, "size": len(data)}
            bound = MEMORY_FACTOR * max(len(data), clean.get(str(src), 0)) + MEMORY_SLACK
            t0 = time.perf_counter()
            tracemalloc.start()
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")      # load may warn; scan must not (tested elsewhere)
                    for step in ("scan", "load"):
                        res["step"] = step
                        try:
                            if step == "scan":
                                gpukit.scan(d)
                            else:
                                gpukit.load(f)
                        except GpukitError as exc:
                            res.setdefault("errors", []).append(type(exc).__name__)
                res["outcome"] = "ok"
            except _CaseTimeout:
                res["outcome"] = "hang"
            except BaseException as exc:   # the finding: anything else escaped
                import traceback

                res["outcome"] = "escape"
                res["error"] = f"{type(exc).__module__}.{type(exc).__name__}"
                res["message"] = str(exc)[:300]
                res["where"] = traceback.format_exc(limit=-3)[-1500:]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            res["seconds"] = round(time.perf_counter() - t0, 3)
            res["peak"] = peak
            if res["outcome"] == "ok" and peak > bound:      # memory first: a slow case is still checked for it
                res["outcome"] = "memory"
                res["bound"] = bound
            if res["outcome"] == "ok" and res["seconds"] > CASE_SECONDS:
                res["outcome"] = "slow"
            print(json.dumps(res), file=out, flush=True)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the parent ---------------------------------------------------------------------------------------------
def run(cases: int, seed: int = 0, *, large: bool = False, batch: int = 200, sources: list[Path] | None = None,
        workdir: Path | None = None, progress=None) -> dict:
    """Run ``cases`` cases in child processes; returns a summary with every finding."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="gpukit-fuzzrun-")) if own else Path(workdir)
    try:
        if sources is None:
            sources = real_sources(large) + synthetic_sources(workdir / "synthetic")
        if not sources:
            raise RuntimeError("no fuzz sources (neither ../shared/data nor synthetic series)")
        clean = {str(p): clean_pixel_bytes(p) for p in sources}
        pending = list(range(cases))
        results: list[dict] = []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_HERE.parent)] +
                                                          [p for p in [os.environ.get("PYTHONPATH")] if p]))
        while pending:
            chunk, pending = pending[:batch], pending[batch:]
            spec = workdir / "spec.json"
            spec.write_text(json.dumps({"sources": [str(p) for p in sources], "clean_bytes": clean, "seed": seed,
                                        "cases": chunk}))
            # a generous overall limit; a case that blocks in C code past it is a hang
            limit = 20 + len(chunk) * HANG_SECONDS
            try:
                me = __spec__.name if __spec__ is not None else __name__    # benchmarks.fuzz, also under python -m
                child = f"import sys, importlib; importlib.import_module({me!r})._child(sys.argv[1])"
                proc = subprocess.run([sys.executable, "-c", child, str(spec)], capture_output=True, text=True,
                                      timeout=limit, env=env, cwd=str(_HERE.parent))
                stdout, rc = proc.stdout, proc.returncode
                stderr = proc.stderr
            except subprocess.TimeoutExpired as exc:
                stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                stderr, rc = "", "timeout"
            done, started = set(), None
            for line in stdout.splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if "start" in r:
                    started = r["start"]
                else:
                    results.append(r)
                    done.add(r["case"])
            if len(done) < len(chunk):
                # the child died or hung on ``started``: record it, carry on after it
                if started is not None and started not in done:
                    src, data, desc = make_case(sources, seed, started)
                    results.append({"case": started, "source": str(src), "mutation": desc, "size": len(data),
                                    "outcome": "hang" if rc == "timeout" else "crash",
                                    "error": f"child exit {rc}", "message": stderr[-500:]})
                    done.add(started)
                rest = [c for c in chunk if c not in done]
                if started is None and rest:   # died before any case: do not loop forever
                    raise RuntimeError(f"fuzz child failed to start (exit {rc}): {stderr[-2000:]}")
                pending = rest + pending
            if progress:
                progress(len(results), cases)
        return summarize(results)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def summarize(results: list[dict]) -> dict:
    outcomes = Counter(r["outcome"] for r in results)
    escapes = Counter(r["error"] for r in results if r["outcome"] == "escape")
    errors = Counter(e for r in results for e in r.get("errors", ()))
    findings = [r for r in results if r["outcome"] != "ok"]
    return {"cases": len(results), "outcomes": dict(outcomes), "escapes_by_type": dict(escapes),
            "gpukit_errors": dict(errors), "hangs": outcomes.get("hang", 0), "slow": outcomes.get("slow", 0),
            "max_seconds": max((r.get("seconds", 0) for r in results), default=0),
            "findings": findings}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=250, help="cases per child process")
    ap.add_argument("--large", action="store_true", help="also fuzz the large real files (slower)")
    ap.add_argument("--replay", type=int, help="run one case here, in this process, with a traceback")
    ap.add_argument("--json", help="write the summary (with every finding) here")
    args = ap.parse_args(argv)
    if args.replay is not None:
        with tempfile.TemporaryDirectory() as tmp:
            sources = real_sources(args.large) + synthetic_sources(Path(tmp) / "synthetic")
            src, data, desc = make_case(sources, args.seed, args.replay)
            print(f"case {args.replay}: {src}: {desc}")
            f = Path(tmp) / "case" / "x.dcm"
            f.parent.mkdir()
            f.write_bytes(data)
            import gpukit

            print(gpukit.scan(f.parent).to_dict())
            gpukit.load(f)
        return 0
    t0 = time.time()

    def progress(done, total):
        print(f"\r{done}/{total} cases, {time.time() - t0:.0f} s", end="", file=sys.stderr, flush=True)

    s = run(args.cases, args.seed, large=args.large, batch=args.batch, progress=progress)
    print(file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=1))
    brief = {k: v for k, v in s.items() if k != "findings"}
    print(json.dumps(brief, indent=1))
    for r in s["findings"][:30]:
        print(f"- case {r['case']} {r['outcome']} {r.get('error', '')}: {Path(r['source']).name}: {r['mutation']}"
              f" ({r.get('message', '')[:160]})")
    return 0 if not s["findings"] else 1


if __name__ == "__main__":
    sys.exit(main())
