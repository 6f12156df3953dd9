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
           "scan", "load", "__version__",
           "Plane", "resample", "regularize", "reslice", "project", "rotating_mip", "Reslicer", "set_limits",
           "rescale", "window", "NoWindowError", "WindowParameterError", "UnknownPresetError", "presets",
           "view", "dicomweb"]

_SAMPLING = ("resample", "regularize", "reslice", "project", "rotating_mip", "Reslicer", "set_limits")
_INTENSITY = ("rescale", "window")


def __getattr__(name):  # lazy: the DICOM reader pulls in pydicom; ops and planes load when first used
    if name in ("scan", "load", "SeriesInfo"):
        from .dicom import api

        return getattr(api, name)
    if name == "Plane":
        from .planes import Plane

        return Plane
    if name in _INTENSITY:
        from .ops import intensity

        return getattr(intensity, name)
    if name == "presets":
        # not ``from . import presets``: that form asks this module for the attribute first, which re-entered this
        # function without end (RecursionError in a fresh process)
        import sys

        from .presets import get_preset  # noqa: F401  (imports the submodule)

        return sys.modules[__name__ + ".presets"]
    if name == "dicomweb":
        # scan and load from a PACS over DICOMweb (gpukit.scan/load take its URLs directly); httpx loads on use
        import importlib

        return importlib.import_module(__name__ + ".dicomweb")
    if name == "view":
        # the viewer package, which is callable: gpukit.view(volume_or_path) -> a running ViewServer (aiohttp)
        import importlib

        return importlib.import_module(__name__ + ".view")
    if name in _SAMPLING:
        from .ops import sampling

        return getattr(sampling, name)
    raise AttributeError(f"module 'gpukit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
