"""The CUDA C++ side shared by the ``cupy`` backend and its CPU stand-in ``cuda-host``.

:mod:`.src` finds and assembles ``kernels/*.cu`` modules (and compiles them to
PTX with NVRTC for the tests); :mod:`.kernels` is the one Python wrapper
(specialisation, launch sizes, argument types) over a *launcher*: CuPy's
on a GPU, the host shim's on the CPU. :class:`CudaCppBackend` is what the two
backends share.
"""

from __future__ import annotations

from .. import codes
from ..contract import Backend


class CudaCppBackend(Backend):
    """A backend running the CUDA C++ kernels through :class:`.kernels.CudaKernels`."""

    location = "device"
    #: FAST_PRECISION: ``sample_grid(..., precision="fast")`` runs the float32 sampler (kernels/sample_fast.cu)
    static_capabilities = frozenset({codes.FUSED_WINDOW, codes.CONCURRENT_CALLS, codes.FAST_PRECISION})

    def prepare_rescale(self, slopes, intercepts) -> None:
        """Upload a volume's per-slice rescale table now (once; operations then find it on the device)."""
        self.kernels()._rescale(slopes, intercepts, len(slopes))


__all__ = ["CudaCppBackend"]
