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
reported (``max_abs_diff`` in the row). With a device, the cupy backend's
float32 sampler (``precision="fast"``, ``kernels/sample_fast.cu``) is timed
beside the exact one for the reslice and the slab.

Without a device, :func:`fast_precision_report` (``python -m
benchmarks.bench_gpu``) gives what can be said of the float32 sampler here:
its *estimated* bytes and floating-point operations per sample and per image
(counted from the kernel source, labelled ``"estimate, not measured"``: no
GPU ran them) and its *measured* accuracy on the host stand-in (the very
``.cu`` sources on the CPU through the host shim): max and median absolute
difference from the float64 numpy reference.
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


# -- the float32 sampler: estimates (no device needed) and host stand-in accuracy ----------------------------------
#: floating-point operations of one sample, counted from kernels/gpukit_common.cuh and kernels/*.cu (per
#: precision and interpolation; "fp64"/"fp32" are arithmetic instructions, fma counted once; the fast kernels'
#: coordinates are integer adds, counted under "int"). Static counts of the source: an estimate, not a profile.
OPS_PER_SAMPLE = {
    # exact: x, y, z = (bx + a*s) + b (2 mul... 3 x (mul + 2 add)), inside test (6 compares), clamp (6 compares),
    # floor (3), fractions (3 sub), 7 blends (sub, mul, add) = 21, uniform rescale (mul, add)
    ("exact", "linear"): {"fp64": 9 + 6 + 6 + 3 + 3 + 21 + 2, "fp32": 0, "int": 14},
    # fast: 3 coordinate steps (int64 add) + inside (6 int64 compares) + clamp (6) + shifts (6), 3 fraction
    # conversions and scalings, 7 blends (sub + fma), uniform rescale once per output (1 fma)
    ("fast", "linear"): {"fp64": 0, "fp32": 3 * 2 + 7 * 2 + 1, "int": 3 * 2 + 6 * 2 + 6 * 2 + 6 + 14},
    ("exact", "nearest"): {"fp64": 9 + 6 + 6 + 3 * 3 + 2, "fp32": 0, "int": 6},
    ("fast", "nearest"): {"fp64": 0, "fp32": 1, "int": 3 * 2 + 6 * 2 + 6 * 2 + 6 * 2 + 6},
}
#: fp64 : fp32 arithmetic throughput by GPU family (vendor architecture documents; an assumption, not measured)
FP64_RATIO = {"L4 / RTX (Ada)": 1 / 64, "A10 (GA102)": 1 / 32, "A100 / H100 / H200": 1 / 2}


def fast_precision_estimates(size: int = 512) -> list[dict]:
    """Estimated (not measured: no GPU ran them) bytes and floating-point operations of the exact and the fast
    sampler for a ``size``-square oblique reslice and a full oblique MIP of a ``size``^3 int16 volume.

    ``bytes_requested``: 8 stored values per trilinear sample (1 for nearest) through the read-only cache plus
    the output; ``bytes_dram_floor``: each output once plus the volume footprint (a reslice touches about two
    slices' worth of voxels along its path, a full MIP the whole volume); ``relative_arith_time``: arithmetic
    time in fp32-instruction units per GPU family (fp32 and integer instructions 1 each, fp64 ones 1 / ratio).
    """
    itemsize = 2
    n = int(size)
    cases = {
        "reslice": (n * n, 1, n * n * 4, 2 * n * n * itemsize),
        "oblique MIP": (n * n, n, n * n * 4, n * n * n * itemsize),
    }
    rows = []
    for op, (outputs, steps, out_bytes, footprint) in cases.items():
        for interp in ("linear", "nearest"):
            for precision in ("exact", "fast"):
                ops = OPS_PER_SAMPLE[(precision, interp)]
                samples = outputs * steps
                reads = 8 if interp == "linear" else 1
                row = {
                    "op": f"{op} {n}^2 x {steps} ({interp}, int16)", "precision": precision,
                    "measured_on": "estimate, not measured (counted from the kernel source; no GPU ran it)",
                    "samples": samples,
                    "bytes_requested": samples * reads * itemsize + out_bytes,
                    "bytes_dram_floor": out_bytes + footprint,
                    "fp64_ops": samples * ops["fp64"], "fp32_ops": samples * ops["fp32"],
                    "int_ops": samples * ops["int"],
                    "relative_arith_time": {g: samples * (ops["fp32"] + ops["int"] + ops["fp64"] / r)
                                            for g, r in FP64_RATIO.items()},
                }
                rows.append(row)
    return rows


def fast_precision_accuracy(size: int = 64) -> list[dict]:
    """Measured on the host stand-in (the ``.cu`` kernels on the CPU through the host shim): max and median
    |fast - float64 reference| in HU on a ``size``^3 CT-like int16 volume (intercept -1024), for a reslice,
    a 20 mm slab (max, mean) and a full oblique MIP, linear and nearest. Needs a C++ compiler (g++)."""
    from gpukit import Plane
    from gpukit.backends.cuda.kernels import CudaKernels
    from gpukit.backends.cuda_host import shim
    from gpukit.backends.numpy import sampler as np_sampler
    from gpukit.ops.sampling import index_map

    from .bench_sampling import ANGLES, SLAB_MM, ct_like_volume

    if not shim.is_available():
        raise ImportError("; ".join(shim.missing_dependencies()))
    vol = ct_like_volume(size)
    n = size
    k = CudaKernels(shim.HostLauncher())
    plane = Plane.rotated(vol, ANGLES, shape=(n, n), spacing=1.0)
    cases = {"reslice": ("none", 1, 1.0), f"slab max {SLAB_MM:g} mm": ("max", int(SLAB_MM * 2), 0.5),
             f"slab mean {SLAB_MM:g} mm": ("mean", int(SLAB_MM * 2), 0.5),
             "oblique MIP (whole volume)": ("max", int(2 * n), 1.0)}
    fill = -2000.0
    rows = []
    for name, (mode, ns, step) in cases.items():
        A, b = index_map(vol.affine, plane.grid_affine(ns, step))
        grid = (ns, n, n)
        shape = grid if mode == "none" else grid[1:]
        for interp in ("linear", "nearest"):
            ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill,
                                         np.empty(shape, np.float32))
            got = k.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, interp, fill,
                                np.empty(shape, np.float32), precision="fast")
            inside = ref != np.float32(fill)
            d = np.abs(got[inside].astype(np.float64) - ref[inside].astype(np.float64))
            rows.append({"op": f"{name} {n}^2 ({interp})", "precision": "fast",
                         "measured_on": "host stand-in (kernels/sample_fast.cu through the host shim, CPU)",
                         "samples_compared": int(inside.sum()),
                         "fill_mask_equal": bool(np.array_equal(inside, got != np.float32(fill))),
                         "max_abs_diff_hu": float(d.max()) if d.size else 0.0,
                         "median_abs_diff_hu": float(np.median(d)) if d.size else 0.0})
    return rows


def fast_precision_report(size: int = 64, estimate_size: int = 512) -> dict:
    """:func:`fast_precision_estimates` (labelled estimates) and :func:`fast_precision_accuracy` (measured on
    the host stand-in), with the error bound the kernels state."""
    return {
        "bound": "|fast - exact| <= 2**-20 (V |slope| + |intercept|) + 3 d G + 1 float32 ulp; <= 0.01 HU for "
                 "trilinear on int16 CT (|stored| < 4096); nearest: the reference's voxel "
                 "(gpukit.backends.cuda.kernels.CudaKernels)",
        "estimates": fast_precision_estimates(estimate_size),
        "host_standin_accuracy": fast_precision_accuracy(size),
    }


def _fast_rows(cp, vol, plane, size, repeats):
    """cupy: kernel time of the exact and the fast sampler (CUDA events) for the reslice and the slab."""
    from gpukit.backends.cupy import launcher
    from gpukit.backends.numpy import sampler as np_sampler
    from gpukit.ops.sampling import index_map

    from .bench_sampling import SLAB_MM

    k = launcher.kernels()
    dev = cp.asarray(vol.data)
    rows = []
    for name, (mode, ns, step) in {"reslice": ("none", 1, 1.0), "slab": ("max", int(SLAB_MM * 2), 0.5)}.items():
        A, b = index_map(vol.affine, plane.grid_affine(ns, step))
        grid = (ns, size, size)
        shape = grid if mode == "none" else grid[1:]
        ref = np_sampler.sample_grid(vol.data, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", -2000.0,
                                     np.empty(shape, np.float32))
        for precision in ("exact", "fast"):
            out = cp.empty(shape, np.float32)

            def call():
                k.sample_grid(dev, vol.slopes, vol.intercepts, A, b, grid, mode, "linear", -2000.0, out,
                              precision=precision)

            t_k = _events_median(cp, call, repeats)
            err = float(np.max(np.abs(out.get().astype(np.float64) - ref)))
            rows.append({"op": f"GPU sampler {name} ({size}^3 int16)", "impl": f"gpukit cupy, {precision} (kernel)",
                         "median_s": t_k, "p10_s": t_k, "p90_s": t_k, "floor_s": None, "max_abs_diff": err,
                         "measured_on": "gpu"})
    return rows


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
    if "cupy" in gpus:
        rows += _fast_rows(cp, vol, plane, n, repeats)
    for r in rows:
        r["device_copy_bandwidth_Bps"] = dev_bw
        r["h2d_bandwidth_Bps"] = h2d_bw
    return rows


if __name__ == "__main__":      # python -m benchmarks.bench_gpu [size]: the float32 sampler's report, no GPU needed
    import json
    import sys

    print(json.dumps(fast_precision_report(int(sys.argv[1]) if len(sys.argv) > 1 else 64), indent=1))
