"""The CuPy backend's launcher: CUDA C++ kernels from ``kernels/``, compiled at run time by NVRTC (``cupy.RawModule``).

The kernel API (``rescale_kernel``, ``window_kernel``, ``minmax_kernel``,
``sample_grid``, ``project_axis``, ``slice_extrema``, ``sampler_warmup``) is
:class:`gpukit.backends.cuda.kernels.CudaKernels` over :class:`CupyLauncher`:
the same wrapper that the tests run on the CPU through
:class:`gpukit.backends.cuda_host.shim.HostLauncher`, so only this module's few
CuPy lines need a GPU. Arrays in and out are CuPy arrays (numpy inputs are
uploaded); the small per-slice results of ``slice_extrema`` and
``minmax_kernel`` come back to the host, where the ops layer uses them.

Modules (one per source file and specialisation, see
:mod:`gpukit.backends.cuda.src`) are built on first use, memoised per device
and per specialisation, always with ``--fmad=false``; CuPy also caches the
compiled binaries on disk (``~/.cupy/kernel_cache``).

CuPy is imported only when this backend is used or asked whether it is
available (never by ``import gpukit``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import threading

from ..cuda import src as cuda_src
from ..cuda.kernels import API, CudaKernels

def _driver_devices() -> tuple[int, str]:
    """``(count, reason)`` from the CUDA driver itself (cheap: loads libcuda, imports nothing)."""
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return 0, "no CUDA driver (libcuda) on this machine"
    if lib.cuInit(0) != 0:
        return 0, "the CUDA driver did not initialise (cuInit failed)"
    n = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(n)) != 0:
        return 0, "the CUDA driver could not count devices"
    return int(n.value), "" if n.value > 0 else "the CUDA driver reports 0 devices"


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[bool, tuple[str, ...]]:
    missing = []
    if importlib.util.find_spec("cupy") is None:
        missing.append("cupy-cuda12x (pip install 'gpukit[cuda12]')")
    count, reason = _driver_devices()
    if count == 0:
        missing.append(f"a CUDA device (none found: {reason})")
    if missing:
        return False, tuple(missing)
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False, ("a CUDA device (none found: CuPy's runtime reports 0 devices)",)
    except Exception as exc:  # noqa: BLE001 - CuPy raises its own error types; any failure means unavailable
        return False, (f"a CUDA device (none found: {type(exc).__name__}: {exc})",)
    return True, ()


def is_available() -> bool:
    """CuPy importable and a CUDA device present (checked once per process; never raises)."""
    try:
        return _probe()[0]
    except Exception:  # noqa: BLE001 - is_available must never raise
        return False


def missing_dependencies() -> list[str]:
    try:
        return list(_probe()[1])
    except Exception as exc:  # noqa: BLE001
        return [f"a working CuPy ({type(exc).__name__}: {exc})"]


class CupyLauncher:
    """Launcher over ``cupy.RawModule``: one module per (device, spec), built on first use."""

    def __init__(self):
        import cupy

        self.xp = cupy
        self._modules: dict = {}
        self._lock = threading.Lock()

    def module(self, spec: cuda_src.Spec):
        import cupy

        key = (cupy.cuda.runtime.getDevice(), spec)
        with self._lock:
            mod = self._modules.get(key)
            if mod is None:
                mod = cupy.RawModule(code=cuda_src.assemble(spec), options=cuda_src.NVRTC_OPTIONS,
                                     name_expressions=None)
                try:
                    mod.compile()
                except cupy.cuda.compiler.CompileException as exc:
                    raise cuda_src.KernelCompileError(f"NVRTC could not compile {spec.name}:\n{exc}",
                                                      str(exc)) from exc
                self._modules[key] = mod
        return mod

    def device_id(self) -> int:
        import cupy

        return int(cupy.cuda.runtime.getDevice())

    def function(self, spec: cuda_src.Spec, entry: str):
        fn = self.module(spec).get_function(entry)

        def launch(grid, block, args):
            fn(tuple(grid), tuple(block), tuple(args))

        return launch


_kernels: CudaKernels | None = None
_kernels_lock = threading.Lock()


def kernels() -> CudaKernels:
    """The backend's :class:`CudaKernels` (created on first use)."""
    global _kernels
    with _kernels_lock:
        if _kernels is None:
            _kernels = CudaKernels(CupyLauncher())
        return _kernels


__all__ = ["is_available", "missing_dependencies", "CupyLauncher", "kernels"]
