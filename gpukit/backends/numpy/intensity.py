"""Intensity kernels in vectorised numpy: the reference every other backend is checked against.

Each value goes through the float64 expressions of :mod:`gpukit.backends._math`
(read its docstring for the formulas, the rounding rule and the order of
operations), evaluated element-wise in the same order, so a compiled backend
that calls those scalar helpers agrees bit for bit.

Memory: the volume is processed in chunks of whole slices (one slice, or as
many small slices as make ``CHUNK_ELEMENTS`` values), so besides the output
there is one chunk-sized float64 buffer and a few chunk-sized boolean masks.

Two ways to the same numbers:

* direct: every stored value is rescaled and windowed in float64;
* table: for 8- and 16-bit integer input the result depends only on the
  stored value and the slice's (slope, intercept), so the same element-wise
  expressions are evaluated once per possible stored value (one table per
  distinct slope/intercept pair) and every voxel is a table look-up. Chosen
  when the tables are smaller than half the volume (``STRATEGY`` overrides).
"""

from __future__ import annotations

import numpy as np

from ..codes import FUNCTION_CODES, LINEAR, LINEAR_EXACT, SIGMOID  # noqa: F401  (shared by every backend)

#: Largest chunk (values) processed at once; at least one slice.
CHUNK_ELEMENTS = 1 << 18
#: "auto", "direct" or "table" (tests force each one).
STRATEGY = "auto"


# -- shared host-side helpers (also used by the Numba backend) ------------------------------------------------
def voi_params(center: float, width: float, function_code: int) -> tuple[float, float, float, float]:
    """``(c', w', lower, upper)`` of a window: the centre and width the formula uses and its two thresholds
    (every backend takes them from here, computed once per call on the host)."""
    center = float(center)
    width = float(width)
    if function_code == LINEAR:
        cc = center - 0.5
        ww = width - 1.0
    else:
        cc = center
        ww = width
    half = ww / 2.0
    return cc, ww, cc - half, cc + half


def stored_domain(dtype) -> tuple[int, int] | None:
    """``(first value, count)`` of every value an 8- or 16-bit integer dtype can hold, else None."""
    dt = np.dtype(dtype)
    if dt.kind in "iu" and dt.itemsize <= 2:
        info = np.iinfo(dt)
        return int(info.min), int(info.max) - int(info.min) + 1
    return None


def slice_groups(slopes: np.ndarray, intercepts: np.ndarray):
    """Distinct ``(slope, intercept)`` pairs and, per slice, the index of its pair.

    Returns ``(group_slopes, group_intercepts, group_of_slice)`` (float64, float64, intp).
    """
    pairs = np.stack([np.asarray(slopes, np.float64), np.asarray(intercepts, np.float64)], axis=1)
    if len(pairs) == 0:
        return np.ones(1), np.zeros(1), np.zeros(0, np.intp)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return (np.ascontiguousarray(uniq[:, 0]), np.ascontiguousarray(uniq[:, 1]),
            np.ascontiguousarray(inverse.reshape(-1).astype(np.intp)))


def use_tables(data: np.ndarray, n_groups: int, strategy: str = "auto", entries_per_voxel: float = 0.5) -> bool:
    """Whether the table way is taken for ``data`` with ``n_groups`` distinct rescales.

    "auto": when the tables hold at most ``entries_per_voxel`` entries per voxel of ``data``.
    """
    dom = stored_domain(data.dtype)
    if dom is None or strategy == "direct":
        return False
    if strategy == "table":
        return True
    return n_groups * dom[1] <= entries_per_voxel * data.size


def _chunk_slices(shape) -> int:
    per = int(np.prod(shape[1:])) or 1
    return max(1, CHUNK_ELEMENTS // per)


# -- the element-wise window -------------------------------------------------------------------------------------
def window_values(h: np.ndarray, function_code: int, params, lo: float, hi: float, rounded: bool, invert: bool,
                  may_be_nan: bool = True) -> np.ndarray:
    """Window the float64 values ``h`` in place (``_math.window_value`` element-wise) and return ``h``."""
    cc, ww, lower, upper = params
    lo = float(lo)
    hi = float(hi)
    with np.errstate(all="ignore"):  # w' = 0 (LINEAR, width 1) divides only values the thresholds replace
        if function_code == SIGMOID:
            nan = np.isnan(h) if may_be_nan else None
            h -= cc
            h *= -4.0
            h /= ww
            np.exp(h, out=h)
            h += 1.0
            np.divide(hi - lo, h, out=h)
            h += lo
            if nan is not None:
                h[nan] = lo
        else:
            below = ~(h > lower)  # NaN counts as below
            above = h > upper
            h -= cc
            h /= ww
            h += 0.5
            h *= hi - lo
            h += lo
            h[below] = lo
            h[above] = hi
        np.clip(h, lo, hi, out=h)
        if rounded:
            if lo >= 0.0:
                h += 0.5
                np.floor(h, out=h)
            else:
                neg = h < 0.0
                np.abs(h, out=h)
                h += 0.5
                np.floor(h, out=h)
                np.negative(h, out=h, where=neg)
        if invert:
            np.subtract(lo + hi, h, out=h)
    return h


def window_tables(xmin: int, n: int, group_slopes, group_intercepts, function_code: int, center: float,
                  width: float, lo: float, hi: float, invert: bool, dtype) -> np.ndarray:
    """``(n_groups, n)`` table: the window of stored values ``xmin .. xmin + n - 1`` under each rescale."""
    params = voi_params(center, width, function_code)
    rounded = np.dtype(dtype).kind in "iu"
    stored = np.arange(xmin, xmin + n, dtype=np.float64)
    tables = np.empty((len(group_slopes), n), dtype=dtype)
    h = np.empty(n, np.float64)
    for g, (s, b) in enumerate(zip(group_slopes, group_intercepts)):
        np.multiply(stored, float(s), out=h)
        h += float(b)
        tables[g] = window_values(h, function_code, params, lo, hi, rounded, invert, may_be_nan=False)
    return tables


def window_kernel(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, center: float, width: float,
                  function_code: int, lo: float, hi: float, invert: bool, out: np.ndarray) -> np.ndarray:
    """Rescale (per slice) and window ``data`` ``(nz, ny, nx)`` into ``out`` (same shape, its dtype decides).

    ``out`` of an integer dtype gets rounded values; of a float dtype, unrounded ones.
    """
    nz = data.shape[0]
    if data.size == 0:
        return out
    slopes = np.asarray(slopes, np.float64)
    intercepts = np.asarray(intercepts, np.float64)
    gs, gb, group = slice_groups(slopes, intercepts)
    step = _chunk_slices(data.shape)
    if use_tables(data, len(gs), STRATEGY):
        xmin, n = stored_domain(data.dtype)
        tables = window_tables(xmin, n, gs, gb, function_code, center, width, lo, hi, invert, out.dtype)
        idx = np.empty((min(step, nz),) + data.shape[1:], np.intp)
        k0 = 0
        while k0 < nz:  # runs of slices with the same rescale, at most one chunk long
            k1 = k0 + 1
            while k1 < nz and k1 - k0 < step and group[k1] == group[k0]:
                k1 += 1
            ix = idx[:k1 - k0]
            ix[...] = data[k0:k1]
            ix -= xmin
            np.take(tables[group[k0]], ix, out=out[k0:k1], mode="clip")  # indices are in range by construction
            k0 = k1
        return out
    params = voi_params(center, width, function_code)
    rounded = out.dtype.kind in "iu"
    may_be_nan = data.dtype.kind == "f"
    buf = np.empty((min(step, nz),) + data.shape[1:], np.float64)
    for k0 in range(0, nz, step):
        k1 = min(nz, k0 + step)
        h = buf[:k1 - k0]
        np.multiply(data[k0:k1], slopes[k0:k1, None, None], out=h)
        h += intercepts[k0:k1, None, None]
        out[k0:k1] = window_values(h, function_code, params, lo, hi, rounded, invert, may_be_nan)
    return out


# -- rescale -------------------------------------------------------------------------------------------------------
def rescale_kernel(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, out_dtype,
                   out: np.ndarray | None = None) -> np.ndarray:
    """``data * slope + intercept`` per slice in float64, stored as ``out_dtype`` (int16 only when exact).

    The float64 values are cast to the output dtype (round to nearest for float32).
    """
    if out is None:
        out = np.empty(data.shape, dtype=out_dtype)
    nz = data.shape[0]
    slopes = np.asarray(slopes, np.float64)
    intercepts = np.asarray(intercepts, np.float64)
    step = _chunk_slices(data.shape)
    buf = np.empty((min(step, nz),) + data.shape[1:], np.float64)
    for k0 in range(0, nz, step):
        k1 = min(nz, k0 + step)
        h = buf[:k1 - k0]
        np.multiply(data[k0:k1], slopes[k0:k1, None, None], out=h)
        h += intercepts[k0:k1, None, None]
        out[k0:k1] = h
    return out


def minmax_kernel(data: np.ndarray) -> tuple:
    """``(min, max)`` of ``data`` (Python numbers), ``(0, 0)`` when empty."""
    if data.size == 0:
        return 0, 0
    return data.min().item(), data.max().item()


__all__ = ["rescale_kernel", "window_kernel", "minmax_kernel"]
