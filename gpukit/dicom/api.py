"""Public entry points: :func:`scan` and :func:`load`."""

from __future__ import annotations

import os
from typing import Sequence

from ..errors import AmbiguousSeriesError, CorruptDicomError, GpukitError, InputNotFoundError, NoPixelDataError, \
    ParameterTypeError, SeriesNotFoundError
from ..volume import Volume
from .load import build_volume
from .header import is_foreign_error, read_header
from .scan import ScanResult, SeriesInfo, _skip_reason, group_frames
from .scan import scan as _scan_files


def _is_url(path) -> bool:
    return isinstance(path, str) and path[:8].lower().startswith(("http://", "https://"))


def _is_web_series(info) -> bool:
    return isinstance(info, SeriesInfo) and bool(info.frames) and hasattr(info.frames[0].header, "sop_uid")


def scan(paths: "str | os.PathLike | Sequence", *, workers: int | None = None, **query) -> ScanResult:
    """Find the DICOM series under files and folders, or on a DICOMweb server, reading headers only.

    Parameters
    ----------
    paths : a file, a folder (walked recursively), a list of them, or a DICOMweb URL
        (``http(s)://host/dicom-web``, optionally ``/studies/{uid}[/series/{uid}]`` and QIDO keys as a query
        string).
    workers : threads for header reading (default 1; raise it for network file systems); for a URL, the
        metadata requests in flight (default 4).
    **query : for a URL only: ``study=``, ``series=``, ``modality=``, ``date=`` (a StudyDate or a range),
        ``filters=`` (more QIDO matching keys), ``client=`` (a :class:`gpukit.dicomweb.DicomWebClient`); see
        :func:`gpukit.dicomweb.scan`.

    Returns
    -------
    ScanResult
        A list of :class:`SeriesInfo` sorted by series number, with ``.skipped`` (see
        :func:`gpukit.dicom.scan.scan`). Over DICOMweb each frame's ``path`` is its instance URL.

    Examples
    --------
    >>> found = gpukit.scan("study/")                                         # doctest: +SKIP
    >>> found = gpukit.scan("http://127.0.0.1:8042/dicom-web", modality="CT")  # doctest: +SKIP
    >>> print(found.table())                                                  # doctest: +SKIP
    """
    if _is_url(paths):
        from ..dicomweb import source

        return source.scan(paths, parallel=workers or source.DEFAULT_PARALLEL, **query)
    if query:
        raise ParameterTypeError(f"scan() got DICOMweb options ({', '.join(sorted(query))}) for a path; they apply to "
                        f"http(s):// URLs only")
    return _scan_files(paths, workers=workers)


def _pick(found: ScanResult, series, where: str) -> SeriesInfo:
    if series is None:
        cands = found.volumes or [s for s in found if s.kind == "image"]
        if len(cands) == 1:
            return cands[0]
        if not cands:
            why = "; ".join(f"{s.path}: {s.reason}" for s in found.skipped[:5])
            extra = f" ({len(found)} non-image series)" if len(found) else ""
            raise SeriesNotFoundError(f"no image series found{extra}" + (f"; skipped: {why}" if why else ""), where)
        listing = "\n".join(f"  {s.id}  series {s.series_number}  {s.modality}  {s.n_images} images  "
                            f"{s.rows}x{s.columns}  {s.description!r}" for s in cands)
        raise AmbiguousSeriesError(
            f"{len(cands)} series found; choose one with series= (a UID, a series number, or an entry of "
            f"gpukit.scan()):\n{listing}", cands, where)
    if isinstance(series, SeriesInfo):
        return series
    matches: list[SeriesInfo]
    if isinstance(series, int) and not isinstance(series, bool):
        matches = [s for s in found if s.series_number == series and s.kind != "unsupported"]
        if len(matches) > 1:  # a split series number: prefer its volume parts
            matches = [s for s in matches if s.kind == "volume"] or matches
    else:
        matches = [s for s in found if series in (s.id, s.uid)]
        if len(matches) > 1:
            matches = [s for s in matches if s.id == series] or [s for s in matches if s.kind == "volume"]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SeriesNotFoundError(f"no series {series!r}; found: " +
                                  ", ".join(f"{s.series_number} ({s.id})" for s in found), where)
    raise AmbiguousSeriesError(f"series {series!r} matches {len(matches)} parts: " +
                               ", ".join(s.id for s in matches), matches, where)


def load(path: "str | os.PathLike | Sequence | SeriesInfo", series=None, *, on_irregular: str = "raise",
         workers: int | None = None, backend: str | None = None, **web) -> Volume:
    """Read a DICOM series into a :class:`~gpukit.Volume`.

    Parameters
    ----------
    path : file, folder, list of them, a :class:`SeriesInfo` returned by :func:`scan`, or a DICOMweb URL
        (the server root, a study or a series URL; ``#part`` picks a part of a split series): the instances
        are retrieved in the stored transfer syntax, through the local cache, and read exactly as files.
    series : which series when several are under ``path``: a SeriesInstanceUID
        (``uid`` or ``uid#part`` for a split series), a SeriesNumber, or a
        :class:`SeriesInfo`. Without it, ``path`` must hold exactly one volume
        series, else :class:`~gpukit.AmbiguousSeriesError` lists them.
    on_irregular : ``"raise"`` (default) raises
        :class:`~gpukit.IrregularSpacingError` with the slice positions when the
        spacing is not uniform (missing slices, duplicates, gaps); ``"keep"``
        loads the slices anyway, in position order, with the real positions in
        ``meta["slice_positions_lps"]`` for later resampling.
    workers : parallelism. Default: headers and uncompressed pixels are read in
        one thread (fastest from a local disk), compressed frames are decoded
        in one process per core. An explicit number sets both: use 8 or more
        on network file systems, 1 to stay in this process.
    backend : ``"cupy"`` or ``"numba-cuda"`` puts the volume on the GPU: frames
        are decoded on the CPU into pinned host buffers and uploaded chunk by
        chunk on a stream while the next chunk decodes; the Volume then holds
        a CuPy array of the stored integers (``to_numpy()`` copies it back).
        A volume larger than the free device memory raises
        :class:`~gpukit.errors.DeviceMemoryError`. Default: host memory.
    **web : for a DICOMweb URL (or a series scanned from one) only: ``client=``, ``cache=`` (an
        :class:`~gpukit.dicomweb.InstanceCache`, a folder, or False), ``parallel=`` (requests in flight,
        default 4), and the :func:`scan` filters (``study=``, ``modality=``, ``date=``, ``filters=``); see
        :func:`gpukit.dicomweb.load_series`. A series that cannot be retrieved whole raises
        :class:`~gpukit.errors.IncompleteSeriesError` naming the missing instances.

    Returns
    -------
    Volume
        ``data[k, j, i]`` of the raw stored integers, the 4x4 LPS affine and
        metadata (per-slice rescale, window, UIDs, tilt, spacing report).

    Examples
    --------
    >>> vol = gpukit.load("ct_head/")                       # doctest: +SKIP
    >>> vol.shape, vol.spacing                              # doctest: +SKIP
    ((140, 512, 512), (1.0, 0.451171875, 0.451171875))
    >>> hu = vol.hu()                                       # doctest: +SKIP
    """
    if on_irregular not in ("raise", "keep"):
        raise ValueError(f"on_irregular must be 'raise' or 'keep', got {on_irregular!r}")
    if _is_url(path) or _is_web_series(path):
        return _load_web(path, series, on_irregular=on_irregular, workers=workers, backend=backend, **web)
    if web:
        raise ParameterTypeError(f"load() got DICOMweb options ({', '.join(sorted(web))}) for a path; they apply to "
                        f"http(s):// URLs only")
    if isinstance(path, (str, os.PathLike)) and not os.path.lexists(path):
        raise InputNotFoundError("no such file or directory", path)
    if isinstance(path, SeriesInfo):
        info = path
    elif isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        # one file: its own problems are the error (not "no series found")
        h = read_header(path)
        reason = _skip_reason(h)
        if reason:
            raise NoPixelDataError(reason, path)
        groups, _ = group_frames([h])
        info = _pick(ScanResult(groups), series, os.fspath(path))
    else:
        found = scan(path, workers=workers)
        info = _pick(found, series, os.fspath(path) if isinstance(path, (str, os.PathLike)) else None)
    try:
        return build_volume(info, on_irregular=on_irregular, workers=workers, backend=backend)
    except GpukitError:
        raise
    except BaseException as exc:
        if not is_foreign_error(exc):
            raise
        # a pydicom/numpy/decoder exception that no reader turned into a GpukitError: name the series' file
        where = info.files[0] if info.files else None
        raise CorruptDicomError(f"cannot load series {info.id} ({type(exc).__name__}: {exc})", where) from exc


def _load_web(path, series, *, on_irregular, workers, backend, client=None, cache=None, parallel=None,
              **query) -> Volume:
    """:func:`load` from a DICOMweb URL or a series scanned from one (gpukit.dicomweb does the work)."""
    from ..dicomweb import source

    parallel = parallel or workers or source.DEFAULT_PARALLEL
    own = None
    if client is None and _is_url(path):        # one client for the scan and the load (credentials in the URL)
        client = own = source.client_for_url(path)
    try:
        if _is_web_series(path) or _is_web_series(series):
            info = path if _is_web_series(path) else series
        else:
            if series is None and "#" in path:          # a series URL with its part: ...series/UID#2
                path, part = path.rsplit("#", 1)
                series = f"{source.parse_url(path).series}#{part}"
            if isinstance(series, SeriesInfo):          # found in a folder: the same series on the server
                series = series.id
            found = source.scan(path, series=series, client=client, parallel=parallel, **query)
            info = _pick(found, series, source.parse_url(path).server)
        return source.load_series(info, client=client, cache=cache, parallel=parallel, on_irregular=on_irregular,
                                  workers=workers, backend=backend)
    finally:
        if own is not None:
            own.close()


__all__ = ["scan", "load", "SeriesInfo", "ScanResult"]
