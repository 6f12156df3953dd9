"""Frames for the viewer: a view's plane (or slab) through a resident volume, windowed, encoded.

:class:`FrameRenderer` holds the one resident volume and its :class:`~gpukit.Reslicer`; it is called from
the server's worker threads (the Reslicer is thread-safe; the other backend calls take the same lock the
Reslicer takes where the backend cannot run two kernels at once).
"""

from __future__ import annotations

import io
import time

import numpy as np

from ..backends import get_backend, resolve_name
from ..backends.codes import SLICE_ORDER
from ..planes import Plane
from .scene import edge_labels

#: PNG (lossless, zlib level 1: the fastest) for a settled view; JPEG or WebP while it moves
LOSSY_FORMATS = ("jpeg", "webp")
JPEG_QUALITY = 85
WEBP_QUALITY = 80


def _lock_for(be):
    # the lock the Reslicer serialises on where the backend's runtime cannot run two kernels at once
    from ..ops.reslicer import _serialising_lock

    return _serialising_lock(be)


def encode(u8: np.ndarray, fmt: str) -> bytes:
    """``u8`` (2-D uint8) as PNG, JPEG or WebP bytes."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(u8), mode="L") if u8.ndim == 2 else Image.fromarray(u8)
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=1)
    elif fmt == "jpeg":
        im.save(buf, "JPEG", quality=JPEG_QUALITY)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=WEBP_QUALITY, method=0)
    else:
        raise ValueError(f"unknown frame format {fmt!r}")
    return buf.getvalue()


def slab_step(volume, slab_mm: float, lossy: bool) -> float:
    """Ray step (mm) of a slab: the volume's smallest voxel size when settled; while the view moves,
    ``slab_mm / 16`` kept between that and 1 mm (a cheaper preview; the settled PNG uses the full step). A
    slice-order preview (:attr:`FrameRenderer.preview_order`) has no step: one sample per slice crossed."""
    fine = float(min(volume.spacing))
    if not lossy:
        return fine
    return max(fine, min(1.0, slab_mm / 16.0))


class FrameRenderer:
    """Renders scene snapshots (:meth:`gpukit.view.scene.Scene.snapshot`) to encoded frames.

    Slabs and the spinning MIP sent while a view moves (lossy frames) are projected in slice order
    (``order="slice"``, shear-warp: several times faster on the CPU, a close approximation) where the backend has
    it (``preview_order``); a settled view's PNG is always the ray-order reference, so what the user studies is
    the reference. Frame headers carry the ``order`` they were made with.
    """

    def __init__(self, volume, backend: str | None = None, interp: str = "linear"):
        from ..ops.reslicer import Reslicer

        self.backend = resolve_name(backend, volume)
        be = get_backend(self.backend)
        if be.location == "device" and not be.owns(volume.data):
            volume = volume.to(self.backend)           # resident on the GPU: uploaded once, never again
        self.volume = volume
        self.interp = interp
        self._be = be
        self.reslicer = Reslicer(volume, backend=self.backend, interp=interp)
        self._lock = _lock_for(be)
        #: projection order of lossy (moving) slab and spin frames
        self.preview_order = "slice" if be.has(SLICE_ORDER) else "ray"
        # compile (or load) the projection and window kernels now, not on the first slab
        for order in {"ray", self.preview_order}:
            self.image_hu(Plane.axial(volume, shape=(2, 2)), 2.0, "max", step=float(min(volume.spacing)), order=order)
        self.to_u8(self.reslicer.reslice(Plane.axial(volume, shape=(2, 2))), (40.0, 400.0))

    def image_hu(self, plane: Plane, slab_mm: float | None, mode: str, step: float | None = None,
                 order: str = "ray"):
        """The HU image of ``plane``: a reslice (``slab_mm`` 0), a slab projection, or a full one (None), the
        projections in ``order`` ("ray" or "slice")."""
        if slab_mm is not None and slab_mm <= 0:
            return self.reslicer.reslice(plane)
        from ..ops.sampling import project

        with self._lock:
            return project(self.volume, plane, mode=mode, thickness_mm=slab_mm, interp=self.interp, step_mm=step,
                           backend=self.backend, order=order)

    def to_u8(self, hu, window) -> np.ndarray:
        from ..render import display

        with self._lock:
            return display(hu, (float(window[0]), float(window[1])), self.volume, backend=self.backend)

    def render(self, snap: dict, fmt: str) -> tuple[dict, bytes]:
        """``(header, encoded image)`` of a snapshot; ``fmt`` "png", "jpeg" or "webp"."""
        t0 = time.perf_counter()
        plane: Plane = snap["plane"]
        lossy = fmt != "png"
        slab = snap["slab_mm"]
        step = None
        order = self.preview_order if lossy else "ray"
        if snap["spin"]:
            step = max(float(min(self.volume.spacing)), 1.0)
            hu = self.image_hu(plane, None, "max", step, order)
        elif slab and slab > 0:
            step = slab_step(self.volume, slab, lossy)
            hu = self.image_hu(plane, slab, snap["mode"], step, order)
        else:
            order = None
            hu = self.image_hu(plane, 0.0, "max")
        u8 = self.to_u8(hu, snap["window"])
        t1 = time.perf_counter()
        data = encode(u8, fmt)
        t2 = time.perf_counter()
        h, w = plane.shape
        header = {
            "t": "frame", "view": snap["view"], "version": snap["version"], "fmt": fmt, "w": w, "h": h,
            "input_id": snap["input_id"], "window": list(snap["window"]),
            "plane": {"center": plane.center.tolist(), "u": plane.u.tolist(), "v": plane.v.tolist(),
                      "spacing": list(plane.spacing), "shape": [h, w]},
            "slab_mm": slab if slab else 0.0, "mode": snap["mode"], "order": order,
            "step_mm": step if order == "ray" else None, "spin": snap["spin"],
            "labels": edge_labels(plane), "cross_px": snap["cross_px"], "cross": snap["cross"].tolist(),
            "render_ms": (t1 - t0) * 1e3, "encode_ms": (t2 - t1) * 1e3,
        }
        return header, data

    def probe(self, plane: Plane, x: float, y: float, slab_mm: float | None, mode: str, spin: bool) -> dict:
        """The LPS position of pixel ``(x, y)`` of ``plane`` and the image value there (HU)."""
        from ..arrays import to_host

        p = plane.pixel_to_world([y, x])
        inside = bool(np.all(np.abs(self.volume.world_to_index([p])[0] -
                                    (np.array(self.volume.shape[::-1]) - 1) / 2) <=
                             (np.array(self.volume.shape[::-1]) - 1) / 2 + 1e-6))
        one = Plane(p, plane.u, plane.v, (1, 1), plane.spacing)
        if spin:
            val = self.image_hu(one, None, "max", max(float(min(self.volume.spacing)), 1.0))
        else:
            val = self.image_hu(one, slab_mm or 0.0, mode)
        v = float(np.asarray(to_host(val)).reshape(-1)[0])
        return {"lps": [float(c) for c in p], "hu": v if np.isfinite(v) else None, "inside": inside}


__all__ = ["FrameRenderer", "encode", "slab_step", "LOSSY_FORMATS"]
