"""The numpy backend: vectorised numpy, the reference every other backend is checked against."""

from __future__ import annotations

NAME = "numpy"
ARRAY = "numpy"
DEPENDENCIES = ["numpy"]


def is_available() -> bool:
    return True


def missing_dependencies() -> list[str]:
    return []
from .np_sampler import *  # noqa
from .np_intensity import *  # noqa
