"""Axis-aligned projections (MIP, MinIP, AvgIP along an array axis) for the Numba CPU backend, at the memory floor.

:func:`project_axis` is the contract's operation (the rule is
:func:`gpukit.backends.numpy.sampler.project_axis`'s, whose numbers it
reproduces): max, min or mean of the rescaled values along array ``axis``
over ``lo:hi`` into float32 ``out``. Each kernel reads every byte of the slab
once, in memory order, on all cores, with no temporary the size of the volume
(only a cache-sized accumulator per thread), and reduces in the stored dtype
whenever the mode allows:

* axis 0 (across slices): the output rows are cut into blocks of ``rb`` rows
  (a block's accumulator fits in L2); each thread takes blocks and streams
  the slices through them, ``data[k, j0:j1, :]`` being one contiguous run per
  slice. Max and min reduce the stored values in their own dtype and rescale
  once at the end (``combine_selects``: they commute with a monotone rescale;
  a decreasing one swaps them, ``combine_mirror``), when every slice of the
  slab has the same rescale; the mean sums in an exact integer accumulator
  (or float64 for floats and 64-bit integers, in slice order as numpy). A
  per-slice rescale (the reference rescales each value first) goes through
  :func:`_ax0_hu`, float64 per value, the same expression as the reference.
* axis 1 (across rows): one slice per work item (split in column blocks when
  there are fewer slices than threads), rows streamed in order; every output
  row lies in one slice, so the stored values are always reduced and rescaled
  once with that slice's rescale (mirrored under a negative slope, as the
  reference does).
* axis 2 (across columns): one contiguous row per output value, reduced in
  the stored dtype.

The combine rule (NaN taken as ``np.maximum``/``np.minimum`` do, the mean's
division) is :mod:`gpukit.backends._sampler_math`'s ``combine_*``; the final
``float64(raw) * slope + intercept`` (or ``float64(sum) / n * slope +
intercept``) is the reference's expression, so results are equal bit for bit
(float input's mean along axis 2 aside: numpy sums a contiguous axis
pairwise, here in order, a last-bit difference at most before the float32
rounding). Kernels take the mode and flags as run-time arguments (one
specialisation per dtype, not per mode) and are cached on disk.
"""

from __future__ import annotations

import numpy as np

from .._jit import njit, prange
from .._sampler_math import combine_finish, combine_mirror, combine_selects, combine_step
from ..codes import MODES

_PJ = dict(parallel=True, cache=True, fastmath=False, nogil=True)
_J = dict(cache=True, fastmath=False, nogil=True)

MODE_MAX = MODES["max"]
MODE_MIN = MODES["min"]
MODE_MEAN = MODES["mean"]

#: bytes of one thread's axis-0 accumulator block (L2-resident; a block is one contiguous read per slice)
BLOCK_BYTES = 64 << 10


# -- row helpers: integers reduce with plain compares (they vectorise); floats take combine_step's NaN rule --------
# ``_rows*`` combine four source rows into ``acc`` per pass (one load and store of ``acc`` per four rows read, in
# the order of the rows: the same result as four single passes), ``_row*`` one.
@njit(inline="always", **_J)
def _rows_max(acc, r0, r1, r2, r3, isfloat):
    if isfloat:
        for i in range(acc.shape[0]):
            acc[i] = combine_step(combine_step(combine_step(combine_step(acc[i], r0[i], MODE_MAX), r1[i], MODE_MAX),
                                               r2[i], MODE_MAX), r3[i], MODE_MAX)
    else:
        for i in range(acc.shape[0]):
            acc[i] = max(max(max(acc[i], r0[i]), max(r1[i], r2[i])), r3[i])


@njit(inline="always", **_J)
def _rows_min(acc, r0, r1, r2, r3, isfloat):
    if isfloat:
        for i in range(acc.shape[0]):
            acc[i] = combine_step(combine_step(combine_step(combine_step(acc[i], r0[i], MODE_MIN), r1[i], MODE_MIN),
                                               r2[i], MODE_MIN), r3[i], MODE_MIN)
    else:
        for i in range(acc.shape[0]):
            acc[i] = min(min(min(acc[i], r0[i]), min(r1[i], r2[i])), r3[i])


@njit(inline="always", **_J)
def _rows_add(acc, r0, r1, r2, r3):
    for i in range(acc.shape[0]):
        acc[i] = acc[i] + r0[i] + r1[i] + r2[i] + r3[i]


@njit(inline="always", **_J)
def _row_max(acc, src, isfloat):
    if isfloat:
        for i in range(acc.shape[0]):
            acc[i] = combine_step(acc[i], src[i], MODE_MAX)
    else:
        for i in range(acc.shape[0]):
            acc[i] = max(acc[i], src[i])


@njit(inline="always", **_J)
def _row_min(acc, src, isfloat):
    if isfloat:
        for i in range(acc.shape[0]):
            acc[i] = combine_step(acc[i], src[i], MODE_MIN)
    else:
        for i in range(acc.shape[0]):
            acc[i] = min(acc[i], src[i])


@njit(inline="always", **_J)
def _row_add(acc, src):
    for i in range(acc.shape[0]):
        acc[i] += src[i]


@njit(inline="always", **_J)
def _reduce(src, mode, isfloat, acc32, a0):
    """``src`` (a 1-D run, at least one value) combined by ``mode``: max/min in its dtype, the sum from ``a0``."""
    if mode == MODE_MAX:
        e = src[0]
        if isfloat:
            for i in range(1, src.shape[0]):
                e = combine_step(e, src[i], MODE_MAX)
        else:
            for i in range(1, src.shape[0]):
                v = src[i]
                e = max(e, v)
        return np.float64(e)
    if mode == MODE_MIN:
        e = src[0]
        if isfloat:
            for i in range(1, src.shape[0]):
                e = combine_step(e, src[i], MODE_MIN)
        else:
            for i in range(1, src.shape[0]):
                v = src[i]
                e = min(e, v)
        return np.float64(e)
    if acc32:                                    # an int32 sum is exact: keep it 32-bit (16 lanes, not 8)
        b = np.int32(0)
        for i in range(src.shape[0]):
            b = np.int32(b + src[i])
        return np.float64(b)
    a = a0
    for i in range(src.shape[0]):
        a += src[i]
    return np.float64(a)


# -- kernels --------------------------------------------------------------------------------------------------------
@njit(**_PJ)
def _ax0_raw(data, lo, hi, mode, isfloat, rb, s, t, acc_proto, out):
    """Stored values combined over slices lo:hi by ``mode`` (already mirrored for a negative ``s``), in blocks of
    ``rb`` output rows; ``out = finish(raw) * s + t``. Max/min accumulate in the stored dtype, the mean in
    ``acc_proto``'s dtype."""
    nz, ny, nx = data.shape
    n = hi - lo
    nb = (ny + rb - 1) // rb
    for blk in prange(nb):
        j0 = blk * rb
        j1 = min(j0 + rb, ny)
        if combine_selects(mode):
            acc = data[lo, j0:j1].copy()
            k = lo + 1
            while k + 4 <= hi:
                for jj in range(j1 - j0):
                    j = j0 + jj
                    if mode == MODE_MAX:
                        _rows_max(acc[jj], data[k, j], data[k + 1, j], data[k + 2, j], data[k + 3, j], isfloat)
                    else:
                        _rows_min(acc[jj], data[k, j], data[k + 1, j], data[k + 2, j], data[k + 3, j], isfloat)
                k += 4
            for k in range(k, hi):
                for jj in range(j1 - j0):
                    if mode == MODE_MAX:
                        _row_max(acc[jj], data[k, j0 + jj], isfloat)
                    else:
                        _row_min(acc[jj], data[k, j0 + jj], isfloat)
            for jj in range(j1 - j0):
                a = acc[jj]
                dst = out[j0 + jj]
                for i in range(nx):
                    dst[i] = np.float64(a[i]) * s + t
        else:
            sm = np.zeros((j1 - j0, nx), acc_proto.dtype)
            k = lo
            while k + 4 <= hi:
                for jj in range(j1 - j0):
                    j = j0 + jj
                    _rows_add(sm[jj], data[k, j], data[k + 1, j], data[k + 2, j], data[k + 3, j])
                k += 4
            for k in range(k, hi):
                for jj in range(j1 - j0):
                    _row_add(sm[jj], data[k, j0 + jj])
            for jj in range(j1 - j0):
                a = sm[jj]
                dst = out[j0 + jj]
                for i in range(nx):
                    dst[i] = combine_finish(np.float64(a[i]), n, MODE_MEAN, 0.0) * s + t


@njit(**_PJ)
def _ax0_hu(data, slopes, intercepts, lo, hi, mode, rb, out):
    """Rescaled values (``data[k] * slopes[k] + intercepts[k]``, float64) combined over slices lo:hi, in blocks of
    ``rb`` output rows: the reference's order for a per-slice rescale."""
    nz, ny, nx = data.shape
    n = hi - lo
    nb = (ny + rb - 1) // rb
    for blk in prange(nb):
        j0 = blk * rb
        j1 = min(j0 + rb, ny)
        m = j1 - j0
        acc = np.empty((m, nx), np.float64)
        s = slopes[lo]
        t = intercepts[lo]
        for jj in range(m):
            src = data[lo, j0 + jj]
            a = acc[jj]
            for i in range(nx):
                a[i] = np.float64(src[i]) * s + t
        for k in range(lo + 1, hi):
            s = slopes[k]
            t = intercepts[k]
            for jj in range(m):
                src = data[k, j0 + jj]
                a = acc[jj]
                if mode == MODE_MAX:
                    for i in range(nx):
                        a[i] = combine_step(a[i], np.float64(src[i]) * s + t, MODE_MAX)
                elif mode == MODE_MIN:
                    for i in range(nx):
                        a[i] = combine_step(a[i], np.float64(src[i]) * s + t, MODE_MIN)
                else:
                    for i in range(nx):
                        a[i] += np.float64(src[i]) * s + t
        for jj in range(m):
            a = acc[jj]
            dst = out[j0 + jj]
            for i in range(nx):
                dst[i] = combine_finish(a[i], n, mode, 0.0)


@njit(**_PJ)
def _ax1(data, slopes, intercepts, lo, hi, mode, isfloat, cb, acc_proto, out):
    """Combine along rows j (lo:hi) of each slice into ``out`` (nz, nx); work items are (slice, column block of
    ``cb``). Stored values reduced (mirrored mode under a negative slope), rescaled once with the slice's rescale."""
    nz, ny, nx = data.shape
    n = hi - lo
    ncb = (nx + cb - 1) // cb
    for w in prange(nz * ncb):
        k = w // ncb
        i0 = (w - k * ncb) * cb
        i1 = min(i0 + cb, nx)
        s = slopes[k]
        t = intercepts[k]
        m = mode if s >= 0 else combine_mirror(mode)
        dst = out[k, i0:i1]
        if combine_selects(m):
            acc = data[k, lo, i0:i1].copy()
            j = lo + 1
            while j + 4 <= hi:
                if m == MODE_MAX:
                    _rows_max(acc, data[k, j, i0:i1], data[k, j + 1, i0:i1], data[k, j + 2, i0:i1],
                              data[k, j + 3, i0:i1], isfloat)
                else:
                    _rows_min(acc, data[k, j, i0:i1], data[k, j + 1, i0:i1], data[k, j + 2, i0:i1],
                              data[k, j + 3, i0:i1], isfloat)
                j += 4
            for j in range(j, hi):
                if m == MODE_MAX:
                    _row_max(acc, data[k, j, i0:i1], isfloat)
                else:
                    _row_min(acc, data[k, j, i0:i1], isfloat)
            for i in range(i1 - i0):
                dst[i] = np.float64(acc[i]) * s + t
        else:
            sm = np.zeros(i1 - i0, acc_proto.dtype)
            j = lo
            while j + 4 <= hi:
                _rows_add(sm, data[k, j, i0:i1], data[k, j + 1, i0:i1], data[k, j + 2, i0:i1], data[k, j + 3, i0:i1])
                j += 4
            for j in range(j, hi):
                _row_add(sm, data[k, j, i0:i1])
            for i in range(i1 - i0):
                dst[i] = combine_finish(np.float64(sm[i]), n, MODE_MEAN, 0.0) * s + t


@njit(**_PJ)
def _ax2(data, slopes, intercepts, lo, hi, mode, isfloat, acc_proto, out):
    """Combine along columns i (lo:hi) of each row into ``out`` (nz, ny), stored values reduced, rescaled once."""
    nz, ny, nx = data.shape
    n = hi - lo
    a0 = acc_proto[0]
    acc32 = acc_proto.itemsize == 4 and not isfloat
    for r in prange(nz * ny):
        k = r // ny
        j = r - k * ny
        s = slopes[k]
        t = intercepts[k]
        m = mode if s >= 0 else combine_mirror(mode)
        out[k, j] = combine_finish(_reduce(data[k, j, lo:hi], m, isfloat, acc32, a0), n, m, 0.0) * s + t


# -- host side ------------------------------------------------------------------------------------------------------
def _sum_dtype(dtype, n: int) -> np.dtype:
    """An accumulator that sums ``n`` values of ``dtype`` exactly as numpy's float64 sum in order does: int32 or
    int64 for small integers (every partial sum an integer below 2**53), else float64 (the same additions)."""
    dt = np.dtype(dtype)
    if dt.kind in "iu" and dt.itemsize <= 4:
        info = np.iinfo(dt)
        big = max(abs(int(info.min)), int(info.max))
        if big * n < 2 ** 31:
            return np.dtype(np.int32)
        if big * n < 2 ** 53:
            return np.dtype(np.int64)
    return np.dtype(np.float64)


def _threads() -> int:
    import numba

    return max(1, int(numba.get_num_threads()))


_KINDS = frozenset("iuf")


def project_axis(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, axis: int, lo: int, hi: int,
                 mode: str, out: np.ndarray) -> np.ndarray:
    """Max/min/mean of the rescaled values along array ``axis`` over ``lo:hi`` into float32 ``out`` (the contract's
    ``project_axis``; see the module docstring). ``out`` may be reused between calls."""
    code = MODES[mode]
    if code not in (MODE_MAX, MODE_MIN, MODE_MEAN):
        raise ValueError(f"project_axis needs mode 'max', 'min' or 'mean', got {mode!r}")
    axis, lo, hi = int(axis), int(lo), int(hi)
    n = hi - lo
    if data.dtype.kind not in _KINDS or data.dtype.itemsize < 4 and data.dtype.kind == "f" or \
            not data.dtype.isnative or data.ndim != 3:
        from ..numpy.sampler import project_axis as reference       # bool, float16, foreign byte order

        return reference(data, slopes, intercepts, axis, lo, hi, mode, out)
    if n <= 0 or out.size == 0:
        if n <= 0 and out.size and code != MODE_MEAN:
            raise ValueError(f"project_axis over an empty range {lo}:{hi} along axis {axis} has no {mode}")
        out[...] = np.nan
        return out
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    proto = np.zeros(1, _sum_dtype(data.dtype, n))
    isfloat = data.dtype.kind == "f"
    nz, ny, nx = data.shape
    if axis == 1:
        cb = nx
        nt = _threads()
        if nz < 4 * nt and nx >= 128:            # few slices: split each into column blocks for the threads
            pieces = -(-4 * nt // nz)
            cb = max(64, -(-nx // pieces))
        _ax1(data, slopes, intercepts, lo, hi, code, isfloat, cb, proto, out)
        return out
    if axis == 2:
        _ax2(data, slopes, intercepts, lo, hi, code, isfloat, proto, out)
        return out
    s = slopes[lo:hi]
    t = intercepts[lo:hi]
    uniform = bool(np.all(s == s[0]) and np.all(t == t[0]))
    nt = _threads()
    if uniform and (code == MODE_MEAN or s[0] != 0.0):
        m = code if s[0] > 0 or code == MODE_MEAN else (MODE_MIN if code == MODE_MAX else MODE_MAX)
        item = data.dtype.itemsize if code != MODE_MEAN else proto.dtype.itemsize
        rb = _rows_per_block(ny, nx, item, nt)
        _ax0_raw(data, lo, hi, m, isfloat, rb, float(s[0]), float(t[0]), proto, out)
    else:
        rb = _rows_per_block(ny, nx, 8, nt)
        _ax0_hu(data, slopes, intercepts, lo, hi, code, rb, out)
    return out


def _rows_per_block(ny: int, nx: int, itemsize: int, threads: int) -> int:
    """Output rows per axis-0 block: an accumulator of about :data:`BLOCK_BYTES`, and at least two blocks per
    thread when the image allows."""
    rb = max(1, BLOCK_BYTES // max(1, nx * itemsize))
    return max(1, min(rb, -(-ny // (2 * threads))))


__all__ = ["project_axis"]
