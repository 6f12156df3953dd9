"""Producing a recipe's outputs for one loaded volume.

Windows follow the modality: ``ct_window`` applies to CT series only, ``window`` to every series; with neither,
a slice uses the file's own window (else a robust percentile window) and a projection a percentile window of
its own histogram. So the default recipe's CT presets (lung, bone) never whiten an MR series.

A 2-D output that makes no sense for a series (an axial stack of a 5-slice sagittal series: 42x5 px images) is
skipped, and the reason is returned for the manifest.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import writers
from ..arrays import to_host
from ..planes import cylinder_radius, extent_along
from .recipe import OutputSpec, Recipe


#: threads that encode and write a series' outputs while the next one is computed: Pillow's PNG encoder and
#: zlib's gzip release the GIL while they compress, so encoding overlaps the (nogil) kernels
WRITE_THREADS = 2


class _Writes:
    """Encoding and writing in background threads, results in recipe order.

    Each job runs in a copy of the caller's context (the run token of :func:`gpukit.safepath.write_token`
    names the temporaries). ``written`` gets each path as soon as it exists, so a failed series can remove
    them; :meth:`finish` waits for every job and raises the first error, in recipe order (:attr:`order`).
    """

    def __init__(self, written: list):
        self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="gpukit-write")
        self._futures: list = []
        self._written = written
        self._lock = threading.Lock()
        self.seconds = 0.0       # summed time of the jobs (they overlap the compute)
        self.order = 0           # the recipe position of the output being submitted: paths come back in it

    def submit(self, fn, *args, **kwargs) -> None:
        """Run ``fn(*args, **kwargs)`` in a writer thread; its paths are listed under the current :attr:`order`."""
        ctx = contextvars.copy_context()     # one copy per job: a context cannot be entered by two threads

        def job():
            t = time.perf_counter()
            try:
                out = ctx.run(fn, *args, **kwargs)
            finally:
                with self._lock:
                    self.seconds += time.perf_counter() - t
            for p in out if isinstance(out, list) else [out]:
                self._written.append(p)      # atomic under the GIL
            return out

        self._futures.append((self.order, len(self._futures), self._pool.submit(job)))

    def finish(self, raise_errors: bool = True) -> list[str]:
        """Wait for every job; the paths in :attr:`order` (then submission) order, or the first job's error."""
        self._pool.shutdown(wait=True)
        paths: list[str] = []
        for _, _, f in sorted(self._futures, key=lambda x: x[:2]):
            if not raise_errors and f.exception() is not None:
                continue
            out = f.result()
            paths += out if isinstance(out, list) else [out]
        return paths


#: a 2-D output narrower than this (in pixels, either way) is skipped for that series, with the reason
MIN_IMAGE_PX = 16


def _window_for(spec: OutputSpec, vol, fallback=None):
    """The window of a 2-D output: ``ct_window`` for CT, else ``window``, else ``fallback`` (None: the file's)."""
    p = spec.params
    w = None
    if str(vol.meta.get("modality") or "").upper() == "CT":
        w = p.get("ct_window")
    if w is None:
        w = p.get("window")
    if w is None:
        return fallback
    return tuple(w) if isinstance(w, list) else w


def why_skip(vol, spec: OutputSpec) -> str | None:
    """Why a 2-D output makes no sense for this series (None: it does): its images would be too small."""
    if spec.kind not in ("reslice", "mip", "slab_mips"):
        return None
    from ..render import plane_for

    plane = spec.params["plane"]
    rows, cols = plane_for(vol, plane).shape
    if min(rows, cols) >= MIN_IMAGE_PX:
        return None
    orient = vol.meta.get("orientation") or ""
    what = f"{vol.shape[0]}-slice {orient} series".replace("  ", " ")
    return (f"{plane} images of this {what} would be {cols}x{rows} px (under {MIN_IMAGE_PX} px across): "
            f"not written")


def _vol_ext(fmt: str) -> str:
    return {"nifti": ".nii.gz", "npy": ".npy", "zarr": ".zarr"}[fmt]


def _write_volume(writes: _Writes, vol, spec: OutputSpec, out_dir: str, hu: bool, root: str | None) -> None:
    path = os.path.join(out_dir, spec.name + _vol_ext(spec.format))
    if spec.format == "nifti":
        writes.submit(writers.write_nifti, path, vol, hu=hu, root=root)
    elif spec.format == "zarr":
        writes.submit(writers.write_zarr, path, vol, hu=hu, root=root)
    else:
        arr = vol.hu() if hu else vol.data
        writes.submit(writers.write_npy, path, to_host(arr), root=root)


def _write_2d(writes: _Writes, image_hu: np.ndarray, spec: OutputSpec, out_dir: str, vol, backend,
              root: str | None, suffix: str = "", square_for: str | None = None, default_window=None,
              projection: bool = False) -> None:
    """Write a 2-D HU image: NPY as it is, PNG windowed (:func:`gpukit.render.display`), here; the encoding and
    the write in ``writes``' threads.

    ``square_for``: the named projection whose pixels are stretched square for the PNG.
    """
    from ..render import display, to_square_pixels

    base = os.path.join(out_dir, spec.name + suffix)
    if spec.format == "npy":
        writes.submit(writers.write_npy, base + ".npy", to_host(image_hu).astype(np.float32, copy=False),
                      root=root)
        return
    win = _window_for(spec, vol, default_window)
    img = display(image_hu, win, vol, backend=backend, projection=projection)
    if square_for is not None:
        img = to_square_pixels(img, vol, square_for)
    writes.submit(writers.write_png, base + ".png", img, root=root)


#: output kinds whose write (a gzip-compressed volume: seconds) is the longest: computed first, so that their
#: writer thread runs beside the other outputs' compute instead of after it
LONG_WRITES = ("volume", "resample")


def compute_order(recipe: Recipe) -> list[int]:
    """The order in which :func:`produce` computes a recipe's outputs: the long writes first, else the recipe's."""
    return sorted(range(len(recipe.outputs)), key=lambda n: (recipe.outputs[n].kind not in LONG_WRITES, n))


def produce(vol, recipe: Recipe, out_dir: str, backend: str | None = None,
            root: str | None = None, written: list | None = None,
            skipped: list | None = None, compute_lock=None) -> tuple[list[str], float, float]:
    """Compute and write every output; returns (paths, compute seconds, write seconds).

    Outputs are computed here, one after the other (long writes first, :func:`compute_order`), while the
    previous ones are encoded and written in :data:`WRITE_THREADS` background threads; "write" is the time those
    threads spent (it overlaps "compute"). The paths come back in the recipe's order.
    ``root``: the output root; every path written is checked to stay inside it.
    ``written``: a list that gets each path as soon as it is written (so a caller can remove them again when a
    later output fails); every write has ended when this returns or raises. ``skipped``: a list that gets
    ``{"name", "kind", "reason"}`` for each output that makes no sense for this series (see :func:`why_skip`).
    ``compute_lock``: held while computing and released before waiting for the writes, so that a batch
    worker running several series at once computes one at a time (its kernels use all of the worker's
    cores) while another series is read and the one before is written. Its wait is not in "compute".
    """
    import contextlib

    from ..safepath import confine

    if root is not None:
        out_dir = confine(root, out_dir)
    os.makedirs(out_dir, exist_ok=True)
    writes = _Writes([] if written is None else written)
    todo = []
    for n, spec in enumerate(recipe.outputs):
        reason = why_skip(vol, spec)
        if reason is None:
            todo.append(n)
        elif skipped is not None:
            skipped.append({"name": spec.name, "kind": spec.kind, "reason": reason})
    todo = [n for n in compute_order(recipe) if n in todo]
    compute = 0.0
    try:
        with compute_lock if compute_lock is not None else contextlib.nullcontext():
            t0 = time.perf_counter()
            for n in todo:
                writes.order = n
                _produce_one(writes, vol, recipe.outputs[n], out_dir, backend, root)
            compute = time.perf_counter() - t0
    except BaseException:
        writes.finish(raise_errors=False)    # every write has ended (and is in ``written``) before the error
        raise
    paths = writes.finish()
    return paths, compute, writes.seconds


def _produce_one(writes: _Writes, vol, spec: OutputSpec, out_dir: str, backend, root) -> None:
    import gpukit
    from ..render import plane_for

    p = spec.params
    if spec.kind == "volume":
        _write_volume(writes, vol, spec, out_dir, hu=p["hu"], root=root)
    elif spec.kind == "resample":
        res = gpukit.regularize(vol, p["spacing_mm"], interp=p["interp"], backend=backend)
        _write_volume(writes, res, spec, out_dir, hu=False, root=root)
    elif spec.kind == "reslice":
        plane = plane_for(vol, p["plane"]).moved(p["offset_mm"])
        img = gpukit.reslice(vol, plane, interp=p["interp"], backend=backend)
        _write_2d(writes, img, spec, out_dir, vol, backend, root)
    elif spec.kind == "mip":
        img = gpukit.project(vol, p["plane"], mode=p["mode"], backend=backend)
        _write_2d(writes, img, spec, out_dir, vol, backend, root, square_for=p["plane"], default_window="auto",
                  projection=True)
    elif spec.kind == "slab_mips":
        base = plane_for(vol, p["plane"])
        lo, hi = extent_along(vol, base.center, base.normal)
        th = float(p["thickness_mm"])
        offsets = np.arange(lo + th / 2, hi - th / 2 + 1e-6, float(p["step_mm"]))
        if offsets.size == 0:         # thinner than one slab: one slab through the centre
            offsets = np.array([(lo + hi) / 2])
        for n, off in enumerate(offsets):
            img = gpukit.project(vol, base.moved(float(off)), mode=p["mode"], thickness_mm=th, backend=backend)
            _write_2d(writes, img, spec, out_dir, vol, backend, root, suffix=f"_{n:03d}", default_window="auto",
                      projection=True)
    elif spec.kind == "rotating_mip":
        from ..render import display

        # frames of p["size"] pixels across the volume's bounding cylinder about the axis
        radius = cylinder_radius(vol, np.eye(3)["xyz".index(p["axis"])])
        spacing = max(2 * radius / max(p["size"] - 1, 1), float(min(vol.spacing)))
        frames = gpukit.rotating_mip(vol, p["frames"], axis=p["axis"], mode=p["mode"], spacing=spacing,
                                     backend=backend)
        frames8 = display(frames, _window_for(spec, vol, "auto"), vol, backend=backend, projection=True)
        writes.submit(writers.write_gif, os.path.join(out_dir, spec.name + ".gif"), frames8, fps=p["fps"],
                      root=root)
    else:  # pragma: no cover - recipes are validated
        raise ValueError(f"unknown output kind {spec.kind}")
