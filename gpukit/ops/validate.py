"""Validation and host-side maths shared by the geometric operations: arguments, the index map, the output stage.

Nothing here touches volume data: :mod:`.residency` holds what is derived
from it (device copies, extrema, fills), :mod:`.sampling` the operations.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InvalidParameterError, ParameterTypeError, WorkLimitError
from ..geometry import check_affine

from ..backends import codes
from ..backends.codes import FUNCTION_CODES

INTERPS = tuple(codes.INTERPS)
PROJECTION_MODES = codes.PROJECTION_MODES
#: tolerance for snapping index-map entries to integers (see :mod:`gpukit.ops.sampling`)
SNAP = 1e-9


def _check_interp(interp: str) -> str:
    if interp not in INTERPS:
        raise InvalidParameterError(f"interp must be one of {INTERPS}, got {interp!r}")
    return interp


def _check_mode(mode: str) -> str:
    if mode not in PROJECTION_MODES:
        raise InvalidParameterError(f"mode must be one of {PROJECTION_MODES}, got {mode!r}")
    return mode


def _snap(x: np.ndarray) -> np.ndarray:
    r = np.round(x)
    return np.where(np.abs(x - r) < SNAP, r, x)


def index_map(volume_affine: np.ndarray, output_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (3x3) and ``b`` (3,) with ``(i, j, k) = A @ (c, r, s) + b``.

    ``output_affine`` maps output ``(c, r, s, 1)`` to LPS; the result is
    ``inv(volume_affine) @ output_affine`` with near-integer entries snapped.
    """
    out = check_affine(output_affine, "the output affine", invertible=False)
    with np.errstate(over="ignore", invalid="ignore"):
        M = np.linalg.solve(np.asarray(volume_affine, dtype=np.float64), out)
    if not np.all(np.isfinite(M)):
        raise InvalidParameterError("the output grid lies too far from the volume (or its voxels are too small) for "
                                    "double precision: its index map overflows")
    return np.ascontiguousarray(_snap(M[:3, :3])), np.ascontiguousarray(_snap(M[:3, 3]))


#: the stated limits every geometric operation is checked against before it allocates anything
#: (environment: ``GPUKIT_MAX_SAMPLES``, ``GPUKIT_MAX_OUTPUT_BYTES``; in Python: :func:`set_limits`).
#: 2e10 samples is about a minute and a half on 2 cores with the numba backend; 4 GiB is one output array.
LIMITS = {"max_samples": int(float(os.environ.get("GPUKIT_MAX_SAMPLES", 2e10))),
          "max_output_bytes": int(float(os.environ.get("GPUKIT_MAX_OUTPUT_BYTES", 4 << 30)))}


def set_limits(max_samples: float | None = None, max_output_bytes: float | None = None) -> dict:
    """Change the work limits (None keeps one); returns the limits now in force."""
    for key, v in (("max_samples", max_samples), ("max_output_bytes", max_output_bytes)):
        if v is not None:
            if isinstance(v, bool) or not (isinstance(v, (int, float, np.integer, np.floating)) and v >= 1
                                           and math.isfinite(v)):
                raise InvalidParameterError(f"{key} must be a positive number, got {v!r}")
            LIMITS[key] = int(v)
    return dict(LIMITS)


def check_work(samples: float, out_shape, itemsize: int, what: str) -> None:
    """Refuse, before any allocation, an operation over :data:`LIMITS` (samples taken, bytes of its output)."""
    out_bytes = float(np.prod([float(x) for x in out_shape])) * itemsize
    if not math.isfinite(float(samples)) or samples > LIMITS["max_samples"]:
        raise WorkLimitError(f"{what} would take {float(samples):.3g} samples, over the limit of "
                             f"{LIMITS['max_samples']:.3g} (gpukit.set_limits(max_samples=...) or GPUKIT_MAX_SAMPLES "
                             "raise it; a larger step or a thinner slab lowers the count)")
    if out_bytes > LIMITS["max_output_bytes"]:
        raise WorkLimitError(f"{what} would allocate an output of {out_bytes / 2**30:.3g} GiB "
                             f"{tuple(int(x) for x in out_shape)}, over the limit of "
                             f"{LIMITS['max_output_bytes'] / 2**30:.3g} GiB (gpukit.set_limits(max_output_bytes=...) "
                             "or GPUKIT_MAX_OUTPUT_BYTES raise it)")


def steps(length_mm: float, step_mm: float, what: str) -> int:
    """``floor(length / step) + 1`` samples along a ray, checked against :data:`LIMITS` while still a float (a
    thickness of 1e19 mm is a clear error, not an overflow or a wrong image)."""
    n = math.floor(float(length_mm) / float(step_mm) + 1e-6) + 1 if math.isfinite(float(length_mm)) else math.inf
    if not n <= LIMITS["max_samples"]:
        raise WorkLimitError(f"{what}: {length_mm:g} mm in steps of {step_mm:g} mm is {float(n):.3g} samples per "
                             f"ray, over the limit of {LIMITS['max_samples']:.3g}")
    return int(n)


def real(v, name: str) -> float:
    """``v`` as a finite float: a real number (not a bool, a string or a complex), or an error naming it."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(f"{name} must be a number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise InvalidParameterError(f"{name} must be finite, got {v!r}")
    return f


def positive_mm(v, name: str, *, zero: bool = False) -> float:
    """A length in mm: finite and > 0 (``zero``: >= 0)."""
    f = real(v, name)
    if not (f >= 0 if zero else f > 0):
        raise InvalidParameterError(f"{name} must be {'>= 0' if zero else 'positive'} (mm), got {v!r}")
    return f


def thickness(v, name: str = "thickness_mm") -> float:
    """A slab thickness in mm: a number >= 0; +inf is allowed (over any sample limit on a plane, the whole
    axis on an array axis)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(f"{name} must be a number, got {v!r}")
    f = float(v)
    if not f >= 0:
        raise InvalidParameterError(f"{name} must be >= 0, got {v!r}")
    return f


def whole(v, name: str, minimum: int = 1) -> int:
    """A count: a whole number (an integral float is accepted) >= ``minimum``."""
    f = real(v, name)
    if f != math.floor(f) or f < minimum:
        raise InvalidParameterError(f"{name} must be a whole number >= {minimum}, got {v!r}")
    return int(f)


def check_volume(volume, what: str) -> None:
    """A :class:`gpukit.Volume` (duck-typed: data, affine, meta, slopes), or an error that says how to make one."""
    if isinstance(volume, np.ndarray) or not all(hasattr(volume, a) for a in ("data", "affine", "meta", "slopes")):
        raise ParameterTypeError(f"{what} needs a gpukit.Volume, got {type(volume).__name__}; wrap an array as "
                                 "gpukit.Volume(data, affine) or load one with gpukit.load(path)")


def _grid_shape(shape, n: int, name: str) -> tuple[int, ...]:
    """``shape`` as ``n`` whole numbers >= 1 (floats with whole values are accepted), or an error naming it."""
    shp: list[int] = []
    try:
        items = [] if shape is None or isinstance(shape, (str, bytes)) else \
            list(np.asarray(shape, dtype=object).ravel())
    except (TypeError, ValueError):
        items = []
    for e in items:
        if isinstance(e, (int, np.integer)) and not isinstance(e, (bool, np.bool_)):
            shp.append(int(e))
        elif isinstance(e, (float, np.floating)) and math.isfinite(e) and float(e) == round(float(e)):
            shp.append(int(e))
        else:
            break
    if len(shp) != n or len(items) != n or min(shp) < 1:
        raise InvalidParameterError(f"{name} must be {n} positive integers, got {shape!r}")
    if max(shp) > 2 ** 62:
        raise WorkLimitError(f"{name} {shape!r} is over any limit (at most 2**62 a side; "
                             f"{LIMITS['max_samples']:.3g} samples in all, gpukit.set_limits)")
    return tuple(shp)


def _window_pair(window) -> tuple[float, float]:
    """``window=(center, width)`` as two finite floats, or an error that says what to pass."""
    bad = isinstance(window, (str, bytes))
    try:
        bad = bad or np.iscomplexobj(window)
        center, width = (float(x) for x in window) if not bad else (None, None)
    except (TypeError, ValueError):
        bad = True
    if bad:
        hint = (f" (for a preset: window=gpukit.presets.get_preset({window!r}))" if isinstance(window, str) else "")
        raise ParameterTypeError(f"window must be (center, width), two numbers, got {window!r}{hint}")
    if not (math.isfinite(center) and math.isfinite(width)):
        raise InvalidParameterError(f"window center and width must be finite, got ({center:g}, {width:g})")
    return center, width


def _window_stage(window) -> tuple:
    """The kernels' fused output stage for ``window=(center, width)``: DICOM LINEAR (C.11.2.1.2.1) to 0..255."""
    center, width = _window_pair(window)
    if not width >= 1.0:
        raise InvalidParameterError(f"window width must be >= 1 for LINEAR (PS3.3 C.11.2.1.2.1), got {width:g}")
    return (center, width, FUNCTION_CODES["LINEAR"], 0.0, 255.0, False)


def _apply_window(hu, window, be):
    """The same output stage as a second pass (:func:`gpukit.window` on the HU image, on ``be``), for backends
    without the fused stage."""
    from .intensity import window as _window

    center, width = _window_pair(window)
    return _window(hu, center, width, backend=be.name)


def _volume_meta(volume, **extra) -> dict:
    keep = ("modality", "series_uid", "study_uid", "frame_of_reference_uid", "series_description", "series_number",
            "rescale_type", "window_center", "window_width", "voi_lut_function", "photometric_interpretation")
    meta = {k: volume.meta[k] for k in keep if k in volume.meta}
    meta.update(extra)
    return meta


__all__ = ["INTERPS", "PROJECTION_MODES", "SNAP", "LIMITS", "set_limits", "check_work", "index_map"]
