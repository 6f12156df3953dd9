"""The CuPy backend: the CUDA C++ kernels of ``kernels/`` on CuPy arrays (:mod:`.launcher`).

The kernel API is :class:`gpukit.backends.cuda.kernels.CudaKernels` over
:class:`.launcher.CupyLauncher`; the test stand-in ``cuda-host`` runs the same
wrapper over the same sources on the CPU. Arrays in and out are CuPy arrays;
other libraries' GPU arrays come in zero-copy through
``__cuda_array_interface__`` or DLPack (:meth:`CupyBackend.asarray`).
"""

from __future__ import annotations

import numpy as np

from ..cuda import CudaCppBackend


class CupyBackend(CudaCppBackend):
    name = "cupy"
    dependencies = ("cupy-cuda12x>=13", "a CUDA device")

    def is_available(self) -> bool:
        from . import launcher

        return launcher.is_available()

    def missing_dependencies(self) -> list[str]:
        from . import launcher

        return launcher.missing_dependencies()

    def kernels(self):
        from . import launcher

        return launcher.kernels()

    @property
    def xp(self):
        import cupy

        return cupy

    def asarray(self, a, dtype=None):
        """CuPy arrays as they are; other GPU arrays zero-copy (``__cuda_array_interface__``, else DLPack);
        host arrays uploaded."""
        import cupy

        if not isinstance(a, (cupy.ndarray, np.ndarray)) and not hasattr(a, "__cuda_array_interface__") \
                and hasattr(a, "__dlpack__"):
            a = cupy.from_dlpack(a)
        return cupy.asarray(a, dtype=dtype)


BACKEND = CupyBackend()
