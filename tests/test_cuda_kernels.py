"""The CUDA C++ kernels (``kernels/``) and the ``cupy`` backend's wrapper, proven without a GPU.

What runs here (no GPU, no CUDA driver):

* NVRTC (``cupy_backends.cuda.libs.nvrtc`` with libnvrtc from the
  nvidia-cuda-nvrtc-cu12 wheel) compiles every module gpukit can build (each
  source x element types x 32/64-bit indices, :func:`cuda_src.all_specs`) to
  PTX for sm_70, sm_80 and sm_90, with ``--fmad=false`` in effect;
* ``ptxas`` (CUDA 13, when installed) assembles sm_90 PTX with no register spills;
* a broken source is reported with the compiler's log;
* the same ``.cu`` sources, compiled as C++ with the host shim
  (:mod:`gpukit.backends.cuda_host.shim`), run through the very wrapper the cupy
  backend uses (:class:`~gpukit.backends.cuda.kernels.CudaKernels`: module
  choice, 64-bit index choice, launch sizes, argument types checked against
  each kernel's parameter list) and are cross-checked against the numpy
  reference, with launch sizes shrunk so small inputs span several blocks and
  every grid-stride loop turns;
* the wheel ships the kernels, and an unpacked wheel finds and runs them.

Tolerances (those of the numba tests, tests/test_intensity.py and tests/test_sampling.py):

* window LINEAR / LINEAR_EXACT and rescale: bit-exact; SIGMOID: within one
  output unit (``exp`` differs in its last bit between numpy and libm/CUDA);
* sampler and projections: ``1e-6`` relative to the largest |HU| (float32
  output; the expressions are numpy's, in numpy's order); outside points and
  empty rays are exactly the fill; per-slice extrema and min/max: exact.

The float32 sampler (``precision="fast"``, ``kernels/sample_fast.cu``) is in
every module list here (NVRTC, ptxas) and has its own file for the rest:
tests/test_cuda_fast_precision.py (its error bound, no-float64 PTX, ptxas
registers and spills on sm_80 / sm_89 / sm_90).

Tests marked ``gpu`` run the cupy backend itself on a device against numpy
and skip here, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import gpukit
from gpukit.arrays import to_host
from gpukit import Plane, Volume
from gpukit import backends
from gpukit.backends.cuda_host import shim as cuda_host
from gpukit.backends.cuda import src as cs
from gpukit.backends.cupy import launcher as cupy_backend
from gpukit.backends.numpy import intensity as np_intensity
from gpukit.backends.numpy import sampler as np_sampler
from gpukit.backends.cuda.kernels import CudaKernels, LaunchConfig
from gpukit.errors import BackendUnavailableError, EnvironmentProblem, GpukitError
from gpukit.ops.intensity import window_dtype
from gpukit.ops.sampling import default_fill, index_map

from conftest import ROOT, data_path

HYP = settings(derandomize=True, deadline=None, max_examples=20,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FILL = -4321.5
FUNCTIONS = {"LINEAR": np_intensity.LINEAR, "LINEAR_EXACT": np_intensity.LINEAR_EXACT,
             "SIGMOID": np_intensity.SIGMOID}
#: launch sizes shrunk so that inputs of a few hundred values span several blocks and grid-stride loops turn
SMALL = LaunchConfig(block_1d=16, block_2d=(8, 4), max_grid_x=3, max_grid_y=3, extrema_parts=5)
VALUE_DTYPES = [d.name for d in cs.VALUE_DTYPES]
PTXAS = shutil.which("ptxas") or ("/usr/local/bin/ptxas" if os.path.exists("/usr/local/bin/ptxas") else None)

needs_cxx = pytest.mark.skipif(not cuda_host.is_available(), reason="; ".join(cuda_host.missing_dependencies()))
LAUNCHER = cuda_host.HostLauncher() if cuda_host.is_available() else None


def host(index64: bool = False, config: LaunchConfig = SMALL) -> CudaKernels:
    """The cupy backend's wrapper over the host launcher (64-bit modules forced when ``index64``)."""
    return CudaKernels(LAUNCHER, config, index32_max=0 if index64 else cs.INDEX32_MAX)


def guarded(shape, dtype, value):
    """An output array inside a larger one whose margins hold ``value`` too: ``intact()`` is False after a write
    past either end (the host shim has no bounds checks; this is how an indexing bug would show)."""
    n = int(np.prod(shape))
    big = np.full(n + 2 * 64, value, dtype)
    view = big[64:64 + n].reshape(shape)

    def intact() -> bool:
        return bool(np.all(big[:64] == big.dtype.type(value)) and np.all(big[64 + n:] == big.dtype.type(value)))
    return view, intact


def _nvrtc_or_skip():
    try:
        cs.nvrtc()
    except EnvironmentProblem as exc:
        pytest.skip(f"NVRTC is not usable here: {exc}")


@pytest.fixture(scope="module")
def prebuilt():
    """Build the host modules of the 32-bit specs the tests below use, two at a time (g++ is the slow part)."""
    if LAUNCHER is None:
        pytest.skip("; ".join(cuda_host.missing_dependencies()))
    # the float32 sampler's modules (sample_fast.cu) are built and checked by tests/test_cuda_fast_precision.py
    specs = [s for s in cs.all_specs() if s.define("INDEX_T") == "int" and s.source != "sample_fast.cu"]
    specs += [cs.window_spec("int16", "uint8", True), cs.sample_spec("int16", "float32", False, True),
              cs.sample_spec("float32", "float32", False, True), cs.project_spec("int16", True),
              cs.rescale_spec("uint16", "float32", True), cs.extrema_spec("int16", True)]
    LAUNCHER.prebuild(specs, workers=2)
    return LAUNCHER


# -- (a) NVRTC: every module, every architecture ---------------------------------------------------------------------
_PTX: dict = {}


def ptx_of(spec, arch: str) -> str:
    key = (spec, arch)
    if key not in _PTX:
        _PTX[key] = cs.compile_spec_ptx(spec, arch)
    return _PTX[key]


@pytest.mark.parametrize("arch", cs.ARCHITECTURES)
def test_every_module_compiles_to_ptx(arch):
    """Each source x element-type combination x index width that the backend can request compiles with plain
    NVRTC (no device, no CuPy headers), exports exactly its entry points, and is built with contraction off."""
    _nvrtc_or_skip()
    specs = cs.all_specs()
    assert len(specs) == len(set(specs)) > 150
    with ThreadPoolExecutor(2) as pool:
        ptxs = list(pool.map(lambda s: ptx_of(s, arch), specs))
    sm = arch.replace("compute_", "sm_")
    for spec, ptx in zip(specs, ptxs):
        assert re.search(rf"^\.target {sm}\b", ptx, re.M), spec.name
        assert set(re.findall(r"\.visible \.entry (\w+)\(", ptx)) == set(spec.entries), spec.name
        if spec.source != "window.cu" and spec.define("FUSED_WINDOW") != "1":   # only libdevice's exp (SIGMOID)
            # uses fma, explicitly: nothing else may contract
            assert "fma.rn.f64" not in ptx, f"{spec.name}: a contracted multiply-add (is --fmad=false lost?)"
    # every source, every entry point, every dtype the wrapper accepts is covered
    assert {s.source for s in specs} == set(cs.ENTRIES)
    ins = {s.define("IN_T") for s in specs}
    assert ins == {cs.c_type(d) for d in cs.EXTREMA_DTYPES}


def test_contraction_would_happen_without_fmad_false():
    """The fma check above can fail: the sampler's blends do contract when --fmad=false is dropped."""
    _nvrtc_or_skip()
    src = cs.assemble(cs.sample_spec("int16", "float32", False, False))
    assert "fma.rn.f64" in cs.compile_ptx(src, "compute_80", options=())
    assert "fma.rn.f64" not in cs.compile_ptx(src, "compute_80")


# -- (b) ptxas: no register spills on sm_90 --------------------------------------------------------------------------
def _ptxas_report(ptx: str, tmp_path, name: str) -> dict:
    path = tmp_path / f"{name}.ptx"
    path.write_text(ptx)
    res = subprocess.run([PTXAS, "-arch=sm_90", "-v", str(path), "-o", os.devnull], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    out = {}
    cur = None
    for line in res.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = m.group(1)
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and cur:
            out.setdefault(cur, {})["spill"] = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            out.setdefault(cur, {})["registers"] = int(m.group(1))
    return out


@pytest.mark.skipif(PTXAS is None, reason="ptxas (CUDA toolkit) is not installed here")
def test_ptxas_sm90_reports_no_spills(tmp_path):
    """Every entry point of every source, with the narrowest and widest element types and both index widths."""
    _nvrtc_or_skip()
    specs = [s for s in cs.all_specs() if s.define("IN_T") in ("short", "double", "long long")]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda s: _ptxas_report(ptx_of(s[1], "compute_90"), tmp_path, f"m{s[0]}"),
                                enumerate(specs)))
    table = {}
    for spec, rep in zip(specs, reports):
        assert set(rep) == set(spec.entries), (spec.name, rep)
        for entry, r in rep.items():
            assert r["spill"] == 0, f"{spec.name} {entry}: {r}"
            key = (spec.source, entry)
            table[key] = max(table.get(key, 0), r["registers"])
    print("\nsm_90 registers (max over specs):", {f"{s}:{e}": n for (s, e), n in sorted(table.items())})
    assert all(n <= 128 for n in table.values()), table


# -- (c) a broken source is reported with the compiler's log ----------------------------------------------------------
def test_nvrtc_error_carries_the_log():
    _nvrtc_or_skip()
    with pytest.raises(cs.KernelCompileError) as info:
        cs.compile_ptx('extern "C" __global__ void broken(float* a) { a[0] = undefined_thing; }', name="broken.cu")
    msg = str(info.value)
    assert isinstance(info.value, GpukitError)
    assert "broken.cu" in msg and "undefined_thing" in msg and "error" in msg and "compute_90" in msg
    assert "undefined_thing" in info.value.log
    # a bad specialisation of a real source: NVRTC's words name the culprit
    bad = cs.Spec("window.cu", (("IN_T", "no_such_type"),))
    with pytest.raises(cs.KernelCompileError, match="no_such_type"):
        cs.compile_spec_ptx(bad, "compute_80")


@needs_cxx
def test_host_build_error_carries_the_log():
    bad = cs.Spec("sample.cu", (("OUT_T", "no_such_type"),))
    with pytest.raises(cs.KernelCompileError, match="no_such_type") as info:
        cuda_host.build(bad)
    assert "error" in info.value.log


def test_unsupported_dtype_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="complex128"):
        cs.window_spec("complex128", "uint8", False)
    with pytest.raises(ValueError, match="bool"):
        cs.sample_spec("bool", "float32", False, False)


# -- (d) the host shim against the numpy reference: intensity -----------------------------------------------------
OUT_RANGES = [(0, 255), (0, 255), (0, 4095), (-1024, 1023), (-70000, 70000), (0.0, 1.0)]


def _stored(rng, dtype, shape, center, width, slopes, intercepts):
    """Stored values per slice: the whole range, values around the window, or a run through it (every tie)."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(center, width, size=shape).astype(dt)
        data.flat[rng.integers(0, data.size, size=3)] = [np.nan, np.inf, -np.inf]
        return data
    info = np.iinfo(dt)
    lo, hi = max(int(info.min), -(2 ** 40)), min(int(info.max), 2 ** 40)
    data = np.empty(shape, dt)
    for k in range(shape[0]):
        mid = (center - intercepts[k]) / slopes[k]
        kind = 2 if k == 0 else rng.integers(3)
        if kind == 0:
            v = rng.integers(lo, hi, size=shape[1:], endpoint=True)
        elif kind == 1:
            v = np.rint(mid + rng.normal(0, width / slopes[k], size=shape[1:]))
        else:
            v = np.arange(shape[1] * shape[2]).reshape(shape[1:]) + np.rint(mid) - shape[1] * shape[2] // 2
        data[k] = np.clip(v, lo, hi)
    return data


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from(VALUE_DTYPES + ["int64"]),
       function=st.sampled_from(sorted(FUNCTIONS)), invert=st.booleans(), out_range=st.sampled_from(OUT_RANGES),
       center=st.one_of(st.floats(-1100, 3000), st.integers(-1100, 3000).map(float)),
       width=st.one_of(st.floats(1, 5000), st.sampled_from([1.0, 2.0, 255.0, 510.0, 4095.0])),
       index64=st.booleans())
# ties: LINEAR_EXACT W 510 on a run of consecutive stored values (y = (x - c) / 2 + 127.5)
@example(seed=31, dtype="int16", function="LINEAR_EXACT", invert=False, out_range=(0, 255), center=40.0,
         width=510.0, index64=False)
@example(seed=5, dtype="uint16", function="LINEAR", invert=True, out_range=(0, 4095), center=40.0, width=1.0,
         index64=True)
def test_host_window_equals_numpy(prebuilt, seed, dtype, function, invert, out_range, center, width, index64):
    rng = np.random.default_rng(seed)
    nz = int(rng.integers(1, 5))
    shape = (nz, int(rng.integers(1, 9)), int(rng.integers(1, 70)))
    slopes = rng.choice([1.0, 0.5, 2.0, 1.25, 0.001], size=nz)
    intercepts = rng.choice([-1024.0, 0.0, -1000.5, 37.0, -32768.0], size=nz)
    data = _stored(rng, dtype, shape, center, width, slopes, intercepts)
    code = FUNCTIONS[function]
    dt = window_dtype(out_range)
    lo, hi = (float(v) for v in out_range)
    ref = np.empty(shape, dt)
    np_intensity.window_kernel(data, slopes, intercepts, center, width, code, lo, hi, invert, ref)
    got, intact = guarded(shape, dt, 77)
    host(index64).window_kernel(data, slopes, intercepts, center, width, code, lo, hi, invert, got)
    assert intact()
    if function == "SIGMOID":
        tol = 1 if dt.kind in "iu" else 1e-5 * (hi - lo)
        assert np.abs(got.astype(np.float64) - ref.astype(np.float64)).max() <= tol
    else:
        np.testing.assert_array_equal(got, ref)


@needs_cxx
@pytest.mark.parametrize("dtype", VALUE_DTYPES)
def test_host_window_every_output_dtype(prebuilt, dtype):
    """Every (input, output) module of window.cu, run once: LINEAR exact, SIGMOID within one unit."""
    rng = np.random.default_rng(11)
    slopes = np.array([1.0, 0.5, 2.0])
    intercepts = np.array([-1024.0, 0.0, 3.0])
    data = _stored(rng, dtype, (3, 5, 37), 40.0, 400.0, slopes, intercepts)
    for out_range in OUT_RANGES[1:]:
        dt = window_dtype(out_range)
        for fn, code in FUNCTIONS.items():
            ref = np.empty(data.shape, dt)
            np_intensity.window_kernel(data, slopes, intercepts, 40.0, 400.0, code, *out_range, fn == "LINEAR", ref)
            got = host().window_kernel(data, slopes, intercepts, 40.0, 400.0, code, *out_range, fn == "LINEAR",
                                       np.empty(data.shape, dt))
            diff = np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()
            assert diff <= (0 if fn != "SIGMOID" else (1 if dt.kind in "iu" else 1e-5 * (out_range[1] - out_range[0]))), \
                (dtype, dt, fn, diff)
    assert len(np.unique(ref)) > 3     # not a constant image


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from(VALUE_DTYPES + ["int64", "uint64"]),
       out=st.sampled_from(["int16", "float32"]), index64=st.booleans())
def test_host_rescale_equals_numpy(prebuilt, seed, dtype, out, index64):
    rng = np.random.default_rng(seed)
    nz = int(rng.integers(1, 5))
    shape = (nz, int(rng.integers(1, 9)), int(rng.integers(1, 60)))
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(0, 1000, size=shape).astype(dt)
    else:
        info = np.iinfo(dt)
        data = rng.integers(max(int(info.min), -3000), min(int(info.max), 3000) + 1, size=shape).astype(dt)
    if out == "int16" and dt.kind != "f":
        slopes = rng.choice([1.0, 2.0, -1.0], size=nz)
        intercepts = rng.choice([-1024.0, 0.0, 7.0], size=nz)
    else:
        out = "float32"
        slopes = rng.choice([1.0, 0.5, 2.5, 1e-3], size=nz)
        intercepts = rng.choice([-1024.0, -0.5, 1e4], size=nz)
    ref = np_intensity.rescale_kernel(data, slopes, intercepts, np.dtype(out))
    got, intact = guarded(shape, out, 55)
    host(index64).rescale_kernel(data, slopes, intercepts, np.dtype(out), out=got)
    assert intact()
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from([d.name for d in cs.EXTREMA_DTYPES]),
       index64=st.booleans(), nan=st.booleans())
def test_host_extrema_and_minmax_equal_numpy(prebuilt, seed, dtype, index64, nan):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 50)))
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(0, 1e3, size=shape).astype(dt)
        if nan:
            data.flat[rng.integers(0, data.size)] = np.nan
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)  # the full range (int64 too)
    k = host(index64)
    lo, hi = k.slice_extrema(data)
    rlo, rhi = np_sampler.slice_extrema(data)
    np.testing.assert_array_equal(lo, rlo)
    np.testing.assert_array_equal(hi, rhi)
    got, want = k.minmax_kernel(data), np_intensity.minmax_kernel(data)
    assert type(got[0]) is type(want[0])
    np.testing.assert_array_equal(np.array(got), np.array(want))  # NaN == NaN here
    assert k.minmax_kernel(np.zeros((0, 3, 3), dt)) == (0, 0)


# -- (d) the host shim against the numpy reference: the sampler ---------------------------------------------------
def random_affine(rng, shear=True) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    H = np.eye(3)
    if shear:
        H[0, 1], H[0, 2], H[1, 2] = rng.uniform(-0.4, 0.4, size=3)
    aff = np.eye(4)
    aff[:3, :3] = R @ H @ np.diag(rng.uniform(0.4, 2.0, size=3))
    aff[:3, 3] = rng.uniform(-50, 50, size=3)
    return aff


def random_volume(rng, dtype="int16", shape=None, per_slice=False) -> Volume:
    if shape is None:
        shape = tuple(int(n) for n in rng.integers(2, 11, size=3))
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(0, 300, size=shape).astype(dt)
    else:
        top = min(3000, int(np.iinfo(dt).max))
        data = rng.integers(0, top, size=shape, endpoint=True).astype(dt)
    nz = shape[0]
    slopes = rng.uniform(0.5, 2.0, nz) if per_slice else 1.0
    intercepts = rng.uniform(-1100, -900, nz) if per_slice else -1024.0
    return Volume(data, random_affine(rng), {"rescale_slope": slopes, "rescale_intercept": intercepts})


def random_plane(rng, vol: Volume, shape) -> Plane:
    size = np.abs(vol.affine[:3, :3]).sum(axis=1) * np.array(vol.shape[::-1])
    center = vol.center + rng.uniform(-0.25, 0.25, size=3) * size
    return Plane.oblique(center, rng.normal(size=3), rng.normal(size=3), shape, tuple(rng.uniform(0.3, 1.5, 2)))


def tol(vol: Volume, rel: float = 1e-6) -> float:
    hu = vol.data.astype(np.float64) * vol.slopes[:, None, None] + vol.intercepts[:, None, None]
    return rel * float(np.abs(hu).max())


def _both(vol, A, b, grid, mode, interp, kernels, out_dtype=np.float32, fill=FILL):
    shape = grid if mode == "none" else grid[1:]
    ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill,
                                 np.empty(shape, out_dtype))
    got, intact = guarded(shape, out_dtype, 99)   # 99 inside too: every position must be written
    kernels.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill, got)
    assert intact()
    return ref, got


def _assert_agree(vol, ref, got, fill=FILL, exact=False):
    """The numba tests' tolerance; ``exact``: bit for bit (the host shim evaluates numpy's float64 expressions in
    numpy's order with IEEE doubles and no contraction, so any reordering of the maths shows up here)."""
    np.testing.assert_array_equal(ref == np.float32(fill), got == np.float32(fill))
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol(vol))
    if exact:
        np.testing.assert_array_equal(got, ref)


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), per_slice=st.booleans(), mode=st.sampled_from(["none", "max", "min", "mean"]),
       interp=st.sampled_from(["linear", "nearest"]), dtype=st.sampled_from(VALUE_DTYPES + ["int64"]),
       index64=st.booleans())
def test_host_sampler_equals_numpy_random_grids(prebuilt, seed, per_slice, mode, interp, dtype, index64):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, dtype, per_slice=per_slice)
    plane = random_plane(rng, vol, tuple(int(n) for n in rng.integers(1, 40, size=2)))
    ns = int(rng.integers(1, 40))
    A, b = index_map(vol.affine, plane.grid_affine(ns, float(rng.uniform(0.2, 1.0))))
    ref, got = _both(vol, A, b, (ns, *plane.shape), mode, interp, host(index64))
    _assert_agree(vol, ref, got, exact=True)
    assert np.isfinite(ref).all()


@needs_cxx
@pytest.mark.parametrize("mode", ["none", "max", "min", "mean"])
@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_host_sampler_multi_block_negative_slope(prebuilt, mode, interp):
    """Grids that are not multiples of the block, several blocks and strides, a negative slope, fill and values."""
    rng = np.random.default_rng(7)
    vol = random_volume(rng, "int16", (21, 17, 27), per_slice=True)
    vol.meta["rescale_slope"][3] = -1.0
    plane = Plane.rotated(vol, (25, -40, 70), shape=(37, 41), spacing=0.6)
    A, b = index_map(vol.affine, plane.grid_affine(35, 0.5))
    k = host()
    ref, got = _both(vol, A, b, (35, 37, 41), mode, interp, k)
    _assert_agree(vol, ref, got, exact=True)
    assert (ref == np.float32(FILL)).any() and (ref != np.float32(FILL)).any()
    entry = f"gk_sample_{'none' if mode == 'none' else 'combine'}_{interp}"
    fn = LAUNCHER.function(cs.sample_spec("int16", "float32", False, False), entry)
    (gx, gy, _), (bx, by, _) = fn.last_launch
    assert (gx, gy) == (3, 3) and (bx, by) == (8, 4) and gx * bx < 41 and gy * by < 37   # strides turn
    # the default (production) launch sizes give the same numbers
    _, again = _both(vol, A, b, (35, 37, 41), mode, interp, host(config=LaunchConfig()))
    np.testing.assert_array_equal(again, got)


@needs_cxx
@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_host_sampler_boundary_rule_eps(prebuilt, interp):
    """Inside means 0 <= index <= n - 1 within EPS; just inside reads the edge voxel, just beyond gives fill."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1000, size=(4, 5, 6)).astype(np.int16)
    vol = Volume(data, np.eye(4), {"rescale_intercept": -1024.0})
    e = np_sampler.EPS
    xs = [-2 * e, -e, -0.5 * e, 0.0, 2.5, 5.0, 5.0 + 0.5 * e, 5.0 + e, 5.0 + 2 * e]
    fills = 0
    for j, k in ((0, 0), (4, 3), (2, 1), (-0.5 * e, 3 + 0.5 * e), (4 + 2 * e, 1)):
        for x0 in xs:      # one sample at (x0, j, k): A = 0, b = the point
            ref, got = _both(vol, np.zeros((3, 3)), np.array([x0, j, k]), (1, 1, 1), "none", interp, host())
            np.testing.assert_array_equal(got, ref)
            fills += int(ref[0, 0, 0] == np.float32(FILL))
    assert 0 < fills < 45
    # rays along i that start or end in the band, in every mode (x = s - 3 eps + b0)
    A = np.array([[0.0, 0, 1.0], [0, 0, 0], [0, 0, 0]])
    for b0 in (-3 * e, -0.5 * e, 0.5 * e):
        for mode in ("max", "min", "mean"):
            ref, got = _both(vol, A, np.array([b0, 2.0, 1.0]), (7, 1, 1), mode, interp, host())
            np.testing.assert_array_equal(got, ref)


@needs_cxx
def test_host_sampler_int16_nearest_and_empty_rays(prebuilt):
    rng = np.random.default_rng(8)
    vol = random_volume(rng, "int16", (6, 7, 8))
    plane = random_plane(rng, vol, (13, 11))
    A, b = index_map(vol.affine, plane.grid_affine(5, 0.7))
    ref, got = _both(vol, A, b, (5, 13, 11), "none", "nearest", host(), out_dtype=np.int16, fill=-3000.0)
    np.testing.assert_array_equal(got, ref)
    assert (ref == -3000).any() and (ref != -3000).any()
    # rays that miss the volume entirely (a plane far away) give the fill in every projection
    far = Plane.axial(vol, shape=(4, 5))
    far = Plane(far.center + 500.0 * far.normal, far.u, far.v, far.shape, far.spacing)
    A, b = index_map(vol.affine, far.grid_affine(9, 1.0))
    for mode in ("max", "min", "mean"):
        ref, got = _both(vol, A, b, (9, 4, 5), mode, "linear", host())
        assert np.all(ref == np.float32(FILL))
        np.testing.assert_array_equal(got, ref)


@needs_cxx
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("mode", ["none", "max", "mean"])
def test_host_sampler_fused_window_is_the_window_of_the_float32_image(prebuilt, function, mode):
    rng = np.random.default_rng(21)
    vol = random_volume(rng, "int16", (9, 12, 10), per_slice=True)
    plane = Plane.rotated(vol, (10, 20, 30), shape=(19, 23), spacing=0.7)
    grid = (6, 19, 23)
    A, b = index_map(vol.affine, plane.grid_affine(grid[0], 0.8))
    code = FUNCTIONS[function]
    invert = function == "LINEAR_EXACT"
    center, width = 300.0, 1200.0
    ref32, got32 = _both(vol, A, b, grid, mode, "linear", host())
    flat = ref32.reshape((-1,) + ref32.shape[-2:])          # the float32 image, as slices
    want = np.empty(flat.shape, np.uint8)
    np_intensity.window_kernel(flat, np.ones(len(flat)), np.zeros(len(flat)), center, width, code, 0.0, 255.0,
                               invert, want)
    want = want.reshape(ref32.shape)
    got = np.full(ref32.shape, 7, np.uint8)
    host().sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL, got,
                       window=(center, width, code, 0.0, 255.0, invert))
    same = got32 == ref32
    assert same.mean() > 0.99
    if function == "SIGMOID":
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    else:
        np.testing.assert_array_equal(got[same], want[same])
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert len(np.unique(want)) > 10


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), dtype=st.sampled_from(VALUE_DTYPES + ["int64"]), axis=st.sampled_from([0, 1, 2]),
       mode=st.sampled_from(["max", "min", "mean"]), rescale=st.sampled_from(["uniform", "negative", "per_slice"]),
       index64=st.booleans())
def test_host_project_axis_equals_numpy(prebuilt, seed, dtype, axis, mode, rescale, index64):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, dtype, tuple(int(n) for n in rng.integers(1, 12, size=3)),
                        per_slice=rescale == "per_slice")
    if rescale == "negative":
        vol.meta["rescale_slope"][:] = -1.5
    elif rescale == "per_slice" and vol.shape[0] > 1:
        vol.meta["rescale_slope"][0] = -1.0
    if np.dtype(dtype).kind == "f" and seed % 3 == 0:
        vol.data.flat[rng.integers(0, vol.data.size)] = np.nan     # numpy propagates NaN through max/min/mean
    n = vol.shape[axis]
    lo = int(rng.integers(0, n))
    hi = int(rng.integers(lo + 1, n + 1))
    shape = [vol.shape[1:], (vol.shape[0], vol.shape[2]), vol.shape[:2]][axis]
    ref = np_sampler.project_axis(vol.data, vol.slopes, vol.intercepts, axis, lo, hi, mode, np.empty(shape, np.float32))
    got, intact = guarded(shape, np.float32, 5)
    host(index64).project_axis(vol.data, vol.slopes, vol.intercepts, axis, lo, hi, mode, got)
    assert intact()
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol(vol) if np.isfinite(tol(vol)) else 1e-3)


# -- the wrapper's own choices ---------------------------------------------------------------------------------------
@needs_cxx
def test_index_width_is_chosen_in_python(prebuilt):
    """32-bit modules for small arrays, 64-bit ones past ``index32_max``; both give numpy's numbers."""
    rng = np.random.default_rng(4)
    data = rng.integers(0, 4000, size=(3, 10, 20)).astype(np.int16)
    s, t = np.ones(3), np.full(3, -1024.0)
    ref = np.empty(data.shape, np.uint8)
    np_intensity.window_kernel(data, s, t, 40.0, 400.0, 0, 0.0, 255.0, False, ref)
    class Recording:         # the real host launcher, noting which modules the wrapper asks for
        xp = np

        def __init__(self):
            self.specs = []

        def device_id(self):
            return LAUNCHER.device_id()

        def function(self, spec, entry):
            self.specs.append(spec)
            return LAUNCHER.function(spec, entry)

    rec = Recording()
    for limit, want in ((cs.INDEX32_MAX, "int"), (data.size + 2, "long long"), (10 ** 6, "int")):
        k = CudaKernels(rec, SMALL, index32_max=limit)
        got = k.window_kernel(data, s, t, 40.0, 400.0, 0, 0.0, 255.0, False, np.empty(data.shape, np.uint8))
        np.testing.assert_array_equal(got, ref)
        assert rec.specs[-1].define("INDEX_T") == want, (limit, rec.specs[-1].name)
    # the production limit: an element count past 2**31 - 1 (decided from the sizes, nothing allocated)
    k = CudaKernels(rec, LaunchConfig())
    assert not k._index64(2 ** 31 - 1) and k._index64(2 ** 31)


@needs_cxx
def test_host_launcher_checks_argument_types(prebuilt):
    """An argument whose C type differs from the kernel's parameter is refused (CuPy would pass it by its dtype)."""
    spec = cs.rescale_spec("int16", "float32", False)
    fn = LAUNCHER.function(spec, "gk_rescale")
    data = np.zeros((2, 3, 4), np.int16)
    s, t, out = np.ones(2), np.zeros(2), np.empty((2, 3, 4), np.float32)
    fn((1, 2, 1), (4, 1, 1), (data, s, t, out, np.int32(2), np.int32(12)))
    assert np.all(out == 0)
    with pytest.raises(TypeError, match="expected a numpy int32 scalar"):
        fn((1, 1, 1), (4, 1, 1), (data, s, t, out, np.int64(2), np.int32(12)))
    with pytest.raises(TypeError, match="expected a numpy int32 scalar"):
        fn((1, 1, 1), (4, 1, 1), (data, s, t, out, 2, np.int32(12)))
    with pytest.raises(TypeError, match="dtype uint16, expected int16"):
        fn((1, 1, 1), (4, 1, 1), (data.astype(np.uint16), s, t, out, np.int32(2), np.int32(12)))
    with pytest.raises(TypeError, match="read-only"):
        ro = out.copy()
        ro.flags.writeable = False
        fn((1, 1, 1), (4, 1, 1), (data, s, t, ro, np.int32(2), np.int32(12)))
    with pytest.raises(TypeError, match="takes 6 arguments"):
        fn((1, 1, 1), (4, 1, 1), (data, s, t, out, np.int32(2)))
    assert [p.describe() for p in fn.params][:2] == ["const short * data", "const double * slopes"]


def test_launch_sizes_and_source_assembly():
    spec = cs.window_spec("uint16", "uint8", True)
    src = cs.assemble(spec)
    assert src.startswith(cs.BANNER)
    assert "#define IN_T unsigned short\n" in src and "#define OUT_T unsigned char\n" in src
    assert "#define INDEX_T long long\n" in src and "#define OUT_ROUNDED 1\n" in src
    assert "gk_voi_params" in src and "gk_window" in src and src.count("#define GPUKIT_COMMON_CUH") == 1
    assert not re.search(r"^\s*#\s*include", src, re.M)      # plain NVRTC: no headers at all
    # the defines override the sources' #ifndef defaults, and the codes are the Python ones
    assert f"#define GK_SIGMOID {np_intensity.SIGMOID}\n" in src and f"#define GK_MODE_MEAN {np_sampler.MODES['mean']}" in src
    assert src.index("#define IN_T") < src.index("#ifndef IN_T")


# -- the ops layer over the host shim (the cupy backend's wrapper behind gpukit's public functions) ----------------
@pytest.fixture
def host_backend(monkeypatch, prebuilt):
    """The registered ``cuda-host`` stand-in (strict device arrays) with launch sizes small enough that these
    small inputs span several blocks; results come back through the explicit edge (``H``)."""
    monkeypatch.setattr(backends.get_backend("cuda-host").kernels(), "config", SMALL)
    return "cuda-host"


def H(a):
    """A stand-in device result brought to the host explicitly (the test's own edge)."""
    return to_host(a)


@needs_cxx
def test_ops_layer_through_the_host_backend(host_backend):
    rng = np.random.default_rng(12)
    vol = random_volume(rng, "uint16", (7, 19, 23), per_slice=True)
    vol.meta["window_center"], vol.meta["window_width"] = [40.0], [400.0]
    for kw in ({}, {"preset": "lung"}, {"function": "SIGMOID", "center": 0, "width": 700, "out_range": (0, 4095)},
               {"center": 40, "width": 400, "out_range": (0.0, 1.0), "invert": True}):
        a = H(gpukit.window(vol, backend=host_backend, **kw))
        b = gpukit.window(vol, backend="numpy", **kw)
        assert a.dtype == b.dtype
        assert np.abs(a.astype(np.float64) - b.astype(np.float64)).max() <= (
            (1 if a.dtype.kind in "iu" else 1e-4) if kw.get("function") == "SIGMOID" else 0), kw
    hu = gpukit.rescale(vol, backend="numpy")
    np.testing.assert_array_equal(H(gpukit.rescale(vol, backend=host_backend)), hu)
    ivol = Volume(rng.integers(0, 3000, (5, 6, 7)).astype(np.uint16), np.eye(4), {"rescale_intercept": -1024.0})
    r = H(gpukit.rescale(ivol, backend=host_backend))            # int16 decided from the data's min/max (minmax_kernel)
    assert r.dtype == np.int16 and np.array_equal(r, gpukit.rescale(ivol, backend="numpy"))
    assert default_fill(vol, backend=host_backend) == default_fill(vol, backend="numpy")
    plane = Plane.rotated(vol, (30, 10, -20), shape=(21, 17), spacing=0.8)
    for interp in ("linear", "nearest"):
        np.testing.assert_allclose(H(gpukit.reslice(vol, plane, interp=interp, backend=host_backend)),
                                   gpukit.reslice(vol, plane, interp=interp, backend="numpy"), rtol=0, atol=tol(vol))
    np.testing.assert_array_equal(H(gpukit.reslice(vol, plane, window=(40, 400), backend=host_backend)),
                                  gpukit.reslice(vol, plane, window=(40, 400), backend="numpy"))
    for target in (plane, "axial", "coronal", 0, 1, 2):
        for mode in ("max", "min", "mean"):
            a = H(gpukit.project(vol, target, mode=mode, thickness_mm=3.0 if target is plane else None,
                               backend=host_backend))
            b = gpukit.project(vol, target, mode=mode, thickness_mm=3.0 if target is plane else None,
                               backend="numpy")
            np.testing.assert_allclose(a, b, rtol=0, atol=tol(vol), err_msg=f"{target} {mode}")
    aff = random_affine(rng)
    for interp in ("linear", "nearest"):
        a = gpukit.resample(ivol, aff, (4, 6, 5), interp=interp, backend=host_backend)
        b = gpukit.resample(ivol, aff, (4, 6, 5), interp=interp, backend="numpy")
        assert a.data.dtype == b.data.dtype
        np.testing.assert_allclose(H(a.data), b.data, rtol=0, atol=tol(ivol))
    np.testing.assert_allclose(H(gpukit.rotating_mip(vol, 3, shape=(9, 11), backend=host_backend)),
                               gpukit.rotating_mip(vol, 3, shape=(9, 11), backend="numpy"), rtol=0, atol=tol(vol))
    rs = gpukit.Reslicer(vol, backend=host_backend, fill=FILL)
    np.testing.assert_allclose(H(rs.reslice(plane)), gpukit.reslice(vol, plane, fill=FILL, backend="numpy"),
                               rtol=0, atol=tol(vol))


# -- the real CT series through the host shim (production launch sizes) ---------------------------------------
@pytest.fixture(scope="module")
def ct():
    folder = data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020")
    return gpukit.load(folder)


@needs_cxx
def test_real_ct_intensity_equals_numpy(ct, prebuilt):
    k = host(config=LaunchConfig())
    s, t = ct.slopes, ct.intercepts
    data = ct.data
    for fn, (c, w), sub, invert in (("LINEAR", (40.0, 400.0), slice(None), False),
                                    ("LINEAR_EXACT", (-600.0, 1500.0), slice(60, 76), True),
                                    ("SIGMOID", (40.0, 80.0), slice(60, 76), False)):
        ref = np.empty(data[sub].shape, np.uint8)
        np_intensity.window_kernel(data[sub], s[sub], t[sub], c, w, FUNCTIONS[fn], 0.0, 255.0, invert, ref)
        got = k.window_kernel(data[sub], s[sub], t[sub], c, w, FUNCTIONS[fn], 0.0, 255.0, invert,
                              np.empty(ref.shape, np.uint8))
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= (1 if fn == "SIGMOID" else 0), fn
        assert len(np.unique(ref)) > 100
    np.testing.assert_array_equal(k.rescale_kernel(data, s, t, np.int16), np_intensity.rescale_kernel(data, s, t, np.int16))
    for a, b in zip(k.slice_extrema(data), np_sampler.slice_extrema(data)):
        np.testing.assert_array_equal(a, b)
    assert k.minmax_kernel(data) == np_intensity.minmax_kernel(data)


@needs_cxx
def test_real_ct_sampler_equals_numpy(ct, host_backend):
    backends.get_backend("cuda-host").kernels().config = LaunchConfig()   # production launch sizes (the fixture restores)
    hu = ct.hu(backend="numpy").astype(np.float32)
    nz = ct.shape[0]
    for k in (0, 37, nz - 1):
        np.testing.assert_array_equal(H(gpukit.reslice(ct, Plane.axial(ct, index=k), backend=host_backend)), hu[k])
    np.testing.assert_array_equal(H(gpukit.reslice(ct, Plane.coronal(ct, index=300), backend=host_backend)),
                                  hu[::-1, 300])
    np.testing.assert_array_equal(H(gpukit.reslice(ct, Plane.sagittal(ct, index=200), backend=host_backend)),
                                  hu[::-1, :, 200])
    for axis in (0, 1, 2):
        np.testing.assert_allclose(H(gpukit.project(ct, axis, backend=host_backend)), hu.max(axis=axis), rtol=0,
                                   atol=1e-3)
    np.testing.assert_allclose(H(gpukit.project(ct, 0, mode="mean", backend=host_backend)),
                               gpukit.project(ct, 0, mode="mean", backend="numpy"), rtol=0, atol=1e-3)
    plane = Plane.rotated(ct, (55, -15, 40), shape=(200, 220), spacing=0.9)
    ref = gpukit.reslice(ct, plane, fill=FILL, backend="numpy")
    got = H(gpukit.reslice(ct, plane, fill=FILL, backend=host_backend))
    assert (ref == np.float32(FILL)).sum() > 1000 and (ref != np.float32(FILL)).sum() > 20000
    np.testing.assert_array_equal(ref == np.float32(FILL), got == np.float32(FILL))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)          # 1e-6 x max |HU| (about 3000)
    for mode in ("max", "mean"):
        a = gpukit.project(ct, plane, mode=mode, thickness_mm=4.0, backend="numpy")
        b = H(gpukit.project(ct, plane, mode=mode, thickness_mm=4.0, backend=host_backend))
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)
    coarse = Plane.rotated(ct, (30, 0, 60), shape=(48, 48), spacing=8.0)       # a full oblique MIP, coarse
    a = gpukit.project(ct, coarse, step_mm=3.0, backend="numpy")
    b = H(gpukit.project(ct, coarse, step_mm=3.0, backend=host_backend))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)


# -- (e) the wheel ships the kernels, and an installed copy finds and runs them ---------------------------------------
def test_wheel_ships_the_kernels_and_an_installed_copy_runs_them(tmp_path):
    pytest.importorskip("hatchling", reason="hatchling (the build backend, in the test extra) is not installed")
    res = subprocess.run([sys.executable, "-c", "import sys, hatchling.build as b; print(b.build_wheel(sys.argv[1]))",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    wheel = tmp_path / res.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        shipped = sorted(n for n in names if n.startswith("gpukit/kernels/"))
        print("\nkernels in", wheel.name, shipped)
        zf.extractall(tmp_path / "site")
    want = sorted(f"gpukit/kernels/{p.name}" for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh", ".h"))
    assert shipped == want and "gpukit/kernels/gpukit_common.cuh" in shipped and "gpukit/kernels/sample.cu" in shipped
    assert "gpukit/backends/cupy/launcher.py" in names and "gpukit/backends/cuda_host/shim.py" in names
    code = """
import json, sys, numpy as np, gpukit
from gpukit.backends.cuda import src as cs
from gpukit.backends.cuda.kernels import CudaKernels
from gpukit.backends.cuda_host import shim as cuda_host
from gpukit.backends.numpy import intensity as np_intensity
spec = cs.window_spec("int16", "uint8", False)
out = {"gpukit": gpukit.__file__, "kernels": str(cs.kernel_dir()), "source": cs.assemble(spec), "ok": None}
if cuda_host.is_available():
    d = np.arange(-1200, 1200, dtype=np.int16).reshape(2, 30, 40)
    a = CudaKernels(cuda_host.HostLauncher()).window_kernel(d, np.ones(2), np.zeros(2), 40.0, 400.0, 0, 0.0, 255.0, False, np.empty(d.shape, np.uint8))
    b = np_intensity.window_kernel(d, np.ones(2), np.zeros(2), 40.0, 400.0, 0, 0.0, 255.0, False, np.empty(d.shape, np.uint8))
    out["ok"] = bool(np.array_equal(a, b)) and len(np.unique(b)) > 100
print(json.dumps(out))
"""
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-c", code], cwd=site, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["gpukit"].startswith(str(site))
    assert info["kernels"] == str(site / "gpukit" / "kernels")
    assert info["source"] == cs.assemble(cs.window_spec("int16", "uint8", False))     # the same module text
    assert info["ok"] in (True, None) and (info["ok"] or not cuda_host.is_available())


# -- the backend's registry face ---------------------------------------------------------------------------------------
def test_cupy_backend_registry_face_and_light_import():
    be = backends.lookup("cupy")
    assert be.name == "cupy" and be.location == "device" and be.auto and not be.standin
    avail = cupy_backend.is_available()
    missing = cupy_backend.missing_dependencies()
    assert isinstance(avail, bool) and avail == (missing == []) and be.is_available() == avail
    if not avail:
        assert any("CUDA device" in m or "cupy-cuda12x" in m for m in missing), missing
        with pytest.raises(BackendUnavailableError, match="cupy"):
            backends.resolve_name("cupy")
    assert "cupy" not in backends.available_backends() or avail
    code = ("import sys, numpy as np, gpukit; from gpukit.backends.cupy import launcher as cupy_backend; "
            "cupy_backend.is_available(); "
            "gpukit.window(np.zeros((2, 3)), 0, 10, backend='numpy'); "
            "a = cupy_backend.is_available(); "
            "print(int('cupy' in sys.modules and not a), int('cupy_backends' in sys.modules and not a))")
    env = {k: v for k, v in os.environ.items() if k != "GPUKIT_BACKEND"}
    res = subprocess.run([sys.executable, "-c", "import sys, gpukit; print(int('cupy' in sys.modules))"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "0", res.stderr
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "0"]     # asking for availability without a device imports no CuPy


# -- (f) the cupy backend on a real device -----------------------------------------------------------------------------
gpu = pytest.mark.gpu
needs_device = pytest.mark.skipif(not cupy_backend.is_available(),
                                  reason="the cupy backend needs a CUDA device: "
                                         + "; ".join(cupy_backend.missing_dependencies()))


@gpu
@needs_device
@pytest.mark.parametrize("dtype", ["int16", "uint16", "uint8", "float32", "int32"])
def test_gpu_intensity_equals_numpy(dtype):
    import cupy

    rng = np.random.default_rng(1)
    slopes = np.array([1.0, 0.5, 2.0, 1.25])
    intercepts = np.array([-1024.0, 0.0, -1000.5, 37.0])
    data = _stored(rng, dtype, (4, 33, 65), 40.0, 400.0, slopes, intercepts)
    dev = cupy.asarray(data)
    for index64 in (False, True):
        k = CudaKernels(cupy_backend.CupyLauncher(), index32_max=0 if index64 else cs.INDEX32_MAX)
        for out_range in OUT_RANGES[1:]:
            dt = window_dtype(out_range)
            for fn, code in FUNCTIONS.items():
                ref = np.empty(data.shape, dt)
                np_intensity.window_kernel(data, slopes, intercepts, 40.0, 400.0, code, *out_range, True, ref)
                got = k.window_kernel(dev, slopes, intercepts, 40.0, 400.0, code, *out_range, True,
                                      cupy.empty(data.shape, dt))
                assert isinstance(got, cupy.ndarray)
                diff = np.abs(got.get().astype(np.float64) - ref.astype(np.float64)).max()
                span = float(out_range[1]) - float(out_range[0])
                assert diff <= (0 if fn != "SIGMOID" else (1 if dt.kind in "iu" else 1e-5 * span)), (fn, dt)
        np.testing.assert_array_equal(k.rescale_kernel(dev, slopes, intercepts, np.float32).get(),
                                      np_intensity.rescale_kernel(data, slopes, intercepts, np.float32))
        for a, b in zip(k.slice_extrema(dev), np_sampler.slice_extrema(data)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.array(k.minmax_kernel(dev)), np.array(np_intensity.minmax_kernel(data)))


@gpu
@needs_device
@pytest.mark.parametrize("mode", ["none", "max", "min", "mean"])
@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_gpu_sampler_and_projections_equal_numpy(mode, interp):
    import cupy

    rng = np.random.default_rng(7)
    vol = random_volume(rng, "int16", (21, 17, 27), per_slice=True)
    vol.meta["rescale_slope"][3] = -1.0
    plane = Plane.rotated(vol, (25, -40, 70), shape=(37, 41), spacing=0.6)
    A, b = index_map(vol.affine, plane.grid_affine(35, 0.5))
    grid = (35, 37, 41)
    shape = grid if mode == "none" else grid[1:]
    ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, FILL,
                                 np.empty(shape, np.float32))
    for index64 in (False, True):
        k = CudaKernels(cupy_backend.CupyLauncher(), index32_max=0 if index64 else cs.INDEX32_MAX)
        got = k.sample_grid(cupy.asarray(vol.data), vol.slopes, vol.intercepts, A, b, grid, mode, interp, FILL,
                            cupy.empty(shape, np.float32)).get()
        _assert_agree(vol, ref, got)
        if mode != "none":
            for axis in (0, 1, 2):
                sh = [vol.shape[1:], (vol.shape[0], vol.shape[2]), vol.shape[:2]][axis]
                r = np_sampler.project_axis(vol.data, vol.slopes, vol.intercepts, axis, 1, vol.shape[axis], mode,
                                            np.empty(sh, np.float32))
                g = k.project_axis(cupy.asarray(vol.data), vol.slopes, vol.intercepts, axis, 1, vol.shape[axis],
                                   mode, cupy.empty(sh, np.float32)).get()
                np.testing.assert_allclose(g, r, rtol=0, atol=tol(vol))
    win = cupy_backend.sample_grid(cupy.asarray(vol.data), vol.slopes, vol.intercepts, A, b, grid, mode, interp, FILL,
                                   cupy.empty(shape, np.uint8), window=(40.0, 400.0, 0, 0.0, 255.0, False)).get()
    want = np.empty(shape, np.uint8)
    flat = ref.reshape((-1,) + ref.shape[-2:])
    np_intensity.window_kernel(flat, np.ones(flat.shape[0]), np.zeros(flat.shape[0]), 40.0, 400.0, 0, 0.0, 255.0,
                               False, want.reshape(flat.shape))
    assert np.abs(win.astype(int) - want.astype(int)).max() <= 1


@gpu
@needs_device
def test_gpu_ops_layer_keeps_arrays_on_the_device():
    import cupy

    rng = np.random.default_rng(12)
    vol = random_volume(rng, "uint16", (7, 19, 23), per_slice=True)
    dvol = Volume(cupy.asarray(vol.data), vol.affine, dict(vol.meta))
    a = gpukit.window(dvol, 40, 400, backend="cupy")
    assert isinstance(a, cupy.ndarray)
    np.testing.assert_array_equal(a.get(), gpukit.window(vol, 40, 400, backend="numpy"))
    np.testing.assert_array_equal(gpukit.rescale(dvol, backend="cupy").get(), gpukit.rescale(vol, backend="numpy"))
    plane = Plane.rotated(vol, (30, 10, -20), shape=(21, 17), spacing=0.8)
    r = gpukit.reslice(dvol, plane, backend="cupy")
    assert isinstance(r, cupy.ndarray)
    np.testing.assert_allclose(r.get(), gpukit.reslice(vol, plane, backend="numpy"), rtol=0, atol=tol(vol))
    for target in (plane, "axial", 1):
        np.testing.assert_allclose(gpukit.project(dvol, target, backend="cupy").get(),
                                   gpukit.project(vol, target, backend="numpy"), rtol=0, atol=tol(vol))
    rs = gpukit.Reslicer(dvol, backend="cupy", fill=FILL)
    np.testing.assert_allclose(rs.reslice(plane).get(), gpukit.reslice(vol, plane, fill=FILL, backend="numpy"),
                               rtol=0, atol=tol(vol))
    launcher = cupy_backend.kernels().launcher
    spec = cs.window_spec("uint16", "uint8", False)
    assert launcher.module(spec) is launcher.module(spec)     # memoised per device and specialisation
