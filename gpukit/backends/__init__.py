"""The backend registry.

A backend computes gpukit's operations on one kind of array; its contract
(operations, array namespace, host or device, capabilities) is written once
in :mod:`gpukit.backends.contract`, and the codes every backend shares are
in :mod:`gpukit.backends.codes`. Each backend is a subpackage that defines
``BACKEND``, an instance of its :class:`~gpukit.backends.contract.Backend`
subclass; :data:`REGISTRY` maps names to those subpackages, imported only
when first used, so ``import gpukit`` imports neither Numba nor CuPy (the
pydicom plugin habit).

Selection order for an operation: the call's ``backend=``, else the
volume's ``backend`` attribute (a volume made resident by ``Volume.to``),
else :func:`set_backend`'s global choice, else the ``GPUKIT_BACKEND``
environment variable, else ``"auto"``. ``"auto"`` takes the first available
of ``cupy``, ``numba-cuda`` (GPU backends need a device), ``numba``,
``numpy``; it never takes a backend whose ``auto`` is False (``cuda-host``,
the test stand-in that runs the CUDA C++ kernels on the CPU on strict
pretend-device arrays). A backend named explicitly but unavailable raises
:class:`~gpukit.errors.BackendUnavailableError` naming what is missing; an
unknown name raises :class:`UnknownBackendError`.
"""

from __future__ import annotations

import importlib
import os

from ..errors import BackendUnavailableError, UnknownBackendError
from .contract import Backend

#: name -> subpackage defining ``BACKEND``; order is the ``auto`` preference.
REGISTRY: dict[str, str] = {
    "cupy": "gpukit.backends.cupy",
    "numba-cuda": "gpukit.backends.numba_cuda",
    "numba": "gpukit.backends.numba",
    "numpy": "gpukit.backends.numpy",
    "cuda-host": "gpukit.backends.cuda_host",
}

_global_choice: str | None = None


def _module(name: str) -> Backend:
    """The registered :class:`Backend` instance called ``name``."""
    if name not in REGISTRY:
        raise UnknownBackendError(f"unknown backend {name!r}; known: {', '.join(REGISTRY)} or 'auto'")
    be = importlib.import_module(REGISTRY[name]).BACKEND
    if not isinstance(be, Backend) or be.name != name:
        raise TypeError(f"{REGISTRY[name]}.BACKEND is not the Backend {name!r}")
    return be


def lookup(name: str) -> Backend:
    """The registered backend ``name`` whether or not it can run here (ask it ``is_available()``)."""
    return _module(name)


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
        out.append({"name": n, "available": bool(m.is_available()), "missing": list(m.missing_dependencies()),
                    "location": m.location, "auto": m.auto, "capabilities": sorted(m.capabilities)})
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
            be = _module(n)
            if be.auto and be.is_available():
                return n
        return "numpy"
    m = _module(choice)
    if not m.is_available():
        missing = "; ".join(m.missing_dependencies()) or "unknown reason"
        raise BackendUnavailableError(f"backend {choice!r} is not available here: missing {missing}")
    return choice


def get_backend(name: str | None = None, obj: object = None) -> Backend:
    """The backend an operation will use (a :class:`~gpukit.backends.contract.Backend`)."""
    return _module(resolve_name(name, obj))


__all__ = ["REGISTRY", "Backend", "UnknownBackendError", "lookup", "available_backends", "missing_dependencies", "backend_report",
           "set_backend", "resolve_name", "get_backend"]
