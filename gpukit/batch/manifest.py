"""The batch manifest: ``OUTPUT_ROOT/manifest.jsonl``, one JSON line per series outcome.

Only the driver writes it, one whole line per ``write`` call followed by
``fsync``, so a crash or Ctrl-C leaves at most a torn last line, which is
ignored on reading. A later line for the same series supersedes an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable

from ..errors import GpukitError
from ..safepath import confine

MANIFEST = "manifest.jsonl"


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
        if os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                self._needs_newline = fh.read(1) != b"\n"   # a torn last line: start ours on a new line
        if os.path.exists(self.path):
            with open(self.path, "r", encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        self.torn_lines += 1       # a line cut by a crash: that series is redone
                        continue
                    self.records[rec["key"]] = rec

    def append(self, record: dict) -> None:
        os.makedirs(self.root, exist_ok=True)
        line = ("\n" if self._needs_newline else "") + json.dumps(record, sort_keys=True, default=str) + "\n"
        self._needs_newline = False
        # O_NOFOLLOW: a manifest.jsonl symlinked out of the output root is refused, not written through
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
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
