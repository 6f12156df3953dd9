"""Series loading: gpukit.load against SimpleITK's ImageSeriesReader and the naive pydicom loop.

Every contender reads the same files from a warm page cache and must produce
the same voxels (checked after timing, before anything is reported).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ._timing import timeit

SHARED_CT = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct_philips_1mm" / "In" / "Philips"
             / "S21570" / "S2020")


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and p.name != "DIRFILE")


def read_bytes_floor(files: list[str]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            fh.read()


def naive_pydicom(files: list[str]) -> np.ndarray:
    """The notebook way: dcmread every file, sort by position, stack pixel_array, rescale."""
    import pydicom

    dss = [pydicom.dcmread(f) for f in files]
    dss = [d for d in dss if "PixelData" in d]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


def sitk_series(folder: str) -> np.ndarray:
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    names = r.GetGDCMSeriesFileNames(folder)
    r.SetFileNames(names)
    r.SetOutputPixelType(sitk.sitkInt16)
    return sitk.GetArrayFromImage(r.Execute())


def _compare_series(folder: str, files: list[str], repeats: int, label: str, with_naive: bool = True) -> list[dict]:
    import gpukit

    rows = []
    out_g = gpukit.load(folder)
    hu_g = out_g.hu()
    checks = {"sitk": sitk_series(folder)}
    if with_naive:
        checks["naive"] = naive_pydicom(files)
    for name, arr in checks.items():
        same = arr.shape == hu_g.shape and np.array_equal(arr.astype(np.float64), hu_g.astype(np.float64))
        if not same:
            raise AssertionError(f"{label}: {name} voxels differ from gpukit's")
    nbytes = sum(os.path.getsize(f) for f in files)
    cases = [("read bytes (floor)", lambda: read_bytes_floor(files)),
             ("gpukit.load", lambda: gpukit.load(folder)),
             ("gpukit.load + hu()", lambda: gpukit.load(folder).hu()),
             ("gpukit.load workers=1", lambda: gpukit.load(folder, workers=1)),
             ("SimpleITK ImageSeriesReader int16", lambda: sitk_series(folder))]
    if with_naive:
        cases.append(("naive pydicom loop", lambda: naive_pydicom(files)))
    for impl, fn in cases:
        t = timeit(fn, repeats=repeats)
        rows.append({"op": f"load {label}", "impl": impl, "bytes": nbytes, **t})
    rows += _header_walk(files, repeats, label)
    return rows


def _header_walk(files: list[str], repeats: int, label: str) -> list[dict]:
    """The header walk alone: gpukit's fast walker against pydicom's dcmread(stop_before_pixels=True)."""
    import pydicom

    from gpukit.dicom._fastheader import read_header

    def walk(fn):
        return lambda: [fn(f) for f in files]

    rows = []
    for impl, fn in (("gpukit fast header walker", walk(read_header)),
                     ("pydicom dcmread(stop_before_pixels=True)",
                      walk(lambda p: pydicom.dcmread(p, stop_before_pixels=True)))):
        t = timeit(fn, repeats=repeats)
        rows.append({"op": f"read headers {label} ({len(files)} files)", "impl": impl, **t})
    return rows


def run(size: int = 300, repeats: int = 5, workdir: str | None = None) -> list[dict]:
    """Time loading a synthetic ``size``-slice 512x512 series, the real 140-slice CT and a JPEG 2000 series."""
    import gpukit
    import pydicom.uid
    from gpukit import testing

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        n = 512 if size >= 64 else 64
        syn = Path(tmp) / "synthetic"
        testing.write_series(syn, shape=(size, n, n), pixel_spacing=(0.7, 0.7), slice_step=1.0, tilt_deg=0.0)
        rows += _compare_series(str(syn), _files(syn), repeats, f"{size}x{n}x{n} synthetic uncompressed")
        if SHARED_CT.exists():
            rows += _compare_series(str(SHARED_CT), _files(SHARED_CT), repeats, "140x512x512 real CT (Philips)")
        j2k = Path(tmp) / "j2k"
        nj = max(4, size // 5)
        if pydicom.uid.JPEG2000Lossless in testing.available_transfer_syntaxes():
            testing.write_series(j2k, shape=(nj, n, n), transfer_syntax=pydicom.uid.JPEG2000Lossless,
                                 slice_step=1.0)
            if not np.array_equal(gpukit.load(j2k, workers=1).data, gpukit.load(j2k, workers=2).data):
                raise AssertionError("JPEG 2000: 1 and 2 workers disagree")
            for w in (1, 2):
                t = timeit(lambda: gpukit.load(j2k, workers=w), repeats=max(1, repeats // 2))
                rows.append({"op": f"load {nj}x{n}x{n} JPEG 2000 lossless", "impl": f"gpukit.load workers={w}",
                             "bytes": sum(os.path.getsize(f) for f in _files(j2k)), **t})
    return rows
