"""Arrays as users hand them over: big-endian, Fortran-ordered, strided views (issue 10, "bad input to every public
function"). Before: a big-endian volume was a Numba TypingError on the numba backend and "no kernel for dtype >i2"
on the CUDA path. Every backend now gives the numpy reference's result on the plain array, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import gpukit
from gpukit import Plane, Volume

from conftest import host

AFF = np.diag([0.7, 0.7, 2.0, 1.0])
META = {"rescale_intercept": -1024.0}


def _stored():
    return np.random.default_rng(11).integers(-1000, 2000, (6, 10, 14)).astype(np.int16)


ODD = {"big-endian": lambda a: a.astype(">i2"),
       "fortran": np.asfortranarray,
       "strided": lambda a: np.repeat(a, 2, axis=2)[:, :, ::2]}


@pytest.mark.parametrize("kind", list(ODD))
def test_odd_arrays_give_the_reference_result(kind, backend):
    a = _stored()
    x = ODD[kind](a)
    assert np.array_equal(x, a) and (x.dtype != a.dtype or not x.flags.c_contiguous)
    ref = Volume(a, AFF, META)
    vol = Volume(x, AFF, META).to(backend)
    plane = Plane.rotated(ref, (10, 20, 30))
    pairs = [(gpukit.rescale(vol), gpukit.rescale(ref, backend="numpy")),
             (gpukit.window(vol, 40, 400), gpukit.window(ref, 40, 400, backend="numpy")),
             # precision="exact": compared bit for bit with the reference (the default "fast" sampler is within
             # a stated bound instead, tested in tests/test_fast_precision.py)
             (gpukit.reslice(vol, plane, precision="exact"), gpukit.reslice(ref, plane, backend="numpy")),
             (gpukit.project(vol, "axial"), gpukit.project(ref, "axial", backend="numpy")),
             (gpukit.window(x, 40, 400, backend=backend), gpukit.window(a, 40, 400, backend="numpy")),
             (gpukit.rescale(x, 1, -1024, backend=backend), gpukit.rescale(a, 1, -1024, backend="numpy"))]
    for n, (got, want) in enumerate(pairs):
        got = host(got)
        assert got.dtype == want.dtype and np.array_equal(got, want), n


def test_read_only_input_takes_the_ordinary_numba_kernels():
    """A read-only array (np.load with mmap_mode="r", np.frombuffer of bytes) gives the same images as a writeable
    one, stays read-only and unchanged, and compiles no read-only specialisation of a kernel (Numba types read-only
    arrays separately: a minute or more of compiling per sampler kernel and stored type)."""
    pytest.importorskip("numba")
    from numba.core import types

    from gpukit.backends.numba import sampler

    a = _stored()
    ro = a.copy()
    ro.flags.writeable = False
    vol, ref = Volume(ro, AFF, META), Volume(a.copy(), AFF, META)
    plane = Plane.rotated(ref, (10, 20, 30), shape=(12, 9))
    calls = [lambda v: gpukit.reslice(v, plane, backend="numba"),
             lambda v: gpukit.reslice(v, plane, backend="numba", precision="exact"),
             lambda v: gpukit.project(v, plane, thickness_mm=4.0, backend="numba", order="ray"),
             lambda v: gpukit.project(v, plane, mode="mean", thickness_mm=4.0, backend="numba", order="ray")]
    for n, f in enumerate(calls):
        assert np.array_equal(f(vol), f(ref)), n
    assert np.array_equal(gpukit.reslice(vol, plane, backend="numba", precision="exact"),
                          gpukit.reslice(ref, plane, backend="numpy"))
    assert not ro.flags.writeable and np.array_equal(ro, a)
    for disp in (sampler._resample_fast_kernel, sampler._resample_kernel, sampler._project_fast_kernel):
        assert disp.signatures, disp
        assert not [t for sig in disp.signatures for t in sig if isinstance(t, types.Array) and not t.mutable], disp
