"""The Numba CUDA backend: ``@cuda.jit`` kernels on CuPy or Numba device arrays.

The kernels (:mod:`gpukit.backends.numba_cuda.kernels`) call the same ``@njit``
scalar helpers as the Numba CPU backend; the host side
(:mod:`gpukit.backends.numba_cuda.ops`) has the CPU backends' functions and
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

from .. import codes
from ..contract import Backend


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


class NumbaCudaBackend(Backend):
    name = "numba-cuda"
    location = "device"
    dependencies = ("numba-cuda>=0.10", "a CUDA device")
    #: FAST_PRECISION: ``sample_grid(..., precision="fast")`` runs the float32 trilinear kernels
    #: (``kernels.resample_fast`` / ``project_fast``) for 8- and 16-bit integer stored values
    static_capabilities = frozenset({codes.CONCURRENT_CALLS, codes.FAST_PRECISION})

    def is_available(self) -> bool:
        return is_available()

    def missing_dependencies(self) -> list[str]:
        return missing_dependencies()

    def kernels(self):
        from . import ops   # imports Numba and the kernels on first use

        return ops

    @property
    def xp(self):
        import cupy

        return cupy

    def asarray(self, a, dtype=None):
        import cupy

        return cupy.asarray(a, dtype=dtype)


BACKEND = NumbaCudaBackend()

__all__ = ["BACKEND", "NumbaCudaBackend", "is_available", "missing_dependencies"]
