"""Bad input gives a specific GpukitError that names the file; scan skips it with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate

import gpukit
from gpukit.errors import (AmbiguousSeriesError, CorruptDicomError, DecodeError, DicomFileError,
                           EnvironmentProblem, GpukitError, IrregularSpacingError, MissingDecoderError,
                           NoPixelDataError, NotDicomError, SeriesNotFoundError)

from conftest import data_path

JPEG2000_MC_LOSSLESS = pydicom.uid.JPEG2000MCLossless   # JPEG 2000 Part 2: no pydicom decoder exists for it


def _ct_files(n=None):
    folder = data_path("ct_philips_1mm", "In", "Philips", "S21570", "S2020")
    files = sorted(p for p in folder.iterdir() if p.name != "DIRFILE")
    return files if n is None else files[:n]


def _copy_series(dst: Path, n: int = 6) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(_ct_files(), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                    .ImagePositionPatient[2]))[:n]
    out = []
    for f in files:
        shutil.copy(f, dst / f.name)
        out.append(dst / f.name)
    return out


def test_hierarchy():
    for cls in (NotDicomError, CorruptDicomError, NoPixelDataError, DecodeError):
        assert issubclass(cls, DicomFileError) and issubclass(cls, GpukitError) and issubclass(cls, ValueError)
    assert issubclass(MissingDecoderError, EnvironmentProblem) and issubclass(MissingDecoderError, GpukitError)
    assert not issubclass(MissingDecoderError, ValueError)


def test_not_dicom(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is a radiology report, not an image\n" * 20)
    with pytest.raises(NotDicomError) as ei:
        gpukit.load(p)
    assert str(p) in str(ei.value) and ei.value.path == str(p)


@pytest.mark.parametrize("cut", [200, 700, 1500])
def test_truncated_in_header(tmp_path, cut):
    src = _ct_files(1)[0]
    p = tmp_path / "cut.dcm"
    p.write_bytes(src.read_bytes()[:cut])
    with pytest.raises((CorruptDicomError, NoPixelDataError)) as ei:
        gpukit.load(p)
    assert str(p) in str(ei.value)
    found = gpukit.scan(tmp_path)
    assert len(found) == 0 and len(found.skipped) == 1 and found.skipped[0].path == str(p)


def test_truncated_pixel_data(tmp_path):
    files = _copy_series(tmp_path / "s", 5)
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 1000])
    with pytest.raises(CorruptDicomError) as ei:
        gpukit.load(tmp_path / "s")
    assert str(files[2]) in str(ei.value) and "truncated" in str(ei.value)
    found = gpukit.scan(tmp_path / "s")
    assert found[0].n_images == 5 and "truncated" in found[0].note and str(files[2]) in found[0].note
    # a truncated copy that also duplicates a position is still reported as the damaged file
    shutil.copy(files[2], tmp_path / "s" / "copy_of_damaged")
    with pytest.raises(CorruptDicomError):
        gpukit.load(tmp_path / "s")


def test_no_pixel_data(tmp_path):
    ds = pydicom.dcmread(_ct_files(1)[0], stop_before_pixels=True)
    p = tmp_path / "header_only.dcm"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(NoPixelDataError) as ei:
        gpukit.load(p)
    assert str(p) in str(ei.value)
    found = gpukit.scan(tmp_path)
    assert found.skipped and "no pixel data" in found.skipped[0].reason


def _rewrite_encapsulated(src: Path, dst: Path, uid: UID, payload: bytes) -> None:
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = uid
    ds.PixelData = encapsulate([payload])
    ds["PixelData"].VR = "OB"
    ds.save_as(dst, enforce_file_format=True)


def test_missing_decoder_names_file_and_syntax(tmp_path):
    files = _copy_series(tmp_path / "s", 4)
    _rewrite_encapsulated(files[1], files[1], JPEG2000_MC_LOSSLESS, b"\xff\x0a" + bytes(64))
    with pytest.raises(MissingDecoderError) as ei:
        gpukit.load(tmp_path / "s")
    msg = str(ei.value)
    assert str(files[1]) in msg and str(JPEG2000_MC_LOSSLESS) in msg


def test_corrupt_compressed_stream_is_decode_error(tmp_path):
    files = _copy_series(tmp_path / "s", 4)
    _rewrite_encapsulated(files[0], files[0], pydicom.uid.JPEG2000Lossless, b"\xff\x4f\xff\x51" + bytes(200))
    with pytest.raises(DecodeError) as ei:
        gpukit.load(tmp_path / "s")
    assert str(files[0]) in str(ei.value)


def test_bad_files_do_not_stop_a_scan(tmp_path):
    _copy_series(tmp_path / "good", 5)
    (tmp_path / "junk.bin").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "empty").write_bytes(b"")
    found = gpukit.scan(tmp_path)
    assert len(found.volumes) == 1 and found.volumes[0].n_images == 5
    assert {Path(s.path).name for s in found.skipped} == {"junk.bin", "empty"}
    vol = gpukit.load(tmp_path)
    assert vol.shape == (5, 512, 512)


def test_only_bad_files_is_series_not_found(tmp_path):
    (tmp_path / "a.txt").write_text("x" * 500)
    with pytest.raises(SeriesNotFoundError) as ei:
        gpukit.load(tmp_path)
    assert "a.txt" in str(ei.value)


def test_two_series_need_a_choice(tmp_path):
    files = _copy_series(tmp_path / "a", 4)
    for n, f in enumerate(_copy_series(tmp_path / "b", 4)):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = "1.2.3.4.5.6.7"
        ds.SeriesNumber = 999
        ds.save_as(f)
    with pytest.raises(AmbiguousSeriesError) as ei:
        gpukit.load(tmp_path)
    assert "1.2.3.4.5.6.7" in str(ei.value) and len(ei.value.series) == 2
    assert gpukit.load(tmp_path, series=999).meta["series_uid"] == "1.2.3.4.5.6.7"
    assert gpukit.load(tmp_path, series="1.2.3.4.5.6.7").shape[0] == 4
    assert files  # the first series is untouched


def test_missing_slice_is_reported_with_positions(tmp_path):
    files = _copy_series(tmp_path / "s", 8)
    files[4].unlink()
    with pytest.raises(IrregularSpacingError) as ei:
        gpukit.load(tmp_path / "s")
    z = sorted(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files if f.exists())
    np.testing.assert_allclose(np.sort(ei.value.positions), z, atol=1e-6)
    assert ei.value.report.n_missing == 1 and ei.value.report.missing == [3]
    kept = gpukit.load(tmp_path / "s", on_irregular="keep")
    assert kept.shape[0] == 7 and not kept.meta["regular"]
    np.testing.assert_allclose(kept.meta["slice_positions_lps"][:, 2], z, atol=1e-6)


def test_inputs_are_never_modified(tmp_path):
    files = _copy_series(tmp_path / "s", 4)
    before = {f: f.read_bytes() for f in files}
    vol = gpukit.load(tmp_path / "s")
    vol.data[...] = 0
    vol.to_nifti(tmp_path / "out.nii")
    assert {f: f.read_bytes() for f in files} == before
