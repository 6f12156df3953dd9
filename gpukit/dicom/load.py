"""Turning a found series into a :class:`~gpukit.Volume`: geometry, then pixels.

Geometry comes from ImagePositionPatient and ImageOrientationPatient only:
slices are sorted by the projection of their position on the slice normal,
the slice-step column of the affine is the mean step between consecutive
positions (a tilted series gives a sheared affine), and the spacing is checked.

Pixels go into one preallocated ``(nz, ny, nx)`` array of the stored integer
type. Uncompressed little-endian frames are read straight from the file into
their slice of that array (``readinto``, no per-slice ``pixel_array``);
everything else is decoded by pydicom's plugins, several files at a time.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from .. import geometry
from ..errors import (CorruptDicomError, DecodeError, InconsistentSeriesError, IrregularSpacingError,
                      MissingDecoderError, NoPixelDataError, UnsupportedDicomError)
from ..volume import Volume
from .header import UNCOMPRESSED_LE, Frame
from .scan import SeriesInfo

#: How far (mm) a slice position may lie off the line through the first and last.
COLLINEAR_TOL_MM = 0.01

#: pip packages that provide pydicom's decoder plugins (for error messages).
PLUGIN_PACKAGES = {
    "pylibjpeg": "pylibjpeg with pylibjpeg-openjpeg (JPEG 2000), pylibjpeg-libjpeg (JPEG, JPEG-LS), pylibjpeg-rle",
    "gdcm": "python-gdcm",
    "pillow": "pillow",
    "pyjpegls": "pyjpegls",
}


def _stored_dtype(frame: Frame) -> np.dtype:
    h = frame.header
    bits = int(h.get("BitsAllocated", 16))
    signed = int(h.get("PixelRepresentation", 0)) == 1
    if bits not in (8, 16, 32):
        raise UnsupportedDicomError(f"BitsAllocated {bits} is not supported (8, 16 or 32)", h.path)
    return np.dtype(f"{'i' if signed else 'u'}{bits // 8}")


def _sorted_frames(frames: list[Frame]) -> tuple[list[Frame], np.ndarray]:
    _, _, normal = geometry.orientation_vectors(frames[0].iop, tol=1e-2)
    proj = np.array([np.dot(np.asarray(f.ipp, dtype=np.float64), normal) for f in frames])
    inst = [f.header.get("InstanceNumber", 0) or 0 for f in frames]
    order = sorted(range(len(frames)), key=lambda n: (proj[n], inst[n], frames[n].path, frames[n].index))
    return [frames[n] for n in order], proj[order]


def _check_consistent(frames: list[Frame]) -> None:
    ps0 = np.asarray(frames[0].pixel_spacing, dtype=np.float64)
    for f in frames[1:]:
        if not np.allclose(np.asarray(f.pixel_spacing, dtype=np.float64), ps0, rtol=0, atol=1e-4):
            raise InconsistentSeriesError(
                f"PixelSpacing {list(f.pixel_spacing)} differs from {list(ps0)} in {frames[0].path}", f.path)


def series_geometry(frames: list[Frame], on_irregular: str = "raise") -> tuple[list[Frame], np.ndarray, dict]:
    """Sort frames and build the affine; returns (frames in slice order, affine, geometry meta)."""
    f0 = frames[0]
    if f0.iop is None or f0.ipp is None or f0.pixel_spacing is None:
        raise UnsupportedDicomError("no patient geometry (ImagePositionPatient/ImageOrientationPatient/PixelSpacing)",
                                    f0.path)
    h0 = f0.header
    legacy_multiframe = len(frames) > 1 and not h0.is_enhanced and len({f.path for f in frames}) == 1
    if len(frames) == 1 or legacy_multiframe:
        # one position only: the slice axis is the normal, spaced by SpacingBetweenSlices
        step = float(h0.get("SpacingBetweenSlices") or h0.get("SliceThickness") or 1.0)
        _, _, normal = geometry.orientation_vectors(f0.iop)
        aff = geometry.slice_affine(f0.iop, f0.ipp, f0.pixel_spacing, normal * step)
        proj = np.arange(len(frames)) * step + float(np.dot(f0.ipp, normal))
        rep = geometry.spacing_report(proj)
        note = "legacy multi-frame: slices placed along the normal by SpacingBetweenSlices" if legacy_multiframe \
            else "single slice: slice axis is the normal, length SpacingBetweenSlices or SliceThickness"
        return frames, aff, {"spacing_report": rep.to_dict(), "slice_positions": proj, "regular": True,
                             "geometry_note": note}

    _check_consistent(frames)
    frames, proj = _sorted_frames(frames)
    ipps = np.array([f.ipp for f in frames], dtype=np.float64)
    rep = geometry.spacing_report(proj)
    n = len(frames)
    step = (ipps[-1] - ipps[0]) / (n - 1)
    # positions must lie on one line: origin + k * step
    deviation = np.abs(ipps - (ipps[0] + np.arange(n)[:, None] * step)).max() if rep.regular else 0.0
    regular = rep.regular and deviation <= COLLINEAR_TOL_MM
    meta = {"spacing_report": rep.to_dict(), "slice_positions": proj, "regular": regular}
    if not regular:
        why = rep.summary() if not rep.regular else \
            f"slice positions are not on a line (max deviation {deviation:.4f} mm > {COLLINEAR_TOL_MM} mm)"
        if on_irregular == "raise":
            raise IrregularSpacingError(
                f"irregular slice spacing: {why}. Positions along the normal (mm): "
                f"{np.round(proj, 4).tolist()}. Pass on_irregular='keep' to load anyway with per-slice positions",
                positions=proj, report=rep, path=os.path.dirname(frames[0].path))
        if on_irregular != "keep":
            raise ValueError(f"on_irregular must be 'raise' or 'keep', got {on_irregular!r}")
        diffs = np.diff(ipps, axis=0)
        nonzero = diffs[np.linalg.norm(diffs, axis=1) > 1e-3]
        step = np.median(nonzero, axis=0) if len(nonzero) else geometry.orientation_vectors(f0.iop)[2]
        meta["slice_positions_lps"] = ipps
        meta["geometry_note"] = f"irregular series kept: {why}; affine uses the median step, " \
                                f"true positions in meta['slice_positions_lps']"
    aff = geometry.slice_affine(f0.iop, ipps[0], f0.pixel_spacing, step)
    return frames, aff, meta


# -- pixels ---------------------------------------------------------------------------
def _decoder_check(ts: str, path: str) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(ts)
    try:
        dec = get_decoder(uid)
    except NotImplementedError:
        raise MissingDecoderError(
            f"no pixel decoder for transfer syntax {uid} ({uid.name}): pydicom has none for it; "
            f"install a decoder plugin that supports it or convert the file (e.g. with gdcmconv --raw)", path) from None
    if not dec.is_available:
        missing = "; ".join(f"{k}: {v}" for k, v in dec.missing_dependencies.items()) \
            if isinstance(dec.missing_dependencies, dict) else "; ".join(dec.missing_dependencies)
        raise MissingDecoderError(
            f"no installed decoder for {uid.name} ({uid}); install one of: "
            f"{', '.join(PLUGIN_PACKAGES.get(p, p) for p in PLUGIN_PACKAGES)} (missing: {missing})", path)


def _read_raw_into(frame: Frame, dst: np.ndarray) -> None:
    h = frame.header
    nbytes = dst.nbytes
    if h.pixel_length >= 0 and h.pixel_length < nbytes:
        raise CorruptDicomError(f"Pixel Data holds {h.pixel_length} bytes, expected {nbytes} "
                                f"({h.get('Rows')}x{h.get('Columns')}x{dst.itemsize})", h.path)
    with open(h.path, "rb", buffering=0) as fh:
        fh.seek(h.pixel_offset)
        got = fh.readinto(memoryview(dst).cast("B"))
    if got != nbytes:
        raise CorruptDicomError(f"file is truncated: Pixel Data should hold {nbytes} bytes, "
                                f"found {got}", h.path)


def _decode_file(path: str, indices: Sequence[int], dsts: Sequence[np.ndarray]) -> None:
    for d, a in zip(dsts, _decode_frames(path, indices, dsts[0].shape)):
        d[...] = a


def _decode_frames(path: str, indices: Sequence[int], shape: tuple) -> list[np.ndarray]:
    """Decode the given frames of one file with pydicom's plugins (runs in worker processes too)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise NoPixelDataError("no pixel data", path)
        arr = ds.pixel_array
    except (NoPixelDataError, MissingDecoderError):
        raise
    except Exception as exc:
        msg = str(exc)
        if "missing" in msg.lower() and "plugin" in msg.lower():
            raise MissingDecoderError(msg, path) from None
        if "less than expected" in msg:
            raise CorruptDicomError(f"file is truncated or its pixel description is wrong ({msg})", path) from None
        raise DecodeError(f"pixel data could not be decoded ({type(exc).__name__}: {exc})", path) from None
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    if nf == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != tuple(shape):
        raise DecodeError(f"decoded shape {arr.shape} does not match {nf} frame(s) of {tuple(shape)}", path)
    return [arr[i] for i in indices]


#: Compressed frames per load above which decoding moves to worker processes
#: (pydicom's decoder plugins hold the GIL, so threads do not decode in parallel).
PROCESS_DECODE_MIN_FRAMES = 16
_pools: dict = {}


def _process_pool(workers: int):
    """A process pool kept for reuse (start-up costs ~0.3 s); None where processes cannot be made."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if mp.current_process().daemon:   # e.g. inside a Dask worker: no child processes allowed
        return None
    pool = _pools.get(workers)
    if pool is None:
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        pool = _pools[workers] = ProcessPoolExecutor(workers, mp_context=mp.get_context(method))
    return pool


def _decode_parallel(jobs: list[tuple[str, list[tuple[int, np.ndarray]]]], workers: int) -> None:
    n_frames = sum(len(items) for _, items in jobs)
    pool = _process_pool(workers) if workers > 1 and n_frames >= PROCESS_DECODE_MIN_FRAMES and len(jobs) > 1 \
        else None
    if pool is None:
        for path, items in jobs:
            _decode_file(path, [i for i, _ in items], [d for _, d in items])
        return
    from concurrent.futures.process import BrokenProcessPool

    try:
        futs = [(pool.submit(_decode_frames, path, [i for i, _ in items], items[0][1].shape), items)
                for path, items in jobs]
        for fut, items in futs:
            for (_, dst), arr in zip(items, fut.result()):
                dst[...] = arr
    except BrokenProcessPool:
        # the workers could not start (e.g. a __main__ that cannot be re-imported): decode here
        _pools.pop(workers, None)
        for path, items in jobs:
            _decode_file(path, [i for i, _ in items], [d for _, d in items])


def _fix_unused_bits(out: np.ndarray, bits_stored: int) -> None:
    """Make bits above BitsStored follow the sign (signed) or zero them (unsigned), as pydicom does."""
    bits = out.dtype.itemsize * 8
    if bits_stored >= bits:
        return
    if out.dtype.kind == "u":
        limit = 1 << bits_stored
        if int(out.max(initial=0)) < limit:
            return
    else:
        lo, hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
        if out.size == 0 or (int(out.min()) >= lo and int(out.max()) <= hi):
            return
    shift = bits - bits_stored
    np.left_shift(out, shift, out=out)
    np.right_shift(out, shift, out=out)


def read_pixels(frames: list[Frame], workers: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Read the frames (in the given order) into one ``(nz, ny, nx)`` array of stored values."""
    f0 = frames[0]
    h0 = f0.header
    rows, cols = int(h0.get("Rows")), int(h0.get("Columns"))
    dtype = _stored_dtype(f0)
    if out is None:
        out = np.empty((len(frames), rows, cols), dtype=dtype)
    raw: list[tuple[Frame, np.ndarray]] = []
    by_file: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for k, f in enumerate(frames):
        h = f.header
        if int(h.get("Rows")) != rows or int(h.get("Columns")) != cols:
            raise InconsistentSeriesError(f"matrix {h.get('Rows')}x{h.get('Columns')} differs from {rows}x{cols}",
                                          h.path)
        if not h.has_pixels:
            raise NoPixelDataError("no pixel data", h.path)
        if h.pixel_offset >= 0 and not h.encapsulated and h.transfer_syntax in UNCOMPRESSED_LE \
                and h.n_frames == 1:
            raw.append((f, out[k]))
        else:
            by_file[h.path].append((f.index, out[k]))
    checked: set[str] = set()
    for f in frames:
        if f.path in by_file and f.header.transfer_syntax not in checked:
            _decoder_check(f.header.transfer_syntax, f.path)
            checked.add(f.header.transfer_syntax)

    # uncompressed frames: plain reads into the volume, one thread unless asked (memcpy-bound);
    # compressed frames: decoded in up to one process per core (the decoders hold the GIL)
    io_threads = workers or 1
    decoders = workers or (os.cpu_count() or 1)

    def run(fn, jobs):
        if io_threads == 1 or len(jobs) < 4:
            for j in jobs:
                fn(*j)
        else:
            with ThreadPoolExecutor(io_threads) as ex:
                for _ in ex.map(lambda j: fn(*j), jobs):
                    pass

    run(_read_raw_into, raw)
    _decode_parallel(list(by_file.items()), decoders)
    _fix_unused_bits(out, int(h0.get("BitsStored", out.dtype.itemsize * 8)))
    return out


# -- assembling the Volume ---------------------------------------------------------------
def _window_list(v) -> list[float]:
    if v is None:
        return []
    return [float(x) for x in (v if isinstance(v, list) else [v])]


def build_volume(info: SeriesInfo, *, on_irregular: str = "raise", workers: int | None = None,
                 backend: str | None = None, device=None) -> Volume:
    """Load the pixels and geometry of one series found by scan.

    With a GPU ``backend`` (``"cupy"``, ``"numba-cuda"``) the pixels go straight to the device
    (:mod:`gpukit.dicom.device`) and the Volume holds a CuPy array.
    """
    if info.kind == "unsupported":
        raise UnsupportedDicomError(f"series {info.id} is not loadable as a volume: {info.note}", info.files[0])
    for f in info.frames:   # a damaged file is the error to report, before any geometry consequence
        if f.header.truncated:
            raise CorruptDicomError(f.header.truncated, f.path)
    frames, affine, gmeta = series_geometry(list(info.frames), on_irregular=on_irregular)
    on_gpu = False
    if backend is not None or device is not None:
        from ..backends import get_backend

        on_gpu = device is not None or get_backend(backend).ARRAY == "cupy"
    if on_gpu:
        from .device import read_series_to_device

        data = read_series_to_device(frames, workers=workers, device=device)
    else:
        data = read_pixels(frames, workers=workers)
    h0 = frames[0].header
    slopes = np.array([f.slope for f in frames], dtype=np.float64)
    intercepts = np.array([f.intercept for f in frames], dtype=np.float64)
    pad = h0.get("PixelPaddingValue")
    if pad is not None and data.dtype.kind == "i" and int(h0.get("PixelRepresentation", 0)) == 1 and pad > 32767:
        pad = pad - 65536  # read as US in implicit VR; the pixels are signed
    meta = {
        "modality": str(h0.get("Modality", "") or ""),
        "series_uid": info.uid,
        "series_id": info.id,
        "study_uid": h0.get("StudyInstanceUID"),
        "frame_of_reference_uid": h0.get("FrameOfReferenceUID"),
        "sop_class_uid": h0.get("SOPClassUID"),
        "series_description": info.description,
        "series_number": info.series_number,
        "manufacturer": h0.get("Manufacturer"),
        "rescale_slope": slopes,
        "rescale_intercept": intercepts,
        "rescale_type": h0.get("RescaleType") or ("HU" if h0.get("Modality") == "CT" else None),
        "window_center": _window_list(frames[0].window_center),
        "window_width": _window_list(frames[0].window_width),
        "voi_lut_function": h0.get("VOILUTFunction") or "LINEAR",
        "photometric_interpretation": h0.get("PhotometricInterpretation"),
        "pixel_padding_value": pad,
        "bits_stored": int(h0.get("BitsStored", data.dtype.itemsize * 8)),
        "signed": data.dtype.kind == "i",
        "tilt_deg": geometry.tilt_angle_deg(affine),
        "gantry_tilt_tag": h0.get("GantryDetectorTilt"),
        "files": [f.path for f in frames],
        "frame_indices": [f.index for f in frames],
        "transfer_syntax": h0.transfer_syntax,
        "split_reason": info.split_reason,
        "echo_time": frames[0].echo_time,
    }
    meta.update(gmeta)
    return Volume(data, affine, meta, backend=backend if on_gpu else None)
