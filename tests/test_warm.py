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
