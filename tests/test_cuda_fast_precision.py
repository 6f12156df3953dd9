"""The float32 CUDA sampler (``precision="fast"``, ``kernels/sample_fast.cu``), proven without a GPU.

* NVRTC compiles every fast module for every architecture of :data:`cs.ARCHITECTURES` (also covered by
  tests/test_cuda_kernels.py over :func:`cs.all_specs`); its kernels have no float64 arithmetic instruction
  (the exact kernels are full of them): the linear ones no float64 instruction at all for integer volumes (a
  float64 volume adds only the loads of its values and their conversion to float32); the nearest ones only
  pass the float64 map to ``gk_nearest_index_f64``, a function of its own called for samples within 2**-12
  voxel of a .5 tie, which holds the module's only float64 arithmetic; reads are ``ld.global.nc`` (``__ldg``);
* ``ptxas -v`` (CUDA 13) for sm_80, sm_89 and sm_90: no spills, fast and exact samplers, registers printed;
* the fast kernels run on the CPU through the host shim and the ``cuda-host`` stand-in backend, against the
  numpy reference, within the bound the kernels state (kernels/gpukit_common.cuh, "the float32 sampler";
  :class:`gpukit.backends.cuda.kernels.CudaKernels`):
  ``|fast - exact| <= 2**-20 (V |s| + |t|) + 3 d G + 1 ulp32`` (at most 0.01 HU on int16 CT), for linear and
  nearest (always the reference's voxel, .5 ties included), every projection mode, uniform and per-slice
  rescales, 32- and 64-bit index modules; inside/outside (the fill) as the reference, the EPS band's edges
  included; the fused uint8 window at most 1 off;
* grids the fixed-point coordinates cannot hold run the exact sampler (the same bits as "exact").

Run as a script (``python tests/test_cuda_fast_precision.py``) to print the ptxas and f64 report.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpukit  # noqa: E402
from gpukit import Plane  # noqa: E402
from gpukit import backends  # noqa: E402
from gpukit.arrays import to_host  # noqa: E402
from gpukit.backends import codes  # noqa: E402
from gpukit.backends.cuda import src as cs  # noqa: E402
from gpukit.backends.cuda.kernels import (FAST_MAX_SPAN, FIX_BITS, CudaKernels, LaunchConfig,  # noqa: E402
                                          fixed_point_map)
from gpukit.backends.cuda_host import shim as cuda_host  # noqa: E402
from gpukit.backends.numpy import intensity as np_intensity  # noqa: E402
from gpukit.backends.numpy import sampler as np_sampler  # noqa: E402
from gpukit.errors import EnvironmentProblem  # noqa: E402
from gpukit.ops.sampling import index_map  # noqa: E402

from conftest import data_path  # noqa: E402
from test_cuda_kernels import FILL, SMALL, random_affine, random_plane, random_volume  # noqa: E402

HYP = settings(derandomize=True, deadline=None, max_examples=25,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MODES = ["none", "max", "min", "mean"]
INTERPS = ["linear", "nearest"]
VALUE_DTYPES = [d.name for d in cs.VALUE_DTYPES]
FAST_ENTRIES = cs.ENTRIES["sample_fast.cu"]
EXACT_ENTRIES = cs.ENTRIES["sample.cu"]
#: the architectures of the register / spill report (ptxas -arch=sm_XX on PTX for compute_XX)
PTXAS_ARCHS = ("sm_80", "sm_89", "sm_90")


def _find_ptxas():
    for c in [shutil.which("ptxas"), "/usr/local/bin/ptxas", *sorted(glob.glob("/usr/local/cuda*/bin/ptxas"))]:
        if c and os.path.exists(c):
            return c
    return None


PTXAS = _find_ptxas()
needs_cxx = pytest.mark.skipif(not cuda_host.is_available(), reason="; ".join(cuda_host.missing_dependencies()))
LAUNCHER = cuda_host.HostLauncher() if cuda_host.is_available() else None


def _nvrtc_or_skip():
    try:
        cs.nvrtc()
    except EnvironmentProblem as exc:
        pytest.skip(f"NVRTC is not usable here: {exc}")


def host(index64: bool = False, config: LaunchConfig = SMALL, launcher=None) -> CudaKernels:
    return CudaKernels(launcher or LAUNCHER, config, index32_max=0 if index64 else cs.INDEX32_MAX)


# -- the stated bound ------------------------------------------------------------------------------------------------
def index_error(grid) -> float:
    """d: the fast sampler's index error (voxels) over ``grid = (ns, nr, nc)`` (kernels/gpukit_common.cuh)."""
    return 2.0 ** -(FIX_BITS + 1) * (1 + sum(int(g) for g in grid)) + 2.0 ** -25


def bound(vol, grid) -> float:
    """``2**-20 (V |s| + |t|) + 3 d G + ulp32(max |HU|)``, with V, s, t, G taken over the whole volume."""
    data = vol.data.astype(np.float64)
    v = float(np.abs(data).max())
    s = float(np.abs(vol.slopes).max())
    t = float(np.abs(vol.intercepts).max())
    hu = data * vol.slopes[:, None, None] + vol.intercepts[:, None, None]
    g = float(hu.max() - hu.min())
    return 2.0 ** -20 * (v * s + t) + 3 * index_error(grid) * g + float(np.spacing(np.float32(np.abs(hu).max())))


def both(vol, A, b, grid, mode, interp, kernels, out_dtype=np.float32, fill=FILL, window=None):
    """(reference, fast) for one grid: numpy's float64 sampler and the fast kernels over ``kernels``."""
    shape = grid if mode == "none" else grid[1:]
    ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill,
                                 np.empty(shape, out_dtype))
    n = int(np.prod(shape))
    big = np.full(n + 128, 99, out_dtype)       # guard bands: a write past either end shows
    got = big[64:64 + n].reshape(shape)
    kernels.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill, got,
                        window=window, precision="fast")
    assert np.all(big[:64] == 99) and np.all(big[64 + n:] == 99)
    return ref, got


def near_ties(A, b, grid, mode) -> np.ndarray:
    """Outputs with a sample whose index lies within d of a .5 tie on some axis (where the fixed-point index alone
    could not tell which voxel the reference's float64 index picks: the kernels recompute it in float64 there):
    ``grid``'s shape for mode none, ``(nr, nc)`` (any along the ray) for the projections."""
    ns, nr, nc = grid
    s, r, c = np.meshgrid(np.arange(ns), np.arange(nr), np.arange(nc), indexing="ij")
    pos = np.stack([c, r, s], -1).astype(np.float64) @ np.asarray(A, np.float64).T + np.asarray(b, np.float64)
    frac = pos - np.floor(pos)
    tie = (np.abs(frac - 0.5) <= index_error(grid) + 1e-9).any(-1)
    return tie if mode == "none" else tie.any(0)


def check(vol, grid, ref, got, interp, fill=FILL):
    """Inside/outside as the reference; within the stated bound; returns the largest difference."""
    np.testing.assert_array_equal(np.isnan(ref), np.isnan(got))
    np.testing.assert_array_equal(ref == np.float32(fill), got == np.float32(fill))
    ok = ~np.isnan(ref)
    diff = np.abs(got[ok].astype(np.float64) - ref[ok].astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    assert worst <= bound(vol, grid), (interp, worst, bound(vol, grid))
    return worst


# -- (a) PTX: every architecture, no float64 in the fast kernels, __ldg reads ---------------------------------------
_PTX: dict = {}


def ptx_of(spec, arch: str) -> str:
    if (spec, arch) not in _PTX:
        _PTX[(spec, arch)] = cs.compile_spec_ptx(spec, arch)
    return _PTX[(spec, arch)]


def entry_bodies(ptx: str) -> dict[str, str]:
    """Each ``.entry``'s text (from its header to the next entry)."""
    heads = list(re.finditer(r"\.visible \.entry (\w+)\(", ptx))
    return {m.group(1): ptx[m.start():(heads[i + 1].start() if i + 1 < len(heads) else len(ptx))]
            for i, m in enumerate(heads)}


_OPCODE = re.compile(r"^\s*(?:@!?%p\d+\s+)?([a-z][\w.]*)", re.M)
_ARITH = {"add", "sub", "mul", "fma", "mad", "div", "rcp", "sqrt", "rsqrt", "min", "max", "abs", "neg", "setp", "set",
          "selp", "testp", "copysign"}


def f64_counts(body: str) -> tuple[int, int]:
    """(float64 arithmetic instructions, every instruction with a .f64 type) of one entry's PTX."""
    ops = [op for op in _OPCODE.findall(body) if ".f64" in op and not op.startswith(".")]
    return sum(op.split(".")[0] in _ARITH for op in ops), len(ops)


def fast_specs():
    """Every fast module of one index width per dtype: plain float32 output, int16 output, fused window."""
    out = []
    for i in cs.VALUE_DTYPES:
        out += [cs.sample_fast_spec(i, "float32", False, False), cs.sample_fast_spec(i, "int16", False, True),
                cs.sample_fast_spec(i, "uint8", True, False)]
    return out


@pytest.mark.parametrize("arch", cs.ARCHITECTURES)
def test_fast_kernels_have_no_float64_and_read_through_ldg(arch):
    _nvrtc_or_skip()
    report = {}
    for spec in fast_specs():
        ptx = ptx_of(spec, arch)
        bodies = entry_bodies(ptx)
        assert set(bodies) == set(FAST_ENTRIES), spec.name
        for entry, body in bodies.items():
            arith, every = f64_counts(body)
            assert arith == 0, f"{spec.name} {entry}: {arith} float64 arithmetic instructions"
            allowed = set()
            if spec.define("IN_T") == "double":     # the values' loads and their conversion to float32
                allowed |= {"ld.global.nc.f64", "cvt.rn.f32.f64"}
            if "nearest" in entry:                  # the float64 map handed to the tie rule's function
                allowed |= {"ld.param.f64", "st.param.f64"}
                assert re.search(r"call(\.uni)?\s.*gk_nearest_index_f64", body, re.S), entry
            ops = {op for op in _OPCODE.findall(body) if ".f64" in op}
            assert ops <= allowed, (spec.name, entry, ops - allowed)
            assert "ld.global.nc" in body, f"{spec.name} {entry}: no read-only cache loads"
            assert "fma.rn.f32" in body or "nearest" in entry
            report[entry] = every
        # the module's only float64 arithmetic: nearest's tie rule, a function of its own (not inlined)
        funcs = re.findall(r"\.func\s+(?:\([^)]*\)\s*)?(\w+)\(", ptx)
        assert [f for f in funcs if "gk_nearest_index_f64" not in f] == [], funcs
        outside = ptx
        for body in bodies.values():
            outside = outside.replace(body, "")
        assert f64_counts(outside)[0] <= 12, f64_counts(outside)     # x = ((a0 c + a1 r) + a2 s) + b, clamp, floor
    # the exact kernels, for contrast: float64 throughout (the numpy reference's arithmetic)
    exact = entry_bodies(ptx_of(cs.sample_spec("int16", "float32", False, False), arch))
    counts = {e: f64_counts(b) for e, b in exact.items()}
    assert all(a > 20 for a, _ in counts.values()), counts
    print(f"\n{arch}: f64 arithmetic / any-f64 instructions, int16 -> float32 modules: exact",
          {e: c for e, c in counts.items()}, "fast",
          {e: f64_counts(b) for e, b in entry_bodies(ptx_of(cs.sample_fast_spec("int16", "float32", False, False),
                                                             arch)).items()})


def test_fast_kernels_are_in_every_spec_list_and_the_fma_check_still_holds():
    """all_specs (compiled for every architecture by test_cuda_kernels) lists the fast modules; they call fmaf
    explicitly (fma.rn.f32) and still contract nothing in float64 (--fmad=false stays on)."""
    _nvrtc_or_skip()
    fast = [s for s in cs.all_specs() if s.source == "sample_fast.cu"]
    assert len(fast) == 2 * len(cs.VALUE_DTYPES) * (len(cs.SAMPLE_OUT) + 1)
    ptx = ptx_of(cs.sample_fast_spec("uint16", "float32", False, False), "compute_80")
    assert "fma.rn.f32" in ptx and "fma.rn.f64" not in ptx


# -- (b) ptxas: registers and spills, sm_80 / sm_89 / sm_90 ---------------------------------------------------------
def ptxas_report(ptx: str, arch: str, tmp: Path, name: str) -> dict[str, dict]:
    """``{entry: {"registers": n, "spill": bytes stored + loaded, "stack": bytes}}`` from ``ptxas -v``."""
    path = tmp / f"{name}.ptx"
    path.write_text(ptx)
    res = subprocess.run([PTXAS, f"-arch={arch}", "-v", str(path), "-o", os.devnull], capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    out: dict[str, dict] = {}
    cur = None
    for line in res.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = m.group(1)
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and cur:
            out.setdefault(cur, {}).update(stack=int(m.group(1)), spill=int(m.group(2)) + int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            out.setdefault(cur, {})["registers"] = int(m.group(1))
    return out


REPORT_SPECS = {
    "int16->float32": ("int16", "float32", False, False),
    "int16->uint8 window": ("int16", "uint8", True, False),
    "float32->float32 i64": ("float32", "float32", False, True),
}


def register_report(tmp: Path) -> dict:
    """``{(arch, specialisation, entry): {...}}`` for the fast and the exact samplers."""
    table = {}
    n = 0
    for arch in PTXAS_ARCHS:
        virt = arch.replace("sm_", "compute_")
        for label, args in REPORT_SPECS.items():
            for make in (cs.sample_spec, cs.sample_fast_spec):
                spec = make(*args)
                n += 1
                for entry, r in ptxas_report(ptx_of(spec, virt), arch, tmp, f"r{n}").items():
                    table[(arch, label, entry)] = r
    return table


@pytest.mark.skipif(PTXAS is None, reason="ptxas (CUDA toolkit) is not installed here")
def test_ptxas_fast_and_exact_samplers_do_not_spill(tmp_path):
    _nvrtc_or_skip()
    table = register_report(tmp_path)
    assert len(table) == len(PTXAS_ARCHS) * len(REPORT_SPECS) * (len(FAST_ENTRIES) + len(EXACT_ENTRIES))
    for key, r in table.items():
        assert r["spill"] == 0 and r["stack"] == 0, (key, r)
        assert r["registers"] <= 128, (key, r)
    print("\nptxas -v registers (spills 0 everywhere):")
    for (arch, label, entry), r in sorted(table.items()):
        print(f"  {arch} {label:22} {entry:34} {r['registers']:3d} registers")


# -- (c) the fast kernels on the CPU against the numpy reference ------------------------------------------------------
@pytest.fixture(scope="module")
def prebuilt():
    if LAUNCHER is None:
        pytest.skip("; ".join(cuda_host.missing_dependencies()))
    specs = [cs.sample_fast_spec(i, "float32", False, False) for i in cs.VALUE_DTYPES]
    specs += [cs.sample_fast_spec("int16", "float32", False, True), cs.sample_fast_spec("int16", "int16", False, False),
              cs.sample_fast_spec("int16", "uint8", True, False),
              cs.sample_fast_spec("float64", "float32", False, True)]
    LAUNCHER.prebuild(specs, workers=2)
    return LAUNCHER


def ct_volume(rng, shape, per_slice: bool, slope: float = 1.0, intercept: float = -1024.0):
    """int16 CT-like stored values with |values| < 4096 and CT rescales (per slice: |slope| <= 1, |intercept| <=
    1024), on a random oblique affine."""
    data = rng.integers(-4095, 4096, size=shape, dtype=np.int16)
    if per_slice:
        slope, intercept = rng.uniform(0.25, 1.0, shape[0]), rng.uniform(-1024, 0, shape[0])
    return gpukit.Volume(data, random_affine(rng), {"rescale_slope": slope, "rescale_intercept": intercept})


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), per_slice=st.booleans(), mode=st.sampled_from(MODES),
       interp=st.sampled_from(INTERPS), index64=st.booleans())
def test_fast_int16_ct_within_001_hu(prebuilt, seed, per_slice, mode, interp, index64):
    """int16 CT, |stored| < 4096, |slope| <= 1, |intercept| <= 1024: the stated 0.01 HU, random oblique grids."""
    rng = np.random.default_rng(seed)
    vol = ct_volume(rng, tuple(int(n) for n in rng.integers(2, 14, size=3)), per_slice)
    plane = random_plane(rng, vol, tuple(int(n) for n in rng.integers(1, 30, size=2)))
    ns = int(rng.integers(1, 40))
    A, b = index_map(vol.affine, plane.grid_affine(ns, float(rng.uniform(0.2, 1.0))))
    grid = (ns, *plane.shape)
    ref, got = both(vol, A, b, grid, mode, interp, host(index64))
    assert bound(vol, grid) <= 0.01
    worst = check(vol, grid, ref, got, interp)
    assert worst <= 0.01


@needs_cxx
@HYP
@given(seed=st.integers(0, 2 ** 32 - 1), per_slice=st.booleans(), mode=st.sampled_from(MODES),
       interp=st.sampled_from(INTERPS), dtype=st.sampled_from(VALUE_DTYPES))
def test_fast_every_dtype_within_the_bound(prebuilt, seed, per_slice, mode, interp, dtype):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, dtype, per_slice=per_slice)
    plane = random_plane(rng, vol, tuple(int(n) for n in rng.integers(1, 30, size=2)))
    ns = int(rng.integers(1, 30))
    A, b = index_map(vol.affine, plane.grid_affine(ns, float(rng.uniform(0.2, 1.0))))
    grid = (ns, *plane.shape)
    ref, got = both(vol, A, b, grid, mode, interp, host())
    check(vol, grid, ref, got, interp)


@needs_cxx
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("interp", INTERPS)
@pytest.mark.parametrize("rescale", ["uniform", "per_slice", "negative"])
def test_fast_long_rays_every_mode(prebuilt, mode, interp, rescale):
    """A full oblique projection (rays of ~120 samples through a 40 x 48 x 44 volume, several blocks and strides):
    max / min / mean (Kahan) within the bound; a negative uniform slope swaps max and min inside the kernel."""
    rng = np.random.default_rng(5)
    vol = ct_volume(rng, (40, 48, 44), per_slice=rescale == "per_slice",
                    **({"slope": -0.75, "intercept": 100.0} if rescale == "negative" else {}))
    plane = Plane.rotated(vol, (35, -20, 50), shape=(33, 29), spacing=1.7)
    grid = (121 if mode != "none" else 9, 33, 29)
    A, b = index_map(vol.affine, plane.grid_affine(grid[0], 0.6))
    ref, got = both(vol, A, b, grid, mode, interp, host())
    worst = check(vol, grid, ref, got, interp)
    assert worst <= 0.01
    assert (ref == np.float32(FILL)).any() and (ref != np.float32(FILL)).sum() > 100
    if interp == "nearest" and rescale == "uniform" and mode != "mean":
        np.testing.assert_array_equal(got, ref)     # the reference's voxels, integer rescale: the same numbers
    if mode == "none":
        assert near_ties(A, b, grid, mode).any()    # the plane's centre is the (even-sized) volume's: a .5 tie


@needs_cxx
@pytest.mark.parametrize("interp", INTERPS)
def test_fast_boundary_rule_eps(prebuilt, interp):
    """Samples at, inside and beyond the EPS band give the reference's inside/outside decision."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1000, size=(4, 5, 6)).astype(np.int16)
    vol = gpukit.Volume(data, np.eye(4), {"rescale_intercept": -1024.0})
    e = np_sampler.EPS
    xs = [-2 * e, -e, -0.5 * e, 0.0, 2.5, 5.0, 5.0 + 0.5 * e, 5.0 + e, 5.0 + 2 * e]
    fills = 0
    for j, k in ((0, 0), (4, 3), (2, 1), (-0.5 * e, 3 + 0.5 * e), (4 + 2 * e, 1)):
        for x0 in xs:
            grid = (1, 1, 1)
            ref, got = both(vol, np.zeros((3, 3)), np.array([x0, j, k]), grid, "none", interp, host())
            check(vol, grid, ref, got, interp)
            fills += int(ref[0, 0, 0] == np.float32(FILL))
    assert 0 < fills < 45
    A = np.array([[0.0, 0, 1.0], [0, 0, 0], [0, 0, 0]])
    for b0 in (-3 * e, -0.5 * e, 0.5 * e):
        for mode in ("max", "min", "mean"):
            ref, got = both(vol, A, np.array([b0, 2.0, 1.0]), (7, 1, 1), mode, interp, host())
            check(vol, (7, 1, 1), ref, got, interp)


@needs_cxx
@pytest.mark.parametrize("mode", MODES)
def test_fast_nearest_on_half_voxel_grids_reads_the_references_voxels(prebuilt, mode):
    """Every sample on a .5 tie (a grid offset by half a voxel, steps of 1.5, and a sheared one whose float64
    index lands on either side of the tie): the tie rule recomputes the index as the reference does."""
    rng = np.random.default_rng(17)
    vol = ct_volume(rng, (10, 12, 14), per_slice=False)
    for A, b in ((np.diag([1.5, 1.5, 1.0]), np.array([0.5, 0.5, 0.5])),
                 (np.array([[0.3, 0.1, 0.0], [0.0, 0.7, 0.1], [0.1, 0.0, 0.9]]), np.array([0.5, 1.5, 2.5]))):
        grid = (6, 7, 9)
        ref, got = both(vol, A, b, grid, mode, "nearest", host())
        assert near_ties(A, b, grid, mode).mean() > 0.05
        if mode == "mean":                          # the same voxels; the float32 sum and division
            check(vol, grid, ref, got, "nearest")
        else:
            np.testing.assert_array_equal(got, ref)


@needs_cxx
def test_fast_nearest_int16_output_and_missed_rays(prebuilt):
    rng = np.random.default_rng(8)
    vol = random_volume(rng, "int16", (6, 7, 8))
    plane = random_plane(rng, vol, (13, 11))
    A, b = index_map(vol.affine, plane.grid_affine(5, 0.7))
    ref, got = both(vol, A, b, (5, 13, 11), "none", "nearest", host(), out_dtype=np.int16, fill=-3000.0)
    np.testing.assert_array_equal(got, ref)
    assert (ref == -3000).any() and (ref != -3000).any()
    far = Plane.axial(vol, shape=(4, 5))
    far = Plane(far.center + 500.0 * far.normal, far.u, far.v, far.shape, far.spacing)
    A, b = index_map(vol.affine, far.grid_affine(9, 1.0))
    for mode in ("max", "min", "mean"):
        ref, got = both(vol, A, b, (9, 4, 5), mode, "linear", host())
        assert np.all(ref == np.float32(FILL))
        np.testing.assert_array_equal(got, ref)


@needs_cxx
@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("mode", ["none", "max", "mean"])
@pytest.mark.parametrize("per_slice", [False, True])
def test_fast_fused_window_at_most_one_off(prebuilt, function, mode, per_slice):
    """The fused uint8 window of the fast sampler: at most 1 off the window of the exact float32 image."""
    rng = np.random.default_rng(21)
    vol = ct_volume(rng, (9, 12, 10), per_slice)
    plane = Plane.rotated(vol, (10, 20, 30), shape=(19, 23), spacing=0.7)
    grid = (6, 19, 23)
    A, b = index_map(vol.affine, plane.grid_affine(grid[0], 0.8))
    code = codes.FUNCTION_CODES[function]
    invert = function == "LINEAR_EXACT"
    center, width = 40.0, 400.0
    shape = grid if mode == "none" else grid[1:]
    ref32 = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL,
                                   np.empty(shape, np.float32))
    flat = ref32.reshape((-1,) + ref32.shape[-2:])
    want = np.empty(flat.shape, np.uint8)
    np_intensity.window_kernel(flat, np.ones(len(flat)), np.zeros(len(flat)), center, width, code, 0.0, 255.0,
                               invert, want)
    want = want.reshape(shape)
    got = host().sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL,
                             np.full(shape, 7, np.uint8), window=(center, width, code, 0.0, 255.0, invert),
                             precision="fast")
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.97
    assert len(np.unique(want)) > 10


@needs_cxx
def test_grids_beyond_the_fixed_point_range_run_exact(prebuilt):
    """A grid whose coordinates reach 2**21 voxels is sampled by the exact kernel: the same bits as "exact"."""
    rng = np.random.default_rng(9)
    vol = random_volume(rng, "int16", (5, 6, 7), per_slice=True)

    class Recording:
        xp = np

        def __init__(self):
            self.entries = []

        def device_id(self):
            return 0

        def function(self, spec, entry):
            self.entries.append(entry)
            return LAUNCHER.function(spec, entry)

    rec = Recording()
    k = host(launcher=rec)
    A = np.diag([0.5, 0.5, 1.0])
    for b, want in ((np.array([0.3, 0.2, 0.1]), "_fast"), (np.array([FAST_MAX_SPAN, 0.2, 0.1]), "r")):
        assert (fixed_point_map(A, b, (3, 4, 5), vol.shape) is None) == (want == "r")
        out = k.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, (3, 4, 5), "none", "linear", FILL,
                            np.empty((3, 4, 5), np.float32), precision="fast")
        assert rec.entries[-1].endswith(want), rec.entries
        if want == "r":
            ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, (3, 4, 5), "none", "linear",
                                         FILL, np.empty((3, 4, 5), np.float32))
            np.testing.assert_array_equal(out, ref)
    k.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, (3, 4, 5), "none", "linear", FILL,
                  np.empty((3, 4, 5), np.float32))
    assert not rec.entries[-1].endswith("_fast")            # "exact" is the default
    with pytest.raises(ValueError, match="precision"):
        k.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, (3, 4, 5), "none", "linear", FILL,
                      np.empty((3, 4, 5), np.float32), precision="float16")
    assert fixed_point_map(A, np.array([np.nan, 0, 0]), (3, 4, 5), vol.shape) is None
    assert fixed_point_map(A, b * 0, (2 ** 24, 1, 1), vol.shape) is None


@needs_cxx
def test_sampler_warmup_builds_the_fast_modules(prebuilt):
    k = host()
    k.sampler_warmup(np.zeros((2, 3, 4), np.int16), precision="fast")
    spec = cs.sample_fast_spec("int16", "float32", False, False)
    assert all((spec, e) in LAUNCHER._functions for e in FAST_ENTRIES)
    with pytest.raises(ValueError, match="precision"):
        k.sampler_warmup(np.zeros((2, 3, 4), np.int16), precision="half")


def test_fixed_point_map_rounds_to_nearest():
    A = np.arange(9.0).reshape(3, 3) / 7.0
    b = np.array([-1.5, 0.25, 1e-6])
    a_fix, b_fix, lim, eps = fixed_point_map(A, b, (4, 5, 6), (7, 8, 9))
    scale = 2.0 ** FIX_BITS
    assert a_fix.dtype == np.int64 and np.all(np.abs(a_fix / scale - A.ravel()) <= 0.5 / scale)
    assert np.all(b_fix / scale == b) or np.all(np.abs(b_fix / scale - b) <= 0.5 / scale)
    assert list(lim) == [round((8.0 + codes.EPS) * scale), round((7.0 + codes.EPS) * scale),
                         round((6.0 + codes.EPS) * scale)]
    assert eps == round(codes.EPS * scale)


# -- (d) through the backend contract: the capability, and the stand-in's device arrays --------------------------------
def test_cuda_cpp_backends_declare_fast_precision():
    for name in ("cupy", "cuda-host"):
        assert backends.lookup(name).has(codes.FAST_PRECISION), name


@needs_cxx
def test_contract_passes_fast_to_the_standin(prebuilt, monkeypatch):
    be = backends.get_backend("cuda-host")
    monkeypatch.setattr(be.kernels(), "config", SMALL)
    rng = np.random.default_rng(12)
    vol = ct_volume(rng, (7, 19, 23), per_slice=True)
    plane = Plane.rotated(vol, (30, 10, -20), shape=(21, 17), spacing=0.8)
    A, b = index_map(vol.affine, plane.grid_affine(4, 0.9))
    grid = (4, 21, 17)
    for mode in MODES:
        shape = grid if mode == "none" else grid[1:]
        ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL,
                                     np.empty(shape, np.float32))
        dev = be.asarray(vol.data)
        got = to_host(be.sample_grid(dev, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL,
                                     be.xp.empty(shape, np.float32), precision="fast"))
        check(vol, grid, ref, got, "linear")
        fn = be.kernels().launcher.function(cs.sample_fast_spec("int16", "float32", False, False),
                                            f"gk_sample_{'none' if mode == 'none' else 'combine'}_linear_fast")
        assert fn.calls >= 1


# -- (e) the real CT series ------------------------------------------------------------------------------------------
@needs_cxx
def test_real_ct_fast_within_001_hu(prebuilt):
    ct = gpukit.load(data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020"))
    k = host(config=LaunchConfig())
    plane = Plane.rotated(ct, (55, -15, 40), shape=(160, 180), spacing=0.9)
    for mode, ns, step in (("none", 1, 1.0), ("max", 8, 0.5), ("mean", 8, 0.5), ("min", 8, 0.5)):
        A, b = index_map(ct.affine, plane.grid_affine(ns, step))
        for interp in INTERPS:
            ref, got = both(ct, A, b, (ns, 160, 180), mode, interp, k)
            np.testing.assert_array_equal(ref == np.float32(FILL), got == np.float32(FILL))
            inside = ref != np.float32(FILL)
            d = np.abs(got[inside].astype(np.float64) - ref[inside])
            assert inside.sum() > 10000 and d.max() <= 0.01, (mode, interp, d.max())
            print(f"\nreal CT {mode} {interp}: max {d.max():.2e} HU, median {np.median(d):.2e} HU")


if __name__ == "__main__":      # the ptxas / f64 report as a script
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for (arch, label, entry), r in sorted(register_report(Path(tmp)).items()):
            print(f"{arch} {label:22} {entry:34} registers {r['registers']:3d} spill {r['spill']} stack {r['stack']}")
    for arch in ("compute_80", "compute_90"):
        for make in (cs.sample_spec, cs.sample_fast_spec):
            spec = make("int16", "float32", False, False)
            for entry, body in entry_bodies(ptx_of(spec, arch)).items():
                print(arch, entry, "f64 arithmetic / any f64:", f64_counts(body))
