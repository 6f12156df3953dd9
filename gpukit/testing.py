"""Synthetic DICOM series with known geometry, for tests and demos.

Everything here writes *real* DICOM Part 10 files (preamble, ``DICM``, file
meta information) that pydicom and GDCM/SimpleITK read, with a geometry that
is known exactly, so a reader can be checked against ground truth:

* :func:`phantom` builds a CT-like body phantom in Hounsfield units.
* :func:`write_series` writes it (or any stored array) as a single-frame
  series, or as one Enhanced CT/MR multi-frame file, in any of the transfer
  syntaxes that have an encoder here (:func:`available_transfer_syntaxes`),
  with traps for readers that take shortcuts: random file names in random
  order, InstanceNumber and SliceLocation that disagree with the positions,
  SliceThickness that differs from the slice step, gantry tilt (a sheared
  affine), missing and duplicated slices, per-slice rescale.
* ``write_not_dicom``, ``write_truncated``, ``write_no_pixel_data``,
  ``write_dicomdir_like``, ``write_rgb_secondary_capture`` and
  ``write_localizer`` write the kinds of bad or foreign files found in real
  folders.

The expected geometry follows gpukit's convention (DESIGN.md):
``affine @ (i, j, k, 1)`` is the LPS position (mm) of the centre of voxel
``data[k, j, i]``; column 0 is ``row_cosine * column_spacing``, column 1
``column_cosine * row_spacing``, column 2 the step between consecutive
``ImagePositionPatient`` values, column 3 the first slice's position. It is
computed here from the parameters, independently of :mod:`gpukit.geometry`,
so that it can serve as an oracle for it.

Examples
--------
>>> import tempfile
>>> from gpukit.testing import write_series
>>> s = write_series(tempfile.mkdtemp(), shape=(4, 16, 12))
>>> len(s.files), s.stored.shape
(4, (4, 16, 12))
>>> s.affine[:3, 2]                      # 2.5 mm along the normal, no tilt
array([0. , 0. , 2.5])
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "SyntheticSeries",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "available_transfer_syntaxes",
    "phantom",
    "write_series",
    "write_not_dicom",
    "write_truncated",
    "write_no_pixel_data",
    "write_dicomdir_like",
    "write_rgb_secondary_capture",
    "write_localizer",
]

# --------------------------------------------------------------------------
# UIDs (literal strings so that importing this module does not need pydicom)
# --------------------------------------------------------------------------
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEGLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"

_UNCOMPRESSED = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN,
                 DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
_COMPRESSED = (RLE_LOSSLESS, JPEG2000_LOSSLESS, JPEGLS_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LOSSLESS)

#: Every transfer syntax :func:`write_series` knows how to write (all lossless,
#: so the pixel values round-trip exactly). Which of them work on this machine
#: depends on the installed encoders: see :func:`available_transfer_syntaxes`.
SUPPORTED_TRANSFER_SYNTAXES: tuple[str, ...] = _UNCOMPRESSED + _COMPRESSED

_NAMES = {
    EXPLICIT_VR_LITTLE_ENDIAN: "Explicit VR Little Endian",
    IMPLICIT_VR_LITTLE_ENDIAN: "Implicit VR Little Endian",
    EXPLICIT_VR_BIG_ENDIAN: "Explicit VR Big Endian",
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: "Deflated Explicit VR Little Endian",
    RLE_LOSSLESS: "RLE Lossless",
    JPEG2000_LOSSLESS: "JPEG 2000 Lossless",
    JPEGLS_LOSSLESS: "JPEG-LS Lossless",
    JPEG_LOSSLESS_SV1: "JPEG Lossless SV1 (Process 14, first-order prediction)",
    JPEG_LOSSLESS: "JPEG Lossless (Process 14)",
}
# Which package provides an encoder, for error messages.
_ENCODER_PACKAGES = {
    RLE_LOSSLESS: "pydicom (built in), pylibjpeg-rle or python-gdcm",
    JPEG2000_LOSSLESS: "pylibjpeg + pylibjpeg-openjpeg (or python-gdcm)",
    JPEGLS_LOSSLESS: "pyjpegls or python-gdcm",
    JPEG_LOSSLESS_SV1: "python-gdcm",
    JPEG_LOSSLESS: "python-gdcm",
}

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"
MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"

_MANUFACTURER = "gpukit synthetic"


# --------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------
@dataclass
class SyntheticSeries:
    """What :func:`write_series` wrote, and what a correct reader must return.

    Attributes
    ----------
    folder : Path
        The folder the files are in.
    files : list of Path
        Every file written, in the order written (duplicates included; one
        file for a multi-frame series).
    stored : ndarray, shape (nz, ny, nx)
        The stored (raw, not rescaled) values in true position order, i.e.
        sorted by the projection of ``ImagePositionPatient`` on the slice
        normal, ascending. Missing slices are left out, duplicates are not
        included.
    affine : ndarray, shape (4, 4)
        The expected LPS affine of the regular planned grid, per gpukit's
        convention. Slice ``n`` of ``stored`` lies at
        ``affine @ (0, 0, indices[n], 1)``; when nothing is missing
        ``indices[n] == n`` and this is exactly the affine a reader must give.
    positions : ndarray, shape (nz, 3)
        ``ImagePositionPatient`` of each slice of ``stored`` (LPS mm), as
        written to the file (decimal strings parsed back).
    slopes, intercepts : ndarray, shape (nz,)
        RescaleSlope / RescaleIntercept of each slice of ``stored``.
    series_uid : str
        SeriesInstanceUID.
    tilt_deg : float
        The gantry tilt the positions were generated with (0 when
        ``positions`` was given explicitly).
    transfer_syntax : str
        Transfer Syntax UID of the files.
    indices : ndarray of int, shape (nz,)
        Index of each slice of ``stored`` in the planned grid of ``affine``.
    study_uid, frame_of_reference_uid : str
        StudyInstanceUID and FrameOfReferenceUID.
    sop_instance_uids : list of str
        SOPInstanceUID of each slice of ``stored`` (for a multi-frame file,
        the one UID of the file).
    duplicate_files : list of Path
        The extra files written by ``duplicate=`` (empty for multi-frame).
    duplicate_stored : dict
        Planned-grid index -> stored array of the duplicate at that position.
    pixel_spacing : tuple of float
        PixelSpacing as written ``(row spacing, column spacing)``.
    iop : tuple of float
        ImageOrientationPatient as written.
    slice_thickness : float
        SliceThickness as written (deliberately not the slice step).
    modality, photometric : str
    bits_stored : int
    signed : bool
    multiframe : bool
    window : list of (center, width)
    instance_numbers : ndarray of int
        InstanceNumber of each slice of ``stored`` (single-frame only).
    """

    folder: Path
    files: list[Path]
    stored: np.ndarray
    affine: np.ndarray
    positions: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    series_uid: str
    tilt_deg: float
    transfer_syntax: str
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_instance_uids: list[str] = field(default_factory=list)
    duplicate_files: list[Path] = field(default_factory=list)
    duplicate_stored: dict[int, np.ndarray] = field(default_factory=dict)
    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    slice_thickness: float = 0.0
    modality: str = "CT"
    photometric: str = "MONOCHROME2"
    bits_stored: int = 16
    signed: bool = True
    multiframe: bool = False
    window: list[tuple[float, float]] = field(default_factory=list)
    instance_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``stored.shape``."""
        return tuple(int(s) for s in self.stored.shape)  # type: ignore[return-value]

    def rescaled(self) -> np.ndarray:
        """``stored * slope + intercept`` per slice, float64 (HU for CT)."""
        return (self.stored.astype(np.float64) * self.slopes[:, None, None]
                + self.intercepts[:, None, None])


# --------------------------------------------------------------------------
# Phantom
# --------------------------------------------------------------------------
def phantom(shape: Sequence[int] = (20, 64, 48), *, seed: int = 0) -> np.ndarray:
    """A CT-like body phantom in Hounsfield units.

    An elliptical trunk of soft tissue (about 40 HU) under a layer of
    subcutaneous fat (-100 HU), two lungs (about -800 HU, with some texture)
    that grow towards the head, a heart and a contrast-filled aorta, a
    vertebral body and posterior arch with a cortical rim (up to about
    1000 HU) and cancellous core, rib segments, a patient table, a few small
    bright spheres (calcifications, 900-1400 HU), and air (-1000 HU) outside.
    The body outline and the organs change along z, so no two slices are the
    same. Row index ``j`` runs anterior to posterior and column index ``i``
    patient right to left, as in a standard axial CT, so a windowed slice
    looks like a CT image.

    Parameters
    ----------
    shape : (nz, ny, nx)
        Array shape.
    seed : int
        Seed of the noise (about 6 HU standard deviation inside the body).
        The same shape and seed always give the same array.

    Returns
    -------
    ndarray of float32, shape ``shape``
        Hounsfield units.

    Examples
    --------
    >>> p = phantom((8, 32, 32))
    >>> p.shape, p.dtype, float(p[0, 0, 0])
    ((8, 32, 32), dtype('float32'), -1000.0)
    """
    nz, ny, nx = (int(s) for s in shape)
    if min(nz, ny, nx) < 1:
        raise ValueError(f"phantom shape must be positive, got {tuple(shape)}")
    rng = np.random.default_rng(seed)

    def axis(n: int) -> np.ndarray:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)

    z = axis(nz)[:, None, None]
    y = axis(ny)[None, :, None]
    x = axis(nx)[None, None, :]
    out = np.full((nz, ny, nx), -1000.0)

    def ellipse(cx, cy, ax, ay):
        return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2

    # Trunk: wider at the bottom (abdomen/pelvis), narrowing towards the neck.
    s = 1.0 - 0.12 * z - 0.10 * z ** 2
    body = ellipse(0.0, 0.0, 0.86 * s, 0.66 * s)
    inner = ellipse(0.0, 0.0, 0.78 * s, 0.58 * s)
    out = np.where(body <= 1.0, -100.0, out)         # subcutaneous fat
    out = np.where(inner <= 1.0, 40.0, out)           # soft tissue
    # Ribs: a broken ring just inside the fat, the gaps rotating with z.
    r_ang = np.arctan2(y, x)
    ring = (inner <= 0.97) & (inner >= 0.80)
    ribs = ring & (np.cos(9.0 * r_ang + 4.0 * z) > 0.2) & (y < 0.45) & (z > -0.6)
    out = np.where(ribs, 750.0, out)
    # Lungs: from z = -0.55 up, largest in the mid chest, smaller at the apex.
    lz = np.clip((z + 0.55) / 0.8, 0.0, 1.0) * (1.0 - 0.45 * np.clip((z - 0.4) / 0.6, 0.0, 1.0))
    lung_l = ellipse(0.36, -0.02, 0.27 * lz + 1e-6, 0.42 * lz + 1e-6) <= 1.0
    lung_r = ellipse(-0.36, -0.02, 0.27 * lz + 1e-6, 0.42 * lz + 1e-6) <= 1.0
    lungs = (lung_l | lung_r) & (inner <= 0.75)
    texture = 40.0 * np.sin(23.0 * x + 5.0 * z) * np.cos(19.0 * y - 3.0 * z)
    out = np.where(lungs, -820.0 + texture, out)
    # Liver below the lungs (slightly denser than muscle); bowel gas lower down.
    liver = (ellipse(-0.3, -0.05, 0.42, 0.38) <= 1.0) & (z < -0.2) & (inner <= 0.85)
    out = np.where(liver & ~lungs, 60.0, out)
    gas = ((ellipse(0.35, -0.25, 0.07, 0.05) <= 1.0) | (ellipse(0.15, 0.05, 0.05, 0.04) <= 1.0)) & (z < -0.45)
    out = np.where(gas, -900.0, out)
    # Heart between the lungs (lower chest), aorta (contrast) beside the spine.
    hz = np.sqrt(np.clip(1.0 - ((z + 0.05) / 0.45) ** 2, 0.0, 1.0))
    heart = ellipse(0.12, -0.18, 0.25 * hz + 1e-6, 0.22 * hz + 1e-6) <= 1.0
    out = np.where(heart, 45.0, out)
    aorta = ellipse(0.17, 0.18, 0.07, 0.07) <= 1.0
    out = np.where(aorta & (inner <= 1.0), 220.0, out)
    # Spine: vertebral body with cortex, posterior arch; discs every few slices.
    vb = ellipse(0.0, 0.40, 0.14, 0.12)
    disc = np.cos(np.pi * 5.0 * z) > 0.85
    out = np.where((vb <= 1.0) & disc, 80.0, out)
    out = np.where((vb <= 1.0) & ~disc, 300.0, out)
    out = np.where((vb <= 1.0) & (vb >= 0.65) & ~disc, 1000.0, out)
    arch = ellipse(0.0, 0.58, 0.10, 0.07)
    out = np.where((arch <= 1.0) & (arch >= 0.35), 900.0, out)
    canal = ellipse(0.0, 0.55, 0.05, 0.04) <= 1.0
    out = np.where(canal, 15.0, out)
    # Small bright spheres (calcifications / markers) at fixed positions.
    for (cx, cy, cz, r, hu) in ((0.45, 0.10, -0.5, 0.07, 1400.0), (-0.25, -0.35, 0.2, 0.06, 1200.0),
                                (0.20, 0.25, 0.55, 0.05, 900.0), (-0.5, 0.2, -0.1, 0.08, 1000.0)):
        sph = (x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 0.8) ** 2 <= r * r
        out = np.where(sph, hu, out)
    # Patient table under the back.
    table = (np.abs(y - 0.80) <= 0.025) & (np.abs(x) <= 0.9)
    out = np.where(table, 150.0, out)
    # Noise inside the body only (air stays exactly -1000).
    noise = rng.normal(0.0, 6.0, size=out.shape)
    out = np.where(body <= 1.0, out + noise, out)
    return out.astype(np.float32)


# --------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------
def _have_gdcm() -> bool:
    try:
        import gdcm  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


def _pydicom_encoder_available(uid: str) -> bool:
    try:
        from pydicom.pixels import get_encoder

        return bool(get_encoder(uid).is_available)
    except Exception:  # NotImplementedError: pydicom has no encoder for uid at all
        return False


def _encoder_available(uid: str) -> bool:
    """Whether :func:`write_series` can write ``uid`` on this machine."""
    if uid in _UNCOMPRESSED:
        return True
    if uid in _COMPRESSED:
        return _pydicom_encoder_available(uid) or _have_gdcm()
    return False


def _encoder_for(uid: str, rows: int, cols: int) -> str:
    """'pydicom' (``Dataset.compress``) or 'gdcm' for a compressed ``uid``."""
    use_pydicom = _pydicom_encoder_available(uid)
    if uid == JPEG2000_LOSSLESS and min(rows, cols) < 32:
        # pylibjpeg-openjpeg always asks for 6 DWT resolutions, which needs
        # images of at least 32 x 32; GDCM adapts the number of resolutions.
        use_pydicom = False
    if use_pydicom:
        return "pydicom"
    if _have_gdcm():
        return "gdcm"
    raise RuntimeError(
        f"no encoder available for transfer syntax {uid} ({_NAMES[uid]}) at {rows} x {cols}: "
        f"install {_ENCODER_PACKAGES[uid]}"
        + (" (pylibjpeg-openjpeg cannot encode images smaller than 32 x 32)"
           if uid == JPEG2000_LOSSLESS else ""))


def available_transfer_syntaxes() -> list[str]:
    """Transfer Syntax UIDs that :func:`write_series` can write here.

    The uncompressed syntaxes always; RLE Lossless and JPEG 2000 Lossless
    when pydicom has an encoder for them (pydicom's own RLE encoder,
    pylibjpeg-openjpeg); JPEG-LS Lossless and the two JPEG Lossless
    (Process 14) syntaxes through pydicom's encoder or python-gdcm.

    Returns
    -------
    list of str
        A subset of :data:`SUPPORTED_TRANSFER_SYNTAXES`, in that order.
    """
    return [uid for uid in SUPPORTED_TRANSFER_SYNTAXES if _encoder_available(uid)]


def _resolve_transfer_syntax(ts: str) -> str:
    import pydicom.uid

    uid = str(ts)
    if not uid[:1].isdigit():  # a keyword such as "JPEG2000Lossless"
        val = getattr(pydicom.uid, uid, None)
        if not isinstance(val, str):
            raise ValueError(f"unknown transfer syntax {ts!r}")
        uid = str(val)
    if uid not in SUPPORTED_TRANSFER_SYNTAXES:
        name = pydicom.uid.UID(uid).name
        raise ValueError(
            f"transfer syntax {uid} ({name}) is not supported by write_series: it writes only "
            f"lossless syntaxes, so that pixel values round-trip: "
            + ", ".join(f"{u} ({_NAMES[u]})" for u in SUPPORTED_TRANSFER_SYNTAXES))
    if not _encoder_available(uid):
        raise RuntimeError(
            f"no encoder available for transfer syntax {uid} ({_NAMES[uid]}); install "
            f"{_ENCODER_PACKAGES.get(uid, 'an encoder plugin')}. Available here: "
            + ", ".join(available_transfer_syntaxes()))
    return uid


def _gdcm_encode_frame(frame: np.ndarray, uid: str, bits_stored: int, signed: bool,
                       photometric: str) -> bytes:
    """Encode one 2-D 16-bit frame with GDCM's ImageChangeTransferSyntax."""
    import gdcm

    rows, cols = frame.shape
    writer = gdcm.ImageWriter()  # keeps the image alive (GDCM's Python binding needs this)
    image = writer.GetImage()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((cols, rows, 1))
    image.SetPhotometricInterpretation(
        gdcm.PhotometricInterpretation(gdcm.PhotometricInterpretation.GetPIType(photometric)))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ImplicitVRLittleEndian))
    image.SetPixelFormat(gdcm.PixelFormat(1, 16, bits_stored, bits_stored - 1, int(signed)))
    elem = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    elem.SetByteStringValue(np.ascontiguousarray(frame, dtype="<i2" if signed else "<u2").tobytes())
    image.SetDataElement(elem)
    conv = gdcm.ImageChangeTransferSyntax()
    conv.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(uid)))
    conv.SetInput(image)
    if not conv.Change():
        raise RuntimeError(f"GDCM failed to encode a frame as {_NAMES[uid]} ({uid})")
    seq = conv.GetOutput().GetDataElement().GetSequenceOfFragments()
    if seq is None or seq.GetNumberOfFragments() < 1:
        raise RuntimeError(f"GDCM returned no encoded fragments for {_NAMES[uid]} ({uid})")
    return b"".join(seq.GetFragment(n).GetByteValue().GetBuffer().encode("utf-8", "surrogateescape")
                    for n in range(seq.GetNumberOfFragments()))


def _set_pixels(ds: Any, arr: np.ndarray, uid: str, signed: bool, bits_stored: int) -> None:
    """Put ``arr`` (2-D, or 3-D frames) into ``ds`` encoded as ``uid``.

    ``ds`` must already describe the pixels (Rows, Columns, Bits*, ...).
    """
    from pydicom.encaps import encapsulate

    le = "<i2" if signed else "<u2"
    if uid in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN):
        ds.PixelData = np.ascontiguousarray(arr, dtype=le).tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.TransferSyntaxUID = uid
    elif uid == EXPLICIT_VR_BIG_ENDIAN:
        # pydicom writes OW bytes as given: the byte swap is ours to do.
        ds.PixelData = np.ascontiguousarray(arr, dtype=">i2" if signed else ">u2").tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.TransferSyntaxUID = uid
    elif _encoder_for(uid, int(ds.Rows), int(ds.Columns)) == "pydicom":
        ds.compress(uid, np.ascontiguousarray(arr, dtype=le), generate_instance_uid=False)
    else:  # GDCM: JPEG-LS, JPEG Lossless, small JPEG 2000
        frames = arr[None] if arr.ndim == 2 else arr
        fragments = [_gdcm_encode_frame(f, uid, bits_stored, signed, str(ds.PhotometricInterpretation))
                     for f in frames]
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = uid
        ds.LossyImageCompression = "00"


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def _ds_str(value: float) -> str:
    """A float as a valid DICOM DS string (at most 16 characters)."""
    from pydicom.valuerep import format_number_as_ds

    v = float(value)
    if v == 0.0:
        return "0"
    if abs(v - round(v)) < 1e-9 * max(1.0, abs(v)) and abs(v) < 1e12:
        return str(int(round(v)))
    s = format_number_as_ds(v)
    return s


def _ds_list(values: Sequence[float]) -> tuple[list[str], np.ndarray]:
    strs = [_ds_str(v) for v in values]
    return strs, np.array([float(s) for s in strs])


def _uid() -> str:
    """A fresh 2.25 UUID-derived UID (unique even with the same seed)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=None))


def _stored_range(signed: bool, bits_stored: int) -> tuple[int, int]:
    if signed:
        return -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
    return 0, (1 << bits_stored) - 1


def _per_slice(value: float | Sequence[float], n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one value per planned slice ({n}), "
                         f"got shape {arr.shape}")
    return arr.copy()


def _random_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        name = rng.bytes(8).hex().upper()
        if name not in used:
            used.add(name)
            return name


def _file_meta(sop_class: str, sop_instance: str, ts: str = EXPLICIT_VR_LITTLE_ENDIAN) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    fm = FileMetaDataset()
    fm.FileMetaInformationVersion = b"\x00\x01"
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = sop_instance
    fm.TransferSyntaxUID = ts
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = "GPUKIT_SYNTH"
    return fm


def _new_dataset(sop_class: str, sop_instance: str, ts: str = EXPLICIT_VR_LITTLE_ENDIAN) -> Any:
    from pydicom.dataset import FileDataset

    ds = FileDataset("", {}, file_meta=_file_meta(sop_class, sop_instance, ts), preamble=b"\x00" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def _patient_study(ds: Any, study_uid: str, when: _dt.datetime) -> None:
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "GPUKIT-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "1"
    ds.AccessionNumber = "SYN0001"
    ds.ReferringPhysicianName = ""
    ds.StudyDate = when.strftime("%Y%m%d")
    ds.StudyTime = when.strftime("%H%M%S")
    ds.Manufacturer = _MANUFACTURER


def _save(ds: Any, path: Path) -> None:
    import pydicom

    pydicom.dcmwrite(path, ds, enforce_file_format=True)


_WHEN = _dt.datetime(2024, 1, 2, 3, 4, 5)


# --------------------------------------------------------------------------
# write_series
# --------------------------------------------------------------------------
def write_series(
    folder: str | os.PathLike,
    *,
    data: np.ndarray | None = None,
    shape: Sequence[int] = (20, 64, 48),
    pixel_spacing: Sequence[float] = (0.7, 0.6),
    slice_step: float = 2.5,
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    origin: Sequence[float] = (-100.0, -120.0, 50.0),
    tilt_deg: float = 0.0,
    positions: Sequence[Sequence[float]] | None = None,
    missing: Sequence[int] = (),
    duplicate: Sequence[int] = (),
    shuffle: bool = True,
    file_names: str = "random",
    transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
    signed: bool = True,
    bits_stored: int | None = None,
    slope: float | Sequence[float] = 1.0,
    intercept: float | Sequence[float] = -1024.0,
    modality: str = "CT",
    series_uid: str | None = None,
    series_number: int = 1,
    multiframe: bool = False,
    window: Sequence[float] | Sequence[Sequence[float]] | None = (40, 400),
    photometric: str = "MONOCHROME2",
    instance_number_order: str = "reverse",
    seed: int = 0,
    extra: Callable[[Any, int | None], Any] | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_description: str | None = None,
) -> SyntheticSeries:
    """Write a synthetic DICOM series with known geometry into ``folder``.

    Parameters
    ----------
    folder : path
        Destination folder (created if needed). Files are written directly in it.
    data : ndarray of int, shape (nz, ny, nx), optional
        The *stored* values, slice ``k`` at planned position ``k``. Must fit
        the stored range given by ``signed`` and ``bits_stored``. When
        ``None``, :func:`phantom` of ``shape`` is converted from HU with
        ``slope``/``intercept`` and clipped to the stored range.
    shape : (nz, ny, nx)
        Shape of the phantom when ``data`` is None.
    pixel_spacing : (row spacing, column spacing)
        DICOM PixelSpacing in mm: distance between rows, then between columns.
    slice_step : float
        Distance (mm) between consecutive slice positions. May be negative
        (positions then run against the normal).
    iop : 6 floats
        ImageOrientationPatient (row cosine, column cosine): orthonormal to
        1e-4; the expected affine uses the cosines as written, renormalised.
    origin : 3 floats
        ImagePositionPatient of planned slice 0 (LPS mm).
    tilt_deg : float
        Gantry tilt: the step between positions is ``slice_step`` times the
        normal rotated by ``tilt_deg`` about the row direction towards the
        column direction, so the affine is sheared. Also written to
        GantryDetectorTilt (0018,1120) for CT; a reader must not use that tag.
    positions : sequence of 3-vectors, optional
        Explicit ImagePositionPatient per planned slice (overrides ``origin``,
        ``slice_step`` and ``tilt_deg``). May be irregular; the returned
        ``affine`` then uses the mean step between the sorted first and last.
    missing : sequence of int
        Planned slice indices (``k`` as in ``origin + k * step``) not written.
    duplicate : sequence of int
        Planned slice indices that get an extra file at the same position,
        with a different SOPInstanceUID and different pixel values.
    shuffle : bool
        Write the files (or the frames of a multi-frame file) in a random order.
    file_names : {'random', 'instance'}
        Random 16-hex-digit names without extension, or ``IM%05d.dcm`` from the
        InstanceNumber.
    transfer_syntax : str
        Transfer Syntax UID (or a ``pydicom.uid`` keyword such as
        ``"JPEG2000Lossless"``); one of :data:`SUPPORTED_TRANSFER_SYNTAXES`.
        A supported syntax with no encoder here raises ``RuntimeError``
        naming it; see :func:`available_transfer_syntaxes`.
    signed : bool
        PixelRepresentation 1 (two's complement) or 0.
    bits_stored : int, optional
        BitsStored (HighBit = BitsStored - 1); 16 when None. BitsAllocated is
        always 16.
    slope, intercept : float or sequence of float
        RescaleSlope / RescaleIntercept, one value or one per planned slice.
    modality : str
        'CT' (CT Image Storage; Enhanced CT for multi-frame) or 'MR' (MR Image
        Storage; Enhanced MR). Other values are written as the Modality of a
        CT Image Storage instance (single-frame only). RescaleSlope/Intercept
        are written always for CT, for other modalities when not 1/0.
    series_uid : str, optional
        SeriesInstanceUID; a new one when None.
    series_number : int
        SeriesNumber.
    multiframe : bool
        Write one Enhanced CT (Enhanced MR for 'MR') Image Storage file with
        shared and per-frame functional groups and no top-level geometry;
        frames in a shuffled position order when ``shuffle``.
    window : (center, width) or sequence of them, optional
        WindowCenter / WindowWidth (several presets give multi-valued tags).
    photometric : {'MONOCHROME2', 'MONOCHROME1'}
        PhotometricInterpretation (the stored values do not change).
    instance_number_order : {'reverse', 'normal', 'random'}
        How InstanceNumber and SliceLocation relate to the positions:
        'normal' numbers slices in planned order and writes the true
        SliceLocation (projection of the position on the normal);
        'reverse' and 'random' assign both through a reversed or random
        permutation of the planned slices, so sorting by either gives the
        wrong order.
    seed : int
        Seeds the phantom's noise, the file names and every shuffle.
        UIDs are always new.
    extra : callable(ds, k), optional
        Called on every dataset just before it is written, with ``k`` the
        planned slice index (``None`` for a multi-frame file). It may modify
        ``ds`` in place or return a replacement dataset.
    study_uid, frame_of_reference_uid : str, optional
        StudyInstanceUID / FrameOfReferenceUID; new ones when None.
    series_description : str, optional
        SeriesDescription; a description of the parameters when None.

    Returns
    -------
    SyntheticSeries
        The files and the ground truth a correct reader must reproduce.

    Raises
    ------
    ValueError
        Inconsistent parameters, data outside the stored range, or a transfer
        syntax this writer does not support (lossy or unknown).
    RuntimeError
        A supported transfer syntax whose encoder is not installed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uid_ts = _resolve_transfer_syntax(transfer_syntax)
    if file_names not in ("random", "instance"):
        raise ValueError(f"file_names must be 'random' or 'instance', got {file_names!r}")
    if instance_number_order not in ("reverse", "normal", "random"):
        raise ValueError(f"instance_number_order must be 'reverse', 'normal' or 'random', "
                         f"got {instance_number_order!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    modality = str(modality).upper()
    if multiframe and modality not in ("CT", "MR"):
        raise ValueError(f"multiframe writes Enhanced CT or Enhanced MR only, not modality {modality!r}")
    bits = 16 if bits_stored is None else int(bits_stored)
    if not 2 <= bits <= 16:
        raise ValueError(f"bits_stored must be in 2..16, got {bits}")
    lo, hi = _stored_range(signed, bits)
    rng = np.random.default_rng(seed)

    # ---- pixel data (planned order) -------------------------------------
    if data is None:
        nz, ny, nx = (int(s) for s in shape)
        slopes_p = _per_slice(slope, nz, "slope")
        inter_p = _per_slice(intercept, nz, "intercept")
        if np.any(slopes_p == 0):
            raise ValueError("slope must not be 0")
        hu = phantom((nz, ny, nx), seed=seed).astype(np.float64)
        raw = np.rint((hu - inter_p[:, None, None]) / slopes_p[:, None, None])
        planned = np.clip(raw, lo, hi).astype(np.int16 if signed else np.uint16)
    else:
        arr = np.asarray(data)
        if arr.ndim != 3:
            raise ValueError(f"data must be 3-D (nz, ny, nx), got shape {arr.shape}")
        if arr.dtype.kind not in "iub":
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise ValueError("data holds the stored integer values; got non-integer values")
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise ValueError(f"data range [{arr.min()}, {arr.max()}] does not fit the stored range "
                             f"[{lo}, {hi}] ({'signed' if signed else 'unsigned'}, {bits} bits)")
        planned = arr.astype(np.int16 if signed else np.uint16)
        nz, ny, nx = planned.shape
        slopes_p = _per_slice(slope, nz, "slope")
        inter_p = _per_slice(intercept, nz, "intercept")
    if nz < 1 or ny < 1 or nx < 1:
        raise ValueError(f"empty series shape {(nz, ny, nx)}")

    # ---- geometry (as written: DS strings parsed back) --------------------
    iop_strs, iop_w = _ds_list(iop)
    if iop_w.shape != (6,):
        raise ValueError(f"iop must have 6 values, got {len(iop_w)}")
    row, col = iop_w[:3], iop_w[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-4 or abs(np.linalg.norm(col) - 1) > 1e-4 or abs(row @ col) > 1e-4:
        raise ValueError(f"iop must be two orthogonal unit vectors (to 1e-4), got {list(iop_w)}")
    # As a reader does: renormalise the cosines as written.
    row = row / np.linalg.norm(row)
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    ps_strs, ps_w = _ds_list(pixel_spacing)
    if ps_w.shape != (2,) or np.any(ps_w <= 0):
        raise ValueError(f"pixel_spacing must be 2 positive values, got {list(pixel_spacing)}")
    if positions is None:
        if slice_step == 0:
            raise ValueError("slice_step must not be 0")
        t = math.radians(float(tilt_deg))
        step_vec = float(slice_step) * (math.cos(t) * normal + math.sin(t) * col)
        pos_exact = np.asarray(origin, dtype=np.float64)[None, :] + np.arange(nz)[:, None] * step_vec
        tilt_used = float(tilt_deg)
    else:
        pos_exact = np.asarray(positions, dtype=np.float64)
        if pos_exact.shape != (nz, 3):
            raise ValueError(f"positions must be {nz} LPS 3-vectors (one per planned slice), "
                             f"got shape {pos_exact.shape}")
        step_vec = None
        tilt_used = 0.0
    ipp_strs = []
    pos_w = np.empty((nz, 3))
    for k in range(nz):
        s, v = _ds_list(pos_exact[k])
        ipp_strs.append(s)
        pos_w[k] = v

    # Sort the planned slices by their projection on the normal (what a reader does).
    proj = pos_w @ normal
    order = np.argsort(proj, kind="stable")           # grid index m -> planned k
    grid_of = np.empty(nz, dtype=int)
    grid_of[order] = np.arange(nz)                    # planned k -> grid index m
    if step_vec is not None:
        gstep = step_vec if slice_step > 0 else -step_vec
    elif nz > 1:
        gstep = (pos_w[order[-1]] - pos_w[order[0]]) / (nz - 1)
    else:
        gstep = normal.copy()
    if nz > 1 and len(np.unique(np.round(proj, 6))) < nz:
        raise ValueError("positions must be distinct along the slice normal (use duplicate= for duplicates)")
    affine = np.eye(4)
    affine[:3, 0] = row * ps_w[1]
    affine[:3, 1] = col * ps_w[0]
    affine[:3, 2] = gstep
    affine[:3, 3] = pos_w[order[0]]

    missing_set = {int(k) for k in missing}
    dup_set = [int(k) for k in duplicate]
    for k in list(missing_set) + dup_set:
        if not 0 <= k < nz:
            raise ValueError(f"slice index {k} out of range 0..{nz - 1}")
    if missing_set & set(dup_set):
        raise ValueError(f"slices both missing and duplicated: {sorted(missing_set & set(dup_set))}")
    present = [int(k) for k in order if int(k) not in missing_set]   # planned k, position order
    if not present:
        raise ValueError("every slice is missing")

    # InstanceNumber / SliceLocation permutation over the planned slices.
    if instance_number_order == "normal":
        perm = np.arange(nz)
    elif instance_number_order == "reverse":
        perm = np.arange(nz)[::-1].copy()
    else:
        perm = rng.permutation(nz)
        if nz > 2 and np.array_equal(perm, np.arange(nz)):
            perm = perm[::-1].copy()
    # perm[k] is the planned slice whose number/location slice k borrows.
    inst_number = {k: int(grid_of[perm[k]]) + 1 for k in range(nz)}
    slice_loc = {k: float(pos_w[perm[k]] @ normal) for k in range(nz)}

    # Duplicates' pixels: stored values shifted cyclically inside the range (every pixel differs).
    span = hi - lo + 1
    dup_pixels: dict[int, np.ndarray] = {}
    for k in dup_set:
        v = planned[k].astype(np.int64)
        dup_pixels[k] = (lo + (v - lo + 37) % span).astype(planned.dtype)

    # ---- common attributes -----------------------------------------------
    study_uid = study_uid or _uid()
    series_uid = series_uid or _uid()
    for_uid = frame_of_reference_uid or _uid()
    windows = _windows(window)
    thickness = abs(float(slice_step)) * 0.8 if positions is None else (
        float(np.linalg.norm(gstep)) * 0.8 if nz > 1 else 1.0)
    thickness_str = _ds_str(thickness)
    if series_description is None:
        series_description = f"gpukit synthetic {modality} {nz}x{ny}x{nx} step {slice_step} tilt {tilt_deg}"
    series_description = series_description[:64]
    rescale_type = "HU" if modality == "CT" else "US"
    uniform_rescale = bool(np.all(slopes_p == slopes_p[0]) and np.all(inter_p == inter_p[0]))

    def common(ds: Any) -> None:
        _patient_study(ds, study_uid, _WHEN)
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = int(series_number)
        ds.SeriesDescription = series_description
        ds.SeriesDate = _WHEN.strftime("%Y%m%d")
        ds.SeriesTime = _WHEN.strftime("%H%M%S")
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "CHEST"
        ds.Rows = int(ny)
        ds.Columns = int(nx)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = int(bool(signed))
        if modality == "CT":
            ds.KVP = "120"

    written: list[Path] = []
    used_names: set[str] = set()

    def out_path(instance: int) -> Path:
        if file_names == "random":
            return folder / _random_name(rng, used_names)
        name = f"IM{instance:05d}.dcm"
        if name in used_names:
            raise ValueError(f"file name {name} used twice")
        used_names.add(name)
        return folder / name

    def finish(ds: Any, k: int | None, path: Path) -> None:
        if extra is not None:
            res = extra(ds, k)
            if res is not None:
                ds = res
        _save(ds, path)
        written.append(path)

    stored = np.stack([planned[k] for k in present])
    indices = np.array([grid_of[k] for k in present], dtype=int)
    sop_uids: dict[int, str] = {}
    dup_files: list[Path] = []

    if not multiframe:
        sop_class = MR_IMAGE_STORAGE if modality == "MR" else CT_IMAGE_STORAGE
        jobs: list[tuple[int, bool]] = [(k, False) for k in present] + [(k, True) for k in dup_set]
        if shuffle:
            jobs = [jobs[n] for n in rng.permutation(len(jobs))]
        n_dup = 0
        for k, is_dup in jobs:
            sop = _uid()
            ds = _new_dataset(sop_class, sop)
            common(ds)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.AcquisitionNumber = 1
            ds.ContentDate = ds.StudyDate
            ds.ContentTime = ds.StudyTime
            if is_dup:
                n_dup += 1
                ds.InstanceNumber = nz + n_dup
            else:
                ds.InstanceNumber = inst_number[k]
            ds.ImagePositionPatient = ipp_strs[k]
            ds.ImageOrientationPatient = iop_strs
            ds.PixelSpacing = ps_strs
            ds.SliceThickness = thickness_str
            ds.SliceLocation = _ds_str(slice_loc[k])
            if modality == "CT":
                ds.GantryDetectorTilt = _ds_str(tilt_used)
            if modality == "CT" or slopes_p[k] != 1 or inter_p[k] != 0:
                ds.RescaleIntercept = _ds_str(inter_p[k])
                ds.RescaleSlope = _ds_str(slopes_p[k])
            ds.RescaleType = rescale_type
            if windows:
                ds.WindowCenter = [_ds_str(c) for c, _ in windows] if len(windows) > 1 else _ds_str(windows[0][0])
                ds.WindowWidth = [_ds_str(w) for _, w in windows] if len(windows) > 1 else _ds_str(windows[0][1])
            pix = dup_pixels[k] if is_dup else planned[k]
            _set_pixels(ds, pix, uid_ts, signed, bits)
            path = out_path(int(ds.InstanceNumber))
            finish(ds, k, path)
            if is_dup:
                dup_files.append(path)
            else:
                sop_uids[k] = sop
        sop_list = [sop_uids[k] for k in present]
        inst = np.array([inst_number[k] for k in present], dtype=int)
    else:
        sop = _uid()
        sop_class = ENHANCED_MR_IMAGE_STORAGE if modality == "MR" else ENHANCED_CT_IMAGE_STORAGE
        ds = _new_dataset(sop_class, sop)
        common(ds)
        frames_k: list[tuple[int, bool]] = [(k, False) for k in present] + [(k, True) for k in dup_set]
        if shuffle:
            frames_k = [frames_k[n] for n in rng.permutation(len(frames_k))]
        _enhanced_header(ds, modality=modality, photometric=photometric, tilt=tilt_used,
                         ps_strs=ps_strs, thickness_str=thickness_str, iop_strs=iop_strs,
                         uniform=uniform_rescale, slope0=slopes_p[0], inter0=inter_p[0],
                         rescale_type=rescale_type)
        in_stack = {k: n + 1 for n, k in enumerate(present)}
        per_frame = []
        for k, is_dup in frames_k:
            per_frame.append(_frame_item(
                ipp=ipp_strs[k], stack_id="2" if is_dup else "1", in_stack=in_stack[k],
                slope=None if uniform_rescale else slopes_p[k],
                inter=None if uniform_rescale else inter_p[k],
                rescale_type=rescale_type, windows=windows))
        from pydicom.sequence import Sequence as DicomSequence

        ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
        ds.NumberOfFrames = len(frames_k)
        pix = np.stack([dup_pixels[k] if is_dup else planned[k] for k, is_dup in frames_k])
        _set_pixels(ds, pix, uid_ts, signed, bits)
        finish(ds, None, out_path(1))
        sop_list = [sop]
        inst = np.zeros(0, dtype=int)

    return SyntheticSeries(
        folder=folder,
        files=written,
        stored=stored,
        affine=affine,
        positions=np.stack([pos_w[k] for k in present]),
        slopes=np.array([slopes_p[k] for k in present]),
        intercepts=np.array([inter_p[k] for k in present]),
        series_uid=series_uid,
        tilt_deg=tilt_used,
        transfer_syntax=uid_ts,
        indices=indices,
        study_uid=study_uid,
        frame_of_reference_uid=for_uid,
        sop_instance_uids=sop_list,
        duplicate_files=dup_files,
        duplicate_stored={int(grid_of[k]): dup_pixels[k] for k in dup_set},
        pixel_spacing=(float(ps_w[0]), float(ps_w[1])),
        iop=tuple(float(v) for v in iop_w),
        slice_thickness=float(thickness_str),
        modality=modality,
        photometric=photometric,
        bits_stored=bits,
        signed=bool(signed),
        multiframe=bool(multiframe),
        window=windows,
        instance_numbers=inst,
    )


def _windows(window: Any) -> list[tuple[float, float]]:
    if window is None:
        return []
    w = np.asarray(window, dtype=np.float64)
    if w.ndim == 1 and w.shape == (2,):
        return [(float(w[0]), float(w[1]))]
    if w.ndim == 2 and w.shape[1] == 2:
        return [(float(c), float(ww)) for c, ww in w]
    raise ValueError(f"window must be (center, width) or a sequence of them, got {window!r}")


def _item(**kw: Any) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    for key, val in kw.items():
        setattr(ds, key, val)
    return ds


def _enhanced_header(ds: Any, *, modality: str, photometric: str, tilt: float, ps_strs: list[str],
                     thickness_str: str, iop_strs: list[str], uniform: bool, slope0: float,
                     inter0: float, rescale_type: str) -> None:
    """Top-level and shared functional group attributes of an Enhanced CT/MR file."""
    from pydicom.sequence import Sequence as DicomSequence

    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.ContentQualification = "PRODUCT"
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.AcquisitionDateTime = ds.StudyDate + ds.StudyTime
    ds.InstanceNumber = 1
    ds.AcquisitionNumber = 1
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    if modality == "MR":
        ds.ComplexImageComponent = "MAGNITUDE"
        ds.AcquisitionContrast = "T1"
    dim_uid = _uid()
    ds.DimensionOrganizationSequence = DicomSequence([_item(DimensionOrganizationUID=dim_uid)])
    ds.DimensionIndexSequence = DicomSequence([
        _item(DimensionOrganizationUID=dim_uid, DimensionIndexPointer=0x00209056,
              FunctionalGroupPointer=0x00209111, DimensionDescriptionLabel="Stack ID"),
        _item(DimensionOrganizationUID=dim_uid, DimensionIndexPointer=0x00209057,
              FunctionalGroupPointer=0x00209111, DimensionDescriptionLabel="In-Stack Position Number"),
    ])
    shared = _item(
        PixelMeasuresSequence=DicomSequence([_item(PixelSpacing=ps_strs, SliceThickness=thickness_str)]),
        PlaneOrientationSequence=DicomSequence([_item(ImageOrientationPatient=iop_strs)]),
    )
    if uniform:
        shared.PixelValueTransformationSequence = DicomSequence([_item(
            RescaleIntercept=_ds_str(inter0), RescaleSlope=_ds_str(slope0), RescaleType=rescale_type)])
    if modality == "CT":
        shared.CTImageFrameTypeSequence = DicomSequence([_item(
            FrameType=["ORIGINAL", "PRIMARY", "AXIAL", "NONE"], PixelPresentation="MONOCHROME",
            VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE")])
        shared.CTAcquisitionDetailsSequence = DicomSequence([_item(GantryDetectorTilt=_ds_str(tilt))])
    else:
        shared.MRImageFrameTypeSequence = DicomSequence([_item(
            FrameType=["ORIGINAL", "PRIMARY", "AXIAL", "NONE"], PixelPresentation="MONOCHROME",
            VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE",
            ComplexImageComponent="MAGNITUDE", AcquisitionContrast="T1")])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])


def _frame_item(*, ipp: list[str], stack_id: str, in_stack: int, slope: float | None,
                inter: float | None, rescale_type: str, windows: list[tuple[float, float]]) -> Any:
    from pydicom.sequence import Sequence as DicomSequence

    item = _item(
        FrameContentSequence=DicomSequence([_item(
            StackID=stack_id, InStackPositionNumber=int(in_stack),
            DimensionIndexValues=[int(stack_id), int(in_stack)])]),
        PlanePositionSequence=DicomSequence([_item(ImagePositionPatient=ipp)]),
    )
    if slope is not None:
        item.PixelValueTransformationSequence = DicomSequence([_item(
            RescaleIntercept=_ds_str(inter), RescaleSlope=_ds_str(slope), RescaleType=rescale_type)])
    if windows:
        voi = _item()
        if len(windows) == 1:
            voi.WindowCenter = _ds_str(windows[0][0])
            voi.WindowWidth = _ds_str(windows[0][1])
        else:
            voi.WindowCenter = [_ds_str(c) for c, _ in windows]
            voi.WindowWidth = [_ds_str(w) for _, w in windows]
        item.FrameVOILUTSequence = DicomSequence([voi])
    return item


# --------------------------------------------------------------------------
# Bad and foreign files
# --------------------------------------------------------------------------
def write_not_dicom(path: str | os.PathLike) -> Path:
    """Write a file that is not DICOM (text, no preamble, no ``DICM``).

    Parameters
    ----------
    path : path
        Where to write it.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"This is not a DICOM file. It sits in the series folder to be skipped.\n" * 20
                     + bytes(range(256)))
    return path


def write_truncated(src_file: str | os.PathLike, dst_path: str | os.PathLike,
                    keep_fraction: float = 0.6) -> Path:
    """Copy the first ``keep_fraction`` of a file's bytes (a transfer cut short).

    Parameters
    ----------
    src_file : path
        A DICOM file (e.g. one of ``SyntheticSeries.files``).
    dst_path : path
        Where to write the truncated copy.
    keep_fraction : float
        Fraction of the bytes kept, in (0, 1).

    Returns
    -------
    Path
    """
    if not 0.0 < keep_fraction < 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1), got {keep_fraction}")
    raw = Path(src_file).read_bytes()
    dst = Path(dst_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(raw[: max(1, int(len(raw) * keep_fraction))])
    return dst


def write_no_pixel_data(path: str | os.PathLike, *, kind: str = "sr",
                        like: SyntheticSeries | None = None) -> Path:
    """Write a valid DICOM file that holds no image.

    Parameters
    ----------
    path : path
        Where to write it.
    kind : {'sr', 'ct'}
        'sr': a Basic Text SR document (a report, like a CT dose report found
        in image folders). 'ct': a CT Image Storage header with geometry but
        no PixelData.
    like : SyntheticSeries, optional
        Share its Study, Series and Frame of Reference UIDs (so it is mixed
        into that series).

    Returns
    -------
    Path
    """
    from pydicom.sequence import Sequence as DicomSequence

    if kind not in ("sr", "ct"):
        raise ValueError(f"kind must be 'sr' or 'ct', got {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    study = like.study_uid if like is not None and like.study_uid else _uid()
    series = like.series_uid if like is not None else _uid()
    if kind == "sr":
        ds = _new_dataset(BASIC_TEXT_SR_STORAGE, _uid())
        _patient_study(ds, study, _WHEN)
        ds.Modality = "SR"
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 999
        ds.InstanceNumber = 1
        ds.ContentDate = ds.StudyDate
        ds.ContentTime = ds.StudyTime
        ds.ValueType = "CONTAINER"
        ds.ConceptNameCodeSequence = DicomSequence([_item(
            CodeValue="18748-4", CodingSchemeDesignator="LN", CodeMeaning="Diagnostic Imaging Report")])
        ds.ContinuityOfContent = "SEPARATE"
        ds.CompletionFlag = "COMPLETE"
        ds.VerificationFlag = "UNVERIFIED"
        ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
        ds.PerformedProcedureCodeSequence = DicomSequence([])
        ds.ContentSequence = DicomSequence([_item(
            RelationshipType="CONTAINS", ValueType="TEXT",
            ConceptNameCodeSequence=DicomSequence([_item(
                CodeValue="121071", CodingSchemeDesignator="DCM", CodeMeaning="Finding")]),
            TextValue="Synthetic phantom; no findings.")])
    else:
        ds = _new_dataset(CT_IMAGE_STORAGE, _uid())
        _patient_study(ds, study, _WHEN)
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 1
        ds.InstanceNumber = 9999
        ds.FrameOfReferenceUID = like.frame_of_reference_uid if like is not None else _uid()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = ["0", "0", "0"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["1", "1"]
        ds.Rows = 8
        ds.Columns = 8
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
    _save(ds, path)
    return path


def write_dicomdir_like(path: str | os.PathLike) -> Path:
    """Write a DICOMDIR (Media Storage Directory SOP class) with no records.

    pydicom reads it as a DICOMDIR (``pydicom.fileset.FileSet`` loads it);
    it has no pixel data and must not be taken for an image.

    Parameters
    ----------
    path : path
        Where to write it (usually ``folder / "DICOMDIR"``).

    Returns
    -------
    Path
    """
    from pydicom.sequence import Sequence as DicomSequence

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _new_dataset(MEDIA_STORAGE_DIRECTORY_STORAGE, _uid())
    # A DICOMDIR holds only the File-set Identification and Directory Information modules.
    del ds.SOPClassUID, ds.SOPInstanceUID, ds.SpecificCharacterSet
    ds.FileSetID = "GPUKIT"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence([])
    _save(ds, path)
    return path


def write_rgb_secondary_capture(path: str | os.PathLike, *, like: SyntheticSeries | None = None,
                                rows: int = 24, columns: int = 32) -> Path:
    """Write an RGB Secondary Capture image with no geometry (a screenshot).

    Parameters
    ----------
    path : path
        Where to write it.
    like : SyntheticSeries, optional
        Share its Study and Series UIDs.
    rows, columns : int
        Image size.

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _new_dataset(SECONDARY_CAPTURE_IMAGE_STORAGE, _uid())
    _patient_study(ds, like.study_uid if like is not None and like.study_uid else _uid(), _WHEN)
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SeriesInstanceUID = like.series_uid if like is not None else _uid()
    ds.SeriesNumber = 1000
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Rows = int(rows)
    ds.Columns = int(columns)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    yy, xx = np.mgrid[0:rows, 0:columns]
    rgb = np.stack([(xx * 255 // max(1, columns - 1)), (yy * 255 // max(1, rows - 1)),
                    np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    ds.PixelData = rgb.tobytes()
    ds["PixelData"].VR = "OB"
    _save(ds, path)
    return path


def write_localizer(folder: str | os.PathLike, like: SyntheticSeries, *, seed: int = 0) -> Path:
    """Write a coronal scout image into ``like``'s series (same SeriesInstanceUID).

    It has a different orientation (coronal, ImageOrientationPatient
    ``1\\0\\0\\0\\0\\-1``), a different matrix and pixel spacing, ImageType
    LOCALIZER, and InstanceNumber 1 (clashing with a real slice), so a reader
    must split it off by geometry.

    Parameters
    ----------
    folder : path
        Folder to write into (a random hex file name is used).
    like : SyntheticSeries
        The series to join.
    seed : int
        Seeds the file name.

    Returns
    -------
    Path
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = like.stored.shape
    rows, cols = ny + 16, nx + 8
    dr, dc = 1.3, 1.1
    ds = _new_dataset(CT_IMAGE_STORAGE, _uid())
    _patient_study(ds, like.study_uid or _uid(), _WHEN)
    ds.Modality = like.modality
    ds.SeriesInstanceUID = like.series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = "gpukit synthetic localizer"
    ds.FrameOfReferenceUID = like.frame_of_reference_uid or _uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.InstanceNumber = 1
    ds.PatientPosition = "HFS"
    row_c = np.array([1.0, 0.0, 0.0])
    col_c = np.array([0.0, 0.0, -1.0])
    centre = like.affine @ np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2, 1.0])
    ipp = centre[:3] - row_c * dc * (cols - 1) / 2 - col_c * dr * (rows - 1) / 2
    ds.ImagePositionPatient = [_ds_str(v) for v in ipp]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.PixelSpacing = [_ds_str(dr), _ds_str(dc)]
    ds.SliceThickness = "1"
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    # A projection-like image: the phantom averaged front to back, head at the top.
    proj = phantom((rows, 16, cols), seed=seed).mean(axis=1)[::-1]
    stored = np.clip(np.rint(proj + 1024), -32768, 32767).astype(np.int16)
    ds.PixelData = stored.astype("<i2").tobytes()
    ds["PixelData"].VR = "OW"
    rng = np.random.default_rng(seed + 7919)
    used = {p.name for p in folder.iterdir()} if folder.exists() else set()
    path = folder / _random_name(rng, used)
    _save(ds, path)
    return path
