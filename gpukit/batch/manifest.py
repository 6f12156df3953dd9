"""The batch manifest: ``OUTPUT_ROOT/manifest.jsonl``, one JSON line per series outcome.

Only the driver writes it, one whole line per append followed by ``fsync``,
so a crash or Ctrl-C leaves at most a torn last line, which is ignored on
reading and cut away (repaired) before the next append. A later line for the
same series supersedes an earlier one.

Every write is checked: short writes are continued, and a full or read-only
disk raises :class:`OutputWriteError` naming the file, after the manifest has
been put back to its last complete line (a failed append never leaves a
broken line behind).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from typing import Iterable

from ..errors import GpukitError, OutputWriteError  # noqa: F401  (OutputWriteError: re-exported)
from ..safepath import confine

MANIFEST = "manifest.jsonl"

#: errno values that mean "the output cannot take this write" (not a gpukit bug, not bad input)
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
OUTPUT_ERRNOS = NO_SPACE | {errno.EROFS, errno.EACCES, errno.EPERM}


def output_error(exc: OSError, path: "str | os.PathLike") -> "OutputWriteError | OSError":
    """``exc`` as an :class:`OutputWriteError` naming ``path`` when it is a full/read-only/unwritable output,
    else ``exc`` itself."""
    if isinstance(exc, OutputWriteError) or exc.errno not in OUTPUT_ERRNOS:
        return exc
    if exc.errno in NO_SPACE:
        what = "no space left on device"
    elif exc.errno == errno.EROFS:
        what = "the output is on a read-only file system"
    else:
        what = "permission denied (the output folder is not writable)"
    return OutputWriteError(f"cannot write: {what}", path, exc.errno)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a short write is continued, not ignored)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:   # pragma: no cover - POSIX raises instead
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def append_checked(path: str, data: bytes, *, fsync: bool = True, truncate_to: int | None = None) -> None:
    """Append ``data`` to ``path`` (created 0644, never through a symlink), all or nothing.

    ``truncate_to``: first cut the file to this many bytes (a torn last line). On any failure the file is put
    back to the size it had before the append; a full or read-only disk raises :class:`OutputWriteError`.
    """
    try:
        # O_NOFOLLOW: a manifest.jsonl symlinked out of the output root is refused, not written through
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise output_error(exc, path) from None
    start = None
    try:
        if truncate_to is not None:
            os.ftruncate(fd, truncate_to)
        start = os.fstat(fd).st_size
        write_all(fd, data)
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        if start is not None:
            try:
                os.ftruncate(fd, start)   # no half-written line left behind
            except OSError:
                pass
        raise output_error(exc, path) from None
    finally:
        os.close(fd)


def sha256_file(path: "str | os.PathLike", chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def path_size(path: "str | os.PathLike") -> int:
    """Bytes of a file, or of every file under a folder (a Zarr store)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def sha256_path(path: "str | os.PathLike") -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    if not os.path.isdir(path):
        return sha256_file(path)
    h = hashlib.sha256()
    for r, dirs, fs in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(fs):
            p = os.path.join(r, f)
            h.update(os.path.relpath(p, path).encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


class Manifest:
    """Append-only record of what happened to every series of a batch."""

    def __init__(self, output_root: "str | os.PathLike"):
        self.root = os.fspath(output_root)
        self.path = os.path.join(self.root, MANIFEST)
        self.records: dict[str, dict] = {}
        self.torn_lines = 0
        self._needs_newline = False
        self._cut_at: int | None = None       # a torn last line starts here: cut away before the next append
        self._rewrite = False                 # broken lines inside the file: rewrite it without them
        self._valid: list[bytes] = []         # the good lines, for that rewrite
        if os.path.exists(self.path):
            with open(self.path, "rb") as fh:
                raw = fh.read()
            pos = 0
            lines = raw.split(b"\n")
            for n, line in enumerate(lines):
                last = n == len(lines) - 1          # no newline after it: cut by a crash or a full disk
                start, pos = pos, pos + len(line) + 1
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line.decode("utf-8"))
                    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                        raise ValueError("not a manifest record")
                except ValueError:                  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    self.torn_lines += 1            # a line cut by a crash: that series is redone
                    if last:
                        self._cut_at = start
                    else:
                        self._rewrite = True
                    continue
                if last:
                    self._needs_newline = True      # complete but unterminated: start ours on a new line
                self.records[rec["key"]] = rec
                self._valid.append(line)

    def _repair(self) -> None:
        """Cut a torn last line away (or rewrite the file without broken lines, atomically) before appending."""
        if self._rewrite:
            from ..safepath import write_bytes_atomic

            try:
                write_bytes_atomic(self.path, b"".join(ln + b"\n" for ln in self._valid), root=self.root)
            except OSError as exc:
                raise output_error(exc, self.path) from None
            self._rewrite, self._cut_at, self._needs_newline = False, None, False

    def append(self, record: dict) -> None:
        """Append one record (one whole line, fsynced). A torn last line left by an earlier run is cut away
        first; a full or read-only disk raises :class:`OutputWriteError` naming the manifest, leaving the file
        as it was."""
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise output_error(exc, self.root) from None
        self._repair()
        line = ("\n" if self._needs_newline else "") + json.dumps(record, sort_keys=True, default=str) + "\n"
        append_checked(self.path, line.encode("utf-8"), truncate_to=self._cut_at)
        self._needs_newline = False
        self._cut_at = None
        self.records[record["key"]] = record

    def outputs_valid(self, record: dict) -> bool:
        """Every output listed exists with the recorded size and checksum."""
        for out in record.get("outputs", []):
            try:
                p = confine(self.root, out["path"])    # a manifest row naming a path outside the root is not ours
                if path_size(p) != out["bytes"] or sha256_path(p) != out["sha256"]:
                    return False
            except (OSError, GpukitError):
                return False
        return True

    def is_done(self, key: str) -> bool:
        rec = self.records.get(key)
        return bool(rec) and rec.get("status") == "ok" and self.outputs_valid(rec)

    def failed(self) -> list[str]:
        return [k for k, r in self.records.items() if r.get("status") == "failed"]

    def summary(self, keys: Iterable[str] | None = None) -> dict:
        recs = [self.records[k] for k in (keys if keys is not None else self.records) if k in self.records]
        out: dict = {}
        for r in recs:
            out[r.get("status", "?")] = out.get(r.get("status", "?"), 0) + 1
        return out
