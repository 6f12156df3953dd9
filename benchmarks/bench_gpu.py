"""GPU section: per operation, kernel-only time, host-to-device time and end-to-end time, beside the floor.

Runs only where a CUDA device and a GPU backend are present; elsewhere
:func:`run` raises ``ImportError`` with the reason, which the suite prints as
"section gpu skipped: ..." (nothing is estimated or invented here).

For each GPU backend (``cupy``, ``numba-cuda``) on a ``(size, size, size)``
int16 CT-like volume (the same data as the sampling section):

* kernel: the operation on a device-resident volume, timed with CUDA events
  around the call (warm-up first, median of the repeats);
* h2d: the upload of the stored volume from pinned host memory;
* end to end: host numpy volume in, host result out (upload, kernel,
  download), wall time with a device synchronise inside the timed region;
* floor: bytes the operation must move divided by the device's measured
  copy bandwidth (a device-to-device copy of a large buffer, read + write
  counted), and for h2d the pinned host-to-device bandwidth.

Every GPU result is compared with the numpy reference before its time is
reported (``max_abs_diff`` in the row).
"""

from __future__ import annotations

import time

import numpy as np


def _need_device():
    try:
        import cupy as cp
    except ImportError as exc:
        raise ImportError(f"CuPy is not installed ({exc})") from None
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        raise ImportError(f"no CUDA device ({type(exc).__name__}: {exc})") from None
    if n < 1:
        raise ImportError("no CUDA device")
    from gpukit.backends import available_backends

    gpus = [b for b in available_backends() if b in ("cupy", "numba-cuda")]
    if not gpus:
        raise ImportError("a CUDA device is present but no GPU backend is available (gpukit info says why)")
    return cp, gpus


def _events_median(cp, fn, repeats: int) -> float:
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(max(3, repeats)):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(cp.cuda.get_elapsed_time(a, b) / 1e3)
    return float(np.median(times))


def _wall_median(cp, fn, repeats: int) -> float:
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _bandwidths(cp) -> tuple[float, float]:
    """(device copy bandwidth, pinned host-to-device bandwidth) in bytes/s."""
    n = 512 << 20
    a = cp.empty(n // 2, cp.int16)
    b = cp.empty_like(a)
    d2d = _events_median(cp, lambda: b.__setitem__(Ellipsis, a), 5)
    host = cp.cuda.alloc_pinned_memory(n)
    h = np.frombuffer(host, np.int16, n // 2)
    h2d = _events_median(cp, lambda: a.set(h), 5)
    return 2 * n / d2d, n / h2d


def run(size: int = 512, repeats: int = 5) -> list[dict]:
    cp, gpus = _need_device()
    import gpukit
    from gpukit import Plane

    from .bench_sampling import ANGLES, SLAB_MM, ct_like_volume

    vol = ct_like_volume(size)
    n = size
    dev_bw, h2d_bw = _bandwidths(cp)
    data_bytes = vol.data.nbytes
    plane = Plane.rotated(vol, ANGLES, shape=(n, n), spacing=1.0)
    ref = {
        "window": gpukit.window(vol, 40, 400, backend="numpy"),
        "reslice": gpukit.reslice(vol, plane, backend="numpy"),
        "slab": gpukit.project(vol, plane, thickness_mm=SLAB_MM, backend="numpy"),
        "axis_mip": gpukit.project(vol, 0, backend="numpy"),
    }
    ops = {
        # name: (call on a volume, bytes the kernel must move at least)
        "window": (lambda v, be: gpukit.window(v, 40, 400, backend=be), data_bytes + vol.data.size),
        "reslice": (lambda v, be: gpukit.reslice(v, plane, backend=be), n * n * 4),
        "slab": (lambda v, be: gpukit.project(v, plane, thickness_mm=SLAB_MM, backend=be), n * n * 4),
        "axis_mip": (lambda v, be: gpukit.project(v, 0, backend=be), data_bytes + n * n * 4),
    }
    rows = []
    pinned = cp.cuda.alloc_pinned_memory(data_bytes)
    host = np.frombuffer(pinned, vol.data.dtype, vol.data.size).reshape(vol.data.shape)
    host[...] = vol.data
    d = cp.empty(vol.data.shape, vol.data.dtype)
    t_h2d = _events_median(cp, lambda: d.set(host), repeats)
    rows.append({"op": f"upload {n}^3 int16 (pinned)", "impl": "cupy ndarray.set", "median_s": t_h2d,
                 "p10_s": t_h2d, "p90_s": t_h2d, "floor_s": data_bytes / h2d_bw, "measured_on": "gpu"})
    for be in gpus:
        dvol = gpukit.Volume(d, vol.affine, vol.meta, backend=be)
        for name, (fn, nbytes) in ops.items():
            out = fn(dvol, be)
            got = cp.asnumpy(out) if hasattr(out, "__cuda_array_interface__") else np.asarray(out)
            err = float(np.max(np.abs(got.astype(np.float64) - ref[name].astype(np.float64))))
            t_k = _events_median(cp, lambda: fn(dvol, be), repeats)

            def e2e():
                dd = cp.asarray(vol.data)
                r = fn(gpukit.Volume(dd, vol.affine, vol.meta, backend=be), be)
                return cp.asnumpy(r) if hasattr(r, "__cuda_array_interface__") else r

            t_e = _wall_median(cp, e2e, repeats)
            rows.append({"op": f"GPU {name} ({n}^3 int16)", "impl": f"gpukit {be}, kernel (CUDA events)",
                         "median_s": t_k, "p10_s": t_k, "p90_s": t_k, "floor_s": nbytes / dev_bw,
                         "max_abs_diff": err, "measured_on": "gpu"})
            rows.append({"op": f"GPU {name} ({n}^3 int16)", "impl": f"gpukit {be}, end to end (host in/out)",
                         "median_s": t_e, "p10_s": t_e, "p90_s": t_e, "floor_s": data_bytes / h2d_bw,
                         "measured_on": "gpu"})
    for r in rows:
        r["device_copy_bandwidth_Bps"] = dev_bw
        r["h2d_bandwidth_Bps"] = h2d_bw
    return rows
