"""A small DICOMweb client on ``httpx``: QIDO-RS searches, WADO-RS metadata and instances, with retries.

One :class:`DicomWebClient` holds one ``httpx.Client`` (a connection pool shared by the threads that fetch
instances in parallel), the credentials (never shown), and counters of what it asked (``stats``). Every GET
goes through :meth:`DicomWebClient.get`, which retries connection failures, timeouts, 429 and 5xx answers with
exponential back-off (``Retry-After`` honoured up to a cap) and turns what is left into a typed error:
:class:`~gpukit.errors.DicomWebAuthError` (401/403), :class:`~gpukit.errors.DicomWebError` (others),
:class:`~gpukit.errors.TruncatedResponseError` (a body shorter than announced).

WADO-RS instances are asked in the transfer syntax the server keeps (``Accept: multipart/related;
type="application/dicom"; transfer-syntax=*``, PS3.18 8.7.3.5.2): no server-side transcoding, so the bytes are
the stored file and gpukit's own decoders read them exactly as they read a file from disk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

from ..errors import DicomWebAuthError, DicomWebError, TruncatedResponseError
from .auth import ENV_CONFIG, ENV_PASSWORD, ENV_TOKEN, ENV_USER, Credentials, resolve

DICOM_JSON = "application/dicom+json"
#: the stored transfer syntax, whatever it is (no transcoding)
ACCEPT_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
#: statuses worth another try: the server is busy, restarting or behind a failing proxy
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class RequestStats:
    """What a client asked, by kind (``qido``, ``metadata``, ``instance``): requests sent (retries included),
    retries, and bytes received. Thread-safe."""

    requests: dict = field(default_factory=dict)
    retries: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str, nbytes: int = 0, retry: bool = False) -> None:
        with self._lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1
            self.bytes += nbytes
            self.retries += int(retry)

    def total(self, kind: str | None = None) -> int:
        return sum(self.requests.values()) if kind is None else self.requests.get(kind, 0)

    def to_dict(self) -> dict:
        return {"requests": dict(self.requests), "retries": self.retries, "bytes": self.bytes}


class DicomWebClient:
    """A DICOMweb (QIDO-RS / WADO-RS) client for one server root.

    Parameters
    ----------
    url : the DICOMweb root, e.g. ``"https://pacs.example.org/dicom-web"`` (a ``user:password@`` in it is taken
        out and used as credentials).
    auth : a :class:`~gpukit.dicomweb.Credentials`, a ``(user, password)`` pair, a bearer token string, or
        None: then ``GPUKIT_DICOMWEB_TOKEN`` / ``GPUKIT_DICOMWEB_USER`` + ``GPUKIT_DICOMWEB_PASSWORD``, then the
        credentials file (:mod:`gpukit.dicomweb.auth`), else no authentication.
    timeout : seconds for connecting and for each read (a stalled transfer is retried).
    retries : further tries after a failure that may pass (connection, timeout, 408/429/5xx, a cut body).
    backoff : the first wait between tries, in seconds; doubled each time, at most ``max_backoff``.
    max_connections : the connection pool size (at least the number of parallel requests you make).
    transfer_syntax : ``"*"`` (default) asks for the stored syntax; a UID asks the server to transcode.
    event_hooks : passed to ``httpx.Client`` (e.g. ``{"request": [fn]}`` to watch every request).
    verify : TLS certificate verification (``True``, ``False`` or a CA bundle path).

    Examples
    --------
    >>> with DicomWebClient("http://127.0.0.1:8042/dicom-web") as c:     # doctest: +SKIP
    ...     studies = c.search_studies(ModalitiesInStudy="CT")
    """

    def __init__(self, url: str, *, auth: Any = None, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.25, max_backoff: float = 8.0, max_connections: int = 16,
                 transfer_syntax: str = "*", event_hooks: dict | None = None, verify: Any = True):
        import httpx

        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise DicomWebError(f"not a DICOMweb URL (http:// or https://): {url!r:.200}")
        clean, creds = resolve(url, auth)
        self.url = clean.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        self._creds: Credentials | None = creds
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        self.transfer_syntax = transfer_syntax
        self.stats = RequestStats()
        import sys

        # the package's version without importing the package from inside it (imports only go downward)
        version = getattr(sys.modules.get(__name__.split(".")[0]), "__version__", "")
        self._http = httpx.Client(
            auth=creds.httpx_auth() if creds else None,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": f"gpukit/{version}".rstrip("/")},
            # redirects are followed; httpx drops the Authorization header when one leads to another origin
            event_hooks=event_hooks or {}, verify=verify, follow_redirects=True)

    # -- life cycle --------------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "DicomWebClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        who = self._creds.describe() if self._creds else "no authentication"
        return f"DicomWebClient({self.url!r}, {who})"

    def __reduce__(self):
        raise TypeError("a DicomWebClient holds a connection pool and credentials and is not picklable: pass the "
                        "series URL (or the SeriesInfo) to the worker, which makes its own client")

    @property
    def credentials_note(self) -> str:
        return self._creds.describe() if self._creds else "no credentials"

    # -- one GET, with retries -------------------------------------------------------------------------------------
    def _wait(self, attempt: int, response=None) -> None:
        delay = min(self.backoff * (2 ** attempt), self.max_backoff)
        if response is not None:
            ra = response.headers.get("Retry-After", "")
            if ra.strip().isdigit():
                delay = min(max(delay, float(ra)), self.max_backoff)
        if delay > 0:
            time.sleep(delay)

    def get(self, path: str, *, accept: str, params: dict | None = None, kind: str = "other",
            check: Callable[[Any], None] | None = None, compressed: bool = True):
        """GET ``url + path`` with retries; returns the ``httpx.Response`` (body read).

        ``compressed=False`` asks for the body as is (``Accept-Encoding: identity``): gzip costs more CPU on
        both ends than it saves on pixel data, which is often compressed already. ``check(response)`` may raise
        :class:`~gpukit.errors.TruncatedResponseError` for a body that is cut: that is retried too. Raises
        :class:`~gpukit.errors.DicomWebAuthError` on 401/403 (not retried), :class:`~gpukit.errors.DicomWebError`
        for other failures once the tries are spent.
        """
        headers = {"Accept": accept} if compressed else {"Accept": accept, "Accept-Encoding": "identity"}
        return self.request("GET", path, headers=headers, params=params, kind=kind, check=check)

    def request(self, method: str, path: str, *, headers: dict | None = None, params: dict | None = None,
                content: bytes | None = None, kind: str = "other", check: Callable[[Any], None] | None = None,
                retry_statuses: frozenset = RETRY_STATUSES):
        """One HTTP request to ``url + path`` with the client's retries, back-off, authentication and counters.

        :meth:`get` is this with ``GET``; STOW-RS (:mod:`gpukit.dicomweb.stow`) POSTs through it. The same body is
        sent again on each try (a STOW-RS store of the same instances is idempotent: same SOP Instance UIDs).
        Returns the ``httpx.Response`` (body read); raises as :meth:`get` does.
        """
        import httpx

        url = self.url + path
        last: BaseException | None = None
        busy = None          # the last 429/5xx answer (its Retry-After sets the wait)
        for attempt in range(self.retries + 1):
            if attempt:
                self._wait(attempt - 1, busy)
            busy = None
            try:
                resp = self._http.request(method, url, params=params, headers=headers, content=content)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self.stats.count(kind, 0, retry=attempt > 0)
                last = exc
                continue
            self.stats.count(kind, len(resp.content), retry=attempt > 0)
            status = resp.status_code
            if status in (401, 403):
                what = f"the server refused {self.credentials_note}" if self._creds else \
                    "the server asks for credentials and none were given"
                raise DicomWebAuthError(f"{what} (HTTP {status}); set {ENV_TOKEN}, or {ENV_USER} and {ENV_PASSWORD}, "
                                        f"or the file named by {ENV_CONFIG}", url, status)
            if status in retry_statuses:
                last, busy = DicomWebError(f"HTTP {status} {resp.reason_phrase}", url, status), resp
                continue
            if status >= 400:
                raise DicomWebError(f"HTTP {status} {resp.reason_phrase}: {_short(resp.text)}", url, status)
            if check is not None:
                try:
                    check(resp)
                except TruncatedResponseError as exc:
                    last = exc
                    continue
            return resp
        if isinstance(last, TruncatedResponseError):
            raise TruncatedResponseError(f"{last.reason} (after {self.retries + 1} tries)", url)
        if isinstance(last, DicomWebError):
            raise DicomWebError(f"{last.reason} (after {self.retries + 1} tries)", url, last.status)
        what = "timed out" if isinstance(last, httpx.TimeoutException) else "connection failed"
        if isinstance(last, httpx.RemoteProtocolError):    # the server closed before the announced length
            raise TruncatedResponseError(f"the answer was cut ({_short(str(last))}; after {self.retries + 1} tries)",
                                         url)
        raise DicomWebError(f"{what} ({type(last).__name__}: {_short(str(last))}; after {self.retries + 1} tries)",
                            url)

    def get_json(self, path: str, params: dict | None = None, kind: str = "qido") -> list:
        resp = self.get(path, accept=DICOM_JSON, params=params, kind=kind)
        if resp.status_code == 204 or not resp.content.strip():
            return []
        try:
            out = resp.json()
        except ValueError as exc:
            raise DicomWebError(f"the answer is not JSON ({exc})", self.url + path, resp.status_code) from None
        if not isinstance(out, list):
            raise DicomWebError("the answer is not a JSON array of DICOM datasets", self.url + path)
        return out

    # -- QIDO-RS -----------------------------------------------------------------------------------------------------
    def _search(self, path: str, filters: dict, page: int = 1000) -> list[dict]:
        out: list[dict] = []
        params = {k: v for k, v in filters.items() if v is not None}
        offset = 0
        while True:
            got = self.get_json(path, {**params, "limit": page, "offset": offset})
            out += got
            if len(got) < page:
                return out
            offset += len(got)

    def search_studies(self, **filters) -> list[dict]:
        """QIDO-RS ``/studies`` with matching keys, e.g. ``StudyDate="20200101-20201231"``,
        ``ModalitiesInStudy="CT"``, ``PatientID=...``; returns DICOM JSON datasets."""
        return self._search("/studies", filters)

    def search_series(self, study: str | None = None, **filters) -> list[dict]:
        """QIDO-RS ``/series`` (or ``/studies/{study}/series``) with matching keys, e.g. ``Modality="CT"``,
        ``SeriesInstanceUID=...``, ``SeriesNumber=201``."""
        path = f"/studies/{_uid(study)}/series" if study else "/series"
        return self._search(path, filters)

    # -- WADO-RS -----------------------------------------------------------------------------------------------------
    def series_metadata(self, study: str, series: str) -> list[dict]:
        """WADO-RS metadata of every instance of a series (DICOM JSON; pixel data as BulkDataURI, not sent)."""
        return self.get_json(f"/studies/{_uid(study)}/series/{_uid(series)}/metadata", kind="metadata")

    def instance_path(self, study: str, series: str, sop: str) -> str:
        return f"/studies/{_uid(study)}/series/{_uid(series)}/instances/{_uid(sop)}"

    def retrieve_instance(self, study: str, series: str, sop: str) -> bytes:
        """One instance as the Part 10 file the server keeps (transfer syntax negotiated, see the module doc)."""
        accept = ACCEPT_STORED if self.transfer_syntax == "*" else \
            f'multipart/related; type="application/dicom"; transfer-syntax={self.transfer_syntax}'
        parts: list = []

        def check(resp):
            parts[:] = parse_multipart(resp.content, resp.headers.get("Content-Type", ""))

        self.get(self.instance_path(study, series, sop), accept=accept, kind="instance", check=check,
                 compressed=False)
        if len(parts) != 1:
            raise DicomWebError(f"expected one instance in the answer, got {len(parts)} parts",
                                self.url + self.instance_path(study, series, sop))
        return parts[0]


    # -- STOW-RS -----------------------------------------------------------------------------------------------------
    def store_instances(self, instances: "list[bytes]", study: str | None = None) -> dict:
        """STOW-RS: POST Part 10 files as ``multipart/related; type="application/dicom"`` to ``/studies`` (or
        ``/studies/{study}``), with the client's retries and authentication.

        Returns the server's Store Instances Response (DICOM JSON, PS3.18 10.5.3) as a dict, ``{}`` when it
        sent none. Raises :class:`~gpukit.errors.DicomWebError` when the server refused any instance (HTTP 409,
        or a Failed SOP Sequence), naming how many and the failure reasons it gave.
        """
        import uuid

        boundary = "gpukit-" + uuid.uuid4().hex
        delim = b"--" + boundary.encode("ascii")
        body = bytearray()
        for data in instances:
            body += delim + b"\r\nContent-Type: application/dicom\r\nContent-Length: %d\r\n\r\n" % len(data)
            body += data + b"\r\n"
        body += delim + b"--\r\n"
        path = f"/studies/{_uid(study)}" if study else "/studies"
        headers = {"Accept": DICOM_JSON,
                   "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
        resp = self.request("POST", path, headers=headers, content=bytes(body), kind="stow")
        try:
            answer = resp.json() if resp.content.strip() else {}
        except ValueError:
            answer = {}
        failed = (answer.get("00081198") or {}).get("Value") or [] if isinstance(answer, dict) else []
        if failed:
            reasons = sorted({str(_first(f, "00081197")) for f in failed})
            raise DicomWebError(f"the server refused {len(failed)} of {len(instances)} stored instances "
                                f"(FailureReason {', '.join(reasons)})", self.url + path, resp.status_code)
        return answer if isinstance(answer, dict) else {}


def _first(obj: dict, tag: str):
    v = (obj.get(tag) or {}).get("Value")
    return v[0] if isinstance(v, list) and v else None


def _uid(value: str) -> str:
    return quote(str(value), safe="")


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."


def parse_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The bodies of a ``multipart/related`` answer; a single-part ``application/dicom`` answer is one body.

    Raises :class:`~gpukit.errors.TruncatedResponseError` when the closing boundary is missing or a part is
    shorter than its ``Content-Length``.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in ("application/dicom", "application/octet-stream"):
        return [body]
    if not ctype.startswith("multipart/"):
        raise DicomWebError(f"unexpected Content-Type {content_type!r} for an instance")
    boundary = None
    for item in content_type.split(";")[1:]:
        k, _, v = item.strip().partition("=")
        if k.strip().lower() == "boundary":
            boundary = v.strip().strip('"')
    if not boundary:
        raise DicomWebError(f"multipart answer without a boundary ({content_type!r})")
    delim = b"--" + boundary.encode("latin-1")
    pos = body.find(delim)
    if pos < 0:
        raise TruncatedResponseError("the multipart answer holds no part (no boundary found)")
    out = []
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return out                                   # the closing boundary
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise TruncatedResponseError("the multipart answer ends inside a part header")
        headers = {}
        for line in body[pos:head_end].split(b"\r\n"):
            k, _, v = line.decode("latin-1").partition(":")
            if k.strip():
                headers[k.strip().lower()] = v.strip()
        start = head_end + 4
        nxt = body.find(b"\r\n" + delim, start)
        declared = headers.get("content-length", "")
        if nxt < 0:
            got = len(body) - start
            want = f" of {declared}" if declared.isdigit() else ""
            raise TruncatedResponseError(f"the multipart answer was cut: {got} bytes{want} of a part arrived and "
                                         f"no closing boundary")
        part = body[start:nxt]
        if declared.isdigit() and int(declared) != len(part):
            raise TruncatedResponseError(f"a part holds {len(part)} bytes, its Content-Length says {declared}")
        out.append(part)
        pos = nxt + 2


__all__ = ["DicomWebClient", "RequestStats", "parse_multipart", "ACCEPT_STORED", "DICOM_JSON", "RETRY_STATUSES"]
