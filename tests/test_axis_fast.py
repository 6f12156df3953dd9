"""The Numba axis-aligned projections (:mod:`gpukit.backends.numba.axis`) against the numpy reference.

Every axis, every mode, every stored dtype the kernels specialise (8/16/32/64-bit integers, float32/64 with NaN
and infinities), integer extremes, slabs (``lo:hi``), uniform, per-slice, negative (decreasing) and zero slopes,
with one ``out`` reused across calls. The reference rule is
:func:`gpukit.backends.numpy.sampler.project_axis`; the kernels reduce stored values and rescale once where
that is exact, so the results must be equal bit for bit (float input's mean along the contiguous axis aside:
numpy sums it pairwise, the kernel in order; a float32 ulp or so).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpukit.backends import get_backend
from gpukit.backends.numba import axis as nb_axis
from gpukit.backends.numpy import sampler as np_sampler

pytest.importorskip("numba")

DTYPES = [np.int16, np.uint16, np.uint8, np.int8, np.int32, np.uint32, np.int64, np.float32, np.float64]
RESCALES = ["uniform", "negative", "per_slice", "zero", "per_slice_negative"]


def _data(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        d = (rng.standard_normal(shape) * 1000).astype(dt)
        if d.size >= 4:
            d.flat[rng.choice(d.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
        return d
    info = np.iinfo(dt)
    d = rng.integers(info.min, int(info.max) + 1, shape, dtype=dt)
    d.flat[rng.choice(d.size, min(2, d.size), replace=False)] = [info.min, info.max][:min(2, d.size)]
    return d


def _rescale(rng, kind, nz):
    if kind == "uniform":
        return np.full(nz, 1.5), np.full(nz, -1024.0)
    if kind == "negative":
        return np.full(nz, -2.0), np.full(nz, 3.0)
    if kind == "zero":
        return np.zeros(nz), np.full(nz, 7.0)
    if kind == "per_slice":
        return rng.uniform(0.1, 2.0, nz), rng.uniform(-100, 100, nz)
    return rng.uniform(-2.0, 2.0, nz), rng.uniform(-100, 100, nz)


def _shape(axis, shp):
    return [shp[1:], (shp[0], shp[2]), shp[:2]][axis]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rescale", RESCALES)
def test_project_axis_equals_numpy(dtype, rescale):
    rng = np.random.default_rng(hash((np.dtype(dtype).name, rescale)) % 2 ** 32)
    for trial in range(3):
        shp = tuple(int(v) for v in rng.integers(1, 14, 3)) if trial else (9, 11, 70)   # 70: vector loops + tails
        data = _data(rng, dtype, shp)
        s, t = _rescale(rng, rescale, shp[0])
        outs = {}
        for axis, mode in itertools.product((0, 1, 2), ("max", "min", "mean")):
            n = shp[axis]
            lo, hi = (0, n) if trial == 0 else (int(rng.integers(0, n)), n)
            hi = max(hi, lo + 1)
            shape = _shape(axis, shp)
            want = np_sampler.project_axis(data, s, t, axis, lo, hi, mode, np.empty(shape, np.float32))
            out = outs.setdefault(axis, np.full(shape, 7.0, np.float32))      # reused across modes
            got = nb_axis.project_axis(data, s, t, axis, lo, hi, mode, out)
            assert got is out
            msg = f"{np.dtype(dtype)} {rescale} axis {axis} {mode} {lo}:{hi} shape {shp}"
            if np.dtype(dtype).kind == "f" and axis == 2 and mode == "mean":
                np.testing.assert_allclose(got, want, rtol=2e-7, atol=0, equal_nan=True, err_msg=msg)
            else:
                np.testing.assert_array_equal(got, want, err_msg=msg)


@pytest.mark.parametrize("mode", ["max", "min", "mean"])
def test_long_axes_and_many_slices(mode):
    """Enough slices and rows for every thread to get several blocks, four-row passes and their tails."""
    rng = np.random.default_rng(3)
    data = rng.integers(-2000, 3000, (67, 45, 130), dtype=np.int16)
    for s, t in ((np.ones(67), np.full(67, -1024.0)), (np.full(67, -1.0), np.zeros(67)),
                 (rng.uniform(0.5, 2, 67), rng.uniform(-10, 10, 67))):
        for axis in (0, 1, 2):
            shape = _shape(axis, data.shape)
            want = np_sampler.project_axis(data, s, t, axis, 3, data.shape[axis] - 2, mode, np.empty(shape, np.float32))
            got = nb_axis.project_axis(data, s, t, axis, 3, data.shape[axis] - 2, mode, np.empty(shape, np.float32))
            np.testing.assert_array_equal(got, want, err_msg=f"axis {axis}")


def test_sums_switch_accumulator_exactly():
    """The mean's accumulator: int32 while ``n * max|value|`` fits, then int64, then float64; all exact."""
    assert nb_axis._sum_dtype(np.int16, 1000) == np.int32
    assert nb_axis._sum_dtype(np.int16, 70000) == np.int64
    assert nb_axis._sum_dtype(np.int32, 10) == np.int64
    assert nb_axis._sum_dtype(np.int64, 10) == np.float64
    assert nb_axis._sum_dtype(np.float32, 10) == np.float64
    data = np.full((3, 2, 70000), 32767, np.int16)
    data[1] = -32768
    for axis in (1, 2):
        shape = _shape(axis, data.shape)
        want = np_sampler.project_axis(data, np.ones(3), np.zeros(3), axis, 0, data.shape[axis], "mean",
                                       np.empty(shape, np.float32))
        got = nb_axis.project_axis(data, np.ones(3), np.zeros(3), axis, 0, data.shape[axis], "mean",
                                   np.empty(shape, np.float32))
        np.testing.assert_array_equal(got, want)


def test_numba_backend_routes_project_axis_here_and_falls_back_for_odd_dtypes():
    be = get_backend("numba")
    assert be.kernels().project_axis is nb_axis.project_axis
    data = np.random.default_rng(0).integers(0, 2, (3, 4, 5)).astype(bool)
    out = nb_axis.project_axis(data, np.ones(3), np.zeros(3), 0, 0, 3, "max", np.empty((4, 5), np.float32))
    np.testing.assert_array_equal(out, data.max(axis=0).astype(np.float32))
    with pytest.raises(ValueError):
        nb_axis.project_axis(data.astype(np.int16), np.ones(3), np.zeros(3), 0, 1, 1, "max", np.empty((4, 5), np.float32))
