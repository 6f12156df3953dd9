"""Tests of gpukit.testing, the synthetic DICOM series writer.

The files are read back with pydicom and SimpleITK (GDCM) and checked against
expectations computed here by hand from the parameters, not against the
writer's own bookkeeping only.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pydicom
import pytest
from pydicom import uid as U

from gpukit import testing as T

SMALL = (4, 16, 12)          # nz, ny, nx: small enough to keep the suite fast
AVAILABLE = T.available_transfer_syntaxes()
COMPRESSED = {U.RLELossless, U.JPEG2000Lossless, U.JPEGLSLossless, U.JPEGLosslessSV1, U.JPEGLossless}


def _ipp(ds) -> np.ndarray:
    return np.array([float(v) for v in ds.ImagePositionPatient])


def _read_all(files):
    return [pydicom.dcmread(f) for f in files]


def _match(positions: np.ndarray, p: np.ndarray, atol: float = 1e-4) -> int:
    """Index of the row of ``positions`` equal to ``p`` (exactly one must match)."""
    hits = np.flatnonzero(np.all(np.abs(positions - p) <= atol, axis=1))
    assert len(hits) == 1, f"position {p} matches {len(hits)} expected positions"
    return int(hits[0])


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------
def test_axial_geometry_matches_hand_computed_affine(tmp_path):
    s = T.write_series(tmp_path, shape=SMALL, pixel_spacing=(0.7, 0.6), slice_step=2.5,
                       origin=(-100.0, -120.0, 50.0))
    expected = np.array([[0.6, 0.0, 0.0, -100.0],
                         [0.0, 0.7, 0.0, -120.0],
                         [0.0, 0.0, 2.5, 50.0],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(s.affine, expected, atol=1e-12)
    dss = _read_all(s.files)
    assert len(dss) == SMALL[0]
    seen = set()
    for ds in dss:
        assert ds.file_meta.TransferSyntaxUID == U.ExplicitVRLittleEndian
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert [float(v) for v in ds.PixelSpacing] == [0.7, 0.6]
        assert (ds.Rows, ds.Columns) == SMALL[1:]
        p = _ipp(ds)
        ks = [k for k in range(SMALL[0]) if np.allclose(expected @ [0, 0, k, 1], [*p, 1], atol=1e-6)]
        assert len(ks) == 1
        seen.add(ks[0])
        # Traps: SliceThickness is not the step; the tilt tag says 0.
        assert float(ds.SliceThickness) != pytest.approx(2.5)
        assert float(ds.GantryDetectorTilt) == 0.0
    assert seen == set(range(SMALL[0]))
    np.testing.assert_allclose(s.positions, [[-100, -120, 50 + 2.5 * k] for k in range(SMALL[0])])


def test_tilted_series_is_sheared(tmp_path):
    tilt = 15.0
    s = T.write_series(tmp_path, shape=SMALL, tilt_deg=tilt, slice_step=2.5, origin=(0, 0, 0))
    t = math.radians(tilt)
    # normal (0,0,1) rotated about the row direction (x) towards the column direction (y)
    step = 2.5 * np.array([0.0, math.sin(t), math.cos(t)])
    np.testing.assert_allclose(s.affine[:3, 2], step, atol=1e-12)
    dss = sorted(_read_all(s.files), key=lambda d: _ipp(d)[2])
    ipps = np.array([_ipp(d) for d in dss])
    np.testing.assert_allclose(np.diff(ipps, axis=0), np.tile(step, (SMALL[0] - 1, 1)), atol=1e-5)
    for k, ds in enumerate(dss):
        np.testing.assert_allclose(ipps[k], (s.affine @ [0, 0, k, 1])[:3], atol=1e-5)
        assert float(ds.GantryDetectorTilt) == pytest.approx(tilt)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]  # IOP not tilted
        # neither the step nor the distance between planes
        assert float(ds.SliceThickness) not in (pytest.approx(2.5), pytest.approx(2.5 * math.cos(t)))
    # the angle between the step and the normal is the tilt
    d = ipps[1] - ipps[0]
    assert math.degrees(math.acos(d[2] / np.linalg.norm(d))) == pytest.approx(tilt)


def test_oblique_orientation_and_negative_step(tmp_path):
    a = math.radians(30.0)
    row = np.array([math.cos(a), math.sin(a), 0.0])
    col = np.array([0.0, 0.0, -1.0])               # coronal-ish oblique
    normal = np.cross(row, col)
    s = T.write_series(tmp_path, shape=(5, 10, 8), iop=(*row, *col), pixel_spacing=(1.25, 0.5),
                       slice_step=-3.0, origin=(10.0, 20.0, 30.0))
    np.testing.assert_allclose(s.affine[:3, 0], row * 0.5, atol=1e-9)
    np.testing.assert_allclose(s.affine[:3, 1], col * 1.25, atol=1e-9)
    # position order is ascending along the normal: the step points along +normal
    np.testing.assert_allclose(s.affine[:3, 2], 3.0 * normal, atol=1e-9)
    np.testing.assert_allclose(s.affine[:3, 3], np.array([10, 20, 30]) - 4 * 3.0 * normal, atol=1e-5)
    dss = _read_all(s.files)
    proj = np.array([_ipp(d) @ normal for d in dss])
    order = np.argsort(proj)
    for n, i in enumerate(order):
        np.testing.assert_allclose(_ipp(dss[i]), (s.affine @ [0, 0, n, 1])[:3], atol=1e-5)
        np.testing.assert_array_equal(dss[i].pixel_array, s.stored[n])


def test_explicit_irregular_positions(tmp_path):
    pos = [(0, 0, 0), (0, 0, 2), (0, 0, 5), (0, 0, 6)]
    s = T.write_series(tmp_path, shape=SMALL, positions=pos)
    np.testing.assert_allclose(s.positions, pos)
    np.testing.assert_allclose(s.affine[:3, 2], [0, 0, 2.0])      # mean step first -> last
    got = sorted(tuple(_ipp(d)) for d in _read_all(s.files))
    np.testing.assert_allclose(got, pos)


def test_missing_and_duplicate(tmp_path):
    s = T.write_series(tmp_path, shape=(6, 16, 12), missing=(2,), duplicate=(4,))
    dss = _read_all(s.files)
    assert len(dss) == 6                                  # 6 - 1 missing + 1 duplicate
    assert s.stored.shape == (5, 16, 12)
    np.testing.assert_array_equal(s.indices, [0, 1, 3, 4, 5])
    zs = sorted(_ipp(d)[2] for d in dss)
    planned = [50 + 2.5 * k for k in range(6)]
    assert zs == pytest.approx(sorted([planned[k] for k in (0, 1, 3, 4, 4, 5)]))
    at4 = [d for d in dss if _ipp(d)[2] == pytest.approx(planned[4])]
    assert len(at4) == 2
    assert at4[0].SOPInstanceUID != at4[1].SOPInstanceUID
    assert not np.array_equal(at4[0].pixel_array, at4[1].pixel_array)
    one_is_stored = [np.array_equal(d.pixel_array, s.stored[3]) for d in at4]
    assert sorted(one_is_stored) == [False, True]
    assert len(s.duplicate_files) == 1
    dup = pydicom.dcmread(s.duplicate_files[0])
    np.testing.assert_array_equal(dup.pixel_array, s.duplicate_stored[4])


def test_instance_number_and_slice_location_are_traps(tmp_path):
    for order in ("reverse", "random"):
        s = T.write_series(tmp_path / order, shape=(6, 8, 8), instance_number_order=order, seed=3)
        dss = _read_all(s.files)
        z_by_inst = [_ipp(d)[2] for d in sorted(dss, key=lambda d: int(d.InstanceNumber))]
        z_by_loc = [_ipp(d)[2] for d in sorted(dss, key=lambda d: float(d.SliceLocation))]
        assert z_by_inst != sorted(z_by_inst)
        assert z_by_loc != sorted(z_by_loc)
    s = T.write_series(tmp_path / "normal", shape=(6, 8, 8), instance_number_order="normal")
    dss = _read_all(s.files)
    z_by_inst = [_ipp(d)[2] for d in sorted(dss, key=lambda d: int(d.InstanceNumber))]
    assert z_by_inst == sorted(z_by_inst)
    for d in dss:
        assert float(d.SliceLocation) == pytest.approx(_ipp(d)[2])


def test_file_names_and_write_order(tmp_path):
    s = T.write_series(tmp_path / "r", shape=(8, 8, 8))
    names = [f.name for f in s.files]
    assert all(re.fullmatch(r"[0-9A-F]{16}", n) for n in names), names
    assert {p.name for p in (tmp_path / "r").iterdir()} == set(names)
    z = [_ipp(d)[2] for d in _read_all(s.files)]
    assert z != sorted(z) and z != sorted(z, reverse=True)      # written in a shuffled order
    s2 = T.write_series(tmp_path / "i", shape=(8, 8, 8), file_names="instance",
                        instance_number_order="normal", shuffle=False)
    z2 = []
    for f in s2.files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert f.name == f"IM{int(ds.InstanceNumber):05d}.dcm"
        z2.append(_ipp(ds)[2])
    assert z2 == sorted(z2)


# --------------------------------------------------------------------------
# Pixel data and transfer syntaxes
# --------------------------------------------------------------------------
def test_available_transfer_syntaxes_includes_uncompressed():
    assert {U.ExplicitVRLittleEndian, U.ImplicitVRLittleEndian, U.ExplicitVRBigEndian} <= set(AVAILABLE)
    assert set(AVAILABLE) <= set(T.SUPPORTED_TRANSFER_SYNTAXES)


@pytest.mark.parametrize("signed,bits", [(True, None), (False, 12)], ids=["s16", "u12"])
@pytest.mark.parametrize("ts", AVAILABLE, ids=[U.UID(u).keyword or u for u in AVAILABLE])
def test_pixels_round_trip_every_transfer_syntax(tmp_path, ts, signed, bits):
    s = T.write_series(tmp_path, shape=SMALL, transfer_syntax=ts, signed=signed, bits_stored=bits,
                       tilt_deg=7.0, missing=(1,), duplicate=(2,))
    hi = 4095 if bits == 12 else 32767
    lo = 0 if not signed else -32768
    assert s.stored.min() >= lo and s.stored.max() <= hi
    dss = _read_all(s.files)
    assert len(dss) == 4
    seen = []
    for f, ds in zip(s.files, dss):
        assert ds.file_meta.TransferSyntaxUID == ts
        assert ds.BitsAllocated == 16
        assert ds.BitsStored == (bits or 16) and ds.HighBit == (bits or 16) - 1
        assert ds.PixelRepresentation == int(signed)
        if ts == U.ExplicitVRBigEndian:
            assert not ds.original_encoding[1]           # really big endian on disk
        if ts in COMPRESSED:
            assert ds["PixelData"].is_undefined_length   # encapsulated
        arr = ds.pixel_array
        assert (arr.dtype.kind, arr.dtype.itemsize) == ("i" if signed else "u", 2)
        n = _match(s.positions, _ipp(ds))
        if f in s.duplicate_files:
            np.testing.assert_array_equal(arr, s.duplicate_stored[s.indices[n]])
        else:
            np.testing.assert_array_equal(arr, s.stored[n])
            seen.append(n)
    assert sorted(seen) == list(range(len(s.stored)))


@pytest.mark.skipif(U.JPEG2000Lossless not in AVAILABLE, reason="no JPEG 2000 encoder")
def test_jpeg2000_large_enough_for_openjpeg(tmp_path):
    # 40 x 36 goes through pydicom's compress() + pylibjpeg-openjpeg when present
    s = T.write_series(tmp_path, shape=(2, 40, 36), transfer_syntax=U.JPEG2000Lossless)
    for ds in _read_all(s.files):
        np.testing.assert_array_equal(ds.pixel_array, s.stored[_match(s.positions, _ipp(ds))])


@pytest.mark.parametrize("ts", AVAILABLE, ids=[U.UID(u).keyword or u for u in AVAILABLE])
def test_simpleitk_reads_every_transfer_syntax(tmp_path, ts):
    sitk = pytest.importorskip("SimpleITK")
    s = T.write_series(tmp_path, shape=(2, 16, 12), transfer_syntax=ts, intercept=-1000.0)
    hu = s.stored.astype(np.float64) - 1000.0
    for f in s.files:
        img = sitk.ReadImage(str(f))
        arr = sitk.GetArrayFromImage(img)[0]
        n = _match(s.positions, np.array(img.GetOrigin()))
        np.testing.assert_array_equal(arr, hu[n])


def test_bits_stored_12_unsigned(tmp_path):
    s = T.write_series(tmp_path, shape=SMALL, signed=False, bits_stored=12, intercept=-1024.0)
    assert s.stored.dtype == np.uint16 and s.stored.max() <= 4095
    for ds in _read_all(s.files):
        assert (ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (12, 11, 0)
        raw = np.frombuffer(ds.PixelData, dtype="<u2")
        assert raw.max() <= 4095                          # nothing above bit 11
        np.testing.assert_array_equal(ds.pixel_array, s.stored[_match(s.positions, _ipp(ds))])


def test_explicit_data_and_per_slice_rescale(tmp_path):
    data = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 7 - 300).astype(np.int16)
    slopes = [1.0, 2.0, 0.5, 1.0]
    inters = [-1024.0, -1000.0, 0.0, 10.5]
    s = T.write_series(tmp_path, data=data, slope=slopes, intercept=inters, multiframe=False)
    np.testing.assert_array_equal(s.stored, data)
    for ds in _read_all(s.files):
        k = _match(s.positions, _ipp(ds))
        np.testing.assert_array_equal(ds.pixel_array, data[k])
        assert float(ds.RescaleSlope) == slopes[k]
        assert float(ds.RescaleIntercept) == inters[k]
        assert ds.RescaleType == "HU"
    with pytest.raises(ValueError, match="stored range"):
        T.write_series(tmp_path / "bad", data=data, signed=False, bits_stored=12)


def test_simpleitk_series_matches(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    a = math.radians(20.0)
    for name, iop in (("axial", (1, 0, 0, 0, 1, 0)),
                      ("oblique", (math.cos(a), math.sin(a), 0, -math.sin(a), math.cos(a), 0))):
        s = T.write_series(tmp_path / name, shape=(5, 20, 16), pixel_spacing=(0.7, 0.6),
                           slice_step=2.5, iop=iop, origin=(-100.0, -120.0, 50.0))
        reader = sitk.ImageSeriesReader()
        names = reader.GetGDCMSeriesFileNames(str(tmp_path / name))
        assert len(names) == 5
        reader.SetFileNames(names)
        img = reader.Execute()
        arr = sitk.GetArrayFromImage(img)                 # [k, j, i]
        np.testing.assert_array_equal(arr, s.stored.astype(np.float64) - 1024.0)
        np.testing.assert_allclose(img.GetOrigin(), (-100.0, -120.0, 50.0), atol=1e-6)
        np.testing.assert_allclose(img.GetSpacing(), (0.6, 0.7, 2.5), atol=1e-6)
        direction = np.array(img.GetDirection()).reshape(3, 3)
        np.testing.assert_allclose(direction[:, 0], iop[:3], atol=1e-6)
        np.testing.assert_allclose(direction[:, 1], iop[3:], atol=1e-6)
        # and the affine convention: column c of the affine = direction column c * spacing c
        np.testing.assert_allclose(s.affine[:3, :3], direction * np.array(img.GetSpacing()), atol=1e-6)


# --------------------------------------------------------------------------
# Enhanced multi-frame
# --------------------------------------------------------------------------
@pytest.mark.parametrize("modality,sop", [("CT", "1.2.840.10008.5.1.4.1.1.2.1"),
                                          ("MR", "1.2.840.10008.5.1.4.1.1.4.1")])
def test_multiframe(tmp_path, modality, sop):
    inters = [-1024.0, -1000.0, -1024.0, -1024.0, -1010.0, -1024.0]
    s = T.write_series(tmp_path, shape=(6, 16, 12), multiframe=True, modality=modality,
                       intercept=inters, tilt_deg=5.0 if modality == "CT" else 0.0, seed=1)
    assert len(s.files) == 1
    ds = pydicom.dcmread(s.files[0])
    assert ds.SOPClassUID == sop and ds.file_meta.MediaStorageSOPClassUID == sop
    assert int(ds.NumberOfFrames) == 6
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        assert kw not in ds
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.7, 0.6]
    assert float(shared.PixelMeasuresSequence[0].SliceThickness) != pytest.approx(2.5)
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert "PixelValueTransformationSequence" not in shared     # per-slice rescale differs
    frames = ds.pixel_array
    assert frames.shape == (6, 16, 12)
    pos = []
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        p = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        k = _match(s.positions, p)
        pos.append(p)
        np.testing.assert_allclose(p, (s.affine @ [0, 0, k, 1])[:3], atol=1e-5)
        np.testing.assert_array_equal(frames[f], s.stored[k])
        pvt = item.PixelValueTransformationSequence[0]
        assert float(pvt.RescaleIntercept) == inters[k]      # planned k == position order here
        assert item.FrameContentSequence[0].InStackPositionNumber == k + 1
        assert float(item.FrameVOILUTSequence[0].WindowCenter) == 40
    pos = np.array(pos)
    normal = np.array([0, 0, 1.0])
    assert not np.all(np.diff(pos @ normal) > 0)              # frames stored out of position order
    np.testing.assert_allclose(sorted(pos @ normal), [50 + 2.5 * k * math.cos(math.radians(s.tilt_deg))
                                                      for k in range(6)], atol=1e-5)


def test_multiframe_uniform_rescale_and_simpleitk(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    # GDCM does not sort frames: an unshuffled file lets SimpleITK serve as an oracle
    s = T.write_series(tmp_path, shape=(4, 16, 12), multiframe=True, shuffle=False)
    ds = pydicom.dcmread(s.files[0])
    pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    assert (float(pvt.RescaleSlope), float(pvt.RescaleIntercept)) == (1.0, -1024.0)
    img = sitk.ReadImage(str(s.files[0]))
    np.testing.assert_allclose(img.GetSpacing(), (0.6, 0.7, 2.5), atol=1e-6)
    np.testing.assert_allclose(img.GetOrigin(), (-100.0, -120.0, 50.0), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), s.stored.astype(np.float64) - 1024.0)


# --------------------------------------------------------------------------
# Parameters, errors, extras
# --------------------------------------------------------------------------
def test_transfer_syntax_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not supported"):
        T.write_series(tmp_path, shape=SMALL, transfer_syntax=U.JPEGBaseline8Bit)
    monkeypatch.setattr(T, "_have_gdcm", lambda: False)
    monkeypatch.setattr(T, "_pydicom_encoder_available", lambda uid: False)
    assert T.available_transfer_syntaxes() == [U.ExplicitVRLittleEndian, U.ImplicitVRLittleEndian,
                                                U.ExplicitVRBigEndian, U.DeflatedExplicitVRLittleEndian]
    with pytest.raises(RuntimeError, match="JPEG-LS"):
        T.write_series(tmp_path, shape=SMALL, transfer_syntax=U.JPEGLSLossless)


def test_extra_window_photometric_and_keyword_syntax(tmp_path):
    calls = []

    def extra(ds, k):
        calls.append(k)
        ds.StationName = f"S{k}"

    s = T.write_series(tmp_path, shape=SMALL, extra=extra, window=[(40, 400), (-600, 1500)],
                       photometric="MONOCHROME1", transfer_syntax="ImplicitVRLittleEndian",
                       series_uid="1.2.3.4.5", modality="MR", slope=1.0, intercept=0.0)
    assert sorted(calls) == [0, 1, 2, 3]
    for ds in _read_all(s.files):
        k = _match(s.positions, _ipp(ds))
        assert ds.StationName == f"S{k}"
        assert [float(v) for v in ds.WindowCenter] == [40, -600]
        assert [float(v) for v in ds.WindowWidth] == [400, 1500]
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        assert ds.SeriesInstanceUID == "1.2.3.4.5"
        assert ds.SOPClassUID == U.MRImageStorage and ds.Modality == "MR"
        assert ds.file_meta.TransferSyntaxUID == U.ImplicitVRLittleEndian
        for kw in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientName", "PatientID",
                   "SeriesDescription", "RescaleType"):
            assert kw in ds


# --------------------------------------------------------------------------
# Phantom
# --------------------------------------------------------------------------
def test_phantom():
    p = T.phantom((12, 48, 40), seed=2)
    assert p.shape == (12, 48, 40) and p.dtype == np.float32
    np.testing.assert_array_equal(p, T.phantom((12, 48, 40), seed=2))
    assert p[:, 0, 0].tolist() == [-1000.0] * 12                  # air outside
    total = p.size
    assert ((p > -900) & (p < -700)).sum() > 0.02 * total         # lungs
    assert (p >= 700).sum() > 0.002 * total                       # bone / spheres
    assert (np.abs(p - 40) < 25).sum() > 0.1 * total              # soft tissue
    assert ((p > -130) & (p < -70)).sum() > 0.02 * total          # fat
    assert p.max() >= 1000 and p.min() == -1000
    for k in range(11):
        assert not np.array_equal(p[k], p[k + 1])


# --------------------------------------------------------------------------
# Bad and foreign files
# --------------------------------------------------------------------------
def test_bad_file_helpers(tmp_path):
    s = T.write_series(tmp_path / "s", shape=(3, 16, 12))

    nd = T.write_not_dicom(tmp_path / "notdicom")
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(nd)

    tr = T.write_truncated(s.files[0], tmp_path / "trunc", keep_fraction=0.6)
    assert tr.stat().st_size == int(s.files[0].stat().st_size * 0.6)
    with pytest.raises(Exception):
        ds = pydicom.dcmread(tr)
        ds.pixel_array  # noqa: B018  (either the read or the decode must fail)

    sr = pydicom.dcmread(T.write_no_pixel_data(tmp_path / "sr", like=s))
    assert sr.SOPClassUID == U.BasicTextSRStorage and "PixelData" not in sr
    assert sr.SeriesInstanceUID == s.series_uid
    ct = pydicom.dcmread(T.write_no_pixel_data(tmp_path / "ct", kind="ct"))
    assert ct.SOPClassUID == U.CTImageStorage and "PixelData" not in ct and "Rows" in ct

    dd = pydicom.dcmread(T.write_dicomdir_like(tmp_path / "DICOMDIR"))
    assert dd.file_meta.MediaStorageSOPClassUID == U.MediaStorageDirectoryStorage
    assert "DirectoryRecordSequence" in dd and "PixelData" not in dd

    rgb = pydicom.dcmread(T.write_rgb_secondary_capture(tmp_path / "rgb"))
    assert rgb.SOPClassUID == U.SecondaryCaptureImageStorage
    assert rgb.PhotometricInterpretation == "RGB" and rgb.SamplesPerPixel == 3
    assert rgb.pixel_array.shape == (24, 32, 3)
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        assert kw not in rgb

    loc_path = T.write_localizer(tmp_path / "s", s)
    assert loc_path.parent == tmp_path / "s" and loc_path not in s.files
    loc = pydicom.dcmread(loc_path)
    assert loc.SeriesInstanceUID == s.series_uid
    assert loc.FrameOfReferenceUID == s.frame_of_reference_uid
    assert [float(v) for v in loc.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert (loc.Rows, loc.Columns) != (16, 12)
    assert loc.pixel_array.shape == (loc.Rows, loc.Columns)
    assert "LOCALIZER" in loc.ImageType
