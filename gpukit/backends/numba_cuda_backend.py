"""The Numba CUDA backend (``@cuda.jit`` kernels): registered, not implemented yet.

It reports itself unavailable, naming what is missing, until the GPU backends land.
"""

from __future__ import annotations

import importlib.util

NAME = "numba-cuda"
ARRAY = "cupy"
DEPENDENCIES = ["numba-cuda>=0.10", "a CUDA device"]


def is_available() -> bool:
    return False


def missing_dependencies() -> list[str]:
    out = []
    if importlib.util.find_spec("numba_cuda") is None and importlib.util.find_spec("numba.cuda") is None:
        out.append("numba-cuda (pip install 'gpukit[cuda12]')")
    out.append("gpukit's Numba CUDA kernels (the numba-cuda backend is not implemented in this version)")
    return out
