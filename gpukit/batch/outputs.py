"""Producing a recipe's outputs for one loaded volume."""

from __future__ import annotations

import os
import time

import numpy as np

from . import writers
from .recipe import OutputSpec, Recipe


def _vol_ext(fmt: str) -> str:
    return {"nifti": ".nii.gz", "npy": ".npy", "zarr": ".zarr"}[fmt]


def _write_volume(vol, spec: OutputSpec, out_dir: str, hu: bool) -> list[str]:
    path = os.path.join(out_dir, spec.name + _vol_ext(spec.format))
    if spec.format == "nifti":
        return [writers.write_nifti(path, vol, hu=hu)]
    if spec.format == "zarr":
        return [writers.write_zarr(path, vol, hu=hu)]
    arr = vol.hu() if hu else vol.to_numpy()
    return [writers.write_npy(path, np.asarray(arr))]


def _write_2d(image_hu: np.ndarray, spec: OutputSpec, out_dir: str, vol, backend, suffix: str = "") -> str:
    from ..ops.intensity import window

    base = os.path.join(out_dir, spec.name + suffix)
    if spec.format == "npy":
        return writers.write_npy(base + ".npy", image_hu)
    w = spec.params.get("window")
    kw = {"preset": w} if isinstance(w, str) else ({"center": w[0], "width": w[1]} if w else {})
    if not kw:  # the file's own window
        wc, ww = vol.meta.get("window_center"), vol.meta.get("window_width")
        if wc and ww:
            kw = {"center": wc[0], "width": ww[0]}
        else:  # no window anywhere: the full range of the image
            lo, hi = float(np.nanmin(image_hu)), float(np.nanmax(image_hu))
            kw = {"center": (lo + hi) / 2, "width": max(hi - lo, 1.0)}
    img = window(np.asarray(image_hu, dtype=np.float32), backend=backend, **kw)
    return writers.write_png(base + ".png", np.asarray(img))


def produce(vol, recipe: Recipe, out_dir: str, backend: str | None = None) -> tuple[list[str], float, float]:
    """Compute and write every output; returns (paths, compute seconds, write seconds)."""
    import gpukit

    if any(o.kind not in ("volume",) for o in recipe.outputs):
        from ..planes import Plane
    os.makedirs(out_dir, exist_ok=True)
    paths: list[str] = []
    compute = write = 0.0
    for spec in recipe.outputs:
        p = spec.params
        t0 = time.perf_counter()
        if spec.kind == "volume":
            t1 = time.perf_counter()
            paths += _write_volume(vol, spec, out_dir, hu=p["hu"])
        elif spec.kind == "resample":
            res = gpukit.resample_isotropic(vol, p["spacing_mm"], interp=p["interp"], backend=backend)
            t1 = time.perf_counter()
            paths += _write_volume(res, spec, out_dir, hu=False)
        elif spec.kind == "reslice":
            plane = getattr(Plane, p["plane"])(vol, offset_mm=p["offset_mm"])
            img = gpukit.reslice(vol, plane, interp=p["interp"], backend=backend)
            t1 = time.perf_counter()
            paths.append(_write_2d(img, spec, out_dir, vol, backend))
        elif spec.kind == "mip":
            img = gpukit.project(vol, getattr(Plane, p["plane"])(vol), mode=p["mode"], backend=backend)
            t1 = time.perf_counter()
            paths.append(_write_2d(img, spec, out_dir, vol, backend))
        elif spec.kind == "slab_mips":
            t1 = t0
            base = getattr(Plane, p["plane"])(vol)
            lo, hi = base.extent_along_normal(vol)
            n = 0
            for off in np.arange(lo + p["thickness_mm"] / 2, hi - p["thickness_mm"] / 2 + 1e-6, p["step_mm"]):
                tc = time.perf_counter()
                plane = getattr(Plane, p["plane"])(vol, offset_mm=float(off))
                img = gpukit.project(vol, plane, mode=p["mode"], thickness_mm=p["thickness_mm"], backend=backend)
                compute += time.perf_counter() - tc
                tw = time.perf_counter()
                paths.append(_write_2d(img, spec, out_dir, vol, backend, suffix=f"_{n:03d}"))
                write += time.perf_counter() - tw
                n += 1
            continue
        elif spec.kind == "rotating_mip":
            frames = gpukit.rotating_mip(vol, p["frames"], axis=p["axis"], mode=p["mode"],
                                         shape=(p["size"], p["size"]), backend=backend)
            from ..ops.intensity import window

            w = p.get("window")
            kw = {"preset": w} if isinstance(w, str) else ({"center": w[0], "width": w[1]} if w else {})
            frames8 = np.asarray(window(np.asarray(frames, dtype=np.float32), backend=backend, **kw))
            t1 = time.perf_counter()
            paths.append(writers.write_gif(os.path.join(out_dir, spec.name + ".gif"), frames8, fps=p["fps"]))
        else:  # pragma: no cover - recipes are validated
            raise ValueError(f"unknown output kind {spec.kind}")
        compute += t1 - t0
        write += time.perf_counter() - t1
    return paths, compute, write
