"""The benchmark suite: ``python -m benchmarks [--quick] [--sections load,intensity,sampling,batch,gpu] [--out DIR]``.

Times gpukit's backends and the tools users would otherwise pick, in one run,
on the same data; prints a table of medians and ratios, writes
``results.json`` (machine, versions, commit) and one PNG per operation.

The same suite ships inside the wheel as ``gpukit._benchmarks`` (``gpukit
bench``), so its modules import each other relatively and never by the name
``benchmarks``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

SECTIONS = {
    # name: (module, relative to this package: benchmarks or gpukit._benchmarks; full size, quick size, repeats)
    "load": (".bench_load", 300, 8, 5),
    "intensity": (".bench_intensity", 512, 4, 5),
    "sampling": (".bench_sampling", 512, 16, 3),
    "batch": (".bench_batch", 512, 32, 1),
    "firstcall": (".bench_firstcall", 140, 8, 7),   # fresh processes: first calls (cache warm), one-time compile
    "gpu": (".bench_gpu", 512, 64, 5),     # skipped, with the reason, where there is no device
    "view": (".bench_view", 512, 128, 1),  # gpukit view in chromium: event to painted frame (skipped without one)
    "dicomweb": (".bench_dicomweb", 140, 54, 3),   # series over DICOMweb (a local Orthanc) vs from disk
}


def machine_info() -> dict:
    import numpy

    info = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": numpy.__version__,
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    for mod in ("gpukit", "pydicom", "numba", "scipy", "SimpleITK", "vtk", "cupy"):
        try:
            m = importlib.import_module(mod)
            info[mod] = getattr(m, "__version__", None) or getattr(m, "Version_VersionString", lambda: "?")()
        except Exception:
            info[mod] = None
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    info["gpu"] = "none found" if not _has_gpu() else "present"
    return info


def _has_gpu() -> bool:
    try:
        from gpukit.backends import available_backends

        return any(b in available_backends() for b in ("cupy", "numba-cuda"))
    except Exception:
        return False


def _note(r: dict) -> str:
    """The extras a row carries, shortly: peak memory, p99 latency, throughput, speed-up, stage shares, accuracy."""
    out = []
    if r.get("peak_bytes") is not None:
        out.append(f"peak {r['peak_bytes'] / 2**20:.0f} MiB")
    if r.get("p99_s") is not None:
        out.append(f"p99 {_fmt(r['p99_s'])}")
    if r.get("series_per_s") is not None:
        out.append(f"{r['series_per_s']:.2f} series/s")
    if r.get("mb_per_s") is not None:
        out.append(f"{r['mb_per_s']:.0f} MB/s")
    if r.get("speedup_vs_1_worker") is not None:
        out.append(f"{r['speedup_vs_1_worker']:.2f}x vs 1 worker")
    if r.get("stage_share"):
        out.append("time: " + ", ".join(f"{k} {v:.0%}" for k, v in r["stage_share"].items()))
    for key in ("max_abs_diff_hu", "median_abs_diff_hu", "max_abs_diff"):
        if r.get(key) is not None:
            out.append(f"{key.replace('_hu', '').replace('_', ' ')} {r[key]:.3g}")
            break
    return "; ".join(out)


def table(rows: list[dict]) -> str:
    by_op: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_op[r["op"]].append(r)
    lines = [f"{'operation':44} {'implementation':38} {'median':>10} {'p10-p90':>19} {'vs fastest':>10}  notes"]
    for op, rs in by_op.items():
        best = min(r["median_s"] for r in rs)
        for r in sorted(rs, key=lambda r: r["median_s"]):
            spread = f"{_fmt(r.get('p10_s'))}-{_fmt(r.get('p90_s'))}"
            lines.append(f"{op[:44]:44} {r['impl'][:38]:38} {_fmt(r['median_s']):>10} {spread:>19} "
                         f"{r['median_s'] / best:>9.2f}x  {_note(r)}")
        lines.append("")
    return "\n".join(lines)


def _fmt(s) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"


def plots(rows: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_op: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_op[r["op"]].append(r)
    written = []
    for n, (op, rs) in enumerate(by_op.items()):
        rs = sorted(rs, key=lambda r: r["median_s"])
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rs) + 1.2))
        ax.barh([r["impl"] for r in rs][::-1], [r["median_s"] * 1e3 for r in rs][::-1], color="#3b7dd8")
        ax.set_xscale("log")
        ax.set_xlabel("median time (ms, log scale)")
        ax.set_title(op, fontsize=10)
        fig.tight_layout()
        p = out / f"{n:02d}_{''.join(c if c.isalnum() else '_' for c in op)[:60]}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(str(p))
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smallest sizes, one repeat (what the tests run)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--size", type=int, default=None, help="override the size of every section")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", default="bench-out", help="folder for results.json and plots")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    skipped: dict[str, str] = {}
    t0 = time.perf_counter()
    for name in [s.strip() for s in args.sections.split(",") if s.strip()]:
        if name not in SECTIONS:
            ap.error(f"unknown section {name!r}")
        mod, full, quick, reps = SECTIONS[name]
        size = args.size or (quick if args.quick else full)
        repeats = args.repeats or (1 if args.quick else reps)
        try:
            m = importlib.import_module(mod, __package__ or "benchmarks")
        except ImportError as exc:
            skipped[name] = f"not available: {exc}"
            continue
        print(f"[{name}] size {size}, {repeats} repeats ...", file=sys.stderr, flush=True)
        try:
            rows += m.run(size, repeats)
        except ImportError as exc:    # a section that cannot run here says why (e.g. no CUDA device)
            skipped[name] = str(exc)
    result = {"machine": machine_info(), "quick": args.quick, "wall_s": time.perf_counter() - t0,
              "skipped": skipped, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    print(table(rows))
    for k, v in skipped.items():
        print(f"section {k} skipped: {v}")
    if not args.no_plots and rows:
        try:
            plots(rows, out)
        except ImportError as exc:
            print(f"plots skipped: {exc} (pip install 'gpukit[bench]')")
    print(f"results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
