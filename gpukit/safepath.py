"""Output paths that stay where they were meant to go.

File contents are untrusted: a ``SeriesInstanceUID`` of ``../escaped`` or
``/etc`` must not choose where gpukit writes or deletes. Three rules, used by
every writer:

* :func:`safe_component` turns any text (a UID, a description, a series
  number) into one harmless path component: no separators, no leading dot, no
  ``..``, bounded length, and a short hash of the original where the text had
  to change, so two different UIDs never share a folder.
* :func:`confine` checks that a path resolves inside an output root, symlinks
  included, before anything is written there or deleted from it.
* :func:`atomic_path` writes under a temporary name ``.gpukit-tmp-<token>-...``
  and renames onto the final name; :func:`sweep_temporaries` deletes only
  temporaries whose token belongs to a gpukit run (never a user's own
  ``.tmp-*`` file), never following a symlink.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterable, Iterator

from .errors import UnsafeOutputPathError

#: every temporary gpukit writes starts with this, then a 16-hex run token and a dash
TMP_PREFIX = ".gpukit-tmp-"
_TOKEN_RE = re.compile(r"^\.gpukit-tmp-([0-9a-f]{16})-")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

_PROCESS_TOKEN = secrets.token_hex(8)
_token: contextvars.ContextVar[str] = contextvars.ContextVar("gpukit_write_token", default=_PROCESS_TOKEN)


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


#: files get the permissions an ordinary ``open(path, "w")`` would give (mkstemp makes them 0600)
FILE_MODE = 0o666 & ~_umask()


def new_token() -> str:
    """A fresh run token (16 hex digits) for :func:`write_token`."""
    return secrets.token_hex(8)


def current_token() -> str:
    return _token.get()


@contextmanager
def write_token(token: str) -> Iterator[str]:
    """Temporaries made inside this block carry ``token`` (one batch run's, so its clean-up finds them)."""
    if not re.fullmatch(r"[0-9a-f]{16}", token or ""):
        raise ValueError(f"a write token is 16 lower-case hex digits, got {token!r}")
    reset = _token.set(token)
    try:
        yield token
    finally:
        _token.reset(reset)


def safe_component(text: object, max_len: int = 64) -> str:
    """``text`` as one safe file-name component.

    Letters, digits, ``.``, ``_`` and ``-`` are kept; every other run becomes
    ``_``; leading and trailing dots, dashes and underscores are stripped (no
    hidden names, no ``.``/``..``, no option-like names). Where anything had to
    change, or the text was longer than ``max_len``, a 10-hex hash of the
    original is appended so that distinct inputs stay distinct.

    >>> safe_component("1.2.840.10008.5.1")
    '1.2.840.10008.5.1'
    >>> safe_component("../escaped")
    'escaped-75a9a607e4'
    >>> safe_component("/")
    'x-8a5edab282'
    """
    raw = str(text)
    clean = _UNSAFE.sub("_", raw).strip("._-")
    if clean == raw and 0 < len(clean) <= max_len:
        return clean
    digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    head = clean[: max(1, max_len - 11)].rstrip("._-") or "x"
    return f"{head}-{digest}"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(root: "str | os.PathLike", path: "str | os.PathLike") -> str:
    """The absolute form of ``path`` after checking that it stays inside ``root``.

    Raises :class:`~gpukit.errors.UnsafeOutputPathError` when ``path`` lies
    outside ``root`` as written (``..``, an absolute path) or when a symlink
    inside ``root`` makes it resolve outside. ``root`` itself may be a symlink
    (the user chose it).
    """
    root_abs = os.path.abspath(os.fspath(root))
    root_real = os.path.realpath(root_abs)
    p_abs = os.path.abspath(os.path.join(root_abs, os.fspath(path)))
    if not _inside(p_abs, root_abs):
        raise UnsafeOutputPathError(f"{os.fspath(path)!r} is outside the output root {root_abs}")
    p_real = os.path.realpath(p_abs)
    if not _inside(p_real, root_real):
        raise UnsafeOutputPathError(f"{p_abs}: a symlink inside the output root {root_abs} leads outside it "
                                    f"(to {p_real}); refusing to write there")
    return p_abs


@contextmanager
def atomic_path(path: "str | os.PathLike", *, is_dir: bool = False, root: "str | os.PathLike | None" = None):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else remove it.

    ``root``: the output root ``path`` must stay inside (checked by
    :func:`confine` before the folder is created and again before the rename).
    """
    path = os.fspath(path)
    if root is not None:
        path = confine(root, path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if root is not None:
        confine(root, folder)
    prefix = f"{TMP_PREFIX}{current_token()}-{os.path.basename(path)[:80]}-"
    if is_dir:
        tmp = tempfile.mkdtemp(prefix=prefix, dir=folder)
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=folder)
        os.close(fd)
        os.chmod(tmp, FILE_MODE)
    try:
        yield tmp
        if root is not None:
            confine(root, path)
        if is_dir:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            os.replace(tmp, path)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: "str | os.PathLike", payload: bytes, *, root: "str | os.PathLike | None" = None) -> str:
    """Write ``payload`` to ``path`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path, root=root) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(payload)
    return os.fspath(path)


def sweep_temporaries(folder: "str | os.PathLike", tokens: Iterable[str]) -> int:
    """Remove the temporaries of the runs ``tokens`` under ``folder``; return how many.

    Only names ``.gpukit-tmp-<token>-...`` whose token is listed are removed;
    symlinks are neither followed nor removed, so nothing outside ``folder``
    and nothing a user made is touched.
    """
    wanted = set(tokens)
    folder = os.fspath(folder)
    if not wanted or not os.path.isdir(folder) or os.path.islink(folder):
        return 0
    n = 0
    for r, dirs, files in os.walk(folder, followlinks=False):
        for name in list(dirs) + files:
            m = _TOKEN_RE.match(name)
            if not m or m.group(1) not in wanted:
                continue
            p = os.path.join(r, name)
            if os.path.islink(p):
                continue
            try:
                if os.path.isdir(p):
                    shutil.rmtree(p)
                    dirs.remove(name)
                else:
                    os.unlink(p)
                n += 1
            except OSError:
                pass
    return n


__all__ = ["TMP_PREFIX", "FILE_MODE", "safe_component", "confine", "atomic_path", "write_bytes_atomic",
           "sweep_temporaries", "write_token", "new_token", "current_token"]
