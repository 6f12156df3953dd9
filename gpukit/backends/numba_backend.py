"""The Numba CPU backend: ``@njit(parallel=True)`` kernels on numpy arrays.

Numba is imported only when a kernel is first used (``import gpukit`` stays light).
"""

from __future__ import annotations

import importlib.util

NAME = "numba"
ARRAY = "numpy"
DEPENDENCIES = ["numba>=0.59"]


def is_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def missing_dependencies() -> list[str]:
    return [] if is_available() else ["numba>=0.59 (pip install numba)"]
from .nb_sampler import *  # noqa
from .nb_intensity import *  # noqa
