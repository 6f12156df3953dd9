"""The numba fast sampler's speed paths: pair reads of 16-bit values and the grouped brick test of projections.

What is asserted:

* :func:`gpukit.backends.numba._pairs.load_pair` returns the two stored values (signed and unsigned 16-bit,
  negative values, the last pair of the array), checked against numpy's own reads;
* the kernels with pair reads (``PAIRS``), the prefetch (``PREFETCH_ROWS``, ``PREFETCH_SLICES``) and mode none's
  own tiles (``PLANE_TC``, ``RESAMPLE_TS``, ``RESAMPLE_TC``) give exactly the values of the one-value reads
  without them (reslice with and without a fused window, resample, max / min / mean projections, thin slabs,
  rotating MIP in slice order), and lie within ``fast_bound`` of the float64 numpy reference and of ``scipy.ndimage.map_coordinates(order=1)``;
* the grouped brick test of projections (``GROUPS``) gives exactly the values without it, on volumes with
  sparse bright structures (where groups are skipped) and empty rays, both signs of slope, per-slice rescale,
  nearest and trilinear, and the numpy reference's values within the bound;
* on the real CT (``ct_philips_1mm``, uint16): the same, at a realistic scale.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpukit
from gpukit import Plane, Volume
from gpukit.backends import available_backends
from gpukit.ops import sampling

from conftest import data_path, rescale_kind

pytestmark = pytest.mark.skipif("numba" not in available_backends(), reason="numba not installed")

nb = pytest.importorskip("gpukit.backends.numba.sampler")
pairs_mod = pytest.importorskip("gpukit.backends.numba._pairs")


def _bound(vol):
    d = vol.data.astype(np.float64)
    s = np.asarray(vol.slopes, np.float64)
    t = np.asarray(vol.intercepts, np.float64)
    H = float(np.abs(np.outer(s, [d.min(), d.max()]) + t[:, None]).max())
    return nb.fast_bound(float(np.abs(d).max()), float(np.abs(s).max()), H)


def _volume(seed, dtype, shape, rescale):
    """Random stored values with a few bright blocks (so some bricks stand out) and one flat corner."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -3000), min(info.max, 3000)
    data = rng.integers(lo, (lo + hi) // 2, shape).astype(dtype)
    for _ in range(6):
        k, j, i = (int(rng.integers(0, n)) for n in shape)
        data[k:k + 3, j:j + 4, i:i + 2] = rng.integers((lo + hi) // 2, hi)
    data[:3, :3, :3] = lo
    nz = shape[0]
    slopes, intercepts = rescale_kind(rng, nz, rescale)
    aff = np.diag([0.8, 0.7, 1.3, 1.0])
    aff[:3, 3] = (3.0, -2.0, 1.0)
    return Volume(data, aff, {"rescale_slope": slopes, "rescale_intercept": intercepts})


@pytest.fixture
def switches(monkeypatch):
    """Set the speed-path switches of the numba sampler for one run: ``switches(pairs, groups)``; the prefetch
    and mode none's own tiles follow ``pairs`` (off: no prefetch, the projections' FAST_* tiles)."""
    names = ("PREFETCH_ROWS", "PREFETCH_SLICES", "PLANE_TC", "RESAMPLE_TC", "RESAMPLE_TS")
    on = {k: getattr(nb, k) for k in names}
    off = dict(zip(names, (0, 0, nb.FAST_TC, nb.FAST_TC, nb.FAST_TS)))

    def set_(pairs, groups):
        monkeypatch.setattr(nb, "PAIRS", pairs)
        monkeypatch.setattr(nb, "GROUPS", groups)
        for k in names:
            monkeypatch.setattr(nb, k, (on if pairs else off)[k])
    return set_


# -- the pair read ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_load_pair_returns_both_values(dtype):
    from numba import njit

    @njit
    def split(flat, m):
        lo = np.empty(flat.size - 1, np.float32)
        hi = np.empty(flat.size - 1, np.float32)
        for o in range(flat.size - 1):
            w = pairs_mod.load_pair(flat, o)
            lo[o] = pairs_mod.pair_lo(w, m)
            hi[o] = pairs_mod.pair_hi(w, m)
        return lo, hi

    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    flat = rng.integers(info.min, info.max + 1, 1001).astype(dtype)
    flat[:4] = (info.min, info.max, 0, info.min + 1)
    lo, hi = split(flat, pairs_mod.pair_sign(flat))
    np.testing.assert_array_equal(lo, flat[:-1].astype(np.float32))
    np.testing.assert_array_equal(hi, flat[1:].astype(np.float32))


def test_pairs_apply_only_where_safe():
    assert pairs_mod.pairs_apply(np.zeros(4, np.int16), 2)
    assert pairs_mod.pairs_apply(np.zeros(4, np.uint16), 512)
    assert not pairs_mod.pairs_apply(np.zeros(4, np.int16), 1)        # no x-neighbour: o + 1 may leave the array
    assert not pairs_mod.pairs_apply(np.zeros(4, np.uint8), 8)
    assert not pairs_mod.pairs_apply(np.zeros(4, np.float32), 8)
    assert not pairs_mod.pairs_apply(np.zeros(4, np.dtype(">i2")), 8)


# -- same values with and without the speed paths, within the bound of the reference -------------------------------
def _all_ops(vol, plane):
    out = [gpukit.reslice(vol, plane, backend="numba"),
           gpukit.reslice(vol, plane, backend="numba", window=(0.0, 600.0)),
           gpukit.resample(vol, plane.grid_affine(5, 0.9), (5,) + plane.shape, backend="numba").data]
    for mode in ("max", "min", "mean"):
        for thickness in (60.0, 6.0):
            out.append(gpukit.project(vol, plane, mode=mode, thickness_mm=thickness, step_mm=0.6, backend="numba"))
    out.append(gpukit.project(vol, plane, mode="max", thickness_mm=60.0, step_mm=0.6, interp="nearest",
                              backend="numba"))
    out.append(gpukit.rotating_mip(vol, 3, backend="numba"))
    return out


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
@pytest.mark.parametrize("rescale", ["uniform", "negative", "per_slice"])
@pytest.mark.parametrize("shape", [(26, 33, 41), (9, 2, 30), (7, 12, 2)])
def test_speed_paths_change_no_value(dtype, rescale, shape, switches):
    vol = _volume(sum(shape) + len(rescale), dtype, shape, rescale)
    bound = _bound(vol)
    for angles in ((20, 30, 15), (0, 0, 37), (-50, 10, 80)):
        plane = Plane.rotated(vol, angles, shape=(31, 37), spacing=0.7)
        runs = {}
        for on in (True, False):
            switches(on, on)
            sampling.clear_caches(vol)
            gpukit.project(vol, plane, mode="max", backend="numba")     # the brick grid, cached for the slabs
            runs[on] = _all_ops(vol, plane)
        for i, (a, b) in enumerate(zip(runs[True], runs[False])):
            np.testing.assert_array_equal(a, b, err_msg=f"op {i}, angles {angles}")
        assert not np.all(runs[True][3] == runs[True][3].flat[0])        # not a constant image
        ref = gpukit.reslice(vol, plane, backend="numpy")
        assert np.abs(runs[True][0].astype(np.float64) - ref).max() <= bound
        for i, mode in zip((3, 5, 7), ("max", "min", "mean")):
            ref = gpukit.project(vol, plane, mode=mode, thickness_mm=60.0, step_mm=0.6, backend="numpy")
            assert np.abs(runs[True][i].astype(np.float64) - ref).max() <= bound, mode


def test_grouped_brick_test_on_sparse_bright_volume(switches):
    """Mostly flat noise with a few bright spheres: most groups of rays are skipped once their maximum is known."""
    rng = np.random.default_rng(7)
    n = 72
    data = (1000 + rng.normal(0, 5, (n, n, n))).astype(np.int16)
    z, y, x = np.mgrid[0:n, 0:n, 0:n]
    for c in rng.uniform(10, n - 10, (5, 3)):
        data[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < 16] = 2500
    vol = Volume(data, np.eye(4), {"rescale_slope": 1.0, "rescale_intercept": -1024.0})
    plane = Plane.rotated(vol, (20, 30, 15), shape=(80, 80), spacing=1.0)
    res = {}
    for on in (True, False):
        switches(True, on)
        for mode in ("max", "min"):
            res[on, mode] = gpukit.project(vol, plane, mode=mode, backend="numba")
    ref = gpukit.project(vol, plane, mode="max", backend="numpy")
    for mode in ("max", "min"):
        np.testing.assert_array_equal(res[True, mode], res[False, mode])
    assert res[True, "max"].max() > 1400          # the spheres are seen
    assert np.abs(res[True, "max"].astype(np.float64) - ref).max() <= _bound(vol)


def test_pairs_against_scipy_map_coordinates():
    ndimage = pytest.importorskip("scipy.ndimage")
    vol = _volume(11, np.int16, (20, 30, 40), "uniform")
    plane = Plane.rotated(vol, (10, -25, 40), shape=(40, 50), spacing=0.6)
    A, b = sampling.index_map(vol.affine, plane.affine)
    r, c = np.mgrid[0:40, 0:50].astype(np.float64)
    ijk = [A[a, 0] * c + A[a, 1] * r + b[a] for a in range(3)]
    hu = vol.data.astype(np.float64) - 1024.0
    ref = ndimage.map_coordinates(hu, [ijk[2], ijk[1], ijk[0]], order=1, mode="nearest")
    inside = np.all([(q >= 0) & (q <= n - 1) for q, n in zip(ijk, (40, 30, 20))], axis=0)
    assert inside.mean() > 0.3
    fast = gpukit.reslice(vol, plane, backend="numba")
    assert np.abs(fast[inside].astype(np.float64) - ref[inside]).max() <= _bound(vol) + 1e-9


# -- the real CT ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ct():
    return gpukit.load(data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020"))


def test_real_ct_speed_paths(ct, switches):
    assert ct.data.dtype == np.uint16
    bound = _bound(ct)
    plane = Plane.rotated(ct, (20, 30, 15), shape=(128, 128), spacing=1.2)
    # rows of two PLANE_TC (RESAMPLE_TC) tiles; its 40-slice grid spans two RESAMPLE_TS tiles
    wide = Plane.rotated(ct, (-35, 10, 25), shape=(40, 300), spacing=0.8)
    runs = {}
    for on in (True, False):
        switches(on, on)
        sampling.clear_caches(ct)
        runs[on] = [gpukit.reslice(ct, plane, backend="numba"),
                    gpukit.project(ct, plane, mode="max", step_mm=1.0, backend="numba"),
                    gpukit.project(ct, plane, mode="max", thickness_mm=20.0, step_mm=1.0, backend="numba"),
                    gpukit.rotating_mip(ct, 2, shape=(60, 100), spacing=2.0, backend="numba"),
                    gpukit.reslice(ct, wide, backend="numba"),
                    gpukit.resample(ct, wide.grid_affine(40, 0.9), (40,) + wide.shape, backend="numba").data]
    for a, b in zip(runs[True], runs[False]):
        np.testing.assert_array_equal(a, b)
    for img, pl in ((runs[True][0], plane), (runs[True][4], wide)):
        ref = gpukit.reslice(ct, pl, backend="numpy")
        assert np.ptp(ref) > 500
        assert np.abs(img.astype(np.float64) - ref).max() <= bound
    ref = gpukit.resample(ct, wide.grid_affine(40, 0.9), (40,) + wide.shape, backend="numpy").data
    assert np.abs(runs[True][5].astype(np.float64) - ref).max() <= bound
    ref = gpukit.project(ct, plane, mode="max", step_mm=1.0, backend="numpy")
    assert np.ptp(ref) > 500
    assert np.abs(runs[True][1].astype(np.float64) - ref).max() <= bound
