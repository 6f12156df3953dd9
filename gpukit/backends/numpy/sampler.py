"""The geometric sampler in plain numpy: the reference every other backend is checked against.

One routine, :func:`sample_grid`, does reslice, resample, slab and full
projections (DESIGN.md, "One sampler for reslice, resample and MIP"). For an
output position ``(c, r, s)`` the continuous voxel index is

    x = A[0,0]*c + A[0,1]*r + A[0,2]*s + b[0]      (i, column)
    y = A[1,0]*c + A[1,1]*r + A[1,2]*s + b[1]      (j, row)
    z = A[2,0]*c + A[2,1]*r + A[2,2]*s + b[2]      (k, slice)

evaluated left to right in float64 (every backend writes the same expression,
so the inside test below gives the same answer everywhere). The point is
inside when ``-EPS <= x <= nx - 1 + EPS`` (and likewise y, z); it is then
clamped to ``[0, n - 1]`` and read:

* ``linear``: ``x0 = floor(x)``, ``x1 = min(x0 + 1, nx - 1)``, ``fx = x - x0``
  (the eight neighbours clamped to the edge); each slice's four neighbours
  are blended as ``a + (b - a) * f`` along x then y, rescaled with that
  slice's own slope and intercept, and the two slices are blended along z.
  When every slice has the same rescale, the blend is done on stored values
  and rescaled once (the same number up to float64 rounding).
* ``nearest``: ``floor(x + 0.5)`` (round half up), rescaled with its slice's
  slope and intercept.

Outside points give ``fill`` for ``mode="none"``; the projections (``max``,
``min``, ``mean``) skip them, and a ray with no inside sample gives ``fill``.

An optional output stage (``window=``) writes, instead of the float32 value,
its DICOM window (:func:`gpukit.backends.numpy.intensity.window_values`): the
float64 result is rounded to float32 first and then windowed, so the image
equals the window of the float32 image (``fill`` is windowed too).

This module works through the output one block of rows at a time (a few
hundred thousand samples): memory is the output plus block-sized temporaries,
never a dense coordinate array for the whole grid.
"""

from __future__ import annotations

import numpy as np

from ..codes import EPS, MODES  # noqa: F401  (EPS, MODES: shared by every backend)
from .intensity import voi_params, window_values

#: Samples per block in the numpy reference.
BLOCK = 1 << 16


def _uniform(slopes: np.ndarray, intercepts: np.ndarray) -> bool:
    return bool(np.all(slopes == slopes[0]) and np.all(intercepts == intercepts[0]))


def _sample_block(flat, dims, slopes, intercepts, uniform, x, y, z, linear):
    """Values (float64) at continuous indices ``x, y, z`` (clamped, already known inside)."""
    nz, ny, nx = dims
    x = np.minimum(np.maximum(x, 0.0), nx - 1.0)
    y = np.minimum(np.maximum(y, 0.0), ny - 1.0)
    z = np.minimum(np.maximum(z, 0.0), nz - 1.0)
    if not linear:
        i = np.floor(x + 0.5).astype(np.int64)
        j = np.floor(y + 0.5).astype(np.int64)
        k = np.floor(z + 0.5).astype(np.int64)
        raw = flat[(k * ny + j) * nx + i].astype(np.float64)
        if uniform:
            return raw * slopes[0] + intercepts[0]
        return raw * slopes[k] + intercepts[k]
    i0 = np.floor(x).astype(np.int64)
    j0 = np.floor(y).astype(np.int64)
    k0 = np.floor(z).astype(np.int64)
    fx = x - i0
    fy = y - j0
    fz = z - k0
    i1 = np.minimum(i0 + 1, nx - 1)
    j1 = np.minimum(j0 + 1, ny - 1)
    k1 = np.minimum(k0 + 1, nz - 1)

    def at(k, j, i):
        return flat[(k * ny + j) * nx + i].astype(np.float64)

    def plane(k):
        a = at(k, j0, i0)
        c00 = a + (at(k, j0, i1) - a) * fx
        a = at(k, j1, i0)
        c01 = a + (at(k, j1, i1) - a) * fx
        return c00 + (c01 - c00) * fy

    p0 = plane(k0)
    p1 = plane(k1)
    if uniform:
        return (p0 + (p1 - p0) * fz) * slopes[0] + intercepts[0]
    h0 = p0 * slopes[k0] + intercepts[k0]
    h1 = p1 * slopes[k1] + intercepts[k1]
    return h0 + (h1 - h0) * fz


def _output_stage(window, out: np.ndarray):
    """What :func:`sample_grid` writes for a block of float64 results: themselves (cast by the store), or their
    window after a rounding to float32 (``window = (center, width, function_code, lo, hi, invert)``; ``out``'s
    dtype decides the rounding, as in ``window_kernel``)."""
    if window is None:
        return lambda vals: vals
    center, width, fcode, lo, hi, invert = window
    fcode = int(fcode)
    params = voi_params(center, width, fcode)
    rounded = out.dtype.kind in "iu"

    def windowed(vals):
        h = np.asarray(vals, dtype=np.float32).astype(np.float64)
        return window_values(h, fcode, params, lo, hi, rounded, bool(invert))

    return windowed


def sample_grid(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, A: np.ndarray, b: np.ndarray,
                grid: tuple[int, int, int], mode: str, interp: str, fill: float, out: np.ndarray,
                window=None) -> np.ndarray:
    """Sample ``data`` on the output grid ``(ns, nr, nc)`` and combine along s.

    Parameters
    ----------
    data : (nz, ny, nx) array of stored values (any real dtype), C order.
    slopes, intercepts : (nz,) float64, the per-slice rescale.
    A, b : (3, 3) and (3,) float64; ``(x, y, z) = A @ (c, r, s) + b`` (see module docstring).
    grid : ``(ns, nr, nc)``.
    mode : "none" (``out`` has shape ``(ns, nr, nc)``) or "max", "min", "mean" (``out`` is ``(nr, nc)``).
    interp : "linear" or "nearest".
    fill : value of outside points (mode "none") and of rays with no inside sample.
    out : preallocated output (float32, or any dtype the caller chose); written and returned.
    window : optional ``(center, width, function_code, lo, hi, invert)``: ``out`` (uint8) then receives the
        window (``function_code``: codes.FUNCTION_CODES, output range ``lo``..``hi``, MONOCHROME1 ``invert``)
        of each float32 result instead (see the module docstring).
    """
    ns, nr, nc = (int(g) for g in grid)
    dims = data.shape
    nz, ny, nx = dims
    flat = data.reshape(-1)
    slopes = np.asarray(slopes, dtype=np.float64)
    intercepts = np.asarray(intercepts, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    uniform = _uniform(slopes, intercepts)
    linear = interp == "linear"
    code = MODES[mode]
    lim = (nx - 1 + EPS, ny - 1 + EPS, nz - 1 + EPS)
    rows = max(1, BLOCK // max(nc, 1))
    c = np.arange(nc, dtype=np.float64)
    emit = _output_stage(window, out)

    def coords(r, s):
        # r: (rows, 1) float64, s: float -- written in the order the compiled kernels use
        x = A[0, 0] * c + A[0, 1] * r + A[0, 2] * s + b[0]
        y = A[1, 0] * c + A[1, 1] * r + A[1, 2] * s + b[1]
        z = A[2, 0] * c + A[2, 1] * r + A[2, 2] * s + b[2]
        inside = ((x >= -EPS) & (x <= lim[0]) & (y >= -EPS) & (y <= lim[1]) & (z >= -EPS) & (z <= lim[2]))
        return x, y, z, inside

    for r0 in range(0, nr, rows):
        r1 = min(nr, r0 + rows)
        r = np.arange(r0, r1, dtype=np.float64)[:, None]
        if code == 0:
            for s in range(ns):
                x, y, z, inside = coords(r, float(s))
                vals = np.full(inside.shape, fill, dtype=np.float64)
                vals[inside] = _sample_block(flat, dims, slopes, intercepts, uniform,
                                             x[inside], y[inside], z[inside], linear)
                out[s, r0:r1] = emit(vals)
            continue
        if code == 1:
            acc = np.full((r1 - r0, nc), -np.inf)
        elif code == 2:
            acc = np.full((r1 - r0, nc), np.inf)
        else:
            acc = np.zeros((r1 - r0, nc))
        cnt = np.zeros((r1 - r0, nc), dtype=np.int64)
        for s in range(ns):
            x, y, z, inside = coords(r, float(s))
            if not inside.any():
                continue
            v = _sample_block(flat, dims, slopes, intercepts, uniform, x[inside], y[inside], z[inside], linear)
            if code == 1:
                acc[inside] = np.maximum(acc[inside], v)
            elif code == 2:
                acc[inside] = np.minimum(acc[inside], v)
            else:
                acc[inside] += v
            cnt += inside
        if code == 3:
            res = np.divide(acc, cnt, out=np.zeros_like(acc), where=cnt > 0)
        else:
            res = acc
        out[r0:r1] = emit(np.where(cnt > 0, res, fill))
    return out


def project_axis(data: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, axis: int, lo: int, hi: int,
                 mode: str, out: np.ndarray) -> np.ndarray:
    """Max/min/mean of the rescaled values along array ``axis`` over indices ``lo:hi``, into float32 ``out``.

    Stored values are reduced first and rescaled afterwards when that is
    exact (one rescale for the whole volume, and a positive slope for
    max/min; for axes 1 and 2 each output row lies in one slice so any
    per-slice rescale works); otherwise every slice is rescaled on the way.
    """
    slopes = np.asarray(slopes, dtype=np.float64)
    intercepts = np.asarray(intercepts, dtype=np.float64)
    red = {"max": np.max, "min": np.min, "mean": np.mean}[mode]
    if axis in (1, 2):
        sub = data[:, lo:hi, :] if axis == 1 else data[:, :, lo:hi]
        s = slopes[:, None]
        t = intercepts[:, None]
        if mode != "mean" and np.any(slopes < 0):
            # a negative slope swaps max and min of the stored values
            alt = {"max": np.min, "min": np.max}[mode]
            pos = red(sub, axis=axis).astype(np.float64)
            neg = alt(sub, axis=axis).astype(np.float64)
            raw = np.where(s >= 0, pos, neg)
        else:
            raw = red(sub, axis=axis, dtype=np.float64) if mode == "mean" else red(sub, axis=axis).astype(np.float64)
        out[...] = raw * s + t
        return out
    sub = data[lo:hi]
    s = slopes[lo:hi]
    t = intercepts[lo:hi]
    if _uniform(s, t) and (mode == "mean" or s[0] > 0):
        raw = red(sub, axis=0, dtype=np.float64) if mode == "mean" else red(sub, axis=0).astype(np.float64)
        out[...] = raw * s[0] + t[0]
        return out
    acc = sub[0] * s[0] + t[0]
    for k in range(1, hi - lo):
        h = sub[k] * s[k] + t[k]
        if mode == "max":
            np.maximum(acc, h, out=acc)
        elif mode == "min":
            np.minimum(acc, h, out=acc)
        else:
            acc += h
    if mode == "mean":
        acc /= hi - lo
    out[...] = acc
    return out


def slice_extrema(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice minimum and maximum stored value, as float64 arrays of length nz."""
    flat = data.reshape(data.shape[0], -1)
    return flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)


def sampler_warmup(data, **_kwargs) -> None:
    """Nothing to compile for numpy."""


__all__ = ["sample_grid", "project_axis", "slice_extrema", "sampler_warmup"]
