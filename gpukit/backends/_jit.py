"""``njit`` and ``prange`` from Numba, or plain-Python stand-ins when Numba is absent.

The stand-ins let the kernel modules import without Numba (the registry then
reports the ``numba`` backend unavailable and never calls them); importing this
module imports Numba only when it is installed, and only the kernel modules
import it (never ``import gpukit``).

``njit(cache=True)`` is Numba's on-disk cache with a cross-process lock per function
(:mod:`gpukit.backends._cachelock`): two processes filling one function's cache at once (batch workers on a
fresh install) could otherwise leave a signature pointing at another signature's machine code
(numba/numba#4807), and every later process would run it.
"""

from __future__ import annotations

try:
    from numba import njit as _njit
    from numba import prange
except ImportError:  # numba absent: the backend reports itself unavailable; these stand-ins never run
    prange = range

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

else:
    from numba.core.caching import FunctionCache

    from ._cachelock import locked

    _Cache = locked(FunctionCache)

    def njit(*args, **kwargs):
        """``numba.njit``; ``cache=True`` caches on disk under a per-function lock (:mod:`._cachelock`)."""
        if args and not callable(args[0]):          # explicit signatures: Numba's own
            return _njit(*args, **kwargs)
        cache = bool(kwargs.pop("cache", False))

        def apply(f):
            disp = _njit(**kwargs)(f)
            if cache:
                disp._cache = _Cache(disp.py_func)      # what Dispatcher.enable_caching does, with the lock
            return disp

        return apply(args[0]) if args else apply

__all__ = ["njit", "prange"]
