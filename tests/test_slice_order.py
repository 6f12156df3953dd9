"""Slice-order (shear-warp) projection: ``project(..., order="slice")``.

What is asserted:

* the numpy reference follows the rule of :mod:`gpukit.backends._slices`, checked against an oracle written
  here from the rule's words with ``scipy.ndimage.map_coordinates(order=1)`` (each crossing of an intermediate
  ray with a slice sampled by scipy, its ray parameter solved with ``numpy.linalg.solve``, the output
  interpolated by scipy from the combined rays), for max, min and mean, thin slabs and full projections,
  principal axes z, y and x;
* the Numba kernel with ``precision="exact"`` equals the numpy reference bit for bit (every mode, both
  interpolations, per-slice and negative rescales, the three principal axes, rays missing the volume), and with
  "fast" lies within the stated bound;
* the geometry agrees with ray order where the two rules must agree: on a volume linear across the rays and
  constant along them, slice order equals ray order (to float64 rounding);
* on the real CT and the gantry-tilted series (a sheared affine): Numba exact equals numpy, fast is within
  the bound, and the result is close to ray order (median difference a few HU);
* bad ``order`` values and backends without the capability (the GPU backends and their stand-in) raise
  clear errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpukit
from gpukit import Plane, Volume
from gpukit.backends import available_backends
from gpukit.errors import CapabilityError, InvalidParameterError

from conftest import data_path, rescale_kind

ndimage = pytest.importorskip("scipy.ndimage")
needs_numba = pytest.mark.skipif("numba" not in available_backends(), reason="numba not installed")

EPS = 1e-6


def _volume(seed, shape, rescale="uniform", dtype=np.int16):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3000, shape).astype(dtype)
    # smooth structure plus noise, so neighbouring rays differ by realistic amounts
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    data = (data // 4 + (1500 + 1000 * np.sin(i / 5.0) * np.cos(j / 7.0 + k / 9.0))).astype(dtype)
    nz = shape[0]
    slopes, intercepts = rescale_kind(rng, nz, rescale)
    aff = np.diag([0.8, 0.7, 1.3, 1.0])
    aff[:3, 3] = (3.0, -2.0, 1.0)
    return Volume(data, aff, {"rescale_slope": slopes, "rescale_intercept": intercepts})


# -- the oracle: the rule of gpukit.backends._slices written out with scipy -------------------------------------
def oracle(vol, plane, thickness, mode, step=1.0):
    """Slice-order projection from the rule's words: principal axis, intermediate rays, scipy samples, warp.
    ``thickness`` None: the volume's whole extent along the normal (the grid ``project`` uses)."""
    from gpukit.ops.sampling import _plane_grid, index_map

    nr, nc = plane.shape
    grid, ns = _plane_grid(vol, plane, thickness, step)
    A, b = index_map(vol.affine, grid)
    hu = vol.data.astype(np.float64) * np.asarray(vol.slopes)[:, None, None] + np.asarray(vol.intercepts)[:, None,
                                                                                                          None]
    d = A[:, 2]
    mag = np.abs(d)
    p = 2 if mag[2] >= max(mag[0], mag[1]) else (1 if mag[1] >= mag[0] else 0)
    a, bb = {2: (1, 0), 1: (2, 0), 0: (2, 1)}[p]
    n = (vol.data.shape[2], vol.data.shape[1], vol.data.shape[0])
    # where each output ray meets the plane index[p] == 0
    c, r = np.meshgrid(np.arange(nc, dtype=float), np.arange(nr, dtype=float))
    x0 = A[:, 0, None, None] * c + A[:, 1, None, None] * r + b[:, None, None]
    y = x0 - (x0[p] / d[p]) * d[:, None, None]
    ua0, ub0 = int(np.floor(y[a].min())) - 1, int(np.floor(y[bb].min())) - 1
    NA, NB = int(np.floor(y[a].max())) - ua0 + 3, int(np.floor(y[bb].max())) - ub0 + 3
    ua, ub = np.meshgrid(np.arange(NA) + ua0, np.arange(NB) + ub0, indexing="ij")
    vals = []
    Ainv = np.linalg.inv(A)
    for m in range(n[p]):
        pt = np.zeros((3,) + ua.shape)
        pt[a] = ua + m * d[a] / d[p]
        pt[bb] = ub + m * d[bb] / d[p]
        pt[p] = m
        s = np.tensordot(Ainv[2], pt - b[:, None, None], axes=1)
        ok = (s >= -EPS) & (s <= ns - 1 + EPS)
        for ax in (a, bb):
            ok &= (pt[ax] >= -EPS) & (pt[ax] <= n[ax] - 1 + EPS)
        coords = np.clip(np.stack([pt[2], pt[1], pt[0]]), 0, np.array([n[2] - 1, n[1] - 1, n[0] - 1])[:, None, None])
        v = ndimage.map_coordinates(hu, coords.reshape(3, -1), order=1, mode="nearest").reshape(ua.shape)
        vals.append(np.where(ok, v, np.nan))
    vals = np.stack(vals)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN rays: the empty ones
        red = {"max": np.nanmax, "min": np.nanmin, "mean": np.nanmean}[mode](vals, axis=0)
    empty = np.all(np.isnan(vals), axis=0)
    pa, pb = y[a] - ua0, y[bb] - ub0
    img = ndimage.map_coordinates(np.where(empty, 0.0, red), [pa.ravel(), pb.ravel()], order=1).reshape(nr, nc)
    # pixels whose four intermediate rays all have samples (elsewhere the rule renormalises over the non-empty)
    a0, b0 = np.floor(pa).astype(int), np.floor(pb).astype(int)
    full = ~(empty[a0, b0] | empty[a0 + 1, b0] | empty[a0, b0 + 1] | empty[a0 + 1, b0 + 1])
    return img, full, p


CASES = [  # (plane rotation, thickness mm): principal axes z, y and x for this volume
    ((15.0, 20.0, 10.0), 6.0),
    ((15.0, 20.0, 10.0), None),
    ((20.0, 30.0, 15.0), 6.0),
    ((80.0, 10.0, 0.0), 8.0),
    ((10.0, 85.0, 30.0), None),
]


@pytest.mark.parametrize("mode", ["max", "min", "mean"])
@pytest.mark.parametrize("angles,thickness", CASES)
def test_numpy_reference_against_scipy_oracle(angles, thickness, mode):
    vol = _volume(1, (26, 30, 34))
    plane = Plane.rotated(vol, angles, shape=(33, 29), spacing=0.9)
    got = gpukit.project(vol, plane, mode=mode, thickness_mm=thickness, step_mm=1.0, backend="numpy", order="slice")
    want, full, _ = oracle(vol, plane, thickness, mode)
    assert full.mean() > 0.4
    np.testing.assert_allclose(got[full], want[full], rtol=0, atol=1e-3)   # float32 output
    assert np.ptp(want[full]) > 100


def test_oracle_covers_all_principal_axes():
    vol = _volume(1, (26, 30, 34))
    seen = {oracle(vol, Plane.rotated(vol, ang, shape=(9, 9), spacing=0.9), 4.0, "max")[2] for ang, _ in CASES}
    assert seen == {0, 1, 2}


@needs_numba
@pytest.mark.parametrize("rescale", ["uniform", "negative", "per-slice"])
@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("angles,thickness", CASES + [((0.0, 0.0, 0.0), 5.0), ((45.0, 45.0, 45.0), None)])
def test_numba_exact_equals_numpy_and_fast_is_within_bound(angles, thickness, interp, rescale):
    from gpukit.backends.numba.sampler import fast_bound

    vol = _volume(2, (22, 27, 31), rescale)
    # a plane larger than the volume: some rays miss it (fill), some intermediate rays are empty
    plane = Plane.rotated(vol, angles, shape=(41, 37), spacing=1.1)
    for mode in ("max", "min", "mean"):
        kw = dict(mode=mode, thickness_mm=thickness, step_mm=1.0, interp=interp, order="slice")
        ref = gpukit.project(vol, plane, backend="numpy", **kw)
        exact = gpukit.project(vol, plane, backend="numba", precision="exact", **kw)
        fast = gpukit.project(vol, plane, backend="numba", precision="fast", **kw)
        np.testing.assert_array_equal(exact, ref)
        d = vol.data.astype(np.float64)
        s, t = np.asarray(vol.slopes), np.asarray(vol.intercepts)
        H = float(np.abs(np.outer(s, [d.min(), d.max()]) + t[:, None]).max())
        bound = fast_bound(float(np.abs(d).max()), float(np.abs(s).max()), H)
        if mode == "mean":
            bound += max(vol.data.shape) * 2.0 ** -24 * H     # the float32 sum (module docstring)
        assert np.abs(fast.astype(np.float64) - ref).max() <= bound
        fill = float(gpukit.ops.sampling.default_fill(vol))
        assert (ref == np.float32(fill)).any() and (ref != np.float32(fill)).mean() > 0.2


def test_linear_across_rays_equals_ray_order():
    """f(x) = g . x with g perpendicular to the rays: trilinear, bilinear and the warp are all exact on it, and
    it is constant along each ray, so both orders give g . (the ray's point) on pixels away from the edges."""
    shape = (40, 44, 48)
    aff = np.diag([0.9, 0.8, 1.2, 1.0])
    probe = Volume(np.zeros(shape, np.float32), aff, {})
    for angles in ((20.0, 30.0, 15.0), (70.0, 10.0, 5.0), (10.0, 80.0, 30.0)):
        plane = Plane.rotated(probe, angles, shape=(30, 30), spacing=0.8)
        nrm = np.cross(plane.u, plane.v)
        g_lps = np.cross(nrm, [0.3, 0.5, 0.8])                  # perpendicular to the normal (the ray direction)
        ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape[::-1]), indexing="ij"))   # (3, nx, ny, nz)
        lps = np.tensordot(aff[:3, :3], ijk, axes=1) + aff[:3, 3, None, None, None]
        data = np.tensordot(g_lps, lps, axes=1).transpose(2, 1, 0).astype(np.float64) * 10.0
        vol = Volume(data, aff, {})
        for backend in [b for b in ("numpy", "numba") if b in available_backends()]:
            for mode in ("max", "mean"):
                kw = dict(mode=mode, thickness_mm=6.0, step_mm=0.5, backend=backend)
                ray = gpukit.project(vol, plane, **kw)
                sl = gpukit.project(vol, plane, order="slice", **kw)
                inner = np.zeros(ray.shape, bool)
                inner[4:-4, 4:-4] = True
                fill = float(gpukit.ops.sampling.default_fill(vol))
                ok = inner & (ray != np.float32(fill))
                assert ok.mean() > 0.3
                np.testing.assert_allclose(sl[ok], ray[ok], atol=1e-5 * np.abs(ray[ok]).max())


@needs_numba
@pytest.mark.parametrize("series", [("ct_philips_1mm", "In", "Philips", "S21570", "S2020"), ("ct_philips_tilt", "In", "Philips", "S21610", "S3010")])
def test_real_series(series):
    from gpukit.backends.numba.sampler import fast_bound

    vol = gpukit.load(data_path(*series))
    plane = Plane.rotated(vol, (20, 30, 15), shape=(96, 96), spacing=2.0)
    d = vol.data.astype(np.float64)
    bound = fast_bound(float(np.abs(d).max()), float(np.abs(vol.slopes).max()))
    for th in (20.0, None):
        kw = dict(mode="max", thickness_mm=th, step_mm=1.0)
        ref = gpukit.project(vol, plane, backend="numpy", order="slice", **kw)
        np.testing.assert_array_equal(gpukit.project(vol, plane, backend="numba", precision="exact", order="slice",
                                                     **kw), ref)
        fast = gpukit.project(vol, plane, backend="numba", order="slice", **kw)
        assert np.abs(fast.astype(np.float64) - ref).max() <= bound
        ray = gpukit.project(vol, plane, backend="numba", precision="exact", **kw)
        body = ray > -500
        assert body.mean() > 0.2
        # close to ray order where there is anatomy: the two rules sample the same rays differently
        assert np.median(np.abs(ref[body] - ray[body])) < 25.0


def test_bad_order_and_missing_capability():
    vol = _volume(3, (8, 9, 10))
    plane = Plane.rotated(vol, (10, 20, 30), shape=(5, 5))
    with pytest.raises(InvalidParameterError, match="order"):
        gpukit.project(vol, plane, order="diagonal")
    if "cuda-host" in available_backends():
        with pytest.raises(CapabilityError, match="slice_order"):
            gpukit.project(vol, plane, order="slice", backend="cuda-host")
    # an axis projection ignores the order (it is exact in either)
    np.testing.assert_array_equal(gpukit.project(vol, 0, order="slice", backend="numpy"),
                                  gpukit.project(vol, 0, backend="numpy"))


@needs_numba
@pytest.mark.parametrize("angles,shape", [((15.0, 20.0, 10.0), (40, 33, 37)), ((80.0, 10.0, 0.0), (40, 33, 37)),
                                          ((10.0, 85.0, 30.0), (40, 33, 37)),
                                          ((10.0, 85.0, 30.0), (14, 20, 75))])   # slice axis x: 3 blocks of slices
@pytest.mark.parametrize("thickness", [7.0, None])
def test_row_split_and_prefetch_change_no_value(angles, shape, thickness, monkeypatch):
    """The Numba kernel's tasks own bands of rows and combine each ray's samples in slice order: 1, 2 or 3 tasks,
    with and without the prefetch, give the same images bit for bit (means included), and the exact ones equal
    the numpy reference. Slice axis x (the array's fastest) is visited in blocks of 32 slices, row by row."""
    import numba

    from gpukit.backends._slices import slice_plan
    from gpukit.backends.numba import slices as nbs
    from gpukit.ops.sampling import _plane_grid, index_map

    vol = _volume(4, shape, "per-slice")
    plane = Plane.rotated(vol, angles, shape=(45, 41), spacing=0.8)
    if shape[2] == 75:
        aff, ns = _plane_grid(vol, plane, thickness, None)
        plan = slice_plan(*index_map(vol.affine, aff), (ns, 45, 41), shape)
        assert plan.stride_p == 1 and plan.n_p == 75
    keys = [(m, p) for m in ("max", "min", "mean") for p in ("exact", "fast")]

    def run():
        return {(m, p): gpukit.project(vol, plane, mode=m, thickness_mm=thickness, backend="numba", order="slice",
                                       precision=p) for m, p in keys}

    one = None
    threads = numba.get_num_threads()
    for tasks in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS), min(3, numba.config.NUMBA_NUM_THREADS)}):
        for pfr in (nbs.PREFETCH_ROWS, 0):
            monkeypatch.setattr(nbs, "PREFETCH_ROWS", pfr)
            numba.set_num_threads(tasks)
            try:
                got = run()
            finally:
                numba.set_num_threads(threads)
            if one is None:
                one = got
            for key in keys:
                np.testing.assert_array_equal(got[key], one[key], err_msg=f"{key}, {tasks} tasks, prefetch {pfr}")
    for m in ("max", "min", "mean"):
        ref = gpukit.project(vol, plane, mode=m, thickness_mm=thickness, backend="numpy", order="slice")
        np.testing.assert_array_equal(one[(m, "exact")], ref)
        assert not np.all(ref == ref.flat[0])


@needs_numba
def test_row_bounds_split_the_rays_evenly():
    """The kernel's tasks' rows: every row once, in order, and about equal numbers of rays read per task."""
    import numba

    from gpukit.backends.numba.slices import _row_bounds

    rng = np.random.default_rng(5)
    fplo = rng.integers(0, 50, 300)
    fphi = fplo + rng.integers(-5, 200, 300)              # some rows read nothing (hi <= lo)
    threads = numba.get_num_threads()
    for tasks in range(1, numba.config.NUMBA_NUM_THREADS + 1):
        numba.set_num_threads(tasks)
        try:
            bounds = _row_bounds(fplo, fphi)
        finally:
            numba.set_num_threads(threads)
        assert bounds[0] == 0 and bounds[-1] == 300 and len(bounds) == tasks + 1
        assert np.all(np.diff(bounds) >= 0)
        w = np.maximum(fphi - fplo, 0)
        per = [int(w[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]
        assert max(per) - min(per) <= 2 * w.max()
    assert list(_row_bounds(np.zeros(4, np.int64), np.zeros(4, np.int64))[[0, -1]]) == [0, 4]
