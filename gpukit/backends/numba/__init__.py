"""The Numba CPU backend: ``@njit(parallel=True)`` kernels on numpy arrays.

Kernels: :mod:`.sampler` and :mod:`.intensity`, whose per-sample and per-value
maths (:mod:`gpukit.backends._sampler_math`, :mod:`gpukit.backends._math`)
the Numba CUDA kernels share. Numba is imported only when a kernel is first
used (``import gpukit`` stays light).
"""

from __future__ import annotations

import importlib.util
from .. import codes
from ..contract import HostBackend, ModuleKernels


class NumbaBackend(HostBackend):
    name = "numba"
    dependencies = ("numba>=0.59",)
    static_capabilities = frozenset({codes.BRICKED_LAYOUT, codes.BRICK_SKIPPING, codes.FUSED_WINDOW,
                                     codes.FAST_PRECISION})

    def __init__(self):
        self._kernels = None

    def is_available(self) -> bool:
        return importlib.util.find_spec("numba") is not None

    def missing_dependencies(self) -> list[str]:
        return [] if self.is_available() else ["numba>=0.59 (pip install numba)"]

    def kernels(self):
        if self._kernels is None:
            from . import axis, intensity, sampler

            self._kernels = ModuleKernels(axis, sampler, intensity)
        return self._kernels

    @property
    def capabilities(self) -> frozenset:
        """Adds ``CONCURRENT_CALLS`` when Numba's threading layer is TBB or OpenMP (its ``workqueue`` layer
        aborts the process when two threads run parallel kernels at once); known once a kernel has run."""
        import sys

        caps = self.static_capabilities
        numba = sys.modules.get("numba")
        if numba is None:
            return caps
        try:
            layer = numba.threading_layer()
        except ValueError:       # no parallel kernel has run yet: not known, so not claimed
            return caps
        return caps | {codes.CONCURRENT_CALLS} if layer != "workqueue" else caps


BACKEND = NumbaBackend()
