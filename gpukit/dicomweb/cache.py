"""A local cache of retrieved DICOM instances: content-addressed, size-limited (LRU), safe with several processes.

Layout under the root (default ``$GPUKIT_DICOMWEB_CACHE``, else the user cache folder:
``$XDG_CACHE_HOME/gpukit/dicomweb`` or ``~/.cache/gpukit/dicomweb``, ``%LOCALAPPDATA%\\gpukit\\dicomweb``,
``~/Library/Caches/gpukit/dicomweb``)::

    objects/ab/<sha256>.dcm      the instance files, named by the SHA-256 of their bytes (one copy per content)
    refs/cd/<sha256 of key>      a small text file: the object's SHA-256, for a key (server URL + SOP UID)
    lock                         the lock file (fcntl): shared while a load reads, exclusive while evicting

Every file is written under a temporary name in the same folder and renamed into place (``os.replace`` is
atomic), so a reader never sees half a file, and two processes writing the same instance write the same
content. An object's modification time is its last use (touched on every hit); eviction removes the least
recently used objects until the cache fits ``max_bytes``, and only while no process holds the shared lock (a
load in progress keeps its files). A ref whose object is gone is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from typing import Iterator

#: default size limit (bytes): ``GPUKIT_DICOMWEB_CACHE_SIZE`` (a number of bytes, or with a K/M/G/T suffix)
DEFAULT_MAX_BYTES = 20 * 2**30
ENV_DIR = "GPUKIT_DICOMWEB_CACHE"
ENV_SIZE = "GPUKIT_DICOMWEB_CACHE_SIZE"

try:
    import fcntl
except ImportError:     # pragma: no cover - Windows: renames stay atomic; eviction is then not locked
    fcntl = None


def default_cache_dir() -> str:
    """Where the cache lives when none is given (see the module docstring)."""
    if os.environ.get(ENV_DIR):
        return os.environ[ENV_DIR]
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gpukit", "dicomweb")


def parse_size(text: "str | int | float") -> int:
    """``"20G"`` -> bytes (K, M, G, T are powers of 1024); a plain number is bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    s = str(text).strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(s[-1:], 1)
    try:
        return int(float(s[:-1] if mult > 1 else s) * mult)
    except ValueError:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(f"not a size: {text!r} (a number of bytes, or e.g. '500M', '20G')") from None


class InstanceCache:
    """Retrieved instances on local disk, keyed by server and SOP Instance UID.

    Parameters
    ----------
    root : the cache folder (created when missing); default :func:`default_cache_dir`.
    max_bytes : the size limit for the stored objects; default ``GPUKIT_DICOMWEB_CACHE_SIZE`` or 20 GiB.

    Examples
    --------
    >>> cache = InstanceCache("/tmp/pacs-cache", max_bytes="2G")          # doctest: +SKIP
    >>> path = cache.get(key) or cache.put(key, data)                      # doctest: +SKIP
    """

    def __init__(self, root: "str | os.PathLike | None" = None, max_bytes: "int | str | None" = None):
        self.root = os.path.abspath(os.fspath(root) if root is not None else default_cache_dir())
        if max_bytes is None:
            max_bytes = os.environ.get(ENV_SIZE) or DEFAULT_MAX_BYTES
        self.max_bytes = parse_size(max_bytes)
        os.makedirs(os.path.join(self.root, "objects"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "refs"), exist_ok=True)
        self._lock_path = os.path.join(self.root, "lock")

    def __repr__(self) -> str:
        return f"InstanceCache({self.root!r}, max_bytes={self.max_bytes})"

    # -- keys and paths ----------------------------------------------------------------------------------------------
    @staticmethod
    def key(server: str, sop_uid: str, transfer_syntax: str = "*") -> str:
        """The cache key of one instance of one server (the URL without credentials), as asked."""
        return f"{server.rstrip('/')}|{sop_uid}|{transfer_syntax}"

    def _ref_path(self, key: str) -> str:
        h = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return os.path.join(self.root, "refs", h[:2], h)

    def _object_path(self, digest: str) -> str:
        return os.path.join(self.root, "objects", digest[:2], digest + ".dcm")

    # -- reading and writing -----------------------------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        """The local file of ``key``, or None (a miss); a hit counts as a use for the LRU order."""
        try:
            with open(self._ref_path(key), "r", encoding="ascii") as fh:
                digest = fh.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            return None
        path = self._object_path(digest)
        try:
            os.utime(path)
        except OSError:       # evicted by another process: a miss
            return None
        return path

    def put(self, key: str, data: bytes, check=None) -> str:
        """Store ``data`` for ``key`` (atomically); returns the local file.

        ``check(path)``, when given, runs on the written temporary file before it is renamed into place: if it
        raises, nothing is stored.
        """
        digest = hashlib.sha256(data).hexdigest()
        path = self._object_path(digest)
        try:
            os.utime(path)            # already stored (same content): a use
            if check is not None:
                check(path)
        except FileNotFoundError:     # not there, or evicted by another process a moment ago
            _atomic_write(path, data, check)
        _atomic_write(self._ref_path(key), digest.encode("ascii"))
        return path

    # -- locking and eviction ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the shared lock: no process evicts while the block runs (a load reads its files in it)."""
        if fcntl is None:
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)          # releases the lock

    def size(self) -> int:
        """Bytes held by the stored objects."""
        return sum(sz for _, sz, _ in self._objects())

    def _objects(self) -> list[tuple[str, int, float]]:
        out = []
        base = os.path.join(self.root, "objects")
        for sub in os.scandir(base):
            if not sub.is_dir():
                continue
            for e in os.scandir(sub.path):
                if e.name.endswith(".dcm"):
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    out.append((e.path, st.st_size, st.st_mtime))
        return out

    def evict(self, max_bytes: int | None = None) -> int:
        """Remove the least recently used objects until the cache holds at most ``max_bytes`` (default: the
        limit). Skipped (returns 0) while another process reads; returns the bytes freed."""
        limit = self.max_bytes if max_bytes is None else int(max_bytes)
        fd = None
        if fcntl is not None:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return 0
        try:
            objs = self._objects()
            total = sum(sz for _, sz, _ in objs)
            freed = 0
            for path, sz, _ in sorted(objs, key=lambda o: o[2]):
                if total - freed <= limit:
                    break
                try:
                    os.unlink(path)
                    freed += sz
                except OSError:
                    pass
            return freed
        finally:
            if fd is not None:
                os.close(fd)

    def clear(self) -> None:
        """Remove every object and ref."""
        self.evict(0)
        for sub in os.scandir(os.path.join(self.root, "refs")):
            if sub.is_dir():
                for e in os.scandir(sub.path):
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)


def _atomic_write(path: str, data: bytes, check=None) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = ["InstanceCache", "default_cache_dir", "parse_size", "DEFAULT_MAX_BYTES", "ENV_DIR", "ENV_SIZE"]
