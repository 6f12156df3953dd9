"""The host/device edge for arrays: the one place outside the backends where data crosses to the host.

gpukit keeps arrays where their backend computes (DESIGN.md, "Backends"):
an operation on a resident volume returns an array on the same device. Code
that needs numpy (writers, pictures, NIfTI and SimpleITK export) calls
:func:`to_host`, an explicit, named copy; nothing in gpukit converts a device
array implicitly (CuPy refuses ``np.asarray`` on its arrays, and the test
stand-in ``cuda-host`` refuses it the same way, so CI catches any slip).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_host(a: Any) -> bool:
    """Whether ``a`` is a numpy array (host memory)."""
    return isinstance(a, np.ndarray)


def to_host(a: Any) -> np.ndarray:
    """``a`` as a numpy array: ``a`` itself when it is one, else an explicit device-to-host copy (``.get()``).

    Accepts numpy arrays, CuPy arrays, the stand-in's device arrays, and CPU
    arrays of other libraries that speak DLPack (taken zero-copy). Anything
    else is a ``TypeError`` naming its type.
    """
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if callable(get):
        return get()
    if hasattr(a, "__dlpack__"):
        return np.from_dlpack(a)
    raise TypeError(f"cannot bring a {type(a).__name__} to the host: expected a numpy, CuPy or DLPack array")


__all__ = ["is_host", "to_host"]
