"""Volume geometry and conversions against SimpleITK/GDCM and nibabel as oracles."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import gpukit
from gpukit import geometry
from gpukit.volume import Volume

from conftest import data_path


@pytest.fixture(scope="module")
def ct():
    folder = data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020")
    return folder, gpukit.load(folder)


def test_affine_equals_simpleitk_series_reader(ct):
    folder, vol = ct
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    img = r.Execute()
    rng = np.random.default_rng(1)
    for i, j, k in rng.integers(0, [512, 512, 140], size=(20, 3)):
        np.testing.assert_allclose(vol.index_to_world([i, j, k]),
                                   img.TransformIndexToPhysicalPoint((int(i), int(j), int(k))), atol=1e-4)
    # SimpleITK applies the rescale itself: its voxels are our HU
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), vol.hu())


def test_world_index_round_trip_and_spacing(ct):
    _, vol = ct
    pts = np.random.default_rng(2).uniform(0, 100, size=(50, 3))
    np.testing.assert_allclose(vol.world_to_index(vol.index_to_world(pts)), pts, atol=1e-9)
    assert vol.spacing == pytest.approx((1.0, 0.451171875, 0.451171875), abs=1e-6)
    assert vol.slice_gap == pytest.approx(1.0, abs=1e-6)


def test_to_sitk_and_back(ct):
    _, vol = ct
    img = vol.to_sitk(hu=True)
    assert img.GetSize() == (512, 512, 140)
    for ijk in [(0, 0, 0), (511, 3, 139), (17, 400, 60)]:
        np.testing.assert_allclose(img.TransformIndexToPhysicalPoint(ijk), vol.index_to_world(ijk), atol=1e-9)
    back = Volume.from_sitk(img)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-9)
    np.testing.assert_array_equal(back.data, vol.hu())


def test_sheared_volume_refuses_sitk_but_writes_exact_nifti(tmp_path):
    aff = np.array([[0.5, 0, 0, -10], [0, 0.5, 0.8, 5], [0, 0, 2.4, 100], [0, 0, 0, 1.0]])  # tilted
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    vol = Volume(data, aff, {"rescale_slope": 2.0, "rescale_intercept": -3.0})
    with pytest.raises(ValueError, match="shear"):
        vol.to_sitk()
    vol.to_nifti(tmp_path / "t.nii.gz")
    img = nib.load(tmp_path / "t.nii.gz")
    np.testing.assert_allclose(img.get_sform(), np.diag([-1, -1, 1, 1]) @ aff, atol=1e-6)
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 1
    # nibabel's world position of voxel (i, j, k) is the LPS position with x, y negated
    np.testing.assert_allclose(nib.affines.apply_affine(img.affine, [5, 4, 3]) * [-1, -1, 1],
                               vol.index_to_world([5, 4, 3]), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data.T * 2.0 - 3.0)


def test_per_slice_rescale_writes_hu(tmp_path):
    data = np.full((3, 2, 2), 10, np.int16)
    vol = Volume(data, np.eye(4), {"rescale_slope": [1.0, 2.0, 0.5], "rescale_intercept": [0.0, -1.0, 3.0]})
    img = vol.to_nifti(tmp_path / "h.nii")
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "h.nii").dataobj)[0, 0, :], [10.0, 19.0, 8.0])
    assert img is not None


def test_volume_validates():
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2)), np.eye(4))
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), np.zeros((4, 4)))
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), np.eye(4), {"rescale_slope": [1, 2, 3]})


def test_orientation_labels_and_spacing_report():
    assert geometry.orientation_label([1, 0, 0, 0, 1, 0]) == "axial"
    assert geometry.orientation_label([1, 0, 0, 0, 0, -1]) == "coronal"
    assert geometry.orientation_label([0, 1, 0, 0, 0, -1]) == "sagittal"
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    assert geometry.orientation_label([1, 0, 0, 0, c, s]) == "oblique"
    rep = geometry.spacing_report([0, 2, 4, 8, 10, 10, 12.7])
    assert not rep.regular and rep.missing == [2] and rep.n_missing == 1
    assert rep.duplicates == [5] and rep.irregular == [5]
    assert geometry.spacing_report(np.arange(10) * 1.25).regular
    with pytest.raises(ValueError):
        geometry.orientation_vectors([1, 0, 0, 0.5, 0.5, 0])


def test_import_is_light():
    code = "import sys, gpukit; print(any(m in sys.modules for m in ('numba', 'cupy', 'pydicom', 'scipy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
