"""WADO-RS metadata (DICOM JSON, PS3.18 F.2) into the :class:`~gpukit.dicom.header.FileHeader` and
:class:`~gpukit.dicom.header.Frame` records that a folder scan makes, so grouping, splitting and geometry run the
very same code (:func:`gpukit.dicom.scan.group_frames`, :func:`gpukit.dicom.load.series_geometry`).

The JSON goes through pydicom's ``Dataset.from_json`` and then through the same attribute list and value
conversion as a file's header (:data:`~gpukit.dicom.header.KEYWORDS`, ``plain``); enhanced multi-frame
instances get one Frame per frame from their functional groups, as files do. No pixel data is downloaded: the
Pixel Data element arrives as a BulkDataURI and only says that the instance has pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dicom.header import KEYWORDS, FileHeader, _check_types, _frames_enhanced, plain
from ..dicom.scan import Skipped
from ..errors import CorruptDicomError, GpukitError

#: Pixel Data, Float Pixel Data, Double Float Pixel Data
PIXEL_TAGS = ("7FE00010", "7FE00008", "7FE00009")
#: (0002,0010) TransferSyntaxUID and (0008,3002) AvailableTransferSyntaxUID, when a server sends them
TS_TAGS = ("00020010", "00083002")
#: Rows, Columns, BitsAllocated: the Image Pixel module, present exactly when an instance has pixels
_IMAGE_PIXEL_TAGS = ("00280010", "00280011", "00280100")


@dataclass
class WebHeader(FileHeader):
    """A :class:`FileHeader` made from WADO-RS metadata: ``path`` is the instance's URL (no credentials)."""

    server: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""


def _wanted_tags() -> frozenset:
    from pydicom.datadict import tag_for_keyword

    kws = KEYWORDS + ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
    return frozenset(f"{tag_for_keyword(k):08X}" for k in kws)


_WANTED = _wanted_tags()


def _no_bulk(dataset: dict) -> dict:
    """The DICOM JSON dataset without bulk data (BulkDataURI, InlineBinary), in nested sequences too: gpukit reads
    none of it, and pydicom would warn for each."""
    out = {}
    for tag, elem in dataset.items():
        if not isinstance(elem, dict) or "BulkDataURI" in elem or "InlineBinary" in elem:
            continue
        if elem.get("vr") == "SQ" and isinstance(elem.get("Value"), list):
            elem = {**elem, "Value": [_no_bulk(item) if isinstance(item, dict) else item for item in elem["Value"]]}
        out[tag] = elem
    return out


def instance_url(server: str, study: str, series: str, sop: str) -> str:
    return f"{server}/studies/{study}/series/{series}/instances/{sop}"


def _first(obj: dict, tag: str):
    v = obj.get(tag, {}).get("Value")
    return v[0] if isinstance(v, list) and v else None


def header_from_json(obj: dict, server: str) -> WebHeader:
    """One instance's DICOM JSON metadata -> :class:`WebHeader` (raises ``CorruptDicomError`` naming it)."""
    from pydicom import Dataset

    study, series, sop = (str(_first(obj, t) or "") for t in ("0020000D", "0020000E", "00080018"))
    url = instance_url(server, study, series, sop)
    # Pixel Data comes as a BulkDataURI; some servers (Orthanc) leave encapsulated Pixel Data out of the metadata
    # altogether, so an instance that describes its pixels (the Image Pixel module) counts as having them
    has_pixels = any(t in obj for t in PIXEL_TAGS) or all(_first(obj, t) is not None for t in _IMAGE_PIXEL_TAGS)
    ts = next((str(_first(obj, t)) for t in TS_TAGS if _first(obj, t)), "")
    # only what gpukit reads is converted (pydicom's JSON reader is slow per element): the header keywords and
    # the functional groups of enhanced multi-frame instances
    slim = _no_bulk({k: v for k, v in obj.items() if k in _WANTED})
    try:
        ds = Dataset.from_json(slim)
        values = {}
        for kw in KEYWORDS:
            if kw in ds:
                values[kw] = plain(ds[kw].value)
    except GpukitError:
        raise
    except Exception as exc:     # a malformed JSON value
        raise CorruptDicomError(f"malformed metadata ({type(exc).__name__}: {exc})", url) from None
    _check_types(values, url)
    h = WebHeader(url, values, ts, encapsulated=False, has_pixels=has_pixels,
                  server=server, study_uid=study, series_uid=series, sop_uid=sop)
    if has_pixels and "PerFrameFunctionalGroupsSequence" in ds:
        try:
            h.frames = _frames_enhanced(h, ds)
        except Exception as exc:
            raise CorruptDicomError(f"malformed functional groups ({type(exc).__name__}: {exc})", url) from None
    return h


def headers_from_metadata(items: list[dict], server: str) -> tuple[list[WebHeader], list[Skipped]]:
    """Every instance of a WADO-RS metadata answer as a header, or skipped with the reason (as a scan does)."""
    headers, skipped = [], []
    for obj in items:
        try:
            h = header_from_json(obj, server)
        except CorruptDicomError as exc:
            skipped.append(Skipped(exc.path or "", exc.reason, type(exc).__name__))
            continue
        if h.has_pixels and not h.frames and h.n_frames > 1:
            # a legacy (non-enhanced) multi-frame instance: its frames are placed from the file itself
            skipped.append(Skipped(h.path, f"legacy multi-frame instance ({h.n_frames} frames without functional "
                                           f"groups): not read over DICOMweb yet; download it and load the file",
                                   "UnsupportedDicomError"))
            continue
        headers.append(h)
    # a stable order that does not depend on the server's: instance number, then SOP Instance UID
    headers.sort(key=lambda h: (h.get("InstanceNumber") if isinstance(h.get("InstanceNumber"), int) else 1 << 40,
                                h.sop_uid))
    return headers, skipped


__all__ = ["WebHeader", "header_from_json", "headers_from_metadata", "instance_url"]
