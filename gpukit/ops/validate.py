"""Validation and host-side maths shared by the geometric operations: arguments, the index map, the output stage.

Nothing here touches volume data: :mod:`.residency` holds what is derived
from it (device copies, extrema, fills), :mod:`.sampling` the operations.
"""

from __future__ import annotations

import numpy as np

from ..backends import codes
from ..backends.codes import FUNCTION_CODES

INTERPS = tuple(codes.INTERPS)
PROJECTION_MODES = codes.PROJECTION_MODES
#: tolerance for snapping index-map entries to integers (see :mod:`gpukit.ops.sampling`)
SNAP = 1e-9


def _check_interp(interp: str) -> str:
    if interp not in INTERPS:
        raise ValueError(f"interp must be one of {INTERPS}, got {interp!r}")
    return interp


def _check_mode(mode: str) -> str:
    if mode not in PROJECTION_MODES:
        raise ValueError(f"mode must be one of {PROJECTION_MODES}, got {mode!r}")
    return mode


def _snap(x: np.ndarray) -> np.ndarray:
    r = np.round(x)
    return np.where(np.abs(x - r) < SNAP, r, x)


def index_map(volume_affine: np.ndarray, output_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (3x3) and ``b`` (3,) with ``(i, j, k) = A @ (c, r, s) + b``.

    ``output_affine`` maps output ``(c, r, s, 1)`` to LPS; the result is
    ``inv(volume_affine) @ output_affine`` with near-integer entries snapped.
    """
    M = np.linalg.solve(np.asarray(volume_affine, dtype=np.float64), np.asarray(output_affine, dtype=np.float64))
    return np.ascontiguousarray(_snap(M[:3, :3])), np.ascontiguousarray(_snap(M[:3, 3]))


def _grid_shape(shape, n: int, name: str) -> tuple[int, ...]:
    shp = tuple(int(x) for x in np.asarray(shape).ravel())
    if len(shp) != n or min(shp) < 1:
        raise ValueError(f"{name} must be {n} positive integers, got {shape!r}")
    return shp


def _window_stage(window) -> tuple:
    """The kernels' fused output stage for ``window=(center, width)``: DICOM LINEAR (C.11.2.1.2.1) to 0..255."""
    center, width = (float(x) for x in window)
    if not width >= 1.0:
        raise ValueError(f"window width must be >= 1 for LINEAR (PS3.3 C.11.2.1.2.1), got {width:g}")
    return (center, width, FUNCTION_CODES["LINEAR"], 0.0, 255.0, False)


def _apply_window(hu, window, be):
    """The same output stage as a second pass (:func:`gpukit.window` on the HU image, on ``be``), for backends
    without the fused stage."""
    from .intensity import window as _window

    center, width = (float(x) for x in window)
    return _window(hu, center, width, backend=be.name)


def _volume_meta(volume, **extra) -> dict:
    keep = ("modality", "series_uid", "study_uid", "frame_of_reference_uid", "series_description", "series_number",
            "rescale_type", "window_center", "window_width", "voi_lut_function", "photometric_interpretation")
    meta = {k: volume.meta[k] for k in keep if k in volume.meta}
    meta.update(extra)
    return meta


__all__ = ["INTERPS", "PROJECTION_MODES", "SNAP", "index_map"]
