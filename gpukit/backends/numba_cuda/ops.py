"""Host side of the ``numba-cuda`` backend: the backend API, launching the kernels of :mod:`.nbcuda_kernels`.

The same functions and arguments as the CPU backends
(:mod:`gpukit.backends.numpy.intensity`, :mod:`gpukit.backends.numpy.sampler`), with
device arrays where those take numpy arrays:

* ``data`` and ``out``: CuPy arrays, Numba device arrays, or anything with
  ``__cuda_array_interface__`` (read through ``numba.cuda.as_cuda_array``, no
  copy), C-contiguous; ``out`` is written in place and returned as given.
  A host array is a ``TypeError`` that says how to move it.
* per-slice ``slopes``/``intercepts``, ``A``, ``b`` and scalars: host values
  (a few bytes, copied to the device per call).
* results that the CPU backends return as Python numbers or small numpy
  arrays (``minmax_kernel``, ``slice_extrema``) come back to the host; every
  other result stays on the device (``rescale_kernel`` without ``out``
  allocates a device array: CuPy when ``data`` is CuPy, else Numba).

Kernels are queued on the default (legacy) stream, which CuPy's default
stream also is, so the order with CuPy work is kept; nothing synchronises
except the two host results above.

Results equal the numpy reference: LINEAR and LINEAR_EXACT windows and
rescale bit for bit (same float64 expressions, FMA contraction off), SIGMOID
within one output unit (``exp``), the sampler to float32 rounding of the same
float64 values, fills exactly. ``sample_grid(..., precision="fast")``: trilinear
within ``gpukit.backends.numba.sampler.fast_bound`` (the Numba CPU fast
sampler's bound), the same fills, nearest equal.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import kernels as K
from .._sampler_math import combine_mirror, combine_selects
from ..codes import EPS, MODES, PRECISIONS


# -- arrays ----------------------------------------------------------------------------------------------------------
def _device(a, what: str):
    """``a`` as a Numba device array (a view: no copy), or a TypeError naming the fix."""
    if K.SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        if isinstance(a, FakeCUDAArray):
            return a
    elif cuda.is_cuda_array(a):
        return cuda.as_cuda_array(a)
    raise TypeError(f"{what} must be a GPU array (CuPy, or a Numba device array) for the numba-cuda backend; got "
                    f"{type(a).__module__}.{type(a).__name__}: move it with cupy.asarray(x) or numba.cuda.to_device(x)")


def _contiguous(d, what: str):
    if not d.is_c_contiguous():
        raise ValueError(f"{what} must be C-contiguous on the device (copy it with cupy.ascontiguousarray)")
    return d


def _flat(d):
    return d.reshape(d.size) if d.ndim != 1 else d


def _host_f64(a, n: int | None = None) -> np.ndarray:
    if hasattr(a, "copy_to_host"):
        a = a.copy_to_host()
    elif hasattr(a, "get") and hasattr(a, "__cuda_array_interface__"):
        a = a.get()
    out = np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1))
    if n is not None and out.shape[0] != n:
        raise ValueError(f"expected {n} values (one per slice), got {out.shape[0]}")
    return out


def _like(template, dev):
    """``dev`` as the same kind of array as ``template`` (CuPy in, CuPy out)."""
    if type(template).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy.asarray(dev)
    return dev


def _slice_grid(nz: int, plane: int) -> tuple[tuple[int, int], int]:
    bx = max(1, min(K.MAX_BLOCKS, -(-plane // K.THREADS)))
    return (bx, max(1, min(nz, K.MAX_SLICE_BLOCKS))), K.THREADS


def _pixel_grid(nrows: int, ncols: int) -> tuple[tuple[int, int], tuple[int, int]]:
    tx, ty = K.SAMPLER_BLOCK
    return (max(1, -(-ncols // tx)), max(1, -(-nrows // ty))), (tx, ty)


# -- intensity -------------------------------------------------------------------------------------------------------
def window_kernel(data, slopes, intercepts, center: float, width: float, function_code: int, lo: float, hi: float,
                  invert: bool, out):
    """Rescale (per slice) and window ``data`` ``(nz, ny, nx)`` into ``out`` (same shape, its dtype decides).

    ``out`` of an integer dtype gets rounded values; of a float dtype, unrounded ones.
    """
    from ..numpy.intensity import voi_params

    d = _contiguous(_device(data, "data"), "data")
    o = _contiguous(_device(out, "out"), "out")
    if tuple(d.shape) != tuple(o.shape):
        raise ValueError(f"out has shape {tuple(o.shape)}, data {tuple(d.shape)}")
    if d.size == 0:
        return out
    nz = d.shape[0]
    plane = d.size // nz
    s = cuda.to_device(_host_f64(slopes, nz))
    b = cuda.to_device(_host_f64(intercepts, nz))
    cc, ww, lower, upper = voi_params(center, width, function_code)
    rounded = np.dtype(o.dtype).kind in "iu"
    grid, block = _slice_grid(nz, plane)
    K.launch("window", grid, block, _flat(d), s, b, int(plane), int(function_code), float(cc), float(ww),
             float(lower), float(upper), float(lo), float(hi), bool(rounded), bool(invert), _flat(o))
    return out


def rescale_kernel(data, slopes, intercepts, out_dtype, out=None):
    """``data * slope + intercept`` per slice in float64, stored as ``out_dtype`` (the ops layer decides it)."""
    d = _contiguous(_device(data, "data"), "data")
    if out is None:
        o = cuda.device_array(tuple(d.shape), dtype=np.dtype(out_dtype))
        result = _like(data, o)
    else:
        o = _contiguous(_device(out, "out"), "out")
        result = out
    if d.size == 0:
        return result
    nz = d.shape[0]
    plane = d.size // nz
    s = cuda.to_device(_host_f64(slopes, nz))
    b = cuda.to_device(_host_f64(intercepts, nz))
    grid, block = _slice_grid(nz, plane)
    K.launch("rescale", grid, block, _flat(d), s, b, int(plane), _flat(o))
    return result


def minmax_kernel(data) -> tuple:
    """``(min, max)`` of ``data`` as Python numbers (``(0, 0)`` when empty; NaN when it holds a NaN)."""
    d = _contiguous(_device(data, "data"), "data")
    if d.size == 0:
        return 0, 0
    dt = np.dtype(d.dtype)
    acc = K.minmax_accumulator(dt)
    if acc.kind == "f":
        start_min, start_max = acc.type(np.inf), acc.type(-np.inf)
    else:
        info = np.iinfo(acc)
        start_min, start_max = acc.type(info.max), acc.type(info.min)
    res = cuda.to_device(np.array([start_min, start_max], dtype=acc))
    nan = cuda.to_device(np.zeros(1, np.int32))
    blocks = max(1, min(K.MAX_BLOCKS, -(-d.size // K.THREADS)))
    K.launch("minmax", blocks, K.THREADS, _flat(d), start_min, start_max, res, nan)
    lo, hi = res.copy_to_host()
    if nan.copy_to_host()[0]:
        return math.nan, math.nan
    return dt.type(lo).item(), dt.type(hi).item()


# -- the sampler -----------------------------------------------------------------------------------------------------
def _geometry(A, b) -> tuple:
    A = np.asarray(A, dtype=np.float64).reshape(3, 3)
    b = np.asarray(b, dtype=np.float64).reshape(3)
    return tuple(float(v) for v in (A[0, 0], A[0, 1], A[0, 2], b[0], A[1, 0], A[1, 1], A[1, 2], b[1],
                                     A[2, 0], A[2, 1], A[2, 2], b[2]))


def sample_grid(data, slopes, intercepts, A, b, grid, mode: str, interp: str, fill: float, out, precision="exact"):
    """Numba CUDA version of :func:`gpukit.backends.numpy.sampler.sample_grid` (same arguments; device data, out).

    ``precision`` (:data:`gpukit.backends.codes.PRECISIONS`): "fast" runs the float32 kernels
    (``resample_fast`` / ``project_fast``, see :mod:`.kernels`) for trilinear sampling of 8- and 16-bit integer
    stored values, within ``gpukit.backends.numba.sampler.fast_bound`` of "exact"; anything else (nearest, whose
    exact values "fast" keeps; other dtypes) runs the exact kernels: "fast" is a permission.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    d = _contiguous(_device(data, "data"), "data")
    o = _device(out, "out")
    ns, nr, nc = (int(g) for g in grid)
    code = MODES[mode]
    want = (ns, nr, nc) if code == 0 else (nr, nc)
    if tuple(o.shape) != want:
        raise ValueError(f"out must have shape {want} for mode {mode!r}, got {tuple(o.shape)}")
    if nr == 0 or nc == 0 or (code == 0 and ns == 0):
        return out
    nz, ny, nx = (int(n) for n in d.shape)
    s_h = _host_f64(slopes, nz)
    t_h = _host_f64(intercepts, nz)
    uniform = bool(np.all(s_h == s_h[0]) and np.all(t_h == t_h[0]))
    s = cuda.to_device(s_h)
    t = cuda.to_device(t_h)
    g = _geometry(A, b)
    linear = interp == "linear"
    blocks, threads = _pixel_grid(nr, nc)
    if precision == "fast" and linear and np.dtype(d.dtype).name in K.FAST_KINDS:
        if code == 0:
            K.launch("resample_fast", blocks, threads, _flat(d), nx, ny, nz, s, t, uniform, *g, float(fill),
                     float(EPS), o)
            return out
        s0 = float(s_h[0])
        t0 = float(t_h[0])
        raw = bool(uniform and s0 != 0.0)       # combine the raw float32 blends, rescale once per ray
        kcode = int(combine_mirror(code)) if raw and s0 < 0.0 else int(code)
        K.launch("project_fast", blocks, threads, _flat(d), nx, ny, nz, s, t, uniform, *g, ns, kcode, raw, s0, t0,
                 float(fill), float(EPS), o)
        return out
    if code == 0:
        K.launch("resample", blocks, threads, _flat(d), nx, ny, nz, s, t, uniform, *g, linear, float(fill),
                 float(EPS), o)
    else:
        K.launch("project", blocks, threads, _flat(d), nx, ny, nz, s, t, uniform, *g, ns, int(code), linear,
                 float(fill), float(EPS), o)
    return out


def project_axis(data, slopes, intercepts, axis: int, lo: int, hi: int, mode: str, out):
    """Numba CUDA version of :func:`gpukit.backends.numpy.sampler.project_axis` (``out``: device float32)."""
    d = _contiguous(_device(data, "data"), "data")
    o = _device(out, "out")
    nz = int(d.shape[0])
    s_h = _host_f64(slopes, nz)
    t_h = _host_f64(intercepts, nz)
    axis, lo, hi = int(axis), int(lo), int(hi)
    code = MODES[mode]
    per_sample = False
    if axis == 0:
        s, t = s_h[lo:hi], t_h[lo:hi]
        per_sample = not (bool(np.all(s == s[0]) and np.all(t == t[0])) and (not combine_selects(code) or s[0] > 0))
    nu, nv = (int(n) for n in o.shape)
    blocks, threads = _pixel_grid(nu, nv)
    K.launch("axis", blocks, threads, d, cuda.to_device(s_h), cuda.to_device(t_h), axis, lo, hi, int(code),
             per_sample, o)
    return out


def slice_extrema(data) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice minimum and maximum stored value, as host float64 arrays of length nz."""
    d = _contiguous(_device(data, "data"), "data")
    nz = int(d.shape[0])
    lo = cuda.to_device(np.full(nz, np.inf))
    hi = cuda.to_device(np.full(nz, -np.inf))
    if d.size:
        plane = d.size // nz
        grid, block = _slice_grid(nz, plane)
        K.launch("extrema", grid, block, _flat(d), int(plane), lo, hi)
    return lo.copy_to_host(), hi.copy_to_host()


def sampler_warmup(data, out_dtype=np.float32, modes=("none", "max", "min", "mean"), interps=("linear", "nearest"),
                   slopes_uniform=None) -> None:
    """Compile the sampler kernels for ``data``'s dtype by running them on a 2x2x2 device block (the fast
    kernels too, where ``data``'s dtype has them)."""
    dt = np.dtype(_device(data, "data").dtype)
    small = cuda.to_device(np.zeros((2, 2, 2), dt))
    one = np.ones(2)
    zero = np.zeros(2)
    A = np.eye(3)
    b = np.zeros(3)
    precisions = ("exact", "fast") if dt.name in K.FAST_KINDS and "linear" in interps else ("exact",)
    for precision in precisions:
        for mode in modes:
            for interp in interps:
                if mode == "none":
                    odt = np.int16 if (interp == "nearest" and np.dtype(out_dtype) == np.int16) else np.float32
                    sample_grid(small, one, zero, A, b, (1, 2, 2), mode, interp, 0.0,
                                cuda.device_array((1, 2, 2), odt), precision=precision)
                else:
                    sample_grid(small, one, zero, A, b, (2, 2, 2), mode, interp, 0.0,
                                cuda.device_array((2, 2), np.float32), precision=precision)


__all__ = ["rescale_kernel", "window_kernel", "minmax_kernel", "sample_grid", "project_axis", "slice_extrema",
           "sampler_warmup"]
