"""Finding series: walk paths, read headers in parallel, group and split.

Grouping rules (DESIGN.md "Reading a series"):

1. Files are grouped by SeriesInstanceUID.
2. A group is split where images differ in orientation, in matrix
   (rows x columns) or in pixel format: localizers and screenshots that share a
   series UID end up apart.
3. A group holding several images per position is split by the first
   attribute that makes positions unique (echo time, temporal position,
   acquisition number, image type, source file); if none does, the duplicates
   stay and are reported.
4. Non-DICOM files, DICOMDIRs and files without pixel data are skipped with a
   reason; nothing is skipped silently.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .. import geometry
from ..errors import DicomFileError, GpukitError, InputNotFoundError
from .header import MEDIA_STORAGE_DIRECTORY, FileHeader, Frame, frames_of, is_foreign_error, read_header
from .warnlog import WARNINGS_SHOWN, FileWarnings, collecting, reading  # noqa: F401  (re-exported from their old home)

#: Tolerance (in cosine units) for two orientations to count as the same.
IOP_TOL = 1e-4


@dataclass
class Skipped:
    path: str
    reason: str
    error: str = ""     # exception class name where one was raised

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason, "error": self.error}


@dataclass
class SeriesInfo:
    """One series (or one part of a split series) as found by :func:`scan`."""

    uid: str
    part: int                      # 0 unless the UID was split; then 1, 2, ...
    kind: str                      # "volume", "image" (a single 2-D image) or "unsupported"
    modality: str
    description: str
    series_number: int | None
    frames: list = field(repr=False, default_factory=list)
    rows: int = 0
    columns: int = 0
    orientation: str = ""
    spacing: str = ""
    split_reason: str = ""
    note: str = ""                 # why not a volume, when kind != "volume"
    report: geometry.SpacingReport | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        """The UID, with ``#part`` when the UID was split."""
        return f"{self.uid}#{self.part}" if self.part else self.uid

    @property
    def n_images(self) -> int:
        return len(self.frames)

    @property
    def files(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.frames:
            seen.setdefault(f.path, None)
        return list(seen)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "uid": self.uid, "part": self.part, "kind": self.kind, "modality": self.modality,
            "description": self.description, "series_number": self.series_number, "n_images": self.n_images,
            "n_files": len(self.files), "rows": self.rows, "columns": self.columns,
            "orientation": self.orientation, "spacing": self.spacing, "split_reason": self.split_reason,
            "note": self.note, "spacing_report": self.report.to_dict() if self.report else None,
        }


class ScanResult(list):
    """A list of :class:`SeriesInfo`, with ``skipped`` files and their reasons, and per-file ``warnings``."""

    def __init__(self, series: Iterable[SeriesInfo] = (), skipped: Iterable[Skipped] = (),
                 warnings: Iterable[FileWarnings] = ()):
        super().__init__(series)
        self.skipped: list[Skipped] = list(skipped)
        self.warnings: list[FileWarnings] = list(warnings)

    @property
    def volumes(self) -> list[SeriesInfo]:
        return [s for s in self if s.kind == "volume"]

    @property
    def n_warnings(self) -> int:
        return sum(w.count for w in self.warnings)

    def to_dict(self) -> dict:
        return {"series": [s.to_dict() for s in self], "skipped": [s.to_dict() for s in self.skipped],
                "warnings": [w.to_dict() for w in self.warnings], "n_warnings": self.n_warnings}

    def table(self) -> str:
        """A human-readable table of the series found and the files skipped."""
        head = f"{'#':>3}  {'kind':7} {'mod':4} {'no.':>5} {'images':>6} {'matrix':>9}  {'orient.':9} description"
        lines = [head]
        for n, s in enumerate(self):
            lines.append(f"{n:>3}  {s.kind:7} {s.modality or '?':4} {s.series_number if s.series_number is not None else '':>5} "
                         f"{s.n_images:>6} {f'{s.rows}x{s.columns}':>9}  {s.orientation:9} {s.description}")
            lines.append(f"       uid {s.id}")
            if s.spacing:
                lines.append(f"       spacing: {s.spacing}")
            if s.split_reason:
                lines.append(f"       split: {s.split_reason}")
            if s.note:
                lines.append(f"       note: {s.note}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s):")
            for sk in self.skipped:
                lines.append(f"  {sk.path}: {sk.reason}")
        if self.warnings:
            lines.append(f"{self.n_warnings} warning(s) in {len(self.warnings)} file(s):")
            for w in self.warnings:
                more = f" (+{w.count - len(w.messages)} more)" if w.count > len(w.messages) else ""
                lines.append(f"  {w.path}: {w.count}: {' | '.join(w.messages)}{more}")
        return "\n".join(lines)


# -- walking -------------------------------------------------------------------------
def iter_files(paths: "str | os.PathLike | Sequence") -> list[str]:
    """Every file under the given files/folders, sorted, hidden files included.

    Symlinked folders are followed once: a folder (or file) reached a second time through another link, a
    link loop included, is not visited again.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p, followlinks=True):
                seen_dirs.add(os.path.realpath(root))
                dirs[:] = [d for d in sorted(dirs) if os.path.realpath(os.path.join(root, d)) not in seen_dirs]
                for f in sorted(files):
                    full = os.path.join(root, f)
                    real = os.path.realpath(full)
                    if real not in seen_files:
                        seen_files.add(real)
                        out.append(full)
        elif os.path.lexists(p):
            out.append(p)     # a FIFO, socket or device is skipped with its reason by read_headers
        else:
            raise InputNotFoundError("no such file or directory", p)
    return out


def _read_one(path: str):
    try:
        return read_header(path)
    except DicomFileError as exc:
        return Skipped(path, exc.reason, type(exc).__name__)
    except OSError as exc:
        return Skipped(path, f"cannot read file ({exc.strerror or exc})", type(exc).__name__)
    except BaseException as exc:
        if not is_foreign_error(exc):
            raise
        # an exception nobody turned into a GpukitError: still a reason in the report, never an escape
        return Skipped(path, f"cannot read the header ({type(exc).__name__}: {exc})", type(exc).__name__)


def read_headers(files: Sequence[str], workers: int | None = None, *,
                 warnings_out: list | None = None) -> tuple[list[FileHeader], list[Skipped]]:
    """Read headers, in ``workers`` threads when asked.

    The default is one thread: on a local disk with a warm cache the header walk
    is CPU-bound under the GIL and threads only slow it (measured here: 140 CT
    headers in 10 ms serial, more with 2 threads). On network file systems,
    where each open waits on the server, threads overlap the waits: pass
    ``workers=8`` or more.
    """
    workers = workers or 1
    logs: list[FileWarnings] = []

    def one(f):
        with reading(f, logs):
            return _read_one(f)

    # pydicom's warnings (invalid UIDs, odd lengths...) go into the report per file, not to stderr
    with collecting():
        if len(files) < 16 or workers == 1:
            results = [one(f) for f in files]
        else:
            with ThreadPoolExecutor(workers) as ex:
                results = list(ex.map(one, files, chunksize=32))
    if warnings_out is not None:
        order = {f: n for n, f in enumerate(files)}
        warnings_out.extend(sorted(logs, key=lambda w: order.get(w.path, -1)))
    headers = [r for r in results if isinstance(r, FileHeader)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    return headers, skipped


# -- grouping ------------------------------------------------------------------------------
def _skip_reason(h: FileHeader) -> str | None:
    if h.get("SOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        return "DICOMDIR (directory records, no image)"
    if not h.has_pixels:
        return f"no pixel data (SOP class {h.get('SOPClassUID', '?')})"
    return None


def _orientation_key(iop) -> tuple | None:
    if iop is None:
        return None
    return tuple(np.round(np.asarray(iop, dtype=np.float64) / IOP_TOL).astype(np.int64))


def _format_key(f: Frame) -> tuple:
    h = f.header
    key = (h.get("Rows"), h.get("Columns"), h.get("SamplesPerPixel", 1), h.get("BitsAllocated"),
           h.get("PixelRepresentation", 0), h.get("PhotometricInterpretation"))
    # a damaged file can give several values where one is expected: keep the key hashable
    return tuple(tuple(v) if isinstance(v, list) else v for v in key)


def _projection(frames: list[Frame]) -> np.ndarray:
    _, _, n = geometry.orientation_vectors(frames[0].iop, tol=1e-2)
    return np.array([np.dot(np.asarray(f.ipp, dtype=np.float64), n) for f in frames])


_DUP_KEYS = (
    ("echo time", lambda f: f.echo_time),
    ("temporal position", lambda f: f.temporal),
    ("stack", lambda f: f.stack_id),
    ("acquisition number", lambda f: f.header.get("AcquisitionNumber")),
    ("image type / b-value", lambda f: f.extra_key),
    ("source file", lambda f: f.path),
)


def _split_multiple_per_position(frames: list[Frame]) -> tuple[list[list[Frame]], str]:
    """Split frames that hold several images per position by the first key that separates them."""
    if len(frames) < 2 or any(f.ipp is None or f.iop is None for f in frames):
        return [frames], ""
    pos = np.round(_projection(frames), 3)
    n_positions = len(np.unique(pos))
    if n_positions == len(pos):
        return [frames], ""
    for name, key in _DUP_KEYS:
        groups: dict = defaultdict(list)
        for f in frames:
            k = key(f)
            groups[repr(k)].append(f)
        if len(groups) < 2:
            continue
        parts = list(groups.values())
        # accept a split only into equal stacks, each unique in position, and each a real
        # stack (>= 2 images) unless every image sits at one position (copies of one image)
        if all(len(np.unique(np.round(_projection(p), 3))) == len(p) for p in parts) and \
                len({len(p) for p in parts}) == 1 and (len(parts[0]) > 1 or n_positions == 1):
            return parts, f"several images per position: split by {name} into {len(parts)} series"
    return [frames], ""


def _describe(info: SeriesInfo) -> None:
    """Fill orientation, spacing summary and kind for a group of frames."""
    f0 = info.frames[0]
    h0 = f0.header
    info.rows, info.columns = int(h0.get("Rows", 0) or 0), int(h0.get("Columns", 0) or 0)
    photometric = str(h0.get("PhotometricInterpretation", "") or "")
    if int(h0.get("SamplesPerPixel", 1) or 1) != 1 or not photometric.startswith("MONOCHROME"):
        info.kind, info.note = "unsupported", f"colour image ({photometric or 'SamplesPerPixel > 1'}), not a volume"
        return
    if f0.iop is None or f0.ipp is None or f0.pixel_spacing is None:
        info.kind, info.note = ("image" if info.n_images == 1 else "unsupported",
                                "no patient geometry (ImagePositionPatient/ImageOrientationPatient/PixelSpacing)")
        return
    try:
        info.orientation = geometry.orientation_label(f0.iop)
    except ValueError as exc:
        info.kind, info.note = "unsupported", f"bad ImageOrientationPatient: {exc}"
        return
    if info.n_images == 1 or (len({f.path for f in info.frames}) == 1 and not h0.is_enhanced and h0.n_frames > 1):
        if info.n_images == 1:
            info.kind, info.note = "image", "single image"
            return
        # legacy multi-frame: one position for all frames
        step = h0.get("SpacingBetweenSlices") or h0.get("SliceThickness")
        info.kind = "volume"
        info.spacing = f"{info.n_images} frames, step {step} mm (legacy multi-frame: SpacingBetweenSlices)"
        return
    bad = [f.path for f in info.frames if f.header.truncated]
    if bad:
        info.note = f"{len(bad)} truncated file(s), e.g. {bad[0]}: loading this series will fail"
    proj = np.sort(_projection(info.frames))
    info.report = geometry.spacing_report(proj)
    info.spacing = info.report.summary()
    info.kind = "volume"


def group_frames(headers: Sequence[FileHeader]) -> tuple[list[SeriesInfo], list[Skipped]]:
    skipped: list[Skipped] = []
    by_uid: dict[str, list[Frame]] = defaultdict(list)
    for h in headers:
        reason = _skip_reason(h)
        if reason:
            skipped.append(Skipped(h.path, reason))
            continue
        try:
            frames = frames_of(h)
        except DicomFileError as exc:
            skipped.append(Skipped(h.path, exc.reason, type(exc).__name__))
            continue
        uid = h.get("SeriesInstanceUID") or f"(no SeriesInstanceUID) {h.path}"
        if not isinstance(uid, str):
            uid = str(uid)
        by_uid[uid].extend(frames)

    out: list[SeriesInfo] = []
    for uid, frames in by_uid.items():
        # split by orientation and by matrix/pixel format
        sub: dict[tuple, list[Frame]] = defaultdict(list)
        for f in frames:
            # without positions, images of different files cannot be stacked: keep files apart
            where = None if f.ipp is not None else f.path
            sub[(_orientation_key(f.iop), _format_key(f), where)].append(f)
        parts: list[tuple[list[Frame], str]] = []
        reasons = []
        if len(sub) > 1:
            keys = list(sub)
            if len({k[0] for k in keys}) > 1:
                reasons.append("different orientations")
            if len({k[1] for k in keys}) > 1:
                reasons.append("different matrix or pixel format")
            if len({k[2] for k in keys}) > 1:
                reasons.append("images without position kept per file")
        # biggest part first, so part 1 is the main series
        for group in sorted(sub.values(), key=lambda g: -len(g)):
            split, why = _split_multiple_per_position(group)
            for g in split:
                parts.append((g, why))
        for n, (g, why) in enumerate(parts):
            h = g[0].header
            info = SeriesInfo(
                uid=uid, part=(n + 1) if len(parts) > 1 else 0, kind="volume",
                modality=str(h.get("Modality", "") or ""), description=str(h.get("SeriesDescription", "") or ""),
                series_number=h.get("SeriesNumber"), frames=g,
                split_reason="; ".join(r for r in reasons + ([why] if why else []) if r),
            )
            _describe(info)
            out.append(info)
    out.sort(key=lambda s: (s.series_number if isinstance(s.series_number, int) else 1 << 30, s.uid, s.part))
    return out, skipped


def scan(paths: "str | os.PathLike | Sequence", *, workers: int | None = None) -> ScanResult:
    """Find the DICOM series under files and folders, reading headers only.

    Parameters
    ----------
    paths : a file, a folder (walked recursively, any file names) or a list of them.
    workers : threads for header reading (default 1; raise it for network file systems).

    Returns
    -------
    ScanResult
        A list of :class:`SeriesInfo` (UID, modality, description, number of
        images, rows x columns, orientation label, spacing summary, why a group
        was split) sorted by series number; ``.skipped`` lists every file not
        used, with the reason.

    Examples
    --------
    >>> import gpukit
    >>> found = gpukit.scan("study/")                     # doctest: +SKIP
    >>> print(found.table())                              # doctest: +SKIP
    >>> vol = gpukit.load(found.volumes[0])               # doctest: +SKIP
    """
    files = iter_files(paths)
    logs: list[FileWarnings] = []
    headers, skipped = read_headers(files, workers, warnings_out=logs)
    series, skipped2 = group_frames(headers)
    return ScanResult(series, skipped + skipped2, logs)


__all__ = ["scan", "ScanResult", "SeriesInfo", "Skipped", "FileWarnings", "iter_files", "read_headers", "group_frames",
           "GpukitError"]
