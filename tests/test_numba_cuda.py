"""The ``numba-cuda`` backend, proven without a GPU.

* The registry: unavailable here, saying what is missing; importing the
  backend module stays light.
* PTX: every ``@cuda.jit`` kernel compiles with ``numba.cuda.compile_ptx``
  (libNVVM, no device) for every argument-type combination gpukit launches
  on sm_80, and for the common one (int16 stored values) on sm_70, sm_75 and
  sm_90. The simulator accepts code that the real compiler rejects, so this
  pairs with the simulator run below.
* Exactness on a device depends on the PTX: libNVVM fuses ``a * b + c`` into
  an FMA unless told not to. The PTX of every kernel is checked for fused
  multiply-adds outside libdevice's ``exp`` (the only FMAs allowed, in the
  SIGMOID window), and the check is shown to catch the FMAs of a default
  compile.
* The kernels against the numpy reference in numba-cuda's simulator:
  ``tests/test_numba_cuda_kernels.py`` run in its own process with
  ``NUMBA_ENABLE_CUDASIM=1`` (it must be set before Numba is imported).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


# -- registry ----------------------------------------------------------------------------------------------------------
def test_importing_the_backend_module_does_not_import_numba():
    code = ("import sys, gpukit.backends.numba_cuda as m; b = m.BACKEND; b.name, b.location, b.dependencies; "
            "assert 'numba' not in sys.modules, sorted(k for k in sys.modules if 'numba' in k)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_unavailable_here_names_what_is_missing():
    from gpukit.backends import backend_report, missing_dependencies, resolve_name
    from gpukit.backends import numba_cuda as numba_cuda_backend
    from gpukit.errors import BackendUnavailableError

    if numba_cuda_backend.is_available():
        pytest.skip("a CUDA device is present: the backend is available")
    missing = missing_dependencies("numba-cuda")
    assert missing and any("CUDA device" in m or "libNVVM" in m for m in missing), missing
    with pytest.raises(BackendUnavailableError, match="numba-cuda.*(CUDA device|libNVVM)"):
        resolve_name("numba-cuda")
    assert resolve_name("auto") != "numba-cuda"
    row = next(r for r in backend_report() if r["name"] == "numba-cuda")
    assert row == {"name": "numba-cuda", "available": False, "missing": missing, "location": "device", "auto": True,
                   "capabilities": ["concurrent_calls", "fast_precision"]}
    # the kernels are reachable through the backend (imported on first use); capabilities it lacks are refused
    be = numba_cuda_backend.BACKEND
    assert callable(be.kernels().sample_grid) and not be.has("brick_skipping")
    from gpukit.errors import CapabilityError

    with pytest.raises(CapabilityError, match="brick_skipping"):
        be.brick_extrema(None, None, None)


def test_simulator_is_never_reported_as_a_device():
    code = ("import gpukit.backends.numba_cuda as m; "
            "assert not m.is_available(); assert 'simulator' in m.missing_dependencies()[0], m.missing_dependencies()")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


# -- PTX for each architecture ---------------------------------------------------------------------------------------
def _nvvm():
    if SIMULATOR:
        pytest.skip("NUMBA_ENABLE_CUDASIM is set: numba.cuda is the simulator here, which has no compiler")
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        pytest.skip("libNVVM is not installed (pip install 'numba-cuda[cu12]', which the test extra does)")
    return nvvm.NVVM()


def _arch_or_skip(cc):
    nvvm = _nvvm()
    if not nvvm.check_options([f"-arch=compute_{cc[0]}{cc[1]}".encode()]):
        from numba.cuda.cudadrv import libs

        pytest.skip(f"this libNVVM ({libs.get_cudalib('nvvm')}) cannot target sm_{cc[0]}{cc[1]} "
                    "(CUDA 13 dropped Volta; CUDA 12's NVVM, from the test extra, has it)")


_CONST = re.compile(r"mov\.f64\s+(%fd\d+),\s*(0d[0-9A-Fa-f]{16});")
_FMA = re.compile(r"fma\.rn\.f(?:32|64)\s+%f[d]?\d+,\s*([^,]+),\s*([^,]+),\s*([^;]+);")


def _constants(ptx: str) -> dict[str, str]:
    return {reg: imm.upper() for reg, imm in _CONST.findall(ptx)}


def contracted(ptx: str, allowed: set[str]) -> list[str]:
    """The FMA instructions of ``ptx`` with no operand among the constants ``allowed``.

    libdevice's ``exp`` is written with FMAs on purpose, each taking one of
    its polynomial constants; a multiply-add that NVVM fused out of gpukit's
    own ``a * b + c`` takes kernel values only.
    """
    consts = _constants(ptx)
    bad = []
    for line in ptx.splitlines():
        m = _FMA.search(line)
        if not m:
            continue
        vals = [consts.get(op.strip(), op.strip().upper() if op.strip().lower().startswith("0d") else None)
                for op in m.groups()]
        if not any(v in allowed for v in vals if v):
            bad.append(line.strip())
    return bad


@pytest.fixture(scope="module")
def exp_constants():
    """The constants libdevice's ``exp`` feeds its FMAs, from a kernel that only calls ``math.exp``."""
    _nvvm()
    from numba import cuda, float64

    from gpukit.backends.numba_cuda import kernels as K

    def exp_only(x, out):
        out[0] = math.exp(-4.0 * (x[0] - x[1]) / x[2])

    with K.contraction_off():
        ptx, _ = cuda.compile_ptx(exp_only, (float64[:], float64[:]), cc=(8, 0))
    consts = set(_constants(ptx).values())
    assert len(consts) >= 8 and "0D3FF71547652B82FE" in consts     # log2(e): it is exp's code
    return consts


@pytest.fixture(scope="module")
def signatures():
    _nvvm()
    from gpukit.backends.numba_cuda import kernels as K

    return K.signatures()


def _compile_job(job):
    """Compile one ``(index into signatures(), cc)`` in a worker process; returns the PTX."""
    from gpukit.backends.numba_cuda import kernels as K

    n, cc = job
    name, sig = K.signatures()[n]
    return K.compile_ptx(name, sig, cc)


def _wanted(signatures, cc) -> list[int]:
    """Indices of the signatures compiled for ``cc``: every one on sm_80, one per kernel (int16) elsewhere."""
    if cc == (8, 0):
        return list(range(len(signatures)))
    seen, out = set(), []
    for n, (name, sig) in enumerate(signatures):
        if name not in seen and str(sig[0].dtype) == "int16":
            seen.add(name)
            out.append(n)
    return out


ARCHS = [(8, 0), (7, 0), (7, 5), (9, 0)]


@pytest.fixture(scope="module")
def compiled(signatures):
    """PTX of every (signature, architecture) the tests check, compiled once in two processes: libNVVM is
    single-threaded and the compiles are most of this file's time, so both cores of a CI machine work on them."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    nvvm = _nvvm()
    archs = [cc for cc in ARCHS if nvvm.check_options([f"-arch=compute_{cc[0]}{cc[1]}".encode()])]
    jobs = [(n, cc) for cc in archs for n in _wanted(signatures, cc)]
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=mp.get_context("spawn")) as pool:
        return dict(zip(jobs, pool.map(_compile_job, jobs)))


def _check_ptx(name, sig, cc, exp_constants, ptx=None):
    from gpukit.backends.numba_cuda import kernels as K

    if ptx is None:
        ptx = K.compile_ptx(name, sig, cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert re.search(r"\.visible \.entry\s+\S*" + name, ptx), f"no kernel entry for {name}"
    bad = contracted(ptx, exp_constants if name == "window" else set())
    assert not bad, f"{name}{sig} on sm_{cc[0]}{cc[1]}: fused multiply-adds {bad[:3]}"
    return ptx


def test_every_kernel_and_type_combination_compiles_for_sm80(signatures, exp_constants, compiled):
    from gpukit.backends.numba_cuda import kernels as K

    assert {n for n, _ in signatures} == set(K.PYFUNCS)            # every kernel is in the list
    stored = {str(sig[0].dtype) for _, sig in signatures}
    assert stored == {"uint8", "int8", "uint16", "int16", "int32", "uint32", "float32", "float64"}
    for n, (name, sig) in enumerate(signatures):
        _check_ptx(name, sig, (8, 0), exp_constants, compiled[n, (8, 0)])


@pytest.mark.parametrize("cc", ARCHS[1:], ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
def test_every_kernel_compiles_for_other_architectures(signatures, exp_constants, compiled, cc):
    _arch_or_skip(cc)
    seen = set()
    for n in _wanted(signatures, cc):
        name, sig = signatures[n]
        seen.add(name)
        _check_ptx(name, sig, cc, exp_constants, compiled[n, cc])
    from gpukit.backends.numba_cuda import kernels as K

    assert seen == set(K.PYFUNCS)


def test_the_fma_check_catches_a_default_compile(signatures, exp_constants):
    """Without ``contraction_off`` NVVM fuses the rescale and the window's blend: the check must say so."""
    from numba import cuda

    from gpukit.backends.numba_cuda import kernels as K

    sigs = dict(signatures)
    for name in ("rescale", "window", "resample"):
        ptx, _ = cuda.compile_ptx(K.PYFUNCS[name], sigs[name], cc=(8, 0))
        assert contracted(ptx, exp_constants), f"{name}: a default compile shows no fused multiply-add"
        fixed = K.compile_ptx(name, sigs[name], (8, 0))
        assert not contracted(fixed, exp_constants)
        assert "mul.rn.f64" in fixed and "add.rn.f64" in fixed      # rounded separately, never fused by ptxas


def test_kernels_call_the_shared_njit_helpers():
    """One definition of the maths: the kernels reach the same @njit objects the Numba CPU kernels use."""
    from gpukit.backends import _math, _sampler_math
    from gpukit.backends.numba import sampler as nb_sampler
    from gpukit.backends.numba_cuda import kernels as K

    if K.SIMULATOR:
        pytest.skip("under the simulator the kernels call the helpers' Python functions")
    assert K._rescale_value is _math.rescale_value and K._window_value is _math.window_value
    for name in ("_inside", "_linear", "_nearest", "_ray_range", "_ray_combine"):
        assert getattr(K, name) is getattr(_sampler_math, name)
    assert nb_sampler._linear is _sampler_math._linear and nb_sampler._ray_range is _sampler_math._ray_range
    for name in ("combine_init", "combine_step", "combine_finish", "combine_selects", "combine_mirror"):
        assert getattr(K, "_" + name) is getattr(_sampler_math, name)      # the combine rule: once, both targets
        if name in ("combine_init", "combine_step", "combine_finish") or hasattr(nb_sampler, name):
            assert getattr(nb_sampler, name) is getattr(_sampler_math, name)
    for name in ("_fast_axis", "_blend4_f32", "_fast_value", "_linear_fast"):     # the fast precision too
        assert getattr(K, name) is getattr(_sampler_math, name)
    assert nb_sampler._fast_axis is _sampler_math._fast_axis and nb_sampler._blend4_f32 is _sampler_math._blend4_f32
    assert nb_sampler._ray_combine is _sampler_math._ray_combine


# -- the simulator ---------------------------------------------------------------------------------------------------
def test_kernels_match_numpy_in_the_simulator():
    """Run tests/test_numba_cuda_kernels.py under NUMBA_ENABLE_CUDASIM=1 in a fresh process; all must pass."""
    if SIMULATOR:
        pytest.skip("NUMBA_ENABLE_CUDASIM is already set: test_numba_cuda_kernels.py runs in this process")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           str(ROOT / "tests" / "test_numba_cuda_kernels.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 25, out[-3000:]
    assert "failed" not in out.splitlines()[-1], out[-3000:]
