"""The ``cupy`` backend's kernel API, written against a *launcher* so that all of it runs without a GPU too.

:class:`CudaKernels` implements the kernel API of the numpy backend modules
(``rescale_kernel``, ``window_kernel``, ``minmax_kernel``, ``sample_grid``,
``project_axis``, ``slice_extrema``, ``sampler_warmup``; see
:mod:`gpukit.backends` and :mod:`gpukit.backends.numpy.sampler`) on top of the
CUDA C++ kernels of ``kernels/``. Everything host-side lives here: the module
specialisation (:mod:`~gpukit.backends.cuda.src` specs: element types,
rounding, fused window, 32- or 64-bit indices), launch sizes, and the exact C
types of every kernel argument (numpy scalars: ``np.int32`` / ``np.int64`` /
``np.float64``, matching the ``.cu`` parameter lists).

A launcher is any object with

* ``xp``: the array module of its arrays (``cupy`` or ``numpy``);
* ``device_id()``: the current device's number (caches are kept per device);
* ``function(spec, entry)``: a callable ``f(grid, block, args)`` that runs
  entry point ``entry`` of module ``spec`` over ``grid`` x ``block``
  (3-tuples) with ``args``.

Two exist: :class:`gpukit.backends.cupy.launcher.CupyLauncher` (``cupy.RawModule``
through NVRTC, on a GPU) and :class:`gpukit.backends.cuda_host.shim.HostLauncher`
(the same ``.cu`` files compiled as C++ for the CPU and called through
ctypes, which also checks every argument's type against the kernel's
parameter list). Only the few CuPy lines differ between them.

Launch sizes are the :class:`LaunchConfig` of each instance (tests shrink
them so that small inputs span several blocks and every grid-stride loop
turns more than once). The kernels use no shared memory and no
synchronisation, so the result does not depend on them.

Two samplers: ``precision="exact"`` (``kernels/sample.cu``, the numpy
reference's float64 arithmetic, bit for bit through the host shim) and
``precision="fast"`` (``kernels/sample_fast.cu``: fixed-point coordinates,
float32 weights, blends, rescale and combination, ``__ldg`` reads, no float64
instruction at all), chosen per call by :meth:`CudaKernels.sample_grid`; the
fast one's error bound is stated there and in ``kernels/gpukit_common.cuh``.

64-bit indices: a module is built with ``INDEX_T = long long`` when an index
it forms (an array's element count, plus one grid stride past the end) could
exceed :data:`gpukit.backends.cuda.src.INDEX32_MAX`; tests lower
:attr:`CudaKernels.index32_max` to run the 64-bit modules on small inputs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import numpy as np

from . import src as cuda_src
from ..codes import EPS, MODES, PRECISIONS

#: fractional bits of the float32 sampler's fixed-point coordinates (``GK_FIX_BITS`` in kernels/gpukit_common.cuh)
FIX_BITS = 40
#: the fast sampler runs when every partial sum ``|b| + |A00| c + |A01| r + |A02| s`` of each coordinate, and every
#: volume extent, stays below this many voxels (then no fixed-point value reaches 2**61); else "exact" runs
FAST_MAX_SPAN = float(2 ** 21)
#: ... and when each grid extent (ns, nr, nc) is below this (float32 counts ray steps exactly)
FAST_MAX_GRID = 2 ** 24


def fixed_point_map(A, b, grid, shape):
    """The float32 sampler's fixed-point arguments, or ``None`` when the grid does not fit them.

    ``A`` (3x3), ``b`` (3): ``(i, j, k) = A @ (c, r, s) + b``; ``grid = (ns, nr, nc)``; ``shape = (nz, ny, nx)``.
    Returns ``(A_fix (9,), b_fix (3,), limits (3,), eps_fix)``, int64: each value times ``2**FIX_BITS``
    rounded to nearest; ``limits`` are the inside bounds ``(n - 1) + EPS`` of x, y, z (the very float64 numbers
    the exact path compares with), ``eps_fix`` the lower bound's magnitude. ``None`` when a partial sum of a
    coordinate over the grid could reach :data:`FAST_MAX_SPAN` voxels, a grid extent :data:`FAST_MAX_GRID`, or
    a value is not finite (the caller then runs the exact sampler).
    """
    A = np.asarray(A, dtype=np.float64).reshape(3, 3)
    b = np.asarray(b, dtype=np.float64).reshape(3)
    ns, nr, nc = (int(g) for g in grid)
    nz, ny, nx = (int(n) for n in shape)
    if max(ns, nr, nc) >= FAST_MAX_GRID or max(nx, ny, nz) >= FAST_MAX_SPAN:
        return None
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
        return None
    span = np.abs(b) + np.abs(A) @ np.array([nc, nr, ns], dtype=np.float64)    # one step past the end too
    if not float(span.max()) < FAST_MAX_SPAN:
        return None
    scale = float(2 ** FIX_BITS)
    limits = np.array([(nx - 1.0) + EPS, (ny - 1.0) + EPS, (nz - 1.0) + EPS])
    fix = lambda v: np.rint(np.asarray(v, dtype=np.float64) * scale).astype(np.int64)   # noqa: E731
    return fix(A).ravel(), fix(b), fix(limits), np.int64(fix(EPS))


@dataclass(frozen=True)
class LaunchConfig:
    """Launch sizes (threads per block, most blocks per grid axis)."""

    #: threads per block of the 1-D kernels (window, rescale, extrema, projections)
    block_1d: int = 256
    #: (x, y) threads per block of the sampler (x along output columns: neighbouring rays)
    block_2d: tuple[int, int] = (32, 8)
    #: most blocks along grid x; the kernels grid-stride beyond
    max_grid_x: int = 1 << 16
    #: most blocks along grid y (CUDA's limit is 65535)
    max_grid_y: int = 65535
    #: partial results per slice in the extrema kernel's first pass
    extrema_parts: int = 2048


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class CudaKernels:
    """The kernel API over one launcher (see the module docstring).

    ``sample_grid(..., precision="fast")`` runs the float32 sampler (``kernels/sample_fast.cu``) where the grid
    fits its fixed-point coordinates (:func:`fixed_point_map`), else the exact one. Its error bound against the
    float64 reference (both rounded to float32): ``|fast - exact| <= 2**-20 * (V |slope| + |intercept|) + 3 d G
    + 1 float32 ulp of the output``, with V the largest |stored value| of the eight neighbours, G the largest
    difference of two rescaled neighbours and ``d <= 2**-41 * (1 + c + r + s) + 2**-25`` voxel the index error:
    at most 0.01 HU for trilinear on int16 CT with |stored| < 4096, |slope| <= 1, |intercept| <= 1024 and grids
    up to 4096 per side, for every projection mode (means are Kahan-compensated) and for uniform and per-slice
    rescales. Nearest always picks the reference's voxel (near a .5 tie its index is recomputed in float64, off
    the common path) and differs by the float32 rescale only (nothing for integer rescales); inside /
    outside (the fill) agrees except within d of the inside band's edges; the fused uint8 window is at most one
    unit off (for window widths above ``(hi - lo) * 0.01``).
    """

    launcher: object
    config: LaunchConfig = field(default_factory=LaunchConfig)
    index32_max: int = cuda_src.INDEX32_MAX
    #: rescale tables kept on the device (by content), see :meth:`_rescale`
    upload_cache_entries: int = 64

    def __post_init__(self):
        self._uploads: dict = {}
        self._cache_lock = threading.Lock()

    @property
    def xp(self):
        return self.launcher.xp

    # -- helpers ---------------------------------------------------------------------------------------------
    def _index64(self, *extents: int) -> bool:
        return max(int(e) for e in extents) > self.index32_max

    def _idx(self, index64: bool):
        return np.int64 if index64 else np.int32

    def _device(self, a, dtype=None):
        """``a`` as a C-contiguous array of the launcher's kind (an upload for host data on a GPU launcher)."""
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    @staticmethod
    def _value_dtype(dtype) -> np.dtype:
        """The dtype the value kernels read ``dtype`` as: 64-bit integers as float64 (the kernels turn every value
        into float64 first, so that is the same arithmetic), float16 as float32; others as themselves."""
        dt = np.dtype(dtype)
        if dt in (np.dtype(np.int64), np.dtype(np.uint64)):
            return np.dtype(np.float64)
        if dt == np.dtype(np.float16):
            return np.dtype(np.float32)
        return dt

    def _values(self, data):
        """``data`` on the launcher's device, contiguous, in :meth:`_value_dtype`."""
        data = self._device(data)
        dt = self._value_dtype(data.dtype)
        return data if data.dtype == dt else data.astype(dt)

    def _rescale(self, slopes, intercepts, n: int, dtype=np.float64):
        """``((slopes, intercepts) on the device, (the same on the host))``, vectors of length ``n`` in ``dtype``
        (float64; float32 for the fast sampler: the float64 values rounded to nearest).

        Both go up in one copy, and uploads are cached by content (per device): a resident volume's
        rescale table is uploaded once, not once per operation; the float32 table is converted from the float64
        one on the device (round to nearest, as numpy's ``astype``), so it costs no upload either.
        """
        host = np.ascontiguousarray(np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
                                              for v in (slopes, intercepts)]))
        key = (self.launcher.device_id(), host.tobytes())
        dt = np.dtype(dtype)
        with self._cache_lock:
            tables = self._uploads.pop(key, None)
            if tables is None:
                tables = {np.dtype(np.float64): self._device(host, np.float64)}
            if dt not in tables:     # the float32 table is converted on the device: no second upload
                tables[dt] = tables[np.dtype(np.float64)].astype(dt)
            self._uploads[key] = tables                # most recently used last
            while len(self._uploads) > self.upload_cache_entries:
                self._uploads.pop(next(iter(self._uploads)))
        dev = tables[dt]
        host = host.astype(dt, copy=False)
        return (dev[0], dev[1]), (host[0], host[1])

    def _slices(self, nz: int, per_slice: int):
        """grid, block and x stride of the slice-walking 1-D kernels."""
        cfg = self.config
        bx = cfg.block_1d
        gx = max(1, min(_cdiv(per_slice, bx), cfg.max_grid_x))
        gy = max(1, min(nz, cfg.max_grid_y))
        return (gx, gy, 1), (bx, 1, 1), gx * bx, gy

    def _out_buffer(self, out, shape, dtype):
        """``(buffer the kernel writes, out)``: ``out`` itself when it is a C-contiguous array of our kind."""
        if out is None:
            out = self.xp.empty(shape, dtype=dtype)
            return out, out
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
        if isinstance(out, self.xp.ndarray) and out.flags.c_contiguous:
            return out, out
        return self.xp.empty(shape, dtype=out.dtype), out

    def _finish(self, buf, out):
        if buf is not out:
            if isinstance(out, np.ndarray) and not isinstance(buf, np.ndarray):
                out[...] = buf.get()
            else:
                out[...] = buf
        return out

    @staticmethod
    def _as3d(data):
        if data.ndim == 3:
            return data
        if data.ndim == 2:
            return data.reshape((1,) + tuple(data.shape))
        return data.reshape(1, 1, -1)

    # -- intensity ---------------------------------------------------------------------------------------------
    def rescale_kernel(self, data, slopes, intercepts, out_dtype, out=None):
        """``data * slope + intercept`` per slice (``np_intensity.rescale_kernel``), as ``out_dtype``."""
        data = self._values(data)
        dt = np.dtype(out_dtype if out is None else out.dtype)
        buf, out = self._out_buffer(out, data.shape, dt)
        if data.size == 0:
            return out
        d3 = self._as3d(data)
        nz, ny, nx = d3.shape
        per = ny * nx
        grid, block, stride, gy = self._slices(nz, per)
        i64 = self._index64(data.size + stride, nz + gy)
        spec = cuda_src.rescale_spec(data.dtype, dt, i64)
        (s, b), _ = self._rescale(slopes, intercepts, nz)
        idx = self._idx(i64)
        self.launcher.function(spec, "gk_rescale")(grid, block, (d3, s, b, buf, idx(nz), idx(per)))
        return self._finish(buf, out)

    def window_kernel(self, data, slopes, intercepts, center, width, function_code, lo, hi, invert, out):
        """Rescale per slice and window into ``out`` (``np_intensity.window_kernel``; its dtype decides rounding)."""
        data = self._values(data)
        dt = np.dtype(out.dtype)
        buf, out = self._out_buffer(out, data.shape, dt)
        if data.size == 0:
            return out
        d3 = self._as3d(data)
        nz, ny, nx = d3.shape
        per = ny * nx
        grid, block, stride, gy = self._slices(nz, per)
        i64 = self._index64(data.size + stride, nz + gy)
        spec = cuda_src.window_spec(data.dtype, dt, i64)
        (s, b), _ = self._rescale(slopes, intercepts, nz)
        idx = self._idx(i64)
        args = (d3, s, b, buf, idx(nz), idx(per), np.float64(center), np.float64(width), np.int32(function_code),
                np.float64(lo), np.float64(hi), np.int32(1 if invert else 0))
        self.launcher.function(spec, "gk_window")(grid, block, args)
        return self._finish(buf, out)

    def _extrema(self, data):
        """Per-slice ``(min, max)`` arrays in the stored dtype, on the host (``nz`` values each)."""
        data = self._device(data)
        d3 = self._as3d(data)
        nz = d3.shape[0]
        per = d3.size // nz
        parts = max(1, min(per, self.config.extrema_parts))
        cfg = self.config
        bx = cfg.block_1d
        gx = max(1, min(_cdiv(parts, bx), cfg.max_grid_x))
        gy = max(1, min(nz, cfg.max_grid_y))
        gf = max(1, min(_cdiv(nz, bx), cfg.max_grid_x))
        i64 = self._index64(data.size + per + parts + gx * bx, nz * parts + gx * bx, nz + max(gy, gf * bx))
        spec = cuda_src.extrema_spec(data.dtype, i64)
        idx = self._idx(i64)
        xp = self.xp
        pmin = xp.empty((nz, parts), data.dtype)
        pmax = xp.empty((nz, parts), data.dtype)
        lohi = xp.empty((2, nz), data.dtype)       # both rows come back in one download
        lo, hi = lohi[0], lohi[1]
        self.launcher.function(spec, "gk_extrema_partial")((gx, gy, 1), (bx, 1, 1),
                                                            (d3, pmin, pmax, idx(nz), idx(per), idx(parts)))
        self.launcher.function(spec, "gk_extrema_final")((gf, 1, 1), (bx, 1, 1),
                                                          (pmin, pmax, lo, hi, idx(nz), idx(parts)))
        if not isinstance(lohi, np.ndarray):
            lohi = lohi.get()
        return lohi[0], lohi[1]

    def minmax_kernel(self, data):
        """``(min, max)`` of ``data`` as Python numbers, ``(0, 0)`` when empty (``np_intensity.minmax_kernel``)."""
        if data.size == 0:
            return 0, 0
        lo, hi = self._extrema(data)
        return lo.min().item(), hi.max().item()

    def slice_extrema(self, data):
        """Per-slice minimum and maximum stored value: float64 numpy arrays of length nz (host: the ops layer
        computes fills and ranges from them)."""
        lo, hi = self._extrema(data)
        return lo.astype(np.float64), hi.astype(np.float64)

    # -- sampler -----------------------------------------------------------------------------------------------
    def sample_grid(self, data, slopes, intercepts, A, b, grid, mode, interp, fill, out, window=None,
                    precision="exact"):
        """``np_sampler.sample_grid`` on the device: sample on ``(ns, nr, nc)`` and combine along s.

        ``window``: optional ``(center, width, function_code, lo, hi, invert)``; the output (uint8) is then
        the window of the float32 result, computed in the same pass.

        ``precision``: "exact" (``sample.cu``: the numpy reference's float64 expressions, in its order) or
        "fast" (``sample_fast.cu``: no float64 arithmetic). Fast runs when :func:`fixed_point_map` accepts
        the grid (partial sums of each coordinate below 2**21 voxels, grid extents below 2**24), else exact
        runs: "fast" is a permission. Its coordinates are 40-bit fixed point (index error at most
        ``2**-41 * (1 + c + r + s) + 2**-25`` voxel), its reads go through the read-only cache (``__ldg``),
        weights, blends, rescale and combination are float32 (a uniform rescale once per output; means
        Kahan-compensated). Error bound against the exact result (kernels/gpukit_common.cuh, "the float32
        sampler"): ``2**-20 * (V |slope| + |intercept|) + 3 d G + one float32 ulp of the output``, V the
        largest |stored| of the eight neighbours, d the index error, G the largest difference of two
        rescaled neighbours; for int16 CT with |stored| < 4096, |slope| <= 1, |intercept| <= 1024 and grids
        up to 4096 per side, at most 0.01 HU (linear, every projection mode, uniform or per-slice rescale).
        Nearest always reads the reference's voxel (within 2**-12 voxel of a .5 tie the index is recomputed in
        float64 as the reference does, the fast kernels' only float64 code) and differs by the float32 rescale
        only (none for integer rescales, else below 2**-22 relative). The fill
        and inside/outside agree except within d of the inside band's edges. The fused uint8 window is at
        most 1 off (window widths above ``(hi - lo) * 0.01``).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        ns, nr, nc = (int(g) for g in grid)
        code = MODES[mode]
        if interp not in ("linear", "nearest"):
            raise ValueError(f"interp must be 'linear' or 'nearest', got {interp!r}")
        data = self._values(data)
        nz, ny, nx = data.shape
        shape = (ns, nr, nc) if code == 0 else (nr, nc)
        buf, out = self._out_buffer(out, shape, np.float32)
        if nr * nc == 0 or buf.size == 0:
            return out
        if data.size == 0:
            raise ValueError("cannot sample an empty volume")
        cfg = self.config
        bx, by = cfg.block_2d
        gx = max(1, min(_cdiv(nc, bx), cfg.max_grid_x))
        gy = max(1, min(_cdiv(nr, by), cfg.max_grid_y))
        for n, stride, what in ((nc, gx * bx, "columns"), (nr, gy * by, "rows"), (ns, 0, "steps")):
            if n + stride > cuda_src.INDEX32_MAX:
                raise ValueError(f"output grid too large: {n} {what}")
        i64 = self._index64(data.size, buf.size)
        fused = window is not None
        (s_dev, t_dev), (s_host, t_host) = self._rescale(slopes, intercepts, nz)
        uniform = bool(np.all(s_host == s_host[0]) and np.all(t_host == t_host[0]))
        A = np.asarray(A, dtype=np.float64).reshape(3, 3)
        b = np.asarray(b, dtype=np.float64).reshape(3)
        wc, ww, wf, wlo, whi, winv = window if fused else (0.0, 1.0, 0, 0.0, 1.0, False)
        idx = self._idx(i64)
        head = (idx(nx), idx(ny), idx(nz), np.int32(ns), np.int32(nr), np.int32(nc), np.int32(uniform))
        entry = f"gk_sample_{'none' if code == 0 else 'combine'}_{interp}"
        fixed = fixed_point_map(A, b, (ns, nr, nc), (nz, ny, nx)) if precision == "fast" else None
        if fixed is not None:
            a_fix, b_fix, lim_fix, eps_fix = fixed
            spec = cuda_src.sample_fast_spec(data.dtype, buf.dtype, fused, i64)
            (s32, t32), _ = self._rescale(slopes, intercepts, nz, np.float32)
            f32 = np.float32
            args = ((data, s32, t32, buf) + head + tuple(np.int64(v) for v in a_fix)
                    + tuple(np.int64(v) for v in b_fix) + tuple(np.int64(v) for v in lim_fix)
                    + (np.int64(eps_fix), f32(fill), f32(wc), f32(ww), np.int32(wf), f32(wlo), f32(whi),
                       np.int32(1 if winv else 0), np.int32(code))
                    + tuple(np.float64(v) for v in A.ravel()) + tuple(np.float64(v) for v in b))   # nearest's ties
            entry += "_fast"
        else:
            spec = cuda_src.sample_spec(data.dtype, buf.dtype, fused, i64)
            args = ((data, s_dev, t_dev, buf) + head
                    + tuple(np.float64(v) for v in A.ravel()) + tuple(np.float64(v) for v in b)
                    + (np.float64(fill), np.float64(EPS), np.float64(wc), np.float64(ww), np.int32(wf),
                       np.float64(wlo), np.float64(whi), np.int32(1 if winv else 0), np.int32(code)))
        self.launcher.function(spec, entry)((gx, gy, 1), (bx, by, 1), args)
        return self._finish(buf, out)

    def project_axis(self, data, slopes, intercepts, axis, lo, hi, mode, out):
        """``np_sampler.project_axis``: max/min/mean of rescaled values along ``axis`` over ``lo:hi`` (float32)."""
        data = self._values(data)
        nz, ny, nx = data.shape
        axis, lo, hi = int(axis), int(lo), int(hi)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
        if not 0 <= lo < hi <= data.shape[axis]:
            raise ValueError(f"need 0 <= lo < hi <= {data.shape[axis]}, got lo={lo}, hi={hi}")
        code = MODES[mode]
        if code == 0:
            raise ValueError("project_axis needs mode 'max', 'min' or 'mean'")
        shape = [(ny, nx), (nz, nx), (nz, ny)][axis]
        buf, out = self._out_buffer(out, shape, np.float32)
        if buf.dtype != np.float32:
            raise ValueError(f"project_axis writes float32, got out of dtype {buf.dtype}")
        (s_dev, t_dev), (s_host, t_host) = self._rescale(slopes, intercepts, nz)
        cfg = self.config
        bx = cfg.block_1d
        if axis == 0:
            plane = ny * nx
            gx = max(1, min(_cdiv(plane, bx), cfg.max_grid_x))
            i64 = self._index64(data.size, plane + gx * bx)
            s, t = s_host[lo:hi], t_host[lo:hi]
            raw = bool(np.all(s == s[0]) and np.all(t == t[0]) and (code == MODES["mean"] or s[0] > 0))
            spec = cuda_src.project_spec(data.dtype, i64)
            idx = self._idx(i64)
            self.launcher.function(spec, "gk_project_k")(
                (gx, 1, 1), (bx, 1, 1),
                (data, s_dev, t_dev, buf, idx(plane), np.int32(lo), np.int32(hi), np.int32(code), np.int32(raw)))
            return self._finish(buf, out)
        nq, q_stride, t_stride = (nx, 1, nx) if axis == 1 else (ny, nx, 1)
        gx = max(1, min(_cdiv(nq, bx), cfg.max_grid_x))
        gy = max(1, min(nz, cfg.max_grid_y))
        i64 = self._index64(data.size + max(q_stride, t_stride), nz * nq + gx * bx, nz + gy)
        spec = cuda_src.project_spec(data.dtype, i64)
        idx = self._idx(i64)
        self.launcher.function(spec, "gk_project_ji")(
            (gx, gy, 1), (bx, 1, 1),
            (data, s_dev, t_dev, buf, idx(nz), idx(nq), idx(ny * nx), idx(q_stride), idx(t_stride), np.int32(lo),
             np.int32(hi), np.int32(code)))
        return self._finish(buf, out)

    def sampler_warmup(self, data, out_dtype=np.float32, modes=("none", "max", "min", "mean"),
                       interps=("linear", "nearest"), slopes_uniform=None, precision="exact") -> None:
        """Build (compile or load) the sampler modules ``data``'s dtype needs, before the first timed call
        (``precision="fast"``: the float32 sampler's modules too)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        dt = self._value_dtype(data.dtype)
        i64 = self._index64(data.size)
        makers = [(cuda_src.sample_spec, "")] + ([(cuda_src.sample_fast_spec, "_fast")] if precision == "fast" else [])
        for mode in modes:
            for interp in interps:
                od = np.dtype(out_dtype) if (mode == "none" and np.dtype(out_dtype) in cuda_src.SAMPLE_OUT) \
                    else np.dtype(np.float32)
                for make, suffix in makers:
                    self.launcher.function(make(dt, od, False, i64),
                                           f"gk_sample_{'none' if mode == 'none' else 'combine'}_{interp}{suffix}")

    def with_config(self, **changes) -> "CudaKernels":
        """A copy with some launch sizes changed (same launcher and its module cache)."""
        return CudaKernels(self.launcher, replace(self.config, **changes), self.index32_max, self.upload_cache_entries)


#: the kernel API functions a backend module exposes (bound to one CudaKernels instance)
API = ("rescale_kernel", "window_kernel", "minmax_kernel", "slice_extrema", "sample_grid", "project_axis",
       "sampler_warmup")

__all__ = ["CudaKernels", "LaunchConfig", "API", "fixed_point_map", "FIX_BITS", "FAST_MAX_SPAN", "FAST_MAX_GRID"]
