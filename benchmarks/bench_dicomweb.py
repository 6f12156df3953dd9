"""Loading over DICOMweb (a local Orthanc) against loading the same series from disk.

Times ``gpukit.load(series URL)`` (QIDO-RS + WADO-RS metadata + instances in the stored transfer syntax, cold
cache: every instance downloaded) with 1 and 4 parallel requests, the same with a warm cache (nothing
downloaded), and ``gpukit.load(folder)`` on the same files; reports series/s and MB/s (stored voxel bytes per
second). The voxels must equal the disk load's before anything is reported.

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
    return rows
