"""The reader against synthetic series whose geometry is known exactly (gpukit.testing).

The writer plants the traps real archives hold: shuffled random file names,
InstanceNumber and SliceLocation that disagree with the positions,
SliceThickness different from the step, gantry tilt, missing and duplicate
slices, localizers sharing the series UID, echoes at the same positions.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import gpukit
from gpukit import testing
from gpukit.errors import InconsistentSeriesError, IrregularSpacingError

SYNTAXES = testing.available_transfer_syntaxes()


def _check(vol, s, atol=1e-6):
    np.testing.assert_array_equal(vol.data, s.stored)
    np.testing.assert_allclose(vol.affine, s.affine, atol=1e-5)
    pos = vol.index_to_world([[0, 0, k] for k in range(vol.shape[0])])
    np.testing.assert_allclose(pos, s.positions, atol=atol)
    np.testing.assert_allclose(vol.slopes, s.slopes)
    np.testing.assert_allclose(vol.intercepts, s.intercepts)


GEOMETRIES = {
    "axial": dict(),
    "oblique": dict(iop=(0.8660254, 0.5, 0.0, -0.1294095, 0.2241439, -0.9659258)),
    "sagittal": dict(iop=(0, 1, 0, 0, 0, -1), shape=(12, 40, 30)),
    "coronal-negative-step": dict(iop=(1, 0, 0, 0, 0, -1), slice_step=-1.5),
    "tilted+": dict(tilt_deg=20.0),
    "tilted-": dict(tilt_deg=-12.5, slice_step=1.25),
}


@pytest.mark.parametrize("case", list(GEOMETRIES))
def test_geometry_round_trip(tmp_path, case):
    s = testing.write_series(tmp_path, **{"shape": (16, 32, 24), **GEOMETRIES[case]})
    vol = gpukit.load(tmp_path)
    _check(vol, s, atol=1e-5)
    if "tilt" in case:
        assert vol.meta["tilt_deg"] == pytest.approx(GEOMETRIES[case]["tilt_deg"], abs=1e-3)
        assert vol.slice_gap < vol.spacing[0]          # the step is longer than the plane distance
    else:
        assert vol.meta["tilt_deg"] == pytest.approx(0.0, abs=1e-3)
    # IPPs read independently by pydicom are exactly the slice origins
    ipps = {tuple(np.round(np.array(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient, float), 4))
            for f in s.files}
    assert ipps == {tuple(np.round(p, 4)) for p in vol.index_to_world([[0, 0, k] for k in range(vol.shape[0])])}


def test_positions_recovered_to_1e6(tmp_path):
    s = testing.write_series(tmp_path, shape=(10, 16, 16), tilt_deg=7.0, origin=(12.5, -3.25, 100.0),
                             slice_step=2.0, pixel_spacing=(0.5, 0.5))
    vol = gpukit.load(tmp_path)
    np.testing.assert_allclose(vol.index_to_world([[0, 0, k] for k in range(10)]), s.positions, atol=1e-6, rtol=0)


def test_shuffled_order_loads_identically(tmp_path):
    a = testing.write_series(tmp_path / "a", shape=(12, 20, 20), seed=3, instance_number_order="random")
    b = testing.write_series(tmp_path / "b", data=a.stored, shape=a.stored.shape, seed=9, file_names="instance",
                             instance_number_order="normal")
    va, vb = gpukit.load(tmp_path / "a"), gpukit.load(tmp_path / "b")
    np.testing.assert_array_equal(va.data, vb.data)
    np.testing.assert_allclose(va.affine, vb.affine, atol=1e-9)


@pytest.mark.parametrize("ts", SYNTAXES)
def test_transfer_syntaxes(tmp_path, ts):
    s = testing.write_series(tmp_path, shape=(6, 40, 36), transfer_syntax=ts, signed=True)
    _check(gpukit.load(tmp_path), s, atol=1e-5)


@pytest.mark.parametrize("signed,bits", [(False, 12), (True, 12), (False, 16), (True, 16)])
def test_signedness_and_bits_stored(tmp_path, signed, bits):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    data = np.random.default_rng(bits).integers(lo, hi + 1, size=(4, 16, 16)).astype("i2" if signed else "u2")
    data[0, 0, :2] = (lo, hi)
    s = testing.write_series(tmp_path, data=data, shape=data.shape, signed=signed, bits_stored=bits,
                             intercept=0.0)
    vol = gpukit.load(tmp_path)
    assert vol.dtype == np.dtype("i2" if signed else "u2")
    np.testing.assert_array_equal(vol.data, s.stored)
    for f in s.files[:2]:                                    # pydicom's own decoding as the oracle
        ds = pydicom.dcmread(f)
        k = int(np.argmin(np.abs(s.positions @ vol.affine[:3, 2] - np.dot(ds.ImagePositionPatient, vol.affine[:3, 2]))))
        np.testing.assert_array_equal(vol.data[k], ds.pixel_array)


def test_per_slice_rescale(tmp_path):
    slopes = np.linspace(0.5, 2.0, 8)
    intercepts = np.linspace(-1024, -900, 8)
    s = testing.write_series(tmp_path, shape=(8, 16, 16), slope=slopes, intercept=intercepts)
    vol = gpukit.load(tmp_path)
    _check(vol, s)
    np.testing.assert_allclose(vol.hu(), s.rescaled(), rtol=1e-6)
    assert vol.hu().dtype == np.float32


def test_multiframe_enhanced(tmp_path):
    s = testing.write_series(tmp_path, shape=(9, 24, 20), multiframe=True, tilt_deg=5.0, modality="CT",
                             slope=np.linspace(1, 2, 9), intercept=-1000.0)
    assert len(s.files) == 1
    _check(gpukit.load(tmp_path), s, atol=1e-5)


def test_missing_slice_reported(tmp_path):
    s = testing.write_series(tmp_path, shape=(10, 16, 16), missing=(4, 7), slice_step=2.0)
    with pytest.raises(IrregularSpacingError) as ei:
        gpukit.load(tmp_path)
    rep = ei.value.report
    assert rep.n_missing == 2 and rep.missing == [3, 5]       # gaps after stored slices 3 and 5
    normal = np.cross(s.affine[:3, 0], s.affine[:3, 1])
    normal /= np.linalg.norm(normal)
    np.testing.assert_allclose(ei.value.positions, s.positions @ normal, atol=1e-6)
    kept = gpukit.load(tmp_path, on_irregular="keep")
    np.testing.assert_array_equal(kept.data, s.stored)
    np.testing.assert_allclose(kept.meta["slice_positions_lps"], s.positions, atol=1e-6)


def test_duplicate_position_reported(tmp_path):
    s = testing.write_series(tmp_path, shape=(8, 16, 16), duplicate=(3,))
    with pytest.raises(IrregularSpacingError) as ei:
        gpukit.load(tmp_path)
    assert ei.value.report.duplicates and "duplicate" in str(ei.value)
    found = gpukit.scan(tmp_path)
    assert len(found) == 1 and found[0].n_images == 9 and "duplicate" in found[0].spacing


def test_irregular_spacing_reported(tmp_path):
    z = np.array([0, 2, 4, 6.7, 8.7, 10.7])
    pos = [(-100.0, -120.0, 50.0 + d) for d in z]
    testing.write_series(tmp_path, shape=(6, 16, 16), positions=pos)
    with pytest.raises(IrregularSpacingError) as ei:
        gpukit.load(tmp_path)
    assert ei.value.report.irregular == [2]
    np.testing.assert_allclose(ei.value.positions - ei.value.positions[0], z, atol=1e-6)


def test_localizer_in_series_is_split(tmp_path):
    s = testing.write_series(tmp_path, shape=(10, 24, 24))
    testing.write_localizer(tmp_path, s)
    found = gpukit.scan(tmp_path)
    assert len(found) == 2 and "orientation" in found[0].split_reason
    assert [x.kind for x in found] == ["volume", "image"]
    _check(gpukit.load(tmp_path), s)


def test_echoes_at_same_positions_are_split(tmp_path):
    uid = pydicom.uid.generate_uid()
    e1 = testing.write_series(tmp_path, shape=(6, 16, 16), series_uid=uid, modality="MR", intercept=0.0, seed=1,
                              extra=lambda ds, k: setattr(ds, "EchoTime", 4.92))
    e2 = testing.write_series(tmp_path, shape=(6, 16, 16), series_uid=uid, modality="MR", intercept=0.0, seed=2,
                              extra=lambda ds, k: setattr(ds, "EchoTime", 7.38))
    found = gpukit.scan(tmp_path)
    assert len(found.volumes) == 2 and all("echo time" in v.split_reason for v in found.volumes)
    by_te = {gpukit.load(v).meta["echo_time"]: gpukit.load(v) for v in found.volumes}
    np.testing.assert_array_equal(by_te[4.92].data, e1.stored)
    np.testing.assert_array_equal(by_te[7.38].data, e2.stored)


def test_foreign_files_skipped_with_reasons(tmp_path):
    s = testing.write_series(tmp_path / "ct", shape=(6, 16, 16))
    testing.write_not_dicom(tmp_path / "readme.txt")
    testing.write_no_pixel_data(tmp_path / "sr.dcm")
    testing.write_dicomdir_like(tmp_path / "DICOMDIR")
    testing.write_rgb_secondary_capture(tmp_path / "shot.dcm")
    testing.write_truncated(s.files[0], tmp_path / "cut.dcm", keep_fraction=0.02)
    found = gpukit.scan(tmp_path)
    reasons = {p.split("/")[-1]: r for p, r in ((x.path, x.reason) for x in found.skipped)}
    assert "not a DICOM" in reasons["readme.txt"]
    assert "no pixel data" in reasons["sr.dcm"]
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert "cut.dcm" in reasons
    assert [x.kind for x in found] == ["volume", "unsupported"] or \
        sorted(x.kind for x in found) == ["unsupported", "volume"]
    _check(gpukit.load(tmp_path), s)


def test_mixed_pixel_spacing_is_inconsistent(tmp_path):
    s = testing.write_series(tmp_path, shape=(5, 16, 16),
                             extra=lambda ds, k: setattr(ds, "PixelSpacing", [0.7, 0.6] if k != 2 else [0.8, 0.6]))
    with pytest.raises(InconsistentSeriesError) as ei:
        gpukit.load(tmp_path)
    assert any(str(f) in str(ei.value) for f in s.files)
