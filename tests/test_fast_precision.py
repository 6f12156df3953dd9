"""The "fast" sampler precision (float32 weights and blends) against "exact" and the numpy reference.

What is asserted (the bound is stated and proved in :mod:`gpukit.backends.numba.sampler`, ``fast_bound``):

* trilinear, every mode (none, max, min, mean), per-slice and uniform rescale,
  plain and bricked layout, with and without brick skipping: ``|fast - reference|
  <= fast_bound(M, S, H)`` per value, and the same outside points (fill);
* nearest: fast equals the reference exactly, in every mode;
* "exact" on numba equals the numpy reference exactly;
* the fused window: uint8 off by at most 1;
* the ops take ``precision=`` ("fast" default, "exact"), validate it, and route it;
* on the real CT (``ct_philips_1mm``): the same, at the scale the bound is meant for (under 0.01 HU).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gpukit
from gpukit import Plane, Volume
from gpukit.backends import get_backend
from gpukit.backends.numba import sampler as nb
from gpukit.backends.numpy import sampler as npr
from gpukit.errors import InvalidParameterError
from gpukit.ops.sampling import index_map
from gpukit.planes import rotation_matrix

from conftest import data_path

from gpukit.backends import available_backends

pytestmark = pytest.mark.skipif("numba" not in available_backends(), reason="numba not installed")

FILL = -3000.0
MODES = ["none", "max", "min", "mean"]


def _random_case(seed, dtype, per_slice, shape=None):
    rng = np.random.default_rng(seed)
    if shape is None:
        shape = tuple(int(n) for n in rng.integers(1, 9, 3))
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -4096), min(info.max, 4095)
    data = rng.integers(lo, hi + 1, shape).astype(dtype)
    nz = shape[0]
    if per_slice:
        slopes = rng.uniform(0.5, 2.0, nz) * rng.choice([-1.0, 1.0])
        intercepts = rng.uniform(-1100, 100, nz)
    else:
        slopes = np.full(nz, rng.choice([1.0, 0.5, -1.0, 2.5]))
        intercepts = np.full(nz, rng.choice([-1024.0, 0.0, 7.25]))
    R = rotation_matrix(rng.uniform(-180, 180, 3))
    A = R * rng.uniform(0.4, 1.6, 3)
    centre = (np.array(shape[::-1]) - 1) / 2.0
    grid = (int(rng.integers(1, 7)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
    b = centre - A @ ((np.array(grid[::-1]) - 1) / 2.0) + rng.uniform(-1.5, 1.5, 3)
    return data, slopes, intercepts, A, b, grid


def _bound(data, slopes, intercepts):
    M = float(np.abs(data.astype(np.float64)).max())
    S = float(np.abs(slopes).max())
    H = float(np.abs(np.outer(slopes, [data.min(), data.max()]) + intercepts[:, None]).max())
    return nb.fast_bound(M, S, H)


def _run(fn, data, slopes, intercepts, A, b, grid, mode, interp, **kw):
    out = np.empty(grid if mode == "none" else grid[1:], np.float32)
    fn(data, slopes, intercepts, A, b, grid, mode, interp, FILL, out, **kw)
    return out


def _check(fast, ref, interp, bound):
    assert fast.shape == ref.shape
    # the same outside points / empty rays (the inside test is the reference's)
    np.testing.assert_array_equal(fast == FILL, ref == FILL)
    if interp == "nearest":
        np.testing.assert_array_equal(fast, ref)
    else:
        d = np.abs(fast.astype(np.float64) - ref.astype(np.float64))
        assert d.max() <= bound, (d.max(), bound)


def test_fast_bound_is_below_a_hundredth_of_a_hu_for_ct():
    assert nb.fast_bound(4095, 1.0, 4095 + 1024) < 0.01
    assert nb.fast_bound(4095, 1.0) < 0.01


def test_backend_declares_fast_precision():
    from gpukit.backends import codes

    assert get_backend("numba").has(codes.FAST_PRECISION)
    assert not get_backend("numpy").has(codes.FAST_PRECISION)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(MODES), interp=st.sampled_from(["linear", "nearest"]),
       dtype=st.sampled_from([np.int16, np.uint16, np.uint8, np.int8]), per_slice=st.booleans())
def test_fast_within_bound_of_reference_random(seed, mode, interp, dtype, per_slice):
    data, slopes, intercepts, A, b, grid = _random_case(seed, dtype, per_slice)
    ref = _run(npr.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp)
    exact = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp, precision="exact")
    fast = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp, precision="fast")
    np.testing.assert_array_equal(exact, ref)
    _check(fast, ref, interp, _bound(data, slopes, intercepts))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["max", "min"]),
       interp=st.sampled_from(["linear", "nearest"]), per_slice=st.booleans())
def test_fast_brick_skipping_within_bound(seed, mode, interp, per_slice):
    """Long rays (>= BRICK_MIN_STEPS) through a 20^3 volume with bright spots: skipping changes nothing."""
    rng = np.random.default_rng(seed)
    data, slopes, intercepts, A, b, _ = _random_case(seed, np.int16, per_slice, shape=(18, 21, 20))
    data = (data // 16).astype(np.int16)
    data[tuple(rng.integers(0, 18, (3, 6)))] = 4000          # isolated bright / dark voxels
    data[tuple(rng.integers(0, 18, (3, 6)))] = -4000
    grid = (40, 9, 11)
    A = A * 0.7
    b = (np.array(data.shape[::-1]) - 1) / 2.0 - A @ ((np.array(grid[::-1]) - 1) / 2.0)
    bricks = nb.brick_extrema(data, slopes, intercepts)
    ref = _run(npr.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp)
    fast = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp, precision="fast", bricks=bricks)
    _check(fast, ref, interp, _bound(data, slopes, intercepts))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), interp=st.sampled_from(["linear", "nearest"]), per_slice=st.booleans())
def test_fast_bricked_layout_within_bound(seed, interp, per_slice):
    data, slopes, intercepts, A, b, grid = _random_case(seed, np.int16, per_slice)
    ref = _run(npr.sample_grid, data, slopes, intercepts, A, b, grid, "none", interp)
    out = np.empty(grid, np.float32)
    nb.sample_grid_bricked(nb.to_bricks(data), data.shape, slopes, intercepts, A, b, grid, interp, FILL, out,
                           precision="fast")
    _check(out, ref, interp, _bound(data, slopes, intercepts))


def test_fast_wide_rows_and_tiles():
    """Grids larger than one fast tile in every direction (several tiles, partial tiles, clipped rows)."""
    data, slopes, intercepts, A, b, _ = _random_case(7, np.int16, True, shape=(23, 37, 41))
    grid = (19, 70, 150)
    A = A * 0.35
    b = (np.array(data.shape[::-1]) - 1) / 2.0 - A @ ((np.array(grid[::-1]) - 1) / 2.0)
    bound = _bound(data, slopes, intercepts)
    for mode in MODES:
        for interp in ("linear", "nearest"):
            ref = _run(npr.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp)
            fast = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp, precision="fast")
            _check(fast, ref, interp, bound)


def test_float_volumes_run_exact():
    data, slopes, intercepts, A, b, grid = _random_case(3, np.int16, False)
    data = data.astype(np.float32)
    assert not nb.fast_applies(data)
    ref = _run(npr.sample_grid, data, slopes, intercepts, A, b, grid, "none", "linear")
    fast = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, "none", "linear", precision="fast")
    np.testing.assert_array_equal(fast, ref)


# -- ops -----------------------------------------------------------------------------------------------------------
def _small_volume(per_slice=True, seed=5):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3000, (12, 24, 20)).astype(np.int16)
    data[:, 8:16, 6:14] += 900
    aff = np.array([[0.7, 0.05, 0.0, -10.0], [0.0, 0.8, 0.3, 4.0], [0.02, 0.0, 2.0, 7.0], [0, 0, 0, 1]])
    slopes = np.linspace(0.9, 1.1, 12) if per_slice else 1.0
    return Volume(data, aff, {"rescale_slope": slopes, "rescale_intercept": -1024.0, "modality": "CT"})


def _vol_bound(vol):
    return _bound(vol.data, np.asarray(vol.slopes, float), np.asarray(vol.intercepts, float))


@pytest.mark.parametrize("per_slice", [False, True])
def test_ops_default_to_fast_and_take_exact(per_slice):
    vol = _small_volume(per_slice)
    plane = Plane.rotated(vol, (20, 30, 15), shape=(17, 19))
    bound = _vol_bound(vol)
    calls = {
        "reslice": lambda **kw: gpukit.reslice(vol, plane, **kw),
        "reslice nearest": lambda **kw: gpukit.reslice(vol, plane, interp="nearest", **kw),
        "resample": lambda **kw: gpukit.resample(vol, np.diag([1.1, 1.2, 1.5, 1.0]), (6, 9, 8), **kw).data,
        "slab": lambda **kw: gpukit.project(vol, plane, mode="max", thickness_mm=6.0, **kw),
        "full mip": lambda **kw: gpukit.project(vol, plane, mode="max", **kw),
        "minip": lambda **kw: gpukit.project(vol, plane, mode="min", **kw),
        "avg": lambda **kw: gpukit.project(vol, plane, mode="mean", **kw),
        "rotating": lambda **kw: gpukit.rotating_mip(vol, 3, shape=(10, 12), **kw),
    }
    for name, fn in calls.items():
        ref = fn(backend="numpy")
        exact = fn(backend="numba", precision="exact")
        fast = fn(backend="numba")
        fast2 = fn(backend="numba", precision="fast")
        np.testing.assert_array_equal(exact, ref, err_msg=name)
        np.testing.assert_array_equal(fast, fast2, err_msg=name)
        if "nearest" in name:
            np.testing.assert_array_equal(fast, ref, err_msg=name)
        else:
            assert np.abs(fast.astype(np.float64) - ref).max() <= bound, name


@pytest.mark.parametrize("layout", ["bricked", "plain"])
def test_reslicer_precision(layout):
    vol = _small_volume()
    plane = Plane.rotated(vol, (10, -25, 40), shape=(15, 16))
    ref = gpukit.reslice(vol, plane, backend="numpy")
    fast = gpukit.Reslicer(vol, backend="numba", layout=layout)
    exact = gpukit.Reslicer(vol, backend="numba", layout=layout, precision="exact")
    assert fast.precision == "fast" and exact.precision == "exact"
    np.testing.assert_array_equal(exact.reslice(plane), ref)
    assert np.abs(fast.reslice(plane).astype(np.float64) - ref).max() <= _vol_bound(vol)


def test_fused_window_off_by_at_most_one():
    vol = _small_volume()
    rng = np.random.default_rng(2)
    for _ in range(5):
        plane = Plane.rotated(vol, rng.uniform(-60, 60, 3), shape=(21, 23))
        for window in ((40, 400), (300, 1500), (-600, 3)):
            ref = gpukit.reslice(vol, plane, window=window, backend="numpy")
            fast = gpukit.reslice(vol, plane, window=window, backend="numba")
            exact = gpukit.reslice(vol, plane, window=window, backend="numba", precision="exact")
            assert fast.dtype == np.uint8
            np.testing.assert_array_equal(exact, ref)
            assert np.abs(fast.astype(int) - ref.astype(int)).max() <= 1
        rs = gpukit.Reslicer(vol, backend="numba", window=(40, 400))
        ref = gpukit.reslice(vol, plane, window=(40, 400), backend="numpy")
        assert np.abs(rs.reslice(plane).astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("bad", ["float32", "", None, 1, "EXACT"])
def test_precision_is_validated(bad):
    vol = _small_volume()
    plane = Plane.axial(vol)
    for fn in (lambda: gpukit.reslice(vol, plane, precision=bad),
               lambda: gpukit.resample(vol, np.eye(4), (2, 2, 2), precision=bad),
               lambda: gpukit.project(vol, plane, precision=bad),
               lambda: gpukit.rotating_mip(vol, 2, precision=bad),
               lambda: gpukit.Reslicer(vol, backend="numpy", precision=bad)):
        with pytest.raises(InvalidParameterError):
            fn()


def test_numpy_backend_ignores_fast():
    """A backend without the FAST_PRECISION capability computes "exact" either way."""
    vol = _small_volume()
    plane = Plane.rotated(vol, (5, 10, 15), shape=(9, 9))
    np.testing.assert_array_equal(gpukit.reslice(vol, plane, backend="numpy", precision="fast"),
                                  gpukit.reslice(vol, plane, backend="numpy", precision="exact"))


# -- the real CT ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ct():
    folder = data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020")
    return gpukit.load(folder)


def _ct_bound(vol):
    return _vol_bound(vol)


def test_real_ct_reslice_and_resample(ct):
    bound = _ct_bound(ct)
    assert bound < 0.02      # uint16 stored values up to ~4095 + offset: a few thousandths of a HU
    plane = Plane.rotated(ct, (20, 30, 15), shape=(256, 256), spacing=0.9)
    ref = gpukit.reslice(ct, plane, backend="numpy")
    fast = gpukit.reslice(ct, plane, backend="numba")
    assert np.abs(fast.astype(np.float64) - ref).max() <= bound
    np.testing.assert_array_equal(gpukit.reslice(ct, plane, backend="numba", interp="nearest"),
                                  gpukit.reslice(ct, plane, backend="numpy", interp="nearest"))
    rs = gpukit.Reslicer(ct, backend="numba")
    assert rs.layout == "plain"             # int16 at the fast precision: the paired reads beat the bricks
    assert np.abs(rs.reslice(plane).astype(np.float64) - ref).max() <= bound
    rs = gpukit.Reslicer(ct, backend="numba", layout="bricked")
    assert np.abs(rs.reslice(plane).astype(np.float64) - ref).max() <= bound
    assert gpukit.Reslicer(ct, backend="numba", precision="exact").layout == "bricked"
    grid = plane.grid_affine(24, 2.0)
    ref3 = gpukit.resample(ct, grid, (24, 64, 64), backend="numba", precision="exact").data
    fast3 = gpukit.resample(ct, grid, (24, 64, 64), backend="numba").data
    assert np.abs(fast3.astype(np.float64) - ref3).max() <= bound


@pytest.mark.parametrize("mode", ["max", "min", "mean"])
def test_real_ct_projections(ct, mode):
    bound = _ct_bound(ct)
    plane = Plane.rotated(ct, (20, 30, 15), shape=(96, 96), spacing=2.0)
    for thickness in (10.0, None):
        exact = gpukit.project(ct, plane, mode=mode, thickness_mm=thickness, backend="numba", precision="exact")
        fast = gpukit.project(ct, plane, mode=mode, thickness_mm=thickness, backend="numba")
        assert np.abs(fast.astype(np.float64) - exact).max() <= bound, thickness
        fastn = gpukit.project(ct, plane, mode=mode, thickness_mm=thickness, interp="nearest", backend="numba")
        exactn = gpukit.project(ct, plane, mode=mode, thickness_mm=thickness, interp="nearest", backend="numba",
                                precision="exact")
        np.testing.assert_array_equal(fastn, exactn)
    ref = gpukit.project(ct, plane, mode=mode, thickness_mm=10.0, backend="numpy")
    fast = gpukit.project(ct, plane, mode=mode, thickness_mm=10.0, backend="numba")
    assert np.abs(fast.astype(np.float64) - ref).max() <= bound


def test_real_ct_rotating_mip(ct):
    exact = gpukit.rotating_mip(ct, 3, shape=(80, 120), spacing=2.0, backend="numba", precision="exact")
    fast = gpukit.rotating_mip(ct, 3, shape=(80, 120), spacing=2.0, backend="numba")
    assert np.abs(fast.astype(np.float64) - exact).max() <= _ct_bound(ct)


def test_real_ct_window(ct):
    plane = Plane.rotated(ct, (0, 40, 10), shape=(128, 128), spacing=1.5)
    ref = gpukit.reslice(ct, plane, window=(40, 400), backend="numpy")
    fast = gpukit.reslice(ct, plane, window=(40, 400), backend="numba")
    assert np.abs(fast.astype(int) - ref.astype(int)).max() <= 1


def test_shared_one_sample_fast_helper_matches_the_kernels():
    """``_sampler_math._linear_fast`` (the one-sample form the Numba CUDA kernels can call) gives the CPU fast
    kernels' values."""
    from gpukit.backends._sampler_math import _linear_fast

    data, slopes, intercepts, A, b, grid = _random_case(11, np.int16, True, shape=(5, 6, 7))
    fast = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, "none", "linear", precision="fast")
    flat = data.ravel()
    nz, ny, nx = data.shape
    eps = 1e-6
    for s in range(grid[0]):
        for r in range(grid[1]):
            for c in range(grid[2]):
                x, y, z = (A[i, 0] * c + A[i, 1] * r + A[i, 2] * s + b[i] for i in range(3))
                if -eps <= x <= nx - 1 + eps and -eps <= y <= ny - 1 + eps and -eps <= z <= nz - 1 + eps:
                    v = _linear_fast(flat, nx, ny, nz, slopes, intercepts, False, x, y, z)
                    assert np.float32(v) == fast[s, r, c]


# -- slice-order projection (rotation about the slice normal) ----------------------------------------------------
def _slice_case(seed, dtype, per_slice):
    """A random case whose index map has the slice-order form: z from the row only, x and y from (c, s) only."""
    data, slopes, intercepts, _, _, _ = _random_case(seed, dtype, per_slice)
    rng = np.random.default_rng(seed + 99)
    nz, ny, nx = data.shape
    th = rng.uniform(-np.pi, np.pi)
    sc = rng.uniform(0.4, 1.6)
    A = np.array([[np.cos(th) * sc, 0.0, -np.sin(th) * sc],
                  [np.sin(th) * sc, 0.0, np.cos(th) * sc],
                  [0.0, rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.3), 0.0]])
    grid = (int(rng.integers(1, 40)), int(rng.integers(1, 12)), int(rng.integers(1, 90)))
    centre = (np.array(data.shape[::-1]) - 1) / 2.0
    b = centre - A @ ((np.array(grid[::-1]) - 1) / 2.0) + rng.uniform(-1.5, 1.5, 3)
    if rng.random() < 0.3:      # rows exactly on slices (fz = 0), and on the last slice
        A[2, 1] = -1.0 if nz > 1 else 0.0
        b[2] = nz - 1.0
    return data, slopes, intercepts, A, b, grid


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["max", "min", "mean"]),
       interp=st.sampled_from(["linear", "nearest"]), dtype=st.sampled_from([np.int16, np.uint16, np.uint8, np.int8]),
       per_slice=st.booleans())
def test_slice_order_equals_ray_order_random(seed, mode, interp, dtype, per_slice):
    """Projections along a direction inside the slices (rows along the slice normal): the slice-order kernel is the
    ray-order fast kernel bit for bit (z is constant along each ray, so trilinear = per-slice bilinear blends,
    then the z blend), hence within the fast bound of the reference (nearest: equal to it)."""
    data, slopes, intercepts, A, b, grid = _slice_case(seed, dtype, per_slice)
    assert nb.slice_order_applies(A, gpukit.backends.codes.MODES[mode])
    ref = _run(npr.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp)
    assert nb.SLICE_ORDER
    sliced = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp, precision="fast")
    nb.SLICE_ORDER = False
    try:
        ray = _run(nb.sample_grid, data, slopes, intercepts, A, b, grid, mode, interp, precision="fast")
    finally:
        nb.SLICE_ORDER = True
    np.testing.assert_array_equal(sliced, ray)
    _check(sliced, ref, interp, _bound(data, slopes, intercepts))


def test_slice_order_applies_only_to_its_form():
    A = np.array([[0.8, 0.0, -0.6], [0.6, 0.0, 0.8], [0.0, -0.5, 0.0]])
    assert nb.slice_order_applies(A, nb.MODE_MAX) and nb.slice_order_applies(A, nb.MODE_MEAN)
    assert not nb.slice_order_applies(A, nb.MODE_NONE)
    for i, j in ((2, 0), (2, 2), (0, 1), (1, 1)):
        B = A.copy()
        B[i, j] = 1e-12
        assert not nb.slice_order_applies(B, nb.MODE_MAX)


def _axial_volume(per_slice, seed=3):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3000, (9, 26, 22)).astype(np.int16)
    data[:, 8:16, 6:14] += 900
    aff = np.array([[0.7, 0.0, 0.0, -10.0], [0.0, 0.7, 0.0, 4.0], [0.0, 0.0, 1.5, 7.0], [0, 0, 0, 1]])
    slopes = np.linspace(0.9, 1.1, 9) if per_slice else 1.0
    return Volume(data, aff, {"rescale_slope": slopes, "rescale_intercept": -1024.0, "modality": "CT"})


@pytest.mark.parametrize("per_slice", [False, True])
@pytest.mark.parametrize("mode", ["max", "min", "mean"])
def test_rotating_mip_slice_order(per_slice, mode, monkeypatch):
    """rotating_mip about z of an axial volume runs slice order: equal to ray order, within the bound of numpy."""
    vol = _axial_volume(per_slice)
    seen = []
    real = nb._project_slices_kernel

    def spy(*args):
        seen.append(1)
        return real(*args)

    monkeypatch.setattr(nb, "_project_slices_kernel", spy)
    for interp in ("linear", "nearest"):
        ref = gpukit.rotating_mip(vol, 5, mode=mode, interp=interp, backend="numpy")
        sliced = gpukit.rotating_mip(vol, 5, mode=mode, interp=interp, backend="numba")
        assert len(seen) == 5
        seen.clear()
        monkeypatch.setattr(nb, "SLICE_ORDER", False)
        ray = gpukit.rotating_mip(vol, 5, mode=mode, interp=interp, backend="numba")
        monkeypatch.setattr(nb, "SLICE_ORDER", True)
        assert not seen
        np.testing.assert_array_equal(sliced, ray)
        if interp == "nearest":
            np.testing.assert_array_equal(sliced, ref)
        else:
            assert np.abs(sliced.astype(np.float64) - ref).max() <= _vol_bound(vol)


def test_real_ct_rotating_mip_slice_order(ct, monkeypatch):
    """The real axial CT: every rotating_mip frame about z is slice order, equal to ray order bit for bit."""
    sliced = gpukit.rotating_mip(ct, 4, shape=(70, 150), spacing=1.7, backend="numba")
    exact = gpukit.rotating_mip(ct, 4, shape=(70, 150), spacing=1.7, backend="numba", precision="exact")
    monkeypatch.setattr(nb, "SLICE_ORDER", False)
    ray = gpukit.rotating_mip(ct, 4, shape=(70, 150), spacing=1.7, backend="numba")
    np.testing.assert_array_equal(sliced, ray)
    assert np.abs(sliced.astype(np.float64) - exact).max() <= _ct_bound(ct)
