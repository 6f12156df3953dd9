"""gpukit: DICOM series to geometry-exact volumes, and fast volume operations.

Importing gpukit imports neither Numba nor CuPy; backends load when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import *  # noqa: F401,F403
from .errors import GpukitError
from .volume import Volume
from .backends import available_backends, missing_dependencies, set_backend

__all__ = ["GpukitError", "Volume", "available_backends", "missing_dependencies", "set_backend",
           "scan", "load", "__version__"]


def __getattr__(name):  # lazy: the DICOM reader pulls in pydicom
    if name in ("scan", "load", "SeriesInfo"):
        from .dicom import api

        return getattr(api, name)
    raise AttributeError(f"module 'gpukit' has no attribute {name!r}")
