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


def test_fast_precision_report_without_a_device():
    """The float32 sampler's report: estimates labelled as such, and the host stand-in's measured accuracy within
    the stated 0.01 HU (nearest: the reference's voxels, so the same HU)."""
    from benchmarks import bench_gpu
    from gpukit.backends.cuda_host import shim

    est = bench_gpu.fast_precision_estimates(64)
    assert est and all("not measured" in r["measured_on"] for r in est)
    for r in est:
        assert r["bytes_requested"] > 0 and r["bytes_dram_floor"] > 0
        assert (r["fp64_ops"] == 0) == (r["precision"] == "fast")
    by = {(r["op"], r["precision"]): r for r in est}
    for (op, precision), r in by.items():
        if precision == "fast":      # fewer arithmetic units than exact on every family, 1/64 fp64 most of all
            ex = by[(op, "exact")]["relative_arith_time"]
            assert all(r["relative_arith_time"][g] < ex[g] for g in ex)
    if not shim.is_available():
        pytest.skip("; ".join(shim.missing_dependencies()))
    rows = bench_gpu.fast_precision_report(size=24, estimate_size=64)["host_standin_accuracy"]
    assert len(rows) == 8 and all(r["samples_compared"] > 100 and r["fill_mask_equal"] for r in rows)
    assert all(r["max_abs_diff_hu"] <= 0.01 and r["median_abs_diff_hu"] <= r["max_abs_diff_hu"] for r in rows)
    assert all(r["max_abs_diff_hu"] == 0.0 for r in rows if "nearest" in r["op"] and "mean" not in r["op"])
