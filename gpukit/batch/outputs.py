"""Producing a recipe's outputs for one loaded volume."""

from __future__ import annotations

import os
import time

import numpy as np

from . import writers
from ..arrays import to_host
from ..planes import cylinder_radius, extent_along
from .recipe import OutputSpec, Recipe


def _vol_ext(fmt: str) -> str:
    return {"nifti": ".nii.gz", "npy": ".npy", "zarr": ".zarr"}[fmt]


def _write_volume(vol, spec: OutputSpec, out_dir: str, hu: bool, root: str | None) -> list[str]:
    path = os.path.join(out_dir, spec.name + _vol_ext(spec.format))
    if spec.format == "nifti":
        return [writers.write_nifti(path, vol, hu=hu, root=root)]
    if spec.format == "zarr":
        return [writers.write_zarr(path, vol, hu=hu, root=root)]
    arr = vol.hu() if hu else vol.data
    return [writers.write_npy(path, to_host(arr), root=root)]


def _write_2d(image_hu: np.ndarray, spec: OutputSpec, out_dir: str, vol, backend, root: str | None,
              suffix: str = "", square_for: str | None = None, default_window=None) -> str:
    """Write a 2-D HU image: NPY as it is, PNG windowed (:func:`gpukit.render.display`).

    ``square_for``: the named projection whose pixels are stretched square for the PNG.
    """
    from ..render import display, to_square_pixels

    base = os.path.join(out_dir, spec.name + suffix)
    if spec.format == "npy":
        return writers.write_npy(base + ".npy", to_host(image_hu).astype(np.float32, copy=False), root=root)
    w = spec.params.get("window")
    win = tuple(w) if isinstance(w, list) else (w if w is not None else default_window)
    img = display(image_hu, win, vol, backend=backend)
    if square_for is not None:
        img = to_square_pixels(img, vol, square_for)
    return writers.write_png(base + ".png", img, root=root)


def produce(vol, recipe: Recipe, out_dir: str, backend: str | None = None,
            root: str | None = None) -> tuple[list[str], float, float]:
    """Compute and write every output; returns (paths, compute seconds, write seconds).

    ``root``: the output root; every path written is checked to stay inside it.
    """
    import gpukit
    from ..render import plane_for
    from ..safepath import confine

    if root is not None:
        out_dir = confine(root, out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths: list[str] = []
    compute = write = 0.0
    for spec in recipe.outputs:
        p = spec.params
        t0 = time.perf_counter()
        if spec.kind == "volume":
            t1 = time.perf_counter()
            paths += _write_volume(vol, spec, out_dir, hu=p["hu"], root=root)
        elif spec.kind == "resample":
            res = gpukit.regularize(vol, p["spacing_mm"], interp=p["interp"], backend=backend)
            t1 = time.perf_counter()
            paths += _write_volume(res, spec, out_dir, hu=False, root=root)
        elif spec.kind == "reslice":
            plane = plane_for(vol, p["plane"]).moved(p["offset_mm"])
            img = gpukit.reslice(vol, plane, interp=p["interp"], backend=backend)
            t1 = time.perf_counter()
            paths.append(_write_2d(img, spec, out_dir, vol, backend, root))
        elif spec.kind == "mip":
            img = gpukit.project(vol, p["plane"], mode=p["mode"], backend=backend)
            t1 = time.perf_counter()
            paths.append(_write_2d(img, spec, out_dir, vol, backend, root, square_for=p["plane"],
                                   default_window="auto"))
        elif spec.kind == "slab_mips":
            t1 = t0
            base = plane_for(vol, p["plane"])
            lo, hi = extent_along(vol, base.center, base.normal)
            th = float(p["thickness_mm"])
            offsets = np.arange(lo + th / 2, hi - th / 2 + 1e-6, float(p["step_mm"]))
            if offsets.size == 0:         # thinner than one slab: one slab through the centre
                offsets = np.array([(lo + hi) / 2])
            for n, off in enumerate(offsets):
                tc = time.perf_counter()
                img = gpukit.project(vol, base.moved(float(off)), mode=p["mode"], thickness_mm=th, backend=backend)
                compute += time.perf_counter() - tc
                tw = time.perf_counter()
                paths.append(_write_2d(img, spec, out_dir, vol, backend, root, suffix=f"_{n:03d}",
                                       default_window="auto"))
                write += time.perf_counter() - tw
            continue
        elif spec.kind == "rotating_mip":
            # frames of p["size"] pixels across the volume's bounding cylinder about the axis
            radius = cylinder_radius(vol, np.eye(3)["xyz".index(p["axis"])])
            spacing = max(2 * radius / max(p["size"] - 1, 1), float(min(vol.spacing)))
            frames = gpukit.rotating_mip(vol, p["frames"], axis=p["axis"], mode=p["mode"], spacing=spacing,
                                         backend=backend)
            from ..render import display

            w = p.get("window")
            frames8 = display(frames, tuple(w) if isinstance(w, list) else (w or "auto"), vol, backend=backend)
            t1 = time.perf_counter()
            paths.append(writers.write_gif(os.path.join(out_dir, spec.name + ".gif"), frames8, fps=p["fps"],
                                           root=root))
        else:  # pragma: no cover - recipes are validated
            raise ValueError(f"unknown output kind {spec.kind}")
        compute += t1 - t0
        write += time.perf_counter() - t1
    return paths, compute, write
