"""A cross-process lock around Numba's on-disk cache of one function (numba/numba#4807).

Numba saves a compiled kernel in two steps, each an atomic file replace but not together: it reads the
function's index, picks the first free data file name (``<func>.N.nbc``), writes the index, then the data file.
Two processes that compile different specialisations of one function at the same time (two batch workers
warming up on a fresh install, two test processes) both pick the same name: the index written last can then
point one signature at the other signature's object code, and every later process that loads it runs the
wrong machine code (a crash, or silently wrong numbers). A reader can also see an index entry before its data
file is written and load a stale file of that number.

:func:`locked` wraps a Numba cache class so that saving holds an exclusive ``flock`` on a lock file beside the
function's index (``<func>.nbi.lock``) and loading holds a shared one: saves of one function are serial, and a
load never sees half a save. Functions lock separately; a process holds at most one such lock at a time (no
lock order to get wrong). :func:`compiling` is a second lock, per function and signature, held while a
process compiles that signature, so that two processes never compile the same one side by side (the second
waits and loads the first one's result; nested compiles follow the call graph, which has no cycles). Where
``fcntl`` is missing (Windows) or the cache folder cannot hold the lock file, Numba's behaviour is unchanged.
``GPUKIT_NUMBA_CACHE_LOCK=0`` turns the lock off (the tests show the race
with it off).
"""

from __future__ import annotations

import contextlib
import hashlib
import os

try:
    import fcntl
except ImportError:     # Windows: no flock; Numba's own behaviour
    fcntl = None

#: False when ``GPUKIT_NUMBA_CACHE_LOCK=0``: :func:`locked` then returns the class unchanged
ENABLED = os.environ.get("GPUKIT_NUMBA_CACHE_LOCK", "1") != "0"


@contextlib.contextmanager
def _flock(index_path: str, exclusive: bool, create: bool = True, suffix: str = ".lock"):
    if fcntl is None:
        yield
        return
    path = index_path + suffix
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    except OSError:         # no folder yet (nothing cached to load), or a read-only one: nothing to guard
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)        # closing releases the lock


def compiling(index_path: str, key: str):
    """An exclusive lock held while this process compiles one signature (``key``) of the function whose cache
    index is ``index_path``: a second process that needs the same signature waits, then finds it in the cache
    and loads it instead of compiling it again (two test processes or two batch workers on a fresh install
    otherwise compile the same 1-2 minute kernels side by side). Other signatures of the function, and other
    functions, lock separately, so different compiles still run in parallel."""
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return _flock(index_path, exclusive=True, create=True, suffix=f".{digest}.compile.lock")


def locked(cache_cls):
    """A subclass of the Numba cache class ``cache_cls`` whose saves and loads hold the function's lock."""
    if not ENABLED or fcntl is None:
        return cache_cls

    class Locked(cache_cls):
        def save_overload(self, sig, data):
            try:
                self._impl.locator.ensure_cache_path()
            except OSError:     # Numba's own save reports (or ignores) an unusable folder
                pass
            with _flock(self._cache_file._index_path, exclusive=True, create=True):
                return super().save_overload(sig, data)

        def load_overload(self, sig, target_context):
            with _flock(self._cache_file._index_path, exclusive=False, create=True):
                return super().load_overload(sig, target_context)

    Locked.__name__ = Locked.__qualname__ = f"Locked{cache_cls.__name__}"
    Locked.__doc__ = f"{cache_cls.__name__} with a cross-process lock per function (gpukit.backends._cachelock)."
    return Locked


__all__ = ["locked", "compiling"]
