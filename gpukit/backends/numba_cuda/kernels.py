"""The ``@cuda.jit`` kernels of the ``numba-cuda`` backend, and how they are compiled and launched.

Every value comes from the same ``@njit`` scalar helpers as the Numba CPU
kernels: :mod:`gpukit.backends._math` (rescale, VOI LUT window, rounding,
MONOCHROME1) and :mod:`gpukit.backends._sampler_math` (inside test, clamping,
trilinear and nearest reads, ray clipping, the combine rule of the projection
modes: ``combine_*``). numba-cuda compiles an ``@njit``
function called from a kernel for the CUDA target, so the maths is written
once (DESIGN.md, "Kernel math shared by the Numba CPU and Numba CUDA kernels
lives once").

Exactness. The helpers write ``a * b + c`` meaning two roundings, as numpy
does. libNVVM contracts a multiply followed by an add into one FMA by
default (its ``-fma=1``), and ``fastmath=False`` does not turn that off; the
numba-cuda release gpukit supports has no ``cuda.jit`` option for it
(NVIDIA/numba-cuda#118, #839). :func:`contraction_off` therefore compiles
gpukit's kernels, and only them, with ``-fma=0`` (the PTX then holds
``mul.rn``/``add.rn``, which ptxas never fuses), and link-time optimisation
is off so that no later step compiles the IR again with the default. The
tests check the PTX of every kernel for FMA instructions.

Kernels (arrays are device arrays; 1-D ones are C-order views of the volume):

* ``window`` / ``rescale``: grid-stride over one slice along x, slices along
  y (the slice's slope and intercept read once per thread and slice);
* ``minmax``: grid-stride over all values, one atomic min and max per thread;
* ``extrema``: per-slice min and max (atomics per slice), float64;
* ``resample`` (mode none) and ``project`` (max, min, mean): one thread
  per output pixel ``(c, r)`` marching along ``s``; ``project`` is the
  shared ``_ray_combine`` (the ray clipped to the volume by ``_ray_range``:
  exactly the samples the inside test accepts, so its loop needs no test);
* ``axis``: axis-aligned max/min/mean, one thread per output pixel, the same
  arithmetic as the numpy reference's ``project_axis``;
* ``resample_fast`` / ``project_fast``: trilinear at ``precision="fast"``
  (below), the same threads as ``resample`` / ``project``.

Fast precision (:data:`gpukit.backends.codes.PRECISIONS`, capability
``FAST_PRECISION``; 8- and 16-bit integer stored values, :data:`FAST_KINDS`).
The Numba CPU backend's float32 sampler, per sample, with its helpers
(``_fast_axis``, ``_blend4_f32``, ``_fast_value``, ``_linear_fast``) and so
its error bound (``gpukit.backends.numba.sampler.fast_bound``):
coordinates are the reference's float64 expression per sample (so the
inside test, hence the fill, is the reference's; each thread clips its ray
once with ``_ray_range`` instead of testing each sample), the weights
float32, the eight stored values read as float32 and blended in float32;
the rescale is float64, once per output value (mode none; per slice: the
two slices' blends). Projections with a uniform rescale combine the raw
float32 blends (max / min in float32, mirrored for a negative slope;
mean summed in float64) and rescale once per ray. What stays float64 per
sample: the three coordinates (``mul``/``add``), the clamp, ``floor`` and
fraction of ``_fast_axis`` (then one ``cvt`` to float32 each), and the
per-output rescale (mode none, and projections with a per-slice rescale);
the tests count the PTX's ``.f64`` instructions. Nearest has no fast
kernel: the exact one is already what "fast" promises (equal values).

Mode codes are :data:`gpukit.backends.codes.MODES`; the kernels never compare
them with literals (the ``combine_*`` helpers do).

Launch sizes are module values read at each launch; the tests shrink them so
that inputs of a few hundred values span several blocks and every
grid-stride loop turns more than once.

Under ``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported) the kernels
run in numba-cuda's simulator, in Python. There a kernel cannot pass an array
to an ``@njit`` function (numba/numba#7494), so the kernels call the helpers'
Python functions (``py_func``: the same source), which call one another's
Python functions in turn (``_ray_combine`` passes the volume to ``_linear``);
on a device they call the ``@njit`` functions themselves.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import types

import numpy as np
from numba import config, cuda

from .. import _math
from .. import _sampler_math as _sm

#: True when numba-cuda's simulator stands in for a device (NUMBA_ENABLE_CUDASIM=1 before Numba was imported).
SIMULATOR = bool(config.ENABLE_CUDASIM)

# -- launch configuration (read at every launch; tests shrink them) ----------------------------------------------
#: threads per block of the element-wise kernels (window, rescale, minmax, extrema)
THREADS = 256
#: most blocks along x of the element-wise kernels; a grid-stride loop covers the rest
MAX_BLOCKS = 2048
#: most blocks along y (one slice per block row; a grid-stride loop over slices beyond)
MAX_SLICE_BLOCKS = 65535
#: (columns, rows) threads per block of the sampler and projection kernels
SAMPLER_BLOCK = (32, 8)


@functools.lru_cache(maxsize=None)
def _python_helpers(module_name: str) -> dict:
    """The ``@njit`` helpers of a module as plain Python functions that call each other's Python functions (not
    the dispatchers, which cannot take a simulator array): the names of the module, as the simulator sees them."""
    names = dict(vars(sys.modules[module_name]))
    for name, f in list(names.items()):
        py = getattr(f, "py_func", None)
        if py is not None:
            names[name] = types.FunctionType(py.__code__, names, py.__name__, py.__defaults__, py.__closure__)
    return names


def _device(f):
    """A helper as the kernels call it: the ``@njit`` function on a device, its Python source under the simulator."""
    return _python_helpers(f.py_func.__module__)[f.py_func.__name__] if SIMULATOR else f


_rescale_value = _device(_math.rescale_value)
_window_value = _device(_math.window_value)
_inside = _device(_sm._inside)
_linear = _device(_sm._linear)
_nearest = _device(_sm._nearest)
_ray_range = _device(_sm._ray_range)
_ray_combine = _device(_sm._ray_combine)
_combine_init = _device(_sm.combine_init)
_combine_step = _device(_sm.combine_step)
_combine_finish = _device(_sm.combine_finish)
_combine_selects = _device(_sm.combine_selects)
_combine_mirror = _device(_sm.combine_mirror)
_fast_axis = _device(_sm._fast_axis)
_blend4_f32 = _device(_sm._blend4_f32)
_fast_value = _device(_sm._fast_value)
_linear_fast = _device(_sm._linear_fast)


# -- intensity ------------------------------------------------------------------------------------------------------
def window(data, slopes, intercepts, plane, fcode, cc, ww, lower, upper, lo, hi, rounded, invert, out):
    """``out[i] = window(data[i] * slope[k] + intercept[k])`` over 1-D views of ``(nz, plane)`` values."""
    nz = slopes.shape[0]
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    step = cuda.blockDim.x * cuda.gridDim.x
    for k in range(cuda.blockIdx.y, nz, cuda.gridDim.y):
        s = slopes[k]
        b = intercepts[k]
        base = k * plane
        for t in range(start, plane, step):
            out[base + t] = _window_value(_rescale_value(float(data[base + t]), s, b), fcode, cc, ww, lower, upper,
                                          lo, hi, rounded, invert)


def rescale(data, slopes, intercepts, plane, out):
    """``out[i] = data[i] * slope[k] + intercept[k]`` (float64, cast to ``out``'s dtype) over 1-D views."""
    nz = slopes.shape[0]
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    step = cuda.blockDim.x * cuda.gridDim.x
    for k in range(cuda.blockIdx.y, nz, cuda.gridDim.y):
        s = slopes[k]
        b = intercepts[k]
        base = k * plane
        for t in range(start, plane, step):
            out[base + t] = _rescale_value(float(data[base + t]), s, b)


def minmax(data, start_min, start_max, res, nan):
    """``res[0] = min``, ``res[1] = max`` of the 1-D ``data``; ``nan[0] = 1`` when it holds a NaN.

    ``start_min``/``start_max`` (and ``res`` on entry) are the identities: the
    largest and smallest value of the accumulator dtype.
    """
    n = data.shape[0]
    m = start_min
    mx = start_max
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        v = data[i]
        if v != v:
            nan[0] = 1
        if v < m:
            m = v
        if v > mx:
            mx = v
    cuda.atomic.min(res, 0, m)
    cuda.atomic.max(res, 1, mx)


def extrema(data, plane, lo_out, hi_out):
    """Per slice ``k``: ``lo_out[k]``/``hi_out[k]`` (float64, starting at +inf/-inf) = min/max of its stored values."""
    nz = lo_out.shape[0]
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    step = cuda.blockDim.x * cuda.gridDim.x
    for k in range(cuda.blockIdx.y, nz, cuda.gridDim.y):
        base = k * plane
        m = math.inf
        mx = -math.inf
        for t in range(start, plane, step):
            v = float(data[base + t])
            if v < m:
                m = v
            if v > mx:
                mx = v
        cuda.atomic.min(lo_out, k, m)
        cuda.atomic.max(hi_out, k, mx)


# -- the sampler -----------------------------------------------------------------------------------------------------
def resample(flat, nx, ny, nz, slopes, intercepts, uniform, a00, a01, a02, b0, a10, a11, a12, b1, a20, a21, a22, b2,
             linear, fill, eps, out):
    """mode "none": thread ``(c, r)`` writes ``out[s, r, c]`` for every ``s`` (the reference's rule and sums)."""
    ns, nr, nc = out.shape
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    r = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    if c >= nc or r >= nr:
        return
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    # x(s) = ((a00*c + a01*r) + a02*s) + b0: the reference's left-to-right sum
    bx = a00 * c + a01 * r
    by = a10 * c + a11 * r
    bz = a20 * c + a21 * r
    for s in range(ns):
        x = bx + a02 * s + b0
        y = by + a12 * s + b1
        z = bz + a22 * s + b2
        if _inside(x, y, z, xl, yl, zl, eps):
            if linear:
                out[s, r, c] = _linear(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
            else:
                out[s, r, c] = _nearest(flat, nx, ny, nz, slopes, intercepts, uniform, x, y, z)
        else:
            out[s, r, c] = fill


def project(flat, nx, ny, nz, slopes, intercepts, uniform, a00, a01, a02, b0, a10, a11, a12, b1, a20, a21, a22, b2,
            ns, mode, linear, fill, eps, out):
    """projection modes (max, min, mean): thread ``(c, r)`` writes the combined value of its ray to ``out[r, c]``."""
    nr, nc = out.shape
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    r = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    if c >= nc or r >= nr:
        return
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    bx = a00 * c + a01 * r
    by = a10 * c + a11 * r
    bz = a20 * c + a21 * r
    out[r, c] = _ray_combine(flat, nx, ny, nz, slopes, intercepts, uniform, linear, bx, by, bz, a02, a12, a22, b0, b1,
                             b2, ns, mode, fill, xl, yl, zl, eps)


def axis(data, slopes, intercepts, ax, lo, hi, mode, per_sample, out):
    """Axis-aligned max / min / mean over indices ``lo:hi`` of array axis ``ax``; thread = output pixel.

    ``out[u, v]`` reduces ``data[q, u, v]`` (axis 0), ``data[u, q, v]`` (1) or
    ``data[u, v, q]`` (2). ``per_sample`` (axis 0 only): rescale every value
    with its slice's slope and intercept before combining; otherwise the
    stored values are reduced (by ``combine_mirror(mode)`` under a negative
    slice slope) and the result rescaled once, with slice ``u``'s rescale
    (axes 1, 2) or slice ``lo``'s (axis 0). The numpy reference's arithmetic,
    step by step; the combination is ``combine_*`` throughout.
    """
    nu, nv = out.shape
    v = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    u = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    if v >= nv or u >= nu:
        return
    if per_sample:
        acc = _rescale_value(float(data[lo, u, v]), slopes[lo], intercepts[lo])
        for q in range(lo + 1, hi):
            acc = _combine_step(acc, _rescale_value(float(data[q, u, v]), slopes[q], intercepts[q]), mode)
        out[u, v] = _combine_finish(acc, hi - lo, mode, 0.0)
        return
    k = lo if ax == 0 else u
    s = slopes[k]
    t = intercepts[k]
    m = mode
    if s < 0.0:
        m = _combine_mirror(mode)
    acc = _combine_init(m)
    for q in range(lo, hi):
        if ax == 0:
            x = float(data[q, u, v])
        elif ax == 1:
            x = float(data[u, q, v])
        else:
            x = float(data[u, v, q])
        if q == lo and _combine_selects(m):
            acc = x
        else:
            acc = _combine_step(acc, x, m)
    out[u, v] = _rescale_value(_combine_finish(acc, hi - lo, m, 0.0), s, t)


# -- the fast precision (float32 weights and blends; see the module docstring) ----------------------------------
#: stored dtypes the fast kernels take (their values are exact in float32; the Numba CPU backend's FAST_KINDS)
FAST_KINDS = ("int8", "uint8", "int16", "uint16")


def resample_fast(flat, nx, ny, nz, slopes, intercepts, uniform, a00, a01, a02, b0, a10, a11, a12, b1, a20, a21, a22,
                  b2, fill, eps, out):
    """mode "none", trilinear, fast: thread ``(c, r)`` writes ``out[s, r, c]`` for every ``s`` (``_linear_fast``
    at the reference's float64 coordinates; the samples outside ``_ray_range`` get the fill, without a test each)."""
    ns, nr, nc = out.shape
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    r = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    if c >= nc or r >= nr:
        return
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    bx = a00 * c + a01 * r
    by = a10 * c + a11 * r
    bz = a20 * c + a21 * r
    lo, hi = _ray_range(bx, by, bz, a02, a12, a22, b0, b1, b2, ns, xl, yl, zl, eps)
    for s in range(0, min(lo, ns)):
        out[s, r, c] = fill
    for s in range(lo, hi + 1):
        out[s, r, c] = _linear_fast(flat, nx, ny, nz, slopes, intercepts, uniform, bx + a02 * s + b0,
                                    by + a12 * s + b1, bz + a22 * s + b2)
    for s in range(max(hi + 1, lo), ns):
        out[s, r, c] = fill


def project_fast(flat, nx, ny, nz, slopes, intercepts, uniform, a00, a01, a02, b0, a10, a11, a12, b1, a20, a21, a22,
                 b2, ns, mode, raw, s0, t0, fill, eps, out):
    """max / min / mean, trilinear, fast: thread ``(c, r)`` combines its ray (clipped by ``_ray_range``) into
    ``out[r, c]``.

    ``raw`` (a uniform, nonzero rescale ``s0``, ``t0``): the float32 blends are combined unrescaled by ``mode``
    (already mirrored by the caller for a negative slope; max / min in float32, which selects the same value as
    float64 would; mean summed in float64) and the result rescaled once. Otherwise each sample is rescaled by
    ``_fast_value`` (float64) and combined in float64. The Numba CPU fast projection's rule, sample by sample.
    """
    nr, nc = out.shape
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    r = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
    if c >= nc or r >= nr:
        return
    xl = nx - 1.0 + eps
    yl = ny - 1.0 + eps
    zl = nz - 1.0 + eps
    bx = a00 * c + a01 * r
    by = a10 * c + a11 * r
    bz = a20 * c + a21 * r
    lo, hi = _ray_range(bx, by, bz, a02, a12, a22, b0, b1, b2, ns, xl, yl, zl, eps)
    xm = nx - 1.0
    ym = ny - 1.0
    zm = nz - 1.0
    nxm2 = max(nx - 2, 0)
    nym2 = max(ny - 2, 0)
    nzm2 = max(nz - 2, 0)
    di = 1 if nx > 1 else 0          # fixed strides: the lower corner is at most n - 2 (see _fast_axis)
    dj = nx if ny > 1 else 0
    dk = nx * ny if nz > 1 else 0
    g1 = 1 if nz > 1 else 0
    if raw and _combine_selects(mode):
        acc32 = np.float32(_combine_init(mode))
        for s in range(lo, hi + 1):
            i0, fx = _fast_axis(bx + a02 * s + b0, xm, nxm2)
            j0, fy = _fast_axis(by + a12 * s + b1, ym, nym2)
            k0, fz = _fast_axis(bz + a22 * s + b2, zm, nzm2)
            o = (k0 * ny + j0) * nx + i0
            p0 = _blend4_f32(flat, o, di, dj, fx, fy)
            p1 = _blend4_f32(flat, o + dk, di, dj, fx, fy)
            acc32 = _combine_step(acc32, p0 + (p1 - p0) * fz, mode)
        acc = float(acc32)
    else:
        acc = _combine_init(mode)
        for s in range(lo, hi + 1):
            i0, fx = _fast_axis(bx + a02 * s + b0, xm, nxm2)
            j0, fy = _fast_axis(by + a12 * s + b1, ym, nym2)
            k0, fz = _fast_axis(bz + a22 * s + b2, zm, nzm2)
            o = (k0 * ny + j0) * nx + i0
            p0 = _blend4_f32(flat, o, di, dj, fx, fy)
            p1 = _blend4_f32(flat, o + dk, di, dj, fx, fy)
            if raw:
                v = float(p0 + (p1 - p0) * fz)
            else:
                v = _fast_value(p0, p1, fz, k0, k0 + g1, slopes, intercepts, uniform)
            acc = _combine_step(acc, v, mode)
    v = _combine_finish(acc, hi - lo + 1, mode, fill)
    if raw and hi >= lo:
        v = v * s0 + t0
    out[r, c] = v


#: the kernels' Python functions, by name (what the dispatchers compile; the tests compile them to PTX)
PYFUNCS = {f.__name__: f for f in (window, rescale, minmax, extrema, resample, project, axis, resample_fast,
                                   project_fast)}

#: ``cuda.jit`` options of every gpukit kernel: no fast maths, no link-time optimisation (see the module docstring)
JIT_OPTIONS = dict(fastmath=False, lto=False, cache=False)

KERNELS = {name: (cuda.jit(f) if SIMULATOR else cuda.jit(f, **JIT_OPTIONS)) for name, f in PYFUNCS.items()}


# -- compiling with FMA contraction off --------------------------------------------------------------------------------
@contextlib.contextmanager
def contraction_off():
    """Compile the kernels launched or compiled inside this block with libNVVM's ``-fma=0``.

    numba-cuda hands every module to ``nvvm.compile_ir``; inside this block,
    holding numba-cuda's compiler lock (so no other thread compiles
    meanwhile), that function adds ``fma=False`` to the options. Outside it,
    numba-cuda is untouched.
    """
    if SIMULATOR:
        yield
        return
    from numba.cuda.core.compiler_lock import global_compiler_lock
    from numba.cuda.cudadrv import nvvm

    with global_compiler_lock:
        original = nvvm.compile_ir

        def compile_ir(llvmir, **options):
            options["fma"] = False
            return original(llvmir, **options)

        nvvm.compile_ir = compile_ir
        try:
            yield
        finally:
            nvvm.compile_ir = original


def launch(name: str, grid, block, *args) -> None:
    """Launch kernel ``name`` on ``grid`` x ``block``, compiling it (contraction off) for these argument types first."""
    disp = KERNELS[name]
    if SIMULATOR:
        disp[grid, block](*args)
        return
    with contraction_off():
        kernel = disp.specialize(*args)  # compiled once per argument types, kept by the dispatcher
    kernel[grid, block](*args)


def compile_ptx(name: str, sig, cc: tuple[int, int]) -> str:
    """PTX of kernel ``name`` for argument types ``sig`` and compute capability ``cc``, compiled as :func:`launch` does.

    Needs libNVVM, not a device.
    """
    with contraction_off():
        ptx, _ = cuda.compile_ptx(PYFUNCS[name], sig, cc=cc, fastmath=False)
    return ptx


# -- the argument types gpukit launches (compiled to PTX by the tests for each architecture) ------------------------
def signatures() -> list[tuple[str, tuple]]:
    """``(kernel name, argument types)`` covering what gpukit launches: every stored dtype, every output dtype.

    Each kernel with each stored dtype DICOM gives (8/16/32-bit integers,
    float32/float64); the window into every output dtype ``window_dtype``
    chooses, the rescale into int16 and float32, the resample into float32
    and int16 (nearest), each output dtype at least once (with int16 stored
    values); the fast kernels for the stored dtypes of :data:`FAST_KINDS`.
    The arguments are typed as :func:`launch` passes them (Python ints as
    int64, floats as float64, C-contiguous arrays).
    """
    from numba import types as t
    from numba.np.numpy_support import from_dtype

    def arr(dt, nd=1):
        return t.Array(from_dtype(np.dtype(dt)), nd, "C")

    f64, i64, b1 = t.float64, t.int64, t.boolean
    per_slice = (arr(np.float64), arr(np.float64))
    geom = (f64,) * 12
    stored = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64]
    out = []
    for d in stored:
        nd = np.dtype(d)
        window_outs = (np.uint8, np.uint16, np.int16, np.int32, np.float32) if nd == np.int16 else (np.uint8,)
        for o in window_outs:
            out.append(("window", (arr(d),) + per_slice + (i64, i64, f64, f64, f64, f64, f64, f64, b1, b1, arr(o))))
        for o in (np.float32, np.int16) if nd.kind in "iu" and nd.itemsize <= 2 else (np.float32,):
            out.append(("rescale", (arr(d),) + per_slice + (i64, arr(o))))
        acc = minmax_accumulator(nd)
        out.append(("minmax", (arr(d), from_dtype(acc), from_dtype(acc), arr(acc), arr(np.int32))))
        out.append(("extrema", (arr(d), i64, arr(np.float64), arr(np.float64))))
        for o in (np.float32, np.int16) if nd == np.int16 else (np.float32,):
            out.append(("resample", (arr(d), i64, i64, i64) + per_slice + (b1,) + geom + (b1, f64, f64, arr(o, 3))))
        out.append(("project", (arr(d), i64, i64, i64) + per_slice + (b1,) + geom
                    + (i64, i64, b1, f64, f64, arr(np.float32, 2))))
        out.append(("axis", (arr(d, 3),) + per_slice + (i64, i64, i64, i64, b1, arr(np.float32, 2))))
        if nd.name in FAST_KINDS:
            out.append(("resample_fast", (arr(d), i64, i64, i64) + per_slice + (b1,) + geom
                        + (f64, f64, arr(np.float32, 3))))
            out.append(("project_fast", (arr(d), i64, i64, i64) + per_slice + (b1,) + geom
                        + (i64, i64, b1, f64, f64, f64, f64, arr(np.float32, 2))))
    return out


def minmax_accumulator(dtype: np.dtype) -> np.dtype:
    """The dtype the ``minmax`` atomics work in for stored values of ``dtype`` (atomics exist for 32/64-bit only)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.dtype(np.float64)
    if dtype == np.uint64:
        return np.dtype(np.uint64)
    return np.dtype(np.int64)


__all__ = ["SIMULATOR", "THREADS", "MAX_BLOCKS", "MAX_SLICE_BLOCKS", "SAMPLER_BLOCK", "PYFUNCS", "KERNELS",
           "FAST_KINDS", "JIT_OPTIONS", "contraction_off", "launch", "compile_ptx", "signatures", "minmax_accumulator"]
