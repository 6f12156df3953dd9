"""``njit`` and ``prange`` from Numba, or plain-Python stand-ins when Numba is absent.

The stand-ins let the kernel modules import without Numba (the registry then
reports the ``numba`` backend unavailable and never calls them); importing this
module imports Numba only when it is installed, and only the kernel modules
import it (never ``import gpukit``).

``njit(cache=True)`` is Numba's on-disk cache with a cross-process lock per function
(:mod:`gpukit.backends._cachelock`): two processes filling one function's cache at once (batch workers on a
fresh install) could otherwise leave a signature pointing at another signature's machine code
(numba/numba#4807), and every later process would run it.

Two changes make a fresh process's first call cheaper (issue 11: first calls under 0.2 s):

* a cached kernel loads without Numba's refresh of its whole CPU target context first
  (:class:`_LightCache`): that refresh imports every lowering registry Numba has, and SciPy's ``scipy.linalg``
  to look for a BLAS (0.3-0.4 s of a 0.65-0.75 s first call here, machine loaded), while rebuilding a cached
  kernel needs only Numba's runtime (NRT). A cache miss compiles as before, and Numba's compiler refreshes
  the context itself then;
* each function's cache object is made when the function is first compiled or loaded (:class:`_LazyCache`),
  not for every kernel and helper when their modules are imported.

``GPUKIT_NUMBA_LIGHT_CACHE=0`` turns both off (Numba's own loading, still under the lock).

Parallel kernels. The large ``parallel=True`` kernels are a ``prange`` loop that calls one plain ``njit`` task
function per iteration (``_resample_fast_kernel`` -> ``_resample_fast_task`` and so on): the task holds the loop's
body and the set-up it needs (each task redoes it: a few scalars, and for the slice-order projection its per-row
plan, O(rows + slices)). Numba's parallel passes (parfor conversion, array analysis, the gufunc's lowering)
then see one call, not a body of hundreds of lines of inlined helpers: the 3-D fast projection kernel compiled in
28.8 s instead of 72.7 s, the fast resample kernel in 14.0 s instead of 42.8 s (int16, one process, AMD EPYC).
The task is a call per iteration (a run of tiles, or a row of rays), compiled from the same loop: no difference
was measurable in the benchmark's plane, resample, slab and full MIP timings. The index is passed as
``np.int64`` so the task compiles once (a ``prange`` index is typed int64 before the parfor pass, uint64 after).
"""

from __future__ import annotations

import os

try:
    from numba import njit as _njit
    from numba import prange
except ImportError:  # numba absent: the backend reports itself unavailable; these stand-ins never run
    prange = range

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

    LIGHT_CACHE = False
else:
    from numba.core.caching import FunctionCache

    from numba.core import sigutils
    from numba.core.compiler_lock import global_compiler_lock

    from ._cachelock import ENABLED as _LOCKS, compiling, locked

    _Cache = locked(FunctionCache)
    LIGHT_CACHE = False
    try:
        from numba.core.runtime.nrt import rtsys

        class _LightCache(FunctionCache):
            """Numba's per-function disk cache, minus the target-context refresh before a lookup.

            Numba's ``Cache.load_overload`` calls ``target_context.refresh()`` and then looks the signature
            up; rebuilding a cached kernel (unpickle, load its object code, make the entry point) needs only
            the runtime, which the refresh would have started (without it a kernel that allocates crashes).
            The rest is Numba's own code (index lookup, source stamp check, its guard against spurious I/O
            errors).
            """

            def load_overload(self, sig, target_context):
                rtsys.initialize(target_context)
                with self._guard_against_spurious_io_errors():
                    return self._load_overload(sig, target_context)

        if os.environ.get("GPUKIT_NUMBA_LIGHT_CACHE", "1") != "0" and \
                callable(getattr(FunctionCache, "_load_overload", None)) and \
                callable(getattr(FunctionCache, "_guard_against_spurious_io_errors", None)):
            _Cache = locked(_LightCache)
            LIGHT_CACHE = True
    except ImportError:  # another Numba layout: its own loading, under the lock
        pass

    class _LazyCache:
        """A dispatcher's disk cache (:data:`_Cache`), made at its first compile or load, not at decoration.

        Numba makes each ``cache=True`` function's cache when its module is imported (finding the cache
        folder and checking it is writable by creating a file there: a file system round trip per function,
        72 of them for gpukit's kernel modules), although a process calls only a few of them and the
        ``inline="always"`` helpers are never called on their own.
        """

        def __init__(self, py_func):
            self._py_func = py_func
            self._real = None

        def _get(self):
            if self._real is None:
                self._real = _Cache(self._py_func)
            return self._real

        def __getattr__(self, name):
            return getattr(self._get(), name)

    def _lock_compiles(disp) -> None:
        """Compile each new signature of ``disp`` under :func:`._cachelock.compiling`: a process that finds
        another one compiling the same signature waits for it, and Numba's compile then loads the saved result
        from the disk cache instead of compiling it again.

        The file lock is taken inside Numba's own (in-process, re-entrant) compiler lock, so two threads of one
        process never wait on each other's file lock while holding Numba's."""
        orig = disp.compile

        def compile(sig):
            with global_compiler_lock:
                args, _ = sigutils.normalize_signature(sig)
                if tuple(args) in disp.overloads:
                    return orig(sig)
                try:
                    cache = disp._cache
                    cache._impl.locator.ensure_cache_path()
                    index = cache._cache_file._index_path
                except (AttributeError, OSError):      # no usable cache folder: nothing to share, compile
                    return orig(sig)
                with compiling(index, str(tuple(args))):
                    return orig(sig)

        disp.compile = compile

    def njit(*args, **kwargs):
        """``numba.njit``; ``cache=True`` caches on disk under a per-function lock (:mod:`._cachelock`), loading
        through :class:`_LightCache` (a cache made on first use, :class:`_LazyCache`), and a process compiles a
        signature only when no other process is compiling it (:func:`_lock_compiles`)."""
        if args and not callable(args[0]):          # explicit signatures: Numba's own
            return _njit(*args, **kwargs)
        cache = bool(kwargs.pop("cache", False))

        def apply(f):
            disp = _njit(**kwargs)(f)
            if cache:
                # what Dispatcher.enable_caching does, with the lock
                disp._cache = _LazyCache(disp.py_func) if LIGHT_CACHE else _Cache(disp.py_func)
                if _LOCKS:
                    _lock_compiles(disp)
            return disp

        return apply(args[0]) if args else apply

__all__ = ["njit", "prange"]
