"""Fused rescale + window to uint8: gpukit's backends against the usual numpy ways and the memory floor.

Data: a CT-like ``(size, 512, 512)`` int16 volume (the
:func:`gpukit.testing.phantom` body, stored as HU + 1024 with slope 1 and
intercept -1024, fresh noise in every slice). The window is the soft-tissue
preset (W 400, L 50, DICOM LINEAR). Rows (``op = "window_fused"``):

* ``gpukit numba``: ``gpukit.window(volume)``, a new uint8 output per call;
* ``gpukit numba, out= reused``: the same writing into one preallocated
  output (no allocation or page faults per call, as a viewer would run it);
* ``gpukit numpy``: the numpy reference backend;
* ``seed tutorial (float64 multi-pass)``: ``hu = data.astype(float64) * slope
  + intercept``, clip to the window, scale to 0-255, ``astype(uint8)``;
* ``best-effort numpy (float32 in-place)``: one float32 buffer, scale and
  offset folded into one multiply and one add, clip and cast in place;
* ``memory floor``: bytes moved (read the int16 volume, write the uint8
  image) divided by the copy bandwidth measured here with ``np.copyto``.

Every row reports ``median_s``, ``p10_s``, ``p90_s`` (after one warm-up),
``bytes`` (bytes the operation must move), ``peak_bytes`` (numpy allocations
in one untimed run, tracemalloc) and ``max_abs_diff`` from gpukit's numpy
result (the peers round differently: a unit or so is expected), and
``ratio_to_floor``.

Also (``op = "axis{0,1,2}_mip"``): the axis-aligned MIP along each array axis
(gpukit numba with a new output and with ``out=`` reused, gpukit numpy, plain
``data.max(axis)``) against the read floor (the volume's bytes / the read
bandwidth of all cores, a parallel sum of 64-bit words); and (``op =
"first_call"``, sizes of 64 slices and more) each operation's first call in a
fresh interpreter with Numba's disk cache warm (``first_s``; ``median_s`` is
the second call), which includes Numba's own import and start-up.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ._timing import peak_bytes as _peak, timeit

CENTER, WIDTH = 50.0, 400.0  # gpukit.presets "soft_tissue"


def ct_like_volume(size: int, seed: int = 0, rows: int = 512, cols: int = 512):
    """A ``(size, rows, cols)`` int16 CT-like Volume, stored = HU + 1024 (0..4095), slope 1, intercept -1024."""
    import gpukit
    from gpukit.testing import phantom

    nzp = max(2, min(size, 64))
    ph = phantom((nzp, rows, cols), seed=seed)  # float32 HU
    rng = np.random.default_rng(seed + 1)
    data = np.empty((size, rows, cols), np.int16)
    for k in range(size):
        sl = ph[k * nzp // size]
        noise = rng.normal(0.0, 4.0, size=sl.shape).astype(np.float32) * (sl > -990)
        data[k] = np.clip(np.rint(sl + noise + 1024.0), 0, 4095).astype(np.int16)
    return gpukit.Volume(data, np.eye(4), {"modality": "CT", "rescale_slope": 1.0, "rescale_intercept": -1024.0,
                                           "window_center": [CENTER], "window_width": [WIDTH]})


def seed_way(data: np.ndarray, slope: float, intercept: float, center: float, width: float) -> np.ndarray:
    """What tutorials write: float64 HU, clip, scale, cast; several full-size float64 temporaries."""
    hu = data.astype(np.float64) * slope + intercept
    lo, hi = center - width / 2, center + width / 2
    img = np.clip(hu, lo, hi)
    img = (img - lo) / (hi - lo) * 255.0
    return img.astype(np.uint8)


def best_numpy(data: np.ndarray, slope: float, intercept: float, center: float, width: float) -> np.ndarray:
    """Careful numpy: one float32 buffer, ``x * a + b`` in place (the +0.5 rounds), clip, cast."""
    lo = center - width / 2
    a = np.float32(slope * 255.0 / width)
    b = np.float32((intercept - lo) * 255.0 / width + 0.5)
    buf = data.astype(np.float32)
    buf *= a
    buf += b
    np.clip(buf, 0.0, 255.0, out=buf)
    return buf.astype(np.uint8)


def run(size: int, repeats: int) -> list[dict]:
    """Time the fused window, axis MIPs and first calls on a ``(size, 512, 512)`` volume; one dict per row."""
    import gpukit

    vol = ct_like_volume(size)
    data = vol.data
    slope, intercept = float(vol.slopes[0]), float(vol.intercepts[0])
    nbytes = int(data.nbytes + data.size)  # read int16, write uint8
    ref = gpukit.window(vol, CENTER, WIDTH, backend="numpy")
    impls: list[tuple[str, Callable[[], np.ndarray]]] = []
    backends = gpukit.available_backends()
    if "numba" in backends:
        reuse = np.empty(data.shape, np.uint8)
        impls.append(("gpukit numba", lambda: gpukit.window(vol, CENTER, WIDTH, backend="numba")))
        impls.append(("gpukit numba, out= reused",
                      lambda: gpukit.window(vol, CENTER, WIDTH, backend="numba", out=reuse)))
    impls.append(("gpukit numpy", lambda: gpukit.window(vol, CENTER, WIDTH, backend="numpy")))
    impls.append(("seed tutorial (float64 multi-pass)", lambda: seed_way(data, slope, intercept, CENTER, WIDTH)))
    impls.append(("best-effort numpy (float32 in-place)",
                  lambda: best_numpy(data, slope, intercept, CENTER, WIDTH)))
    rows = []
    for name, fn in impls:
        t = timeit(fn, repeats=repeats, warmup=1)
        res = fn()
        rows.append({"op": "window_fused", "impl": name, "median_s": t["median_s"], "p10_s": t["p10_s"],
                     "p90_s": t["p90_s"], "repeats": t["repeats"], "bytes": nbytes, "shape": list(data.shape),
                     "peak_bytes": _peak(fn),
                     "max_abs_diff": int(np.max(np.abs(res.astype(np.int16) - ref.astype(np.int16))))})
        del res
    # memory floor: bytes moved / copy bandwidth (np.copyto of a large buffer, read + write counted)
    n = max(32 << 20, min(256 << 20, 2 * nbytes)) // 8
    src = np.ones(n, np.float64)
    dst = np.empty_like(src)
    t = timeit(lambda: np.copyto(dst, src), repeats=max(3, repeats), warmup=1)
    per_byte = 1.0 / (2 * src.nbytes)  # seconds per byte moved = copy time / (read + write bytes)
    floor = t["median_s"] * per_byte * nbytes
    rows.append({"op": "window_fused", "impl": "memory floor (bytes / copy bandwidth)",
                 "median_s": floor, "p10_s": t["p10_s"] * per_byte * nbytes,
                 "p90_s": t["p90_s"] * per_byte * nbytes, "repeats": t["repeats"], "bytes": nbytes,
                 "shape": list(data.shape), "bandwidth_gb_s": 2 * src.nbytes / t["median_s"] / 1e9})
    for r in rows:
        r["ratio_to_floor"] = r["median_s"] / floor
    del src, dst
    rows += axis_rows(vol, repeats)
    if size >= 64:                     # a fresh process per operation: the first call with the disk cache warm
        rows += first_call_rows(size)
    return rows


def read_seconds_per_byte(nbytes: int, repeats: int) -> tuple[float, dict]:
    """Seconds per byte read by all cores (a parallel Numba sum of 64-bit words; numpy's single-threaded sum
    without Numba), over a buffer of ``nbytes``; and the timing dict."""
    buf = np.ones(max(1 << 20, nbytes) // 8, np.uint64)
    try:
        import numba

        @numba.njit(parallel=True, cache=False)
        def _read(a):
            acc = 0
            for i in numba.prange(a.shape[0]):
                acc += a[i]
            return acc

        fn = lambda: _read(buf)  # noqa: E731
    except ImportError:
        fn = lambda: np.add.reduce(buf)  # noqa: E731
    t = timeit(fn, repeats=max(3, repeats), warmup=1)
    return t["median_s"] / buf.nbytes, t


def axis_rows(vol, repeats: int) -> list[dict]:
    """Axis-aligned MIP along each array axis (stored int16, uniform rescale): gpukit numba (new output and
    ``out=`` reused), gpukit numpy, ``data.max(axis)``, and the read floor (the volume's bytes / read bandwidth)."""
    import gpukit
    from gpukit.backends import get_backend

    data = vol.data
    nbytes = int(data.nbytes)
    spb, tf = read_seconds_per_byte(nbytes, repeats)
    floor = spb * nbytes
    rows = []
    backends = gpukit.available_backends()
    for axis in (0, 1, 2):
        op = f"axis{axis}_mip"
        shape = [data.shape[1:], (data.shape[0], data.shape[2]), data.shape[:2]][axis]
        impls: list[tuple[str, Callable[[], object]]] = []
        if "numba" in backends:
            be = get_backend("numba")
            reuse = np.empty(shape, np.float32)
            impls.append(("gpukit numba", lambda a=axis: gpukit.project(vol, a, backend="numba")))
            impls.append(("gpukit numba, out= reused",
                          lambda a=axis, o=reuse, b=be: b.project_axis(data, vol.slopes, vol.intercepts, a, 0,
                                                                       data.shape[a], "max", o)))
        impls.append(("gpukit numpy", lambda a=axis: gpukit.project(vol, a, backend="numpy")))
        impls.append(("numpy data.max(axis) (stored values)", lambda a=axis: data.max(axis=a)))
        for name, fn in impls:
            t = timeit(fn, repeats=repeats, warmup=1)
            rows.append({"op": op, "impl": name, "median_s": t["median_s"], "p10_s": t["p10_s"], "p90_s": t["p90_s"],
                         "repeats": t["repeats"], "bytes": nbytes, "shape": list(data.shape),
                         "ratio_to_floor": t["median_s"] / floor})
        rows.append({"op": op, "impl": "read floor (bytes / read bandwidth, all cores)", "median_s": floor,
                     "p10_s": tf["p10_s"] * spb / tf["median_s"] * nbytes,
                     "p90_s": tf["p90_s"] * spb / tf["median_s"] * nbytes, "repeats": tf["repeats"], "bytes": nbytes,
                     "shape": list(data.shape), "bandwidth_gb_s": 1e-9 / spb, "ratio_to_floor": 1.0})
    return rows


#: the first call of each operation in a fresh process (Numba's disk cache warm): what a CLI or a script pays
FIRST_CALL_SCRIPT = """
import sys, time
t0 = time.perf_counter()
import numpy as np
import gpukit
t_import = time.perf_counter() - t0
size, op = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
data = rng.integers(0, 4096, (size, 512, 512), dtype=np.int16)
vol = gpukit.Volume(data, np.eye(4), {"rescale_slope": 1.0, "rescale_intercept": -1024.0})
out = np.empty(data.shape, np.uint8)
fns = {"window": lambda: gpukit.window(vol, 50, 400, backend="numba"),
       "window out=": lambda: gpukit.window(vol, 50, 400, backend="numba", out=out),
       "rescale": lambda: gpukit.rescale(vol, backend="numba"),
       "project axis 0": lambda: gpukit.project(vol, 0, backend="numba"),
       "project axis 1": lambda: gpukit.project(vol, 1, backend="numba"),
       "project axis 2": lambda: gpukit.project(vol, 2, backend="numba")}
t0 = time.perf_counter(); fns[op](); first = time.perf_counter() - t0
t0 = time.perf_counter(); fns[op](); second = time.perf_counter() - t0
print(first, second, t_import)
"""

FIRST_CALL_OPS = ("window", "window out=", "rescale", "project axis 0", "project axis 1", "project axis 2")


def first_call_rows(size: int) -> list[dict]:
    """One fresh interpreter per operation (after one to fill the disk cache): ``first_s`` is the first call
    (Numba's import and start-up, kernel loading from the disk cache, thread start, page faults, the work),
    ``median_s`` the second call, ``import_gpukit_s`` the ``import gpukit`` before."""
    import subprocess
    import sys

    rows = []
    for op in FIRST_CALL_OPS:
        cmd = [sys.executable, "-c", FIRST_CALL_SCRIPT, str(size), op]
        try:
            subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)   # fills the cache
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
            first, second, t_import = (float(v) for v in res.stdout.split()[-3:])
        except (subprocess.SubprocessError, ValueError, OSError) as exc:
            rows.append({"op": "first_call", "impl": f"gpukit numba {op}", "error": str(exc)[:200]})
            continue
        rows.append({"op": "first_call", "impl": f"gpukit numba {op}", "first_s": first, "median_s": second,
                     "p10_s": second, "p90_s": second, "repeats": 1, "import_gpukit_s": t_import,
                     "shape": [size, 512, 512]})
    return rows


__all__ = ["run", "ct_like_volume", "seed_way", "best_numpy"]
