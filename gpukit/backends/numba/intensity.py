"""Intensity kernels for the Numba CPU backend: ``@njit(parallel=True)``, one ``prange`` over slices x rows.

Every value comes from the scalar helpers of :mod:`gpukit.backends._math`, the
same float64 expressions as the numpy reference, so LINEAR and LINEAR_EXACT
results equal :mod:`gpukit.backends.numpy.intensity` exactly (SIGMOID: within one
unit, through ``exp``). Memory: the output, plus for 8/16-bit input one table
of 256 or 65536 entries per distinct slope/intercept pair (taken only when
the tables hold at most a quarter as many entries as the output).

Window, three ways to the same numbers (``STRATEGY`` forces one in tests):

* direct: each stored value is rescaled and windowed with the scalar helpers;
* table: 8- and 16-bit stored values take few distinct values, so the helpers
  are evaluated once per possible stored value and per distinct (slope,
  intercept) pair (at most 65536 values each), and each voxel is a look-up;
* fast: for LINEAR / LINEAR_EXACT to a non-negative integer range, the window
  of a slice is ``clamp(x * A + B)`` truncated, one multiply-add per voxel in
  float32 that vectorises (16 lanes with AVX-512), with ``A``/``B`` computed
  once per slice rescale. It is used for a rescale only after it has been
  checked against that rescale's exact table on every possible stored value,
  so it is exact by construction; where the check fails (ties that float32
  cannot reproduce) that rescale's slices use the table.

Rescale: ``stored * slope + intercept`` in float64 cast to the output dtype,
or, when the output is int16 (every result exactly representable) and slope
and intercept are integers, the same numbers in integer arithmetic.

Numba is imported when this module is imported, which happens only when the
``numba`` backend is first looked up (never by ``import gpukit``). Kernels are
compiled on first use and cached on disk (``cache=True``), ``fastmath`` off.
"""

from __future__ import annotations

import numpy as np

from .._jit import njit, prange

from .._math import rescale_value, window_value
from ..codes import SIGMOID
from ..numpy.intensity import slice_groups, use_tables, voi_params, window_values

#: "auto", "direct", "table" (look-ups only) or "fast" (tables and the checked fast path, whatever the size).
STRATEGY = "auto"

_PJ = dict(parallel=True, cache=True, fastmath=False, nogil=True)
_J = dict(cache=True, fastmath=False, nogil=True)


# -- window kernels --------------------------------------------------------------------------------------------
@njit(inline="always", **_J)
def _window_row(src, s, b, fcode, cc, ww, lower, upper, lo, hi, rounded, invert, dst):
    """``dst[i] = window(src[i] * s + b)``: one loop per flag combination, so the flags fold away inside each."""
    n = src.shape[0]
    if rounded and invert:
        for i in range(n):
            dst[i] = window_value(rescale_value(float(src[i]), s, b), fcode, cc, ww, lower, upper, lo, hi,
                                  True, True)
    elif rounded:
        for i in range(n):
            dst[i] = window_value(rescale_value(float(src[i]), s, b), fcode, cc, ww, lower, upper, lo, hi,
                                  True, False)
    elif invert:
        for i in range(n):
            dst[i] = window_value(rescale_value(float(src[i]), s, b), fcode, cc, ww, lower, upper, lo, hi,
                                  False, True)
    else:
        for i in range(n):
            dst[i] = window_value(rescale_value(float(src[i]), s, b), fcode, cc, ww, lower, upper, lo, hi,
                                  False, False)


@njit(**_PJ)
def _window_direct(data, slopes, intercepts, fcode, cc, ww, lower, upper, lo, hi, rounded, invert, out):
    nz, ny, nx = data.shape
    for r in prange(nz * ny):
        k = r // ny
        j = r - k * ny
        _window_row(data[k, j], slopes[k], intercepts[k], fcode, cc, ww, lower, upper, lo, hi, rounded, invert,
                    out[k, j])


_TABLE_CHUNK = 4096


@njit(**_PJ)
def _window_tables(domain, gs, gb, fcode, cc, ww, lower, upper, lo, hi, rounded, invert, tables):
    """``tables[g, t]`` = the window of stored value ``domain[t]`` under rescale ``g`` (same row loop as direct)."""
    ng, n = tables.shape
    nch = (n + _TABLE_CHUNK - 1) // _TABLE_CHUNK
    for c in prange(ng * nch):
        g = c // nch
        t0 = (c - g * nch) * _TABLE_CHUNK
        t1 = min(t0 + _TABLE_CHUNK, n)
        _window_row(domain[t0:t1], gs[g], gb[g], fcode, cc, ww, lower, upper, lo, hi, rounded, invert,
                    tables[g, t0:t1])


@njit(inline="always", **_J)
def _fast_row(src, a, b, lo32, hi32, lohi, invert, dst):
    """``dst[i] = trunc(clamp(float32(src[i]) * a + b, lo, hi))`` (a floor: ``lo >= 0``), mirrored when ``invert``.

    ``b`` holds the rounding's +0.5. Float32 multiply then add, never fused (``fastmath`` off).
    """
    n = src.shape[0]
    if invert:
        for i in range(n):
            t = np.float32(src[i]) * a + b
            t = min(max(t, lo32), hi32)
            dst[i] = lohi - np.int32(t)
    else:
        for i in range(n):
            t = np.float32(src[i]) * a + b
            t = min(max(t, lo32), hi32)
            dst[i] = np.int32(t)


@njit(**_PJ)
def _fast_check(domain, tables, fa, fb, lo32, hi32, lohi, invert, ok):
    """``ok[g, c]``: the fast path gives ``tables[g]`` exactly on chunk ``c`` of the stored values ``domain``."""
    ng, n = tables.shape
    nch = ok.shape[1]
    for c in prange(ng * nch):
        g = c // nch
        t0 = (c - g * nch) * _TABLE_CHUNK
        t1 = min(t0 + _TABLE_CHUNK, n)
        buf = np.empty(t1 - t0, np.int32)
        _fast_row(domain[t0:t1], fa[g], fb[g], lo32, hi32, lohi, invert, buf)
        same = True
        for t in range(t1 - t0):
            if buf[t] != tables[g, t0 + t]:
                same = False
        ok[g, c - g * nch] = same


@njit(**_PJ)
def _window_lookup(data, keys, group, tables, fast, fa, fb, lo32, hi32, lohi, invert, out):
    """``keys`` is ``data`` viewed as unsigned (the bit pattern indexes ``tables``), ``data`` feeds the fast path."""
    nz, ny, nx = data.shape
    for r in prange(nz * ny):
        k = r // ny
        j = r - k * ny
        g = group[k]
        if fast[g]:
            _fast_row(data[k, j], fa[g], fb[g], lo32, hi32, lohi, invert, out[k, j])
        else:
            key = keys[k, j]
            tab = tables[g]
            dst = out[k, j]
            for i in range(nx):
                dst[i] = tab[key[i]]


@njit(**_PJ)
def _window_fast(data, group, fa, fb, lo32, hi32, lohi, invert, out):
    """Every slice on the checked fast path (no tables): one float32 multiply-add per voxel, a slice per item."""
    nz, ny, nx = data.shape
    for k in prange(nz):
        g = group[k]
        _fast_row(data[k].reshape(ny * nx), fa[g], fb[g], lo32, hi32, lohi, invert, out[k].reshape(ny * nx))


#: at most this many (rescale, stored value) pairs are checked on the host for the fast path (else the tables)
FAST_CHECK_ENTRIES = 1 << 22


def _fast_exact(dtype, gs, gb, params, fcode, fa, fb, lo, hi, lo32, hi32, lohi, invert):
    """Per rescale: whether the fast path equals the exact window (numpy reference maths) on every stored value of
    ``dtype``, or None when the check would exceed :data:`FAST_CHECK_ENTRIES` (then the tables check it).

    Both are monotone functions of the stored value ``x`` (float32 ``x * a + b``, a clamp and a truncation; the
    float64 rescale, the window, the rounding, the clamp), so they are compared only on the stored values whose
    rescaled value lies within two values of the window's linear part, plus the two ends of the stored range:
    when both are equal at an end and at the nearest compared value, each is constant in between.
    """
    info = np.iinfo(dtype)
    dmin, dmax = int(info.min), int(info.max)
    _, _, lower, upper = params
    xs = []
    for s, b in zip(gs, gb):
        r0, r1 = dmin, dmax
        if s != 0.0:
            with np.errstate(all="ignore"):
                e = sorted(((lower - b) / s, (upper - b) / s))
            if np.isfinite(e[0]) and np.isfinite(e[1]):
                r0 = int(min(max(np.floor(e[0]) - 2, dmin), dmax))
                r1 = int(min(max(np.ceil(e[1]) + 2, dmin), dmax))
        else:
            r1 = dmin
        xs.append((r0, r1))
    width = max(r1 - r0 for r0, r1 in xs) + 3
    if width * len(gs) > FAST_CHECK_ENTRIES:
        return None
    x = np.empty((len(gs), width), np.int64)
    for g, (r0, r1) in enumerate(xs):
        row = x[g]
        row[0] = dmin
        row[1] = dmax
        row[2:2 + r1 - r0 + 1] = np.arange(r0, r1 + 1)
        row[2 + r1 - r0 + 1:] = r1
    h = x.astype(np.float64) * gs[:, None] + gb[:, None]
    exact = window_values(h, fcode, params, lo, hi, True, invert, may_be_nan=False)
    t = x.astype(np.float32) * fa[:, None] + fb[:, None]
    np.clip(t, lo32, hi32, out=t)
    fast = t.astype(np.int32)
    if invert:
        fast = lohi - fast
    same = np.all(exact == fast, axis=1)
    # the ends: equal at dmin and at the first compared value (r0), and at r1 and dmax
    for g, (r0, r1) in enumerate(xs):
        e = exact[g]
        if not (e[0] == e[2] and e[1] == e[2 + r1 - r0]):
            same[g] = False
    return same


_DOMAINS: dict = {}


def _domain(dtype) -> np.ndarray:
    """Every value of an 8/16-bit integer ``dtype``, as int32, in the order of its unsigned bit pattern.

    Entry ``u`` is the value stored as ``u`` (for int16: 0 .. 32767, then -32768 .. -1), so a table built
    over this domain is indexed by ``data.view(uint)`` directly. Kept per dtype (at most 256 KiB).
    """
    dt = np.dtype(dtype)
    d = _DOMAINS.get(dt)
    if d is None:
        udt = np.dtype(f"u{dt.itemsize}")
        d = _DOMAINS[dt] = np.arange(np.iinfo(udt).max + 1, dtype=np.int64).astype(udt).view(dt).astype(np.int32)
        d.flags.writeable = False
    return d


def _fast_params(gs, gb, params, lo, hi):
    """Per rescale: float32 ``A``, ``B`` with ``A x + B`` the window before rounding, plus 0.5; and which are finite."""
    cc, ww, _, _ = params
    rng = hi - lo
    with np.errstate(all="ignore"):
        a = gs * rng / ww
        b = ((gb - cc) / ww + 0.5) * rng + lo + 0.5
    fa = a.astype(np.float32)
    fb = b.astype(np.float32)
    ok = np.isfinite(fa) & np.isfinite(fb)
    return np.where(ok, fa, 0).astype(np.float32), np.where(ok, fb, 0).astype(np.float32), ok


def window_kernel(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, center: float, width: float,
                  function_code: int, lo: float, hi: float, invert: bool, out: np.ndarray) -> np.ndarray:
    """Rescale (per slice) and window ``data`` ``(nz, ny, nx)`` into ``out``; see the module docstring."""
    if data.size == 0:
        return out
    lo = float(lo)
    hi = float(hi)
    invert = bool(invert)
    params = voi_params(center, width, function_code)
    cc, ww, lower, upper = params
    rounded = out.dtype.kind in "iu"
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    gs, gb, group = slice_groups(slopes, intercepts)
    strategy = STRATEGY
    fast_ok = None
    lo32, hi32 = np.float32(max(lo, 0.0)), np.float32(hi)
    lohi = np.int32(lo + hi) if rounded and abs(lo + hi) < 2 ** 31 else np.int32(0)
    fa = np.zeros(len(gs), np.float32)
    fb = np.zeros(len(gs), np.float32)
    if (strategy in ("auto", "fast") and rounded and function_code != SIGMOID and lo >= 0.0 and hi <= 65535.0
            and data.dtype.kind in "iu" and data.dtype.itemsize <= 2):
        fa, fb, finite = _fast_params(gs, gb, params, lo, hi)
        fast_ok = _fast_exact(data.dtype, gs, gb, params, function_code, fa, fb, lo, hi, lo32, hi32, lohi, invert)
        if fast_ok is not None:
            fast_ok &= finite
            if fast_ok.all() and data.flags.c_contiguous and out.flags.c_contiguous:   # the usual case: one pass
                _window_fast(data, group.astype(np.intp), fa, fb, lo32, hi32, lohi, invert, out)
                return out
    tabled = use_tables(data, len(gs), {"direct": "direct", "table": "table", "fast": "table"}.get(strategy, "auto"),
                        entries_per_voxel=0.25)
    if not tabled:
        _window_direct(data, slopes, intercepts, function_code, cc, ww, lower, upper, lo, hi, rounded, invert, out)
        return out
    domain = _domain(data.dtype)
    n = domain.shape[0]
    tables = np.empty((len(gs), n), dtype=out.dtype)
    _window_tables(domain, gs, gb, function_code, cc, ww, lower, upper, lo, hi, rounded, invert, tables)
    fast = np.zeros(len(gs), np.bool_)
    if fast_ok is not None:
        fast = fast_ok
    elif (strategy != "table" and rounded and function_code != SIGMOID and lo >= 0.0 and hi <= 65535.0):
        fa, fb, finite = _fast_params(gs, gb, params, lo, hi)
        ok = np.empty((len(gs), (n + _TABLE_CHUNK - 1) // _TABLE_CHUNK), np.bool_)
        _fast_check(domain, tables, fa, fb, lo32, hi32, lohi, invert, ok)
        fast = finite & ok.all(axis=1)
    keys = data.view(np.dtype(f"u{data.dtype.itemsize}"))  # the bit pattern indexes the tables
    _window_lookup(data, keys, group, tables, fast, fa, fb, lo32, hi32, lohi, invert, out)
    return out


# -- rescale -------------------------------------------------------------------------------------------------------
@njit(**_PJ)
def _rescale_float(data, slopes, intercepts, out):
    nz, ny, nx = data.shape
    for r in prange(nz * ny):
        k = r // ny
        j = r - k * ny
        s = slopes[k]
        b = intercepts[k]
        src = data[k, j]
        dst = out[k, j]
        for i in range(nx):
            dst[i] = rescale_value(float(src[i]), s, b)


@njit(**_PJ)
def _rescale_int(data, slopes, intercepts, out):
    nz, ny, nx = data.shape
    for r in prange(nz * ny):
        k = r // ny
        j = r - k * ny
        s = slopes[k]
        b = intercepts[k]
        src = data[k, j]
        dst = out[k, j]
        for i in range(nx):
            dst[i] = np.int32(src[i]) * s + b


def rescale_kernel(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, out_dtype,
                   out: np.ndarray | None = None) -> np.ndarray:
    """``data * slope + intercept`` per slice, stored as ``out_dtype`` (the ops layer decides it)."""
    if out is None:
        out = np.empty(data.shape, dtype=out_dtype)
    if data.size == 0:
        return out
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    integral = (out.dtype == np.int16 and data.dtype.kind in "iu" and data.dtype.itemsize <= 2
                and np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts))
                and np.all(np.abs(slopes) < 2 ** 15) and np.all(np.abs(intercepts) < 2 ** 30))
    if integral:
        # exact: int16 output means every x * s + b fits; the products are formed in 64-bit integers
        _rescale_int(data, slopes.astype(np.int32), intercepts.astype(np.int32), out)
    else:
        _rescale_float(data, slopes, intercepts, out)
    return out


@njit(**_PJ)
def _row_minmax(data, mins, maxs):
    nz, ny, nx = data.shape
    for r in prange(nz * ny):
        k = r // ny
        j = r - k * ny
        src = data[k, j]
        lo = src[0]
        hi = src[0]
        for i in range(1, nx):
            v = src[i]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        mins[r] = lo
        maxs[r] = hi


def minmax_kernel(data: np.ndarray) -> tuple:
    """``(min, max)`` of ``data`` (Python numbers), ``(0, 0)`` when empty; one parallel pass for integers."""
    if data.size == 0:
        return 0, 0
    if data.dtype.kind not in "iu":
        return data.min().item(), data.max().item()
    nz, ny, _ = data.shape
    mins = np.empty(nz * ny, data.dtype)
    maxs = np.empty(nz * ny, data.dtype)
    _row_minmax(data, mins, maxs)
    return mins.min().item(), maxs.max().item()


__all__ = ["rescale_kernel", "window_kernel", "minmax_kernel"]
