"""``cuda-host``: the device stand-in backend, for machines without a GPU (CI).

It runs the real ``kernels/*.cu`` compiled for the CPU through the host shim
(:mod:`.shim`), through the very Python wrapper the ``cupy`` backend uses
(:class:`gpukit.backends.cuda.kernels.CudaKernels`), on pretend-device arrays
(:mod:`gpukit.backends.standin`) that behave like CuPy's where it matters:
``np.asarray(x)`` and ``float(x)`` raise ``TypeError``, ``.get()`` copies to
the host, and every host-to-device and device-to-host copy is counted. So
every op, render, writer, batch and CLI path runs in CI as a GPU user would
run it, and an implicit device-to-host conversion anywhere fails there.

Never picked by ``backend="auto"`` (``auto = False``); slow (one thread per
kernel) and meant for verification. Needs a C++ compiler (g++).
"""

from __future__ import annotations

import threading

from ..cuda import CudaCppBackend


class CudaHostBackend(CudaCppBackend):
    name = "cuda-host"
    dependencies = ("a C++ compiler (g++)",)
    auto = False
    standin = True

    def __init__(self):
        self._kernels = None
        self._lock = threading.Lock()

    def is_available(self) -> bool:
        from . import shim

        return shim.is_available()

    def missing_dependencies(self) -> list[str]:
        from . import shim

        return shim.missing_dependencies()

    def kernels(self):
        with self._lock:
            if self._kernels is None:
                from ..cuda.kernels import CudaKernels
                from .shim import HostLauncher

                self._kernels = CudaKernels(HostLauncher(strict=True))
            return self._kernels

    @property
    def xp(self):
        from .. import standin

        return standin.xp

    def owns(self, a) -> bool:
        from .. import standin

        return standin.is_device_array(a)



BACKEND = CudaHostBackend()

__all__ = ["BACKEND", "CudaHostBackend"]
