"""Timing helpers shared by the benchmark modules: warm up, repeat, report median and spread."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None) -> dict:
    """Median, p10 and p90 wall time (s) of ``fn`` over ``repeats`` runs after ``warmup`` runs.

    ``sync`` (e.g. a device synchronise) is called inside the timed region.
    """
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    a = np.asarray(times)
    return {"median_s": float(np.median(a)), "p10_s": float(np.percentile(a, 10)),
            "p90_s": float(np.percentile(a, 90)), "repeats": len(a)}


def copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Measured host memory copy bandwidth (bytes/s, counting read + write) with np.copyto."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    t = timeit(lambda: np.copyto(dst, src), repeats=repeats)
    return 2 * src.nbytes / t["median_s"]


def timeit_first_counts(fn: Callable[[], object], repeats: int) -> dict:
    """Median/p10/p90 over ``repeats`` runs.

    One untimed warm-up, unless the first run takes over 1 s: then it counts as a repeat.
    """
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = [first] if first > 1.0 else []
    while len(times) < max(1, repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    a = np.asarray(times)
    return {"median_s": float(np.median(a)), "p10_s": float(np.percentile(a, 10)),
            "p90_s": float(np.percentile(a, 90)), "repeats": int(a.size)}


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python/numpy allocators (tracemalloc) during one run of ``fn``."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
