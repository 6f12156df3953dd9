"""Kernel warm-up ahead of need (gpukit.ops.warm): the kernels a volume's operations use are loaded by the
warm-up itself, once per process and dtype, in a background thread that the caller joins before its own kernels
run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_warm_up_loads_the_kernels_the_real_calls_use_once_per_dtype():
    code = textwrap.dedent("""
        import numpy as np
        from gpukit.ops.warm import warm_up
        from gpukit.backends.numba import axis, intensity, sampler

        def loaded():
            mods = (axis, intensity, sampler)
            return {f"{m.__name__}.{n}": len(getattr(m, n).signatures) for m in mods for n in dir(m)
                    if hasattr(getattr(m, n), "signatures")}

        before = loaded()
        t = warm_up("numba", np.int16)
        assert t is not None and t.daemon
        t.join()
        assert warm_up("numba", np.int16) is None          # once per process and dtype
        after = loaded()
        grown = sorted(k for k in after if after[k] > before.get(k, 0))
        print(grown)
        import gpukit
        vol = gpukit.Volume(np.arange(8 * 16 * 16, dtype=np.int16).reshape(8, 16, 16) % 300, np.eye(4))
        gpukit.reslice(vol, gpukit.Plane.rotated(vol, (5, 5, 0), shape=(8, 8)), backend="numba")
        gpukit.project(vol, "axial", backend="numba")
        gpukit.window(vol, 40, 400, backend="numba")
        assert loaded() == after, "the real calls needed kernels the warm-up had not loaded"
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    grown = eval(r.stdout.strip().splitlines()[-1])
    assert any("sampler." in k for k in grown) and any("axis." in k for k in grown) and \
        any("intensity." in k for k in grown), grown


def test_join_warm_up_waits_for_the_warm_up_another_caller_started():
    code = textwrap.dedent("""
        import threading
        import numpy as np
        from gpukit.ops import warm

        warm.join_warm_up("numba", np.int16)              # nothing started: returns at once
        t = warm.warm_up("numba", np.int16)
        assert t is not None
        done = []
        other = threading.Thread(target=lambda: (warm.join_warm_up("numba", np.int16), done.append(t.is_alive())))
        other.start()
        other.join()
        assert done == [False], done                      # the other thread returned only once the warm-up ended
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]


LIGHT_CACHE = textwrap.dedent("""
    import sys
    import numpy as np
    import gpukit
    from gpukit.backends.numba import axis, intensity, sampler

    rng = np.random.default_rng(7)
    vol = gpukit.Volume(rng.integers(0, 3000, (12, 24, 20)).astype(np.int16), np.diag([0.8, 0.7, 1.5, 1.0]),
                        {"rescale_intercept": -1024.0})
    plane = gpukit.Plane.rotated(vol, (12.0, 25.0, 5.0), shape=(16, 16))
    out = {}
    for be in ("numba", "numpy"):
        out[be] = [gpukit.window(vol, 40, 400, backend=be), gpukit.reslice(vol, plane, backend=be),
                   gpukit.project(vol, "axial", backend=be), gpukit.project(vol, plane, thickness_mm=4.0, backend=be)]
    for a, b in zip(out["numba"], out["numpy"]):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=0.02)
    mods = (axis, intensity, sampler)
    disps = [getattr(m, n) for m in mods for n in dir(m) if hasattr(getattr(m, n), "stats")]
    misses = sum(sum(d.stats.cache_misses.values()) for d in disps)
    hits = sum(sum(d.stats.cache_hits.values()) for d in disps)
    print(hits, misses, "scipy.linalg" in sys.modules)
""")


def test_cached_kernels_load_without_numbas_full_context_refresh_and_agree_with_numpy():
    """A fresh process whose kernels are all in the disk cache loads them without Numba's target-context refresh
    (which imports scipy.linalg to look for a BLAS): the kernels load (cache hits, no compile) and agree with the
    numpy reference; with the light cache turned off Numba's refresh runs as before (scipy.linalg imported)."""
    import importlib.util
    import os

    run = lambda env: subprocess.run([sys.executable, "-c", LIGHT_CACHE], capture_output=True, text=True,
                                     timeout=1200, cwd=ROOT, env={**os.environ, **env})
    first = run({})                    # fills the cache where needed (compiles then: the refresh runs)
    assert first.returncode == 0, first.stderr[-3000:]
    r = run({})
    assert r.returncode == 0, r.stderr[-3000:]
    hits, misses, scipy_linalg = r.stdout.split()[-3:]
    assert int(misses) == 0 and int(hits) > 0, r.stdout
    assert scipy_linalg == "False", "the cached kernels' load refreshed Numba's whole target context"
    if importlib.util.find_spec("scipy") is not None:
        off = run({"GPUKIT_NUMBA_LIGHT_CACHE": "0"})
        assert off.returncode == 0, off.stderr[-3000:]
        assert off.stdout.split()[-1] == "True" and off.stdout.split()[-2] == "0"


def test_first_call_benchmark_section_runs_at_its_quick_size(tmp_path):
    """The suite's first-call section through the suite's command: one row per operation, each a fresh process
    whose first and second calls were timed (the quick size skips the minutes-long compile rows)."""
    import json

    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--sections", "firstcall", "--no-plots",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    ops = ("window", "rescale", "reslice", "resample", "project axial", "project oblique 10 mm slab", "Reslicer")
    assert sorted(row["impl"] for row in rows) == sorted(f"gpukit numba {op}" for op in ops)
    # reported, not judged: each row has its first and second call (speed is the benchmark's business)
    assert all("error" not in row and {"second_s", "median_s"} <= set(row) for row in rows), rows
