"""The numpy backend: vectorised numpy, the reference every other backend is checked against.

Kernels: :mod:`.sampler` (the sampler's rule, written out) and :mod:`.intensity`.
"""

from __future__ import annotations

from .. import codes
from ..contract import HostBackend, ModuleKernels


class NumpyBackend(HostBackend):
    name = "numpy"
    dependencies = ("numpy",)
    static_capabilities = frozenset({codes.FUSED_WINDOW, codes.CONCURRENT_CALLS, codes.SLICE_ORDER})

    def __init__(self):
        self._kernels = None

    def is_available(self) -> bool:
        return True

    def missing_dependencies(self) -> list[str]:
        return []

    def kernels(self):
        if self._kernels is None:
            from . import intensity, sampler, slices

            self._kernels = ModuleKernels(sampler, intensity, slices)
        return self._kernels


BACKEND = NumpyBackend()
