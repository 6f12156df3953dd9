"""The Numba CUDA kernels against the numpy reference: in numba-cuda's simulator, or on a CUDA device.

One test body, two places to run it (the STUMPY habit):

* ``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported: the kernels run
  in numba-cuda's simulator, in Python, on this machine.
  ``tests/test_numba_cuda.py::test_kernels_match_numpy_in_the_simulator``
  runs this file that way in its own process (the variable must be set before
  Numba is imported, so never in the main test process);
* a CUDA device present: the same tests, marked ``gpu``, on the device.

Anywhere else every test here is skipped, saying why.

Launch sizes are shrunk (8 threads a block, at most 3 blocks along x and 2
along y; 4x3-thread sampler blocks) so that these small volumes span several
blocks and every grid-stride loop turns more than once.

Tolerances (DESIGN.md): LINEAR and LINEAR_EXACT windows and rescale equal to
numpy bit for bit; SIGMOID within one output unit; the sampler within
``1e-6`` of the largest |HU| (float32 output of the same float64 values);
outside points and empty rays exactly the fill in both.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _device_present() -> bool:
    if SIMULATOR:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


DEVICE = _device_present()

pytestmark = [] if SIMULATOR else [pytest.mark.gpu]
if not (SIMULATOR or DEVICE):
    pytestmark.append(pytest.mark.skip(
        reason="needs a CUDA device or NUMBA_ENABLE_CUDASIM=1 (set before Numba is imported); without a device "
               "tests/test_numba_cuda.py runs this file in the simulator in a subprocess"))

FILL = -4321.5
MODES = ["none", "max", "min", "mean"]


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    from gpukit.backends.numba_cuda import kernels as K

    monkeypatch.setattr(K, "THREADS", 8)
    monkeypatch.setattr(K, "MAX_BLOCKS", 3)
    monkeypatch.setattr(K, "MAX_SLICE_BLOCKS", 2)
    monkeypatch.setattr(K, "SAMPLER_BLOCK", (4, 3))
    return K


@pytest.fixture(scope="module")
def cuda():
    from numba import cuda

    return cuda


def _to_dev(cuda, a):
    return cuda.to_device(np.ascontiguousarray(a))


def test_launches_span_several_blocks(small_launches):
    from gpukit.backends.numba_cuda import ops as G

    (bx, by), threads = G._slice_grid(3, 5 * 14)
    assert threads == 8 and bx == 3 and by == 2           # 24 threads along x for 70 values: each loops
    blocks, per = G._pixel_grid(9, 8)
    assert per == (4, 3) and blocks == (2, 3)


# -- intensity -------------------------------------------------------------------------------------------------------
def _stored(rng, dtype, shape, slopes, intercepts, center, width):
    """Per slice: a run of consecutive stored values through the window (its rounding ties), or random ones."""
    if np.dtype(dtype).kind == "f":
        data = rng.normal(center, width, size=shape).astype(dtype)
        data.flat[rng.choice(data.size, size=3, replace=False)] = [np.nan, np.inf, -np.inf]
        return data
    info = np.iinfo(dtype)
    data = np.empty(shape, dtype)
    n = shape[1] * shape[2]
    for k in range(shape[0]):
        mid = (center - intercepts[k]) / slopes[k]
        if k % 2 == 0:
            v = np.arange(n) + np.rint(mid) - n // 2
        else:
            v = rng.integers(info.min, int(info.max) + 1, size=n)
        data[k] = np.clip(v, info.min, info.max).reshape(shape[1:])
    return data


WINDOW_CASES = [
    # dtype, function, center, width, out range, out dtype, invert
    ("int16", "LINEAR", 40.0, 400.0, (0, 255), np.uint8, False),
    ("int16", "LINEAR_EXACT", 40.0, 510.0, (0, 255), np.uint8, True),    # exact ties (y = (x - c) / 2 + 127.5)
    ("uint16", "LINEAR", 1064.0, 1.0, (0, 255), np.uint8, False),       # width 1: a threshold
    ("uint16", "LINEAR_EXACT", 300.0, 1500.0, (0, 4095), np.uint16, True),
    ("uint8", "LINEAR", 100.0, 255.0, (-1024, 1023), np.int16, False),
    ("int32", "LINEAR", -600.0, 1500.0, (0, 100000), np.int32, False),
    ("float32", "LINEAR_EXACT", 40.0, 80.0, (0.0, 1.0), np.float32, False),
    ("int16", "SIGMOID", 40.0, 80.0, (0, 255), np.uint8, True),
    ("float32", "SIGMOID", 40.0, 350.0, (0.0, 1.0), np.float32, False),
]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{np.dtype(c[5]).name}")
def test_window_equals_numpy(cuda, case):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import intensity as NI

    dtype, fn, center, width, (lo, hi), odt, invert = case
    rng = np.random.default_rng(WINDOW_CASES.index(case))
    shape = (3, 5, 14)
    slopes = np.array([1.0, 0.37, 2.0])       # 0.37 is not a binary fraction: a fused multiply-add would show
    intercepts = np.array([-1024.0, -1000.3, 37.0])
    data = _stored(rng, dtype, shape, slopes, intercepts, center, width)
    code = NI.FUNCTION_CODES[fn]
    ref = NI.window_kernel(data, slopes, intercepts, center, width, code, lo, hi, invert, np.empty(shape, odt))
    out = cuda.device_array(shape, odt)
    got = G.window_kernel(_to_dev(cuda, data), slopes, intercepts, center, width, code, lo, hi, invert, out)
    assert got is out
    got = out.copy_to_host()
    assert len(np.unique(ref)) > (1 if width <= 1 else 5)      # real contrast (width 1: both levels)
    if fn == "SIGMOID":
        tol = 1 if np.dtype(odt).kind in "iu" else 1e-6 * (hi - lo)
        assert np.abs(got.astype(np.float64) - ref.astype(np.float64)).max() <= tol
    else:
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype,out_dtype,slopes,intercepts", [
    ("uint16", np.int16, [1.0, 1.0, 2.0], [-1024.0, -1024.0, 0.0]),
    ("int16", np.float32, [0.37, 1.25, 0.001], [-1000.3, 0.0, 37.5]),
    ("uint8", np.int16, [1.0, 3.0, 1.0], [0.0, -100.0, 5.0]),
    ("float32", np.float32, [1.0, 0.5, 2.5], [0.0, -1024.0, 1.5]),
])
def test_rescale_equals_numpy(cuda, dtype, out_dtype, slopes, intercepts):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import intensity as NI

    rng = np.random.default_rng(5)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(0, 500, size=(3, 4, 9)).astype(dtype)
    else:
        data = rng.integers(0, min(4096, np.iinfo(dtype).max), size=(3, 4, 9)).astype(dtype)
    s = np.array(slopes)
    b = np.array(intercepts)
    ref = NI.rescale_kernel(data, s, b, out_dtype)
    got = G.rescale_kernel(_to_dev(cuda, data), s, b, out_dtype).copy_to_host()
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    out = cuda.device_array(data.shape, out_dtype)
    assert G.rescale_kernel(_to_dev(cuda, data), s, b, out_dtype, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), ref)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint8", "int32", "uint32", "float32", "float64"])
def test_minmax_and_slice_extrema_equal_numpy(cuda, dtype):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import intensity as NI
    from gpukit.backends.numpy import sampler as NS

    rng = np.random.default_rng(11)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(-200, 700, size=(5, 3, 11)).astype(dt)
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, int(info.max) + 1, size=(5, 3, 11), dtype=np.int64).astype(dt)
    d = _to_dev(cuda, data)
    got = G.minmax_kernel(d)
    assert got == NI.minmax_kernel(data) and got[0] < got[1]
    assert all(type(g) is type(r) for g, r in zip(got, NI.minmax_kernel(data)))
    lo, hi = G.slice_extrema(d)
    rlo, rhi = NS.slice_extrema(data)
    np.testing.assert_array_equal(lo, rlo)
    np.testing.assert_array_equal(hi, rhi)
    if dt.kind == "f":
        data.flat[17] = np.nan
        assert all(np.isnan(v) for v in G.minmax_kernel(_to_dev(cuda, data)))


def test_host_arrays_are_refused_with_the_fix(cuda):
    from gpukit.backends.numba_cuda import ops as G

    with pytest.raises(TypeError, match="cupy.asarray"):
        G.minmax_kernel(np.zeros((2, 2, 2), np.int16))


# -- the sampler -----------------------------------------------------------------------------------------------------
def _geometry(rng):
    """A random rotation + scale + shear index map around a 5x6x7 volume (about half of the samples inside)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    A = R @ np.diag(rng.uniform(0.4, 1.1, 3))
    A[0, 1] += rng.uniform(-0.3, 0.3)
    centre_in = np.array([3.0, 2.5, 2.0])                     # (i, j, k) centre of a 7x6x5 volume
    b = centre_in - A @ np.array([3.5, 4.0, 1.5]) + rng.uniform(-1.5, 1.5, 3)
    return A, b


def _volume(rng, dtype, per_slice):
    shape = (5, 6, 7)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(0, 300, size=shape).astype(dtype)
    else:
        data = rng.integers(0, 3000, size=shape).astype(dtype)
    slopes = rng.uniform(0.5, 2.0, shape[0]) if per_slice else np.full(shape[0], 1.0)
    intercepts = rng.uniform(-1100, -900, shape[0]) if per_slice else np.full(shape[0], -1024.0)
    return data, slopes, intercepts


def _hu_max(data, s, t):
    return float(np.abs(data.astype(np.float64) * s[:, None, None] + t[:, None, None]).max())


@pytest.mark.parametrize("seed,dtype,per_slice", [(1, "int16", False), (2, "int16", True), (3, "float32", True),
                                                  (4, "uint16", True)])
def test_sample_grid_equals_numpy(cuda, seed, dtype, per_slice):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import sampler as NS

    rng = np.random.default_rng(seed)
    data, s, t = _volume(rng, dtype, per_slice)
    A, b = _geometry(rng)
    d = _to_dev(cuda, data)
    tol = 1e-6 * _hu_max(data, s, t)
    grid = (4, 9, 8)
    for mode in MODES:
        for interp in ("linear", "nearest"):
            shape = grid if mode == "none" else grid[1:]
            ref = NS.sample_grid(data, s, t, A, b, grid, mode, interp, FILL, np.empty(shape, np.float32))
            out = cuda.device_array(shape, np.float32)
            assert G.sample_grid(d, s, t, A, b, grid, mode, interp, FILL, out) is out
            got = out.copy_to_host()
            np.testing.assert_array_equal(got == np.float32(FILL), ref == np.float32(FILL), err_msg=(mode, interp))
            assert (ref == np.float32(FILL)).any() and (ref != np.float32(FILL)).any(), (mode, interp)
            np.testing.assert_allclose(got, ref, rtol=0, atol=tol, err_msg=f"{mode} {interp}")


def test_nearest_resample_into_int16_and_a_single_plane(cuda):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import sampler as NS

    rng = np.random.default_rng(9)
    data, s, t = _volume(rng, "int16", False)
    A, b = _geometry(rng)
    grid = (1, 9, 8)
    ref = NS.sample_grid(data, s, t, A, b, grid, "none", "nearest", -1024, np.empty(grid, np.int16))
    out = cuda.device_array(grid, np.int16)
    G.sample_grid(_to_dev(cuda, data), s, t, A, b, grid, "none", "nearest", -1024, out)
    np.testing.assert_array_equal(out.copy_to_host(), ref)
    assert (ref == -1024).any() and len(np.unique(ref)) > 10


def test_boundary_rule_eps_and_rays_that_miss(cuda):
    """Just inside (within EPS) reads the edge voxel; beyond EPS gives the fill; a ray missing the volume: fill."""
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import sampler as NS

    rng = np.random.default_rng(3)
    data, s, t = _volume(rng, "int16", True)
    d = _to_dev(cuda, data)
    A = np.eye(3)
    for off, inside in ((-0.5e-6, True), (-2e-6, False), (6.0 + 0.5e-6, True), (6.0 + 2e-6, False)):
        b = np.array([off, 1.0, 2.0])       # column i = off + c: c = 0 sits at the low or high edge
        ref = NS.sample_grid(data, s, t, A, b, (1, 1, 1), "none", "linear", FILL, np.empty((1, 1, 1), np.float32))
        out = cuda.device_array((1, 1, 1), np.float32)
        G.sample_grid(d, s, t, A, b, (1, 1, 1), "none", "linear", FILL, out)
        assert (out.copy_to_host()[0, 0, 0] != np.float32(FILL)) == inside == (ref[0, 0, 0] != np.float32(FILL))
    out = cuda.device_array((3, 4), np.float32)
    G.sample_grid(d, s, t, A, np.array([100.0, 0.0, 0.0]), (5, 3, 4), "max", "linear", FILL, out)
    assert np.all(out.copy_to_host() == np.float32(FILL))


@pytest.mark.parametrize("slopes_kind", ["uniform", "per_slice", "negative"])
def test_project_axis_equals_numpy(cuda, slopes_kind):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import sampler as NS

    rng = np.random.default_rng(21)
    data, s, t = _volume(rng, "int16", slopes_kind != "uniform")
    if slopes_kind == "negative":
        s[1] = -1.5
    d = _to_dev(cuda, data)
    tol = 1e-6 * _hu_max(data, s, t)
    for axis in (0, 1, 2):
        n = data.shape[axis]
        shape = tuple(x for i, x in enumerate(data.shape) if i != axis)
        for mode in ("max", "min", "mean"):
            for lo, hi in ((0, n), (1, n - 1)):
                ref = NS.project_axis(data, s, t, axis, lo, hi, mode, np.empty(shape, np.float32))
                out = cuda.device_array(shape, np.float32)
                G.project_axis(d, s, t, axis, lo, hi, mode, out)
                np.testing.assert_allclose(out.copy_to_host(), ref, rtol=0, atol=tol,
                                           err_msg=f"axis {axis} {mode} {lo}:{hi}")


# -- the real CT -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ct_crop():
    from conftest import data_path

    import gpukit

    vol = gpukit.load(data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020"))
    # a small crop through the phantom's edge (air, plastic and the transition), small enough for the simulator
    return vol, np.ascontiguousarray(vol.data[66:72, 236:246, 90:101])


def test_real_ct_crop_window_rescale_and_sampler_equal_numpy(cuda, ct_crop):
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import intensity as NI
    from gpukit.backends.numpy import sampler as NS
    vol, data = ct_crop
    nz = data.shape[0]
    s = vol.slopes[:nz].copy()
    t = vol.intercepts[:nz].copy()
    assert len(np.unique(data)) > 50          # real structure, not a blank crop
    d = _to_dev(cuda, data)
    for center, width in ((40.0, 80.0), (-600.0, 1500.0)):      # the file's window; lung
        ref = NI.window_kernel(data, s, t, center, width, NI.LINEAR, 0, 255, False, np.empty(data.shape, np.uint8))
        out = cuda.device_array(data.shape, np.uint8)
        G.window_kernel(d, s, t, center, width, NI.LINEAR, 0, 255, False, out)
        np.testing.assert_array_equal(out.copy_to_host(), ref)
    np.testing.assert_array_equal(G.rescale_kernel(d, s, t, np.int16).copy_to_host(),
                                  NI.rescale_kernel(data, s, t, np.int16))
    rng = np.random.default_rng(2)
    A, b = _geometry(rng)
    b = b + np.array([2.0, 2.0, 0.5])
    tol = 1e-6 * _hu_max(data, s, t)
    for mode in ("none", "max"):
        grid = (3, 9, 8)
        shape = grid if mode == "none" else grid[1:]
        ref = NS.sample_grid(data, s, t, A, b, grid, mode, "linear", FILL, np.empty(shape, np.float32))
        out = cuda.device_array(shape, np.float32)
        G.sample_grid(d, s, t, A, b, grid, mode, "linear", FILL, out)
        got = out.copy_to_host()
        np.testing.assert_array_equal(got == np.float32(FILL), ref == np.float32(FILL))
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol)


# -- device only -----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not DEVICE, reason="needs a CUDA device (CuPy arrays and compiled SASS do not exist in the "
                                       "simulator)")
def test_device_kernels_take_cupy_arrays_and_have_no_fused_multiply_add(cuda):
    cupy = pytest.importorskip("cupy")
    from gpukit.backends.numba_cuda import kernels as K
    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import intensity as NI

    rng = np.random.default_rng(4)
    data = rng.integers(0, 4096, size=(4, 33, 65)).astype(np.uint16)
    s = np.array([0.37, 1.0, 2.5, 0.001])
    t = np.array([-1000.3, -1024.0, 5.0, 0.0])
    cd = cupy.asarray(data)
    got = G.rescale_kernel(cd, s, t, np.float32)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got), NI.rescale_kernel(data, s, t, np.float32))
    out = cupy.empty(data.shape, cupy.uint8)
    G.window_kernel(cd, s, t, 40.0, 510.0, NI.LINEAR_EXACT, 0, 255, False, out)
    ref = NI.window_kernel(data, s, t, 40.0, 510.0, NI.LINEAR_EXACT, 0, 255, False, np.empty(data.shape, np.uint8))
    np.testing.assert_array_equal(cupy.asnumpy(out), ref)
    for spec in K.KERNELS["rescale"].specializations.values():
        asm = spec.inspect_asm()
        text = "\n".join(asm.values()) if isinstance(asm, dict) else str(asm)
        assert "fma.rn.f64" not in text


@pytest.mark.skipif(not DEVICE, reason="needs a CUDA device (the ops layer hands CuPy arrays to GPU backends)")
def test_device_ops_layer_on_the_numba_cuda_backend_equals_numpy():
    pytest.importorskip("cupy")
    import cupy

    import gpukit
    from gpukit import Plane, Volume

    rng = np.random.default_rng(8)
    data = rng.integers(0, 3000, size=(12, 20, 24)).astype(np.int16)
    aff = np.diag([0.7, 0.7, 1.5, 1.0])
    vol = Volume(data, aff, {"rescale_slope": rng.uniform(0.5, 2.0, 12), "rescale_intercept": np.full(12, -1024.0)})

    def host(a):
        return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)

    np.testing.assert_array_equal(host(gpukit.window(vol, 40, 400, backend="numba-cuda")),
                                  gpukit.window(vol, 40, 400, backend="numpy"))
    np.testing.assert_array_equal(host(gpukit.rescale(vol, backend="numba-cuda")), gpukit.rescale(vol, backend="numpy"))
    plane = Plane.rotated(vol, (25, -40, 70), shape=(17, 19), spacing=0.6)
    ref = gpukit.reslice(vol, plane, fill=FILL, backend="numpy")
    np.testing.assert_allclose(host(gpukit.reslice(vol, plane, fill=FILL, backend="numba-cuda")), ref, rtol=0,
                               atol=1e-6 * float(np.abs(vol.hu(backend="numpy")).max()))
    for axis in ("axial", "coronal", "sagittal"):
        np.testing.assert_allclose(host(gpukit.project(vol, axis, backend="numba-cuda")),
                                   gpukit.project(vol, axis, backend="numpy"), rtol=0,
                                   atol=1e-6 * float(np.abs(vol.hu(backend="numpy")).max()))
