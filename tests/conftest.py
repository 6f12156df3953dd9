"""Shared fixtures: the real-data folder (../shared/data), skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GPUKIT_TEST_DATA", ROOT.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path under the shared real-data folder; skips the test when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data not found at {p} (the ../shared/data folder is absent on this machine)")
    return p


@pytest.fixture
def data():
    return data_path


def rescale_kind(rng, nz: int, kind: str):
    """Per-slice ``(slopes, intercepts)`` for synthetic test volumes: "uniform" (CT: 1, -1024), "negative"
    (-0.5, 12: a mirrored rescale) or anything else (random per-slice slopes 0.5-2 and intercepts -100-100)."""
    import numpy as np

    if kind == "uniform":
        return np.ones(nz), np.full(nz, -1024.0)
    if kind == "negative":
        return np.full(nz, -0.5), np.full(nz, 12.0)
    return rng.uniform(0.5, 2.0, nz), rng.uniform(-100.0, 100.0, nz)


def hu_from_pydicom(folder: Path):
    """The HU volume ``(k, j, i)`` of the one series in ``folder``, from pydicom alone (an oracle independent of
    gpukit): every file with pixels, sorted by its position along the slice normal, through ``apply_modality_lut``."""
    import numpy as np
    import pydicom
    from pydicom.pixels import apply_modality_lut

    slices = []
    for p in sorted(Path(folder).iterdir()):
        try:
            ds = pydicom.dcmread(p)
        except pydicom.errors.InvalidDicomError:
            continue
        if "PixelData" not in ds:
            continue
        iop = np.asarray(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        slices.append((float(np.asarray(ds.ImagePositionPatient, float) @ normal),
                       apply_modality_lut(ds.pixel_array, ds).astype(np.float64)))
    slices.sort(key=lambda t: t[0])
    return np.stack([s for _, s in slices])


# -- one backend fixture over every backend that can run here ------------------------------------------------------
#: every compute backend, with the device stand-in ``cuda-host`` (the real CUDA C++ kernels on the CPU, on strict
#: pretend-device arrays); GPU backends skip with the reason where there is no device
BACKENDS = ("numpy", "numba", "cuda-host", "cupy", "numba-cuda")


def require_backend(name: str) -> str:
    """``name`` when it can run here, else skip with what it lacks."""
    from gpukit.backends import lookup

    be = lookup(name)
    if not be.is_available():
        pytest.skip(f"backend {name!r} cannot run here: {'; '.join(be.missing_dependencies())}")
    return name


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Each backend in turn (one test body, every backend: the CuPy testing habit)."""
    return require_backend(request.param)


def host(a):
    """A result brought to the host through gpukit's one explicit edge (device arrays are never converted
    implicitly; the stand-in raises if anything tries)."""
    from gpukit.arrays import to_host

    return to_host(a)


def can_mount_tmpfs() -> bool:
    """Whether this process may mount a small tmpfs (root on Linux): the tests make real full and read-only disks
    that way, and skip with the reason where they cannot."""
    import subprocess
    import sys
    import tempfile

    if sys.platform != "linux":
        return False
    probe = Path(tempfile.mkdtemp(prefix="gpukit-mount-probe-"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    except OSError:
        return False
    finally:
        probe.rmdir()


# -- a real Orthanc with its DICOMweb plugin (tests/orthanc_server.py) -------------------------------------------
#: the shared series uploaded to the session's Orthanc
ORTHANC_SERIES = ("ct_philips_1mm", "ct_philips_tilt", "ts_compressed", "enh_mr_siemens_xa30")


@pytest.fixture(scope="session")
def orthanc():
    """A real Orthanc on 127.0.0.1 (free port, temporary storage, authentication on) holding the shared series,
    uploaded once per session; ``.uploads[name]`` says what each upload stored and refused. Skips with the
    reason where Orthanc, its DICOMweb plugin or the shared data are missing; stopped at the end of the session."""
    from orthanc_server import OrthancServer, find_orthanc

    _, _, why = find_orthanc()
    if why:
        pytest.skip(why)
    folders = {name: data_path(name) for name in ORTHANC_SERIES}
    srv = OrthancServer().start()
    try:
        srv.uploads = {name: srv.upload_folder(folder) for name, folder in folders.items()}
        yield srv
    finally:
        srv.stop()
