"""``njit`` and ``prange`` from Numba, or plain-Python stand-ins when Numba is absent.

The stand-ins let the kernel modules import without Numba (the registry then
reports the ``numba`` backend unavailable and never calls them); importing this
module imports Numba only when it is installed, and only the kernel modules
import it (never ``import gpukit``).
"""

from __future__ import annotations

try:
    from numba import njit, prange
except ImportError:  # numba absent: the backend reports itself unavailable; these stand-ins never run
    prange = range

    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

__all__ = ["njit", "prange"]
