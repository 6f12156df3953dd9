"""The Numba CUDA backend: ``@cuda.jit`` kernels on CuPy or Numba device arrays.

The kernels (:mod:`gpukit.backends.nbcuda_kernels`) call the same ``@njit``
scalar helpers as the Numba CPU backend; the host side
(:mod:`gpukit.backends.nbcuda_ops`) has the CPU backends' functions and
arguments, with device arrays for the volume and the output. Importing this
module imports nothing heavy: Numba is imported by :func:`is_available` and
when a kernel is first looked up (``import gpukit`` never imports it).

Available when numba-cuda is installed, a CUDA driver and device are
visible and libNVVM can be loaded (``numba.cuda.is_available()``). Under
numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) it reports itself
unavailable, so that ``auto`` never picks a simulated device; the tests call
the kernel modules directly there.
"""

from __future__ import annotations

import importlib.util
import os

NAME = "numba-cuda"
ARRAY = "cupy"
DEPENDENCIES = ["numba-cuda>=0.10", "a CUDA device"]

_API = ("rescale_kernel", "window_kernel", "minmax_kernel", "sample_grid", "project_axis", "slice_extrema",
        "sampler_warmup")


def _simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _numba_cuda_installed() -> bool:
    try:
        return importlib.util.find_spec("numba_cuda") is not None or importlib.util.find_spec("numba.cuda") is not None
    except (ImportError, ValueError):
        return False


def is_available() -> bool:
    """numba-cuda importable, a CUDA device visible (``numba.cuda.is_available()``), not the simulator. Never raises."""
    if _simulator() or not _numba_cuda_installed():
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit must read as "unavailable", never fail the registry
        return False


def missing_dependencies() -> list[str]:
    """What this machine lacks for the backend (empty when it is available). Never raises."""
    if not _numba_cuda_installed():
        return ["numba-cuda>=0.10 (pip install 'gpukit[cuda12]')"]
    if _simulator():
        return ["a CUDA device (NUMBA_ENABLE_CUDASIM is set: the simulator is for tests, not a device)"]
    if is_available():
        return []
    out = []
    try:
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            out.append("libNVVM, the CUDA compiler numba-cuda uses (pip install 'numba-cuda[cu12]', or a CUDA toolkit)")
    except Exception as exc:  # report, never raise
        out.append(f"a working numba.cuda (it failed to import: {exc})")
    try:
        from numba.cuda.cudadrv.driver import driver

        device = bool(driver.is_available)
    except Exception:
        device = False
    if not device:
        out.append("a CUDA device (numba.cuda finds no NVIDIA driver or no GPU)")
    return out or ["a CUDA device (numba.cuda.is_available() is False)"]


def __getattr__(name: str):
    # the kernels are imported on first use, so importing the registry stays light
    if name in _API:
        from . import nbcuda_ops

        return getattr(nbcuda_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NAME", "ARRAY", "DEPENDENCIES", "is_available", "missing_dependencies", *_API]
