"""Running a recipe over every series under a folder, one Dask task per series.

The driver scans the tree, submits one task per volume series to a Dask
cluster (an in-process ``LocalCluster`` by default, or an existing scheduler),
and appends each outcome to the manifest as it arrives. Tasks never raise for
bad data: a failure is a manifest record with the error class and message, so
one bad series never stops the batch. A rerun skips series whose outputs are
complete and valid (checksums), and retries failed ones only when asked.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import DicomWebError, EnvironmentProblem, GpukitError
from ..safepath import confine, new_token, safe_component, sweep_temporaries, write_token
from .manifest import Manifest, OutputWriteError, append_checked, output_error, path_size, sha256_path
from .recipe import Recipe, load_recipe


def series_key(uid: str, part: int) -> str:
    return f"{uid}#{part}" if part else uid


def series_folder(info_dict: dict) -> str:
    """A readable, unique folder name for a series' outputs: one safe path component.

    Every part comes from file contents (series number, description, UID), so
    each is made safe by :func:`gpukit.safepath.safe_component`: a UID such as
    ``../escaped`` or ``/etc`` cannot name a folder outside the output root.
    """
    num = info_dict.get("series_number")
    desc = re.sub(r"[^A-Za-z0-9]+", "_", str(info_dict.get("description") or "")).strip("_")[:32]
    uid = safe_component(str(info_dict["id"]).replace("#", "_p"), 64)
    head = "_".join(x for x in (f"S{safe_component(num, 16)}" if num is not None else "", desc) if x)
    return f"{head}__{uid}" if head else uid


RUNS_FILE = ".gpukit-runs"

#: series in flight in each worker of an in-process cluster (its Dask threads): one computes while the next is
#: read and decoded, and the writes of the one before go on in their own threads (:mod:`.outputs`)
SERIES_PER_WORKER = 2

#: held by a series while it computes: one series computes at a time in a worker process, whatever its thread count
_COMPUTE_LOCK = threading.Lock()

#: a non-volume entry's manifest row lists this many of its files (and how many more there are)
PATHS_SHOWN = 5


def skipped_key(path: str) -> str:
    """The manifest key of a skipped input file: its resolved path, however the input was spelled (a DICOMweb
    instance: its URL)."""
    return f"url:{path}" if "://" in str(path) else f"file:{os.path.realpath(path)}"


def check_backend(name: str | None, scheduler: str | None = None) -> str | None:
    """Fail before the run when the backend cannot run: an unknown name raises ``UnknownBackendError`` (bad
    input); an unavailable one (say cupy without a GPU) ``BackendUnavailableError`` naming what is missing.

    With an existing ``scheduler`` the workers may be other machines: only the name is checked here.
    """
    from ..backends import lookup, resolve_name

    if name in (None, "auto"):
        return None
    if scheduler:
        lookup(name)
        return name
    return resolve_name(name)


def _earlier_runs(output_root: str) -> list[str]:
    """The write tokens of earlier runs into this output root (their temporaries are gpukit's own)."""
    path = confine(output_root, RUNS_FILE)
    if not os.path.isfile(path) or os.path.islink(path):
        return []
    with open(path, "r", encoding="ascii", errors="replace") as fh:
        return [t for t in (ln.strip() for ln in fh) if re.fullmatch(r"[0-9a-f]{16}", t)]


def _register_run(output_root: str, token: str) -> None:
    """Record this run's write token in the output root before it writes anything (a rerun with nothing to do
    writes nothing)."""
    append_checked(confine(output_root, RUNS_FILE), (token + "\n").encode("ascii"), fsync=False)


def gpu_devices(backend: str | None = None) -> int:
    """How many CUDA devices a batch can use: 0 unless the backend that would run is a GPU backend."""
    from ..backends import get_backend

    try:
        be = get_backend(backend)
        if be.location != "device" or be.standin:
            return 0
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:   # no CuPy, no driver, an unavailable backend named: no GPU workers
        return 0


def _use_worker_device(n_devices: int) -> int | None:
    """On a GPU worker, make device ``worker index % n_devices`` current for this task's thread."""
    if n_devices < 1:
        return None
    try:
        from dask.distributed import get_worker

        name = get_worker().name
        idx = int(name) % n_devices if str(name).isdigit() else 0
    except (ImportError, ValueError):   # not inside a Dask worker (a direct call)
        idx = 0
    import cupy

    cupy.cuda.Device(idx).use()
    return idx


def process_series(files: list[str], series_id: str, out_dir: str, recipe: dict, output_root: str,
                   backend: str | None = None, n_devices: int = 0, run_token: str | None = None,
                   web=None, stow: str | None = None) -> dict:
    """Dask task: load one series, produce the recipe's outputs, return the manifest record.

    ``n_devices`` > 0: this worker is one of the batch's GPU workers and takes
    device ``worker index % n_devices``. ``run_token``: the batch run's write
    token; temporaries carry it, and the task removes only those of this run
    (an earlier attempt of this very task whose worker died).

    ``web``: the series' DICOMweb SeriesInfo (this worker fetches it, credentials from its own environment:
    :mod:`gpukit.dicomweb.batch`); ``stow``: a DICOMweb URL where a derived series and a MIP are stored back.

    Never raises for a gpukit error (bad input, missing decoder): those become
    a ``failed`` record. Other exceptions are internal errors and are recorded
    the same way, with the traceback, so the batch goes on.
    """
    from .. import dicom
    from ..dicom.load import build_volume
    from ..dicom.pixels import _stored_dtype
    from ..ops.warm import join_warm_up, warm_up
    from .outputs import produce
    from .recipe import parse_recipe

    rec: dict[str, Any] = {"key": series_id, "files": len(files), "out_dir": os.path.relpath(out_dir, output_root),
                           "worker_pid": os.getpid(), "timings_s": {}}
    t0 = time.perf_counter()
    token = run_token or new_token()
    written: list[str] = []      # this task's outputs so far: removed again if the series fails
    skipped: list[dict] = []     # outputs that make no sense for this series, with the reason
    try:
        out_dir = confine(output_root, out_dir)     # before anything is written or deleted there
        sweep_temporaries(out_dir, [token])         # left by an earlier attempt whose worker died mid-write
        r = parse_recipe(recipe, "<batch>")
        found = [web] if web is not None else dicom.scan.scan(files)
        match = [s for s in found if s.id == series_id]
        if not match and "#" in series_id:
            # one part of a split series (say one echo of a field map): its files alone form the whole series
            base = series_id.split("#")[0]
            match = [s for s in found if s.uid == base and s.kind == "volume"][:1] if \
                sum(s.uid == base for s in found) == 1 else []
        if not match:
            raise GpukitError(f"series {series_id} not found again in its files (changed on disk?)")
        info = match[0]
        rec["timings_s"]["read"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        from ..backends import resolve_name

        rec["backend"] = resolve_name(backend or r.backend)
        dev = _use_worker_device(n_devices)
        if dev is not None:
            rec["device"] = dev
        # on a device backend the series is read straight to the device (or uploaded once): every output is
        # computed there and only the results cross back, at the writers
        # this worker's kernels load (or compile) while the series is read; the warm-up ends before any kernel
        # of the series runs (two threads must not run Numba's parallel kernels at once on its workqueue layer)
        # (a worker running two series at once: the second one waits for the warm-up the first one started)
        dtype = _stored_dtype(info.frames[0]) if info.frames else None
        if dtype is not None:
            warm_up(rec["backend"], dtype)
        try:
            if web is not None:
                from ..dicomweb.batch import load_for_worker

                vol = load_for_worker(info, backend=rec["backend"])
            else:
                vol = build_volume(info, backend=rec["backend"])
        finally:
            if dtype is not None:
                join_warm_up(rec["backend"], dtype)
        rec["timings_s"]["decode"] = time.perf_counter() - t1
        rec["shape"] = list(vol.shape)
        t2 = time.perf_counter()
        with write_token(token):
            # one series computes at a time in this worker (its kernels use the worker's cores); the other
            # series in flight here is read meanwhile, and this one's writes go on after the lock is released
            outputs, compute_s, write_s = produce(vol, r, out_dir, backend=rec["backend"], root=output_root,
                                                  written=written, skipped=skipped, compute_lock=_COMPUTE_LOCK)
        rec["timings_s"]["compute"] = compute_s
        # waiting for this worker's compute lock (another series computing) and for this series' last writes
        rec["timings_s"]["wait"] = max(0.0, time.perf_counter() - t2 - compute_s)
        rec["timings_s"]["write"] = write_s
        rec["outputs"] = [{"path": os.path.relpath(p, output_root), "bytes": path_size(p),
                           "sha256": sha256_path(p)} for p in outputs]
        if skipped:
            rec["skipped_outputs"] = skipped
        if stow:
            from ..dicomweb.batch import store_derived

            with _COMPUTE_LOCK:     # it regularizes and projects: never beside another series' kernels
                rec["stored"] = store_derived(vol, info, r, stow, backend=rec["backend"])
        rec["status"] = "ok"
    except OutputWriteError as exc:   # a full or read-only output: the message names the file
        rec.update(status="failed", error=type(exc).__name__, message=str(exc), kind="output")
    except GpukitError as exc:
        rec.update(status="failed", error=type(exc).__name__, message=str(exc),
                   kind="environment" if isinstance(exc, EnvironmentProblem) else
                   "source" if isinstance(exc, DicomWebError) else "bad input")
    except OSError as exc:   # e.g. a full disk or an unwritable output folder
        exc = output_error(exc, getattr(exc, "filename", None) or out_dir)
        rec.update(status="failed", error=type(exc).__name__, message=str(exc), kind="output")
    except Exception as exc:  # an internal error: recorded with its traceback, the batch goes on
        rec.update(status="failed", error=type(exc).__name__, message=str(exc), kind="internal",
                   traceback=traceback.format_exc(limit=8))
    if rec["status"] != "ok":
        _remove_written(written, output_root, out_dir)
    rec["timings_s"]["total"] = time.perf_counter() - t0
    return rec


def _remove_written(paths: list[str], output_root: str, out_dir: str) -> None:
    """Remove the outputs a failed task wrote in this run (none of a failed series' files stay behind), and its
    folder when that is left empty. Only paths this task itself wrote, checked inside the output root."""
    import shutil

    for p in paths:
        try:
            p = confine(output_root, p)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
        except (OSError, GpukitError):
            pass
    try:
        d = confine(output_root, out_dir)
        if d != os.path.abspath(output_root) and os.path.isdir(d) and not os.listdir(d):
            os.rmdir(d)
    except (OSError, GpukitError):
        pass


@dataclass
class BatchResult:
    output_root: str
    manifest_path: str
    counts: dict
    skipped_done: int
    wall_s: float
    records: list[dict]

    @property
    def ok(self) -> bool:
        return self.counts.get("failed", 0) == 0


def _progress(done: int, total: int, failed: int, t0: float, stream) -> None:
    if stream is None or total == 0:
        return
    tty = getattr(stream, "isatty", lambda: False)()
    if not tty and done not in (total,) and done % max(1, total // 10):
        return   # in a log: about ten lines, not one per series
    el = time.perf_counter() - t0
    rate = done / el if el > 0 else 0.0
    width = 28
    fill = int(width * done / total)
    stream.write(f"{chr(13) if tty else ''}[{'#' * fill}{'.' * (width - fill)}] {done}/{total} series, "
                 f"{failed} failed, {rate:.2f} series/s" + ("" if tty else "\n"))
    stream.flush()


def run_batch(input_root: "str | os.PathLike", output_root: "str | os.PathLike", recipe: "Recipe | str | None" = None,
              *, scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int | None = None,
              retry_failed: bool = False, backend: str | None = None, progress: bool = True,
              on_result: Callable[[dict], None] | None = None, query: dict | None = None,
              stow: str | None = None) -> BatchResult:
    """Produce the recipe's outputs for every volume series under ``input_root``.

    Parameters
    ----------
    input_root : folder (or file) to scan recursively, or a list of them.
    output_root : where outputs and ``manifest.jsonl`` go (created).
    recipe : a :class:`Recipe`, a TOML path, or None for the default recipe.
    scheduler : address of an existing Dask scheduler (``tcp://host:port``);
        None starts an in-process ``LocalCluster`` of ``n_workers`` processes
        (default: one per core).
    threads_per_worker : series in flight per worker of that cluster (default :data:`SERIES_PER_WORKER`: one
        computes, one is read; they never compute at once); Numba gets ``cores // n_workers`` threads per worker.
    retry_failed : also redo series that failed in an earlier run.
    query : for a DICOMweb ``input_root`` (``http(s)://host/dicom-web[/studies/S][?Modality=CT&...]``): QIDO
        filters, ``{"modality": "CT", "date": "20240101-", "filters": {...}}`` (:mod:`gpukit.dicomweb.batch`);
        each worker fetches its own series, credentials from its own environment.
    stow : a DICOMweb URL: each finished series also stores a derived series and a MIP there (STOW-RS).
    """
    from dask.distributed import Client, LocalCluster, as_completed

    from ..dicom.scan import scan

    t0 = time.perf_counter()
    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    check_backend(backend or r.backend, scheduler)   # before any series runs: one clear error, not N failures
    if isinstance(input_root, (list, tuple)):
        input_root = [os.fspath(p) for p in input_root]   # several archives in one batch
    else:
        input_root = os.fspath(input_root)
    output_root = os.path.abspath(os.fspath(output_root))
    try:
        os.makedirs(output_root, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, output_root) from None
    manifest = Manifest(output_root)
    token = new_token()
    # temporaries of earlier runs here that ended without cleaning up (killed): theirs alone, never other files
    sweep_temporaries(output_root, _earlier_runs(output_root))
    web = isinstance(input_root, str) and "://" in input_root
    if web:
        from ..dicomweb.batch import manifest_fields, scan_source

        found = scan_source(input_root, **(query or {}))
    else:
        if query and any(v for v in query.values()):
            from ..errors import InvalidParameterError

            raise InvalidParameterError(f"QIDO filters ({', '.join(k for k, v in query.items() if v)}) apply to a "
                                        f"DICOMweb URL input, not to a folder")
        found = scan(input_root)
    stream = sys.stderr if progress else None

    # everything that is not a volume is accounted for in the manifest, once
    for s in found:
        if s.kind != "volume" and s.id not in manifest.records:
            manifest.append({"key": s.id, "status": "not_volume", "kind": s.kind, "message": s.note,
                             "files": len(s.files), "paths": list(s.files[:PATHS_SHOWN]),
                             "more_files": max(0, len(s.files) - PATHS_SHOWN)})
    for sk in found.skipped:
        key = skipped_key(sk.path)
        if key not in manifest.records:
            manifest.append({"key": key, "status": "skipped_file", "message": sk.reason, "error": sk.error,
                             "path": sk.path if web else os.path.realpath(sk.path)})

    todo = []
    skipped_done = 0
    for s in found.volumes:
        prev = manifest.records.get(s.id)
        if manifest.is_done(s.id):
            skipped_done += 1
            continue
        if prev and prev.get("status") == "failed" and not retry_failed:
            continue
        todo.append(s)

    records: list[dict] = []
    if todo:
        _register_run(output_root, token)
        cluster = None
        n_gpu = 0
        if scheduler:
            client = Client(scheduler, timeout="30s")
        else:
            n_gpu = gpu_devices(backend or r.backend)
            # one worker per device on a GPU machine, else one per core
            n = n_workers or n_gpu or os.cpu_count() or 1
            # each worker's compiled kernels get their share of the cores, not all of them (no oversubscription)
            share = str(max(1, (os.cpu_count() or 1) // n))
            env = {"NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", share)}
            cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker or SERIES_PER_WORKER,
                                   processes=True, dashboard_address=None, env=env)
            client = Client(cluster)
        recipe_dict = r.to_dict()
        try:
            futs = {}
            refused = []
            for s in todo:
                d = s.to_dict()
                try:
                    out_dir = confine(output_root, series_folder(d))
                except GpukitError as exc:   # e.g. a symlink in the output root that leads outside it
                    refused.append((s, {"key": s.id, "status": "failed", "error": type(exc).__name__,
                                        "message": str(exc), "kind": "output"}))
                    continue
                fut = client.submit(process_series, s.files, s.id, out_dir, recipe_dict, output_root, backend,
                                    n_gpu, token, key=f"series-{s.id}", pure=False, retries=2,
                                    web=s if web else None, stow=stow)
                futs[fut] = s
            failed = 0
            _progress(0, len(todo), 0, t0, stream)

            def outcomes():
                yield from refused
                for fut in as_completed(futs):
                    try:
                        yield futs[fut], fut.result()
                    except Exception as exc:  # the task itself died (e.g. its worker was killed too often)
                        yield futs[fut], {"key": futs[fut].id, "status": "failed", "error": type(exc).__name__,
                                          "message": str(exc), "kind": "worker"}

            for n_done, (s, rec) in enumerate(outcomes(), 1):
                rec.update(series_uid=s.uid, series_number=s.series_number, description=s.description,
                           modality=s.modality, source_files=s.files)
                if web:
                    rec.update(manifest_fields(s))
                manifest.append(rec)
                records.append(rec)
                if on_result:
                    on_result(rec)
                failed += rec["status"] != "ok"
                _progress(n_done, len(todo), failed, t0, stream)
            if stream and getattr(stream, "isatty", lambda: False)():
                stream.write("\n")
        except KeyboardInterrupt:
            if stream:
                stream.write("\ninterrupted: cancelling; the manifest holds every finished series\n")
            client.cancel(list(futs))
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
                # our own workers are gone: whatever they left half-written is an orphan (an interrupt, say)
                sweep_temporaries(output_root, [token])
    if todo:   # every task has ended: nothing of this run is writing, so its temporaries left are orphans
        sweep_temporaries(output_root, [token])
    counts = manifest.summary([s.id for s in found] + [skipped_key(k.path) for k in found.skipped])
    return BatchResult(output_root, manifest.path, counts, skipped_done, time.perf_counter() - t0, records)
