"""Warnings raised while reading a file (pydicom's, a decoder's) go into a per-file log, not to stderr.

A messy folder makes pydicom warn hundreds of times (``Invalid value for VR
UI``...); a damaged frame makes a decoder warn. Each warning is routed to the
:class:`FileWarnings` of the file the current thread is reading (counted, the
first few kept) and reported with the scan (``ScanResult.warnings``,
``gpukit info --json``) or with the volume (``Volume.meta["warnings"]``).
Warnings raised by a thread that is not reading a file pass through unchanged.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass, field
from typing import Iterator

#: How many warning messages per file a report keeps (all are counted).
WARNINGS_SHOWN = 3

_current = threading.local()     # the FileWarnings of the file this thread is reading


@dataclass
class FileWarnings:
    """The warnings raised while reading one file: counted, the first few kept."""

    path: str
    count: int = 0
    messages: list = field(default_factory=list)   # the first WARNINGS_SHOWN, as "Category: message"

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.messages) < WARNINGS_SHOWN:
            self.messages.append(text)

    def to_dict(self) -> dict:
        return {"path": self.path, "count": self.count, "messages": list(self.messages)}


@contextlib.contextmanager
def collecting() -> Iterator[None]:
    """Route warnings to the log of :func:`reading` for the span of a walk (threads included).

    ``catch_warnings`` swaps process-wide state, so it wraps the whole walk, not each file.
    """
    with warnings.catch_warnings():
        other = warnings.showwarning

        def collect(message, category, filename, lineno, file=None, line=None):
            log = getattr(_current, "log", None)
            if log is None:      # another thread's warning, not about a file being read here
                other(message, category, filename, lineno, file, line)
            else:
                log.add(f"{category.__name__}: {message}")

        warnings.simplefilter("always")
        warnings.showwarning = collect
        yield


@contextlib.contextmanager
def reading(path: str, logs: list | None = None) -> Iterator[FileWarnings]:
    """Within :func:`collecting`: the warnings this thread raises go to ``path``'s log, appended to ``logs``
    (when it has any) at the end."""
    _current.log = log = FileWarnings(path)
    try:
        yield log
    finally:
        _current.log = None
        if log.count and logs is not None:
            logs.append(log)     # atomic under the GIL


def merge(logs: list) -> list[FileWarnings]:
    """One log per path (a file read in several parts: its frames in several jobs), in first-seen order."""
    out: dict[str, FileWarnings] = {}
    for w in logs:
        m = out.setdefault(w.path, FileWarnings(w.path))
        m.count += w.count
        for t in w.messages:
            if len(m.messages) < WARNINGS_SHOWN:
                m.messages.append(t)
    return list(out.values())


__all__ = ["FileWarnings", "WARNINGS_SHOWN", "collecting", "reading", "merge"]
