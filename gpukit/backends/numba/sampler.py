"""The geometric sampler as Numba CPU kernels (``@njit(parallel=True)``), one ray per output pixel.

Same rule and same float64 expressions as :mod:`gpukit.backends.numpy.sampler`
(read its docstring): coordinates ``A @ (c, r, s) + b`` written left to right,
the inside test with ``EPS``, clamping, ``a + (b - a) * f`` blends, per-slice
rescale between the two slices or once when it is uniform. Kernels are
compiled on first use and cached on disk (``cache=True``); ``fastmath`` is off
so results match the numpy reference to float64 rounding. The per-sample code
(inside test, clamping, trilinear and nearest reads, ray clipping) lives in
:mod:`gpukit.backends._sampler_math`, which the Numba CUDA kernels call too.

Precision (:data:`gpukit.backends.codes.PRECISIONS`). ``precision="exact"``
(the kernels above) is the numpy reference's float64 arithmetic, bit for bit.
``precision="fast"`` (capability ``FAST_PRECISION``) runs the ``_fast_*``
kernels for 8- and 16-bit integer stored values (other dtypes run "exact"):

* coordinates are still the reference's float64 expression per sample (so the
  inside test, the fill and nearest's voxel are the reference's); each output
  row is clipped to its inside columns once (:func:`_row_range`), and a
  vectorised first stage (LLVM vectorises it: ``vcvttpd2qq``/``vpmullq``/
  ``vcvtpd2ps``/``vrndscalepd`` on ymm registers on AVX-512 hosts) writes, per
  column, the lower corner's offset, the float32 weights and the 8^3 brick;
* a second stage reads each of the eight stored values once as float32,
  blends in float32 (``a + (b - a) * f``) and rescales once per output in
  float64 (uniform rescale; per-slice: the two slices' blends rescaled in
  float64, then blended); projections combine the raw blends and rescale the
  result once (uniform rescale), with brick skipping where bricks are given;
* 16-bit stored values (int16, uint16) on a little-endian host are read as x-neighbour pairs
  (:mod:`._pairs`: one unaligned 32-bit load for ``flat[o], flat[o + 1]``), four loads a trilinear sample in a
  scalar loop, and the blends run in a separate loop over the row that LLVM vectorises (checked with
  ``inspect_asm``: the halves split by shifts and masks in int64 lanes, converted by ``vcvtqq2ps``, blended by
  packed ``vsubps``/``vmulps``/``vaddps`` on ymm/zmm registers, behind LLVM's runtime alias checks). The reads
  themselves stay scalar: LLVM's target for this host (``rocketlake``) prefers no gathers, so no loop of reads
  at computed addresses is vectorised (no ``vpgather`` anywhere in the sampler). Same integers, same float32
  operations in the same order: the values are those of the one-value reads bit for bit (``PAIRS = False``
  forces those, for tests);
* projections with brick skipping test groups of rays before computing their samples (a tile's rows x
  GROUP_C columns x GROUP_S steps against the largest brick bound of the brick box that holds all their
  samples, see :func:`_project_fast_kernel`; exact, ``GROUPS = False`` turns it off), and the first pass
  of a long ray (a full MIP) visits every 16th step instead of every 8th;
* outputs are computed in tiles whose input footprint stays in cache
  (projections: FAST_TR x FAST_TC rays marched step by step; mode "none":
  RESAMPLE_TS slices x 1 row x RESAMPLE_TC columns, a single plane FAST_TR x
  PLANE_TC), and mode "none" on the plain layout prefetches the cache lines of
  the rows it computes next (PREFETCH_ROWS, PREFETCH_SLICES);
* slice order: a projection whose rays run inside the slices with the output
  rows along the slice normal (index map with ``A[2, 0] == A[2, 2] == A[0, 1]
  == A[1, 1] == 0``: every frame of ``rotating_mip`` about the slice axis of an
  unsheared volume, :func:`slice_order_applies`) runs
  :func:`_project_slices_kernel`, shear-warp style: the volume is streamed slice
  by slice in memory order, each slice's float32 bilinear blend computed once per
  in-slice sample point and shared by every output row that reads that slice.
  z is constant along each ray, so trilinear is exactly the per-slice bilinear
  blends followed by the z blend: the same operations as ray order, and the
  result is identical to the ray-order fast kernel bit for bit (tested), not an
  approximation (``SLICE_ORDER = False`` forces ray order).

Error bound of "fast" against "exact" (and the numpy reference), per output
value, with ``u = 2**-24``, ``M`` the largest ``|stored value|``, ``S`` the
largest ``|slope|`` and ``H`` the largest ``|rescaled value|`` of the voxels
read (proof: each float32 weight is within ``u`` of the float64 one; an x-blend
of two integers is within ``5 M u``, a y-blend within ``12 M u``, the z-blend
within ``19 M u`` of the float64 blends; the float64 rescale adds ``|s|`` times
that, the per-slice z-blend ``2 H u``; both results are then rounded to float32):

    ``|fast - exact| <= u * (20 * M * S + 2 * H) + ulp32(H)``      (:func:`fast_bound`)

for trilinear resample/reslice and for max, min and mean projections (a max or
mean of values each within the bound is within it). For int16 CT with
``|stored| < 4096``, slope 1: at most 0.006 HU (below 0.01 HU). Nearest is
exactly equal to "exact" in every mode. A fused window (uint8) is off by at
most 1 for window widths of 3 HU or more.

Numba is imported when this module is imported, which happens only when the
``numba`` backend is first looked up (never by ``import gpukit``).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit, prange

from .._math import voi_params, window_value
from ._prefetch import prefetch
from .._sampler_math import (MODE_MAX, MODE_MEAN, MODE_MIN, MODE_NONE, _blend4_f32, _clamp, _fast_axis, _fast_value,
                             _inside, _linear, _nearest, _ray_combine, _ray_range, _recip, _row_range, combine_finish,
                             combine_init, combine_mirror, combine_skips, combine_step)
from ..codes import EPS, MODES
from ._pairs import load_pair, pair_hi, pair_lo, pair_sign, pairs_apply

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
    for r in prange(out.shape[0]):
        _project_row(np.int64(r), data, slopes, intercepts, uniform, A, b, ns, mode, linear, fill, eps, out, wnd)


@njit(**_JIT)
def _project_row(r, data, slopes, intercepts, uniform, A, b, ns, mode, linear, fill, eps, out, wnd):
    """Task ``r`` of :func:`_project_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
    nz, ny, nx = data.shape
    flat = data.ravel()
    nr, nc = out.shape
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
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
    for r in prange(out.shape[0]):
        _project_bricks_row(np.int64(r), data, slopes, intercepts, uniform, A, b, ns, mode, linear, fill, eps, bext,
                            out, wnd)


@njit(**_JIT)
def _project_bricks_row(r, data, slopes, intercepts, uniform, A, b, ns, mode, linear, fill, eps, bext, out, wnd):
    """Task ``r`` of :func:`_project_bricks_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
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


# -- the "fast" precision: float32 weights and blends, vectorised row stages -------------------------------------
#: output tile of the fast kernels: FAST_TS slices x FAST_TR rows x FAST_TC columns (mode "none"), FAST_TR x FAST_TC
#: rays (projections, marched together step by step): each tile's input footprint stays in the L1/L2 caches
FAST_TC = 64
FAST_TR = 8
FAST_TS = 8
#: mode "none" (resample, reslice) takes its own tiles: a volume RESAMPLE_TS slices x 1 row x RESAMPLE_TC columns
#: (runs of neighbouring output slices reuse each other's input lines while they are in L1/L2, and a row clip and
#: loop set-up serve 256 samples), a single plane FAST_TR rows x PLANE_TC columns; full oblique resample of the
#: benchmark's 512^3 int16 volume (kernel, 2 cores): 452 ms with the FAST_* tiles, 353 ms with these; axis-aligned
#: and sagittal grids gain too (343 against 358 ms, 497 against 628 ms)
RESAMPLE_TS = 32
RESAMPLE_TC = 256
PLANE_TC = 256
#: mode "none" on the plain layout prefetches (:mod:`._prefetch`), while it computes a row, the lower-corner cache
#: lines at every PF_STEP-th column of the row it will need soon: a single plane's row PREFETCH_ROWS rows below,
#: a volume's row PREFETCH_SLICES output slices further (the next rows a volume tile computes). 0 turns it off
#: (for tests: same values). A new pose's footprint is not in the caches and its rows jump across slices, which the
#: hardware prefetchers do not follow: on 100 new poses the plane kernel's p50 went from 1.8 to 1.4 ms (512x512
#: plane of a 512^3 int16 volume, 2 cores)
PREFETCH_ROWS = 4
PREFETCH_SLICES = 2
PF_STEP = 4
#: projections with brick skipping first march every PRE_STEP-th step of each ray (see _project_fast_kernel)
PRE_STEP = 8
#: ... and every 2 * PRE_STEP-th step for rays of at least PRE_LONG_STEPS steps (a full MIP: the first pass is then
#: half as long; its lower bound, over 32 or more samples, is nearly as high)
PRE_LONG_STEPS = 128
#: groups of rays tested against the brick grid before their samples are computed: GROUP_C columns of a tile's
#: rows over GROUP_S steps (see _project_fast_kernel; GROUPS = False turns the test off, for tests: same values)
GROUP_C = 8
GROUP_S = 8
GROUPS = True
#: stored dtypes the fast path takes (their values are exact in float32); others run the exact path
FAST_KINDS = ("int8", "uint8", "int16", "uint16")


def fast_bound(max_abs_stored, max_abs_slope=1.0, max_abs_value=None) -> float:
    """The error bound of the fast trilinear sampler (see the module docstring): ``|fast - exact|`` per value for
    stored values up to ``max_abs_stored``, slopes up to ``max_abs_slope`` and rescaled values up to
    ``max_abs_value`` (default: ``max_abs_stored * max_abs_slope + 1024``)."""
    M = float(max_abs_stored)
    S = float(max_abs_slope)
    H = float(max_abs_value) if max_abs_value is not None else M * S + 1024.0
    u = 2.0 ** -24
    return u * (20.0 * M * S + 2.0 * H) + float(np.spacing(np.float32(max(H, 1.0))))


def fast_applies(data) -> bool:
    """Whether :func:`sample_grid` with ``precision="fast"`` runs the float32 kernels for ``data`` (8- and 16-bit
    integer stored values, exact in float32; anything else runs the exact float64 path)."""
    return data.dtype.name in FAST_KINDS


@njit(inline="always", **_JIT)
def _fast_coords_linear(lo, hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, nx, ny, nz, off, kk,
                        wx, wy, wz, bb, nby8, nbx8, with_bb):
    """Stage 1 of a row, plain layout (vectorised: no branches, no reads of the volume): for columns lo..hi (all
    inside; entry ``t`` of the scratch arrays is column ``lo + t``) the offset of the lower corner, its slice, the
    float32 weights and, when ``with_bb`` (a constant at each call site: the branch folds away), the 8^3 brick of
    the sample."""
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    nxm2 = max(nx - 2, 0)
    nym2 = max(ny - 2, 0)
    nzm2 = max(nz - 2, 0)
    for t in range(hi - lo + 1):     # from 0, so the stores are provably in order: the loop vectorises
        c = lo + t
        i0, fx = _fast_axis(((a00 * c + pr0) + qs0) + b0, xm, nxm2)
        j0, fy = _fast_axis(((a10 * c + pr1) + qs1) + b1, ym, nym2)
        k0, fz = _fast_axis(((a20 * c + pr2) + qs2) + b2, zm, nzm2)
        off[t] = (k0 * ny + j0) * nx + i0
        kk[t] = k0
        wx[t] = fx
        wy[t] = fy
        wz[t] = fz
        if with_bb:
            bb[t] = ((k0 >> BRICK_SHIFT) * nby8 + (j0 >> BRICK_SHIFT)) * nbx8 + (i0 >> BRICK_SHIFT)


@njit(inline="always", **_JIT)
def _fast_coords_nearest(lo, hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, nx, ny, nz, off, kk,
                         bb, nby8, nbx8):
    """Stage 1 of a row for nearest (plain layout): the voxel of :func:`_nearest` (``floor(x + 0.5)``), exactly."""
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    for t in range(hi - lo + 1):
        c = lo + t
        i = int(math.floor(_clamp(((a00 * c + pr0) + qs0) + b0, xm) + 0.5))
        j = int(math.floor(_clamp(((a10 * c + pr1) + qs1) + b1, ym) + 0.5))
        k = int(math.floor(_clamp(((a20 * c + pr2) + qs2) + b2, zm) + 0.5))
        off[t] = (k * ny + j) * nx + i
        kk[t] = k
        bb[t] = ((k >> BRICK_SHIFT) * nby8 + (j >> BRICK_SHIFT)) * nbx8 + (i >> BRICK_SHIFT)


@njit(inline="always", **_JIT)
def _fast_coords_bricked(lo, hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, nx, ny, nz, js, ks,
                         linear, off, odi, odj, odk, kk, wx, wy, wz):
    """Stage 1 of a row on the bricked layout (:func:`to_bricks`): the lower corner's offset and the offsets of
    its +1 neighbours along x, y, z (they may lie in the next brick), the slice and the weights; nearest: the
    voxel's offset."""
    sh = LAYOUT_SHIFT
    m = (1 << sh) - 1
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    nxm2 = max(nx - 2, 0)
    nym2 = max(ny - 2, 0)
    nzm2 = max(nz - 2, 0)
    d1 = 1 if nx > 1 else 0
    e1 = 1 if ny > 1 else 0
    g1 = 1 if nz > 1 else 0
    for t in range(hi - lo + 1):
        c = lo + t
        x = ((a00 * c + pr0) + qs0) + b0
        y = ((a10 * c + pr1) + qs1) + b1
        z = ((a20 * c + pr2) + qs2) + b2
        if linear:
            i0, fx = _fast_axis(x, xm, nxm2)
            j0, fy = _fast_axis(y, ym, nym2)
            k0, fz = _fast_axis(z, zm, nzm2)
            wx[t] = fx
            wy[t] = fy
            wz[t] = fz
        else:
            i0 = int(math.floor(_clamp(x, xm) + 0.5))
            j0 = int(math.floor(_clamp(y, ym) + 0.5))
            k0 = int(math.floor(_clamp(z, zm) + 0.5))
        i1 = i0 + d1
        j1 = j0 + e1
        k1 = k0 + g1
        ia = _bidx(i0, sh)
        ja = (j0 >> sh) * js + ((j0 & m) << sh)
        ka = (k0 >> sh) * ks + ((k0 & m) << (2 * sh))
        off[t] = ka + ja + ia
        odi[t] = _bidx(i1, sh) - ia
        odj[t] = (j1 >> sh) * js + ((j1 & m) << sh) - ja
        odk[t] = (k1 >> sh) * ks + ((k1 & m) << (2 * sh)) - ka
        kk[t] = k0


@njit(inline="always", **_JIT)
def _fast_row_none(flat, n, linear, off, odi, odj, odk, kk, wx, wy, wz, g1, slopes, intercepts, uniform, out, s, r,
                   lo, wnd):
    """Stage 2 of a mode "none" row (``n`` inside columns from ``lo``, written to ``out[s, r, lo:lo + n]``; no
    array views are made: a view's reference count is an atomic shared by the threads): read the stored values
    once each, blend in float32, rescale once, store."""
    if linear:
        for t in range(n):
            o = off[t]
            di = odi[t]
            dj = odj[t]
            p0 = _blend4_f32(flat, o, di, dj, wx[t], wy[t])
            p1 = _blend4_f32(flat, o + odk[t], di, dj, wx[t], wy[t])
            k0 = kk[t]
            out[s, r, lo + t] = _out_value(_fast_value(p0, p1, wz[t], k0, k0 + g1, slopes, intercepts, uniform), wnd)
    else:
        for t in range(n):
            k = kk[t]
            v = float(flat[off[t]])
            if uniform:
                v = v * slopes[0] + intercepts[0]
            else:
                v = v * slopes[k] + intercepts[k]
            out[s, r, lo + t] = _out_value(v, wnd)


@njit(inline="always", **_JIT)
def _pair_reads(flat, n, off, dj, dk, W):
    """Stage 2a of a row with pair reads (:mod:`._pairs`): the four x-neighbour pairs of each of the ``n``
    samples' lower corners (``off``) as int32 words in ``W[0..3]`` (a scalar loop: four loads a sample)."""
    for t in range(n):
        o = off[t]
        W[0, t] = load_pair(flat, o)
        W[1, t] = load_pair(flat, o + dj)
        W[2, t] = load_pair(flat, o + dk)
        W[3, t] = load_pair(flat, o + dk + dj)


@njit(inline="always", **_JIT)
def _pair_blends(n, W, wx, wy, pm, P0, P1):
    """Stage 2b: the float32 bilinear blends of the two slices (``P0``, ``P1``) from the words of
    :func:`_pair_reads` -- :func:`_blend4_f32`'s operations in its order, so the same float32 numbers; a loop
    without reads of the volume, which LLVM vectorises."""
    for t in range(n):
        fx = wx[t]
        fy = wy[t]
        w = W[0, t]
        a = pair_lo(w, pm)
        c0 = a + (pair_hi(w, pm) - a) * fx
        w = W[1, t]
        a = pair_lo(w, pm)
        c1 = a + (pair_hi(w, pm) - a) * fx
        P0[t] = c0 + (c1 - c0) * fy
        w = W[2, t]
        a = pair_lo(w, pm)
        c0 = a + (pair_hi(w, pm) - a) * fx
        w = W[3, t]
        a = pair_lo(w, pm)
        c1 = a + (pair_hi(w, pm) - a) * fx
        P1[t] = c0 + (c1 - c0) * fy


@njit(inline="always", **_JIT)
def _pair_row_none(flat, n, off, dj, dk, kk, wx, wy, wz, g1, pm, W, P0, P1, slopes, intercepts, uniform, plain, out,
                   s, r, lo, wnd):
    """Stage 2 of a mode "none" trilinear row with pair reads: :func:`_pair_reads`, :func:`_pair_blends`, then
    the z-blend, rescale and store (one vectorised loop when the rescale is uniform and no window is fused:
    ``plain``), the values of :func:`_fast_row_none` bit for bit."""
    _pair_reads(flat, n, off, dj, dk, W)
    _pair_blends(n, W, wx, wy, pm, P0, P1)
    if plain:
        s0 = slopes[0]
        t0 = intercepts[0]
        for t in range(n):
            p0 = P0[t]
            out[s, r, lo + t] = float(p0 + (P1[t] - p0) * wz[t]) * s0 + t0
    else:
        for t in range(n):
            k0 = kk[t]
            out[s, r, lo + t] = _out_value(_fast_value(P0[t], P1[t], wz[t], k0, k0 + g1, slopes, intercepts, uniform),
                                           wnd)


@njit(inline="always", **_JIT)
def _prefetch_row(flat, n, off, delta, dj, dk, phi):
    """Prefetch the four lower-corner rows (``o``, ``o + dj``, ``o + dk``, ``o + dk + dj``) of every PF_STEP-th
    sample of a row computed soon: this row's offsets ``off`` moved by ``delta`` (the rounded index-space step
    to that row), clamped to ``[0, phi]`` so every address is in the array."""
    for t in range(0, n, PF_STEP):
        o = min(max(off[t] + delta, 0), phi)
        prefetch(flat, o)
        prefetch(flat, o + dj)
        prefetch(flat, o + dk)
        prefetch(flat, o + dk + dj)


@njit(parallel=True, **_JIT)
def _resample_fast_kernel(flat, nz, ny, nx, bricked, js, ks, slopes, intercepts, uniform, A, b, linear, fill, eps,
                          nchunks, pairs, pm, TS, TR, TC, pfr, pfs, out, wnd):
    """mode "none" at the fast precision, on the plain (``bricked`` False) or bricked layout.

    Tiles of ``TS`` x ``TR`` x ``TC`` outputs (see RESAMPLE_TS), ``nchunks`` runs of consecutive tiles
    (neighbouring tiles share input cache lines, so one worker takes them one after the other); per output row
    of a tile the inside columns come from :func:`_row_range` (the outside ones get the fill without a test per
    sample), then stage 1 (coordinates, vectorised) and stage 2 (reads and blends). ``pairs`` (plain layout,
    trilinear, :func:`._pairs.pairs_apply`; ``pm`` its :func:`._pairs.pair_sign`): stage 2 reads x-neighbour
    pairs and blends in a separate vectorised loop (:func:`_pair_row_none`), same values. Plain layout, ``pfr``
    > 0: each row prefetches the row ``pfr`` rows below it, else ``pfs`` > 0: the row ``pfs`` output slices
    further (:func:`_prefetch_row`); same values.
    """
    for w in prange(nchunks):
        _resample_fast_task(np.int64(w), flat, nz, ny, nx, bricked, js, ks, slopes, intercepts, uniform, A, b, linear,
                            fill, eps, nchunks, pairs, pm, TS, TR, TC, pfr, pfs, out, wnd)


@njit(**_JIT)
def _resample_fast_task(w, flat, nz, ny, nx, bricked, js, ks, slopes, intercepts, uniform, A, b, linear, fill, eps,
                        nchunks, pairs, pm, TS, TR, TC, pfr, pfs, out, wnd):
    """Task ``w`` of :func:`_resample_fast_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
    ns, nr, nc = out.shape
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
    i00 = _recip(a00)
    i10 = _recip(a10)
    i20 = _recip(a20)
    ntc = (nc + TC - 1) // TC
    ntr = (nr + TR - 1) // TR
    nts = (ns + TS - 1) // TS
    ntiles = nts * ntr * ntc
    g1 = 1 if nz > 1 else 0
    fv = _out_value(fill, wnd)
    nflat = flat.size
    # the flat-index step to the prefetched row: rounded, near enough for a hint
    pdelta = int(round(pfr * a01)) + int(round(pfr * a11)) * nx + int(round(pfr * a21)) * nx * ny
    if pfr <= 0:
        pdelta = int(round(pfs * a02)) + int(round(pfs * a12)) * nx + int(round(pfs * a22)) * nx * ny
    phi = max(nflat - 1 - (nx * ny if nz > 1 else 0) - (nx if ny > 1 else 0), 0)
    nby8 = (ny + 7) >> BRICK_SHIFT
    nbx8 = (nx + 7) >> BRICK_SHIFT
    dj = nx if ny > 1 else 0
    dk = nx * ny if nz > 1 else 0
    plain = uniform and not wnd[0]
    pfr = pfr if not bricked else 0
    pfs = pfs if not bricked else 0
    W = np.zeros((4, TC), np.int32)
    P0 = np.zeros(TC, np.float32)
    P1 = np.zeros(TC, np.float32)
    off = np.zeros(TC, np.int64)
    odi = np.full(TC, 1 if nx > 1 else 0, np.int64)
    odj = np.full(TC, nx if ny > 1 else 0, np.int64)
    odk = np.full(TC, nx * ny if nz > 1 else 0, np.int64)
    kk = np.zeros(TC, np.int64)
    bb = np.zeros(TC, np.int64)
    wx = np.zeros(TC, np.float32)
    wy = np.zeros(TC, np.float32)
    wz = np.zeros(TC, np.float32)
    for q in range(w * ntiles // nchunks, (w + 1) * ntiles // nchunks):
        ts = q // (ntr * ntc)
        rem = q - ts * (ntr * ntc)
        tr = rem // ntc
        tc = rem - tr * ntc
        c0 = tc * TC
        c1 = min(nc, c0 + TC)
        for s in range(ts * TS, min(ns, ts * TS + TS)):
            qs0 = a02 * s
            qs1 = a12 * s
            qs2 = a22 * s
            for r in range(tr * TR, min(nr, tr * TR + TR)):
                pr0 = a01 * r
                pr1 = a11 * r
                pr2 = a21 * r
                lo, hi = _row_range(a00, a10, a20, i00, i10, i20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, c0,
                                    c1, xl, yl, zl, eps)
                if hi < lo:
                    lo = c1
                    hi = c1 - 1
                for c in range(c0, lo):
                    out[s, r, c] = fv
                for c in range(hi + 1, c1):
                    out[s, r, c] = fv
                if hi < lo:
                    continue
                if bricked:
                    _fast_coords_bricked(lo, hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2,
                                         nx, ny, nz, js, ks, linear, off, odi, odj, odk, kk, wx, wy, wz)
                elif linear:
                    _fast_coords_linear(lo, hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2,
                                        nx, ny, nz, off, kk, wx, wy, wz, bb, nby8, nbx8, False)
                else:
                    _fast_coords_nearest(lo, hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2,
                                         nx, ny, nz, off, kk, bb, nby8, nbx8)
                if (pfr > 0 and r + pfr < nr) or (pfr <= 0 and pfs > 0 and s + pfs < ns):
                    _prefetch_row(flat, hi - lo + 1, off, pdelta, dj, dk, phi)
                if pairs:
                    _pair_row_none(flat, hi - lo + 1, off, dj, dk, kk, wx, wy, wz, g1, pm, W, P0, P1, slopes,
                                   intercepts, uniform, plain, out, s, r, lo, wnd)
                else:
                    _fast_row_none(flat, hi - lo + 1, linear, off, odi, odj, odk, kk, wx, wy, wz, g1, slopes,
                                   intercepts, uniform, out, s, r, lo, wnd)


@njit(inline="always", **_JIT)
def _fast_row_combine(flat, n, linear, raw, off, di, dj, dk, kk, wx, wy, wz, bb, g1, slopes, intercepts, uniform, m,
                      skip, bext, acc, cnt, rr, t0):
    """Stage 2 of a projection row: each inside sample is counted, skipped when its brick cannot change the
    accumulator (``combine_skips``), else read, blended in float32 and combined by mode ``m`` into ``acc`` --
    raw blended values when ``raw`` (a uniform rescale, applied once at the end), else rescaled values. Entry
    ``t`` is ``acc[rr, t0 + t]`` (no views: see :func:`_fast_row_none`)."""
    for t in range(n):
        u = t0 + t
        cnt[rr, u] += 1
        a = acc[rr, u]
        if skip and combine_skips(bext[bb[t]], a, m):
            continue
        o = off[t]
        k0 = kk[t]
        if linear:
            p0 = _blend4_f32(flat, o, di, dj, wx[t], wy[t])
            p1 = _blend4_f32(flat, o + dk, di, dj, wx[t], wy[t])
            if raw:
                v = float(p0 + (p1 - p0) * wz[t])
            else:
                v = _fast_value(p0, p1, wz[t], k0, k0 + g1, slopes, intercepts, uniform)
        else:
            v = float(flat[o])
            if uniform:
                v = v * slopes[0] + intercepts[0]
            else:
                v = v * slopes[k0] + intercepts[k0]
        acc[rr, u] = combine_step(a, v, m)


@njit(inline="always", **_JIT)
def _pair_row_combine(flat, n, off, dj, dk, wx, wy, wz, bb, pm, W, P0, P1, CX, CY, CZ, U, m, skip, bext, acc, cnt,
                      rr, t0):
    """:func:`_fast_row_combine` for a trilinear raw combine with pair reads (:mod:`._pairs`): the samples that
    brick skipping keeps are read (a scalar loop; their weights and columns packed to the front of ``CX, CY, CZ,
    U``), blended in a vectorised loop (:func:`_pair_blends`) and combined -- the same values, combined into the
    same accumulators (each column of the row is another ray, so packing changes no order along a ray)."""
    if skip:
        na = 0
        for t in range(n):
            u = t0 + t
            cnt[rr, u] += 1
            if combine_skips(bext[bb[t]], acc[rr, u], m):
                continue
            o = off[t]
            W[0, na] = load_pair(flat, o)
            W[1, na] = load_pair(flat, o + dj)
            W[2, na] = load_pair(flat, o + dk)
            W[3, na] = load_pair(flat, o + dk + dj)
            CX[na] = wx[t]
            CY[na] = wy[t]
            CZ[na] = wz[t]
            U[na] = u
            na += 1
        _pair_blends(na, W, CX, CY, pm, P0, P1)
        for i in range(na):
            p0 = P0[i]
            u = U[i]
            acc[rr, u] = combine_step(acc[rr, u], float(p0 + (P1[i] - p0) * CZ[i]), m)
    else:
        for t in range(n):
            cnt[rr, t0 + t] += 1
        _pair_reads(flat, n, off, dj, dk, W)
        _pair_blends(n, W, wx, wy, pm, P0, P1)
        for t in range(n):
            p0 = P0[t]
            acc[rr, t0 + t] = combine_step(acc[rr, t0 + t], float(p0 + (P1[t] - p0) * wz[t]), m)


@njit(inline="always", **_JIT)
def _corner_span(a0, a1, a2, bb0, c0, c1, r0, r1, s0_, s1_, hi, nm2, extra):
    """The range of fast lower-corner indices (``min(floor(clamp(x)), nm2)``, plus ``extra`` above for nearest's
    ``floor(x + 0.5)``) of the samples ``((a0 * c + a1 * r) + a2 * s) + bb0`` over the box ``c0..c1, r0..r1,
    s0_..s1_``: each float64 operation is monotone in each of ``c, r, s``, so the extremes are at the eight corners
    (exactly: the same expressions as the samples')."""
    lo = 1 << 62
    top = -1
    for ci in range(2):
        c = c0 if ci == 0 else c1
        for ri in range(2):
            r = r0 if ri == 0 else r1
            for si in range(2):
                s = s0_ if si == 0 else s1_
                x = ((a0 * c + a1 * r) + a2 * s) + bb0
                if x < 0.0:
                    x = 0.0
                if x > hi:
                    x = hi
                i = min(int(x), nm2)
                lo = min(lo, i)
                top = max(top, i)
    return lo, min(top + extra, int(hi))


@njit(inline="always", **_JIT)
def _box_bound(bext, bk0, bk1, bj0, bj1, bi0, bi1, nby8, nbx8, mode):
    """The largest (max mode) or smallest (min mode) brick bound of the brick box; NaN when one of them is."""
    bound = -math.inf if mode == MODE_MAX else math.inf
    for bk in range(bk0, bk1 + 1):
        for bj in range(bj0, bj1 + 1):
            o = (bk * nby8 + bj) * nbx8
            for bi in range(bi0, bi1 + 1):
                v = bext[o + bi]
                if v != v:
                    return v
                if mode == MODE_MAX:
                    if v > bound:
                        bound = v
                elif v < bound:
                    bound = v
    return bound


@njit(parallel=True, **_JIT)
def _project_fast_kernel(data, slopes, intercepts, uniform, A, b, ns, mode, linear, raw, s0, t0, fill, eps, skip,
                         bext, pre, nchunks, pairs, pm, groups, out, wnd):
    """max / min / mean projection at the fast precision: tiles of FAST_TR x FAST_TC rays marched together, step
    by step (the tile's input footprint at one step is a small patch, reused by the next step), each output row
    clipped to its inside columns (:func:`_row_range`), stages 1 and 2 as in mode "none".

    ``raw``: the rescale is uniform and linear blends are combined unrescaled by ``mode`` (already mirrored by the
    caller for a negative slope), then rescaled once per ray (``* s0 + t0``). ``skip``: ``bext`` (raveled, in the
    space of the combined values) holds each 8^3 brick's bound for ``combine_skips``, and every ray is first marched
    at every PRE_STEP-th step: max and min select one of the values whatever the order, and the first pass gives
    each ray a value its result cannot be below (max), so the second pass skips from the ray's first sample on
    (``pre``: PRE_STEP).
    In the second pass the rays of a tile are also tested in groups before any sample is computed: for each block
    of GROUP_S steps and GROUP_C columns of the tile's rows, the brick box holding every sample of the group
    (:func:`_corner_span`) is compared with the group's lowest accumulator (max; highest for min; rays without any
    inside sample left out): when :func:`combine_skips` holds for the box's bound (:func:`_box_bound`), no sample
    of the group can change its ray, and the group's coordinates and reads are skipped. For max / min ``cnt`` is
    then only a zero test (a skipped ray already has a sample).
    Without skipping (mean, or no bricks) samples are combined in order of ``s``; nearest (whose values are the
    reference's) gives the reference's result bit for bit in every mode. ``pairs`` (trilinear, ``raw``,
    :func:`._pairs.pairs_apply`; ``pm`` its sign mask): stage 2 is :func:`_pair_row_combine`, same values.
    """
    for w in prange(nchunks):
        _project_fast_task(np.int64(w), data, slopes, intercepts, uniform, A, b, ns, mode, linear, raw, s0, t0, fill,
                           eps, skip, bext, pre, nchunks, pairs, pm, groups, out, wnd)


@njit(**_JIT)
def _project_fast_task(w, data, slopes, intercepts, uniform, A, b, ns, mode, linear, raw, s0, t0, fill, eps, skip,
                       bext, pre, nchunks, pairs, pm, groups, out, wnd):
    """Task ``w`` of :func:`_project_fast_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
    nz, ny, nx = data.shape
    flat = data.ravel()
    nr, nc = out.shape
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a01, a02, b0 = A[0, 0], A[0, 1], A[0, 2], b[0]
    a10, a11, a12, b1 = A[1, 0], A[1, 1], A[1, 2], b[1]
    a20, a21, a22, b2 = A[2, 0], A[2, 1], A[2, 2], b[2]
    i00 = _recip(a00)
    i10 = _recip(a10)
    i20 = _recip(a20)
    TC = FAST_TC
    TR = FAST_TR
    ntc = (nc + TC - 1) // TC
    ntr = (nr + TR - 1) // TR
    ntiles = ntr * ntc
    di = 1 if nx > 1 else 0
    dj = nx if ny > 1 else 0
    dk = nx * ny if nz > 1 else 0
    g1 = 1 if nz > 1 else 0
    nby8 = (ny + 7) >> BRICK_SHIFT
    nbx8 = (nx + 7) >> BRICK_SHIFT
    GC = GROUP_C
    GS = GROUP_S
    ngr = (TC + GC - 1) // GC
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    nxm2 = max(nx - 2, 0)
    nym2 = max(ny - 2, 0)
    nzm2 = max(nz - 2, 0)
    ext = 0 if linear else 1
    off = np.zeros(TC, np.int64)
    kk = np.zeros(TC, np.int64)
    bb = np.zeros(TC, np.int64)
    wx = np.zeros(TC, np.float32)
    wy = np.zeros(TC, np.float32)
    wz = np.zeros(TC, np.float32)
    W = np.zeros((4, TC), np.int32)
    P0 = np.zeros(TC, np.float32)
    P1 = np.zeros(TC, np.float32)
    CX = np.zeros(TC, np.float32)
    CY = np.zeros(TC, np.float32)
    CZ = np.zeros(TC, np.float32)
    U = np.zeros(TC, np.int64)
    acc = np.empty((TR, TC), np.float64)
    cnt = np.empty((TR, TC), np.int64)
    dead = np.zeros((TR, TC), np.bool_)
    gskip = np.zeros(ngr, np.bool_)
    for q in range(w * ntiles // nchunks, (w + 1) * ntiles // nchunks):
        tr = q // ntc
        tc = q - tr * ntc
        r0 = tr * TR
        r1 = min(nr, r0 + TR)
        c0 = tc * TC
        c1 = min(nc, c0 + TC)
        a_init = combine_init(mode)
        for i in range(TR):
            for t in range(TC):
                acc[i, t] = a_init
                cnt[i, t] = 0
        # with skipping, a first pass over every PRE_STEP-th step gives each ray a value its result cannot be
        # below (max / min select, in any order), so the second pass skips from the ray's first sample on
        for g in range(ngr):
            gskip[g] = False
        for pss in range(2 if skip else 1):
          grouped = skip and pss == 1 and groups
          if grouped:
              # rays without any inside sample (none in the first pass, and none at all) take no part in the
              # groups' test
              for i in range(TR):
                  for t in range(TC):
                      r = r0 + i
                      c = c0 + t
                      dd = r >= r1 or c >= c1
                      if not dd and cnt[i, t] == 0:
                          rlo, rhi = _ray_range(a00 * c + a01 * r, a10 * c + a11 * r, a20 * c + a21 * r, a02, a12,
                                                a22, b0, b1, b2, ns, xl, yl, zl, eps)
                          dd = rhi < rlo
                      dead[i, t] = dd
          blk = -1
          for s in range(ns):
            if skip and ((s % pre == 0) != (pss == 0)):
                continue
            if grouped and s // GS != blk:
                # the groups' test for steps s (the block's first step of this pass) .. the block's end
                blk = s // GS
                se = min(ns, blk * GS + GS) - 1
                for g in range(ngr):
                    gc0 = c0 + g * GC
                    gc1 = min(c1, gc0 + GC) - 1
                    if gc0 > gc1:
                        gskip[g] = True
                        continue
                    agg = math.inf if mode == MODE_MAX else -math.inf
                    for i in range(r1 - r0):
                        for t in range(gc0 - c0, gc1 - c0 + 1):
                            if dead[i, t]:
                                continue
                            a = acc[i, t]
                            if a != a:
                                agg = a
                            elif mode == MODE_MAX:
                                if a < agg:
                                    agg = a
                            elif a > agg:
                                agg = a
                    if agg != agg or agg == combine_init(mode):
                        gskip[g] = False
                        continue
                    li, hx = _corner_span(a00, a01, a02, b0, gc0, gc1, r0, r1 - 1, s, se, xm, nxm2, ext)
                    lj, hy = _corner_span(a10, a11, a12, b1, gc0, gc1, r0, r1 - 1, s, se, ym, nym2, ext)
                    lk, hz = _corner_span(a20, a21, a22, b2, gc0, gc1, r0, r1 - 1, s, se, zm, nzm2, ext)
                    bound = _box_bound(bext, lk >> BRICK_SHIFT, hz >> BRICK_SHIFT, lj >> BRICK_SHIFT,
                                       hy >> BRICK_SHIFT, li >> BRICK_SHIFT, hx >> BRICK_SHIFT, nby8, nbx8, mode)
                    gskip[g] = combine_skips(bound, agg, mode)
            qs0 = a02 * s
            qs1 = a12 * s
            qs2 = a22 * s
            for r in range(r0, r1):
                pr0 = a01 * r
                pr1 = a11 * r
                pr2 = a21 * r
                lo, hi = _row_range(a00, a10, a20, i00, i10, i20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, c0,
                                    c1, xl, yl, zl, eps)
                g = 0
                while lo <= hi:
                    # the next run of columns lo..e (whole row, or consecutive unskipped groups)
                    e = hi
                    if grouped:
                        g = (lo - c0) // GC
                        while g < ngr and gskip[g]:
                            g += 1
                        if g >= ngr:
                            break
                        lo = max(lo, c0 + g * GC)
                        g2 = g
                        while g2 + 1 < ngr and not gskip[g2 + 1]:
                            g2 += 1
                        e = min(hi, c0 + (g2 + 1) * GC - 1)
                        if lo > e:
                            break
                    if linear:
                        _fast_coords_linear(lo, e, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2,
                                            nx, ny, nz, off, kk, wx, wy, wz, bb, nby8, nbx8, True)
                    else:
                        _fast_coords_nearest(lo, e, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2,
                                             nx, ny, nz, off, kk, bb, nby8, nbx8)
                    if pairs:
                        _pair_row_combine(flat, e - lo + 1, off, dj, dk, wx, wy, wz, bb, pm, W, P0, P1, CX, CY,
                                          CZ, U, mode, skip, bext, acc, cnt, r - r0, lo - c0)
                    else:
                        _fast_row_combine(flat, e - lo + 1, linear, raw, off, di, dj, dk, kk, wx, wy, wz, bb, g1,
                                          slopes, intercepts, uniform, mode, skip, bext, acc, cnt, r - r0, lo - c0)
                    lo = e + 1
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = combine_finish(acc[r - r0, c - c0], cnt[r - r0, c - c0], mode, fill)
                if raw and cnt[r - r0, c - c0] > 0:
                    v = v * s0 + t0
                out[r, c] = _out_value(v, wnd)


#: tile of the slice-order projection kernel: SLICE_TC columns x SLICE_SB steps (its footprint in one slice, a
#: small patch, is read once per slice; its two slices' blends are 2 x SLICE_SB x SLICE_TC float32)
SLICE_TC = 64
SLICE_SB = 32


@njit(parallel=True, **_JIT)
def _project_slices_kernel(data, slopes, intercepts, uniform, A, b, ns, mode, linear, raw, s0, t0, fill, eps,
                           nchunks, pairs, pm, out, wnd):
    """Slice-order ("shear-warp style") max / min / mean projection at the fast precision, for index maps whose
    slice coordinate ``z`` depends on the output row only and whose in-slice coordinates ``x, y`` do not depend
    on it (``A[2, 0] == A[2, 2] == A[0, 1] == A[1, 1] == 0``: a projection along a direction inside the slices,
    rows along the slice normal -- every frame of ``rotating_mip`` about the slice axis of an unsheared volume).

    Every sample of row ``r`` then lies in the plane ``z = z(r)``, and the ray-order fast path reads, per sample,
    the float32 bilinear blends ``p0``, ``p1`` of slices ``k0`` and ``k0 + 1`` at ``(x(c, s), y(c, s))`` and blends
    them along z with ``fz(r)``. This kernel computes each slice's blend ``p`` once per in-slice point and reuses
    it for every row that reads that slice: for a tile of SLICE_TC columns x SLICE_SB steps, slices are visited in
    memory order (each slice's small footprint read once), the tile's blends of slice ``k`` kept next to those of
    slice ``k - 1``, and every row whose lower slice is ``k - 1`` combines the z-blends of the two (a contiguous,
    vectorised loop). The coordinates, the inside test, the weights, the order of every float32 and float64
    operation and, for each ray, the order of ``s`` are the ray-order kernel's (:func:`_project_fast_kernel`), so
    the result is identical to it bit for bit (max and min select a value, whatever the order; the mean's sum runs
    in order of ``s``) -- not an approximation. Nearest reads the voxel of ``floor(x + 0.5)`` in slice
    ``floor(z + 0.5)``, as the ray-order kernel does. ``pairs`` (trilinear, :func:`._pairs.pairs_apply`; ``pm`` its
    sign mask): each tile row's x-neighbour pairs are read first (two loads a point), then blended in a vectorised
    loop -- the same float32 blends.
    """
    for w in prange(nchunks):
        _project_slices_task(np.int64(w), data, slopes, intercepts, uniform, A, b, ns, mode, linear, raw, s0, t0,
                             fill, eps, nchunks, pairs, pm, out, wnd)


@njit(**_JIT)
def _project_slices_task(w, data, slopes, intercepts, uniform, A, b, ns, mode, linear, raw, s0, t0, fill, eps,
                         nchunks, pairs, pm, out, wnd):
    """Task ``w`` of :func:`_project_slices_kernel`: its ``prange`` body (see :mod:`gpukit.backends._jit`)."""
    nz, ny, nx = data.shape
    flat = data.ravel()
    nr, nc = out.shape
    nxy = nx * ny
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    a00, a02, b0 = A[0, 0], A[0, 2], b[0]
    a10, a12, b1 = A[1, 0], A[1, 2], b[1]
    a21, b2 = A[2, 1], b[2]
    i00 = _recip(a00)
    i10 = _recip(a10)
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    nxm2 = max(nx - 2, 0)
    nym2 = max(ny - 2, 0)
    nzm2 = max(nz - 2, 0)
    di = 1 if nx > 1 else 0
    dj = nx if ny > 1 else 0
    g1 = 1 if (nz > 1 and linear) else 0
    # per row: inside in z?, its lower slice and z weight (the ray-order kernel's numbers: z = a21 * r + b2);
    # rows grouped by the slice after which they can be combined (their upper one, k0 + g1)
    rin = np.zeros(nr, np.bool_)
    rk = np.zeros(nr, np.int64)
    rf = np.zeros(nr, np.float32)
    need = np.zeros(nz, np.bool_)
    gcount = np.zeros(nz + 1, np.int64)
    for r in range(nr):
        z = a21 * r + b2
        if z >= -eps and z <= zl:
            rin[r] = True
            if linear:
                k0, fz = _fast_axis(z, zm, nzm2)
                rf[r] = fz
            else:
                k0 = int(math.floor(_clamp(z, zm) + 0.5))
            rk[r] = k0
            need[k0] = True
            need[k0 + g1] = True
            gcount[k0 + g1 + 1] += 1
    for k in range(nz):
        gcount[k + 1] += gcount[k]
    grows = np.zeros(max(gcount[nz], 1), np.int64)
    gfill = gcount[:nz].copy()
    for r in range(nr):
        if rin[r]:
            g = rk[r] + g1
            grows[gfill[g]] = r
            gfill[g] += 1
    TC = SLICE_TC
    SB = SLICE_SB
    sel = raw and mode != MODE_MEAN     # float32 accumulators (max / min of float32 values)
    ntiles = (nc + TC - 1) // TC
    off = np.zeros((SB, TC), np.int64)
    wx = np.zeros((SB, TC), np.float32)
    wy = np.zeros((SB, TC), np.float32)
    slo = np.zeros(SB, np.int64)
    shi = np.zeros(SB, np.int64)
    msk = np.zeros((SB, TC), np.bool_)
    Q = np.zeros((2, SB, TC), np.float32)
    W2 = np.zeros((2, TC), np.int32)
    acc = np.empty((nr, TC), np.float64)
    acc32 = np.empty((nr, TC), np.float32)
    cnt = np.zeros(TC, np.int64)
    for q in range(w * ntiles // nchunks, (w + 1) * ntiles // nchunks):
        c0 = q * TC
        c1 = min(nc, c0 + TC)
        a_init = combine_init(mode)
        for r in range(nr):
            for t in range(TC):
                acc[r, t] = a_init
                acc32[r, t] = a_init
        for t in range(TC):
            cnt[t] = 0
        for sb0 in range(0, ns, SB):
            nsb = min(SB, ns - sb0)
            na = 0
            for si in range(nsb):
                s = sb0 + si
                qs0 = a02 * s
                qs1 = a12 * s
                # the in-slice inside columns of step s (z is tested per row above)
                lo, hi = _row_range(a00, a10, 0.0, i00, i10, 0.0, 0.0, 0.0, 0.0, qs0, qs1, 0.0, b0, b1, 0.0,
                                    c0, c1, xl, yl, zl, eps)
                if hi < lo:
                    continue
                slo[na] = lo - c0
                shi[na] = hi - c0 + 1
                # every column of the tile (clamped: valid offsets; the outside ones are masked off below), so
                # the loops over a tile row have a fixed length and vectorise
                for u in range(TC):
                    c = c0 + u
                    x = ((a00 * c + 0.0) + qs0) + b0
                    y = ((a10 * c + 0.0) + qs1) + b1
                    if linear:
                        i0, fx = _fast_axis(x, xm, nxm2)
                        j0, fy = _fast_axis(y, ym, nym2)
                        wx[na, u] = fx
                        wy[na, u] = fy
                    else:
                        i0 = int(math.floor(_clamp(x, xm) + 0.5))
                        j0 = int(math.floor(_clamp(y, ym) + 0.5))
                    off[na, u] = j0 * nx + i0
                    inn = u >= lo - c0 and u <= hi - c0
                    msk[na, u] = inn
                    if inn:
                        cnt[u] += 1
                na += 1
            if na == 0:
                continue
            for k in range(nz):
                if not need[k]:
                    continue
                base = k * nxy
                h = k & 1
                for si in range(na):
                    if pairs:
                        for u in range(TC):
                            po = base + off[si, u]
                            W2[0, u] = load_pair(flat, po)
                            W2[1, u] = load_pair(flat, po + dj)
                        for u in range(TC):
                            qx = wx[si, u]
                            pw = W2[0, u]
                            qa = pair_lo(pw, pm)
                            e0 = qa + (pair_hi(pw, pm) - qa) * qx
                            pw = W2[1, u]
                            qa = pair_lo(pw, pm)
                            e1 = qa + (pair_hi(pw, pm) - qa) * qx
                            Q[h, si, u] = e0 + (e1 - e0) * wy[si, u]
                    elif linear:
                        for u in range(TC):
                            Q[h, si, u] = _blend4_f32(flat, base + off[si, u], di, dj, wx[si, u], wy[si, u])
                    else:
                        for u in range(TC):
                            Q[h, si, u] = np.float32(flat[base + off[si, u]])
                for gi in range(gcount[k], gcount[k + 1]):
                    r = grows[gi]
                    k0 = rk[r]
                    ha = k0 & 1
                    if not linear:
                        sk = slopes[0] if uniform else slopes[k0]
                        tk = intercepts[0] if uniform else intercepts[k0]
                        for si in range(na):
                            for u in range(slo[si], shi[si]):
                                v = float(Q[ha, si, u]) * sk + tk
                                acc[r, u] = combine_step(acc[r, u], v, mode)
                    elif sel:
                        _slice_rows_sel(Q, ha, h, rf[r], msk, na, acc32, r, mode)
                    elif raw:
                        fz = rf[r]
                        for si in range(na):
                            for u in range(slo[si], shi[si]):
                                p0 = Q[ha, si, u]
                                acc[r, u] += float(p0 + (Q[h, si, u] - p0) * fz)
                    else:
                        fz = rf[r]
                        for si in range(na):
                            for u in range(slo[si], shi[si]):
                                v = _fast_value(Q[ha, si, u], Q[h, si, u], fz, k0, k, slopes, intercepts,
                                                uniform)
                                acc[r, u] = combine_step(acc[r, u], v, mode)
        for r in range(nr):
            for c in range(c0, c1):
                m = cnt[c - c0] if rin[r] else 0
                a = float(acc32[r, c - c0]) if sel else acc[r, c - c0]
                v = combine_finish(a, m, mode, fill)
                if raw and m > 0:
                    v = v * s0 + t0
                out[r, c] = _out_value(v, wnd)


@njit(inline="always", **_JIT)
def _slice_rows_sel(Q, ha, hb, fz, msk, na, acc32, r, m):
    """Rows of :func:`_project_slices_kernel` for a raw max / min: the float32 z-blend of ``Q[ha]`` and ``Q[hb]``
    selected into ``acc32[r]`` over the tile's ``na`` steps where ``msk`` (the inside samples) is set (blends of
    integers are finite: no NaN to take); one fixed-length loop per mode, so each vectorises."""
    TC = SLICE_TC
    if m == MODE_MAX:
        for si in range(na):
            for u in range(TC):
                p0 = Q[ha, si, u]
                v = p0 + (Q[hb, si, u] - p0) * fz
                a = acc32[r, u]
                acc32[r, u] = v if (msk[si, u] and v > a) else a
    else:
        for si in range(na):
            for u in range(TC):
                p0 = Q[ha, si, u]
                v = p0 + (Q[hb, si, u] - p0) * fz
                a = acc32[r, u]
                acc32[r, u] = v if (msk[si, u] and v < a) else a


def slice_order_applies(A, code) -> bool:
    """Whether :func:`_project_slices_kernel` computes this projection (mode ``code``, index map ``A``): a
    projection whose slice coordinate depends on the output row only and whose in-slice coordinates do not."""
    A = np.asarray(A, dtype=np.float64)
    return code != MODE_NONE and A[2, 0] == 0.0 and A[2, 2] == 0.0 and A[0, 1] == 0.0 and A[1, 1] == 0.0


#: the fast projections take the slice-order kernel where it applies (set False to force ray order, for tests)
SLICE_ORDER = True
#: the fast trilinear kernels read x-neighbour pairs of 16-bit values where :func:`._pairs.pairs_apply` (set False
#: to force the one-value reads, for tests: same values)
PAIRS = True


def _nchunks(ntiles: int) -> int:
    """Workers for the fast kernels' tiles: a few runs of consecutive tiles per thread."""
    import numba

    return max(1, min(int(ntiles), 4 * numba.get_num_threads()))


def _raw_bricks(bricks, mode_code, s0, t0):
    """The brick bounds of :func:`brick_extrema` (rescaled) in stored units for the raw combine of mode
    ``mode_code`` (already mirrored for a negative slope): ``rint((b - t0) / s0)`` -- the stored extremes, exactly,
    since the volume's values are integers -- the larger of the two for max, the smaller for min."""
    r1 = np.rint((bricks[0] - t0) / s0)
    r2 = np.rint((bricks[1] - t0) / s0)
    return np.maximum(r1, r2) if mode_code == MODE_MAX else np.minimum(r1, r2)


def _sample_fast(data, slopes, intercepts, A, b, ns, code, linear, fill, out, wnd, bricks, uniform):
    """The fast-precision dispatch of :func:`sample_grid` (``data`` 8/16-bit integers)."""
    nz, ny, nx = data.shape
    if code == MODE_NONE:
        nso, nr, nc = out.shape
        if nso == 1:
            ts, tr, tc, pfr, pfs = 1, FAST_TR, PLANE_TC, PREFETCH_ROWS, 0
        else:
            ts, tr, tc, pfr, pfs = RESAMPLE_TS, 1, RESAMPLE_TC, 0, PREFETCH_SLICES
        ntiles = (-(-nso // ts)) * (-(-nr // tr)) * (-(-nc // tc))
        pairs = bool(linear and PAIRS and pairs_apply(data, nx))
        _resample_fast_kernel(data.ravel(), nz, ny, nx, False, 0, 0, slopes, intercepts, uniform, A, b, linear,
                              float(fill), EPS, _nchunks(ntiles), pairs, pair_sign(data), ts, tr, tc, pfr, pfs, out,
                              wnd)
        return out
    nr, nc = out.shape
    s0 = float(slopes[0])
    t0 = float(intercepts[0])
    raw = bool(linear and uniform and s0 != 0.0)
    mode = code
    if raw and s0 < 0:
        mode = combine_mirror(code)
    if SLICE_ORDER and slice_order_applies(A, code):
        nct = -(-nc // SLICE_TC)
        pairs = bool(linear and PAIRS and pairs_apply(data, nx))
        _project_slices_kernel(data, slopes, intercepts, uniform, A, b, int(ns), mode, linear, raw, s0, t0,
                               float(fill), EPS, nct, pairs, pair_sign(data), out, wnd)
        return out
    skip = bricks is not None and code in (MODE_MAX, MODE_MIN) and ns >= BRICK_MIN_STEPS
    if skip:
        bext = _raw_bricks(bricks, mode, s0, t0) if raw else (bricks[0] if code == MODE_MAX else bricks[1])
        bext = np.ascontiguousarray(bext, dtype=np.float64).ravel()
    else:
        bext = np.zeros(1, np.float64)
    ntiles = (-(-nr // FAST_TR)) * (-(-nc // FAST_TC))
    pairs = bool(raw and PAIRS and pairs_apply(data, nx))
    pre = PRE_STEP if ns < PRE_LONG_STEPS else 2 * PRE_STEP
    _project_fast_kernel(data, slopes, intercepts, uniform, A, b, int(ns), mode, linear, raw, s0, t0, float(fill),
                         EPS, skip, bext, int(pre), _nchunks(ntiles), pairs, pair_sign(data), bool(GROUPS), out,
                         wnd)
    return out


def sample_grid_bricked(bricked, shape, slopes, intercepts, A, b, grid, interp, fill, out, window=None,
                        precision="exact"):
    """mode "none" sampling of a volume held by :func:`to_bricks` (``shape`` = the volume's (nz, ny, nx)).

    ``window``: as in :func:`sample_grid` (the windowed image into an integer ``out``, in the same pass).
    """
    flat, nb = bricked
    slopes = np.ascontiguousarray(slopes, dtype=np.float64)
    intercepts = np.ascontiguousarray(intercepts, dtype=np.float64)
    uniform = bool(np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]))
    nz, ny, nx = shape
    if precision == "fast" and fast_applies(flat):
        sh = LAYOUT_SHIFT
        nso, nr, nc = out.shape
        ntiles = (-(-nso // FAST_TS)) * (-(-nr // FAST_TR)) * (-(-nc // FAST_TC))
        _resample_fast_kernel(flat, nz, ny, nx, True, nb[2] << (3 * sh), (nb[1] * nb[2]) << (3 * sh), slopes,
                              intercepts, uniform, np.ascontiguousarray(A, dtype=np.float64),
                              np.ascontiguousarray(b, dtype=np.float64), interp == "linear", float(fill), EPS,
                              _nchunks(ntiles), False, 0, FAST_TS, FAST_TR, FAST_TC, 0, 0, out,
                              _window_args(window, out))
        return out
    _reslice_bricked_kernel(flat, nz, ny, nx, nb[1], nb[2], slopes, intercepts, uniform,
                            np.ascontiguousarray(A, dtype=np.float64), np.ascontiguousarray(b, dtype=np.float64),
                            interp == "linear", float(fill), EPS, out, _window_args(window, out))
    return out


#: outputs of at least this many bytes are advised to the kernel as transparent huge pages before the first write
HUGE_OUTPUT_BYTES = 32 << 20


def _advise_huge_pages(out) -> None:
    """``madvise(MADV_HUGEPAGE)`` on the 2 MiB pages wholly inside ``out`` (Linux, large outputs only): a fresh
    512^3 float32 output then faults in 256 huge pages instead of 131072 small ones, which is much of a full
    resample's time on a loaded machine. Advice only: nothing changes where it is refused or unsupported (the
    values written are the same either way)."""
    import sys

    if not sys.platform.startswith("linux") or not isinstance(out, np.ndarray) or out.nbytes < HUGE_OUTPUT_BYTES:
        return
    try:
        import ctypes
        import mmap

        advice = getattr(mmap, "MADV_HUGEPAGE", None)
        if advice is None:
            return
        global _MADVISE
        if _MADVISE is None:
            fn = ctypes.CDLL(None, use_errno=True).madvise
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            fn.restype = ctypes.c_int
            _MADVISE = fn
        h = 2 << 20
        start = (out.ctypes.data + h - 1) & ~(h - 1)
        end = (out.ctypes.data + out.nbytes) & ~(h - 1)
        if end > start:
            _MADVISE(start, end - start, advice)
    except (OSError, AttributeError, TypeError, ValueError):
        return


_MADVISE = None


def sample_grid(data, slopes, intercepts, A, b, grid, mode, interp, fill, out, window=None, bricks=None,
                precision="exact"):
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
        _advise_huge_pages(out)
    if precision == "fast" and fast_applies(data):
        return _sample_fast(data, slopes, intercepts, A, b, ns, code, linear, fill, out, wnd, bricks, uniform)
    if code == MODE_NONE:
        _resample_kernel(data, slopes, intercepts, uniform, A, b, linear, float(fill), EPS, out, wnd)
    elif bricks is not None and code in (MODE_MAX, MODE_MIN) and ns >= BRICK_MIN_STEPS:
        bext = bricks[0] if code == MODE_MAX else bricks[1]
        _project_bricks_kernel(data, slopes, intercepts, uniform, A, b, ns, code, linear, float(fill), EPS, bext, out,
                               wnd)
    else:
        _project_kernel(data, slopes, intercepts, uniform, A, b, ns, code, linear, float(fill), EPS, out, wnd)
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
    precisions = ("exact", "fast") if fast_applies(small) else ("exact",)
    for precision in precisions:
        for mode in modes:
            for interp in interps:
                if mode == "none":
                    dt = np.int16 if (interp == "nearest" and out_dtype == np.int16) else np.float32
                    sample_grid(small, one, zero, A, b, (1, 2, 2), mode, interp, 0.0, np.empty((1, 2, 2), dt),
                                precision=precision)
                else:
                    sample_grid(small, one, zero, A, b, (2, 2, 2), mode, interp, 0.0, np.empty((2, 2), np.float32),
                                precision=precision)
                    if precision == "fast":     # the slice-order kernel (z from the row only)
                        P = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
                        sample_grid(small, one, zero, P, b, (2, 2, 2), mode, interp, 0.0,
                                    np.empty((2, 2), np.float32), precision=precision)


__all__ = ["sample_grid", "slice_extrema", "sampler_warmup", "brick_extrema", "to_bricks",
           "sample_grid_bricked", "fast_bound", "fast_applies", "slice_order_applies"]
