"""Per-sample scalar code of the geometric sampler, shared by the Numba CPU and Numba CUDA kernels.

One definition, two targets (DESIGN.md: "Kernel math shared by the Numba CPU
and Numba CUDA kernels lives once"): :mod:`gpukit.backends.numba.sampler`'s
``@njit(parallel=True)`` kernels and :mod:`gpukit.backends.numba_cuda.kernels`'
``@cuda.jit`` kernels both call these ``@njit`` functions (numba-cuda
compiles an ``@njit`` callee for the CUDA target of the kernel that calls it).
They restate the rule of :mod:`gpukit.backends.numpy.sampler` (read its
docstring) with the same float64 expressions in the same order:

* :func:`_inside`: ``-eps <= x <= n - 1 + eps`` on each axis;
* :func:`_clamp`: to ``[0, n - 1]``;
* :func:`_linear`: eight neighbours clamped to the edge, ``a + (b - a) * f``
  along x then y, per-slice rescale of the two slices then the blend along z
  (or one rescale at the end when every slice has the same one);
* :func:`_nearest`: ``floor(x + 0.5)``, rescaled with its slice's rescale;
* :func:`_ray_combine`: one projection ray, clipped, read and combined (the
  ``project`` kernels of both targets are a loop over rays calling it);
* the "fast" precision (:data:`gpukit.backends.codes.PRECISIONS`): :func:`_fast_axis`,
  :func:`_blend4_f32`, :func:`_fast_value` (float32 weights and blends of the
  stored values, one rescale per output value), :func:`_linear_fast` (one
  sample of them), :func:`_row_inside` / :func:`_row_range` (the inside columns
  of an output row, with the exact test); the error bound is stated in
  :mod:`gpukit.backends.numba.sampler`;
* :func:`_ray_range`: the first and last step ``s`` of a ray whose sample is
  inside (an analytic estimate per axis, :func:`_axis_window`, then refined
  with the exact test, which is monotone along a ray because each coordinate
  ``(base + a * s) + b`` is a monotone function of ``s`` in floating point);
* the combine rule along ``s`` (the modes of :data:`gpukit.backends.codes.MODES`),
  written once: :func:`combine_init` (the accumulator before the first
  sample), :func:`combine_step` (max / min with the NaN rule of
  ``np.maximum`` / ``np.minimum``: a NaN sample makes the result NaN; mean
  sums), :func:`combine_finish` (``fill`` for a ray with no sample, the mean's
  division by the count). The axis-aligned fast paths also ask
  :func:`combine_selects` (the result is one of the values: max and min, which
  may be reduced in the stored dtype and commute with a monotone rescale),
  :func:`combine_mirror` (the mode that gives the same result through a
  decreasing rescale: max and min swap) and :func:`combine_skips` (the brick
  skipping test of max / min). Modes are compared with the codes of
  :data:`~gpukit.backends.codes.MODES`, never with literals; ``kernels/gpukit_common.cuh``
  restates these helpers for CUDA C++ (``gk_combine_*``).

Only ``math`` and arithmetic on scalars and 1-D array reads (no numpy calls but
``np.float32`` casts, no allocation), so they compile for both targets. ``fastmath`` stays off; the
CUDA kernels also compile with FMA contraction off (see ``nbcuda_kernels``),
so ``a * b + c`` rounds twice on both targets, as in numpy.

Numba's on-disk cache keys a kernel on its own source file only: after
editing this file, delete the ``*.nbi``/``*.nbc`` files under
``gpukit/backends/__pycache__`` or the CPU kernels keep the old code.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import njit
from .codes import MODES

_JIT = dict(cache=True, fastmath=False, nogil=True)

# the mode codes the combine helpers compare with (compile-time constants in every kernel)
MODE_NONE = MODES["none"]
MODE_MAX = MODES["max"]
MODE_MIN = MODES["min"]
MODE_MEAN = MODES["mean"]


@njit(inline="always", **_JIT)
def _clamp(x, hi):
    if x < 0.0:
        return 0.0
    if x > hi:
        return hi
    return x


@njit(inline="always", **_JIT)
def _linear(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z):
    """Trilinear value at an inside point of the raveled volume (the numpy reference's arithmetic)."""
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    x = _clamp(x, xm)
    y = _clamp(y, ym)
    z = _clamp(z, zm)
    i0 = int(math.floor(x))
    j0 = int(math.floor(y))
    k0 = int(math.floor(z))
    fx = x - i0
    fy = y - j0
    fz = z - k0
    di = 1 if i0 < nx - 1 else 0
    dj = nx if j0 < ny - 1 else 0
    dk = nx * ny if k0 < nz - 1 else 0
    o = (k0 * ny + j0) * nx + i0
    a = float(flat[o])
    c00 = a + (float(flat[o + di]) - a) * fx
    o1 = o + dj
    a = float(flat[o1])
    c01 = a + (float(flat[o1 + di]) - a) * fx
    p0 = c00 + (c01 - c00) * fy
    o2 = o + dk
    a = float(flat[o2])
    c10 = a + (float(flat[o2 + di]) - a) * fx
    o3 = o2 + dj
    a = float(flat[o3])
    c11 = a + (float(flat[o3 + di]) - a) * fx
    p1 = c10 + (c11 - c10) * fy
    if uniform:
        return (p0 + (p1 - p0) * fz) * slopes[0] + intercepts[0]
    k1 = k0 + 1 if k0 < nz - 1 else k0
    h0 = p0 * slopes[k0] + intercepts[k0]
    h1 = p1 * slopes[k1] + intercepts[k1]
    return h0 + (h1 - h0) * fz


@njit(inline="always", **_JIT)
def _nearest(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z):
    i = int(math.floor(_clamp(x, nx - 1.0) + 0.5))
    j = int(math.floor(_clamp(y, ny - 1.0) + 0.5))
    k = int(math.floor(_clamp(z, nz - 1.0) + 0.5))
    v = float(flat[(k * ny + j) * nx + i])
    if uniform:
        return v * slopes[0] + intercepts[0]
    return v * slopes[k] + intercepts[k]


@njit(inline="always", **_JIT)
def _inside(x, y, z, xl, yl, zl, eps):
    return x >= -eps and x <= xl and y >= -eps and y <= yl and z >= -eps and z <= zl


@njit(inline="always", **_JIT)
def _axis_window(p, d, lim, eps, lo, hi):
    """Narrow the real interval [lo, hi] of t where -eps <= p + d*t <= lim (approximate; refined exactly later)."""
    if d == 0.0:
        if p < -eps or p > lim:
            return 1.0, -10.0   # empty, and stays empty
        return lo, hi
    ta = (-eps - p) / d
    tb = (lim - p) / d
    if ta > tb:
        ta, tb = tb, ta
    return max(lo, ta), min(hi, tb)


@njit(inline="always", **_JIT)
def _ray_range(bx, by, bz, a02, a12, a22, b0, b1, b2, ns, xl, yl, zl, eps):
    """``(lo, hi)``: the first and last step ``s`` in ``[0, ns)`` of the ray whose sample is inside (``hi < lo``: none).

    The sample at step ``s`` is ``(bx + a02 * s + b0, by + a12 * s + b1, bz + a22 * s + b2)``
    (``bx = a00 * c + a01 * r`` and so on: the reference's left-to-right sum).
    Every step between ``lo`` and ``hi`` is inside and none outside them is.
    """
    lo_f, hi_f = _axis_window(bx + b0, a02, xl, eps, -1.0, float(ns))
    lo_f, hi_f = _axis_window(by + b1, a12, yl, eps, lo_f, hi_f)
    lo_f, hi_f = _axis_window(bz + b2, a22, zl, eps, lo_f, hi_f)
    lo = 0
    hi = -1
    if lo_f <= hi_f + 4.0:
        lo = max(0, int(math.ceil(lo_f)) - 2)
        hi = min(ns - 1, int(math.floor(hi_f)) + 2)
        while lo <= hi and not _inside(bx + a02 * lo + b0, by + a12 * lo + b1, bz + a22 * lo + b2,
                                       xl, yl, zl, eps):
            lo += 1
        while hi >= lo and not _inside(bx + a02 * hi + b0, by + a12 * hi + b1, bz + a22 * hi + b2,
                                       xl, yl, zl, eps):
            hi -= 1
    return lo, hi


# -- the combine rule along s ------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def combine_init(mode):
    """The accumulator before the first sample: -inf (max), +inf (min), 0.0 (mean)."""
    if mode == MODE_MAX:
        return -math.inf
    if mode == MODE_MIN:
        return math.inf
    return 0.0


@njit(inline="always", **_JIT)
def combine_step(acc, v, mode):
    """``acc`` combined with the sample ``v``: ``np.maximum`` / ``np.minimum`` (a NaN ``v`` is taken and a NaN
    ``acc`` stays), or ``acc + v`` (mean). Works on float64 and on stored values (max / min in their dtype)."""
    if mode == MODE_MAX:
        if v > acc or v != v:
            return v
        return acc
    if mode == MODE_MIN:
        if v < acc or v != v:
            return v
        return acc
    return acc + v


@njit(inline="always", **_JIT)
def combine_finish(acc, count, mode, fill):
    """The result of ``count`` combined samples: ``fill`` when there were none, ``acc / count`` (mean), else ``acc``."""
    if count <= 0:
        return fill
    if mode == MODE_MEAN:
        return acc / count
    return acc


@njit(inline="always", **_JIT)
def combine_selects(mode):
    """Whether the result is one of the combined values (max, min): it may then be reduced on stored values in
    their own dtype, and it commutes with a monotone rescale (see :func:`combine_mirror`)."""
    return mode == MODE_MAX or mode == MODE_MIN


@njit(inline="always", **_JIT)
def combine_mirror(mode):
    """The mode whose result, through a decreasing rescale (a negative slope), is ``mode``'s: max and min swap."""
    if mode == MODE_MAX:
        return MODE_MIN
    if mode == MODE_MIN:
        return MODE_MAX
    return mode


@njit(inline="always", **_JIT)
def combine_skips(bound, acc, mode):
    """Brick skipping (max / min): True when no value within ``bound`` (the brick's largest value for max, its
    smallest for min) can change ``acc``. Never for a NaN bound or ``acc`` (a NaN may still have to be taken)."""
    if mode == MODE_MAX:
        return bound <= acc
    if mode == MODE_MIN:
        return bound >= acc
    return False


@njit(inline="always", **_JIT)
def _ray_combine(flat, nx, ny, nz, slopes, intercepts, uniform, linear, bx, by, bz, a02, a12, a22, b0, b1, b2, ns,
                 mode, fill, xl, yl, zl, eps):
    """One projection ray: its inside samples (clipped by :func:`_ray_range`, so no per-sample test) read by
    :func:`_linear` or :func:`_nearest`, combined by ``mode`` in order of ``s`` and finished (``fill`` when none).

    The sample at step ``s`` is ``(bx + a02 * s + b0, by + a12 * s + b1, bz + a22 * s + b2)``.
    """
    lo, hi = _ray_range(bx, by, bz, a02, a12, a22, b0, b1, b2, ns, xl, yl, zl, eps)
    acc = combine_init(mode)
    for s in range(lo, hi + 1):
        x = bx + a02 * s + b0
        y = by + a12 * s + b1
        z = bz + a22 * s + b2
        if linear:
            v = _linear(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
        else:
            v = _nearest(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
        acc = combine_step(acc, v, mode)
    return combine_finish(acc, hi - lo + 1, mode, fill)


# -- the "fast" precision (codes.PRECISIONS): float32 weights and blends ---------------------------------------
# Coordinates stay the float64 expression of the exact path (so the inside test, the clamping and nearest's
# ``floor(x + 0.5)`` are the reference's, bit for bit); what changes is the read and the blend of the eight
# neighbours: the lower corner is ``min(floor(x), n - 2)`` (an edge point then blends with weight exactly 1, so
# the eight reads need no per-axis clamp: fixed strides ``di, dj, dk``, 0 on an axis of length 1), the weights
# are float32, the stored integers are read once as float32 and blended in float32, and the rescale is applied
# once to the blended value (uniform rescale) or to the two slices' float32 blends in float64 (per slice).
# Error bound: see :mod:`gpukit.backends.numba.sampler` (``FAST_BOUND``).

@njit(inline="always", **_JIT)
def _fast_axis(x, hi, nm2):
    """``(i0, f)`` of the fast trilinear read on one axis: ``x`` clamped to ``[0, hi]`` (``hi = n - 1``),
    ``i0 = min(floor(x), nm2)`` with ``nm2 = max(n - 2, 0)``, ``f = float32(x - i0)`` (``x - i0`` is exact in
    float64: it is the fraction bits of ``x``, or 1 at ``x = n - 1``; the one rounding is to float32)."""
    if x < 0.0:
        x = 0.0
    if x > hi:
        x = hi
    i0 = int(x)
    if i0 > nm2:
        i0 = nm2
    return i0, np.float32(x - i0)


@njit(inline="always", **_JIT)
def _blend4_f32(flat, o, di, dj, fx, fy):
    """float32 bilinear blend of the four stored values ``flat[o], [o + di], [o + dj], [o + dj + di]``."""
    a = np.float32(flat[o])
    c0 = a + (np.float32(flat[o + di]) - a) * fx
    a = np.float32(flat[o + dj])
    c1 = a + (np.float32(flat[o + dj + di]) - a) * fx
    return c0 + (c1 - c0) * fy


@njit(inline="always", **_JIT)
def _fast_value(p0, p1, fz, k0, k1, slopes, intercepts, uniform):
    """float64 rescaled value of the two slices' float32 blends ``p0`` (slice ``k0``) and ``p1`` (``k1``):
    uniform rescale: the float32 blend along z, rescaled once; per slice: each rescaled in float64, then blended."""
    if uniform:
        return float(p0 + (p1 - p0) * fz) * slopes[0] + intercepts[0]
    h0 = float(p0) * slopes[k0] + intercepts[k0]
    h1 = float(p1) * slopes[k1] + intercepts[k1]
    return h0 + (h1 - h0) * float(fz)


@njit(inline="always", **_JIT)
def _row_inside(c, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, xl, yl, zl, eps):
    """The exact inside test of the sample at column ``c`` of the output row ``(r, s)``: its coordinates
    ``((a00 * c + a01 * r) + a02 * s) + b0`` (and y, z) with ``pr0 = a01 * r``, ``qs0 = a02 * s`` precomputed --
    the reference's expression and order, so the same float64 numbers."""
    x = ((a00 * c + pr0) + qs0) + b0
    y = ((a10 * c + pr1) + qs1) + b1
    z = ((a20 * c + pr2) + qs2) + b2
    return _inside(x, y, z, xl, yl, zl, eps)


@njit(inline="always", **_JIT)
def _window_recip(p, d, dinv, lim, eps, lo, hi):
    """:func:`_axis_window` with ``dinv = 1 / d`` given (no division: an estimate, refined exactly by the caller)."""
    if d == 0.0:
        if p < -eps or p > lim:
            return 1.0, -10.0
        return lo, hi
    ta = (-eps - p) * dinv
    tb = (lim - p) * dinv
    if ta > tb:
        ta, tb = tb, ta
    return max(lo, ta), min(hi, tb)


@njit(inline="always", **_JIT)
def _recip(d):
    """``1 / d``, or 0 for ``d = 0`` (:func:`_window_recip` then ignores it)."""
    return 1.0 / d if d != 0.0 else 0.0


@njit(inline="always", **_JIT)
def _row_range(a00, a10, a20, i00, i10, i20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, c0, c1, xl, yl, zl, eps):
    """``(lo, hi)``: the first and last column ``c`` in ``[c0, c1)`` of output row ``(r, s)`` whose sample is inside
    (``hi < lo``: none), in the terms of :func:`_row_inside`; ``i00 = _recip(a00)`` and so on.

    Each coordinate is a monotone function of ``c`` in floating point (a product by a constant, then sums, each
    rounded monotonically), so the inside columns form one interval: an analytic estimate (:func:`_axis_window`)
    widened by two columns, then refined with the exact test, as :func:`_ray_range` does along a ray.
    """
    lo_f, hi_f = _window_recip((pr0 + qs0) + b0, a00, i00, xl, eps, c0 - 1.0, float(c1))
    lo_f, hi_f = _window_recip((pr1 + qs1) + b1, a10, i10, yl, eps, lo_f, hi_f)
    lo_f, hi_f = _window_recip((pr2 + qs2) + b2, a20, i20, zl, eps, lo_f, hi_f)
    lo = c0
    hi = c0 - 1
    if lo_f <= hi_f + 4.0:
        lo = max(c0, int(math.ceil(lo_f)) - 2)
        hi = min(c1 - 1, int(math.floor(hi_f)) + 2)
        while lo <= hi and not _row_inside(lo, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, xl, yl,
                                           zl, eps):
            lo += 1
        while hi >= lo and not _row_inside(hi, a00, a10, a20, pr0, pr1, pr2, qs0, qs1, qs2, b0, b1, b2, xl, yl,
                                           zl, eps):
            hi -= 1
    return lo, hi


@njit(inline="always", **_JIT)
def _linear_fast(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z):
    """:func:`_linear` at the "fast" precision (one sample; the CPU kernels run the same steps by rows)."""
    i0, fx = _fast_axis(x, nx - 1.0, max(nx - 2, 0))
    j0, fy = _fast_axis(y, ny - 1.0, max(ny - 2, 0))
    k0, fz = _fast_axis(z, nz - 1.0, max(nz - 2, 0))
    di = 1 if nx > 1 else 0
    dj = nx if ny > 1 else 0
    dk = nx * ny if nz > 1 else 0
    o = (k0 * ny + j0) * nx + i0
    p0 = _blend4_f32(flat, o, di, dj, fx, fy)
    p1 = _blend4_f32(flat, o + dk, di, dj, fx, fy)
    return _fast_value(p0, p1, fz, k0, k0 + 1 if nz > 1 else k0, slopes, intercepts, uniform)


__all__ = ["_clamp", "_linear", "_nearest", "_inside", "_axis_window", "_ray_range", "_ray_combine", "MODE_NONE",
           "MODE_MAX", "MODE_MIN", "MODE_MEAN", "combine_init", "combine_step", "combine_finish", "combine_selects",
           "combine_mirror", "combine_skips", "_fast_axis", "_blend4_f32", "_fast_value", "_linear_fast",
           "_row_inside", "_row_range", "_recip"]
