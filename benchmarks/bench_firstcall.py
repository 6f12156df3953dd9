"""First calls and the one-time compile: what a fresh process pays before its first result.

Two measurements, each in fresh interpreters:

* **first call, cache warm** (Numba's usual on-disk cache, as a user has it): one interpreter fills the cache
  where needed, then ``repeats`` fresh interpreters each time
  the first call of one operation (window, rescale, reslice, resample, axis and oblique-slab projection, a
  ``Reslicer`` built and called) on a ``(nz, 512, 512)`` int16 CT-like volume, then a second call. Reported:
  the median first call (``median_s``), the second call (``second_s``: the work itself), and ``import gpukit``
  before it. The goal (issue 11) is every first call under 0.2 s.
* **one-time compile per kernel family**: an empty private cache folder (``NUMBA_CACHE_DIR``: the user's cache
  is neither used nor touched), one interpreter per family, the time of
  :func:`gpukit.ops.warm.warm_up`-like first calls that compile it (what a user pays once after install or
  after an upgrade; ``gpukit demo``, ``gpukit view`` and each batch worker start this in the background).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile

#: op name -> code run twice after ``vol`` and ``plane`` exist (one fresh interpreter per op and repeat)
OPS = {
    "window": "gpukit.window(vol, 50, 400, backend='numba')",
    "rescale": "gpukit.rescale(vol, backend='numba')",
    "reslice": "gpukit.reslice(vol, plane, backend='numba')",
    "resample": "gpukit.regularize(vol, 1.0, backend='numba')",
    "project axial": "gpukit.project(vol, 'axial', backend='numba')",
    "project oblique 10 mm slab": "gpukit.project(vol, plane, thickness_mm=10.0, backend='numba')",
    "Reslicer": "gpukit.Reslicer(vol, backend='numba').reslice(plane)",
}

SCRIPT = """
import sys, time
t0 = time.perf_counter()
import numpy as np
import gpukit
t_import = time.perf_counter() - t0
nz, op = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
data = rng.integers(0, 2000, (nz, 512, 512), dtype=np.int16)
vol = gpukit.Volume(data, np.diag([0.7, 0.7, 1.0, 1.0]), {"rescale_slope": 1.0, "rescale_intercept": -1024.0})
plane = gpukit.Plane.rotated(vol, (10.0, 20.0, 0.0), shape=(512, 512))
code = compile(sys.argv[3], "<op>", "eval")
t0 = time.perf_counter(); eval(code); first = time.perf_counter() - t0
t0 = time.perf_counter(); eval(code); second = time.perf_counter() - t0
print(first, second, t_import)
"""

#: kernel family -> the calls that compile all of it for int16 volumes (one fresh interpreter, empty cache)
FAMILIES = {
    "intensity (window, rescale, min/max)": "gpukit.window(vol, 40, 400, backend='numba'); "
                                            "gpukit.rescale(vol, backend='numba')",
    "axis projections (max, min, mean)": "[gpukit.project(vol, a, mode=m, backend='numba') for a in range(3) "
                                         "for m in ('max', 'min', 'mean')]",
    "sampler (reslice, resample, oblique slab MIP/MinIP/AvgIP)": "plane = gpukit.Plane.rotated(vol, (10.0, 20.0, 0.0), "
                                                                "shape=(8, 8)); gpukit.reslice(vol, plane, "
                                                                "backend='numba'); gpukit.regularize(vol, 1.0, "
                                                                "backend='numba'); [gpukit.project(vol, plane, "
                                                                "mode=m, thickness_mm=3.0, backend='numba') "
                                                                "for m in ('max', 'min', 'mean')]",
    "everything gpukit.ops.warm.warm_up loads": "from gpukit.ops.warm import warm_up; "
                                                "warm_up('numba', np.int16, background=False)",
}

COMPILE_SCRIPT = """
import sys, time
import numpy as np
import gpukit
vol = gpukit.Volume(np.random.default_rng(0).integers(0, 200, (8, 16, 16)).astype(np.int16),
                    np.diag([0.7, 0.7, 1.0, 1.0]), {"rescale_intercept": -100.0})
t0 = time.perf_counter()
exec(sys.argv[1])
print(time.perf_counter() - t0)
"""


def _env(cache: str | None) -> dict:
    return dict(os.environ, NUMBA_CACHE_DIR=cache) if cache else dict(os.environ)


def _run(args: list[str], env: dict, timeout: float = 900) -> list[float]:
    res = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=timeout, env=env,
                         check=True)
    return [float(v) for v in res.stdout.split()]


def first_call_rows(nz: int, repeats: int, ops=None) -> list[dict]:
    """``repeats`` fresh interpreters per operation (``ops``: names of :data:`OPS`, default all)."""
    rows = []
    env = _env(None)
    for op in ops or OPS:
        code = OPS[op]
        try:
            _run([SCRIPT, str(nz), op, code], env)       # fills the cache where needed
            runs = [_run([SCRIPT, str(nz), op, code], env) for _ in range(repeats)]
        except (subprocess.SubprocessError, ValueError, OSError) as exc:
            rows.append({"op": "first call, cache warm", "impl": f"gpukit numba {op}", "median_s": float("inf"),
                         "error": str(getattr(exc, "stderr", None) or exc)[-300:]})
            continue
        first = sorted(r[0] for r in runs)
        rows.append({"op": f"first call in a fresh process, cache warm, ({nz}, 512, 512) int16",
                     "impl": f"gpukit numba {op}", "median_s": statistics.median(first), "p10_s": first[0],
                     "p90_s": first[-1], "repeats": repeats,
                     "second_s": statistics.median(r[1] for r in runs),
                     "import_gpukit_s": statistics.median(r[2] for r in runs), "goal_s": 0.2,
                     "goal_met": statistics.median(first) < 0.2,
                     # no .pyc files: every fresh process compiles gpukit's sources (an installed wheel has them)
                     "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))})
    return rows


def compile_rows() -> list[dict]:
    rows = []
    for family, code in FAMILIES.items():
        cache = tempfile.mkdtemp(prefix="gpukit-bench-numba-cache-")
        try:
            (t,) = _run([COMPILE_SCRIPT, code], _env(cache), timeout=1800)
            rows.append({"op": "one-time compile after install (empty Numba cache), int16",
                         "impl": f"gpukit numba {family}", "median_s": t, "p10_s": t, "p90_s": t, "repeats": 1})
        except (subprocess.SubprocessError, ValueError, OSError) as exc:
            rows.append({"op": "one-time compile", "impl": f"gpukit numba {family}", "median_s": float("inf"),
                         "error": str(getattr(exc, "stderr", None) or exc)[-300:]})
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return rows


def run(size: int = 140, repeats: int = 7) -> list[dict]:
    """``size``: slices of the first-call volume (140: the real CT's); ``repeats`` fresh processes per op.
    A quick run (size under 64) skips the compile rows (minutes)."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        raise ImportError("numba is not installed")
    rows = first_call_rows(size, max(1, repeats))
    if size >= 64:
        rows += compile_rows()
    return rows


__all__ = ["run", "first_call_rows", "compile_rows"]
