"""Reading one file's header: a fast exact walker for the common case, pydicom otherwise.

Everything downstream (grouping, geometry, pixel reading) works from
:class:`FileHeader` and :class:`Frame` records, never from pydicom datasets,
so both paths give the same answers. Enhanced multi-frame files go through
pydicom and their functional groups become one :class:`Frame` per frame.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptDicomError, GpukitError, InputNotFoundError, NotDicomError, NotRegularFileError

#: The attributes gpukit reads from every file (pydicom keywords).
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

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
UNCOMPRESSED_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


#: the most values one multi-valued header attribute gpukit reads may hold (window lists, positions, ...)
MAX_VALUES = 4096


def plain(value: Any) -> Any:
    """A pydicom element value as plain Python (float, int, str, lists of them, None)."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence
    from pydicom.valuerep import DSfloat, IS, PersonName, DSdecimal

    if value is None or value == "":
        return None
    if isinstance(value, (MultiValue, list, tuple)) and not isinstance(value, Sequence) and len(value) > MAX_VALUES:
        # a damaged length field made one header attribute swallow the file (a fuzzed HighBit read as 380,000
        # values took seconds to convert): no attribute gpukit reads has this many values
        raise ValueError(f"a header attribute holds {len(value)} values (at most {MAX_VALUES} expected)")
    if isinstance(value, (MultiValue, list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (DSfloat, DSdecimal)):
        return float(value)
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return None
    return value


@dataclass
class FileHeader:
    """What gpukit knows about one file before reading its pixels."""

    path: str
    values: dict
    transfer_syntax: str
    pixel_offset: int = -1          # file offset of the Pixel Data value (uncompressed, fast path)
    pixel_length: int = -1
    encapsulated: bool = False
    has_pixels: bool = True
    frames: list = field(default_factory=list)   # per-frame geometry for enhanced multi-frame
    truncated: str = ""                          # why the pixel data cannot be complete, if so

    def get(self, key: str, default: Any = None) -> Any:
        v = self.values.get(key)
        return default if v is None else v

    @property
    def n_frames(self) -> int:
        return int(self.get("NumberOfFrames", 1) or 1)

    @property
    def is_enhanced(self) -> bool:
        return bool(self.frames)


@dataclass
class Frame:
    """One 2-D image: a single-frame file, or one frame of a multi-frame file."""

    header: FileHeader
    index: int                      # frame index inside the file (0 for single-frame)
    ipp: tuple | None               # ImagePositionPatient
    iop: tuple | None               # ImageOrientationPatient
    pixel_spacing: tuple | None     # (row spacing, column spacing)
    slope: float = 1.0
    intercept: float = 0.0
    window_center: Any = None
    window_width: Any = None
    echo_time: float | None = None
    temporal: Any = None            # temporal position / trigger time
    stack_id: Any = None
    extra_key: Any = None           # other per-frame distinguishing values (ImageType, b-value)

    @property
    def path(self) -> str:
        return self.header.path


def _num_tuple(v, n: int):
    """``v`` as a tuple of ``n`` finite floats, or None (a damaged value is no geometry, not a crash later)."""
    import math

    if not isinstance(v, (list, tuple)) or len(v) != n:
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
        return None
    return tuple(float(x) for x in v)


def _frames_single(h: FileHeader) -> list[Frame]:
    v = h.values
    ipp = v.get("ImagePositionPatient")
    iop = v.get("ImageOrientationPatient")
    ps = v.get("PixelSpacing")
    nf = h.n_frames
    slope = v.get("RescaleSlope")
    icpt = v.get("RescaleIntercept")
    common = dict(
        ipp=_num_tuple(ipp, 3),
        iop=_num_tuple(iop, 6),
        pixel_spacing=_num_tuple(ps, 2),
        slope=float(slope) if slope is not None else 1.0,
        intercept=float(icpt) if icpt is not None else 0.0,
        window_center=v.get("WindowCenter"), window_width=v.get("WindowWidth"),
        echo_time=v.get("EchoTime"),
        temporal=(v.get("TemporalPositionIdentifier"), v.get("TriggerTime")),
        extra_key=(tuple(v.get("ImageType") or ()), v.get("DiffusionBValue"), v.get("EchoNumbers")),
    )
    if nf > 1:
        if nf > max(os.path.getsize(h.path) - 128, 1):     # every frame needs at least a byte
            raise CorruptDicomError(f"NumberOfFrames {nf} cannot fit in a file of {os.path.getsize(h.path)} bytes",
                                    h.path)
        # A legacy multi-frame file with one position for all frames: frames are
        # stacked along the normal by SpacingBetweenSlices (the only geometry given).
        return [Frame(h, n, **common) for n in range(nf)]
    return [Frame(h, 0, **common)]


def _seq_item(ds, *path):
    """Follow single-item sequences, e.g. _seq_item(fg, 'PlanePositionSequence')."""
    cur = ds
    for kw in path:
        seq = getattr(cur, kw, None) if cur is not None else None
        if not seq:
            return None
        cur = seq[0]
    return cur


def _frames_enhanced(h: FileHeader, ds) -> list[Frame]:
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per = ds.PerFrameFunctionalGroupsSequence

    def pick(fg, *path_and_kw):
        *path, kw = path_and_kw
        for src in (fg, shared):
            item = _seq_item(src, *path) if path else src
            if item is not None and kw in item:
                return plain(item[kw].value)
        return None

    frames = []
    for n, fg in enumerate(per):
        ipp = pick(fg, "PlanePositionSequence", "ImagePositionPatient")
        iop = pick(fg, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = pick(fg, "PixelMeasuresSequence", "PixelSpacing")
        slope = pick(fg, "PixelValueTransformationSequence", "RescaleSlope")
        icpt = pick(fg, "PixelValueTransformationSequence", "RescaleIntercept")
        echo = pick(fg, "MREchoSequence", "EffectiveEchoTime")
        temporal = pick(fg, "FrameContentSequence", "TemporalPositionIndex")
        stack = pick(fg, "FrameContentSequence", "StackID")
        ftype = pick(fg, "MRImageFrameTypeSequence", "FrameType") or pick(fg, "CTImageFrameTypeSequence", "FrameType")
        frames.append(Frame(
            h, n,
            ipp=_num_tuple(ipp, 3),
            iop=_num_tuple(iop, 6),
            pixel_spacing=_num_tuple(ps, 2),
            slope=float(slope) if slope is not None else float(h.get("RescaleSlope", 1.0)),
            intercept=float(icpt) if icpt is not None else float(h.get("RescaleIntercept", 0.0)),
            window_center=pick(fg, "FrameVOILUTSequence", "WindowCenter"),
            window_width=pick(fg, "FrameVOILUTSequence", "WindowWidth"),
            echo_time=echo, temporal=temporal, stack_id=stack,
            extra_key=tuple(ftype) if isinstance(ftype, list) else ftype,
        ))
    return frames


def _looks_like_raw_dicom(path: str) -> bool:
    """A file without preamble that starts with a group 0002/0008 element (old ACR-NEMA style)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return False
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[2:4] in \
        (b"\x00\x00", b"\x01\x00", b"\x05\x00", b"\x08\x00", b"\x10\x00", b"\x12\x00", b"\x16\x00")


class BoundedReader(io.BufferedReader):
    """A binary file whose ``read(n)`` never asks for more than what is left in the file.

    pydicom reads an element's value with ``read(length)``; a damaged length field of
    4 GB would otherwise make Python allocate a 4 GB buffer before finding the file short.
    Constructible as ``BoundedReader(path, "rb")`` (pydicom reopens deferred values so).
    """

    def __init__(self, path, mode: str = "rb"):
        raw = io.FileIO(path, "r")
        try:
            st = os.fstat(raw.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFileError(_not_regular_reason(st.st_mode), path)
        except BaseException:
            raw.close()
            raise
        super().__init__(raw)
        self._size = st.st_size

    def read(self, n=-1):
        if n is not None and n > 0:
            left = self._size - self.tell()
            if n > left:
                n = max(left, 0)
                if n == 0:
                    return b""
        return super().read(n)


def _not_regular_reason(mode: int) -> str:
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode) else
            "a directory" if stat.S_ISDIR(mode) else "not a regular file")
    return f"not a regular file: {kind}"


def check_regular(path: str) -> int:
    """The size of ``path``; raises :class:`NotRegularFileError` for FIFOs, sockets, devices (never opens them)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputNotFoundError("no such file or directory", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(_not_regular_reason(st.st_mode), path)
    return st.st_size


def is_foreign_error(exc: BaseException) -> bool:
    """An exception from pydicom, numpy or a decoder to turn into a GpukitError (not ours, not an interrupt,
    not MemoryError). Rust decoders (pyo3) raise ``PanicException``, a BaseException."""
    if isinstance(exc, (GpukitError, MemoryError)):
        return False
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


#: attributes that must be plain integers, and those that must be numbers (or lists of them), when present;
#: a damaged header can give them another VR (a string, bytes) that later arithmetic would trip on
_INT_KEYS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
             "NumberOfFrames", "PlanarConfiguration")
_NUM_KEYS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
             "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth",
             "PixelPaddingValue", "EchoTime", "GantryDetectorTilt")


#: the longest value any attribute in KEYWORDS can sensibly have (a few numbers or a short text)
_MAX_VALUE_BYTES = 1 << 16


def _check_types(values: dict, path: str) -> None:
    import math

    for kw in _INT_KEYS:
        v = values.get(kw)
        if v is not None and (type(v) is not int or v < 0):
            raise CorruptDicomError(f"{kw} is not a non-negative integer ({v!r:.60})", path)
    for kw in _NUM_KEYS:
        v = values.get(kw)
        for x in (v if isinstance(v, list) else [v]):
            if x is not None and (not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x)):
                raise CorruptDicomError(f"{kw} is not a finite number ({v!r:.60})", path)


def _pydicom_header(path: str) -> FileHeader:
    fh = BoundedReader(path)
    try:
        return _pydicom_header_from(path, fh)
    finally:
        fh.close()


def _pydicom_header_from(path: str, fh) -> FileHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(fh, stop_before_pixels=False, defer_size=256, force=_looks_like_raw_dicom(path))
    except InvalidDicomError:
        raise NotDicomError("not a DICOM file (no 'DICM' marker after the 128-byte preamble, "
                            "and it does not start like a raw DICOM dataset)", path) from None
    except BaseException as exc:
        if not is_foreign_error(exc):
            raise
        raise CorruptDicomError(f"cannot parse the DICOM header ({type(exc).__name__}: {exc})", path) from None
    ds.fileobj_type = BoundedReader    # deferred values are re-read through it too (pydicom would use open)
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "")
    values = {}
    try:
        for kw in KEYWORDS:
            if kw in ds:
                raw = ds.get_item(kw)     # not converted yet: a damaged length must not make a huge value
                if getattr(raw, "length", 0) > _MAX_VALUE_BYTES and getattr(raw, "length", 0) != 0xFFFFFFFF:
                    raise CorruptDicomError(f"{kw} is {raw.length} bytes long (a damaged length field?)", path)
                values[kw] = plain(ds[kw].value)
        if not values.get("SOPClassUID") and meta is not None and "MediaStorageSOPClassUID" in meta:
            values["SOPClassUID"] = str(meta.MediaStorageSOPClassUID)
        has_pixels = any(t in ds for t in (0x7FE00010, 0x7FE00008, 0x7FE00009))
    except GpukitError:
        raise
    except BaseException as exc:  # a malformed element value (pydicom parses values lazily)
        if not is_foreign_error(exc):
            raise
        raise CorruptDicomError(f"malformed value in the header ({type(exc).__name__}: {exc})", path) from None
    _check_types(values, path)
    encapsulated = bool(ts) and ts not in UNCOMPRESSED_LE + ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
    h = FileHeader(path, values, ts, encapsulated=encapsulated, has_pixels=has_pixels)
    if has_pixels and ts in UNCOMPRESSED_LE and 0x7FE00010 in ds:
        from pydicom.tag import Tag

        raw = ds._dict.get(Tag(0x7FE00010))  # deferred RawDataElement: value not read, offset known
        if getattr(raw, "value", b"") is None and getattr(raw, "value_tell", None) is not None \
                and raw.length != 0xFFFFFFFF:
            h.pixel_offset, h.pixel_length = int(raw.value_tell), int(raw.length)
    if has_pixels and "PerFrameFunctionalGroupsSequence" in ds:
        try:
            h.frames = _frames_enhanced(h, ds)
        except BaseException as exc:
            if not is_foreign_error(exc):
                raise
            raise CorruptDicomError(f"malformed functional groups ({type(exc).__name__}: {exc})", path) from None
    return h


def read_header(path: "str | os.PathLike") -> FileHeader:
    """Read one file's header; raises NotDicomError / CorruptDicomError naming the file.

    A file whose uncompressed Pixel Data runs past the end of the file is
    marked ``truncated`` (it stays in its series, so loading that series fails
    with a :class:`CorruptDicomError` naming it, rather than with a gap).
    """
    path = os.fspath(path)
    size = check_regular(path)
    h = _read_header(path)
    if h.pixel_offset >= 0 and h.pixel_length > 0:
        short = h.pixel_offset + h.pixel_length - size
        if short > 0:
            h.truncated = f"file is truncated: Pixel Data should hold {h.pixel_length} bytes, the file ends " \
                          f"{short} bytes short"
    return h


def _read_header(path: str) -> FileHeader:
    try:
        from ._fastheader import read_header as fast
    except ImportError:  # pragma: no cover - fast path not present
        fast = None
    if fast is not None:
        fh = fast(path)
        if fh is not None and fh.values.get("SOPClassUID") and "NumberOfFrames" not in fh.values:
            return FileHeader(path, dict(fh.values), fh.transfer_syntax, fh.pixel_offset, fh.pixel_length,
                              fh.encapsulated, has_pixels=fh.pixel_offset >= 0 or fh.encapsulated)
    return _pydicom_header(path)


def frames_of(h: FileHeader) -> list[Frame]:
    """The 2-D frames a file contributes."""
    return h.frames if h.frames else _frames_single(h)
