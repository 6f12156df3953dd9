"""The geometric sampler (reslice, resample, slab, MIP) against independent oracles and across backends.

Oracles: ``scipy.ndimage.map_coordinates`` (order 1 and 0) on the rescaled
volume at coordinates computed here from first principles (pixel position ->
LPS -> ``inv(volume.affine)``), SimpleITK's ``ResampleImageFilter``, the
array's own slices and cross-sections, and the invariants of projections.

Tolerances (float32 outputs, values up to a few thousand HU):

* numpy vs map_coordinates / SimpleITK: ``1e-4`` relative to the largest
  |HU| of the volume (float32 output rounding is ~6e-8 relative; an
  interpolation bug moves values by whole percents).
* numba vs numpy: the same float64 expressions are evaluated in the same
  order, so values agree to float32 rounding: ``1e-6`` relative to the
  largest |HU|; outside points and empty rays must be the fill in both.
* slices, cross-sections and one-slice slabs: exact.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy import ndimage

import gpukit
from gpukit import Plane, Volume
from gpukit.backends import get_backend
from gpukit.backends.numba import sampler as nb_sampler
from gpukit.backends.numba import axis as nb_axis
from gpukit.backends.numpy import sampler as np_sampler
from gpukit.ops.intensity import rescale
from gpukit.ops.sampling import index_map
from gpukit.planes import rotation_matrix

from conftest import data_path, host

BACKENDS = ["numpy", "numba"]
FILL = -4321.5          # a fill that no voxel of the test volumes takes
HYP = settings(derandomize=True, deadline=None, max_examples=25,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- helpers -------------------------------------------------------------------------------------------------------
def random_affine(rng, shear: bool = True, scale=(0.4, 2.0)) -> np.ndarray:
    """A 4x4 index -> LPS affine: random rotation, per-axis scale, optional shear, translation."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    S = np.diag(rng.uniform(*scale, size=3))
    H = np.eye(3)
    if shear:
        H[0, 1], H[0, 2], H[1, 2] = rng.uniform(-0.4, 0.4, size=3)
    aff = np.eye(4)
    aff[:3, :3] = R @ H @ S
    aff[:3, 3] = rng.uniform(-50, 50, size=3)
    return aff


def random_volume(rng, shape=None, *, shear=True, per_slice=False, dtype=np.int16, affine=None) -> Volume:
    if shape is None:
        shape = tuple(int(n) for n in rng.integers(2, 11, size=3))
    if np.dtype(dtype).kind == "f":
        data = rng.normal(0, 300, size=shape).astype(dtype)
    else:
        data = rng.integers(0, 3000, size=shape).astype(dtype)
    nz = shape[0]
    slopes = rng.uniform(0.5, 2.0, nz) if per_slice else 1.0
    intercepts = rng.uniform(-1100, -900, nz) if per_slice else -1024.0
    aff = random_affine(rng, shear) if affine is None else affine
    return Volume(data, aff, {"rescale_slope": slopes, "rescale_intercept": intercepts})


def hu64(vol: Volume) -> np.ndarray:
    return vol.data.astype(np.float64) * vol.slopes[:, None, None] + vol.intercepts[:, None, None]


def random_plane(rng, vol: Volume, shape=None) -> Plane:
    """An oblique plane through a point near the volume's centre, random normal and up."""
    size = np.abs(vol.affine[:3, :3]).sum(axis=1) * np.array(vol.shape[::-1])
    center = vol.center + rng.uniform(-0.25, 0.25, size=3) * size
    normal = rng.normal(size=3)
    up = rng.normal(size=3)
    if shape is None:
        shape = tuple(int(n) for n in rng.integers(3, 14, size=2))
    spacing = tuple(rng.uniform(0.3, 1.5, size=2))
    return Plane.oblique(center, normal, up, shape, spacing)


def grid_indices(vol: Volume, plane: Plane, offsets_mm=(0.0,)) -> np.ndarray:
    """Continuous (i, j, k) of the plane's pixels (and copies along the normal), from first principles.

    Returns shape (len(offsets), nrows, ncols, 3).
    """
    nr, nc = plane.shape
    dv, du = plane.spacing
    r, c = np.meshgrid(np.arange(nr), np.arange(nc), indexing="ij")
    pts = []
    for off in offsets_mm:
        p = (plane.center + ((c - (nc - 1) / 2) * du)[..., None] * plane.u
             + ((r - (nr - 1) / 2) * dv)[..., None] * plane.v + off * plane.normal)
        pts.append(p)
    pts = np.stack(pts)
    inv = np.linalg.inv(vol.affine)
    return pts @ inv[:3, :3].T + inv[:3, 3]


def inside_masks(ijk: np.ndarray, shape, margin=1e-4):
    """(surely inside, surely outside) with a margin around the boundary (the EPS band is not judged here)."""
    n = np.array(shape[::-1], dtype=np.float64) - 1
    surely_in = np.all((ijk >= margin) & (ijk <= n - margin), axis=-1)
    surely_out = np.any((ijk < -margin) | (ijk > n + margin), axis=-1)
    return surely_in, surely_out


def mapc(volume_hu: np.ndarray, ijk: np.ndarray, order: int) -> np.ndarray:
    coords = np.stack([ijk[..., 2], ijk[..., 1], ijk[..., 0]])
    out = ndimage.map_coordinates(volume_hu, coords.reshape(3, -1), order=order, mode="nearest")
    return out.reshape(ijk.shape[:-1])


def tol(vol: Volume, rel: float) -> float:
    return rel * float(np.abs(hu64(vol)).max())


# -- numpy reference vs independent oracles ----------------------------------------------------------------------
@HYP
@given(seed=st.integers(0, 2**32 - 1), per_slice=st.booleans(), shear=st.booleans())
def test_numpy_linear_reslice_matches_map_coordinates(seed, per_slice, shear):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, shear=shear, per_slice=per_slice)
    plane = random_plane(rng, vol)
    got = gpukit.reslice(vol, plane, fill=FILL, backend="numpy")
    ijk = grid_indices(vol, plane)[0]
    sin, sout = inside_masks(ijk, vol.shape)
    want = mapc(hu64(vol), ijk, order=1)
    np.testing.assert_allclose(got[sin], want[sin], rtol=0, atol=tol(vol, 1e-4))
    assert np.all(got[sout] == np.float32(FILL))


@HYP
@given(seed=st.integers(0, 2**32 - 1), per_slice=st.booleans())
def test_numpy_nearest_reslice_matches_map_coordinates_order0(seed, per_slice):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, per_slice=per_slice)
    plane = random_plane(rng, vol)
    got = gpukit.reslice(vol, plane, interp="nearest", fill=FILL, backend="numpy")
    ijk = grid_indices(vol, plane)[0]
    sin, sout = inside_masks(ijk, vol.shape)
    frac = ijk - np.floor(ijk)
    no_tie = np.all(np.abs(frac - 0.5) > 1e-6, axis=-1)
    want = mapc(hu64(vol), ijk, order=0)
    m = sin & no_tie
    np.testing.assert_allclose(got[m], want[m], rtol=0, atol=tol(vol, 1e-6))
    assert np.all(got[sout] == np.float32(FILL))


def test_nearest_rounds_half_up():
    vol = Volume(np.arange(4, dtype=np.int16).reshape(1, 1, 4), np.eye(4))
    # output column c at index x = c - 0.5: ties go up
    out = gpukit.resample(vol, np.array([[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.]]), (1, 1, 3),
                          interp="nearest", backend="numpy")
    np.testing.assert_array_equal(out.data[0, 0], [1, 2, 3])


@HYP
@given(seed=st.integers(0, 2**32 - 1), per_slice=st.booleans())
def test_numpy_resample_matches_map_coordinates(seed, per_slice):
    """Random sheared source, random rotated/scaled/sheared output grid."""
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, per_slice=per_slice)
    out_aff = random_affine(rng, shear=True, scale=(0.3, 1.5))
    # put the output grid's centre near the volume's centre
    shape = tuple(int(n) for n in rng.integers(2, 8, size=3))
    centre_idx = (np.array(shape[::-1]) - 1) / 2
    out_aff[:3, 3] = vol.center - out_aff[:3, :3] @ centre_idx + rng.uniform(-2, 2, size=3)
    res = gpukit.resample(vol, out_aff, shape, fill=FILL, backend="numpy")
    assert isinstance(res, Volume) and res.data.shape == shape and res.data.dtype == np.float32
    np.testing.assert_array_equal(res.affine, out_aff)
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    pts = np.stack([i, j, k], -1) @ out_aff[:3, :3].T + out_aff[:3, 3]
    inv = np.linalg.inv(vol.affine)
    ijk = pts @ inv[:3, :3].T + inv[:3, 3]
    sin, sout = inside_masks(ijk, vol.shape)
    want = mapc(hu64(vol), ijk, order=1)
    np.testing.assert_allclose(res.data[sin], want[sin], rtol=0, atol=tol(vol, 1e-4))
    assert np.all(res.data[sout] == np.float32(FILL))


# -- numba vs numpy ---------------------------------------------------------------------------------------------
def _sample(backend, vol, A, b, grid, mode, interp, fill, **kw):
    be = get_backend(backend)
    out = np.empty(grid if mode == "none" else grid[1:], np.float32)
    return be.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill, out, **kw)


def _assert_backends_agree(vol, A, b, grid, mode, interp, fill=FILL, rel=1e-6):
    """numba (plain march, and with empty-space skipping for max/min) against the numpy reference."""
    ref = _sample("numpy", vol, A, b, grid, mode, interp, fill)
    runs = [_sample("numba", vol, A, b, grid, mode, interp, fill)]
    if mode in ("max", "min") and grid[0] >= nb_sampler.BRICK_MIN_STEPS:
        runs.append(_sample("numba", vol, A, b, grid, mode, interp, fill,
                            bricks=nb_sampler.brick_extrema(vol.data, vol.slopes, vol.intercepts)))
    for got in runs:
        np.testing.assert_array_equal(ref == np.float32(fill), got == np.float32(fill))
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol(vol, rel))
    return ref


@HYP
@given(seed=st.integers(0, 2**32 - 1), per_slice=st.booleans(), mode=st.sampled_from(["none", "max", "min", "mean"]),
       interp=st.sampled_from(["linear", "nearest"]), dtype=st.sampled_from([np.int16, np.uint16, np.float32]))
def test_numba_matches_numpy_random_grids(seed, per_slice, mode, interp, dtype):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, per_slice=per_slice, dtype=dtype)
    plane = random_plane(rng, vol, shape=tuple(int(n) for n in rng.integers(1, 40, size=2)))
    ns = int(rng.integers(1, 40))
    A, b = index_map(vol.affine, plane.grid_affine(ns, float(rng.uniform(0.2, 1.0))))
    ref = _assert_backends_agree(vol, A, b, (ns, *plane.shape), mode, interp)
    assert np.isfinite(ref).all()


@pytest.mark.parametrize("mode", ["none", "max", "min", "mean"])
@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_numba_matches_numpy_multi_block(mode, interp, monkeypatch):
    """Grids spanning several numpy blocks and several numba tiles (sizes not multiples of the tile)."""
    monkeypatch.setattr(np_sampler, "BLOCK", 97)
    rng = np.random.default_rng(7)
    vol = random_volume(rng, (21, 17, 27), per_slice=True)     # several 8^3 bricks, partial ones at the ends
    vol.meta["rescale_slope"][3] = -1.0                         # a negative slope: brick max from the stored min
    plane = Plane.rotated(vol, (25, -40, 70), shape=(37, 41), spacing=0.6)
    A, b = index_map(vol.affine, plane.grid_affine(35, 0.5))
    ref = _assert_backends_agree(vol, A, b, (35, 37, 41), mode, interp)
    assert (ref == np.float32(FILL)).any() and (ref != np.float32(FILL)).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_boundary_rule_eps(backend):
    """Inside means 0 <= index <= n - 1 within EPS = 1e-6 voxel; just inside reads the edge voxel, beyond gives fill."""
    rng = np.random.default_rng(3)
    vol = random_volume(rng, (4, 5, 6), affine=np.eye(4))
    hu = hu64(vol)
    be = get_backend(backend)
    for z, expect in [(3 + 5e-7, hu[3]), (3.0, hu[3]), (-5e-7, hu[0]), (3 + 2e-6, None), (-2e-6, None)]:
        A = np.eye(3)
        b = np.array([0.0, 0.0, z])
        for mode in ("none", "max", "mean"):
            out = np.empty((1, 5, 6) if mode == "none" else (5, 6), np.float32)
            be.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, (1, 5, 6), mode, "linear", FILL, out)
            out = out.reshape(5, 6)
            if expect is None:
                assert np.all(out == np.float32(FILL)), (z, mode)
            else:
                np.testing.assert_allclose(out, expect, atol=1e-2)
    # a ray that crosses the volume: outside samples are skipped, not counted
    A = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    b = np.array([0.0, 0.0, -3.0])          # s = 0..9 -> k = -3..6: only k = 0..3 inside
    out = np.empty((5, 6), np.float32)
    be.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, (10, 5, 6), "mean", "linear", FILL, out)
    np.testing.assert_allclose(out, hu.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rays_missing_the_volume_give_fill(backend):
    vol = random_volume(np.random.default_rng(4), (5, 6, 7), affine=np.eye(4))
    far = Plane(np.array([100.0, 100, 100]), [1, 0, 0], [0, 1, 0], (4, 4))
    for mode in ("max", "min", "mean"):
        got = gpukit.project(vol, far, mode=mode, thickness_mm=3, fill=FILL, backend=backend)
        assert np.all(got == np.float32(FILL))
    assert np.all(gpukit.reslice(vol, far, fill=FILL, backend=backend) == np.float32(FILL))
    # default fill: the lowest rescaled value of the volume (air)
    assert np.all(gpukit.reslice(vol, far, backend=backend) == np.float32(hu64(vol).min()))


def test_brick_extrema_are_the_extremes_of_each_bricks_readable_voxels():
    rng = np.random.default_rng(20)
    vol = random_volume(rng, (17, 9, 20), per_slice=True)
    vol.meta["rescale_slope"][5] = -0.5
    hu = hu64(vol)
    bmax, bmin = nb_sampler.brick_extrema(vol.data, vol.slopes, vol.intercepts)
    assert bmax.shape == (3, 2, 3)
    for bk, bj, bi in np.ndindex(bmax.shape):
        blk = hu[8 * bk:8 * bk + 9, 8 * bj:8 * bj + 9, 8 * bi:8 * bi + 9]
        assert bmax[bk, bj, bi] == blk.max() and bmin[bk, bj, bi] == blk.min()


@HYP
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["max", "min"]),
       interp=st.sampled_from(["linear", "nearest"]))
def test_empty_space_skipping_never_misses_an_isolated_voxel(seed, mode, interp):
    """Constant background with a few bright (or dark) voxels: bricks are skipped right up to each of them."""
    rng = np.random.default_rng(seed)
    data = np.full((19, 18, 21), 1000, np.int16)
    for _ in range(8):
        data[tuple(rng.integers(0, data.shape))] = rng.integers(1500, 3000) if mode == "max" else rng.integers(0, 500)
    aligned = rng.random() < 0.5
    vol = Volume(data, np.eye(4) if aligned else random_affine(rng, scale=(0.8, 1.2)), {"rescale_intercept": -1024.0})
    if aligned:   # rays along an array axis, one sample per voxel: every bright voxel is hit exactly
        plane = Plane.axial(vol) if rng.random() < 0.5 else Plane.coronal(vol)
        step = 1.0
    else:
        plane = random_plane(rng, vol, shape=(25, 27))
        step = float(rng.uniform(0.3, 1.0))
    A, b = index_map(vol.affine, plane.grid_affine(40, step))
    _assert_backends_agree(vol, A, b, (40, *plane.shape), mode, interp)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_empty_space_skipping_on_structured_data(mode):
    """A CT-like phantom (large uniform regions: most bricks skipped) gives the plain march's result."""
    from gpukit.testing import phantom

    hu = phantom((24, 40, 36), seed=3)
    vol = Volume((hu + 1024).astype(np.int16), random_affine(np.random.default_rng(21), shear=True, scale=(0.8, 1.2)),
                 {"rescale_intercept": -1024.0})
    for angles in [(20, 30, 15), (0, 0, 0), (-70, 5, 40)]:
        plane = Plane.rotated(vol, angles, shape=(45, 50))
        a = gpukit.project(vol, plane, mode=mode, backend="numpy")
        b = gpukit.project(vol, plane, mode=mode, backend="numba")      # uses the cached bricks
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)


def test_caches_follow_the_data():
    from gpukit.ops import sampling

    vol = random_volume(np.random.default_rng(23), (20, 9, 10), affine=np.eye(4))
    far = Plane(np.array([100.0, 100, 100]), [1, 0, 0], [0, 1, 0], (2, 2))
    before = gpukit.reslice(vol, far, backend="numba")[0, 0]
    vol.data = vol.data.copy()
    vol.data[3, 4, 5] = -3000                       # a new array: seen without asking
    assert gpukit.reslice(vol, far, backend="numba")[0, 0] == np.float32(-3000 - 1024) != before
    vol.data[0, 0, 0] = -3100                       # in place: needs clear_caches
    sampling.clear_caches(vol)
    assert gpukit.reslice(vol, far, backend="numba")[0, 0] == np.float32(-3100 - 1024)
    plane = Plane.axial(vol, shape=(9, 10))
    mip = gpukit.project(vol, plane, backend="numba")  # builds and caches the brick grid
    vol.data[10, 4, 4] = 30000
    sampling.clear_caches(vol)
    assert gpukit.project(vol, plane, backend="numba")[4, 4] > mip.max()


# -- invariants ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mip_bounds_every_sample_on_the_ray(backend, seed):
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, (9, 10, 11), per_slice=bool(seed % 2))
    plane = random_plane(rng, vol, shape=(12, 13))
    thickness, step = 6.0, 0.5
    ns = int(np.floor(thickness / step + 1e-6)) + 1
    offsets = (np.arange(ns) - (ns - 1) / 2) * step
    ijk = grid_indices(vol, plane, offsets)
    sin, sout = inside_masks(ijk, vol.shape)
    samples = mapc(hu64(vol), ijk, order=1)
    for mode, fn in (("max", np.max), ("min", np.min)):
        got = gpukit.project(vol, plane, mode=mode, thickness_mm=thickness, step_mm=step, fill=FILL, backend=backend)
        any_in = sin.any(axis=0)
        vals = np.where(sin, samples, np.nan)
        t = tol(vol, 1e-4)
        if mode == "max":
            assert np.all(got[None] >= np.where(sin, samples, -np.inf) - t)
        else:
            assert np.all(got[None] <= np.where(sin, samples, np.inf) + t)
        # rays whose every sample is surely inside (or surely outside) equal the extreme of those samples
        clean = np.all(sin | sout, axis=0) & any_in
        want = (np.nanmax if mode == "max" else np.nanmin)(np.where(clean[None], vals, 0.0), axis=0)
        np.testing.assert_allclose(got[clean], want[clean], rtol=0, atol=t)
        assert np.all(got[np.all(sout, axis=0)] == np.float32(FILL))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["max", "min", "mean"])
def test_one_slice_slab_equals_reslice(backend, mode):
    rng = np.random.default_rng(11)
    vol = random_volume(rng, (8, 9, 10), per_slice=True)
    plane = random_plane(rng, vol, shape=(15, 16))
    a = gpukit.reslice(vol, plane, fill=FILL, backend=backend)
    b = gpukit.project(vol, plane, mode=mode, thickness_mm=0.0, fill=FILL, backend=backend)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_avgip_of_constant_volume_is_the_constant(backend, interp):
    rng = np.random.default_rng(5)
    vol = Volume(np.full((7, 8, 9), 7, np.int16), random_affine(rng), {"rescale_slope": 2.0, "rescale_intercept": -3.0})
    for angles in [(0, 0, 0), (30, 40, 50), (-80, 10, 5)]:
        plane = Plane.rotated(vol, angles, shape=(20, 20))
        got = gpukit.project(vol, plane, mode="mean", interp=interp, fill=FILL, backend=backend)
        hit = got != np.float32(FILL)
        assert hit.sum() > 50
        np.testing.assert_allclose(got[hit], 11.0, rtol=1e-6)


def axis_aligned_volume(rng, shape=(6, 7, 8), spacing=(0.7, 0.6, 1.5), per_slice=True, flip=(1, 1, 1),
                        origin=(-20.0, 13.0, 400.0), zeros=False) -> Volume:
    """``zeros``: HU exactly 0 next to 1976 everywhere, so a blend weight of 1e-15 would show in float32."""
    di, dj, dk = spacing
    aff = np.diag([di * flip[0], dj * flip[1], dk * flip[2], 1.0])
    aff[:3, 3] = origin
    vol = random_volume(rng, shape, per_slice=per_slice and not zeros, affine=aff)
    if zeros:
        vol.data = rng.choice(np.array([1024, 3000], np.int16), size=shape)
    return vol


#: an easy geometry (values exact in binary after the divisions) and an awkward one (0.1 + 0.2 style rounding)
GEOMETRIES = [dict(), dict(spacing=(0.3, 0.7, 1.1), origin=(-123.456, 78.9, -1017.3), zeros=True)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geom", range(len(GEOMETRIES)))
def test_axial_plane_through_slice_k_is_slice_k_exactly(backend, geom):
    vol = axis_aligned_volume(np.random.default_rng(6), **GEOMETRIES[geom])
    hu = rescale(vol).astype(np.float32)
    for k in range(vol.shape[0]):
        by_index = gpukit.reslice(vol, Plane.axial(vol, index=k), backend=backend)
        z = vol.index_to_world([0, 0, k])[2]
        by_pos = gpukit.reslice(vol, Plane.axial(vol, position_mm=z), backend=backend)
        np.testing.assert_array_equal(by_index, hu[k])
        np.testing.assert_array_equal(by_pos, hu[k])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geom", range(len(GEOMETRIES)))
def test_coronal_and_sagittal_reslices_are_array_cross_sections(backend, geom):
    vol = axis_aligned_volume(np.random.default_rng(8), **GEOMETRIES[geom])
    hu = rescale(vol).astype(np.float32)
    nz, ny, nx = vol.shape
    for j in range(ny):
        # rows run head -> feet (k descending), columns along +x (i ascending)
        np.testing.assert_array_equal(gpukit.reslice(vol, Plane.coronal(vol, index=j), backend=backend),
                                      hu[::-1, j, :])
    for i in range(nx):
        # columns along +y (j ascending), rows head -> feet
        np.testing.assert_array_equal(gpukit.reslice(vol, Plane.sagittal(vol, index=i), backend=backend),
                                      hu[::-1, :, i])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["max", "min", "mean"])
def test_axis_projections_equal_array_reductions(backend, mode):
    vol = axis_aligned_volume(np.random.default_rng(9), per_slice=False)
    hu = hu64(vol)
    fn = {"max": np.max, "min": np.min, "mean": np.mean}[mode]
    for axis in (0, 1, 2):
        np.testing.assert_allclose(gpukit.project(vol, axis, mode=mode, backend=backend), fn(hu, axis=axis),
                                   rtol=1e-6, atol=1e-3)
    # per-slice rescale and a negative slope take the rescale-on-the-way paths
    vol2 = axis_aligned_volume(np.random.default_rng(10), per_slice=True)
    vol2.meta["rescale_slope"][2] = -1.5
    hu2 = hu64(vol2)
    for axis in (0, 1, 2):
        np.testing.assert_allclose(gpukit.project(vol2, axis, mode=mode, backend=backend), fn(hu2, axis=axis),
                                   rtol=1e-6, atol=1e-3)
    # a centred slab of 3 slices
    got = gpukit.project(vol2, 0, mode=mode, thickness_mm=2 * vol2.spacing[0], backend=backend)
    np.testing.assert_allclose(got, fn(hu2[1:4], axis=0), rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flip", [(1, 1, 1), (-1, 1, -1), (1, -1, 1)])
def test_named_fast_path_equals_sampler_on_the_named_plane(backend, flip):
    """project(vol, 'axial') (array fast path, reoriented) == the sampler on Plane.axial stepping slice by slice."""
    vol = axis_aligned_volume(np.random.default_rng(12), flip=flip)
    for name, lps_axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        plane = getattr(Plane, name)(vol)
        step = abs(vol.affine[lps_axis, [0, 1, 2]]).max()
        for mode in ("max", "min", "mean"):
            fast = gpukit.project(vol, name, mode=mode, backend=backend)
            slow = gpukit.project(vol, plane, mode=mode, step_mm=step, backend=backend)
            assert fast.shape == plane.shape
            np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-3, err_msg=f"{name} {mode}")
    # a tilted volume takes the sampler path for names
    vol.affine[1, 2] = 0.3
    got = gpukit.project(vol, "axial", backend=backend)
    assert got.shape == Plane.axial(vol).shape


# -- dtypes, API -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_resample_output_dtypes(backend):
    rng = np.random.default_rng(13)
    vol = random_volume(rng, (5, 6, 7))
    aff = random_affine(rng)
    assert gpukit.resample(vol, aff, (3, 4, 5), backend=backend).data.dtype == np.float32
    assert gpukit.resample(vol, aff, (3, 4, 5), interp="nearest", backend=backend).data.dtype == np.int16
    assert gpukit.resample(vol, aff, (3, 4, 5), interp="nearest", fill=0.5, backend=backend).data.dtype == np.float32
    vol.meta["rescale_slope"] = np.full(5, 0.5)
    assert gpukit.resample(vol, aff, (3, 4, 5), interp="nearest", backend=backend).data.dtype == np.float32


def test_bad_arguments():
    vol = random_volume(np.random.default_rng(14), (3, 4, 5))
    with pytest.raises(ValueError, match="interp"):
        gpukit.reslice(vol, Plane.axial(vol), interp="cubic")
    with pytest.raises(ValueError, match="mode"):
        gpukit.project(vol, "axial", mode="median")
    with pytest.raises(TypeError, match="Plane"):
        gpukit.reslice(vol, "axial")
    with pytest.raises(ValueError, match="axis"):
        gpukit.project(vol, 3)
    with pytest.raises(ValueError, match="perpendicular"):
        Plane([0, 0, 0], [1, 0, 0], [1, 1, 0], (2, 2))
    with pytest.raises(ValueError, match="collinear"):
        Plane.from_points([0, 0, 0], [1, 1, 1], [2, 2, 2])
    with pytest.raises(ValueError, match="shape"):
        gpukit.resample(vol, np.eye(4), (2, 2))


def test_plane_conventions():
    vol = axis_aligned_volume(np.random.default_rng(15))
    ax, co, sa = Plane.axial(vol), Plane.coronal(vol), Plane.sagittal(vol)
    assert ax.iop() == [1, 0, 0, 0, 1, 0] and list(ax.normal) == [0, 0, 1]
    assert co.iop() == [1, 0, 0, 0, 0, -1] and list(co.normal) == [0, 1, 0]
    assert sa.iop() == [0, 1, 0, 0, 0, -1] and list(sa.normal) == [-1, 0, 0]
    np.testing.assert_allclose(Plane.rotated(vol, (-90, 0, 0)).u, co.u, atol=1e-12)
    np.testing.assert_allclose(Plane.rotated(vol, (-90, 0, 0)).v, co.v, atol=1e-12)
    ob = Plane.oblique([1, 2, 3], normal=[0, 0, 2], up=[0, -1, 0], shape=(4, 5), spacing=(0.5, 0.25))
    np.testing.assert_allclose([ob.u, ob.v], [ax.u, ax.v], atol=1e-12)
    np.testing.assert_allclose(ob.affine @ [2, 1.5, 0, 1], [1, 2, 3, 1])   # the centre pixel
    p = Plane.from_points([0, 0, 0], [10, 0, 0], [0, 10, 0])
    np.testing.assert_allclose(p.normal, [0, 0, 1]) and np.testing.assert_allclose(p.u, [1, 0, 0])
    # a slab grid is centred on the plane
    g = ax.grid_affine(5, 2.0)
    np.testing.assert_allclose((g @ [0, 0, 2, 1])[:3], ax.affine[:3, 3])


def test_reslicer_matches_reslice_and_reuses_buffers(backend):
    """Every backend (the conftest fixture, the device stand-in included): the Reslicer's planes equal the plain
    reslice on the same backend, and both equal the numpy reference."""
    rng = np.random.default_rng(16)
    vol = random_volume(rng, (9, 10, 11), per_slice=True).to(backend)
    rs = gpukit.Reslicer(vol)
    assert rs.latencies == []
    planes = [Plane.rotated(vol, rng.uniform(-90, 90, 3), shape=(12, 14)) for _ in range(4)]
    first = rs.reslice(planes[0])
    np.testing.assert_array_equal(host(first), host(gpukit.reslice(vol, planes[0])))
    second = rs.reslice(planes[1])
    assert first.shape == second.shape and np.shares_memory(host_view(first), host_view(second))   # reused buffer
    np.testing.assert_array_equal(host(second), host(gpukit.reslice(vol, planes[1])))
    np.testing.assert_allclose(host(second), gpukit.reslice(vol.to("numpy"), planes[1]), rtol=0,
                               atol=tol(vol.to("numpy"), 1e-6))
    assert len(rs.latencies) == 2 and rs.latency()["p99_s"] > 0
    win = gpukit.Reslicer(vol, window=(40, 400)).reslice(planes[2])
    assert win.dtype == np.uint8 and win.shape == (12, 14)
    np.testing.assert_array_equal(host(win), host(gpukit.reslice(vol, planes[2], window=(40, 400))))
    np.testing.assert_array_equal(host(win), gpukit.reslice(vol.to("numpy"), planes[2], window=(40, 400)))


def host_view(a):
    """The memory behind ``a`` without a copy (numpy itself; the stand-in's buffer): for sharing checks only."""
    from gpukit.backends import standin

    return standin.raw(a) if standin.is_device_array(a) else a


@pytest.mark.parametrize("backend, layout, window", [("numpy", "plain", None), ("numba", "plain", None),
                                                     ("numba", "bricked", None), ("numba", "plain", (40, 400)),
                                                     ("numba", "bricked", (40, 400)), ("cuda-host", "plain", None)])
def test_reslicer_from_four_threads_equals_single_threaded(backend, layout, window):
    """A server calls one Reslicer from several threads: 4 threads x 50 poses, every image as computed alone.

    Before per-thread buffers, calls with the same plane shape shared one buffer and 199 of 200 images were
    another thread's (no exception). Each thread checks its image right after its call, while the other
    threads keep writing, so a shared buffer is caught.
    """
    import threading

    rng = np.random.default_rng(40)
    vol = random_volume(rng, (24, 40, 36), per_slice=True)
    rs = gpukit.Reslicer(vol, backend=backend, layout=layout, window=window, fill=FILL)
    planes = [[random_plane(rng, vol, shape=(48, 40)) for _ in range(50)] for _ in range(4)]
    solo = gpukit.Reslicer(vol, backend=backend, layout=layout, window=window, fill=FILL)
    expected = [[host(solo.reslice(p)).copy() for p in ps] for ps in planes]
    wrong: list = []
    barrier = threading.Barrier(4)

    def work(t):
        barrier.wait()
        for n, p in enumerate(planes[t]):
            img = host(rs.reslice(p))
            if not np.array_equal(img, expected[t][n]):
                wrong.append((t, n))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wrong == [], f"{len(wrong)} of 200 planes were not the single-threaded result"
    assert len(rs.latencies) == 200
    assert len({float(np.abs(e).sum()) for ps in expected for e in ps}) > 150   # the poses differ


@pytest.mark.parametrize("interp", ["linear", "nearest"])
def test_bricked_reslicer_equals_numpy(interp):
    """The Reslicer's 4x4x4-bricked copy (forced on a small volume with sizes that are not multiples of 4)."""
    rng = np.random.default_rng(22)
    vol = random_volume(rng, (11, 13, 14), per_slice=True)
    rs = gpukit.Reslicer(vol, backend="numba", interp=interp, fill=FILL, layout="bricked")
    assert rs.layout == "bricked"
    for _ in range(5):
        plane = random_plane(rng, vol, shape=(23, 19))
        ref = gpukit.reslice(vol, plane, interp=interp, fill=FILL, backend="numpy")
        got = rs.reslice(plane)
        np.testing.assert_array_equal(ref == np.float32(FILL), got == np.float32(FILL))
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol(vol, 1e-6))
    # the bricked layout with the fused window stage: the same uint8 image as the two-pass numpy reference
    ws = gpukit.Reslicer(vol, backend="numba", interp=interp, fill=FILL, layout="bricked", window=(40, 400))
    for _ in range(3):
        plane = random_plane(rng, vol, shape=(23, 19))
        ref8 = gpukit.window(gpukit.reslice(vol, plane, interp=interp, fill=FILL, backend="numpy"), 40, 400,
                             backend="numpy")
        got8 = ws.reslice(plane)
        assert got8.dtype == np.uint8 and np.unique(ref8).size > 5
        np.testing.assert_array_equal(got8, ref8)
    assert gpukit.Reslicer(vol, backend="numba").layout == "plain"       # small: the plain layout is faster
    with pytest.raises(ValueError, match="bricked"):
        gpukit.Reslicer(vol, backend="numpy", layout="bricked")


def test_window_output_stage_is_dicom_linear():
    vol = Volume(np.array([[[0, 1000, 1040, 1064, 1200, 3000]]], np.int16), np.eye(4), {"rescale_intercept": -1024.0})
    plane = Plane([2.5, 0, 0], [1, 0, 0], [0, 1, 0], (1, 6))
    got = gpukit.reslice(vol, plane, window=(40, 80), backend="numpy")
    hu = np.array([-1024, -24, 16, 40, 176, 1976], np.float64)
    c, w = 40.0, 80.0
    want = np.clip(((hu - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)
    assert got.dtype == np.uint8
    np.testing.assert_allclose(got[0], want, atol=1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotating_mip_frames_are_projections_of_rotated_planes(backend):
    rng = np.random.default_rng(17)
    # odd rows and columns: voxel centres at whole steps from the centre, like the frames' pixels and ray samples
    vol = axis_aligned_volume(rng, shape=(8, 9, 11), spacing=(1.0, 1.0, 1.0), per_slice=False)
    frames = gpukit.rotating_mip(vol, 4, "z", backend=backend)
    assert frames.shape[0] == 4 and frames.dtype == np.float32
    # frame 0 looks from anterior: same view as a coronal MIP (patient left on the right, head at the top)
    cor = gpukit.project(vol, "coronal", backend=backend)
    nr, nc = frames.shape[1:]
    # the frame is centred on the volume and wider (bounding cylinder); compare the central crop
    r0, c0 = (nr - cor.shape[0]) // 2, (nc - cor.shape[1]) // 2
    assert (nr - cor.shape[0]) % 2 == 0 and (nc - cor.shape[1]) % 2 == 0
    np.testing.assert_allclose(frames[0, r0:r0 + cor.shape[0], c0:c0 + cor.shape[1]], cor, rtol=1e-6, atol=1e-3)
    # frame 1 (90 degrees about +z: u = +y, normal = -x) is the sagittal view, seen from the patient's left
    sag = gpukit.project(vol, "sagittal", backend=backend)
    r0, c0 = (nr - sag.shape[0]) // 2, (nc - sag.shape[1]) // 2
    np.testing.assert_allclose(frames[1, r0:r0 + sag.shape[0], c0:c0 + sag.shape[1]], sag, rtol=1e-6, atol=1e-3)
    # frame 2 looks from behind: the coronal MIP mirrored left-right
    np.testing.assert_allclose(frames[2, r0:r0 + cor.shape[0], (nc - cor.shape[1]) // 2:][:, :cor.shape[1]],
                               cor[:, ::-1], rtol=1e-6, atol=1e-3)


def test_import_gpukit_stays_light():
    import subprocess
    import sys

    code = ("import sys, gpukit; gpukit.Plane; gpukit.reslice; "
            "assert 'numba' not in sys.modules and 'scipy' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- SimpleITK as an oracle ---------------------------------------------------------------------------------------
def _sitk_resample(image, out_aff, shape, transform=None, default=FILL):
    import SimpleITK as sitk

    sizes = np.linalg.norm(out_aff[:3, :3], axis=0)
    rf = sitk.ResampleImageFilter()
    rf.SetSize([int(shape[2]), int(shape[1]), int(shape[0])])
    rf.SetOutputOrigin(tuple(out_aff[:3, 3]))
    rf.SetOutputSpacing(tuple(sizes))
    rf.SetOutputDirection(tuple((out_aff[:3, :3] / sizes).ravel()))
    rf.SetInterpolator(sitk.sitkLinear)
    rf.SetDefaultPixelValue(default)
    rf.SetOutputPixelType(sitk.sitkFloat64)
    if transform is not None:
        rf.SetTransform(transform)
    return sitk.GetArrayFromImage(rf.Execute(image))


def _regular_grid_around(vol, spacing, shape, rot=(10, -20, 30)):
    aff = np.eye(4)
    aff[:3, :3] = rotation_matrix(rot) * spacing
    aff[:3, 3] = vol.center - aff[:3, :3] @ ((np.array(shape[::-1]) - 1) / 2)
    return aff


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample_oblique_volume_matches_simpleitk(backend):
    """An oblique (rotated, unsheared) volume resampled onto another rotated grid, vs ResampleImageFilter."""
    rng = np.random.default_rng(18)
    vol = random_volume(rng, (10, 12, 14), shear=False)
    aff = _regular_grid_around(vol, 0.7, (9, 10, 11))
    ours = gpukit.resample(vol, aff, (9, 10, 11), fill=FILL, backend=backend).data
    import SimpleITK as sitk

    img = vol.to_sitk(hu=True)
    img = sitk.Cast(img, sitk.sitkFloat64)
    theirs = _sitk_resample(img, aff, (9, 10, 11))
    k, j, i = np.meshgrid(*[np.arange(n) for n in (9, 10, 11)], indexing="ij")
    ijk = (np.stack([i, j, k], -1) @ aff[:3, :3].T + aff[:3, 3]) @ np.linalg.inv(vol.affine)[:3, :3].T \
        + np.linalg.inv(vol.affine)[:3, 3]
    sin, _ = inside_masks(ijk, vol.shape, margin=1e-3)
    assert sin.sum() > 100
    np.testing.assert_allclose(ours[sin], theirs[sin], rtol=0, atol=tol(vol, 1e-4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample_tilted_volume_matches_simpleitk_with_shear_transform(backend):
    """A gantry-tilted (sheared) volume onto a regular grid.

    SimpleITK images cannot hold a shear, so the oracle holds the tilted
    voxels in an index-space image (identity direction, unit spacing, origin
    0) and SimpleITK's resampler maps each output LPS point through the
    AffineTransform ``inv(tilted affine)``: the same geometry, computed by ITK.
    """
    import SimpleITK as sitk

    rng = np.random.default_rng(19)
    aff = np.array([[0.6, 0, 0, -4], [0, 0.6, 0.45, 2], [0, 0, 1.25, 30], [0, 0, 0, 1.0]])  # ~20 degree tilt
    vol = random_volume(rng, (12, 14, 13), per_slice=True, affine=aff)
    shape = (10, 12, 12)
    out_aff = np.diag([0.55, 0.55, 0.9, 1.0])
    out_aff[:3, 3] = vol.center - out_aff[:3, :3] @ ((np.array(shape[::-1]) - 1) / 2)
    ours = gpukit.resample(vol, out_aff, shape, fill=FILL, backend=backend).data
    img = sitk.GetImageFromArray(hu64(vol))     # origin 0, spacing 1, identity: physical point == index
    inv = np.linalg.inv(vol.affine)
    tf = sitk.AffineTransform(3)
    tf.SetMatrix(tuple(inv[:3, :3].ravel()))
    tf.SetTranslation(tuple(inv[:3, 3]))
    theirs = _sitk_resample(img, out_aff, shape, transform=tf)
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ijk = (np.stack([i, j, k], -1) @ out_aff[:3, :3].T + out_aff[:3, 3]) @ inv[:3, :3].T + inv[:3, 3]
    sin, sout = inside_masks(ijk, vol.shape, margin=1e-3)
    assert sin.sum() > 200 and sout.sum() > 20
    np.testing.assert_allclose(ours[sin], theirs[sin], rtol=0, atol=tol(vol, 1e-4))
    assert np.all(ours[sout] == np.float32(FILL))


# -- the real CT series -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ct():
    folder = data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020")
    return gpukit.load(folder)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ct_axial_coronal_sagittal_reproduce_the_array(ct, backend):
    hu = ct.hu().astype(np.float32)
    nz, ny, nx = ct.shape
    for k in (0, 37, nz - 1):
        np.testing.assert_array_equal(gpukit.reslice(ct, Plane.axial(ct, index=k), backend=backend), hu[k])
    np.testing.assert_array_equal(gpukit.reslice(ct, Plane.coronal(ct, index=300), backend=backend), hu[::-1, 300])
    np.testing.assert_array_equal(gpukit.reslice(ct, Plane.sagittal(ct, index=200), backend=backend), hu[::-1, :, 200])
    np.testing.assert_allclose(gpukit.project(ct, "axial", backend=backend), hu.max(axis=0))


def test_ct_oblique_plane_matches_map_coordinates_and_numba(ct):
    plane = Plane.rotated(ct, (55, -15, 40), shape=(200, 220), spacing=0.9)
    ref = gpukit.reslice(ct, plane, fill=FILL, backend="numpy")
    ijk = grid_indices(ct, plane)[0]
    sin, sout = inside_masks(ijk, ct.shape)
    assert sin.sum() > 20000 and sout.sum() > 1000
    coords = np.stack([ijk[..., 2], ijk[..., 1], ijk[..., 0]]).reshape(3, -1)
    raw = ndimage.map_coordinates(ct.data, coords, order=1, mode="nearest", output=np.float64).reshape(ijk.shape[:2])
    assert np.all(ct.slopes == ct.slopes[0]) and np.all(ct.intercepts == ct.intercepts[0])
    want = raw * ct.slopes[0] + ct.intercepts[0]
    np.testing.assert_allclose(ref[sin], want[sin], rtol=0, atol=1e-3)    # float32 rounding of |HU| < 4096
    assert np.all(ref[sout] == np.float32(FILL))
    np.testing.assert_allclose(gpukit.reslice(ct, plane, fill=FILL, backend="numba"), ref, rtol=0, atol=1e-3)
    # a thin oblique slab MIP, numba vs numpy
    a = gpukit.project(ct, plane, thickness_mm=4.0, backend="numpy")
    b = gpukit.project(ct, plane, thickness_mm=4.0, backend="numba")
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-3)


# -- the benchmark never rots --------------------------------------------------------------------------------------
def test_bench_sampling_smallest_size_runs():
    from benchmarks import bench_sampling

    rows = bench_sampling.run(size=16, repeats=1)
    assert rows and all({"op", "impl", "median_s", "p10_s", "p90_s"} <= set(r) for r in rows)
    impls = {r["impl"] for r in rows}
    assert any("numba" in i for i in impls) and any("SimpleITK" in i for i in impls)
    sw = [r for r in rows if "order='slice'" in r["impl"] and not r["impl"].endswith(", interleaved")]
    assert len(sw) == 2 and all(r["vs_ray_order_max_abs_diff_hu"] >= r["vs_ray_order_median_abs_diff_hu"] for r in sw)
    # the peers on the Reslicer's poses: every pose timed, and the last pose set is the one asked for (a peer left
    # on another pose would differ from gpukit's image of pose 0 by far more than interpolation does)
    posed = [r for r in rows if r["impl"].endswith("new pose each call")]
    assert len(posed) == sum(importlib.util.find_spec(m) is not None for m in ("SimpleITK", "vtk")) >= 1
    for r in posed:
        assert r["repeats"] == 100 and {"median_s", "p10_s", "p90_s", "p99_s"} <= set(r)
        assert r["median_abs_diff_hu"] < 1.0, r
    # the interleaved rounds: the plane's contenders and the slab's (both orders and the peers), the same count
    # each (SimpleITK is a test dependency; VTK need not be installed)
    inter = [r for r in rows if r["impl"].endswith(", interleaved")]
    ours = [r for r in inter if r["impl"].startswith("gpukit")]
    assert {r["impl"] for r in ours} == {"gpukit reslice numba fast, interleaved",
                                         "gpukit project numba fast, interleaved",
                                         "gpukit project numba fast, order='slice', interleaved"}
    assert len(inter) > len(ours) and all("speedup_vs_fastest_peer" in r for r in ours)
    for op in {r["op"] for r in inter}:
        assert len({r["repeats"] for r in inter if r["op"] == op}) == 1, op


# -- the fused window stage (sample_grid(..., window=...)) -------------------------------------------------------------
WINDOW_FUNCTIONS = ["LINEAR", "LINEAR_EXACT", "SIGMOID"]
WINDOW = (1000.0, 2500.0)            # centre, width: spans the HU of random_volume (about -1100 .. 5000)


def _fused_case(seed: int, mode: str):
    """A small per-slice-rescaled volume and a grid that leaves the volume (fill, empty rays) in places."""
    rng = np.random.default_rng(seed)
    vol = random_volume(rng, (9, 10, 11), per_slice=True)
    plane = Plane.oblique(vol.center, rng.normal(size=3), rng.normal(size=3), (12, 13), (1.7, 1.6))
    grid = (3, 12, 13) if mode == "none" else (17, 12, 13)   # 17 steps: long enough for brick skipping
    A, b = index_map(vol.affine, plane.grid_affine(grid[0], 0.9))
    return vol, A, b, grid


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["none", "max", "min", "mean"])
@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("function", WINDOW_FUNCTIONS)
@pytest.mark.parametrize("invert", [False, True], ids=["MONOCHROME2", "MONOCHROME1"])
def test_fused_window_is_the_window_of_the_float32_image(backend, mode, interp, function, invert):
    """One pass (window=) equals two: the float32 image, then ``gpukit.ops.intensity.window`` of it; exact for
    LINEAR and LINEAR_EXACT, within one grey level for SIGMOID (exp). Outside points and empty rays are the
    window of the fill. Numba's bricked layout (mode none) and brick skipping (max, min) too."""
    from gpukit.backends import codes
    from gpukit.ops.intensity import window

    vol, A, b, grid = _fused_case(31, mode)
    be = get_backend(backend)
    assert be.has(codes.FUSED_WINDOW)
    shape = grid if mode == "none" else grid[1:]
    f32 = np.empty(shape, np.float32)
    be.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, FILL, f32)
    assert (f32 == np.float32(FILL)).any() and (f32 != np.float32(FILL)).sum() > 40
    want = window(f32, *WINDOW, function=function, invert=invert, backend=backend)      # the two-pass path
    assert want.dtype == np.uint8 and len(np.unique(want)) > 10
    wnd = (*WINDOW, codes.FUNCTION_CODES[function], 0.0, 255.0, invert)
    outs = {"sample_grid": be.sample_grid}
    if backend == "numba" and mode == "none":
        bricked = nb_sampler.to_bricks(vol.data)
        outs["sample_grid_bricked"] = lambda data, *args, **kw: nb_sampler.sample_grid_bricked(
            bricked, data.shape, *args[:5], *args[6:], **kw)
    elif backend == "numba" and mode in ("max", "min"):
        bricks = nb_sampler.brick_extrema(vol.data, vol.slopes, vol.intercepts)
        outs["bricks"] = lambda *args, **kw: nb_sampler.sample_grid(*args, bricks=bricks, **kw)
    for how, fn in outs.items():
        got = np.full(shape, 7, np.uint8)
        fn(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, FILL, got, window=wnd)
        if function == "SIGMOID":
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, how
        else:
            np.testing.assert_array_equal(got, want, err_msg=how)
        edge = 255 if invert else 0                            # the fill is far below the window
        assert np.all(got[f32 == np.float32(FILL)] == edge), how


@pytest.mark.parametrize("mode", ["none", "max", "mean"])
@pytest.mark.parametrize("invert", [False, True], ids=["MONOCHROME2", "MONOCHROME1"])
def test_numpy_fused_window_matches_pydicom_apply_windowing(mode, invert):
    """The numpy reference's fused LINEAR window against pydicom's ``apply_windowing`` of the float32 image
    (an independent oracle): pydicom's output range [y_min, y_max] mapped to 0..255; within one grey level,
    and equal wherever the oracle is not within 1e-6 of a rounding tie."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_windowing

    from gpukit.backends import codes

    vol, A, b, grid = _fused_case(33, mode)
    shape = grid if mode == "none" else grid[1:]
    f32 = np.empty(shape, np.float32)
    np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL, f32)
    got = np.empty(shape, np.uint8)
    np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL, got,
                           window=(*WINDOW, codes.LINEAR, 0.0, 255.0, invert))
    ds = Dataset()
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = WINDOW[0], WINDOW[1], "LINEAR"
    ds.BitsStored, ds.PixelRepresentation, ds.PhotometricInterpretation = 16, 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
    y_min, y_max = -2.0 ** 15, 2.0 ** 15 - 1
    oracle = (apply_windowing(f32.reshape(-1, shape[-1]), ds).reshape(shape) - y_min) / (y_max - y_min) * 255.0
    rounded = np.floor(oracle + 0.5)
    ours = 255 - got.astype(np.int64) if invert else got.astype(np.int64)   # MONOCHROME1: mirrored after rounding
    assert np.abs(ours - rounded).max() <= 1
    clear = np.abs(oracle - np.floor(oracle) - 0.5) > 1e-6
    np.testing.assert_array_equal(ours[clear], rounded[clear])
    assert clear.mean() > 0.9 and len(np.unique(got)) > 10


@pytest.mark.parametrize("mode", ["max", "min", "mean"])
def test_numba_projections_follow_numpys_nan_rule(mode):
    """A NaN sample makes the ray NaN (np.maximum / np.minimum / sum), in the sampler (with and without brick
    skipping) and in the axis fast paths: numba's combine rule is numpy's."""
    rng = np.random.default_rng(5)
    vol = random_volume(rng, (9, 10, 11), dtype=np.float32, per_slice=True, shear=False)
    vol.data.flat[rng.choice(vol.data.size, 4, replace=False)] = np.nan
    plane = random_plane(rng, vol, shape=(12, 13))
    A, b = index_map(vol.affine, plane.grid_affine(17, 0.5))
    grid = (17, 12, 13)
    ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL,
                                 np.empty(grid[1:], np.float32))
    assert np.isnan(ref).any() and not np.isnan(ref).all()
    atol = 1e-6 * float(np.nanmax(np.abs(hu64(vol))))
    runs = [{}] + ([{"bricks": nb_sampler.brick_extrema(vol.data, vol.slopes, vol.intercepts)}]
                   if mode != "mean" else [])
    for kw in runs:
        got = nb_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", FILL,
                                     np.empty(grid[1:], np.float32), **kw)
        np.testing.assert_allclose(got, ref, rtol=0, atol=atol, equal_nan=True, err_msg=str(list(kw)))
    for axis in (0, 1, 2):
        shape = [vol.shape[1:], (vol.shape[0], vol.shape[2]), vol.shape[:2]][axis]
        args = (vol.data, vol.slopes, vol.intercepts, axis, 1, vol.shape[axis], mode)
        want = np_sampler.project_axis(*args, np.empty(shape, np.float32))
        got = nb_axis.project_axis(*args, np.empty(shape, np.float32))
        assert np.isnan(want).any()
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, equal_nan=True, err_msg=f"axis {axis}")
