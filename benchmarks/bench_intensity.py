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
result (the peers round differently: a unit or so is expected).
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
    """Time the fused window on a ``(size, 512, 512)`` volume; one dict per implementation."""
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
    rows.append({"op": "window_fused", "impl": "memory floor (bytes / copy bandwidth)",
                 "median_s": t["median_s"] * per_byte * nbytes, "p10_s": t["p10_s"] * per_byte * nbytes,
                 "p90_s": t["p90_s"] * per_byte * nbytes, "repeats": t["repeats"], "bytes": nbytes,
                 "shape": list(data.shape), "bandwidth_gb_s": 2 * src.nbytes / t["median_s"] / 1e9})
    return rows


__all__ = ["run", "ct_like_volume", "seed_way", "best_numpy"]
