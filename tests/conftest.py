"""Shared fixtures: the real-data folder (../shared/data), skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GPUKIT_TEST_DATA", ROOT.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """A path under the shared real-data folder; skips the test when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data not found at {p} (the ../shared/data folder is absent on this machine)")
    return p


@pytest.fixture
def data():
    return data_path
