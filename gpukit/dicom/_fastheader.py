"""A fast, exact DICOM header walker for the common case; ``None`` means "ask pydicom".

:func:`read_header` opens a file once, reads a prefix (16 KiB, more only when
the header is longer), walks the top-level data elements without decoding the
ones it does not need, decodes the :data:`WANTED` attributes exactly as
pydicom 3 would (converted to plain Python: ``float``, ``int``, ``str``, lists
of them, ``None`` for empty values) and stops at Pixel Data (7FE0,0010),
recording where its value starts.

Handled: Part 10 files (128-byte preamble + ``DICM``) in Implicit or Explicit
VR Little Endian, or an encapsulated (compressed) little-endian transfer
syntax, whose SOP Class is a plain (non-enhanced) image storage class and
which hold Pixel Data.  Private tags, sequences of defined and undefined
length (nested items, item and sequence delimiters, undefined-length UN
holding implicit-VR items, encapsulated values) are walked over.

Everything else returns ``None``, never raises: no preamble/``DICM``, Big
Endian, Deflated or unknown transfer syntaxes, enhanced multi-frame and other
SOP classes, character sets other than ASCII / ISO_IR 100 / ISO_IR 192, a
wanted attribute stored with an unexpected VR or a value pydicom would not
turn into a plain number, tags out of order, truncated or malformed data, and
files without Pixel Data.  The caller then reads the file with pydicom.

The walker never imports pydicom, except in one rare case (an implicit-VR,
undefined-length public element holding an item of undefined length, where
pydicom's own choice depends on its data dictionary).

One deliberate leniency: the contents of defined-length items are skipped by
their length, never parsed, so a file whose damage lies only inside such an
item (where pydicom raises when it parses the enclosing undefined-length
sequence) is still read; the wanted attributes and Pixel Data position do not
depend on it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from struct import Struct, unpack_from

__all__ = ["WANTED", "WANTED_VR", "FastHeader", "read_header"]

# (tag, pydicom keyword, dictionary VR), hardcoded: importing pydicom's
# dictionary would cost far more than the whole walk (a test checks this table).
_TABLE = (
    (0x00080005, "SpecificCharacterSet", "CS"),
    (0x00080008, "ImageType", "CS"),
    (0x00080016, "SOPClassUID", "UI"),
    (0x00080018, "SOPInstanceUID", "UI"),
    (0x00080020, "StudyDate", "DA"),
    (0x00080032, "AcquisitionTime", "TM"),
    (0x00080033, "ContentTime", "TM"),
    (0x00080060, "Modality", "CS"),
    (0x00080070, "Manufacturer", "LO"),
    (0x0008103E, "SeriesDescription", "LO"),
    (0x00100010, "PatientName", "PN"),
    (0x00100020, "PatientID", "LO"),
    (0x00180015, "BodyPartExamined", "CS"),
    (0x00180050, "SliceThickness", "DS"),
    (0x00180081, "EchoTime", "DS"),
    (0x00180086, "EchoNumbers", "IS"),
    (0x00180088, "SpacingBetweenSlices", "DS"),
    (0x00181030, "ProtocolName", "LO"),
    (0x00181060, "TriggerTime", "DS"),
    (0x00181120, "GantryDetectorTilt", "DS"),
    (0x00189087, "DiffusionBValue", "FD"),
    (0x0020000D, "StudyInstanceUID", "UI"),
    (0x0020000E, "SeriesInstanceUID", "UI"),
    (0x00200011, "SeriesNumber", "IS"),
    (0x00200012, "AcquisitionNumber", "IS"),
    (0x00200013, "InstanceNumber", "IS"),
    (0x00200032, "ImagePositionPatient", "DS"),
    (0x00200037, "ImageOrientationPatient", "DS"),
    (0x00200052, "FrameOfReferenceUID", "UI"),
    (0x00200100, "TemporalPositionIdentifier", "IS"),
    (0x00201041, "SliceLocation", "DS"),
    (0x00280002, "SamplesPerPixel", "US"),
    (0x00280004, "PhotometricInterpretation", "CS"),
    (0x00280006, "PlanarConfiguration", "US"),
    (0x00280008, "NumberOfFrames", "IS"),
    (0x00280010, "Rows", "US"),
    (0x00280011, "Columns", "US"),
    (0x00280030, "PixelSpacing", "DS"),
    (0x00280100, "BitsAllocated", "US"),
    (0x00280101, "BitsStored", "US"),
    (0x00280102, "HighBit", "US"),
    (0x00280103, "PixelRepresentation", "US"),
    (0x00280106, "SmallestImagePixelValue", "US or SS"),
    (0x00280107, "LargestImagePixelValue", "US or SS"),
    (0x00280120, "PixelPaddingValue", "US or SS"),
    (0x00280121, "PixelPaddingRangeLimit", "US or SS"),
    (0x00281050, "WindowCenter", "DS"),
    (0x00281051, "WindowWidth", "DS"),
    (0x00281052, "RescaleIntercept", "DS"),
    (0x00281053, "RescaleSlope", "DS"),
    (0x00281054, "RescaleType", "LO"),
    (0x00281056, "VOILUTFunction", "CS"),
)

#: tag (group << 16 | element) -> pydicom keyword of every attribute read.
WANTED: dict[int, str] = {t: kw for t, kw, _ in _TABLE}
#: tag -> dictionary VR (as pydicom spells it) of every attribute read.
WANTED_VR: dict[int, str] = {t: vr for t, _, vr in _TABLE}


def _vr_code(vr: str) -> int:
    """Two VR characters as the little-endian 16-bit number they form in the file."""
    return ord(vr[0]) | ord(vr[1]) << 8


# Explicit VR: VR code -> element header size (12: 2 reserved bytes and a 4-byte length).
_VR_HDR = {_vr_code(vr): 12 for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")}
_VR_HDR.update({_vr_code(vr): 8 for vr in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
                                          "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US")})
_OB, _OW, _SQ, _UN, _US, _SS, _UI = (_vr_code(v) for v in ("OB", "OW", "SQ", "UN", "US", "SS", "UI"))

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_RLE = "1.2.840.10008.1.2.5"
_JPEG_FAMILY = "1.2.840.10008.1.2.4."   # JPEG, JPEG-LS, JPEG 2000, HTJ2K, MPEG, HEVC: encapsulated

# Plain image storage classes whose geometry is in the top-level dataset.
# Enhanced / legacy-converted multi-frame, NM, RT, PET enhanced... go to pydicom.
_SOP_CLASSES = frozenset("1.2.840.10008.5.1.4.1.1." + s for s in (
    "1", "1.1", "1.1.1", "1.2", "1.2.1", "1.3", "1.3.1",   # CR, DX, MG, IO
    "2",                                                  # CT Image
    "4",                                                  # MR Image
    "6.1", "3.1",                                         # US, US Multi-frame
    "7", "7.1", "7.2", "7.3", "7.4",                      # Secondary Capture (+ multi-frame)
    "12.1", "12.2",                                       # XA, RF
    "128",                                                # PET Image
))

# SpecificCharacterSet -> Python codec for text VRs (LO, PN); pydicom decodes
# the other string VRs (CS, UI, DA, TM, DS, IS) with its default, ISO 8859-1.
_CODECS = {None: "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}

_PREFIX = 16384       # first read
_CHUNK = 65536        # later reads (a long header, or a window after a big skipped value)
_MAX_DEPTH = 32       # nested undefined-length sequences
# Once every wanted attribute is passed, look for Pixel Data at the end of the file
# (file size - expected length - header), checked by tag bytes, VR and length, instead
# of walking the private groups in between: ~15% faster on Philips CT. Off: it trusts
# the tags to be sorted, and a file with an attribute appended out of order (some
# anonymisers do that) would then lose it silently, where the walk returns None.
_JUMP = False

_UNDEFINED = 0xFFFFFFFF

_HHHH = Struct("<HHHH").unpack_from
_HHI = Struct("<HHI").unpack_from
_I = Struct("<I").unpack_from
_H = Struct("<H").unpack_from

# Windows needs O_BINARY; close-on-exec is polite in threaded callers; O_NONBLOCK: opening a FIFO
# must not wait for a writer (regular files ignore the flag; non-regular ones are refused after fstat)
_O_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(slots=True)
class FastHeader:
    """What the fast walker found; ``values`` holds only WANTED attributes present at top level."""

    values: dict
    transfer_syntax: str
    pixel_offset: int = -1      # file offset of the first byte of the Pixel Data value
    pixel_length: int = -1      # its length; -1 when undefined (encapsulated)
    encapsulated: bool = False


class _Bad(Exception):
    """Not handled here: the caller falls back to pydicom."""


class _More(Exception):
    """The buffer ends before byte ``need`` (relative to the buffer)."""

    def __init__(self, need: int):
        self.need = need


class _State:
    __slots__ = ("last", "codec", "pix_off", "pix_len", "pix_vr")

    def __init__(self) -> None:
        self.last = -1
        self.codec = "latin-1"
        self.pix_off = -1
        self.pix_len = -1
        self.pix_vr = None


# ---------------------------------------------------------------------------------------------
# value conversion (as pydicom 3 does it, then made plain); each takes (raw, codec, values)

def _to_float(p: str):
    if not p:
        return None                      # pydicom keeps '' -> plain None
    if p.isspace():
        raise _Bad("blank number (pydicom keeps the blanks as a str)")
    return float(p)                      # DSfloat is float(str): same parser, same value


def _to_int(p: str):
    if not p:
        return None
    if p.isspace():
        raise _Bad("blank number (pydicom keeps the blanks as a str)")
    try:
        v = int(p)
    except ValueError:
        f = float(p)                     # pydicom accepts "1.0"-style IS
        if not f.is_integer():
            raise _Bad("non-integer IS (pydicom gives ISfloat)") from None
        v = int(f)
    if v != float(p):                    # pydicom turns such values into ISfloat
        raise _Bad("IS beyond float precision")
    return v


def _numbers(raw: bytes, size: int, fmt: str):
    n = len(raw)
    if n % size:
        raise _Bad("binary value length is not a multiple of its size")
    count = n // size
    if count == 0:
        return None
    if count == 1:
        return unpack_from("<" + fmt, raw)[0]
    return list(unpack_from("<%d%s" % (count, fmt), raw))


def _d_str(raw: bytes, codec: str, values: dict):
    """CS DA TM: pydicom's default ISO 8859-1 whatever the character set; rstrip, split."""
    s = raw.decode("latin-1").rstrip(" \x00")
    if "\\" in s:
        return [p or None for p in s.split("\\")]
    return s or None


def _d_ui(raw: bytes, codec: str, values: dict):
    """UI: as CS, then each value stripped of surrounding whitespace (pydicom's UID class does)."""
    s = raw.decode("latin-1").rstrip(" \x00")
    if "\\" in s:
        return [p.strip() or None for p in s.split("\\")]
    return s.strip() or None


def _d_ds(raw: bytes, codec: str, values: dict):
    s = raw.decode("latin-1").strip().rstrip(" \x00")
    if "\\" in s:
        return [_to_float(p) for p in s.split("\\")]
    return float(s) if s else None      # s has no surrounding whitespace here


def _d_is(raw: bytes, codec: str, values: dict):
    s = raw.decode("latin-1").rstrip(" \x00")
    if "\\" in s:
        return [_to_int(p) for p in s.split("\\")]
    return _to_int(s)


def _d_us(raw: bytes, codec: str, values: dict):
    if len(raw) == 2:
        return raw[0] | raw[1] << 8
    return _numbers(raw, 2, "H")


def _d_ss(raw: bytes, codec: str, values: dict):
    return _numbers(raw, 2, "h")


def _d_fd(raw: bytes, codec: str, values: dict):
    return _numbers(raw, 8, "d")


def _d_text(raw: bytes, codec: str, values: dict):
    """LO: the file's character set; split, then rstrip each value."""
    if b"\x1b" in raw:
        raise _Bad("ISO 2022 escape sequence")
    parts = raw.decode(codec).split("\\")
    if len(parts) == 1:
        return parts[0].rstrip("\x00 ") or None
    return [p.rstrip("\x00 ") or None for p in parts]


def _d_pn(raw: bytes, codec: str, values: dict):
    raw = raw.rstrip(b"\x00 ")
    if b"\x1b" in raw:
        raise _Bad("ISO 2022 escape sequence")
    s = raw.decode(codec)
    # str(PersonName) joins its "="-separated groups after dropping trailing empty ones
    if "\\" in s:
        return [p.rstrip("=") or None for p in s.split("\\")]
    return s.rstrip("=") or None


def _d_usss(raw: bytes, codec: str, values: dict):
    """Implicit VR 'US or SS': pydicom picks by PixelRepresentation (which precedes it)."""
    pr = values.get("PixelRepresentation")
    if type(pr) is not int:
        raise _Bad("US or SS without a usable PixelRepresentation before it")
    return _numbers(raw, 2, "H" if pr == 0 else "h")


_DECODER_OF_VR = {"CS": _d_str, "UI": _d_ui, "DA": _d_str, "TM": _d_str, "LO": _d_text, "PN": _d_pn,
                  "DS": _d_ds, "IS": _d_is, "US": _d_us, "US or SS": _d_usss, "FD": _d_fd}
# tag -> (keyword, decoder, VR code expected in explicit VR; 0 for 'US or SS': US or SS in the file)
_WANT = {t: (kw, _DECODER_OF_VR[vr], 0 if vr == "US or SS" else _vr_code(vr)) for t, kw, vr in _TABLE}


def _charset(value) -> str:
    try:
        return _CODECS[value]
    except (KeyError, TypeError):
        raise _Bad(f"character set {value!r}") from None


# ---------------------------------------------------------------------------------------------
# skipping undefined-length values (nested datasets)

def _dictionary_says_sq(tag: int) -> bool:
    """pydicom's choice for an implicit-VR undefined-length public element (rare: lazy import)."""
    try:
        from pydicom.datadict import dictionary_VR
    except Exception:
        raise _Bad("pydicom needed") from None
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return True        # unknown tag whose value starts with an item: pydicom reads a sequence


# item modes
_M_EXPLICIT = 0        # explicit-VR sequence: each item dataset may turn out implicit (pydicom checks)
_M_IMPLICIT = 1        # implicit-VR sequence
_M_ENCAP = 2           # encapsulated value: only defined-length items
# anything else: the tag of an implicit-VR public element (SQ or encapsulated, per dictionary)


def _skip_items(buf: bytes, pos: int, avail: int, mode: int, depth: int) -> int:
    """Walk items from ``pos`` to past the sequence delimiter; return that position."""
    if depth > _MAX_DEPTH:
        raise _Bad("too deeply nested")
    n = len(buf)
    while True:
        if pos + 8 > n:
            raise _More(pos + 8) if n < avail else _Bad("truncated sequence")
        g, e, ln = _HHI(buf, pos)
        if g != 0xFFFE:
            raise _Bad("expected an item")
        if e == 0xE0DD:
            if ln:
                raise _Bad("sequence delimiter with a length")
            return pos + 8
        if e != 0xE000:
            raise _Bad("expected an item")
        pos += 8
        if ln == _UNDEFINED:
            if mode == _M_ENCAP:
                raise _Bad("undefined-length item in an encapsulated value")
            if mode == _M_EXPLICIT:
                pos = _skip_dataset(buf, pos, avail, False, depth + 1)
            elif mode == _M_IMPLICIT:
                pos = _skip_dataset(buf, pos, avail, True, depth + 1)
            elif _dictionary_says_sq(mode):
                mode = _M_IMPLICIT
                pos = _skip_dataset(buf, pos, avail, True, depth + 1)
            else:
                raise _Bad("undefined-length item in a non-sequence value")
        else:
            pos += ln
            if pos > avail:
                raise _Bad("item runs past the end of the file")


def _skip_dataset(buf: bytes, pos: int, avail: int, implicit: bool, depth: int) -> int:
    """Walk an undefined-length item's dataset to past its item delimiter."""
    n = len(buf)
    if not implicit:
        # pydicom: an item in an explicit-VR sequence is read as implicit VR when
        # its first element's "VR" is not two capital letters.
        if pos + 6 > n:
            raise _More(pos + 6) if n < avail else _Bad("truncated item")
        b0 = buf[pos + 4]
        b1 = buf[pos + 5]
        if not (0x40 < b0 < 0x5B and 0x40 < b1 < 0x5B):
            implicit = True
    vr_hdr = _VR_HDR
    while True:
        if pos + 12 > n and n < avail:
            raise _More(min(pos + 12, avail))
        if pos + 8 > n:
            raise _Bad("truncated item")
        g, e, ln = _HHI(buf, pos)
        if g == 0xFFFE:
            if e == 0xE00D and ln == 0:
                return pos + 8
            raise _Bad("unexpected item/delimiter inside an item")
        if implicit:
            vpos = pos + 8
            if ln == _UNDEFINED:
                pos = _skip_undefined_implicit(buf, g << 16 | e, vpos, avail, depth)
                continue
        else:
            vr = buf[pos + 4] | buf[pos + 5] << 8
            hl = vr_hdr.get(vr, 0)
            if not hl:
                raise _Bad("unknown VR")
            if hl == 12:
                if pos + 12 > n:
                    raise _Bad("truncated item")
                ln = _I(buf, pos + 8)[0]
                vpos = pos + 12
                if ln == _UNDEFINED:
                    pos = _skip_undefined_explicit(buf, vr, vpos, avail, depth)
                    continue
            else:
                ln = _H(buf, pos + 6)[0]
                vpos = pos + 8
        pos = vpos + ln
        if pos > avail:
            raise _Bad("element runs past the end of the file")


def _skip_undefined_explicit(buf: bytes, vr: int, vpos: int, avail: int, depth: int) -> int:
    # pydicom: SQ -> sequence; UN -> sequence (items then read as implicit VR);
    # anything else -> an encapsulated value (defined-length items)
    mode = _M_EXPLICIT if vr == _SQ or vr == _UN else _M_ENCAP
    return _skip_items(buf, vpos, avail, mode, depth + 1)


def _skip_undefined_implicit(buf: bytes, tag: int, vpos: int, avail: int, depth: int) -> int:
    # pydicom: VR from its dictionary; an unknown (e.g. private) tag is a sequence when
    # its value starts with an item tag, otherwise an encapsulated value. Both walk the
    # same way until an undefined-length item shows up.
    if (tag >> 16) & 1:
        mode = _M_IMPLICIT
    else:
        mode = tag
    return _skip_items(buf, vpos, avail, mode, depth + 1)


# ---------------------------------------------------------------------------------------------
# the top-level walkers (hot loops); return None when Pixel Data is reached, else
# (element start, bytes needed) to be resumed with more data

_LAST_WANTED = _TABLE[-1][0]     # every wanted attribute precedes this tag (or is it)


def _pixel_jump(buf: bytes, pos: int, avail: int, values: dict, hdr_len: int) -> int:
    """Where the Pixel Data element starts if it is the last thing in the file, else -1.

    Used only once every wanted attribute has been passed: the expected value length
    follows from Rows x Columns x SamplesPerPixel x frames x BitsAllocated/8, and the
    element header there must be (7FE0,0010) [OB|OW 00 00] with exactly that length;
    otherwise the walk simply goes on.
    """
    rows = values.get("Rows")
    cols = values.get("Columns")
    ba = values.get("BitsAllocated")
    spp = values.get("SamplesPerPixel")
    nf = values.get("NumberOfFrames", 1)
    if type(rows) is not int or type(cols) is not int or type(spp) is not int or type(nf) is not int \
            or ba not in (8, 16, 32, 64):
        return -1
    length = rows * cols * spp * nf * (ba >> 3)
    length += length & 1
    p = avail - length - hdr_len
    if p < pos or p + hdr_len > len(buf) or buf[p:p + 4] != b"\xe0\x7f\x10\x00":
        return -1
    if hdr_len == 12:
        if buf[p + 4:p + 6] not in (b"OW", b"OB") or buf[p + 6:p + 8] != b"\x00\x00" or _I(buf, p + 8)[0] != length:
            return -1
    elif _I(buf, p + 4)[0] != length:
        return -1
    return p


def _walk_explicit(buf: bytes, pos: int, avail: int, values: dict, st: _State, jump: bool):
    n = len(buf)
    want = _WANT
    vr_hdr = _VR_HDR
    hdr = _HHHH
    u32 = _I
    last = st.last
    codec = st.codec
    hi = 0x00281056                     # _LAST_WANTED
    plast = last
    try:
        while True:
            plast = last
            if pos + 12 > n:
                if n < avail:
                    raise _More(min(pos + 12, avail))
                if pos + 8 > n:
                    raise _Bad("no Pixel Data")
            g, e, vr, ln = hdr(buf, pos)
            tag = g << 16 | e
            if tag <= last:
                raise _Bad("tags out of order")
            last = tag
            if vr_hdr[vr] == 8:         # KeyError: not a VR
                vpos = pos + 8
            else:
                if pos + 12 > n:
                    raise _Bad("truncated")
                ln = u32(buf, pos + 8)[0]
                vpos = pos + 12
            if tag > hi:
                if hi == 0x00281056:
                    hi = 0x52009228
                    if jump:
                        p = _pixel_jump(buf, pos, avail, values, 12)
                        if p >= 0:
                            st.pix_off = p + 12
                            st.pix_len = u32(buf, p + 8)[0]
                            st.pix_vr = buf[p + 4] | buf[p + 5] << 8
                            return None
                if tag > 0x52009228:
                    if tag == 0x7FE00010:
                        st.pix_off = vpos
                        st.pix_len = ln
                        st.pix_vr = vr
                        return None
                    if tag == 0x52009229 or tag == 0x52009230 or tag >= 0x7FE00008:
                        raise _Bad("functional groups / float pixel data / no pixel data")
            if ln == 0xFFFFFFFF:
                if tag in want:
                    raise _Bad("undefined length for a wanted attribute")
                pos = _skip_undefined_explicit(buf, vr, vpos, avail, 0)
                continue
            end = vpos + ln
            if tag in want:
                if end > n:
                    if end > avail:
                        raise _Bad("truncated")
                    raise _More(end)
                kw, dec, evr = want[tag]
                if vr != evr:
                    if evr == 0 and (vr == _US or vr == _SS):
                        dec = _d_us if vr == _US else _d_ss
                    else:
                        raise _Bad("unexpected VR for a wanted attribute")
                v = values[kw] = dec(buf[vpos:end], codec, values)
                if tag <= 0x00080016:
                    if tag == 0x00080005:
                        codec = st.codec = _charset(v)
                    elif tag == 0x00080016 and v not in _SOP_CLASSES:
                        raise _Bad("SOP class not handled here (enhanced multi-frame...)")
            pos = end
    except _More as m:
        # ``pos`` is still the start of the element being read: resume there
        st.last = plast
        return pos, m.need
    except KeyError:
        raise _Bad("unknown VR") from None


def _walk_implicit(buf: bytes, pos: int, avail: int, values: dict, st: _State, jump: bool):
    n = len(buf)
    want = _WANT
    hdr = _HHI
    last = st.last
    codec = st.codec
    hi = 0x00281056                     # _LAST_WANTED
    plast = last
    try:
        while True:
            plast = last
            if pos + 8 > n:
                if n < avail:
                    raise _More(pos + 8)
                raise _Bad("no Pixel Data")
            g, e, ln = hdr(buf, pos)
            tag = g << 16 | e
            if tag <= last:
                raise _Bad("tags out of order")
            last = tag
            vpos = pos + 8
            if tag > hi:
                if hi == 0x00281056:
                    hi = 0x52009228
                    if jump:
                        p = _pixel_jump(buf, pos, avail, values, 8)
                        if p >= 0:
                            st.pix_off = p + 8
                            st.pix_len = _I(buf, p + 4)[0]
                            return None
                if tag > 0x52009228:
                    if tag == 0x7FE00010:
                        if ln == 0xFFFFFFFF:
                            raise _Bad("encapsulated Pixel Data in implicit VR")
                        st.pix_off = vpos
                        st.pix_len = ln
                        return None
                    if tag == 0x52009229 or tag == 0x52009230 or tag >= 0x7FE00008:
                        raise _Bad("functional groups / float pixel data / no pixel data")
            if ln == 0xFFFFFFFF:
                if tag in want:
                    raise _Bad("undefined length for a wanted attribute")
                pos = _skip_undefined_implicit(buf, tag, vpos, avail, 0)
                continue
            end = vpos + ln
            if tag in want:
                if end > n:
                    if end > avail:
                        raise _Bad("truncated")
                    raise _More(end)
                w = want[tag]
                v = values[w[0]] = w[1](buf[vpos:end], codec, values)
                if tag <= 0x00080016:
                    if tag == 0x00080005:
                        codec = st.codec = _charset(v)
                    elif tag == 0x00080016 and v not in _SOP_CLASSES:
                        raise _Bad("SOP class not handled here (enhanced multi-frame...)")
            pos = end
    except _More as m:
        st.last = plast
        return pos, m.need


def _read_meta(buf: bytes, avail: int):
    """File meta group (explicit VR LE): (transfer syntax UID, dataset start)."""
    n = len(buf)
    pos = 132
    ts = None
    while True:
        if pos + 12 > n and n < avail:
            raise _More(min(pos + 12, avail))
        if pos + 8 > n:
            raise _Bad("no dataset after the file meta")
        g, e, vr, ln = _HHHH(buf, pos)
        if g != 2:
            break
        hl = _VR_HDR.get(vr, 0)
        if not hl:
            raise _Bad("file meta not in explicit VR")
        if hl == 12:
            if pos + 12 > n:
                raise _Bad("truncated")
            ln = _I(buf, pos + 8)[0]
            vpos = pos + 12
        else:
            vpos = pos + 8
        if ln == _UNDEFINED:
            raise _Bad("undefined length in the file meta")
        end = vpos + ln
        if end > n:
            raise _More(end) if n < avail and end <= avail else _Bad("truncated")
        if e == 0x0010:
            if vr != _UI:
                raise _Bad("odd transfer syntax VR")
            ts = buf[vpos:end].decode("ascii").rstrip("\x00 ")
        pos = end
    if ts is None:
        raise _Bad("no transfer syntax")
    return ts, pos


# ---------------------------------------------------------------------------------------------

def _pread(fd: int, offset: int, count: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    data = os.read(fd, count)
    if len(data) < count:
        chunks = [data]
        got = len(data)
        while got < count:
            more = os.read(fd, count - got)
            if not more:
                break
            chunks.append(more)
            got += len(more)
        data = b"".join(chunks)
    return data


def _read_header(path: str, buf) -> FastHeader | None:
    fd = -1
    try:
        if buf is None:
            fd = os.open(path, _O_FLAGS)
            st_ = os.fstat(fd)
            if not stat.S_ISREG(st_.st_mode):
                return None     # FIFO, socket, device: never read (the caller reports it)
            size = st_.st_size
            data = os.read(fd, min(_PREFIX, size))
            if len(data) < min(_PREFIX, size):
                data = _pread(fd, 0, min(_PREFIX, size))
        else:
            data = bytes(buf)
            st_ = os.stat(path)
            size = st_.st_size
            if len(data) > size or not stat.S_ISREG(st_.st_mode):
                return None

        def more(base: int, keep_from: int, upto: int, minimum: int) -> bytes:
            """A new window of the file starting at keep_from (absolute) holding at least up to upto."""
            nonlocal fd
            if upto > size:
                raise _Bad("truncated")
            want = min(max(upto - keep_from + _CHUNK, minimum), size - keep_from)
            if fd < 0:
                fd = os.open(path, _O_FLAGS)
                if os.fstat(fd).st_size != size:
                    raise _Bad("file changed")
            have_end = base + len(data)
            if base <= keep_from < have_end:
                tail = data[keep_from - base:]
                new = tail + _pread(fd, have_end, want - len(tail))
            else:
                new = _pread(fd, keep_from, want)
            if len(new) < upto - keep_from:
                raise _Bad("short read")
            return new

        if size < 140:
            return None
        if len(data) < 140:     # a short caller-supplied prefix
            data = more(0, 0, 140, 0)
        if data[128:132] != b"DICM":
            return None
        while True:
            try:
                ts, pos = _read_meta(data, size)
                break
            except _More as m:
                data = more(0, 0, m.need, 2 * len(data))

        if ts == _EXPLICIT_LE:
            walk, encapsulated_ts = _walk_explicit, False
        elif ts == _IMPLICIT_LE:
            walk, encapsulated_ts = _walk_implicit, False
        elif ts == _RLE or ts.startswith(_JPEG_FAMILY):
            walk, encapsulated_ts = _walk_explicit, True
        else:
            return None     # big endian, deflated, private or unknown transfer syntaxes
        jump = _JUMP and not encapsulated_ts

        if pos + 6 > len(data):
            data = more(0, 0, pos + 6, 0)
        # pydicom decides explicit/implicit from the first element's VR bytes and
        # overrides the transfer syntax when they disagree: leave those files to it.
        looks_explicit = 0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B
        if looks_explicit != (walk is _walk_explicit):
            return None

        values: dict = {}
        st = _State()
        base = 0
        last_restart = -1
        while True:
            r = walk(data, pos, size - base, values, st, jump)
            if r is None:
                break
            start, need = r
            abs_start = base + start
            minimum = 2 * len(data) if abs_start == last_restart else 0
            last_restart = abs_start
            data = more(base, abs_start, base + need, minimum)
            base = abs_start
            pos = 0

        sop = values.get("SOPClassUID")
        if type(sop) is not str or sop not in _SOP_CLASSES:
            return None
        off = base + st.pix_off
        ln = st.pix_len
        if ln == _UNDEFINED:
            if not encapsulated_ts or st.pix_vr != _OB:
                return None
            return FastHeader(values, ts, off, -1, True)
        if encapsulated_ts or (st.pix_vr is not None and st.pix_vr != _OB and st.pix_vr != _OW):
            return None
        if off + ln > size:
            return None     # truncated pixel data
        return FastHeader(values, ts, off, ln, False)
    finally:
        if fd >= 0:
            os.close(fd)


def read_header(path: "str | os.PathLike", *, buf: bytes | None = None) -> FastHeader | None:
    """Read the WANTED attributes and where Pixel Data lies; ``None``: use pydicom instead.

    ``buf``, when given, holds the file's first bytes (or all of them); the file
    is opened only if the header runs past it. Never raises.
    """
    try:
        return _read_header(os.fspath(path), buf)
    except Exception:
        return None
