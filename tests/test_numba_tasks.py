"""The parallel Numba kernels and their task functions (see :mod:`gpukit.backends._jit`, "Parallel kernels").

Each large ``parallel=True`` kernel is a ``prange`` loop calling one plain task function. Asserted here:

* every task runs with its index typed int64 only: a ``prange`` index is typed int64 before Numba's parfor pass
  and uint64 after it, so a task called with the bare index compiles twice (a second full compile of the
  largest functions in the package, per stored dtype);
* the kernels that call them give the numpy reference's values (exact precision bit for bit, fast precision
  within ``fast_bound``; slice order bit for bit against the numpy version of its rule).
"""

from __future__ import annotations

import numpy as np
import pytest

from gpukit.backends import available_backends

pytestmark = pytest.mark.skipif("numba" not in available_backends(), reason="numba not installed")

FILL = -3000.0


def _case():
    rng = np.random.default_rng(11)
    data = rng.integers(-1024, 3000, (20, 18, 17)).astype(np.int16)
    slopes = np.full(20, 1.0)
    intercepts = np.full(20, -1024.0)
    c, s = np.cos(0.4), np.sin(0.4)
    A = np.array([[c, 0.0, -s], [s * 0.3, 1.0, c * 0.3], [s, 0.2, c]]) * 0.9
    b = np.array([8.0, 8.5, 9.5]) - A @ np.array([6.5, 7.0, 9.5])
    return data, slopes, intercepts, A, b


def _run(mod, data, slopes, intercepts, A, b, grid, mode, interp, **kw):
    out = np.empty(grid if mode == "none" else grid[1:], np.float32)
    mod.sample_grid(data, slopes, intercepts, A, b, grid, mode, interp, FILL, out, **kw)
    return out


#: (module, kernel, its task)
KERNELS = [("sampler", "_resample_fast_kernel", "_resample_fast_task"), ("sampler", "_project_kernel", "_project_row"),
           ("sampler", "_project_bricks_kernel", "_project_bricks_row"),
           ("sampler", "_project_fast_kernel", "_project_fast_task"),
           ("sampler", "_project_slices_kernel", "_project_slices_task"), ("slices", "_slices_kernel", "_slices_task"),
           ("slices", "_warp_kernel", "_warp_task")]


def test_every_task_is_compiled_for_an_int64_index_only(monkeypatch):
    """Each kernel is re-made here without the disk cache (a kernel loaded from the cache brings its task's code
    along and never types the call), so typing the kernel types the call to its task in this process: the task
    dispatcher then holds each index type the kernel passed (its own compile or cache load of that signature)."""
    import numba

    from gpukit.backends.numba import sampler as nb, slices as ns
    from gpukit.backends.numpy import sampler as npr, slices as nps

    mods = {"sampler": nb, "slices": ns}
    for mod, kernel, _ in KERNELS:
        disp = getattr(mods[mod], kernel)
        monkeypatch.setattr(mods[mod], kernel, numba.njit(**{k: v for k, v in disp.targetoptions.items() if k not in ("cache", "nopython")})(disp.py_func))

    data, slopes, intercepts, A, b = _case()
    # mode "none" (fast): _resample_fast_task
    ref = _run(npr, data, slopes, intercepts, A, b, (3, 14, 15), "none", "linear")
    fast = _run(nb, data, slopes, intercepts, A, b, (3, 14, 15), "none", "linear", precision="fast")
    np.testing.assert_array_equal(fast == FILL, ref == FILL)
    assert np.abs(fast - ref).max() <= nb.fast_bound(3000, 1.0)
    # projections, exact (_project_row; with bricks, long rays: _project_bricks_row), bit for bit
    for grid, bricks in (((6, 14, 15), None), ((40, 14, 15), nb.brick_extrema(data, slopes, intercepts))):
        ref = _run(npr, data, slopes, intercepts, A, b, grid, "max", "linear")
        exact = _run(nb, data, slopes, intercepts, A, b, grid, "max", "linear", bricks=bricks, precision="exact")
        np.testing.assert_array_equal(exact, ref)
    # projection, fast, ray order (_project_fast_task)
    ref = _run(npr, data, slopes, intercepts, A, b, (12, 14, 15), "mean", "linear")
    fast = _run(nb, data, slopes, intercepts, A, b, (12, 14, 15), "mean", "linear", precision="fast")
    assert np.abs(fast - ref).max() <= nb.fast_bound(3000, 1.0)
    # projection about the slice axis, fast (_project_slices_task: slice order of the ray-order rule)
    P = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    ref = _run(npr, data, slopes, intercepts, P, np.zeros(3), (17, 20, 17), "max", "linear")
    fast = _run(nb, data, slopes, intercepts, P, np.zeros(3), (17, 20, 17), "max", "linear", precision="fast")
    assert np.abs(fast - ref).max() <= nb.fast_bound(3000, 1.0)
    # order="slice" (_slices_task, _warp_task), exact: the numpy version of the slice-order rule, bit for bit
    grid = (10, 14, 15)
    want = np.empty(grid[1:], np.float32)
    got = np.empty(grid[1:], np.float32)
    nps.project_slices(data, slopes, intercepts, A, b, grid, "max", "linear", FILL, want)
    ns.project_slices(data, slopes, intercepts, A, b, grid, "max", "linear", FILL, got, precision="exact")
    np.testing.assert_array_equal(got, want)

    for mod, kernel, task in KERNELS:
        assert getattr(mods[mod], kernel).signatures, kernel          # the fresh kernel ran
        index_types = {str(sig[0]) for sig in getattr(mods[mod], task).signatures}
        assert index_types == {"int64"}, (task, index_types)
