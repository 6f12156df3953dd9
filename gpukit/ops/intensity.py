"""Intensity operations: rescale stored values, window them for display (DICOM VOI LUT).

This module validates arguments, decides output dtypes, picks a backend
(:func:`gpukit.backends.get_backend`) and dispatches to its ``rescale_kernel``
/ ``window_kernel``; the formulas, the rounding rule and their order of
operations are written once in :mod:`gpukit.backends._math`.

Output dtypes:

* :func:`rescale`: int16 when every ``stored * slope + intercept`` is exactly
  an int16 (integer slopes and intercepts, and the result range fits: decided
  from the stored dtype's range, or, when that is not enough, from the data's
  actual minimum and maximum), else float32.
* :func:`window`: for an ``out_range`` of two integers the smallest of uint8,
  uint16, int16, int32 that holds it, values rounded half away from zero; for
  floats float32, unrounded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends import get_backend
from ..backends.codes import FUNCTION_CODES
from ..errors import NoWindowError, ParameterTypeError, WindowParameterError  # noqa: F401
from ..presets import get_preset


# -- argument handling ------------------------------------------------------------------------------------------
def _is_volume(x: Any) -> bool:
    """Whether ``x`` is a :class:`~gpukit.Volume` (anything with its ``data``, ``affine`` and ``meta``).

    Duck-typed on purpose: ``Volume.hu`` calls :func:`rescale`, so this module does not import
    :mod:`gpukit.volume` back (gpukit imports only downward, ``tests/test_imports.py``). Arrays
    (numpy, CuPy, other libraries' GPU arrays) have no ``affine`` or ``meta``.
    """
    if isinstance(x, np.ndarray):       # (hasattr on some arrays' attributes raises: datetime64's .data)
        return False
    try:
        return hasattr(x, "data") and hasattr(x, "affine") and hasattr(x, "meta")
    except (ValueError, TypeError):
        return False


def _host_array(a: Any, what: str, be: Any) -> Any:
    """``a`` as an array of the backend's kind (:meth:`Backend.asarray`: device arrays stay where they are, host
    data is uploaded for a device backend; a GPU array given to a host backend is a ``TypeError`` naming the fix)."""
    if isinstance(a, np.ndarray) and not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))                # big-endian input: the kernels read native order
    try:
        return be.asarray(a)
    except TypeError as exc:
        raise ParameterTypeError(f"{what}: {exc}") from None


def _check_values_dtype(a: np.ndarray, what: str) -> np.ndarray:
    k = a.dtype.kind
    if k in "iu":
        return a
    if k == "f" and a.dtype.itemsize <= 8:
        return a.astype(np.float32) if a.dtype.itemsize < 4 else a
    raise ParameterTypeError(f"{what} must hold integers or floats, got dtype {a.dtype}; convert it first, "
                    "e.g. arr.astype(np.int16) or arr.astype(np.float32)")


def _as_3d(a: Any, xp: Any) -> Any:
    """``a`` (an ``xp`` array) viewed as ``(slices, rows, columns)``: 2-D is one slice, more than 3-D stacks the
    leading axes."""
    if a.ndim == 3:
        return xp.ascontiguousarray(a)
    if a.ndim == 2:
        shape = (1,) + a.shape
    elif a.ndim < 2:
        shape = (1, 1, a.size)
    else:
        shape = (int(np.prod(a.shape[:-2])),) + a.shape[-2:]
    return xp.ascontiguousarray(a).reshape(shape)


def _number(v: Any, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(f"{name} must be a number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise WindowParameterError(f"{name} must be finite, got {v!r}")
    return f


def _per_slice(v: Any, nz: int, name: str) -> np.ndarray:
    try:
        if np.iscomplexobj(v):
            raise TypeError("complex")
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise WindowParameterError(f"{name} must be one real number or one per slice, got {v!r}") from None
    if arr.ndim == 0:
        arr = np.full(nz, float(arr))
    if arr.shape != (nz,):
        raise WindowParameterError(f"{name} must be one number or one per slice ({nz}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise WindowParameterError(f"{name} must be finite, got {arr[~np.isfinite(arr)][:3]} among its values")
    return np.ascontiguousarray(arr)


def _function_code(function: str) -> int:
    if not isinstance(function, str):
        raise ParameterTypeError(f"function must be a string such as 'LINEAR', got {function!r}")
    key = "_".join(function.strip().upper().replace("-", " ").split())
    if key not in FUNCTION_CODES:
        raise WindowParameterError(f"unknown VOI LUT function {function!r}; known: {', '.join(FUNCTION_CODES)}")
    return FUNCTION_CODES[key]


def _int_dtype_for(lo: int, hi: int):
    for dt in (np.uint8, np.uint16, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return None


def window_dtype(out_range=(0, 255)) -> np.dtype:
    """The dtype :func:`window` returns for ``out_range``.

    Two Python or numpy integers: the smallest of uint8, uint16, int16, int32
    that holds them (values rounded); anything else (floats, or integers
    beyond int32): float32, unrounded.

    Examples
    --------
    >>> window_dtype((0, 255)), window_dtype((0, 4095)), window_dtype((-1024, 3071)), window_dtype((0.0, 1.0))
    (dtype('uint8'), dtype('uint16'), dtype('int16'), dtype('float32'))
    """
    lo, hi = _out_range(out_range)
    if all(isinstance(v, (int, np.integer)) for v in out_range):
        dt = _int_dtype_for(int(lo), int(hi))
        if dt is not None:
            return dt
    return np.dtype(np.float32)


def _out_range(out_range) -> tuple[float, float]:
    try:
        lo, hi = out_range
    except (TypeError, ValueError):
        raise ParameterTypeError(f"out_range must be (low, high), got {out_range!r}") from None
    lo = _number(lo, "out_range[0]")
    hi = _number(hi, "out_range[1]")
    f32 = float(np.finfo(np.float32).max)
    if not (-f32 <= lo <= f32 and -f32 <= hi <= f32):
        raise WindowParameterError(f"out_range must lie within the float32 range (+-{f32:.3g}), got {out_range!r}")
    if not lo < hi:
        raise WindowParameterError(f"out_range must have low < high, got {out_range!r} "
                                   "(for a reversed grey scale pass invert=True)")
    return lo, hi


def rescaled_dtype(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, backend=None) -> np.dtype:
    """int16 when every ``data * slope + intercept`` (per slice) is exactly an int16, else float32.

    Decided from the stored dtype's range when that suffices, else from the
    data's minimum and maximum (one pass, on ``backend``).
    """
    if data.dtype.kind not in "iu":
        return np.dtype(np.float32)
    pairs = np.unique(np.stack([np.asarray(slopes, np.float64), np.asarray(intercepts, np.float64)], 1), axis=0)
    if not (np.all(pairs == np.round(pairs)) and np.all(np.abs(pairs) < 2.0 ** 53)):
        return np.dtype(np.float32)
    if data.size == 0:
        return np.dtype(np.int16)

    def fits(dmin: int, dmax: int) -> bool:
        for s, b in pairs:
            s, b = int(s), int(b)
            ends = (dmin * s + b, dmax * s + b)  # Python integers: exact
            if min(ends) < -32768 or max(ends) > 32767:
                return False
        return True

    info = np.iinfo(data.dtype)
    if fits(int(info.min), int(info.max)):
        return np.dtype(np.int16)
    be = backend if backend is not None else get_backend("numpy")
    dmin, dmax = be.minmax_kernel(data)
    return np.dtype(np.int16) if fits(int(dmin), int(dmax)) else np.dtype(np.float32)


def file_window(volume: Any, index: int = 0) -> tuple[float, float] | None:
    """``(center, width)`` number ``index`` of the :class:`~gpukit.Volume`'s own WindowCenter/WindowWidth, or None
    if it has none."""
    meta = volume.meta
    wc, ww = meta.get("window_center"), meta.get("window_width")
    wc = [] if wc is None else (list(wc) if isinstance(wc, (list, tuple, np.ndarray)) else [wc])
    ww = [] if ww is None else (list(ww) if isinstance(ww, (list, tuple, np.ndarray)) else [ww])
    n = min(len(wc), len(ww))
    if n == 0:
        return None
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < n:
        raise WindowParameterError(f"window index {index!r} is out of range: the file gives {n} window(s) "
                                   f"(centers {wc}, widths {ww})")
    try:
        return _number(float(wc[index]), "the file's WindowCenter"), _number(float(ww[index]), "the file's WindowWidth")
    except (TypeError, ValueError):
        raise WindowParameterError(f"the file's window number {index} is not a pair of numbers: center "
                                   f"{wc[index]!r}, width {ww[index]!r}") from None


# -- public operations -------------------------------------------------------------------------------------------
def rescale(x: Any, slope: Any = None, intercept: Any = None, *, backend: str | None = None) -> np.ndarray:
    """``stored * slope + intercept``, per slice, in float64; int16 when every value is exact, else float32.

    Parameters
    ----------
    x : Volume or array
        A :class:`~gpukit.Volume` (its ``data`` with ``meta["rescale_slope"]``
        / ``["rescale_intercept"]``, one per slice), or an array of stored
        values, shape ``(slices, rows, columns)`` (any other shape is treated
        as a stack of 2-D slices along its leading axes).
    slope, intercept : number or array of one per slice, optional
        For an array: default 1 and 0. For a Volume: override its own.
    backend : str, optional
        ``"numpy"``, ``"numba"``, ... (see :mod:`gpukit.backends`).

    Returns
    -------
    ndarray, same shape as the data
        int16 when the slopes and intercepts are integers and the rescaled
        range fits int16 (judged from the stored dtype's range, or from the
        data's own min/max), else float32 (the float64 result rounded to
        nearest).

    Examples
    --------
    >>> import numpy as np
    >>> rescale(np.array([[[0, 1000, 4095]]], np.uint16), 1, -1024, backend="numpy")
    array([[[-1024,   -24,  3071]]], dtype=int16)
    >>> rescale(np.array([[[0, 1, 2]]], np.int16), 0.5, 0, backend="numpy")
    array([[[0. , 0.5, 1. ]]], dtype=float32)
    """
    if _is_volume(x):
        be = get_backend(backend, x)
        raw = _host_array(x.data, "the volume's data", be)
        slopes = x.slopes if slope is None else slope
        intercepts = x.intercepts if intercept is None else intercept
    else:
        be = get_backend(backend, None)
        raw = _host_array(x, "x", be)
        slopes = 1.0 if slope is None else slope
        intercepts = 0.0 if intercept is None else intercept
    if raw.dtype.kind == "b":
        raise ParameterTypeError("x holds booleans; rescale numbers (e.g. x.astype(np.uint8))")
    raw = _check_values_dtype(raw, "x")
    data = _as_3d(raw, be.xp)
    nz = data.shape[0]
    s = _per_slice(slopes, nz, "slope")
    b = _per_slice(intercepts, nz, "intercept")
    dtype = rescaled_dtype(data, s, b, be)
    out = be.rescale_kernel(data, s, b, dtype)
    return out.reshape(raw.shape)


def window(x: Any, center: float | None = None, width: float | None = None, *, function: str | None = None,
           preset: str | None = None, out_range=(0, 255), backend: str | None = None, invert: bool | None = None,
           index: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Map values through a DICOM VOI LUT window to display values (uint8 by default).

    Parameters
    ----------
    x : Volume or array
        A :class:`~gpukit.Volume`: its stored values are rescaled (per slice)
        and windowed in one pass, straight to the output. Or an array of
        rescaled values (HU for CT), any integer or float dtype, any shape.
    center, width : float, optional
        The window (DICOM WindowCenter / WindowWidth). Give both, or neither.
    function : {"LINEAR", "LINEAR_EXACT", "SIGMOID"}, optional
        The VOI LUT function (PS3.3 C.11.2.1.2). Default: the file's own
        VOILUTFunction when the file's window is used, else "LINEAR".
        LINEAR needs ``width >= 1``; the others ``width > 0``.
    preset : str, optional
        A named window (:mod:`gpukit.presets`: "lung", "mediastinum",
        "soft tissue", "bone", "brain", "subdural", "stroke", "liver", ...),
        instead of ``center``/``width``.
    out_range : (low, high)
        Output values for the bottom and top of the window. Two integers: the
        output is the smallest of uint8, uint16, int16, int32 holding them,
        rounded half away from zero; floats (e.g. ``(0.0, 1.0)``): float32,
        unrounded.
    backend : str, optional
        Per-call backend (see :mod:`gpukit.backends`).
    invert : bool, optional
        Reverse the grey scale (``low + high - value``, after rounding).
        Default: True for a Volume whose PhotometricInterpretation is
        MONOCHROME1 (where the smallest value is white), else False.
    index : int
        Which of a multi-valued WindowCenter/WindowWidth to use (default the first).
    out : ndarray, optional
        Where to write the result (the shape of ``x``, C-contiguous, the dtype
        :func:`window_dtype` gives for ``out_range``): reusing one buffer
        spares the allocation and page faults of a new output per call.

    Returns
    -------
    ndarray, the shape of ``x`` (a Volume: ``(nz, ny, nx)``); ``out`` when given

    Raises
    ------
    NoWindowError
        No center/width or preset given, and ``x`` carries no window of its own.
    UnknownPresetError
        An unknown preset name (the message lists the known ones).
    WindowParameterError
        A width the function does not allow, a bad ``out_range`` or ``index``.

    Notes
    -----
    The window used is, in this order: ``center``/``width``; ``preset``; the
    file's own (``meta["window_center"]``/``["window_width"]``, entry ``index``).

    Examples
    --------
    >>> import numpy as np
    >>> hu = np.array([-1000, -601, -600, -599, 200], np.int16)
    >>> window(hu, -600, 1500, backend="numpy")           # the lung window, W 1500 L -600
    array([ 60, 127, 128, 128, 255], dtype=uint8)
    >>> window(hu, preset="lung", backend="numpy").tolist() == window(hu, -600, 1500, backend="numpy").tolist()
    True
    >>> window(np.array([39.0, 40.0, 41.0]), 40, 1, backend="numpy")   # LINEAR, width 1: a threshold at c - 0.5
    array([  0, 255, 255], dtype=uint8)
    """
    vol = x if _is_volume(x) else None
    if (center is None) != (width is None):
        raise WindowParameterError("give both center and width (or neither, to use a preset or the file's window)")
    if center is not None and preset is not None:
        raise WindowParameterError("give either center/width or a preset, not both")
    file_function = None
    if center is not None:
        c = _number(center, "center")
        w = _number(width, "width")
    elif preset is not None:
        c, w = get_preset(preset)
    else:
        fw = file_window(vol, index) if vol is not None else None
        if fw is None:
            what = "the volume has no WindowCenter/WindowWidth" if vol is not None else \
                "an array carries no window of its own"
            raise NoWindowError(f"no window to apply: {what}; pass center= and width=, or preset= "
                                f"(e.g. preset='soft_tissue')")
        c, w = fw
        file_function = vol.meta.get("voi_lut_function")
    if function is None:
        function = file_function or "LINEAR"
    code = _function_code(function)
    if code == FUNCTION_CODES["LINEAR"] and not w >= 1.0:
        raise WindowParameterError(f"window width must be >= 1 for LINEAR (PS3.3 C.11.2.1.2.1), got {w:g}")
    if not w > 0.0:
        raise WindowParameterError(f"window width must be > 0 for {function}, got {w:g}")
    lo, hi = _out_range(out_range)
    dtype = window_dtype(out_range)
    if invert is None:
        invert = bool(vol is not None and str(vol.meta.get("photometric_interpretation") or "").upper()
                      == "MONOCHROME1")
    if vol is not None:
        be = get_backend(backend, vol)
        raw = _host_array(vol.data, "the volume's data", be)
        slopes, intercepts = vol.slopes, vol.intercepts
    else:
        be = get_backend(backend, None)
        raw = _host_array(x, "x", be)
        slopes = intercepts = None
    if raw.dtype.kind == "b":
        raise ParameterTypeError("x holds booleans; window numbers (e.g. x.astype(np.uint8))")
    raw = _check_values_dtype(raw, "x")
    data = _as_3d(raw, be.xp)
    nz = data.shape[0]
    s = np.ones(nz) if slopes is None else _per_slice(slopes, nz, "rescale_slope")
    b = np.zeros(nz) if intercepts is None else _per_slice(intercepts, nz, "rescale_intercept")
    xp = be.xp
    if out is None:
        result = xp.empty(raw.shape, dtype=dtype)
    else:
        result = out
        if not isinstance(out, xp.ndarray) or out.shape != raw.shape or out.dtype != dtype \
                or not out.flags.c_contiguous or not getattr(out.flags, "writeable", True):
            raise WindowParameterError(
                f"out must be a writeable C-contiguous {dtype} array of shape {raw.shape}, got "
                f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    be.window_kernel(data, s, b, c, w, code, lo, hi, bool(invert), result.reshape(data.shape))
    return result


__all__ = ["rescale", "window", "window_dtype", "rescaled_dtype", "file_window", "NoWindowError",
           "WindowParameterError"]
