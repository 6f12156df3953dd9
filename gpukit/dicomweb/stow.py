"""Derived series as DICOM, stored back with STOW-RS.

:func:`derived_series` turns a :class:`~gpukit.Volume` (say a regularized or resampled volume) into one
single-frame image per slice of a new series: CT Image Storage for a CT source, MR Image Storage for MR, else
Secondary Capture. The geometry comes from the volume's affine (DESIGN.md, "Data model"):

- ``ImageOrientationPatient`` = the unit row and column directions (affine columns 0 and 1, normalised);
- ``PixelSpacing`` = ``[row spacing, column spacing]`` = ``[|affine[:, 1]|, |affine[:, 0]|]``;
- ``ImagePositionPatient`` of slice ``k`` = ``affine @ (0, 0, k, 1)`` (a sheared affine stays sheared: the
  positions step along affine column 2, which a reader recovers exactly as gpukit does).

Values: the volume's rescaled values (``Volume.hu()``). Integers that fit int16 are stored as they are (slope
1, intercept 0: exact). Anything else is quantised to int16 with one slope and intercept for the series,
``slope = (max - min) / 65534``, so every value comes back within ``slope / 2`` (plus float32 rounding).

:func:`secondary_capture` makes a Secondary Capture image of a 2D picture (a windowed MIP, uint8 or uint16).

Every dataset gets new UIDs (study kept: a derived series belongs to the source's study), and references its
source: ``ReferencedSeriesSequence`` (the source series), ``SourceImageSequence`` (the source instances, when
known: ``meta["instance_uids"]`` and ``meta["sop_class_uid"]``), ``DerivationDescription`` and
``ImageType = DERIVED\\SECONDARY``. :func:`store` posts datasets to a server (STOW-RS) through
:meth:`~gpukit.dicomweb.DicomWebClient.store_instances`.

pydicom writes the files (a base dependency); highdicom's IODs are not used: its legacy-converted and
segmentation classes do not cover "any derived CT/MR volume" without a source dataset set of the same IOD,
and one more dependency buys little over setting the attributes here (each one listed above).
"""

from __future__ import annotations

import datetime as _dt
import io
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidParameterError

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_VR_LITTLE = "1.2.840.10008.1.2.1"


def _ds(x: float) -> str:
    """A decimal string (VR DS, at most 16 characters) holding ``x`` as closely as it can."""
    for prec in range(16, 5, -1):
        s = f"{float(x):.{prec}g}"
        if len(s) <= 16:
            return s
    return f"{float(x):.6g}"


def geometry(affine: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """``(ImageOrientationPatient, PixelSpacing, ImagePositionPatient per slice function)`` from an LPS affine.

    Returns the six direction cosines, ``[row spacing, column spacing]`` and the 3x4 matrix whose product with
    ``(0, 0, k, 1)`` is the position of slice ``k``.
    """
    a = np.asarray(affine, dtype=np.float64)
    col_step, row_step = a[:3, 0], a[:3, 1]
    dc, dr = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    if dc <= 0 or dr <= 0:
        raise InvalidParameterError("the affine has a zero in-plane step: no DICOM geometry")
    iop = list(col_step / dc) + list(row_step / dr)
    return iop, [dr, dc], a[:3, :]


def _values(vol) -> np.ndarray:
    from ..arrays import to_host

    return np.asarray(to_host(vol.hu()))


def quantise(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(int16 stored values, slope, intercept)`` with ``stored * slope + intercept`` ~ ``values``.

    Exact (slope 1, intercept 0) for integers within int16; else one linear map of ``[min, max]`` onto
    ``[-32767, 32767]``, so the error is at most ``slope / 2`` per voxel.
    """
    v = np.asarray(values)
    if not np.all(np.isfinite(v)):
        raise InvalidParameterError("the volume holds NaN or infinite values: no DICOM pixel data for them")
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if np.issubdtype(v.dtype, np.integer) or np.array_equal(v, np.round(v)):
        if lo >= -32768 and hi <= 32767:
            return v.astype(np.int16), 1.0, 0.0
    span = hi - lo
    slope = float(_ds(span / 65534.0)) if span > 0 else 1.0
    intercept = float(_ds((hi + lo) / 2.0))
    stored = np.clip(np.round((v.astype(np.float64) - intercept) / slope), -32768, 32767).astype(np.int16)
    return stored, slope, intercept


def _source_items(meta: dict, source_sops: Sequence[str]) -> list:
    """SourceImageSequence items (one per source instance), or none when the source SOP class is unknown."""
    from pydicom.dataset import Dataset

    src_class = meta.get("sop_class_uid")
    items = []
    for s in source_sops if src_class else []:
        it = Dataset()
        it.ReferencedSOPClassUID, it.ReferencedSOPInstanceUID = src_class, s
        items.append(it)
    return items


def _base(meta: dict, sop_class: str, series_uid: str, series_number: int, description: str, derivation: str,
          source_items: list, now: _dt.datetime):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID = meta.get("study_uid") or generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = str(description)[:64]
    ds.Modality = {CT_IMAGE: "CT", MR_IMAGE: "MR"}.get(sop_class, meta.get("modality") or "OT")
    for k in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
              "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        ds.setdefault(k, meta.get("patient", {}).get(k, "") if isinstance(meta.get("patient"), dict) else "")
    ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.Manufacturer = "gpukit"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = str(derivation)[:1024]
    src_series = meta.get("series_uid")
    if src_series:
        ref = Dataset()
        ref.SeriesInstanceUID = src_series
        ds.ReferencedSeriesSequence = Seq([ref])
    if source_items:
        ds.SourceImageSequence = Seq(source_items)    # the same item datasets in every slice (built once)
    if meta.get("frame_of_reference_uid"):
        ds.FrameOfReferenceUID = meta["frame_of_reference_uid"]
    return ds


def derived_series(vol, *, description: str = "gpukit derived", series_number: int | None = None,
                   derivation: str = "resampled by gpukit", series_uid: str | None = None,
                   source_meta: dict | None = None) -> list:
    """One single-frame DICOM dataset per slice of ``vol``: a new series with the volume's geometry.

    Parameters
    ----------
    vol : the :class:`~gpukit.Volume` to store (values: its rescaled values).
    description, series_number, derivation : SeriesDescription, SeriesNumber (default the source's + 1000),
        DerivationDescription.
    series_uid : the new SeriesInstanceUID (default: a new one).
    source_meta : the source series' meta (study, patient, series UID, instance UIDs, SOP class), default
        ``vol.meta``.

    Returns
    -------
    list of pydicom.Dataset
        With ``file_meta`` set (Explicit VR Little Endian): ``dcmwrite(..., enforce_file_format=True)`` writes
        them, :func:`to_bytes` gives the Part 10 bytes.
    """
    from pydicom.uid import generate_uid

    meta = dict(source_meta if source_meta is not None else vol.meta)
    sop_class = {"CT": CT_IMAGE, "MR": MR_IMAGE}.get(str(meta.get("modality") or ""), SECONDARY_CAPTURE)
    iop, spacing, pos = geometry(vol.affine)
    stored, slope, intercept = quantise(_values(vol))
    nz, ny, nx = stored.shape
    series_uid = series_uid or generate_uid()
    number = series_number if series_number is not None else int(meta.get("series_number") or 0) + 1000
    now = _dt.datetime.now(_dt.timezone.utc)
    sources = _source_items(meta, [str(u) for u in meta.get("instance_uids") or []])
    normal = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
    out = []
    for k in range(nz):
        ds = _base(meta, sop_class, series_uid, number, description, derivation, sources, now)
        ds.InstanceNumber = k + 1
        ipp = pos @ np.array([0.0, 0.0, float(k), 1.0])
        ds.ImagePositionPatient = [_ds(x) for x in ipp]
        ds.ImageOrientationPatient = [_ds(x) for x in iop]
        ds.PixelSpacing = [_ds(spacing[0]), _ds(spacing[1])]
        ds.SliceThickness = _ds(abs(float(np.dot(vol.affine[:3, 2], normal))) or 1.0)
        ds.SliceLocation = _ds(float(np.dot(ipp, normal)))
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
        if sop_class == CT_IMAGE:
            ds.RescaleType = "HU"
            ds.KVP = ""
            ds.AcquisitionNumber = 1
        elif sop_class == MR_IMAGE:
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", "3D"
            ds.RepetitionTime = ds.EchoTime = ds.EchoTrainLength = ""
        for key, tag in (("window_center", "WindowCenter"), ("window_width", "WindowWidth")):
            w = meta.get(key)
            if isinstance(w, (list, tuple)) and w:
                w = w[0]
            if isinstance(w, (int, float)) and not isinstance(w, bool):
                setattr(ds, tag, _ds(w))
        ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2").tobytes()
        out.append(ds)
    return out


def secondary_capture(image: np.ndarray, *, source_meta: dict, description: str = "gpukit MIP",
                      series_number: int | None = None, derivation: str = "maximum intensity projection by gpukit",
                      series_uid: str | None = None):
    """A Secondary Capture Image (one dataset) of a 2D picture (``uint8`` or ``uint16``, rows x columns), e.g.
    a windowed MIP, referencing the source series. No patient geometry (a projection has none)."""
    from pydicom.uid import generate_uid

    img = np.asarray(image)
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise InvalidParameterError(f"a secondary capture takes a 2D uint8 or uint16 image, got {img.dtype} "
                                    f"{img.shape}")
    meta = dict(source_meta)
    number = series_number if series_number is not None else int(meta.get("series_number") or 0) + 2000
    ds = _base(meta, SECONDARY_CAPTURE, series_uid or generate_uid(), number, description, derivation,
               _source_items(meta, [str(u) for u in meta.get("instance_uids") or []]),
               _dt.datetime.now(_dt.timezone.utc))
    ds.Modality = "OT"
    ds.ConversionType = "WSD"          # workstation
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    bits = img.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(img).astype(img.dtype.newbyteorder("<")).tobytes()
    if bits == 8 and len(ds.PixelData) % 2:
        ds.PixelData += b"\0"
    return ds


def to_bytes(ds) -> bytes:
    """The Part 10 file of a dataset (preamble, file meta, Explicit VR Little Endian)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def store(url_or_client: Any, datasets: Sequence, *, study: str | None = None, batch_bytes: int = 64 << 20) -> dict:
    """STOW-RS: store ``datasets`` (pydicom datasets or Part 10 bytes) on a server.

    ``url_or_client``: a DICOMweb URL (credentials from the URL, the environment or the credentials file) or a
    :class:`~gpukit.dicomweb.DicomWebClient`. Sent in requests of at most ``batch_bytes`` each, to
    ``/studies/{study}`` when given. Returns ``{"instances": n, "series_uids": [...], "responses": [...]}``.
    Raises :class:`~gpukit.errors.DicomWebError` (typed, after the client's retries) when the server refuses.
    """
    from .client import DicomWebClient
    from .source import client_for_url

    own = not isinstance(url_or_client, DicomWebClient)
    c = client_for_url(url_or_client) if own else url_or_client
    try:
        blobs = [d if isinstance(d, (bytes, bytearray)) else to_bytes(d) for d in datasets]
        series = list(dict.fromkeys(str(d.SeriesInstanceUID) for d in datasets if not isinstance(d, (bytes,
                                                                                                     bytearray))))
        answers, chunk, size = [], [], 0
        for b in blobs:
            if chunk and size + len(b) > batch_bytes:
                answers.append(c.store_instances(chunk, study))
                chunk, size = [], 0
            chunk.append(bytes(b))
            size += len(b)
        if chunk:
            answers.append(c.store_instances(chunk, study))
    finally:
        if own:
            c.close()
    return {"instances": len(blobs), "series_uids": series, "responses": answers}


__all__ = ["derived_series", "secondary_capture", "store", "to_bytes", "quantise", "geometry"]
