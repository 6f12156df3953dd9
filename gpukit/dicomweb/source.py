"""A DICOMweb server as a source of series: scan (QIDO-RS + WADO-RS metadata), then load (WADO-RS instances).

:func:`scan` finds series with QIDO-RS (study, modality, date range, any other matching key), reads every
instance's metadata with WADO-RS (one request per series, no pixels) and groups it with the folder scan's own
code: the same :class:`~gpukit.dicom.scan.ScanResult`, split reasons and skipped instances. Each frame's
``path`` is its instance URL.

:func:`load_series` fetches the instances of one found series in parallel (``parallel`` requests on one
connection pool), in the transfer syntax the server keeps, through an :class:`~gpukit.dicomweb.InstanceCache`
(a rerun downloads nothing), checks each one, and then builds the volume with the file reader itself
(:func:`gpukit.dicom.load.build_volume`: same geometry, same decoders, pixels read straight into the
preallocated volume). A series of which any instance cannot be retrieved raises
:class:`~gpukit.errors.IncompleteSeriesError` naming them: never a shorter volume.

URLs: ``http(s)://host/root`` (the DICOMweb root), optionally followed by ``/studies/{uid}`` and
``/series/{uid}``, and by QIDO matching keys as a query string (``?Modality=CT&StudyDate=20200101-``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from ..dicom.header import frames_of, is_foreign_error, read_header
from ..dicom.scan import ScanResult, SeriesInfo, group_frames
from ..errors import (CorruptDicomError, DicomWebAuthError, DicomWebError, GpukitError, IncompleteSeriesError,
                      InvalidParameterError, TruncatedResponseError)
from ..volume import Volume
from .auth import split_userinfo
from .cache import InstanceCache
from .client import DicomWebClient
from .metadata import WebHeader, headers_from_metadata

#: parallel requests for instances when none is given
DEFAULT_PARALLEL = 4


def is_url(path) -> bool:
    """Whether ``path`` names a DICOMweb server (``http://`` or ``https://``)."""
    return isinstance(path, str) and path[:8].lower().startswith(("http://", "https://"))


@dataclass
class WebLocation:
    """A parsed DICOMweb URL: the server root, an optional study and series, and QIDO matching keys."""

    server: str
    study: str | None = None
    series: str | None = None
    filters: dict = field(default_factory=dict)


_PATH_RE = re.compile(r"^(?P<root>.*?)(?:/studies/(?P<study>[^/]+)(?:/series/(?P<series>[^/]+))?)?/*$")


def parse_url(url: str) -> WebLocation:
    """Split ``http(s)://host/root[/studies/S[/series/Y]][?Key=value...]`` (credentials removed)."""
    clean, _ = split_userinfo(url)
    parts = urlsplit(clean)
    m = _PATH_RE.match(parts.path)
    root = urlunsplit((parts.scheme, parts.netloc, m["root"].rstrip("/"), "", ""))
    filters = dict(parse_qsl(parts.query, keep_blank_values=False))
    return WebLocation(root, unquote(m["study"]) if m["study"] else None,
                       unquote(m["series"]) if m["series"] else None, filters)


def series_url(info: SeriesInfo) -> str:
    """The WADO-RS URL of a series found by :func:`scan` (with ``#part`` for a part of a split series): the key
    of that series for a manifest; :func:`gpukit.load` takes it back. No credentials in it."""
    h = info.frames[0].header
    if not isinstance(h, WebHeader):
        raise InvalidParameterError(f"series {info.id} was not found on a DICOMweb server")
    return f"{h.server}/studies/{h.study_uid}/series/{h.series_uid}" + (f"#{info.part}" if info.part else "")


def instance_uids(info: SeriesInfo) -> list[str]:
    """The SOP Instance UIDs of a series found by :func:`scan`, in the order of its frames (once each)."""
    seen: dict[str, None] = {}
    for f in info.frames:
        seen.setdefault(getattr(f.header, "sop_uid", "") or str(f.header.get("SOPInstanceUID")), None)
    return list(seen)


def _date_range(date) -> str | None:
    """QIDO date matching: ``"20200101"``, ``"20200101-20201231"``, ``"2020-01-01"``, a date, or a
    ``(start, end)`` pair (either may be None for an open end)."""
    if date is None:
        return None

    def one(d) -> str:
        if d is None:
            return ""
        if isinstance(d, (_dt.date, _dt.datetime)):
            return d.strftime("%Y%m%d")
        s = str(d).strip().replace("-", "")
        if not re.fullmatch(r"\d{8}", s):
            raise InvalidParameterError(f"not a date: {d!r} (YYYYMMDD, YYYY-MM-DD or a datetime.date)")
        return s

    if isinstance(date, (tuple, list)):
        if len(date) != 2:
            raise InvalidParameterError(f"a date range is a (start, end) pair, got {date!r}")
        return f"{one(date[0])}-{one(date[1])}"
    s = str(date).strip()
    if re.fullmatch(r"\d{8}-\d{0,8}|-\d{8}|\d{8}", s):
        return s
    return one(s)


def client_for_url(url: str, **options) -> DicomWebClient:
    """A :class:`DicomWebClient` for the server of any DICOMweb URL (root, study or series): credentials from
    the URL's ``user:password@``, else the environment or the credentials file; ``options`` as for the client."""
    loc = parse_url(url)
    return DicomWebClient(loc.server, auth=options.pop("auth", None) or split_userinfo(url)[1], **options)


def _client_for(url: str, client: DicomWebClient | None) -> tuple[DicomWebClient, bool]:
    if client is not None:
        server = parse_url(url).server
        if client.url.rstrip("/") != server.rstrip("/"):
            raise InvalidParameterError(f"the client is for {client.url}, the URL names {server}")
        return client, False
    return client_for_url(url), True


def scan(url: str, *, study: str | None = None, series: str | None = None, modality: str | None = None,
         date=None, filters: dict | None = None, client: DicomWebClient | None = None,
         parallel: int = DEFAULT_PARALLEL) -> ScanResult:
    """Find the series on a DICOMweb server, reading metadata only (no pixels).

    Parameters
    ----------
    url : the DICOMweb root (``http(s)://host/dicom-web``), or a study or series URL under it; a query string
        adds QIDO matching keys (``?Modality=CT&StudyDate=20200101-``).
    study : a StudyInstanceUID to look in.
    series : a SeriesInstanceUID (``uid#part`` is accepted: the part is chosen later), or a SeriesNumber (int).
    modality : e.g. ``"CT"`` (QIDO ``Modality`` at the series level).
    date : a StudyDate or a range (``"20200101-20201231"``, ``("2020-01-01", None)``, ...).
    filters : more QIDO matching keys, by keyword (``{"PatientID": "X", "BodyPartExamined": "HEAD"}``): study
        level keys pick studies first, the others apply to series.
    client : a :class:`DicomWebClient` (its credentials, retries, counters); default: one made for ``url`` with
        credentials from the environment or the credentials file.
    parallel : metadata requests in flight (one per series).

    Returns
    -------
    ScanResult
        The same table as a folder scan (:func:`gpukit.scan`): series with kind, split reasons, spacing; frames
        whose ``path`` is the instance URL; ``skipped`` instances with their reasons.
    """
    loc = parse_url(url)
    keys = {**loc.filters, **(filters or {})}
    study = study or loc.study
    if isinstance(series, str) and "#" in series:
        series = series.split("#", 1)[0]
    series = series or loc.series
    if modality:
        keys["Modality"] = modality
    if date is not None:
        keys["StudyDate"] = _date_range(date)
    study_keys = {k: keys.pop(k) for k in list(keys) if k in _STUDY_KEYS}
    if isinstance(series, int) and not isinstance(series, bool):
        keys["SeriesNumber"] = str(series)
    elif series:
        keys["SeriesInstanceUID"] = str(series)
    c, own = _client_for(url, client)
    try:
        if study_keys:       # study-level keys pick the studies (within the one given, if any)
            studies = [str(_value(s, "0020000D")) for s in c.search_studies(StudyInstanceUID=study, **study_keys)]
        else:
            studies = [study]
        pairs: list[tuple[str, str]] = []
        for st in studies:
            for s in c.search_series(st, **keys):
                pairs.append((str(_value(s, "0020000D") or st), str(_value(s, "0020000E"))))
        pairs = sorted(dict.fromkeys(pairs))

        def meta(pair):
            return c.series_metadata(*pair)

        with ThreadPoolExecutor(max(1, min(parallel, len(pairs) or 1))) as ex:
            metas = list(ex.map(meta, pairs))
    finally:
        if own:
            c.close()
    headers, skipped = [], []
    for items in metas:
        h, sk = headers_from_metadata(items, c.url)
        headers += h
        skipped += sk
    groups, skipped2 = group_frames(headers)
    return ScanResult(groups, skipped + skipped2)


#: QIDO matching keys of the study level (PS3.18 table 10.6.1-5): they select studies before their series
_STUDY_KEYS = frozenset({"StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
                         "PatientName", "PatientID", "StudyID", "StudyDescription", "PatientBirthDate"})


def _value(obj: dict, tag: str):
    v = obj.get(tag, {}).get("Value")
    return v[0] if isinstance(v, list) and v else None


# -- retrieving --------------------------------------------------------------------------------------------------------
def _resolve_cache(cache) -> tuple[InstanceCache, str | None]:
    """(cache, temporary folder to remove after the load or None)."""
    if isinstance(cache, InstanceCache):
        return cache, None
    if cache is None or cache is True:
        return InstanceCache(), None
    if cache is False:
        tmp = tempfile.mkdtemp(prefix="gpukit-dicomweb-")
        return InstanceCache(tmp, max_bytes=1 << 62), tmp
    return InstanceCache(cache), None


def _check_instance(path: str, url: str, sop: str) -> None:
    """A downloaded instance must be a whole DICOM file of the instance asked for."""
    try:
        h = read_header(path)
    except GpukitError as exc:
        raise TruncatedResponseError(f"the retrieved instance is not a readable DICOM file ({exc.reason})",
                                     url) from None
    if h.truncated:
        raise TruncatedResponseError(f"the retrieved instance is cut: {h.truncated}", url)
    if str(h.get("SOPInstanceUID")) != sop:
        raise DicomWebError(f"the server sent instance {h.get('SOPInstanceUID')} for {sop}", url)


def fetch_instances(info: SeriesInfo, *, client: DicomWebClient | None = None, cache=None,
                    parallel: int = DEFAULT_PARALLEL, evict: bool = True) -> dict[str, str]:
    """Retrieve every instance of ``info`` (found by :func:`scan`) into the cache; returns ``{SOP UID: file}``.

    Instances already in the cache are not asked for again. Each download is checked (a whole Part 10 file of
    the instance asked for) before it is stored under its content hash. Raises
    :class:`~gpukit.errors.IncompleteSeriesError` naming every instance that could not be retrieved (after the
    client's retries), with ``failures`` giving each reason; :class:`~gpukit.errors.DicomWebAuthError` at once
    for refused credentials. ``evict``: trim the cache to its size limit afterwards (least recently used first).
    """
    heads: dict[str, WebHeader] = {}
    for f in info.frames:
        h = f.header
        if not isinstance(h, WebHeader):
            raise InvalidParameterError(f"series {info.id} was not found on a DICOMweb server")
        heads.setdefault(h.sop_uid, h)
    server = next(iter(heads.values())).server
    store, tmp = _resolve_cache(cache)
    if tmp is not None:
        raise InvalidParameterError("fetch_instances needs a cache (an InstanceCache or a folder)")
    c, own = _client_for(server, client)
    ts = c.transfer_syntax
    out: dict[str, str] = {}
    todo = []
    for sop, h in heads.items():
        p = store.get(InstanceCache.key(server, sop, ts))
        if p is not None:
            out[sop] = p
        else:
            todo.append(h)

    def one(h: WebHeader) -> str:
        for attempt in range(c.retries + 1):
            data = c.retrieve_instance(h.study_uid, h.series_uid, h.sop_uid)
            # checked as written, before the rename: only a whole instance of the one asked for enters the cache
            try:
                return store.put(InstanceCache.key(server, h.sop_uid, ts), data,
                                 check=lambda p: _check_instance(p, h.path, h.sop_uid))
            except TruncatedResponseError:
                if attempt == c.retries:
                    raise

    failures: dict[str, BaseException] = {}
    try:
        if todo:
            with ThreadPoolExecutor(max(1, min(int(parallel), len(todo)))) as ex:
                futs = {h.sop_uid: ex.submit(one, h) for h in todo}
                stopped = None
                for sop, fut in futs.items():
                    if stopped is not None and fut.cancel():     # not started, and the server is gone
                        failures[sop] = DicomWebError(f"not asked: retrieval stopped after {stopped}",
                                                      heads[sop].path)
                        continue
                    try:
                        out[sop] = fut.result()
                    except DicomWebAuthError:
                        for other in futs.values():
                            other.cancel()
                        raise
                    except DicomWebError as exc:
                        failures[sop] = exc
                        if exc.status is None and type(exc) is DicomWebError and stopped is None:
                            # the server cannot be reached (after the retries): do not queue the rest behind it
                            stopped = f"{type(exc).__name__} on {sop}"
                            for other in futs.values():
                                other.cancel()
    finally:
        if own:
            c.close()
    if failures:
        first = next(iter(failures.values()))
        listing = "; ".join(f"{sop} ({type(e).__name__}: {e.reason})" for sop, e in list(failures.items())[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        raise IncompleteSeriesError(
            f"{len(failures)} of {len(heads)} instances of series {info.id} could not be retrieved, so it is not "
            f"loaded: {listing}{more}", series_url(info), missing=list(failures), failures=failures) from first
    if evict:
        store.evict()
    return out


def load_series(info: SeriesInfo, *, client: DicomWebClient | None = None, cache=None,
                parallel: int = DEFAULT_PARALLEL, on_irregular: str = "raise", workers: int | None = None,
                backend: str | None = None) -> Volume:
    """Load a series found by :func:`scan` into a :class:`~gpukit.Volume`, exactly as from files.

    Parameters
    ----------
    info : a :class:`~gpukit.dicom.scan.SeriesInfo` of a DICOMweb :func:`scan`.
    client : the :class:`DicomWebClient` to use (default: one for the series' server, credentials from the
        environment or the credentials file).
    cache : an :class:`InstanceCache`, a folder for one, None (the default cache, :func:`default_cache_dir`) or
        False (a temporary folder removed after the load: everything is downloaded).
    parallel : instances retrieved at the same time (one connection each).
    on_irregular, workers, backend : as for :func:`gpukit.load` (``workers``: decoding processes).

    Returns
    -------
    Volume
        Voxels, affine and meta as :func:`gpukit.load` gives for the same files, with ``meta["files"]`` the
        instance URLs, ``meta["source_url"]`` the series URL and ``meta["instance_uids"]`` the SOP Instance
        UIDs in slice order.
    """
    from ..dicom.load import build_volume

    store, tmp = _resolve_cache(cache)
    try:
        with store.reading():                 # no process evicts these files while they are read
            files = fetch_instances(info, client=client, cache=store, parallel=parallel, evict=False)
            local: dict[str, list] = {}
            to_url: dict[str, str] = {}
            for sop, path in files.items():
                fh = read_header(path)
                local[sop] = frames_of(fh)
            frames = []
            for f in info.frames:
                h: WebHeader = f.header
                got = local[h.sop_uid]
                if f.index >= len(got):
                    raise CorruptDicomError(f"the retrieved instance has {len(got)} frames, its metadata "
                                            f"{f.index + 1} or more", h.path)
                frames.append(got[f.index])
                to_url[got[f.index].path] = h.path
            local_info = dataclasses.replace(info, frames=frames)
            try:
                vol = build_volume(local_info, on_irregular=on_irregular, workers=workers, backend=backend)
            except GpukitError as exc:
                _rename_path(exc, to_url)
                raise
            except BaseException as exc:
                if not is_foreign_error(exc):
                    raise
                raise CorruptDicomError(f"cannot load series {info.id} ({type(exc).__name__}: {exc})",
                                        info.frames[0].path) from exc
        if tmp is None:
            store.evict()                     # after the shared lock is released (the volume is in memory)
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    meta = vol.meta
    meta["files"] = [to_url.get(p, p) for p in meta.get("files", [])]
    for w in meta.get("warnings", []):
        if isinstance(w, dict) and w.get("path") in to_url:
            w["path"] = to_url[w["path"]]
    meta["source_url"] = series_url(info)
    meta["instance_uids"] = [f.header.get("SOPInstanceUID") for f in frames_in_order(vol, to_url, info)]
    return vol


def frames_in_order(vol: Volume, to_url: dict, info: SeriesInfo) -> list:
    """The web frames of ``info`` in the volume's slice order (by instance URL and frame index)."""
    by_key = {(f.header.path, f.index): f for f in info.frames}
    return [by_key[(u, i)] for u, i in zip(vol.meta["files"], vol.meta.get("frame_indices", []))
            if (u, i) in by_key]


def _rename_path(exc: GpukitError, to_url: dict) -> None:
    """An error about a cached file names the instance URL instead."""
    if exc.path in to_url:
        exc.path = to_url[exc.path]
        exc.args = (f"{exc.path}: {exc.reason}",)


__all__ = ["scan", "load_series", "fetch_instances", "client_for_url", "parse_url", "series_url", "instance_uids",
           "is_url", "WebLocation", "DEFAULT_PARALLEL"]
