"""The fast header walker against pydicom: every real file, hand-made edge cases, mutations.

Whenever ``read_header`` answers (not ``None``), its values must be exactly what
pydicom gives for the same file (converted to plain Python), and the Pixel Data
offset/length must point at the bytes pydicom reads as Pixel Data.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.multival import MultiValue
from pydicom.valuerep import IS, DSdecimal, DSfloat, PersonName

from gpukit.dicom import _fastheader as fh
from gpukit.dicom._fastheader import WANTED, WANTED_VR, FastHeader, read_header

from conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
NO_DATA = f"real test data not found at {DATA} (the ../shared/data folder is absent on this machine)"

KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
    "Modality", "SeriesDescription", "SeriesNumber", "InstanceNumber", "AcquisitionNumber", "ImageType",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
    "SpacingBetweenSlices", "SliceLocation", "GantryDetectorTilt", "EchoTime", "EchoNumbers",
    "TemporalPositionIdentifier", "TriggerTime", "DiffusionBValue", "AcquisitionTime", "ContentTime",
    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "RescaleSlope",
    "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction",
    "PixelPaddingValue", "PixelPaddingRangeLimit", "SmallestImagePixelValue", "LargestImagePixelValue",
    "SpecificCharacterSet", "Manufacturer", "PatientID", "PatientName", "StudyDate", "BodyPartExamined",
    "ProtocolName",
)

EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
BIG_ENDIAN, DEFLATED, JPEG_LS = "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.80"
CT, ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"


# ----------------------------------------------------------------------------- reference

def plain(value):
    """pydicom value -> plain Python, as gpukit's loader converts it."""
    if value is None or value == "":
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (DSfloat, DSdecimal)):
        return float(value)
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return ("bytes", bytes(value))      # never equal to anything the walker gives
    if isinstance(value, str):
        return str(value)
    return value


def same(a, b) -> bool:
    """Equal values of the same plain types (1 != 1.0 here; floats compared exactly)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def check_against_pydicom(data: bytes, h: FastHeader) -> None:
    """Everything ``h`` says about the file holding ``data`` agrees with pydicom."""
    ds = pydicom.dcmread(BytesIO(data))
    expected = {kw: plain(ds[kw].value) for kw in KEYWORDS if kw in ds}
    assert set(h.values) == set(expected)
    bad = {kw: (h.values[kw], expected[kw]) for kw in expected if not same(h.values[kw], expected[kw])}
    assert not bad, bad
    assert h.transfer_syntax == ds.file_meta.TransferSyntaxUID
    assert "PixelData" in ds
    px = ds.PixelData
    if h.encapsulated:
        assert h.pixel_length == -1
        assert data[h.pixel_offset:h.pixel_offset + len(px)] == px
        assert data[h.pixel_offset + len(px):h.pixel_offset + len(px) + 8] == b"\xfe\xff\xdd\xe0\0\0\0\0"
    else:
        assert h.pixel_length == len(px)
        raw = data[h.pixel_offset:h.pixel_offset + h.pixel_length]
        assert raw == px
        ba = int(ds.BitsAllocated)
        if ba in (8, 16, 32) and len(raw) % (ba // 8) == 0:
            dtype = np.dtype(f"<{'i' if ds.get('PixelRepresentation', 0) else 'u'}{ba // 8}")
            np.testing.assert_array_equal(np.frombuffer(raw, dtype), np.frombuffer(px, dtype))


# ----------------------------------------------------------------------------- the table

def test_wanted_table_matches_pydicom_dictionary():
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    assert sorted(WANTED.values()) == sorted(KEYWORDS)
    assert len(set(WANTED.values())) == len(WANTED)
    for tag, kw in WANTED.items():
        assert tag_for_keyword(kw) == tag, kw
        assert dictionary_VR(tag) == WANTED_VR[tag], kw
    assert list(WANTED) == sorted(WANTED)
    assert max(WANTED) == fh._LAST_WANTED == 0x00281056     # a literal in the walkers


def test_keywords_are_the_loaders():
    from gpukit.dicom.header import KEYWORDS as LOADER_KEYWORDS

    assert set(LOADER_KEYWORDS) == set(WANTED.values())


def test_import_is_light():
    code = "import sys; import gpukit.dicom._fastheader as m; print('pydicom' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"      # the walker must not pull in pydicom


# ----------------------------------------------------------------------------- real data

def _all_files() -> list:
    if not DATA.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_DATA), id="no-data")]
    out = []
    for dirpath, dirnames, filenames in os.walk(DATA):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath, name)
            out.append(pytest.param(p, id=str(p.relative_to(DATA))))
    return out


@pytest.mark.parametrize("path", _all_files())
def test_every_real_file_agrees_with_pydicom(path):
    h = read_header(path)
    if h is None:
        return      # pydicom's business
    assert isinstance(h, FastHeader)
    check_against_pydicom(path.read_bytes(), h)


def _real(pattern: str) -> list:
    if not DATA.is_dir():
        pytest.skip(NO_DATA)
    files = sorted(DATA.glob(pattern))
    assert files, pattern
    return files


FAST = {  # uncompressed little-endian single-frame files: the fast path must take them
    "ct_philips_1mm/In/Philips/S21570/S2020/I*": 140,
    "ct_philips_tilt/In/Philips/S21610/S2010/I*": 54,
    "ct_philips_tilt/In/Philips/S21610/S3010/I*": 58,
    "ct_philips_tilt/In/Philips/S21610/S1000/I*": None,     # scout
    "ct_philips_tilt/In/Philips/S21610/S4010/I*": 5,        # secondary captures (RGB)
    "mr_siemens_sag_fieldmap/In/*/*.dcm": 5,
    "ts_compressed/In/1.dcm": 1,                            # explicit VR LE
    "ts_compressed/In/2.dcm": 1,                            # implicit VR LE
    "pydicom_data_subset/data_store/data/MR2_UNCR.dcm": 1,
}


@pytest.mark.parametrize("pattern", sorted(FAST))
def test_fast_path_is_taken(pattern):
    files = _real(pattern)
    if FAST[pattern] is not None:
        assert len(files) == FAST[pattern]
    for p in files:
        h = read_header(p)
        assert h is not None, p
        assert not h.encapsulated and h.pixel_offset > 0 and h.pixel_length > 0
        assert h.transfer_syntax in (EXPLICIT, IMPLICIT)
    if pattern.endswith("2.dcm"):
        assert h.transfer_syntax == IMPLICIT


def test_encapsulated_files_are_taken_too():
    for name in ("4", "5", "6", "7", "8", "9"):
        h = read_header(_real(f"ts_compressed/In/{name}.dcm")[0])
        assert h is not None and h.encapsulated and h.pixel_length == -1


@pytest.mark.parametrize("pattern", [
    "**/DIRFILE",                                   # directory records, no image
    "ts_compressed/In/3.dcm",                       # big endian
    "pydicom_data_subset/data_store/data/emri_small*.dcm",   # enhanced MR (and big endian)
    "pydicom_data_subset/data_store/data/eCT_Supplemental.dcm",
    "enh_mr_siemens_xa30/In/*/*.dcm",               # enhanced multi-frame
    "**/*.nii", "**/*.json", "**/README.md",        # not DICOM
])
def test_left_to_pydicom(pattern):
    for p in _real(pattern):
        assert read_header(p) is None, p


def test_small_reads_and_no_jump_give_the_same_answers(monkeypatch):
    """Resuming after short buffers (windows, restarts inside sequences) changes nothing."""
    files = (_real("ct_philips_1mm/In/Philips/S21570/S2020/I1[0-2]0") + _real("mr_siemens_sag_fieldmap/In/*/1.dcm")
             + _real("ts_compressed/In/[12469].dcm") + _real("ct_philips_tilt/In/Philips/S21610/S4010/I10"))
    want = {p: read_header(p) for p in files}
    assert all(want.values())
    for prefix, chunk, jump in ((200, 64, True), (512, 1000, False), (140, 8, False), (4096, 100, True)):
        monkeypatch.setattr(fh, "_PREFIX", prefix)
        monkeypatch.setattr(fh, "_CHUNK", chunk)
        monkeypatch.setattr(fh, "_JUMP", jump)
        for p in files:
            assert read_header(p) == want[p], (p, prefix, chunk, jump)
    monkeypatch.undo()
    for p in files:     # a caller-supplied prefix, short or whole
        data = p.read_bytes()
        assert read_header(p, buf=data[:300]) == want[p]
        assert read_header(p, buf=data[:10]) == want[p]
        assert read_header(p, buf=b"") == want[p]
        assert read_header(p, buf=data) == want[p]
        assert read_header(str(p), buf=data[:20000]) == want[p]


# ----------------------------------------------------------------------------- broken input

def test_truncated_copies(tmp_path):
    src = _real("ct_philips_1mm/In/Philips/S21570/S2020/I10")[0]
    data = src.read_bytes()
    h = read_header(src)
    off = h.pixel_offset
    cuts = [0, 1, 100, 128, 131, 132, 135, 140, 200, 300, 1000, 2000, 4000, 6000, 8000,
            off - 12, off - 11, off - 1, off, off + 2, off + 1000, len(data) // 2, len(data) - 2, len(data) - 1]
    for cut in cuts:
        p = tmp_path / f"cut{cut}"
        p.write_bytes(data[:cut])
        assert read_header(p) is None, cut
        assert read_header(p, buf=data[:cut]) is None, cut
    assert data == src.read_bytes()     # never modified


def test_not_dicom(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "empty": b"",
        "random": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "dicm-random": bytes(128) + b"DICM" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "dicm-only": bytes(128) + b"DICM",
        "zeros": bytes(10000),
    }
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        assert read_header(p) is None, name
    assert read_header(tmp_path / "missing") is None
    assert read_header(tmp_path) is None        # a directory
    assert read_header(12345) is None           # not a path at all (an fd number: never raises)


def test_raw_dicom_without_preamble_is_left_to_pydicom(tmp_path):
    src = _real("ct_philips_1mm/In/Philips/S21570/S2020/I10")[0]
    data = src.read_bytes()
    h = read_header(src)
    # drop the preamble and file meta: an old-style raw dataset
    ds_start = data.index(b"\x08\x00\x05\x00")
    p = tmp_path / "raw"
    p.write_bytes(data[ds_start:])
    assert h is not None and read_header(p) is None


# ----------------------------------------------------------------------------- hand-made files

UNDEF = 0xFFFFFFFF
LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _pad(vr: str, value) -> bytes:
    if isinstance(value, str):
        value = value.encode("latin-1")
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB", "UN") else b" "
    return value


def ex(tag: int, vr: str, value=b"", undefined: bool = False) -> bytes:
    """One explicit VR little endian element (value already encoded for SQ/UN/OB); vr RAW: as is."""
    if vr == "RAW":
        return value
    value = value if undefined else _pad(vr, value)
    g, e = tag >> 16, tag & 0xFFFF
    if vr in LONG:
        return struct.pack("<HH2sHI", g, e, vr.encode(), 0, UNDEF if undefined else len(value)) + value
    return struct.pack("<HH2sH", g, e, vr.encode(), len(value)) + value


def im(tag: int, vr: str, value=b"", undefined: bool = False) -> bytes:
    """One implicit VR little endian element (vr only picks the padding); vr RAW: as is."""
    if vr == "RAW":
        return value
    value = value if undefined else _pad(vr, value)
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, UNDEF if undefined else len(value)) + value


def item(content: bytes, undefined: bool = False) -> bytes:
    if undefined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, UNDEF) + content + ITEM_END
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content


def part10(ts: str, body: bytes, sop: str = CT) -> bytes:
    meta = (ex(0x00020001, "OB", b"\0\1") + ex(0x00020002, "UI", sop) + ex(0x00020003, "UI", "1.2.3.4")
            + ex(0x00020010, "UI", ts) + ex(0x00020012, "UI", "1.2.3.5"))
    return b"\0" * 128 + b"DICM" + ex(0x00020000, "UL", struct.pack("<I", len(meta))) + meta + body


def image(enc, extra=(), *, sop=CT, charset="ISO_IR 100", name="Doe^John", pixrep=0, pixels=None,
          rows=2, cols=3, bits=16, after=b"", skip=()):
    """A small CT-like dataset; ``extra`` adds (tag, vr, value[, undefined]) elements (sorted in)."""
    if pixels is None:
        pixels = bytes(range(rows * cols * bits // 8))
    elems = [
        (0x00080005, "CS", charset), (0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"),
        (0x00080016, "UI", sop), (0x00080018, "UI", "1.2.3.4"), (0x00080060, "CS", "CT"),
        (0x00100010, "PN", name), (0x0020000D, "UI", "1.2.3.6"), (0x0020000E, "UI", "1.2.3.7"),
        (0x00200013, "IS", "7"), (0x00200032, "DS", "-1.5\\2\\3e2"), (0x00200037, "DS", "1\\0\\0\\0\\1\\0"),
        (0x00280002, "US", struct.pack("<H", 1)), (0x00280004, "CS", "MONOCHROME2"),
        (0x00280010, "US", struct.pack("<H", rows)), (0x00280011, "US", struct.pack("<H", cols)),
        (0x00280030, "DS", "0.5\\0.5"), (0x00280100, "US", struct.pack("<H", bits)),
        (0x00280101, "US", struct.pack("<H", bits)), (0x00280102, "US", struct.pack("<H", bits - 1)),
        (0x00280103, "US", struct.pack("<H", pixrep)),
        (0x7FE00010, "OW" if bits > 8 else "OB", pixels),
    ]
    elems = [x for x in elems if x[0] not in skip]
    if charset is None:
        elems = elems[1:]
    elems = sorted(elems + list(extra), key=lambda x: x[0])
    return b"".join(enc(*x) for x in elems) + after


def _write(tmp_path, data: bytes, name="x.dcm") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def agrees(tmp_path, data: bytes) -> FastHeader:
    p = _write(tmp_path, data)
    h = read_header(p)
    assert h is not None
    check_against_pydicom(data, h)
    assert read_header(p, buf=data) == h
    return h


def _nested_explicit() -> bytes:
    """An undefined-length SQ: an undefined item holding a nested undefined SQ, a defined item, an empty item."""
    inner = ex(0x00081150, "UI", "1.2.3") + ex(0x00081155, "UI", "1.2.3.4.5")
    nested = ex(0x0040A730, "SQ", item(inner, True) + item(inner) + SEQ_END, undefined=True)
    first = ex(0x00081150, "UI", "1.2.3") + nested + ex(0x00081160, "IS", "1")
    return item(first, True) + item(inner) + item(b"", True) + SEQ_END


def _nested_implicit() -> bytes:
    inner = im(0x00081150, "UI", "1.2.3") + im(0x00081155, "UI", "1.2.3.4.5")
    nested = im(0x0040A730, "SQ", item(inner, True) + item(inner) + SEQ_END, undefined=True)
    return item(im(0x00081150, "UI", "1.2.3") + nested, True) + item(inner) + item(b"", True) + SEQ_END


def test_explicit_undefined_sequences_un_and_encapsulated_values(tmp_path):
    extra = [
        (0x00081140, "SQ", _nested_explicit(), True),              # undefined SQ, nested
        (0x00081199, "SQ", SEQ_END, True),                         # empty undefined SQ
        (0x00089215, "SQ", item(ex(0x00080100, "SH", "X"))),       # defined-length SQ
        (0x00091010, "LO", "PRIVATE CREATOR"),
        (0x00091011, "UN", _nested_implicit(), True),              # UN undefined: implicit items
        (0x00091012, "OB", item(b"abcd") + item(b"") + SEQ_END, True),   # encapsulated-like value
        (0x00091013, "UN", b"\x01\x02\x03\x04"),
        (0x00091014, "OW", b"\xff" * 10),
        (0x00091015, "UT", "free text"),
        (0x00291010, "SQ", item(b"", True) + SEQ_END, True),       # private, after 0028: the jump
    ]
    agrees(tmp_path, part10(EXPLICIT, image(ex, extra)))


def test_explicit_sequence_with_an_implicit_item(tmp_path):
    # pydicom reads an item whose first "VR" is not two capitals as implicit VR (issue 1067)
    seq = item(im(0x00081150, "UI", "1.2.3") + im(0x00081155, "UI", "1.2.3.4"), True) + SEQ_END
    agrees(tmp_path, part10(EXPLICIT, image(ex, [(0x00081140, "SQ", seq, True)])))


def test_implicit_undefined_sequences(tmp_path):
    extra = [
        (0x00081140, "SQ", _nested_implicit(), True),              # public SQ: dictionary consulted
        (0x00091010, "LO", "PRIVATE CREATOR"),
        (0x00091011, "UN", _nested_implicit(), True),              # private: items -> sequence
        (0x00091012, "UN", SEQ_END, True),                         # private, empty
        (0x00080081, "ST", item(b"ab") + SEQ_END, True),           # public non-SQ, defined items
    ]
    agrees(tmp_path, part10(IMPLICIT, image(im, extra)))


@pytest.mark.parametrize("pixrep", [0, 1])
@pytest.mark.parametrize("explicit", [True, False])
def test_us_or_ss(tmp_path, pixrep, explicit):
    vr = "SS" if pixrep else "US"
    extra = [(0x00280106, vr, struct.pack("<h" if pixrep else "<H", -5 if pixrep else 5)),
             (0x00280107, vr, struct.pack("<h" if pixrep else "<H", 4000)),
             (0x00280120, vr, struct.pack("<h" if pixrep else "<H", -2000 if pixrep else 60000)),
             (0x00280121, vr, struct.pack("<2H", 1, 2))]
    h = agrees(tmp_path, part10(EXPLICIT if explicit else IMPLICIT, image(ex if explicit else im, extra, pixrep=pixrep)))
    assert h.values["PixelPaddingRangeLimit"] == [1, 2]
    assert h.values["PixelPaddingValue"] == (-2000 if pixrep else 60000)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on odd-but-legal-to-read values
@pytest.mark.parametrize("explicit", [True, False])
def test_value_conversions(tmp_path, explicit):
    enc = ex if explicit else im
    extra = [
        (0x00080020, "DA", "20200101 "), (0x00080032, "TM", "101010.5\0"), (0x00080070, "LO", " Vendor \\ B "),
        (0x0008103E, "LO", ""), (0x00100020, "LO", "ID\\\\x"), (0x00180050, "DS", " 1.25 "),
        (0x00180081, "DS", "   "), (0x00180086, "IS", "1\\2\\3"), (0x00180088, "DS", "+1e-1"),
        (0x00181030, "LO", "proto\0"), (0x00181060, "DS", "1.0\\\\2"), (0x00181120, "DS", "-0"),
        (0x00189087, "FD", struct.pack("<d", 1000.5)), (0x00200011, "IS", " 12"), (0x00200012, "IS", "3.0"),
        (0x00200052, "UI", "1.2.3.4.5\0"), (0x00200100, "IS", ""), (0x00201041, "DS", "1234567890123456"),
        (0x00280006, "US", b""), (0x00280008, "IS", "1"), (0x00281050, "DS", "40\\400"),
        (0x00281051, "DS", "80\\1500"), (0x00281052, "DS", "-1024.0"), (0x00281053, "DS", "1"),
        (0x00281054, "LO", "HU"), (0x00281056, "CS", "LINEAR_EXACT"), (0x00180015, "CS", "HEAD\\"),
    ]
    h = agrees(tmp_path, part10(EXPLICIT if explicit else IMPLICIT, image(enc, extra)))
    assert h.values["SeriesDescription"] is None and h.values["EchoTime"] is None
    assert h.values["AcquisitionNumber"] == 3 and h.values["EchoNumbers"] == [1, 2, 3]
    assert h.values["TriggerTime"] == [1.0, None, 2.0]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on odd-but-legal-to-read values
@pytest.mark.parametrize("charset, name", [
    ("ISO_IR 100", "M\xfcller^J\xf6rg"), (None, "M\xfcller^J\xf6rg"), ("ISO_IR 6", "Plain^Name"),
    ("", "Doe^Jane"), ("ISO_IR 192", "M\xfcller^J\xf6rg=\u5c71\u7530"), ("ISO_IR 100", "A^B\\C^D "),
    ("ISO_IR 6", "M\xfcller"), ("ISO_IR 100", "A^B="), ("ISO_IR 100", "A==B^C=\\=\\D="), ("ISO_IR 100", "="), ("ISO_IR 100", "   "),
    ("ISO_IR 192", "\u5c71\u7530^\u592a\u90ce=="),
])
def test_character_sets(tmp_path, charset, name):
    enc_name = name.encode("utf-8" if charset == "ISO_IR 192" else "latin-1")
    h = agrees(tmp_path, part10(EXPLICIT, image(ex, [(0x00081030, "LO", "x")], charset=charset, name=enc_name)))
    assert h.values["PatientName"] == plain(pydicom.dcmread(tmp_path / "x.dcm").PatientName)


@pytest.mark.parametrize("charset, name", [
    ("ISO_IR 144", b"abc"),                       # other character sets: pydicom's job
    ("ISO 2022 IR 100", b"abc"),
    ("ISO_IR 100\\ISO_IR 192", b"abc"),
    ("ISO_IR 192", b"M\xfcller"),                 # not UTF-8
    ("ISO_IR 100", b"\x1b$B"),                    # escape sequence
])
def test_character_sets_left_to_pydicom(tmp_path, charset, name):
    assert read_header(_write(tmp_path, part10(EXPLICIT, image(ex, charset=charset, name=name)))) is None


def test_pixel_data_not_at_the_end_and_odd_lengths(tmp_path):
    # trailing elements after Pixel Data: the jump cannot be used, the walk finds it
    pad = ex(0xFFFCFFFC, "OB", b"\0" * 64)
    agrees(tmp_path, part10(EXPLICIT, image(ex, after=pad)))
    agrees(tmp_path, part10(IMPLICIT, image(im, after=im(0xFFFCFFFC, "OB", b"\0" * 64))))
    # 8-bit odd-sized image: padded to even length
    agrees(tmp_path, part10(EXPLICIT, image(ex, rows=3, cols=3, bits=8, pixels=bytes(range(9)) + b"\0")))
    # a pixel-data-like header inside a private value (not where the jump looks)
    lookalike = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 12)
    agrees(tmp_path, part10(EXPLICIT, image(ex, [(0x00291010, "OB", lookalike + b"\0" * 12)])))


def test_encapsulated_pixel_data(tmp_path):
    frag = item(b"") + item(b"\xff\xd8 jpeg-ls bytes \xff\xd9")
    body = image(ex, skip={0x7FE00010}) + ex(0x7FE00010, "OB", frag + SEQ_END, undefined=True)
    h = agrees(tmp_path, part10(JPEG_LS, body))
    assert h.encapsulated and h.pixel_length == -1


@pytest.mark.parametrize("case", [
    "big-endian", "deflated", "enhanced", "functional-groups", "no-pixels", "out-of-order", "duplicate",
    "out-of-order-after-private",
    "defined-pixels-compressed", "encapsulated-uncompressed", "unknown-vr", "wanted-vr-mismatch",
    "wanted-un", "is-float", "ds-garbage", "implicit-undefined-item-in-non-sq", "private-undefined-raw",
    "float-pixel-data", "item-at-top", "no-transfer-syntax", "implicit-us-or-ss-without-pixrep",
    "implicit-claims-explicit", "secondary-vr-length", "sop-unknown", "huge-length",
])
def test_left_to_pydicom_synthetic(tmp_path, case):
    if case == "big-endian":
        data = part10(BIG_ENDIAN, image(ex))
    elif case == "deflated":
        data = part10(DEFLATED, image(ex))
    elif case == "enhanced":
        data = part10(EXPLICIT, image(ex, sop=ENHANCED_CT), sop=ENHANCED_CT)
    elif case == "functional-groups":
        # (seen by the walk; once past group 0028 the jump to the end of the file skips it,
        # so trailing padding is added to force the walk)
        data = part10(EXPLICIT, image(ex, [(0x52009229, "SQ", item(b""))], after=ex(0xFFFCFFFC, "OB", bytes(8))))
    elif case == "no-pixels":
        data = part10(EXPLICIT, image(ex, skip={0x7FE00010}))
    elif case == "out-of-order":
        data = part10(EXPLICIT, image(ex, skip={0x7FE00010}) + ex(0x00080060, "CS", "MR") + ex(0x7FE00010, "OW", bytes(12)))
    elif case == "out-of-order-after-private":   # an anonymiser appended an attribute
        data = part10(EXPLICIT, image(ex, [(0x00291010, "LO", "x")], skip={0x7FE00010})
                      + ex(0x00281053, "DS", "2") + ex(0x7FE00010, "OW", bytes(12)))
    elif case == "duplicate":
        data = part10(EXPLICIT, image(ex, [(0x00080060, "CS", "MR")]))
    elif case == "defined-pixels-compressed":
        data = part10(JPEG_LS, image(ex))
    elif case == "encapsulated-uncompressed":
        data = part10(EXPLICIT, image(ex, skip={0x7FE00010}) + ex(0x7FE00010, "OB", item(b"ab") + SEQ_END, True))
    elif case == "unknown-vr":
        data = part10(EXPLICIT, image(ex, [(0x00091010, "QQ", "x")]))
    elif case == "wanted-vr-mismatch":
        data = part10(EXPLICIT, image(ex, [(0x00180050, "FD", struct.pack("<d", 1.0))]))
    elif case == "wanted-un":
        data = part10(EXPLICIT, image(ex, [(0x00180050, "UN", "1.0")]))
    elif case == "is-float":
        data = part10(EXPLICIT, image(ex, [(0x00200012, "IS", "1.5")]))
    elif case == "ds-garbage":
        data = part10(EXPLICIT, image(ex, [(0x00180050, "DS", "abc")]))
    elif case == "implicit-undefined-item-in-non-sq":
        data = part10(IMPLICIT, image(im, [(0x00080081, "ST", item(b"", True) + SEQ_END, True)]))
    elif case == "private-undefined-raw":
        data = part10(IMPLICIT, image(im, [(0x00091011, "UN", b"rawbytes" + SEQ_END, True)]))
    elif case == "float-pixel-data":
        data = part10(EXPLICIT, image(ex, skip={0x7FE00010}) + ex(0x7FE00008, "OF", bytes(24)))
    elif case == "item-at-top":
        data = part10(EXPLICIT, image(ex, skip={0x7FE00010}) + item(b"") + ex(0x7FE00010, "OW", bytes(12)))
    elif case == "no-transfer-syntax":
        data = b"\0" * 128 + b"DICM" + ex(0x00020002, "UI", CT) + image(ex)
    elif case == "implicit-us-or-ss-without-pixrep":
        data = part10(IMPLICIT, image(im, [(0x00280106, "US", struct.pack("<H", 1))], skip={0x00280103}))
    elif case == "implicit-claims-explicit":
        data = part10(IMPLICIT, image(ex))
    elif case == "secondary-vr-length":
        odd = struct.pack("<HH2sH", 0x0028, 0x0006, b"US", 3) + b"\1\0\2"
        data = part10(EXPLICIT, image(ex, [(0x00280006, "RAW", odd)]))
    elif case == "sop-unknown":
        data = part10(EXPLICIT, image(ex, sop="1.2.3"), sop="1.2.3")
    elif case == "huge-length":
        data = part10(EXPLICIT, image(ex, skip={0x7FE00010}) + struct.pack("<HH2sHI", 0x0029, 0x1010, b"OB", 0, 0x7FFFFFF0))
    else:  # pragma: no cover
        raise AssertionError(case)
    assert read_header(_write(tmp_path, data)) is None


def test_synthetic_files_survive_small_buffers(tmp_path, monkeypatch):
    files = [
        part10(EXPLICIT, image(ex, [(0x00081140, "SQ", _nested_explicit(), True),
                                    (0x00091010, "LO", "P"), (0x00091011, "UN", _nested_implicit(), True)])),
        part10(IMPLICIT, image(im, [(0x00081140, "SQ", _nested_implicit(), True)])),
    ]
    want = [agrees(tmp_path, d) for d in files]
    for prefix, chunk in ((140, 1), (150, 7), (300, 16)):
        monkeypatch.setattr(fh, "_PREFIX", prefix)
        monkeypatch.setattr(fh, "_CHUNK", chunk)
        for d, w in zip(files, want):
            assert read_header(_write(tmp_path, d)) == w


# ----------------------------------------------------------------------------- mutations

def _mutation_bases() -> list:
    bases = [
        part10(EXPLICIT, image(ex, [(0x00081140, "SQ", _nested_explicit(), True),
                                    (0x00091010, "LO", "P"), (0x00091011, "UN", _nested_implicit(), True),
                                    (0x00091012, "OB", item(b"abcd") + SEQ_END, True)])),
        part10(IMPLICIT, image(im, [(0x00081140, "SQ", _nested_implicit(), True)])),
    ]
    if DATA.is_dir():
        for rel in ("ct_philips_1mm/In/Philips/S21570/S2020/I10", "ts_compressed/In/2.dcm"):
            p = DATA / rel
            if p.exists():
                bases.append(p.read_bytes())
    return bases


_BASES = _mutation_bases()
_BASE_HEADERS: dict = {}


def _base_header(which: int):
    if which not in _BASE_HEADERS:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = Path(d, "base.dcm")
            p.write_bytes(_BASES[which])
            _BASE_HEADERS[which] = read_header(p)
    return _BASE_HEADERS[which]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(_BASES) - 1),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_headers_never_raise(tmp_path_factory, which, edits, cut):
    base = _BASES[which]
    h0 = _base_header(which)
    assert h0 is not None
    data = bytearray(base)
    for where, byte in edits:               # bytes of the header only (up to the Pixel Data value)
        data[int(where * h0.pixel_offset)] = byte
    if cut is not None:
        data = data[:int(cut * len(data))]
    data = bytes(data)
    p = tmp_path_factory.getbasetemp() / "mutated.dcm"
    p.write_bytes(data)
    h = read_header(p, buf=data)
    assert h is None or isinstance(h, FastHeader)
    assert read_header(p) == h
    if h is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(BytesIO(data))
                expected = {kw: plain(ds[kw].value) for kw in KEYWORDS if kw in ds}
        except Exception:
            return      # pydicom rejects what the walker took (a damaged value it never decodes)
        assert set(h.values) == set(expected)
        assert all(same(h.values[k], expected[k]) for k in expected), (h.values, expected)


def test_load_benchmark_smallest_size_runs():
    """The benchmark suite's load section (where the header walk is timed against pydicom) at its quick size."""
    from benchmarks import bench_load

    rows = bench_load.run(size=8, repeats=1)
    impls = {r["impl"] for r in rows}
    assert {"gpukit.load", "gpukit fast header walker", "pydicom dcmread(stop_before_pixels=True)"} <= impls
    assert all({"op", "impl", "median_s", "p10_s", "p90_s"} <= set(r) for r in rows)
