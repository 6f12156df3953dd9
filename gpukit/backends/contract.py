"""The backend contract: what every compute backend provides, written once.

A backend computes gpukit's operations on one kind of array. Each is a
subpackage of :mod:`gpukit.backends` (``numpy/``, ``numba/``, ``cupy/``,
``numba_cuda/``, and the test stand-in ``cuda_host/``) whose ``__init__``
defines ``BACKEND``, one instance of a :class:`Backend` subclass; the
registry (:data:`gpukit.backends.REGISTRY`) maps each name to that
subpackage and imports it on first use. Importing a backend subpackage
imports neither Numba nor CuPy: its kernels are loaded by :meth:`Backend.kernels`
the first time an operation runs.

What a backend declares, as data:

* ``name``; ``location``: ``"host"`` (numpy arrays) or ``"device"`` (arrays
  that live on a GPU, or on the stand-in's pretend device); ``dependencies``
  (human-readable); ``auto``: whether ``backend="auto"`` may pick it;
* ``capabilities``: a frozenset of :mod:`gpukit.backends.codes` constants
  (``BRICKED_LAYOUT``, ``BRICK_SKIPPING``, ``FUSED_WINDOW``,
  ``CONCURRENT_CALLS``); the ops layer reads these, never ``hasattr``;
* ``xp``: the array namespace of its arrays (numpy, CuPy, or the stand-in's).

Host/device edges (the only places data crosses): :meth:`Backend.asarray`
puts an array on the backend's side (an upload for a device backend, nothing
when it is already there), :meth:`Backend.to_host` brings one back (a
download), :meth:`Backend.owns` tells whether an array already lives there.

The operations (the methods below, each with its signature and meaning) work
on ``(nz, ny, nx)`` arrays with per-slice float64 ``slopes``/``intercepts``
(host numpy vectors; a device backend uploads and caches them); scalar maths
lives once per language (:mod:`gpukit.backends._math` and
:mod:`gpukit.backends._sampler_math` for Numba, CPU and CUDA;
``kernels/gpukit_common.cuh`` for CUDA C++), and the numpy backend is the
reference whose rule every other backend reproduces. Every method here
forwards to the object :meth:`Backend.kernels` returns, which must have a
function of the same name and parameters (``tests/test_backend_contract.py``
checks every backend against this list).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from ..errors import CapabilityError, InvalidParameterError
from . import codes

#: the operations every backend's kernels provide (the contract)
REQUIRED_OPS: tuple[str, ...] = ("rescale_kernel", "window_kernel", "minmax_kernel", "slice_extrema", "sample_grid",
                                 "project_axis", "sampler_warmup")
#: operations that only a backend with the given capability provides
CAPABILITY_OPS: dict[str, tuple[str, ...]] = {
    codes.BRICKED_LAYOUT: ("to_bricks", "sample_grid_bricked"),
    codes.BRICK_SKIPPING: ("brick_extrema",),
    codes.SLICE_ORDER: ("project_slices",),
}


class Backend(abc.ABC):
    """One compute backend (see the module docstring for the contract)."""

    name: ClassVar[str]
    location: ClassVar[str]                      # "host" or "device"
    dependencies: ClassVar[tuple[str, ...]] = ()
    auto: ClassVar[bool] = True                  # may backend="auto" choose it
    standin: ClassVar[bool] = False              # a CPU stand-in of a device backend (tests): no real GPU
    static_capabilities: ClassVar[frozenset] = frozenset()

    # -- what the backend is -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def is_available(self) -> bool:
        """Whether it can run here (cheap, never raises)."""

    @abc.abstractmethod
    def missing_dependencies(self) -> list[str]:
        """What this machine lacks for it, in words with the install command (empty when available; never raises)."""

    @abc.abstractmethod
    def kernels(self) -> Any:
        """The object (module or instance) whose functions compute the operations (imported on first use)."""

    @property
    @abc.abstractmethod
    def xp(self) -> Any:
        """The array namespace of this backend's arrays (numpy, cupy, or the stand-in's)."""

    @property
    def capabilities(self) -> frozenset:
        """Capabilities (:data:`gpukit.backends.codes.CAPABILITIES`) as data; subclasses may compute them."""
        return self.static_capabilities

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, what: str) -> None:
        if capability not in self.capabilities:
            raise CapabilityError(f"{what} needs the {capability!r} capability, which the {self.name!r} backend "
                                  f"does not have (it has: {', '.join(sorted(self.capabilities)) or 'none'})")

    def __repr__(self) -> str:
        return f"<gpukit backend {self.name!r} ({self.location})>"

    # -- host/device edges ---------------------------------------------------------------------------------------
    def owns(self, a: Any) -> bool:
        """Whether ``a`` is already an array of this backend's kind (no copy needed to compute on it)."""
        return isinstance(a, self.xp.ndarray)

    def asarray(self, a: Any, dtype=None) -> Any:
        """``a`` as an array of this backend's kind: itself when it already is, else a copy (an upload)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """``a`` as a numpy array: a download for a device array (an explicit edge), ``a`` itself on the host."""
        return a if isinstance(a, np.ndarray) else a.get()

    def prepare_rescale(self, slopes, intercepts) -> None:
        """Make a volume's per-slice rescale table resident (device backends that keep one); else nothing."""

    # -- the operations ------------------------------------------------------------------------------------------
    def rescale_kernel(self, data, slopes, intercepts, out_dtype, out=None):
        """``data[k] * slopes[k] + intercepts[k]`` as ``out_dtype`` (int16 outputs only when exact, chosen by ops)."""
        return self.kernels().rescale_kernel(data, slopes, intercepts, out_dtype, out=out)

    def window_kernel(self, data, slopes, intercepts, center, width, function_code, lo, hi, invert, out):
        """Rescale per slice, then the VOI LUT function ``function_code`` (codes.FUNCTION_CODES) into ``out``
        (its dtype decides rounding: integers round half away from zero), ``lo``..``hi``, inverted if asked."""
        return self.kernels().window_kernel(data, slopes, intercepts, center, width, function_code, lo, hi, invert,
                                            out)

    def minmax_kernel(self, data) -> tuple:
        """``(min, max)`` of ``data`` as Python numbers, ``(0, 0)`` when empty."""
        return self.kernels().minmax_kernel(data)

    def slice_extrema(self, data) -> tuple[np.ndarray, np.ndarray]:
        """Per-slice lowest and highest stored values: two float64 *host* arrays of length nz."""
        return self.kernels().slice_extrema(data)

    def sample_grid(self, data, slopes, intercepts, A, b, grid, mode, interp, fill, out, *, window=None,
                    bricks=None, precision="exact"):
        """Sample at ``(i, j, k) = A @ (c, r, s) + b`` over ``grid = (ns, nr, nc)`` and combine along ``s`` by
        ``mode`` (codes.MODES) into ``out`` (``(ns, nr, nc)`` for "none", else ``(nr, nc)``).

        ``window``: ``(center, width, function_code, lo, hi, invert)`` writes the windowed image (uint8 ``out``)
        in the same pass (capability ``FUSED_WINDOW``). ``bricks``: the brick extrema of
        :meth:`brick_extrema` for max/min projections (capability ``BRICK_SKIPPING``). ``precision``:
        one of :data:`gpukit.backends.codes.PRECISIONS`; "fast" is a permission, not a demand: a backend
        without the ``FAST_PRECISION`` capability runs "exact".
        """
        kw = self._precision_kw(precision)
        if window is not None:
            self.require(codes.FUSED_WINDOW, "sample_grid(window=...)")
            kw["window"] = window
        if bricks is not None:
            self.require(codes.BRICK_SKIPPING, "sample_grid(bricks=...)")
            kw["bricks"] = bricks
        return self.kernels().sample_grid(data, slopes, intercepts, A, b, grid, mode, interp, fill, out, **kw)

    def _precision_kw(self, precision: str) -> dict:
        """The kernels' keyword for ``precision``: passed only where the backend has a fast path and it is asked."""
        if precision not in codes.PRECISIONS:
            raise InvalidParameterError(f"precision must be one of {', '.join(codes.PRECISIONS)}, not {precision!r}")
        return {"precision": precision} if precision != "exact" and codes.FAST_PRECISION in self.capabilities else {}

    def project_slices(self, data, slopes, intercepts, A, b, grid, mode, interp, fill, out, *, precision="exact"):
        """A max/min/mean projection over ``grid`` (as :meth:`sample_grid`) in slice order: the shear-warp rule of
        :mod:`gpukit.backends._slices` (capability ``SLICE_ORDER``); ``precision`` as in :meth:`sample_grid`."""
        self.require(codes.SLICE_ORDER, "project(order='slice')")
        return self.kernels().project_slices(data, slopes, intercepts, A, b, grid, mode, interp, fill, out,
                                             **self._precision_kw(precision))

    def project_axis(self, data, slopes, intercepts, axis, lo, hi, mode, out):
        """max/min/mean of rescaled values along array ``axis`` over ``lo:hi`` into float32 ``out``."""
        return self.kernels().project_axis(data, slopes, intercepts, axis, lo, hi, mode, out)

    def sampler_warmup(self, data, **kwargs) -> None:
        """Compile (or load) the sampler kernels ``data`` needs, before a timed first call."""
        return self.kernels().sampler_warmup(data, **kwargs)

    # -- capability-gated operations -----------------------------------------------------------------------------
    def to_bricks(self, data):
        """A 4x4x4-bricked copy of ``data`` for :meth:`sample_grid_bricked` (capability ``BRICKED_LAYOUT``)."""
        self.require(codes.BRICKED_LAYOUT, "to_bricks")
        return self.kernels().to_bricks(data)

    def sample_grid_bricked(self, bricked, shape, slopes, intercepts, A, b, grid, interp, fill, out, *,
                            window=None, precision="exact"):
        """Mode "none" sampling of a :meth:`to_bricks` copy (``shape`` the volume's), same values as sample_grid;
        ``window`` as in :meth:`sample_grid`."""
        self.require(codes.BRICKED_LAYOUT, "sample_grid_bricked")
        kw = self._precision_kw(precision)
        if window is not None:
            self.require(codes.FUSED_WINDOW, "sample_grid_bricked(window=...)")
            kw["window"] = window
        return self.kernels().sample_grid_bricked(bricked, shape, slopes, intercepts, A, b, grid, interp, fill, out,
                                                  **kw)

    def brick_extrema(self, data, slopes, intercepts):
        """Largest and smallest rescaled value of each 8^3 brick (capability ``BRICK_SKIPPING``)."""
        self.require(codes.BRICK_SKIPPING, "brick_extrema")
        return self.kernels().brick_extrema(data, slopes, intercepts)


class ModuleKernels:
    """The kernels of a backend written as modules: each operation is looked up, at call time, in the first
    module whose ``__all__`` names it (so a test may patch a module's function)."""

    def __init__(self, *modules):
        self._modules = modules

    def __getattr__(self, name: str):
        for m in self._modules:
            if name in getattr(m, "__all__", ()):
                return getattr(m, name)
        raise AttributeError(f"no kernel {name!r} in {', '.join(m.__name__ for m in self._modules)}")


def _dlpack_on_cpu(a) -> bool:
    """Whether a DLPack producer's data is in host memory (device type 1, kDLCPU)."""
    try:
        return int(a.__dlpack_device__()[0]) == 1
    except (AttributeError, TypeError, ValueError, IndexError):
        return False


class HostBackend(Backend):
    """A backend whose arrays are numpy arrays in host memory."""

    location = "host"

    @property
    def xp(self):
        return np

    def asarray(self, a, dtype=None):
        """numpy arrays as they are; other libraries' CPU arrays zero-copy through DLPack (a PyTorch CPU tensor,
        say); a GPU array is a ``TypeError`` naming the explicit copy to make."""
        if not isinstance(a, np.ndarray) and hasattr(a, "__dlpack__") and \
                not hasattr(a, "__cuda_array_interface__") and _dlpack_on_cpu(a):
            a = np.from_dlpack(a)
        if hasattr(a, "__cuda_array_interface__") and not isinstance(a, np.ndarray):
            raise TypeError(f"the {self.name!r} backend computes on host (numpy) arrays and got a GPU array "
                            f"({type(a).__name__}); copy it explicitly (.get(), Volume.to_numpy()) or use a GPU "
                            "backend")
        return np.asarray(a, dtype=dtype)

    def kernel_input(self, data):
        """The stored values as this backend's kernels take them (here: as they are)."""
        return data


__all__ = ["Backend", "HostBackend", "ModuleKernels", "CapabilityError", "REQUIRED_OPS", "CAPABILITY_OPS"]
