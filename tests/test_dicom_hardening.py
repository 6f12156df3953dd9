"""Hardening of DICOM reading (issue 10): FIFOs never block a scan, foreign exceptions become GpukitErrors
naming the file, pydicom's warnings go into the scan report instead of stderr, a missing input is a
GpukitError that is also a FileNotFoundError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pydicom
import pytest

import gpukit
from gpukit import testing
from gpukit.errors import CorruptDicomError, GpukitError, InputNotFoundError, NotRegularFileError

ROOT = Path(__file__).resolve().parents[1]


# -- C: a FIFO in the input ----------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_fifo_in_input_is_skipped_not_waited_on(tmp_path):
    testing.write_series(tmp_path / "in", shape=(3, 8, 8))
    os.mkfifo(tmp_path / "in" / "pipe")
    code = textwrap.dedent(f"""
        import json, sys, gpukit
        found = gpukit.scan({str(tmp_path / 'in')!r})
        print(json.dumps(found.to_dict()["skipped"]))
        vol = gpukit.load({str(tmp_path / 'in')!r})
        print(vol.shape)
    """)
    # a regression blocks forever in open(); the subprocess timeout turns that into a failure
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    skipped = json.loads(r.stdout.splitlines()[0])
    pipe = [s for s in skipped if s["path"].endswith("pipe")]
    assert pipe and "FIFO" in pipe[0]["reason"] and pipe[0]["error"] == "NotRegularFileError", skipped
    assert r.stdout.splitlines()[1] == "(3, 8, 8)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_fifo_read_header_raises_typed_error(tmp_path):
    from gpukit.dicom.header import read_header

    import signal

    os.mkfifo(tmp_path / "p")

    class Blocked(BaseException):    # a BaseException: readers that catch Exception cannot swallow it
        pass

    def hung(signum, frame):
        raise Blocked("read_header blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)        # open() of a FIFO blocks in the kernel; the alarm interrupts it
    try:
        with pytest.raises(NotRegularFileError) as ei:
            read_header(tmp_path / "p")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert ei.value.path == str(tmp_path / "p")


# -- 2: foreign exceptions from damaged headers --------------------------------------------------------------------
def _one_file(tmp_path) -> Path:
    testing.write_series(tmp_path / "s", shape=(1, 8, 8))
    return next((tmp_path / "s").iterdir())


def test_inserted_byte_in_file_meta_is_a_typed_error(tmp_path):
    """The first escape seen: a byte inserted into (0002,0000) gave a bare pydicom BytesLengthException."""
    f = _one_file(tmp_path)
    b = bytearray(f.read_bytes())
    assert b[132:136] == b"\x02\x00\x00\x00"     # (0002,0000) UL, length 4
    b[138:140] = (3).to_bytes(2, "little")       # length 3: not a multiple of 4
    f.write_bytes(bytes(b))
    with pytest.raises(CorruptDicomError) as ei:
        gpukit.load(f)
    assert ei.value.path == str(f)
    found = gpukit.scan(f.parent)
    assert [s.path for s in found.skipped] == [str(f)] and found.skipped[0].error == "CorruptDicomError"


def test_huge_length_field_does_not_allocate_it(tmp_path):
    """A 2 GB length in a header element: pydicom would allocate it before noticing the file is short."""
    import tracemalloc

    f = _one_file(tmp_path)
    ds = pydicom.dcmread(f)
    ds.add_new(0x00091010, "LO", "x" * 300)    # a private element longer than the deferral size
    ds.save_as(f)
    b = bytearray(f.read_bytes())
    i = b.index(b"\x09\x00\x10\x10")
    b[i + 4:i + 6] = b"UT"                    # long form: 2 reserved bytes + 4-byte length
    b[i + 6:i + 8] = b"\x00\x00"
    b[i + 8:i + 12] = (0x7FFFFFFF).to_bytes(4, "little")
    f.write_bytes(bytes(b))
    tracemalloc.start()
    try:
        try:
            gpukit.scan(f.parent)
            gpukit.load(f)
        except GpukitError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_wrong_vr_for_bits_allocated_is_a_typed_error(tmp_path):
    """A VR swap US -> IS made BitsAllocated a string: a bare ValueError from int() in the pixel reader."""
    f = _one_file(tmp_path)
    b = bytearray(f.read_bytes())
    i = b.index(b"\x28\x00\x00\x01US")         # (0028,0100) BitsAllocated
    b[i + 4:i + 6] = b"IS"
    f.write_bytes(bytes(b))
    with pytest.raises(GpukitError) as ei:
        gpukit.load(f)
    assert ei.value.path == str(f)


def test_decoder_panic_is_a_typed_error(tmp_path, monkeypatch):
    """Rust decoders (pyo3) panic with a BaseException, which `except Exception` misses."""
    from gpukit.dicom import pixels

    class PanicException(BaseException):
        pass

    def boom(self):
        raise PanicException("index out of bounds")

    testing.write_series(tmp_path / "s", shape=(2, 8, 8), transfer_syntax=testing.RLE_LOSSLESS)
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(boom))
    with pytest.raises(gpukit.errors.DecodeError) as ei:
        gpukit.load(tmp_path / "s", workers=1)
    assert "PanicException" in str(ei.value) and ei.value.path


# -- 3: warnings into the report -----------------------------------------------------------------------------------
def test_pydicom_warnings_are_collected_not_shown(tmp_path, capfd):
    def bad_uid(ds, k):
        ds.ReferencedSOPInstanceUID = "1.2.3.abc.é"      # invalid UI value: pydicom warns when it reads it
        ds.add_new(0x00081150, "UI", "1.02.x")

    testing.write_series(tmp_path / "s", shape=(4, 8, 8), extra=bad_uid)
    for f in (tmp_path / "s").iterdir():
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = "1.2.3.4.abc"            # invalid: read by gpukit from every file
        ds.NumberOfFrames = 1                           # the fast walker leaves such files to pydicom
        ds.save_as(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = gpukit.scan(tmp_path / "s")
    assert caught == [], [str(w.message) for w in caught]
    err = capfd.readouterr().err
    assert "Invalid value" not in err, err
    d = found.to_dict()
    assert d["n_warnings"] >= 4 and len(d["warnings"]) == 4, d["warnings"]
    w0 = d["warnings"][0]
    assert w0["count"] >= 1 and 1 <= len(w0["messages"]) <= 3 and "UI" in w0["messages"][0]
    assert "warning(s)" in found.table()
    assert len(found.volumes) == 1


# -- 5: a missing input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ["load", "scan"])
def test_missing_path_is_gpukit_and_file_not_found(tmp_path, fn):
    p = tmp_path / "does" / "not" / "exist"
    with pytest.raises(InputNotFoundError) as ei:
        getattr(gpukit, fn)(p)
    e = ei.value
    assert isinstance(e, GpukitError) and isinstance(e, FileNotFoundError)
    assert e.path == str(p) and str(p) in str(e) and e.filename == str(p)


# -- a damaged Rows/Columns in a compressed file: refused before anything is allocated --------------------------------
def _ts_compressed(name: str) -> Path:
    from conftest import data_path

    return data_path("ts_compressed", "In", name)


# 4: RLE Lossless, 5: JPEG Lossless (JFIF), 7: JPEG-LS Lossless, 9: JPEG 2000 Lossless, all 384x384 16-bit
@pytest.mark.parametrize("name", ["4.dcm", "5.dcm", "7.dcm", "9.dcm"])
@pytest.mark.parametrize("damage", [("Rows", 60000), ("Columns", 61000)])
def test_damaged_matrix_of_a_compressed_file_fails_before_allocating(tmp_path, name, damage):
    import tracemalloc

    from gpukit.errors import DecodeError

    ds = pydicom.dcmread(_ts_compressed(name))
    setattr(ds, *damage)
    f = tmp_path / name
    ds.save_as(f)
    size = f.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as err:
            gpukit.load(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(f) in str(err.value) and str(damage[1]) in str(err.value), err.value
    # the fuzz rule: never more than 10x the file: 60000x384x2 bytes (46 MB) would be 170x this file
    assert peak < 10 * size, (peak, size)


def test_codestream_shape_parser_agrees_with_pydicom_on_every_compressed_frame():
    """The SOF / SIZ reader used for the check against pydicom's own JPEG parser and the headers."""
    from pydicom.encaps import generate_frames
    from pydicom.pixels.utils import _get_jpg_parameters

    from gpukit.dicom.pixels import _codestream_shape

    seen = 0
    for name in ["5.dcm", "6.dcm", "7.dcm", "8.dcm", "9.dcm"]:
        ds = pydicom.dcmread(_ts_compressed(name))
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        assert _codestream_shape(frame) == (ds.Rows, ds.Columns), name
        if frame[:2] == b"\xff\xd8":
            p = _get_jpg_parameters(frame)
            assert (p["height"], p["width"]) == _codestream_shape(frame), name
        seen += 1
    assert seen == 5
    assert _codestream_shape(b"\x00" * 64) is None and _codestream_shape(b"\xff\xd8\xff\xda\x00\x02") is None


def test_decoder_warnings_go_to_the_volume_not_to_stderr(tmp_path, capfd):
    """pydicom warns while decoding a big-endian frame with excess padding; the warning is in
    ``meta["warnings"]`` with the file's path, and stderr stays clean."""
    ds = pydicom.dcmread(_ts_compressed("3.dcm"))       # Explicit VR Big Endian: decoded by pydicom
    ds.PixelData = ds.PixelData + b"\0" * 2048
    f = tmp_path / "padded.dcm"
    ds.save_as(f)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        vol = gpukit.load(f)
    assert not rec, [str(r.message) for r in rec]
    assert "excess padding" not in capfd.readouterr().err
    (w,) = vol.meta["warnings"]
    assert w["path"] == str(f) and w["count"] == 1 and "excess padding" in w["messages"][0], w
    ref = pydicom.dcmread(_ts_compressed("3.dcm")).pixel_array     # the oracle: pydicom's own decode
    assert vol.shape[0] == 1 and (vol.data[0] == ref).all()
