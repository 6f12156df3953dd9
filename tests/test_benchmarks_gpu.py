"""The benchmark suite's GPU section: it runs where a device is, and says plainly why not where there is none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _have_device() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(_have_device(), reason="a CUDA device is present: the gpu-marked test measures instead")
def test_gpu_section_is_skipped_with_the_reason_without_a_device(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--sections", "gpu", "--out", str(tmp_path),
                        "--no-plots"], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["rows"] == [] and "CUDA" in res["skipped"]["gpu"]
    assert "section gpu skipped" in r.stdout and res["machine"]["gpu"] == "none found"


@pytest.mark.gpu
@pytest.mark.skipif(not _have_device(), reason="needs a CUDA device")
def test_gpu_section_measures_and_checks_against_numpy():
    from benchmarks import bench_gpu

    rows = bench_gpu.run(size=64, repeats=3)
    kernels = [r for r in rows if "kernel" in r["impl"]]
    assert kernels and all(r["median_s"] > 0 and r["floor_s"] > 0 for r in kernels)
    assert all(r["max_abs_diff"] <= 1.0 for r in kernels)
