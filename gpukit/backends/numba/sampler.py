"""The geometric sampler as Numba CPU kernels (``@njit(parallel=True)``), one ray per output pixel.

Same rule and same float64 expressions as :mod:`gpukit.backends.numpy.sampler`
(read its docstring): coordinates ``A @ (c, r, s) + b`` written left to right,
the inside test with ``EPS``, clamping, ``a + (b - a) * f`` blends, per-slice
rescale between the two slices or once when it is uniform. Kernels are
compiled on first use and cached on disk (``cache=True``); ``fastmath`` is off
so results match the numpy reference to float64 rounding. The per-sample code
(inside test, clamping, trilinear and nearest reads, ray clipping) lives in
:mod:`gpukit.backends._sampler_math`, which the Numba CUDA kernels call too.

Numba is imported when this module is imported, which happens only when the
``numba`` backend is first looked up (never by ``import gpukit``).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, prange

from .._math import voi_params, window_value
from .._sampler_math import (MODE_MAX, MODE_MIN, MODE_NONE, _clamp, _inside, _linear, _nearest, _ray_combine,
                             _ray_range, combine_finish, combine_init, combine_mirror, combine_selects,
                             combine_skips, combine_step)
from ..codes import EPS, MODES

_JIT = dict(cache=True, fastmath=False, nogil=True)


#: output tile (rows, columns, slices) of the resample kernel: keeps each tile's input footprint in cache
TILE_RC = 16
TILE_S = 16

#: the ``wnd`` argument of every kernel when no window stage is fused (see :func:`_window_args`)
NO_WINDOW = (False, 0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, False, False)


def _window_args(window, out) -> tuple:
    """The kernels' ``wnd``: ``(fused, function_code, c', w', lower, upper, lo, hi, rounded, invert)``.

    ``window`` is ``(center, width, function_code, lo, hi, invert)`` or None; ``out``'s dtype decides the
    rounding (an integer dtype rounds half away from zero, as the window kernels do).
    """
    if window is None:
        return NO_WINDOW
    center, width, fcode, lo, hi, invert = window
    cc, ww, lower, upper = voi_params(center, width, int(fcode))
    return (True, int(fcode), float(cc), float(ww), float(lower), float(upper), float(lo), float(hi),
            out.dtype.kind in "iu", bool(invert))


@njit(inline="always", **_JIT)
def _out_value(v, wnd):
    """What the kernels write for the float64 result ``v``: ``v`` itself (cast by the store), or with a fused
    window stage the window of ``v`` rounded to float32 first -- the same number as windowing the float32 image
    (``kernels/sample.cu``'s ``gk_store``)."""
    fused, fcode, cc, ww, lower, upper, lo, hi, rounded, invert = wnd
    if fused:
        return window_value(float(np.float32(v)), fcode, cc, ww, lower, upper, lo, hi, rounded, invert)
    return v


@njit(parallel=True, **_JIT)
def _resample_kernel(data, slopes, intercepts, uniform, A, b, linear, fill, eps, out, wnd):
    """mode "none": out[s, r, c] for every output position, in cache-sized tiles (``wnd``: :func:`_out_value`)."""
    nz, ny, nx = data.shape
    flat = data.ravel()
    ns, nr, nc = out.shape
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
    T = TILE_RC
    TS = TILE_S
    ntr = (nr + T - 1) // T
    ntc = (nc + T - 1) // T
    nts = (ns + TS - 1) // TS
    for q in prange(nts * ntr * ntc):
        ts = q // (ntr * ntc)
        rem = q - ts * (ntr * ntc)
        tr = rem // ntc
        tc = rem - tr * ntc
        for s in range(ts * TS, min(ns, ts * TS + TS)):
            for r in range(tr * T, min(nr, tr * T + T)):
                for c in range(tc * T, min(nc, tc * T + T)):
                    x = a00 * c + a01 * r + a02 * s + b0
                    y = a10 * c + a11 * r + a12 * s + b1
                    z = a20 * c + a21 * r + a22 * s + b2
                    v = fill
                    if _inside(x, y, z, xl, yl, zl, eps):
                        if linear:
                            v = _linear(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
                        else:
                            v = _nearest(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
                    out[s, r, c] = _out_value(v, wnd)


@njit(parallel=True, **_JIT)
def _project_kernel(data, slopes, intercepts, uniform, A, b, ns, mode, linear, fill, eps, out, wnd):
    """projection modes (max, min, mean): out[r, c] combines the inside samples of the ray at (c, r)
    (``combine_*`` of :mod:`gpukit.backends._sampler_math`; ``wnd``: :func:`_out_value`).

    Each ray is clipped to the volume first (an analytic estimate, then
    refined with the exact inside test, which is monotone along a ray), so the
    inner loop needs no test; the samples it visits are exactly those the
    per-sample test accepts.
    """
    nz, ny, nx = data.shape
    flat = data.ravel()
    nr, nc = out.shape
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
    for r in prange(nr):
        for c in range(nc):
            # x(s) = ((a00*c + a01*r) + a02*s) + b0, exactly the reference's left-to-right sum
            bx = a00 * c + a01 * r
            by = a10 * c + a11 * r
            bz = a20 * c + a21 * r
            v = _ray_combine(flat, nx, ny, nz, slopes, intercepts, uniform, linear, bx, by, bz, a02, a12, a22, b0, b1,
                             b2, ns, mode, fill, xl, yl, zl, eps)
            out[r, c] = _out_value(v, wnd)


#: brick edge (voxels, a power of two) of the empty-space skipping grid used by max/min projections
BRICK_SHIFT = 3
#: rays shorter than this many steps are marched without bricks
BRICK_MIN_STEPS = 16


@njit(parallel=True, **_JIT)
def _project_bricks_kernel(data, slopes, intercepts, uniform, A, b, ns, mode, linear, fill, eps, bext, out, wnd):
    """max / min projection that skips samples which cannot change the result (``combine_skips``).

    ``bext[bk, bj, bi]`` is the largest (max mode) or smallest (min mode)
    rescaled voxel value over the voxels a sample in brick ``(bk, bj, bi)``
    can read: indices ``8 * b .. 8 * b + 8`` on each axis (a sample whose
    floor index lies in the brick blends voxels up to one past it). Every
    value interpolated there is a convex combination of those voxels, so when
    ``bext <= acc`` (max) the sample and all the following ones of the ray
    that stay in the brick are skipped (a brick holding a NaN has a NaN
    ``bext`` and is never skipped). The result equals the unskipped march
    (``_project_kernel``) up to float64 rounding.
    """
    nz, ny, nx = data.shape
    flat = data.ravel()
    nr, nc = out.shape
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
    sh = BRICK_SHIFT
    bw = float(1 << sh)
    for r in prange(nr):
        for c in range(nc):
            bx = a00 * c + a01 * r
            by = a10 * c + a11 * r
            bz = a20 * c + a21 * r
            lo, hi = _ray_range(bx, by, bz, a02, a12, a22, b0, b1, b2, ns, xl, yl, zl, eps)
            acc = combine_init(mode)
            s = lo
            while s <= hi:
                x = _clamp(bx + a02 * s + b0, nx - 1.0)
                y = _clamp(by + a12 * s + b1, ny - 1.0)
                z = _clamp(bz + a22 * s + b2, nz - 1.0)
                bi = int(x) >> sh
                bj = int(y) >> sh
                bk = int(z) >> sh
                if combine_skips(bext[bk, bj, bi], acc, mode):
                    room = np.inf
                    if a02 > 0.0:
                        room = min(room, ((bi + 1) * bw - x) / a02)
                    elif a02 < 0.0:
                        room = min(room, (x - bi * bw) / -a02)
                    if a12 > 0.0:
                        room = min(room, ((bj + 1) * bw - y) / a12)
                    elif a12 < 0.0:
                        room = min(room, (y - bj * bw) / -a12)
                    if a22 > 0.0:
                        room = min(room, ((bk + 1) * bw - z) / a22)
                    elif a22 < 0.0:
                        room = min(room, (z - bk * bw) / -a22)
                    if room > hi - s + 1.0:
                        break
                    s += 1 + max(0, int(room - 1e-6))
                    continue
                if linear:
                    v = _linear(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
                else:
                    v = _nearest(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
                acc = combine_step(acc, v, mode)
                s += 1
            out[r, c] = _out_value(combine_finish(acc, hi - lo + 1, mode, fill), wnd)


@njit(parallel=True, **_JIT)
def _brick_extrema_kernel(data, slopes, intercepts, bmax, bmin):
    """Per brick: max and min rescaled value over voxels 8b .. 8b+8 on each axis (clamped to the volume), by
    ``combine_step`` (a NaN voxel makes both NaN: that brick is never skipped)."""
    nz, ny, nx = data.shape
    nbz, nby, nbx = bmax.shape
    sh = BRICK_SHIFT
    w = 1 << sh
    smax = np.empty((nz, nby, nbx), np.float64)
    smin = np.empty((nz, nby, nbx), np.float64)
    for k in prange(nz):
        s = slopes[k]
        t = intercepts[k]
        rmax = np.empty((ny, nbx), data.dtype)
        rmin = np.empty((ny, nbx), data.dtype)
        for j in range(ny):
            for bi in range(nbx):
                i_hi = min(nx - 1, bi * w + w)
                m = data[k, j, bi * w]
                n = m
                for i in range(bi * w + 1, i_hi + 1):
                    v = data[k, j, i]
                    m = combine_step(m, v, MODE_MAX)
                    n = combine_step(n, v, MODE_MIN)
                rmax[j, bi] = m
                rmin[j, bi] = n
        for bj in range(nby):
            j_hi = min(ny - 1, bj * w + w)
            for bi in range(nbx):
                m = rmax[bj * w, bi]
                n = rmin[bj * w, bi]
                for j in range(bj * w + 1, j_hi + 1):
                    m = combine_step(m, rmax[j, bi], MODE_MAX)
                    n = combine_step(n, rmin[j, bi], MODE_MIN)
                hm = m * s + t
                hn = n * s + t
                smax[k, bj, bi] = combine_step(hm, hn, MODE_MAX)
                smin[k, bj, bi] = combine_step(hm, hn, MODE_MIN)
    for bk in prange(nbz):
        k_hi = min(nz - 1, bk * w + w)
        for bj in range(nby):
            for bi in range(nbx):
                m = smax[bk * w, bj, bi]
                n = smin[bk * w, bj, bi]
                for k in range(bk * w + 1, k_hi + 1):
                    m = combine_step(m, smax[k, bj, bi], MODE_MAX)
                    n = combine_step(n, smin[k, bj, bi], MODE_MIN)
                bmax[bk, bj, bi] = m
                bmin[bk, bj, bi] = n


def brick_extrema(data, slopes, intercepts):
    """``(bmax, bmin)``: float64 arrays of shape ``ceil(n / 8)`` per axis for empty-space skipping."""
    w = 1 << BRICK_SHIFT
    shape = tuple((n + w - 1) // w for n in data.shape)
    bmax = np.empty(shape, np.float64)
    bmin = np.empty(shape, np.float64)
    _brick_extrema_kernel(data, np.ascontiguousarray(slopes, dtype=np.float64),
                          np.ascontiguousarray(intercepts, dtype=np.float64), bmax, bmin)
    return bmax, bmin


# -- bricked layout for the real-time Reslicer ---------------------------------------------------------------------
#: the Reslicer's copy of the volume is stored in 4x4x4 bricks (128 bytes for int16): an oblique plane then reads
#: about one cache line per sample instead of four, which is what limits a reslice of a large volume
LAYOUT_SHIFT = 2


@njit(parallel=True, **_JIT)
def _to_bricks_kernel(data, out, nby, nbx):
    """Write ``data`` brick by brick (destination order: sequential writes, runs of w voxels read)."""
    nz, ny, nx = data.shape
    sh = LAYOUT_SHIFT
    w = 1 << sh
    nbz = (nz + w - 1) // w
    for bk in prange(nbz):
        for bj in range(nby):
            for bi in range(nbx):
                o = ((bk * nby + bj) * nbx + bi) << (3 * sh)
                for kk in range(w):
                    k = bk * w + kk
                    if k >= nz:
                        break
                    for jj in range(w):
                        j = bj * w + jj
                        if j >= ny:
                            break
                        d = o + (kk << (2 * sh)) + (jj << sh)
                        for ii in range(min(w, nx - bi * w)):
                            out[d + ii] = data[k, j, bi * w + ii]


def to_bricks(data):
    """The volume in the Reslicer's bricked layout: ``(flat, (nbz, nby, nbx))`` (padding voxels are never read)."""
    w = 1 << LAYOUT_SHIFT
    nb = tuple((n + w - 1) // w for n in data.shape)
    flat = np.zeros(nb[0] * nb[1] * nb[2] * w ** 3, data.dtype)
    _to_bricks_kernel(data, flat, nb[1], nb[2])
    return flat, nb


@njit(inline="always", **_JIT)
def _bidx(i, sh):
    """Bricked offset of index i along the column axis."""
    return ((i >> sh) << (3 * sh)) + (i & ((1 << sh) - 1))


@njit(inline="always", **_JIT)
def _linear_bricked(flat, nx, ny, nz, js, ks, slopes, intercepts, uniform, x, y, z):
    """``_linear`` on the bricked layout: the same arithmetic, other addresses."""
    sh = LAYOUT_SHIFT
    m = (1 << sh) - 1
    x = _clamp(x, nx - 1.0)
    y = _clamp(y, ny - 1.0)
    z = _clamp(z, nz - 1.0)
    i0 = int(math.floor(x))
    j0 = int(math.floor(y))
    k0 = int(math.floor(z))
    fx = x - i0
    fy = y - j0
    fz = z - k0
    i1 = i0 + 1 if i0 < nx - 1 else i0
    j1 = j0 + 1 if j0 < ny - 1 else j0
    k1 = k0 + 1 if k0 < nz - 1 else k0
    ia = _bidx(i0, sh)
    ib = _bidx(i1, sh)
    ja = (j0 >> sh) * js + ((j0 & m) << sh)
    jb = (j1 >> sh) * js + ((j1 & m) << sh)
    ka = (k0 >> sh) * ks + ((k0 & m) << (2 * sh))
    kb = (k1 >> sh) * ks + ((k1 & m) << (2 * sh))
    a = float(flat[ka + ja + ia])
    c00 = a + (float(flat[ka + ja + ib]) - a) * fx
    a = float(flat[ka + jb + ia])
    c01 = a + (float(flat[ka + jb + ib]) - a) * fx
    p0 = c00 + (c01 - c00) * fy
    a = float(flat[kb + ja + ia])
    c10 = a + (float(flat[kb + ja + ib]) - a) * fx
    a = float(flat[kb + jb + ia])
    c11 = a + (float(flat[kb + jb + ib]) - a) * fx
    p1 = c10 + (c11 - c10) * fy
    if uniform:
        return (p0 + (p1 - p0) * fz) * slopes[0] + intercepts[0]
    h0 = p0 * slopes[k0] + intercepts[k0]
    h1 = p1 * slopes[k1] + intercepts[k1]
    return h0 + (h1 - h0) * fz


@njit(inline="always", **_JIT)
def _nearest_bricked(flat, nx, ny, nz, js, ks, slopes, intercepts, uniform, x, y, z):
    sh = LAYOUT_SHIFT
    m = (1 << sh) - 1
    i = int(math.floor(_clamp(x, nx - 1.0) + 0.5))
    j = int(math.floor(_clamp(y, ny - 1.0) + 0.5))
    k = int(math.floor(_clamp(z, nz - 1.0) + 0.5))
    v = float(flat[(k >> sh) * ks + ((k & m) << (2 * sh)) + (j >> sh) * js + ((j & m) << sh) + _bidx(i, sh)])
    if uniform:
        return v * slopes[0] + intercepts[0]
    return v * slopes[k] + intercepts[k]


@njit(parallel=True, **_JIT)
def _reslice_bricked_kernel(flat, nz, ny, nx, nby, nbx, slopes, intercepts, uniform, A, b, linear, fill, eps, out,
                            wnd):
    """mode "none" on the bricked layout (``_resample_kernel``'s loop and rule)."""
    ns, nr, nc = out.shape
    sh = LAYOUT_SHIFT
    js = nbx << (3 * sh)
    ks = (nby * nbx) << (3 * sh)
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
    T = TILE_RC
    TS = TILE_S
    ntr = (nr + T - 1) // T
    ntc = (nc + T - 1) // T
    nts = (ns + TS - 1) // TS
    for q in prange(nts * ntr * ntc):
        ts = q // (ntr * ntc)
        rem = q - ts * (ntr * ntc)
        tr = rem // ntc
        tc = rem - tr * ntc
        for s in range(ts * TS, min(ns, ts * TS + TS)):
            for r in range(tr * T, min(nr, tr * T + T)):
                for c in range(tc * T, min(nc, tc * T + T)):
                    x = a00 * c + a01 * r + a02 * s + b0
                    y = a10 * c + a11 * r + a12 * s + b1
                    z = a20 * c + a21 * r + a22 * s + b2
                    v = fill
                    if _inside(x, y, z, xl, yl, zl, eps):
                        if linear:
                            v = _linear_bricked(flat, nx, ny, nz, js, ks, slopes, intercepts, uniform, x, y, z)
                        else:
                            v = _nearest_bricked(flat, nx, ny, nz, js, ks, slopes, intercepts, uniform, x, y, z)
                    out[s, r, c] = _out_value(v, wnd)


def sample_grid_bricked(bricked, shape, slopes, intercepts, A, b, grid, interp, fill, out, window=None):
    """mode "none" sampling of a volume held by :func:`to_bricks` (``shape`` = the volume's (nz, ny, nx)).

    ``window``: as in :func:`sample_grid` (the windowed image into an integer ``out``, in the same pass).
    """
    flat, nb = bricked
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    uniform = bool(np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]))
    nz, ny, nx = shape
    _reslice_bricked_kernel(flat, nz, ny, nx, nb[1], nb[2], slopes, intercepts, uniform,
                            np.ascontiguousarray(A, dtype=np.float64), np.ascontiguousarray(b, dtype=np.float64),
                            interp == "linear", float(fill), EPS, out, _window_args(window, out))
    return out


def sample_grid(data, slopes, intercepts, A, b, grid, mode, interp, fill, out, window=None, bricks=None):
    """Numba version of :func:`gpukit.backends.numpy.sampler.sample_grid` (same arguments and result).

    ``window``: optional ``(center, width, function_code, lo, hi, invert)``:
    ``out`` (uint8) then receives the window of each float32 result (the
    fill too), computed in the same pass (no float32 image in between).
    ``bricks``: optional ``(bmax, bmin)`` from :func:`brick_extrema` for these
    data and rescale; max/min projections of at least ``BRICK_MIN_STEPS``
    steps then skip the samples that cannot change the result.
    """
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    A = np.ascontiguousarray(A, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    uniform = bool(np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]))
    linear = interp == "linear"
    code = MODES[mode]
    ns = int(grid[0])
    wnd = _window_args(window, out)
    if code == MODE_NONE:
        _resample_kernel(data, slopes, intercepts, uniform, A, b, linear, float(fill), EPS, out, wnd)
    elif bricks is not None and code in (MODE_MAX, MODE_MIN) and ns >= BRICK_MIN_STEPS:
        bext = bricks[0] if code == MODE_MAX else bricks[1]
        _project_bricks_kernel(data, slopes, intercepts, uniform, A, b, ns, code, linear, float(fill), EPS, bext, out,
                               wnd)
    else:
        _project_kernel(data, slopes, intercepts, uniform, A, b, ns, code, linear, float(fill), EPS, out, wnd)
    return out


# -- axis-aligned projections: bandwidth-bound reductions over the stored array --------------------------
# Every combination is ``combine_*`` of _sampler_math. Modes that select (max, min) reduce stored values in
# their own dtype; the others accumulate in float64 from ``combine_init``; ``combine_finish`` ends both.

@njit(parallel=True, **_JIT)
def _axis0_raw(data, lo, hi, mode, out):
    """Combine stored values over slices lo:hi; out (ny, nx) float64 holds the finished raw value (max/min/mean)."""
    nz, ny, nx = data.shape
    n = hi - lo
    for j in prange(ny):
        if combine_selects(mode):
            row = data[lo, j].copy()
            for k in range(lo + 1, hi):
                for i in range(nx):
                    row[i] = combine_step(row[i], data[k, j, i], mode)
            for i in range(nx):
                out[j, i] = combine_finish(row[i], n, mode, 0.0)
        else:
            acc = np.full(nx, combine_init(mode))
            for k in range(lo, hi):
                for i in range(nx):
                    acc[i] = combine_step(acc[i], data[k, j, i], mode)
            for i in range(nx):
                out[j, i] = combine_finish(acc[i], n, mode, 0.0)


@njit(parallel=True, **_JIT)
def _axis0_hu(data, slopes, intercepts, lo, hi, mode, out):
    """Combine rescaled values over slices lo:hi (per-slice rescale); out (ny, nx) float64, finished."""
    nz, ny, nx = data.shape
    for j in prange(ny):
        acc = np.empty(nx, np.float64)
        for i in range(nx):
            acc[i] = data[lo, j, i] * slopes[lo] + intercepts[lo]
        for k in range(lo + 1, hi):
            s = slopes[k]
            t = intercepts[k]
            for i in range(nx):
                acc[i] = combine_step(acc[i], data[k, j, i] * s + t, mode)
        for i in range(nx):
            out[j, i] = combine_finish(acc[i], hi - lo, mode, 0.0)


@njit(parallel=True, **_JIT)
def _axis12_hu(data, slopes, intercepts, axis, lo, hi, mode, out):
    """Combine along j (axis 1, out (nz, nx)) or i (axis 2, out (nz, ny)); each output row is one slice, so the
    stored values are combined (by ``combine_mirror(mode)`` under a negative slope) and rescaled once."""
    nz, ny, nx = data.shape
    n = hi - lo
    for k in prange(nz):
        s = slopes[k]
        t = intercepts[k]
        m = mode if s >= 0 else combine_mirror(mode)
        if axis == 1:
            if combine_selects(m):
                row = data[k, lo].copy()
                for j in range(lo + 1, hi):
                    for i in range(nx):
                        row[i] = combine_step(row[i], data[k, j, i], m)
                for i in range(nx):
                    out[k, i] = combine_finish(row[i], n, m, 0.0) * s + t
            else:
                acc = np.full(nx, combine_init(m))
                for j in range(lo, hi):
                    for i in range(nx):
                        acc[i] = combine_step(acc[i], data[k, j, i], m)
                for i in range(nx):
                    out[k, i] = combine_finish(acc[i], n, m, 0.0) * s + t
        else:
            for j in range(ny):
                if combine_selects(m):
                    e = data[k, j, lo]
                    for i in range(lo + 1, hi):
                        e = combine_step(e, data[k, j, i], m)
                    out[k, j] = combine_finish(e, n, m, 0.0) * s + t
                else:
                    a = combine_init(m)
                    for i in range(lo, hi):
                        a = combine_step(a, data[k, j, i], m)
                    out[k, j] = combine_finish(a, n, m, 0.0) * s + t


def project_axis(data, slopes, intercepts, axis, lo, hi, mode, out):
    """Numba version of :func:`gpukit.backends.numpy.sampler.project_axis`."""
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    code = MODES[mode]
    if axis in (1, 2):
        _axis12_hu(data, slopes, intercepts, int(axis), int(lo), int(hi), code, out)
        return out
    s = slopes[lo:hi]
    t = intercepts[lo:hi]
    tmp = np.empty(out.shape, np.float64)
    if bool(np.all(s == s[0]) and np.all(t == t[0])) and (not combine_selects(code) or s[0] > 0):
        _axis0_raw(data, int(lo), int(hi), code, tmp)
        out[...] = tmp * s[0] + t[0]
    else:
        _axis0_hu(data, slopes, intercepts, int(lo), int(hi), code, tmp)
        out[...] = tmp
    return out


@njit(parallel=True, **_JIT)
def _extrema_kernel(data, lo_out, hi_out):
    nz = data.shape[0]
    for k in prange(nz):
        sl = data[k]
        lo = sl[0, 0]
        hi = sl[0, 0]
        for j in range(sl.shape[0]):
            for i in range(sl.shape[1]):
                v = sl[j, i]
                lo = min(lo, v)
                hi = max(hi, v)
        lo_out[k] = lo
        hi_out[k] = hi


def slice_extrema(data):
    """Per-slice minimum and maximum stored value, float64 arrays of length nz."""
    lo = np.empty(data.shape[0], np.float64)
    hi = np.empty(data.shape[0], np.float64)
    _extrema_kernel(data, lo, hi)
    return lo, hi


def sampler_warmup(data, out_dtype=np.float32, modes=("none", "max", "min", "mean"), interps=("linear", "nearest"),
                   slopes_uniform=None) -> None:
    """Compile (or load from the cache) the kernels for ``data``'s dtype by running them on a 2x2x2 block."""
    small = np.ascontiguousarray(data[:2, :2, :2]) if all(n >= 2 for n in data.shape) else \
        np.zeros((2, 2, 2), data.dtype)
    one = np.ones(small.shape[0])
    zero = np.zeros(small.shape[0])
    A = np.eye(3)
    b = np.zeros(3)
    for mode in modes:
        for interp in interps:
            if mode == "none":
                dt = np.int16 if (interp == "nearest" and out_dtype == np.int16) else np.float32
                sample_grid(small, one, zero, A, b, (1, 2, 2), mode, interp, 0.0, np.empty((1, 2, 2), dt))
            else:
                sample_grid(small, one, zero, A, b, (2, 2, 2), mode, interp, 0.0, np.empty((2, 2), np.float32))


__all__ = ["sample_grid", "project_axis", "slice_extrema", "sampler_warmup", "brick_extrema", "to_bricks",
           "sample_grid_bricked"]
