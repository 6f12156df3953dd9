"""Loading over DICOMweb (a local Orthanc) against loading the same series from disk.

Times ``gpukit.load(series URL)`` (QIDO-RS + WADO-RS metadata + instances in the stored transfer syntax, cold
cache: every instance downloaded) with 1 and 4 parallel requests, the same with a warm cache (nothing
downloaded), and ``gpukit.load(folder)`` on the same files; reports series/s and MB/s (stored voxel bytes per
second). The voxels must equal the disk load's before anything is reported. At the full size it adds two batch
rows (:func:`batch_rows`): ``run_batch`` of the series from its files and from its DICOMweb URL.

The server: ``GPUKIT_BENCH_DICOMWEB_URL`` (a DICOMweb root already holding the series; credentials from
``GPUKIT_DICOMWEB_*``), else a private Orthanc started with the test helper ``tests/orthanc_server.py`` (a source
checkout with Debian's ``orthanc`` and ``orthanc-dicomweb``); without either the section is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

from ._timing import timeit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: size -> (folder under the shared data, series number): the full size is the 140-slice CT, quick the 54-slice one
SERIES = {140: ("ct_philips_1mm", 202), 54: ("ct_philips_tilt", 201)}


def _orthanc_helper():
    path = Path(__file__).resolve().parents[1] / "tests" / "orthanc_server.py"
    if not path.is_file():
        raise ImportError("no DICOMweb server: set GPUKIT_BENCH_DICOMWEB_URL (the test helper that starts a local "
                          "Orthanc is only in a source checkout)")
    spec = importlib.util.spec_from_file_location("_gpukit_orthanc_server", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    why = mod.find_orthanc()[2]
    if why:
        raise ImportError(why)
    return mod


@contextlib.contextmanager
def _server(folder: Path):
    """(DICOMweb root, auth) of a server holding ``folder``."""
    url = os.environ.get("GPUKIT_BENCH_DICOMWEB_URL")
    if url:
        yield url, None
        return
    mod = _orthanc_helper()
    with mod.OrthancServer() as srv:
        srv.upload_folder(folder)
        yield srv.dicomweb_url, (srv.user, srv.password)


def run(size: int, repeats: int) -> list[dict]:
    import gpukit
    from gpukit.dicomweb import DicomWebClient, InstanceCache

    name, number = SERIES[140 if size >= 140 else 54]
    folder = DATA / name
    if not folder.is_dir():
        raise ImportError(f"the shared data folder is absent ({folder})")
    ref = gpukit.load(folder, series=number)
    mb = ref.data.nbytes / 1e6
    op = f"load {name} series {number} {tuple(ref.shape)} ({mb:.0f} MB)"
    rows = []

    def row(impl: str, t: dict, **extra) -> dict:
        return {"op": op, "impl": impl, **t, "series_per_s": 1.0 / t["median_s"], "mb_per_s": mb / t["median_s"],
                **extra}

    rows.append(row("disk: gpukit.load(folder)", timeit(lambda: gpukit.load(folder, series=number), repeats)))
    with _server(folder) as (url, auth):
        with DicomWebClient(url, auth=auth, max_connections=8) as c:
            found = gpukit.scan(url, series=number, client=c)
            info = found.volumes[0]
            from gpukit.dicomweb import series_url

            surl = series_url(info)
            for parallel in (1, 4):
                before = c.stats.total("instance")
                vol = gpukit.load(surl, client=c, cache=False, parallel=parallel)
                if not (np.array_equal(vol.data, ref.data) and np.array_equal(vol.affine, ref.affine)):
                    raise AssertionError("the DICOMweb volume differs from the disk volume")
                t = timeit(lambda: gpukit.load(surl, client=c, cache=False, parallel=parallel), repeats, warmup=0)
                n = (c.stats.total("instance") - before) // (t["repeats"] + 1)
                rows.append(row(f"DICOMweb, {parallel} parallel request{'s' if parallel > 1 else ''}, cold cache",
                                t, instances_per_load=n))
            with tempfile.TemporaryDirectory(prefix="gpukit-bench-cache-") as tmp:
                cache = InstanceCache(tmp)
                gpukit.load(surl, client=c, cache=cache, parallel=4)
                before = c.stats.total("instance")
                t = timeit(lambda: gpukit.load(surl, client=c, cache=cache, parallel=4), repeats, warmup=0)
                rows.append(row("DICOMweb, warm cache (metadata only)", t,
                                instances_per_load=c.stats.total("instance") - before))
        if size >= 140:          # the full size only: a batch starts a Dask cluster per run (seconds of overhead)
            rows += batch_rows(folder, number, url, auth, mb, op)
    return rows


def batch_rows(folder: Path, number: int, url: str, auth, mb: float, op: str) -> list[dict]:
    """``run_batch`` of the one series from its folder and from its DICOMweb URL (a cold worker cache), on a
    one-worker ``LocalCluster``, recipe: the volume as ``.npy``. One run each (a fresh cluster and output folder):
    wall time including the cluster start, and the series' own time in the worker (``series_s``: read or
    download + decode + write)."""
    import time

    from gpukit.batch import parse_recipe, run_batch

    recipe = parse_recipe({"recipe": {"name": "bench"}, "output": [{"kind": "volume", "name": "v", "format": "npy"}]})
    rows = []
    saved = {k: os.environ.get(k) for k in ("GPUKIT_DICOMWEB_USER", "GPUKIT_DICOMWEB_PASSWORD",
                                            "GPUKIT_DICOMWEB_CACHE")}
    try:
        with tempfile.TemporaryDirectory(prefix="gpukit-bench-batch-") as tmp:
            if auth:                 # the workers read credentials from their environment
                os.environ["GPUKIT_DICOMWEB_USER"], os.environ["GPUKIT_DICOMWEB_PASSWORD"] = auth
            os.environ["GPUKIT_DICOMWEB_CACHE"] = os.path.join(tmp, "cache")
            import gpukit

            files = [f for s in gpukit.scan(folder).volumes if s.series_number == number for f in s.files]
            for impl, source, query in (("batch: folder (the series' files)", files, None),
                                        ("batch: DICOMweb URL, cold cache", url, {"filters": {"SeriesNumber":
                                                                                              str(number)}})):
                out = os.path.join(tmp, "out-folder" if query is None else "out-url")
                t0 = time.perf_counter()
                res = run_batch(source, out, recipe, n_workers=1, progress=False, query=query)
                wall = time.perf_counter() - t0
                recs = [r for r in res.records if r.get("series_number") == number and r["status"] == "ok"]
                if len(recs) != 1:
                    raise AssertionError(f"{impl}: the series was not processed ({res.counts})")
                series_s = recs[0]["timings_s"]["total"]
                rows.append({"op": op, "impl": impl, "median_s": wall, "p10_s": wall, "p90_s": wall, "repeats": 1,
                             "series_s": series_s,
                             "series_per_s": 1.0 / series_s, "mb_per_s": mb / series_s})
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rows
