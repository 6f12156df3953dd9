"""Real scans nobody on this project wrote, against dcm2niix's output and pydicom.

The references (../shared/data/refs and each folder's Ref/) were made with
dcm2niix; NIfTI is RAS with (x, y, z) array order and dcm2niix flips the row
axis, so comparisons go through physical positions, never array layouts.
"""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

import gpukit
from gpukit import geometry

from conftest import data_path


def _index_map(ours_ras: np.ndarray, ref_ras: np.ndarray, ref_shape, atol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Integer map from reference voxel indices to ours, checked by physical position.

    Returns (P, t) with ours_index = P @ ref_index + t, after asserting that the
    corners of the reference grid land on the same RAS positions (1e-4 mm).
    """
    m = np.linalg.inv(ours_ras) @ ref_ras
    p = np.round(m[:3, :3])
    t = np.round(m[:3, 3])
    corners = np.array([[a, b, c] for a in (0, ref_shape[0] - 1) for b in (0, ref_shape[1] - 1)
                        for c in (0, ref_shape[2] - 1)], dtype=np.float64)
    ref_pos = geometry.apply_affine(ref_ras, corners)
    our_pos = geometry.apply_affine(ours_ras, corners @ p.T + t)
    np.testing.assert_allclose(our_pos, ref_pos, atol=atol, rtol=0)
    return p.astype(int), t.astype(int)


def _in_ref_order(arr_ijk: np.ndarray, p: np.ndarray, t: np.ndarray, ref_shape) -> np.ndarray:
    idx = np.indices(ref_shape).reshape(3, -1)
    src = p @ idx + t[:, None]
    return arr_ijk[src[0], src[1], src[2]].reshape(ref_shape)


def _refs():
    return json.loads(data_path("refs", "dcm2niix_refs.json").read_text())


def _check_against_json_ref(ours_ijk: np.ndarray, ours_ras: np.ndarray, ref: dict, *, check_affine=True):
    shape = tuple(ref["shape"])
    if check_affine:
        p, t = _index_map(ours_ras, np.array(ref["affine_ras"]), shape)
    else:  # tilted: dcm2niix's plain affine drops the shear; the voxel grid is the same up to the row flip
        p, t = np.diag([1, -1, 1]), np.array([0, shape[1] - 1, 0])
    arr = _in_ref_order(ours_ijk, p, t, shape).astype(np.float64)
    np.testing.assert_array_equal(arr.sum(axis=(0, 1)), np.array(ref["sum_per_slice_axis2"], dtype=np.float64))
    assert arr.min() == ref["min"] and arr.max() == ref["max"]
    assert hashlib.sha256(arr.tobytes(order="F")).hexdigest() == ref["sha256_stored_fortran"]


def test_ct_philips_1mm_nifti_equals_dcm2niix(tmp_path):
    folder = data_path("ct_philips_1mm")
    vol = gpukit.load(folder)
    assert vol.shape == (140, 512, 512)
    out = tmp_path / "ct.nii"
    vol.to_nifti(out)
    img = nib.load(out)                       # read back what was written, as any NIfTI user would
    ref = _refs()["ct_philips_1mm/In/Philips/S21570/S2020"]["202_STD_BRAIN_1MM,_iDose.nii"]
    # nibabel applies scl_slope/scl_inter: the stored integers plus the file's rescale
    _check_against_json_ref(np.asarray(img.dataobj, dtype=np.float64), img.affine, ref)
    assert int(img.header["sform_code"]) == 1
    assert img.get_data_dtype() == np.uint16 and (img.dataobj.slope, img.dataobj.inter) == (1.0, -1024.0)


def _ipps_by_pydicom(folder):
    out = []
    for f in sorted(folder.iterdir()):
        if f.name == "DIRFILE":
            continue
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.append((np.array(ds.ImagePositionPatient, dtype=float), np.array(ds.ImageOrientationPatient, dtype=float)))
    return out


def test_ct_philips_tilt_scan_groups_and_skips():
    found = gpukit.scan(data_path("ct_philips_tilt", "In"))
    vols = found.volumes
    assert sorted((s.series_number, s.n_images) for s in vols) == [(201, 54), (301, 58)]
    others = [s for s in found if s.kind != "volume"]
    assert {s.series_number for s in others} == {100, 401}          # the scout and the screenshots
    assert all(s.note for s in others)
    dirfiles = [s for s in found.skipped if s.path.endswith("DIRFILE")]
    assert len(dirfiles) == 5 and all("DICOMDIR" in s.reason for s in dirfiles)


@pytest.mark.parametrize("series,sub,tilt,name", [(201, "S2010", -18.5, "201_STEREOTAXIS.nii"),
                                                  (301, "S3010", 16.5, "301_STEREOTAXIS.nii")])
def test_ct_philips_tilt_sheared_affine(series, sub, tilt, name):
    root = data_path("ct_philips_tilt", "In")
    vol = gpukit.load(root, series=series)
    ipps = _ipps_by_pydicom(root / "Philips" / "S21610" / sub)
    assert vol.shape[0] == len(ipps)
    # every file's position is a slice of the affine, and every slice is a file's position
    slice_pos = geometry.apply_affine(vol.affine, [[0, 0, k] for k in range(vol.shape[0])])
    file_pos = np.array([p for p, _ in ipps])
    d = np.linalg.norm(slice_pos[:, None, :] - file_pos[None, :, :], axis=2)
    assert d.min(axis=1).max() < 1e-3 and d.min(axis=0).max() < 1e-3
    # the slice-step column is the IPP step, and is NOT along the normal (sheared)
    steps = np.diff(file_pos[np.argsort(file_pos[:, 2])], axis=0)
    np.testing.assert_allclose(vol.affine[:3, 2], np.sign(vol.affine[2, 2]) * steps.mean(axis=0), atol=1e-4)
    iop = ipps[0][1]
    normal = np.cross(iop[:3], iop[3:])
    cols = vol.affine[:3, :3] / geometry.voxel_sizes(vol.affine)
    np.testing.assert_allclose(np.cross(cols[:, 0], cols[:, 1]), normal, atol=1e-5)
    assert abs(abs(float(cols[:, 2] @ normal)) - np.cos(np.radians(abs(tilt)))) < 1e-4
    assert vol.meta["tilt_deg"] == pytest.approx(tilt, abs=0.01)
    ref = _refs()[f"ct_philips_tilt/In/Philips/S21610/{sub}"][name]
    _check_against_json_ref(vol.hu().T, None, ref, check_affine=False)


def test_mr_sagittal_matches_dcm2niix_and_marker_is_right():
    vol = gpukit.load(data_path("mr_siemens_sag_fieldmap", "In"))
    ref = nib.load(data_path("mr_siemens_sag_fieldmap", "Ref", "2_gre_field_mapping_PMUlog.nii"))
    ours_ras = geometry.nifti_affine(vol.affine)
    p, t = _index_map(ours_ras, ref.affine, ref.shape)
    np.testing.assert_array_equal(_in_ref_order(vol.hu().T, p, t, ref.shape), np.asarray(ref.dataobj))
    # instance 1 carries a bright marker line; it must sit at x = -13.73 mm (patient right)
    k1 = [pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber for f in vol.meta["files"]].index(1)
    j, i = np.unravel_index(np.argmax(vol.data[k1]), vol.data[k1].shape)
    assert np.argmax(vol.data.max(axis=(1, 2))) == k1
    x = vol.index_to_world([i, j, k1])[0]
    assert x == pytest.approx(-13.73, abs=0.01)


def test_ts_compressed_all_syntaxes_identical():
    folder = data_path("ts_compressed", "In")
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 9
    arrays = {f.name: gpukit.load(f).data for f in files}
    syntaxes = {pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID for f in files}
    assert len(syntaxes) >= 7
    ref = pydicom.dcmread(folder / "1.dcm").pixel_array          # uncompressed, decoded by pydicom
    for name, arr in arrays.items():
        assert arr.shape == (1,) + ref.shape
        np.testing.assert_array_equal(arr[0], ref, err_msg=name)
    # the mosaic's 35 tiles hold the same values as dcm2niix's de-mosaiced volume
    nii = np.asarray(nib.load(data_path("ts_compressed", "Ref", "1.nii")).dataobj)
    assert nii.size == 35 * 64 * 64
    assert np.sort(nii.ravel()).tolist() == np.sort(ref.reshape(6, 64, 6, 64).transpose(0, 2, 1, 3)
                                                   .reshape(36, 64, 64)[:35].ravel()).tolist()


@pytest.mark.parametrize("folder,part,refname", [
    ("5_anat-T1w_acq-tfl", None, "5_anat-T1w_acq-tfl.nii"),
    ("8_gre_field_mapping", 1, "8_gre_field_mapping_e1.nii"),
    ("8_gre_field_mapping", 2, "8_gre_field_mapping_e2.nii"),
])
def test_enhanced_multiframe_matches_dcm2niix(folder, part, refname):
    found = gpukit.scan(data_path("enh_mr_siemens_xa30", "In", folder))
    vols = found.volumes
    info = vols[0] if part is None else sorted(vols, key=lambda s: s.frames[0].echo_time)[part - 1]
    vol = gpukit.load(info)
    ref = nib.load(data_path("enh_mr_siemens_xa30", "Ref", refname))
    # dcm2niix stores its affine as float32 after its own arithmetic: it sits ~1e-4 mm
    # from the DICOM values here, so geometry is compared to 1e-3 mm (a 2000th of a voxel)
    p, t = _index_map(geometry.nifti_affine(vol.affine), ref.affine, ref.shape, atol=1e-3)
    ref_arr = np.asarray(ref.dataobj).astype(np.float64)
    np.testing.assert_array_equal(_in_ref_order(vol.hu().T, p, t, ref.shape), ref_arr)
    echo = json.loads(data_path("enh_mr_siemens_xa30", "Ref", refname.replace(".nii", ".json")).read_text())
    if "EchoTime" in echo:
        assert vol.meta["echo_time"] == pytest.approx(echo["EchoTime"] * 1000, abs=0.01)


def test_jpeg2000_large_mr_equals_uncompressed():
    d = data_path("pydicom_data_subset", "data_store", "data")
    plain = gpukit.load(d / "MR2_UNCR.dcm").data
    lossless = gpukit.load(d / "MR2_J2KR.dcm").data
    np.testing.assert_array_equal(plain, lossless)
    np.testing.assert_array_equal(plain[0], pydicom.dcmread(d / "MR2_UNCR.dcm").pixel_array)


def test_enhanced_ct_two_frames():
    d = data_path("pydicom_data_subset", "data_store", "data")
    vol = gpukit.load(d / "eCT_Supplemental.dcm")
    ds = pydicom.dcmread(d / "eCT_Supplemental.dcm")
    assert vol.shape == (2, 512, 512)
    pos = [np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float) for fg in ds.PerFrameFunctionalGroupsSequence]
    order = np.argsort([p @ vol.affine[:3, 2] for p in pos])
    for k, n in enumerate(order):
        np.testing.assert_allclose(vol.index_to_world([0, 0, k]), pos[n], atol=1e-4)
        np.testing.assert_array_equal(vol.data[k], ds.pixel_array[n])
