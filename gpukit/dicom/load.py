"""Turning a found series into a :class:`~gpukit.Volume`: geometry, then pixels.

Geometry comes from ImagePositionPatient and ImageOrientationPatient only:
slices are sorted by the projection of their position on the slice normal,
the slice-step column of the affine is the mean step between consecutive
positions (a tilted series gives a sheared affine), and the spacing is checked.

Pixels are read by :mod:`gpukit.dicom.pixels` (on the CPU) or
:mod:`gpukit.dicom.device` (straight onto a GPU); both sit below this module,
which imports them and is imported by neither.
"""

from __future__ import annotations

import os

import numpy as np

from .. import geometry
from ..errors import CorruptDicomError, InconsistentSeriesError, IrregularSpacingError, UnsupportedDicomError
from ..volume import Volume
from .device import read_series_to_device
from .header import Frame
from .warnlog import merge
from .pixels import PLUGIN_PACKAGES, read_pixels  # noqa: F401  (PLUGIN_PACKAGES re-exported from its old home)
from .scan import SeriesInfo

#: How far (mm) a slice position may lie off the line through the first and last.
COLLINEAR_TOL_MM = 0.01


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
    on_gpu = standin = False
    if backend is not None or device is not None:
        from ..backends import get_backend

        be = get_backend(backend)
        standin = device is None and be.standin      # the CPU stand-in of a GPU: read on the host, then .to()
        on_gpu = device is not None or (be.location == "device" and not standin)
    logs: list = []       # the decoders' warnings, per file: into meta["warnings"], never to stderr
    if on_gpu:
        data = read_series_to_device(frames, workers=workers, device=device, warnings_out=logs)
    else:
        data = read_pixels(frames, workers=workers, warnings_out=logs)
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
        "warnings": [w.to_dict() for w in merge(logs)],
    }
    meta.update(gmeta)
    vol = Volume(data, affine, meta, backend=backend if on_gpu else None)
    return vol.to(backend) if standin else vol
