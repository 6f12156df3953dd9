"""A gantry-tilted CT made regular, against dcm2niix's tilt-corrected output (``*_Tilt_1`` in the refs).

dcm2niix resamples a tilted series onto a grid with the same in-plane pixels
and the slice step along the normal (1-D interpolation along the rows of each
slice). :func:`gpukit.geometry.unsheared_grid` builds that grid from gpukit's
own sheared affine, and :func:`gpukit.resample` fills it. The refs keep, for
each dcm2niix output, its RAS affine, shape, min, max and the sum of every
slice, so the check is:

* geometry: gpukit's grid (rows flipped, as dcm2niix stores them) equals
  dcm2niix's affine to 1e-4 mm. For series 301 (tilt +16.5 deg) dcm2niix's
  ``Tilt_1`` header puts the origin 79.6 mm (31.85 original slice steps) too
  low in z although its voxels are those of the grid starting at the first
  slice (the voxel sums below agree only for that grid; with its header's
  origin the first 32 slices would be mostly outside the data): that entry of
  the affine is checked to be off by exactly that much, so a change on either
  side shows.
* voxels: the mean of each slice agrees within 0.1 HU (series 201) and 1.5
  HU (series 301); interpolation differences (dcm2niix's per-row 1-D shift
  against gpukit's trilinear sampling, which here reduces to the same 1-D
  blend) and dcm2niix's integer rounding stay below that, while a grid off by
  a quarter of a slice step along the normal moves slice means by more than
  5 HU (checked in the test; measured: 10.5 HU). Min and max agree within
  5 HU. Slice sums cannot see an in-plane shift: the in-plane position is
  what the affine comparison pins (and the map_coordinates tests of the
  sampler in test_sampling.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpukit
from gpukit import geometry

from conftest import data_path

CASES = [
    # folder, dcm2niix output, mean tolerance (HU), expected header origin error in LPS z (mm)
    ("ct_philips_tilt/In/Philips/S21610/S2010", "201_STEREOTAXIS_Tilt_1.nii", 0.1, 0.0),
    ("ct_philips_tilt/In/Philips/S21610/S3010", "301_STEREOTAXIS_Tilt_1.nii", 1.5, 79.618),
]


@pytest.fixture(scope="module")
def refs():
    return json.loads(data_path("refs", "dcm2niix_refs.json").read_text())


@pytest.mark.parametrize("folder, name, tol_hu, z_error", CASES)
def test_tilted_series_resampled_like_dcm2niix(refs, folder, name, tol_hu, z_error):
    ref = refs[folder][name]
    vol = gpukit.load(data_path(folder))
    assert abs(geometry.tilt_angle_deg(vol.affine)) > 10          # really tilted: the affine is sheared
    aff, shape = geometry.unsheared_grid(vol.affine, vol.shape)
    nx, ny, nz = ref["shape"]
    assert shape == (nz, ny, nx)
    flip_rows = np.eye(4)
    flip_rows[1, 1], flip_rows[1, 3] = -1.0, shape[1] - 1
    theirs = geometry.LPS_TO_RAS @ np.asarray(ref["affine_ras"], dtype=np.float64)
    diff = aff @ flip_rows - theirs
    assert np.abs(diff[:3, :3]).max() < 1e-4
    assert abs(diff[2, 3] - z_error) < 1e-2
    diff[2, 3] = 0.0
    assert np.abs(diff).max() < 1e-4

    out = gpukit.resample(vol, aff, shape, fill=-1024.0, backend="numba")
    assert out.data.dtype == np.float32 and out.data.shape == shape
    # regular now: the slice step is along the normal
    assert geometry.tilt_angle_deg(out.affine) == pytest.approx(0.0, abs=1e-6)
    means = out.data.astype(np.float64).sum(axis=(1, 2)) / (nx * ny)
    ref_means = np.asarray(ref["sum_per_slice_axis2"], dtype=np.float64) / (nx * ny)
    assert np.abs(means - ref_means).max() < tol_hu
    assert abs(float(out.data.min()) - ref["min"]) < 5 and abs(float(out.data.max()) - ref["max"]) < 5
    # the comparison can fail: a quarter slice off along the normal moves the slice means by more than 5 HU
    shifted = aff.copy()
    shifted[:3, 3] += 0.25 * aff[:3, 2]
    off = gpukit.resample(vol, shifted, shape, fill=-1024.0, backend="numba").data
    off_means = off.astype(np.float64).sum(axis=(1, 2)) / (nx * ny)
    assert np.abs(off_means - ref_means)[:-1].max() > 5.0


def test_numpy_agrees_on_a_tilted_slab(refs):
    """The numpy reference gives the same untilted voxels as numba (a few slices, to keep it quick)."""
    folder = CASES[0][0]
    vol = gpukit.load(data_path(folder))
    aff, (nk, nj, ni) = geometry.unsheared_grid(vol.affine, vol.shape)
    a = gpukit.resample(vol, aff, (3, nj, ni), backend="numpy").data
    b = gpukit.resample(vol, aff, (3, nj, ni), backend="numba").data
    assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max()


def test_unsheared_grid_of_a_regular_volume_is_itself():
    aff = geometry.from_matvec(np.diag([0.5, 0.5, 2.0]), (-10.0, 5.0, 3.0))
    new, shape = geometry.unsheared_grid(aff, (7, 8, 9))
    assert shape == (7, 8, 9)
    np.testing.assert_allclose(new, aff)


def test_doctests_of_the_geometry_and_operations_modules():
    """The numbers in the docstrings are checked, so the examples stay true."""
    import doctest
    import importlib

    failed = 0
    for mod in ("gpukit.geometry", "gpukit.planes", "gpukit.presets", "gpukit.ops.intensity",
                "gpukit.ops.sampling", "gpukit.safepath"):
        res = doctest.testmod(importlib.import_module(mod), optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.attempted > 0, mod
        failed += res.failed
    assert failed == 0


def test_regularize_a_tilted_ct_is_the_unsheared_resample():
    vol = gpukit.load(data_path(CASES[0][0]))
    aff, shape = gpukit.ops.sampling.regular_grid(vol)
    ref_aff, ref_shape = geometry.unsheared_grid(vol.affine, vol.shape)
    assert shape == ref_shape
    np.testing.assert_allclose(aff, ref_aff, atol=1e-9)
    small = gpukit.Volume(vol.data[:6], vol.affine, {"rescale_slope": vol.slopes[:6],
                                                      "rescale_intercept": vol.intercepts[:6]})
    reg = gpukit.regularize(small, backend="numba")
    a2, s2 = geometry.unsheared_grid(small.affine, small.shape)
    np.testing.assert_array_equal(reg.data, gpukit.resample(small, a2, s2, backend="numba").data)
    # isotropic 1 mm voxels: the same anatomy, each slice 1 mm apart along the normal
    iso = gpukit.regularize(small, 1.0, backend="numba")
    np.testing.assert_allclose(geometry.voxel_sizes(iso.affine), [1.0, 1.0, 1.0])
    assert geometry.tilt_angle_deg(iso.affine) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_regularize_an_irregular_series_fills_the_gap_from_its_neighbours(tmp_path, backend):
    """A series with slice 5 missing: the regular grid puts a slice there, halfway between slices 4 and 6."""
    from gpukit import testing

    rng = np.random.default_rng(7)
    stored = rng.integers(0, 3000, size=(10, 12, 9)).astype(np.int16)
    testing.write_series(tmp_path, data=stored, missing=(5,), slice_step=2.0, tilt_deg=0.0)
    with pytest.raises(gpukit.IrregularSpacingError):
        gpukit.load(tmp_path)
    vol = gpukit.load(tmp_path, on_irregular="keep")
    assert vol.shape[0] == 9
    reg = gpukit.regularize(vol, backend=backend)
    assert reg.shape == (10, 12, 9)
    hu = stored.astype(np.float64) - 1024.0          # the writer's intercept
    expect = hu.copy()
    expect[5] = (hu[4] + hu[6]) / 2
    np.testing.assert_allclose(reg.data, expect, rtol=0, atol=1e-3)
    np.testing.assert_allclose(geometry.voxel_sizes(reg.affine)[2], 2.0)
    near = gpukit.regularize(vol, interp="nearest", backend=backend)
    assert near.data.dtype == np.int16
    keep = [k for k in range(10) if k != 5]
    np.testing.assert_array_equal(near.data[keep], hu[keep].astype(np.int16))
