"""Credentials for a DICOMweb server: a bearer token or a user and password, never shown.

Where they come from, first match wins:

1. given in code: ``DicomWebClient(url, auth=Credentials.basic(user, pw))`` (or ``auth=(user, pw)``,
   ``auth="token"``);
2. the URL itself: ``https://user:password@host/dicom-web`` (taken out of the URL at once: the URL kept,
   printed and written to manifests has no userinfo);
3. the environment: ``GPUKIT_DICOMWEB_TOKEN``, or ``GPUKIT_DICOMWEB_USER`` with ``GPUKIT_DICOMWEB_PASSWORD``;
4. a TOML file, ``GPUKIT_DICOMWEB_CONFIG`` or ``~/.config/gpukit/dicomweb.toml`` (``$XDG_CONFIG_HOME``), with
   one table per server, the longest matching ``url`` prefix winning::

       [[server]]
       url = "https://pacs.example.org/dicom-web"
       token = "..."              # or: user = "..."  password = "..."

A :class:`Credentials` object's ``repr`` and ``str`` hide the secret, and it refuses to be pickled (so it never
travels into a Dask task graph or a manifest by accident): a worker reads its own environment or file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

ENV_TOKEN = "GPUKIT_DICOMWEB_TOKEN"
ENV_USER = "GPUKIT_DICOMWEB_USER"
ENV_PASSWORD = "GPUKIT_DICOMWEB_PASSWORD"
ENV_CONFIG = "GPUKIT_DICOMWEB_CONFIG"


@dataclass(frozen=True)
class Credentials:
    """A bearer token, or a user and a password (HTTP basic authentication).

    ``source`` says where they came from (``"argument"``, ``"url"``, ``"environment"``, a file name); it is what
    error messages show, with the user name, never the secret.
    """

    kind: str                               # "bearer" or "basic"
    user: str = ""
    secret: str = field(default="", repr=False)
    source: str = "argument"

    @classmethod
    def basic(cls, user: str, password: str, source: str = "argument") -> "Credentials":
        return cls("basic", str(user), str(password), source)

    @classmethod
    def bearer(cls, token: str, source: str = "argument") -> "Credentials":
        return cls("bearer", "", str(token), source)

    def describe(self) -> str:
        """For messages: the kind, the user and the source; never the secret."""
        who = f" for user {self.user!r}" if self.kind == "basic" else ""
        return f"{'basic authentication' if self.kind == 'basic' else 'a bearer token'}{who} (from {self.source})"

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind!r}, user={self.user!r}, secret='***', source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("gpukit refuses to pickle DICOMweb credentials: give each worker its own "
                        f"({ENV_TOKEN}, or {ENV_USER} and {ENV_PASSWORD}, or {ENV_CONFIG})")

    def httpx_auth(self):
        """The matching ``httpx`` authentication object."""
        import httpx

        if self.kind == "basic":
            return httpx.BasicAuth(self.user, self.secret)
        return _BearerAuth(self.secret)


def _bearer_class():
    import httpx

    class BearerAuth(httpx.Auth):
        """``Authorization: Bearer ...`` on every request."""

        def __init__(self, token: str):
            self._token = token

        def auth_flow(self, request):
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

        def __repr__(self) -> str:
            return "BearerAuth(***)"

    return BearerAuth


def _BearerAuth(token: str):  # noqa: N802  (a factory: httpx is imported only when a client is made)
    return _bearer_class()(token)


def split_userinfo(url: str) -> tuple[str, Credentials | None]:
    """``url`` without ``user:password@``, and those credentials (None when the URL has none)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, Credentials.basic(unquote(parts.username or ""), unquote(parts.password or ""), "url")


def config_path() -> str:
    """The credentials file gpukit reads (it need not exist)."""
    if os.environ.get(ENV_CONFIG):
        return os.environ[ENV_CONFIG]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "gpukit", "dicomweb.toml")


def _from_file(url: str) -> Credentials | None:
    path = config_path()
    if not os.path.isfile(path):
        return None
    try:
        import tomllib
    except ModuleNotFoundError:     # Python < 3.11
        import tomli as tomllib
    from ..errors import DicomWebAuthError

    try:
        with open(path, "rb") as fh:
            conf = tomllib.load(fh)
    except (OSError, ValueError) as exc:
        # the parser's message can quote a line of the file: a secret must not reach the terminal
        raise DicomWebAuthError(f"cannot read the DICOMweb credentials file ({type(exc).__name__})", path) from None
    best, best_len = None, -1
    for entry in conf.get("server", []) or []:
        prefix = str(entry.get("url", "")).rstrip("/")
        if prefix and (url.rstrip("/") == prefix or url.startswith(prefix + "/")) and len(prefix) > best_len:
            best, best_len = entry, len(prefix)
    if best is None:
        return None
    if best.get("token"):
        return Credentials.bearer(best["token"], os.path.basename(path))
    if best.get("user") is not None:
        return Credentials.basic(best["user"], best.get("password", ""), os.path.basename(path))
    return None


def resolve(url: str, auth=None) -> tuple[str, Credentials | None]:
    """The URL without userinfo and the credentials to use for it (see the module docstring for the order).

    ``auth`` may be a :class:`Credentials`, a ``(user, password)`` pair, a token string, or None.
    """
    clean, from_url = split_userinfo(url)
    if isinstance(auth, Credentials):
        return clean, auth
    if isinstance(auth, tuple) and len(auth) == 2:
        return clean, Credentials.basic(auth[0], auth[1])
    if isinstance(auth, str):
        return clean, Credentials.bearer(auth)
    if auth is not None:
        from ..errors import ParameterTypeError

        raise ParameterTypeError(f"auth must be a Credentials, a (user, password) pair or a token string, "
                                 f"not {type(auth).__name__}")
    if from_url is not None:
        return clean, from_url
    if os.environ.get(ENV_TOKEN):
        return clean, Credentials.bearer(os.environ[ENV_TOKEN], "environment")
    if os.environ.get(ENV_USER):
        return clean, Credentials.basic(os.environ[ENV_USER], os.environ.get(ENV_PASSWORD, ""), "environment")
    return clean, _from_file(clean)


__all__ = ["Credentials", "resolve", "split_userinfo", "config_path", "ENV_TOKEN", "ENV_USER", "ENV_PASSWORD",
           "ENV_CONFIG"]
