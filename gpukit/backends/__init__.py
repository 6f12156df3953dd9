"""The backend registry.

A backend is a module that computes gpukit's operations on one kind of array.
Each backend module declares:

* ``NAME`` (str), ``ARRAY`` ("numpy" or "cupy") and ``DEPENDENCIES``
  (human-readable list of what it needs, e.g. ``["numba>=0.59"]``);
* ``is_available() -> bool`` and ``missing_dependencies() -> list[str]``
  (what to install or what is absent, e.g. "a CUDA device"), both cheap and
  never raising;
* the operation kernels the ``ops`` layer dispatches to, with the same names
  and signatures in every backend. Intensity (``np_intensity`` /
  ``nb_intensity``): ``rescale_kernel(data, slopes, intercepts, out_dtype)``,
  ``window_kernel(data, slopes, intercepts, center, width, function_code, lo,
  hi, invert, out)`` and ``minmax_kernel(data)``, on ``(nz, ny, nx)`` arrays
  with per-slice float64 ``slopes``/``intercepts``; their scalar maths lives
  once in ``_math`` (``@njit`` helpers that Numba CUDA kernels can call too).

Modules are registered by import path and imported only when first used, so
``import gpukit`` imports neither Numba nor CuPy (the pydicom plugin habit).

Selection order for an operation: the call's ``backend=``, else the volume's
``backend`` attribute, else :func:`set_backend`'s global choice, else the
``GPUKIT_BACKEND`` environment variable, else ``"auto"``. ``"auto"`` takes the
first available of ``cupy``, ``numba-cuda`` (GPU backends need a device),
``numba``, ``numpy``. A backend named explicitly but unavailable raises
:class:`~gpukit.errors.BackendUnavailableError` naming what is missing.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from ..errors import BackendUnavailableError

#: name -> module path; order is the ``auto`` preference.
REGISTRY: dict[str, str] = {
    "cupy": "gpukit.backends.cupy_backend",
    "numba-cuda": "gpukit.backends.numba_cuda_backend",
    "numba": "gpukit.backends.numba_backend",
    "numpy": "gpukit.backends.numpy_backend",
}

_global_choice: str | None = None


def _module(name: str) -> ModuleType:
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(REGISTRY)} or 'auto'")
    return importlib.import_module(REGISTRY[name])


def available_backends() -> list[str]:
    """Names of the backends that can run here, in ``auto`` preference order."""
    return [n for n in REGISTRY if _module(n).is_available()]


def missing_dependencies(name: str) -> list[str]:
    """What backend ``name`` lacks here (empty when it is available)."""
    return list(_module(name).missing_dependencies())


def backend_report() -> list[dict]:
    """One dict per registered backend: name, available, missing, array kind."""
    out = []
    for n in REGISTRY:
        m = _module(n)
        out.append({"name": n, "available": bool(m.is_available()),
                    "missing": list(m.missing_dependencies()), "array": m.ARRAY})
    return out


def set_backend(name: str | None) -> None:
    """Set the process-wide default backend (``None`` clears it)."""
    global _global_choice
    if name is not None and name != "auto":
        _module(name)  # validate the name
    _global_choice = name


def resolve_name(name: str | None = None, obj: object = None) -> str:
    """The backend name an operation will use (see module docstring for the order)."""
    choice = name or getattr(obj, "backend", None) or _global_choice or os.environ.get("GPUKIT_BACKEND") or "auto"
    if choice == "auto":
        for n in REGISTRY:
            if _module(n).is_available():
                return n
        return "numpy"
    m = _module(choice)
    if not m.is_available():
        missing = "; ".join(m.missing_dependencies()) or "unknown reason"
        raise BackendUnavailableError(f"backend {choice!r} is not available here: missing {missing}")
    return choice


def get_backend(name: str | None = None, obj: object = None) -> ModuleType:
    """The backend module an operation will use."""
    return _module(resolve_name(name, obj))


__all__ = ["REGISTRY", "available_backends", "missing_dependencies", "backend_report",
           "set_backend", "resolve_name", "get_backend"]
