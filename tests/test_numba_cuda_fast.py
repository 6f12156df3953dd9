"""The numba-cuda backend's "fast" sampler precision (float32 weights and blends), proven without a GPU.

* PTX (libNVVM, no device): ``resample_fast`` and ``project_fast`` compile for
  sm_80, sm_89 and sm_90 with FMA contraction off, and the per-sample loops
  of the fast linear kernels have the float64 instructions the kernels'
  docstring lists and no others: the reference's float64 coordinates and
  ``_fast_axis`` (clamp, floor, fraction, one ``cvt`` to float32 per axis),
  and where the rescale is per sample (mode none) its ``mul``/``add``; no
  float64 reads of the volume and no float64 blends. The counts, fast against
  exact, are printed (``-s``).
* The kernels against the numpy reference in numba-cuda's simulator (this
  file run in its own process with ``NUMBA_ENABLE_CUDASIM=1``, which must be
  set before Numba is imported): trilinear within
  :func:`gpukit.backends.numba.sampler.fast_bound` in every mode (none, max,
  min, mean), uniform (positive and negative slope) and per-slice rescale,
  the same fills; nearest equal; the window of the fast image at most 1 off
  the window of the reference's (numba-cuda has no fused window: the
  ``window`` kernel on the fast output); the backend routes ``precision``.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
FILL = -4321.5
MODES = ["none", "max", "min", "mean"]


def _device_present() -> bool:
    if SIMULATOR:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


DEVICE = _device_present()
needs_kernels = pytest.mark.skipif(not (SIMULATOR or DEVICE), reason=(
    "needs a CUDA device or NUMBA_ENABLE_CUDASIM=1 (set before Numba is imported); without a device "
    "test_fast_kernels_match_numpy_in_the_simulator runs this file in the simulator in a subprocess"))


# -- PTX -------------------------------------------------------------------------------------------------------------
def _nvvm_or_skip(cc):
    if SIMULATOR:
        pytest.skip("NUMBA_ENABLE_CUDASIM is set: numba.cuda is the simulator here, which has no compiler")
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        pytest.skip("libNVVM is not installed (pip install 'numba-cuda[cu12]', which the test extra does)")
    if not nvvm.NVVM().check_options([f"-arch=compute_{cc[0]}{cc[1]}".encode()]):
        pytest.skip(f"this libNVVM cannot target sm_{cc[0]}{cc[1]}")


@functools.lru_cache(maxsize=None)
def _ptx(name, cc=(8, 9)):
    from gpukit.backends.numba_cuda import kernels as K

    return K.compile_ptx(name, _sig(name), cc)


def _sig(name, dtype="int16"):
    from gpukit.backends.numba_cuda import kernels as K

    return next(s for n, s in K.signatures() if n == name and str(s[0].dtype) == dtype)


def _loops(ptx: str):
    """``(label, body lines)`` of each PTX loop (a branch back to a label above it)."""
    lines = ptx.splitlines()
    labels = {}
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"\s*(\$L__\w+):", line)
        if m:
            labels[m.group(1)] = i
        m = re.search(r"bra(?:\.uni)?\s+(\$L__\w+);", line)
        if m and m.group(1) in labels:
            out.append((m.group(1), lines[labels[m.group(1)]:i + 1]))
    return out


def _sample_loops(ptx: str) -> list[Counter]:
    """Per loop that reads the (int16) volume: the count of each float64 instruction in it (the per-sample path)."""
    out = []
    for _, body in _loops(ptx):
        if any(re.search(r"ld\.global(?:\.nc)?\.[su]16", ln) for ln in body):
            out.append(Counter(ln.split()[0] for ln in body if ".f64" in ln and not ln.strip().startswith("//")))
    return out


def _f64_total(ptx: str) -> int:
    return sum(1 for ln in ptx.splitlines() if re.match(r"\s*[a-z]\S*\.f64\b", ln.strip()) and ".f64" in ln)


#: the float64 instructions the fast linear per-sample path may hold (see the kernels' docstring): the coordinates
#: (mul, add; ``s`` converted), ``_fast_axis`` (clamp: setp / selp; floor: cvt.rzi; the fraction: cvt back, sub;
#: the weight: cvt.rn.f32.f64), kernel parameters reloaded; mode none / per-slice rescale: slopes and intercepts
#: (ld.global.f64) and the rescale of the float32 blend (cvt.f64.f32, mul, add), NaN tests of the combine.
ALLOWED_F64 = {"mul.rn.f64", "add.rn.f64", "sub.rn.f64", "setp.lt.f64", "setp.gt.f64", "selp.f64", "cvt.rzi.s64.f64",
               "cvt.rn.f64.s64", "cvt.rn.f32.f64", "ld.param.f64", "cvt.f64.f32", "ld.global.f64", "setp.nan.f64"}


@pytest.mark.parametrize("cc", [(8, 0), (8, 9), (9, 0)], ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
def test_fast_kernels_compile_without_fma_for_each_architecture(cc):
    _nvvm_or_skip(cc)
    from gpukit.backends.numba_cuda import kernels as K
    from test_numba_cuda import contracted

    # every stored dtype of K.FAST_KINDS compiles for sm_80 in test_numba_cuda.py (K.signatures() has them)
    for name in ("resample_fast", "project_fast"):
        for dtype in ("int16",):
            ptx = _ptx(name, cc)
            assert f".target sm_{cc[0]}{cc[1]}" in ptx
            assert re.search(r"\.visible \.entry\s+\S*" + name, ptx)
            assert not contracted(ptx, set()), f"{name} {dtype}: fused multiply-adds"
            assert "mul.rn.f32" in ptx and "sub.rn.f32" in ptx and "add.rn.f32" in ptx     # float32 blends
    assert {n for n, _ in K.signatures() if n.endswith("_fast")} == {"resample_fast", "project_fast"}
    assert {str(sig[0].dtype) for n, sig in K.signatures() if n == "project_fast"} == set(K.FAST_KINDS)


def test_fast_linear_per_sample_path_float64_instructions():
    """What float64 remains per sample, counted, against the exact kernels (printed with -s)."""
    _nvvm_or_skip((8, 9))
    report = []
    for exact, fast in (("resample", "resample_fast"), ("project", "project_fast")):
        pe = _ptx(exact)
        pf = _ptx(fast)
        le = _sample_loops(pe)
        lf = _sample_loops(pf)
        assert le and lf
        for loop in lf:
            assert set(loop) <= ALLOWED_F64, f"{fast}: unexpected float64 {set(loop) - ALLOWED_F64}"
            assert not any(k.startswith("cvt.rn.f64.s16") for k in loop)      # stored values read as float32
        arith = [sum(v for k, v in loop.items() if not k.startswith("ld.")) for loop in lf]
        exact_arith = min(sum(v for k, v in loop.items() if not k.startswith("ld.")) for loop in le)
        assert max(arith) < exact_arith, (fast, arith, exact_arith)
        report.append(f"{exact}: {exact_arith} f64 per-sample ({_f64_total(pe)} in the PTX); {fast}: loops "
                      f"{arith} ({_f64_total(pf)} in the PTX); {[dict(loop) for loop in lf]}")
    # the raw max / min loop (uniform rescale) holds only the coordinates and _fast_axis: 9 + 3 * 7 at most
    pf = _ptx("project_fast")
    raw = [loop for loop in _sample_loops(pf) if "ld.global.f64" not in loop and "cvt.f64.f32" not in loop]
    assert raw and all(sum(v for k, v in loop.items() if not k.startswith("ld.")) <= 34 for loop in raw), raw
    print("\n" + "\n".join(report))


# -- the simulator (or a device) -------------------------------------------------------------------------------------
def test_fast_kernels_match_numpy_in_the_simulator():
    """Run this file under NUMBA_ENABLE_CUDASIM=1 in a fresh process; all must pass."""
    if SIMULATOR:
        pytest.skip("NUMBA_ENABLE_CUDASIM is already set: the simulator tests run in this process")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-rs",
                           str(Path(__file__).resolve())], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 6, out[-3000:]
    print("\n".join(ln for ln in out.splitlines() if ln.startswith("fast ")))


@pytest.fixture
def small_launches(monkeypatch):
    from gpukit.backends.numba_cuda import kernels as K

    monkeypatch.setattr(K, "SAMPLER_BLOCK", (4, 3))
    return K


def _case(seed, rescale):
    """int16 volume 6x7x8 (values up to 4095 in magnitude), a random rotation/scale/shear about half inside."""
    from gpukit.planes import rotation_matrix

    rng = np.random.default_rng(seed)
    shape = (6, 7, 8)
    data = rng.integers(-4096, 4096, size=shape).astype(np.int16)
    nz = shape[0]
    if rescale == "per_slice":
        s = rng.uniform(0.5, 2.0, nz)
        t = rng.uniform(-1100, -900, nz)
    elif rescale == "negative":
        s = np.full(nz, -1.25)
        t = np.full(nz, 7.25)
    else:
        s = np.full(nz, 1.0)
        t = np.full(nz, -1024.0)
    A = rotation_matrix(rng.uniform(-180, 180, 3)) * rng.uniform(0.5, 1.3, 3)
    grid = (5, 11, 9)
    centre = (np.array(shape[::-1]) - 1) / 2.0
    b = centre - A @ ((np.array(grid[::-1]) - 1) / 2.0) + rng.uniform(-1.0, 1.0, 3)
    return data, s, t, A, b, grid


def _bound(data, s, t):
    from gpukit.backends.numba.sampler import fast_bound

    M = float(np.abs(data.astype(np.float64)).max())
    H = float(np.abs(np.outer(s, [data.min(), data.max()]) + t[:, None]).max())
    return fast_bound(M, float(np.abs(s).max()), H)


def _run(cuda, G, d, s, t, A, b, grid, mode, interp, precision):
    shape = grid if mode == "none" else grid[1:]
    out = cuda.device_array(shape, np.float32)
    assert G.sample_grid(d, s, t, A, b, grid, mode, interp, FILL, out, precision=precision) is out
    return out.copy_to_host()


@needs_kernels
@pytest.mark.parametrize("rescale", ["uniform", "negative", "per_slice"])
def test_fast_linear_within_the_bound_every_mode(small_launches, rescale):
    from numba import cuda

    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import sampler as NS

    for seed in (1, 2, 3):
        _within_the_bound(cuda, G, NS, *_case(10 * seed + len(rescale), rescale), rescale)


def _within_the_bound(cuda, G, NS, data, s, t, A, b, grid, rescale):
    d = cuda.to_device(data)
    bound = _bound(data, s, t)
    for mode in MODES:
        ref = NS.sample_grid(data, s, t, A, b, grid, mode, "linear", FILL,
                             np.empty(grid if mode == "none" else grid[1:], np.float32))
        got = _run(cuda, G, d, s, t, A, b, grid, mode, "linear", "fast")
        np.testing.assert_array_equal(got == np.float32(FILL), ref == np.float32(FILL), err_msg=mode)
        inside = ref != np.float32(FILL)
        assert inside.any() and (~inside).any(), mode
        diff = np.abs(got[inside].astype(np.float64) - ref[inside].astype(np.float64))
        print(f"fast {rescale} {mode}: n={diff.size} max={diff.max():.3g} median={np.median(diff):.3g} "
              f"bound={bound:.3g}")
        assert diff.max() <= bound, (mode, diff.max(), bound)


@needs_kernels
def test_fast_nearest_equals_the_reference_and_other_dtypes_run_exact(small_launches):
    from numba import cuda

    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import sampler as NS

    data, s, t, A, b, grid = _case(4, "per_slice")
    d = cuda.to_device(data)
    for mode in MODES:
        ref = NS.sample_grid(data, s, t, A, b, grid, mode, "nearest", FILL,
                             np.empty(grid if mode == "none" else grid[1:], np.float32))
        np.testing.assert_array_equal(_run(cuda, G, d, s, t, A, b, grid, mode, "nearest", "fast"), ref)
    # float32 stored values have no fast kernel: "fast" is the exact kernel's result, bit for bit
    f = cuda.to_device(data.astype(np.float32))
    np.testing.assert_array_equal(_run(cuda, G, f, s, t, A, b, grid, "none", "linear", "fast"),
                                  _run(cuda, G, f, s, t, A, b, grid, "none", "linear", "exact"))
    with pytest.raises(ValueError, match="precision"):
        _run(cuda, G, d, s, t, A, b, grid, "none", "linear", "quick")


@needs_kernels
def test_window_of_the_fast_image_is_at_most_one_off(small_launches):
    from numba import cuda

    from gpukit.backends.numba_cuda import ops as G
    from gpukit.backends.numpy import intensity as NI
    from gpukit.backends.numpy import sampler as NS

    data, s, t, A, b, grid = _case(5, "uniform")
    data = (data // 8).astype(np.int16)           # values near the narrow window below
    got = _run(cuda, G, cuda.to_device(data), s, t, A, b, grid, "none", "linear", "fast")
    ref = NS.sample_grid(data, s, t, A, b, grid, "none", "linear", FILL, np.empty(grid, np.float32))
    one = np.ones(grid[0])
    zero = np.zeros(grid[0])
    worst = 0
    for center, width in ((-1024.0, 3.0), (-1000.0, 40.0), (-900.0, 400.0)):
        w_ref = NI.window_kernel(ref, one, zero, center, width, NI.LINEAR, 0, 255, False, np.empty(grid, np.uint8))
        out = cuda.device_array(grid, np.uint8)
        G.window_kernel(cuda.to_device(got), one, zero, center, width, NI.LINEAR, 0, 255, False, out)
        diff = np.abs(out.copy_to_host().astype(int) - w_ref.astype(int))
        assert len(np.unique(w_ref)) > (1 if width < 10 else 5)       # real contrast (width 3: both ends)
        worst = max(worst, int(diff.max()))
    print(f"fast window: max difference {worst}")
    assert worst <= 1


@needs_kernels
def test_the_backend_routes_precision_fast(small_launches, monkeypatch):
    """``Backend.sample_grid(..., precision="fast")`` reaches the fast kernels (capability FAST_PRECISION)."""
    from numba import cuda

    from gpukit.backends import codes
    from gpukit.backends.numba_cuda import BACKEND
    from gpukit.backends.numba_cuda import kernels as K

    assert BACKEND.has(codes.FAST_PRECISION)
    launched = []
    real = K.launch
    monkeypatch.setattr(K, "launch", lambda name, *a: (launched.append(name), real(name, *a)))
    data, s, t, A, b, grid = _case(6, "uniform")
    d = cuda.to_device(data)
    for precision in ("fast", "exact"):
        for mode in ("none", "max"):
            shape = grid if mode == "none" else grid[1:]
            BACKEND.sample_grid(d, s, t, A, b, grid, mode, "linear", FILL, cuda.device_array(shape, np.float32),
                                precision=precision)
    assert launched == ["resample_fast", "project_fast", "resample", "project"]
