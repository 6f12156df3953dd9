"""The Numba CPU backend: ``@njit(parallel=True)`` kernels on numpy arrays.

Kernels: :mod:`.sampler` and :mod:`.intensity`, whose per-sample and per-value
maths (:mod:`gpukit.backends._sampler_math`, :mod:`gpukit.backends._math`)
the Numba CUDA kernels share. Numba is imported only when a kernel is first
used (``import gpukit`` stays light).
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from .. import codes
from ..contract import HostBackend


class _Kernels:
    """The kernel modules, each imported when one of its operations is first asked for: a process that only
    windows never imports (and never sets up the disk caches of) the sampler's kernels, and the reverse.

    Like :class:`~gpukit.backends.contract.ModuleKernels`, an operation is looked up at call time in the first
    module whose ``__all__`` names it (so a test may patch a module's function).
    """

    #: operation -> its module; any other operation is looked for in every module, in this order
    HOME = {"rescale_kernel": "intensity", "window_kernel": "intensity", "minmax_kernel": "intensity",
            "project_axis": "axis", "project_slices": "slices"}
    ORDER = ("axis", "sampler", "intensity", "slices")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        home = self.HOME.get(name, "sampler")
        for mod in (home,) + tuple(m for m in self.ORDER if m != home):
            m = importlib.import_module(f"{__name__}.{mod}")
            if name in getattr(m, "__all__", ()):
                return getattr(m, name)
        raise AttributeError(f"no kernel {name!r} in {', '.join(f'{__name__}.{m}' for m in self.ORDER)}")


class _ReadOnlyInput:
    """An ``__array_interface__`` over a read-only array's memory, not marked read-only (see
    :meth:`NumbaBackend.kernel_input`); holds the array so its memory outlives the view."""

    __slots__ = ("__array_interface__", "array")

    def __init__(self, face, array):
        self.__array_interface__ = face
        self.array = array


class NumbaBackend(HostBackend):
    name = "numba"
    dependencies = ("numba>=0.59",)
    static_capabilities = frozenset({codes.BRICKED_LAYOUT, codes.BRICK_SKIPPING, codes.FUSED_WINDOW,
                                     codes.FAST_PRECISION, codes.SLICE_ORDER})

    def __init__(self):
        self._kernels = None

    def is_available(self) -> bool:
        return importlib.util.find_spec("numba") is not None

    def missing_dependencies(self) -> list[str]:
        return [] if self.is_available() else ["numba>=0.59 (pip install numba)"]

    def kernels(self):
        if self._kernels is None:
            self._kernels = _Kernels()
        return self._kernels

    def kernel_input(self, data):
        """``data`` as the kernels take it: a read-only array (``np.load(..., mmap_mode="r")``, ``np.frombuffer``
        of bytes, an input locked against writes) is passed as a view that Numba types as an ordinary array.

        Numba compiles every kernel separately for read-only arrays (a minute or more for each sampler kernel
        and stored type), and the kernels only read their input: nothing writes through the view, which keeps
        ``data`` alive and leaves its flags as they were.
        """
        if not isinstance(data, np.ndarray) or data.flags.writeable:
            return data
        face = dict(data.__array_interface__)
        face["data"] = (face["data"][0], False)
        return np.asarray(_ReadOnlyInput(face, data))

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
