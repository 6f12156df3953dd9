"""The CuPy backend (CUDA C++ kernels from ``kernels/``): registered, not implemented yet.

It reports itself unavailable, naming what is missing, until the GPU backends
land (see the project's issue on GPU backends).
"""

from __future__ import annotations

import importlib.util

NAME = "cupy"
ARRAY = "cupy"
DEPENDENCIES = ["cupy-cuda12x>=13", "a CUDA device"]


def is_available() -> bool:
    return False


def missing_dependencies() -> list[str]:
    out = []
    if importlib.util.find_spec("cupy") is None:
        out.append("cupy-cuda12x (pip install 'gpukit[cuda12]')")
    out.append("gpukit's CUDA kernels (the cupy backend is not implemented in this version)")
    return out
