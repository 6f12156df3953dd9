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

Only ``math`` and arithmetic on scalars and 1-D array reads (no numpy calls,
no allocation), so they compile for both targets. ``fastmath`` stays off; the
CUDA kernels also compile with FMA contraction off (see ``nbcuda_kernels``),
so ``a * b + c`` rounds twice on both targets, as in numpy.

Numba's on-disk cache keys a kernel on its own source file only: after
editing this file, delete the ``*.nbi``/``*.nbc`` files under
``gpukit/backends/__pycache__`` or the CPU kernels keep the old code.
"""

from __future__ import annotations

import math

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


__all__ = ["_clamp", "_linear", "_nearest", "_inside", "_axis_window", "_ray_range", "_ray_combine", "MODE_NONE",
           "MODE_MAX", "MODE_MIN", "MODE_MEAN", "combine_init", "combine_step", "combine_finish", "combine_selects",
           "combine_mirror", "combine_skips"]
