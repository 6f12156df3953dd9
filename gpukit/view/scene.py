"""The viewer's state and geometry, in Python: what each view shows is a :class:`~gpukit.Plane` built here.

One :class:`Scene` per browser tab. The page sends pointer input; the server
updates the scene and renders each view's plane through the public API, so
every frame the browser shows is, by construction, a call a Python user could
make (``tests/test_view.py`` checks the frames against those calls):

=========  ==================================================================
view       plane (``s``: the view's square pixel size in mm, ``(h, w)``: the canvas)
=========  ==================================================================
axial      ``Plane.axial(volume, position_mm=cross[2], shape=(h, w), spacing=s)``
coronal    ``Plane.coronal(volume, position_mm=cross[1], shape=(h, w), spacing=s)``
sagittal   ``Plane.sagittal(volume, position_mm=cross[0], shape=(h, w), spacing=s)``
oblique    ``Plane(c, R @ x, R @ y, (h, w), (s, s))``: ``R`` the oblique rotation (initially
           ``rotation_matrix(INITIAL_OBLIQUE_DEG)``), ``c`` the volume's centre moved along the normal
           ``n = R @ z`` to the crosshair: ``center + ((cross - center) . n) n``
spin       (rotating MIP in the oblique view) ``Plane(center, Rz(a) @ x, -z, (h, w), (s, s))``, full projection;
           ``a`` advances :data:`SPIN_STEP_DEG` a frame (frame 0 looks from the front, as :func:`gpukit.rotating_mip`)
=========  ==================================================================

``s`` fits the volume in the canvas: for a named view the larger of the
volume's extent (voxel centres) along ``u`` over ``w`` and along ``v`` over
``h``; for the oblique view its bounding-sphere diameter over ``min(w, h)``
(so it does not change while the plane turns).

Input:

* wheel: ``cross += steps * spacing_along(volume, n) * n`` (``n`` the view's normal), clamped to the volume's box;
* left click / drag in an orthogonal view: ``cross = plane.pixel_to_world((y, x))``;
* left drag in the oblique view, total displacement ``(dx, dy)`` px since the press, ``R0`` the rotation at the
  press, ``u0, v0`` its in-plane axes: ``R = axis_rotation(dy * u0 - dx * v0, |d| * DEG_PER_PX) @ R0``;
* right drag, same ``(dx, dy)``, ``(c0, w0)`` the window at the press:
  ``c = c0 - dy * k``, ``w = max(1, w0 + dx * k)``, ``k = max(w0, 1) / WINDOW_PX`` (up brightens, right widens);
* slab ``mm`` > 0 and mode max / min / mean: ``gpukit.project(volume, plane, mode=..., thickness_mm=mm)``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidParameterError
from ..planes import NAMED_AXES, Plane, axis_rotation, corners, rotation_matrix, spacing_along

VIEWS = ("axial", "coronal", "sagittal", "oblique")
ORTHO = VIEWS[:3]
POSITION_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}
#: degrees of oblique rotation per pixel of drag
DEG_PER_PX = 0.4
#: right-drag of WINDOW_PX pixels changes the window by its own width
WINDOW_PX = 256.0
INITIAL_OBLIQUE_DEG = (20.0, 30.0, 0.0)
SPIN_STEP_DEG = 6.0
MODES = ("max", "min", "mean")
MAX_SLAB_MM = 500.0
#: canvas size limits (device pixels per side)
MIN_SIZE, MAX_SIZE = 8, 4096

_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))   # +x, -x; +y, -y; +z, -z (DICOM LPS)


def direction_label(d) -> str:
    """Patient-orientation letters of an LPS direction, strongest first (components of at least 0.25):
    ``(1, 0, 0)`` -> ``"L"``, ``(0, -0.7, 0.7)`` -> ``"AS"`` (or ``"SA"``)."""
    d = np.asarray(d, dtype=np.float64)
    order = np.argsort(-np.abs(d), kind="stable")
    out = ""
    for ax in order:
        if abs(d[ax]) >= 0.25:
            out += _LETTERS[ax][0 if d[ax] > 0 else 1]
    return out


def edge_labels(plane: Plane) -> dict:
    """Letters at the left, right, top and bottom edges of an image of ``plane`` (columns along ``u``, rows
    along ``v``)."""
    return {"left": direction_label(-plane.u), "right": direction_label(plane.u),
            "top": direction_label(-plane.v), "bottom": direction_label(plane.v)}


@dataclass
class ViewState:
    size: tuple[int, int] | None = None      # (h, w) device pixels; None until the page says
    slab_mm: float = 0.0
    mode: str = "max"
    version: int = 0                           # bumped on every change that alters the image


@dataclass
class Scene:
    """One tab's views of a volume; every method is cheap (no rendering) and thread-safe."""

    volume: object
    window: tuple[float, float] = (40.0, 400.0)
    cross: np.ndarray = None                # type: ignore[assignment]
    rotation: np.ndarray = None             # type: ignore[assignment]
    views: dict = field(default_factory=lambda: {v: ViewState() for v in VIEWS})
    spin: bool = False
    spin_angle: float = 0.0
    input_id: int = 0                         # the last input message applied (the page's latency clock)
    _drag: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        v = self.volume
        self.center = np.asarray(v.center, dtype=np.float64)
        c = corners(v)
        self.box = (c.min(axis=0), c.max(axis=0))
        self.radius = float(np.max(np.linalg.norm(c - self.center, axis=1)))
        if self.cross is None:
            self.cross = self.center.copy()
        if self.rotation is None:
            self.rotation = rotation_matrix(INITIAL_OBLIQUE_DEG)

    # -- geometry -----------------------------------------------------------------------------------------------
    def spacing(self, name: str, size=None) -> float:
        """The square pixel size (mm) of view ``name`` at canvas ``size`` ``(h, w)``."""
        h, w = size or self.views[name].size
        if name == "oblique":
            return 2.0 * self.radius / min(h, w)
        u, vv = NAMED_AXES[name]
        c = corners(self.volume)
        ext_u = float(np.ptp(c @ u))
        ext_v = float(np.ptp(c @ vv))
        s = max(ext_u / w, ext_v / h)
        return s if s > 0 else float(min(self.volume.spacing))

    def plane(self, name: str, size=None) -> Plane:
        """The plane view ``name`` shows (see the module docstring)."""
        size = tuple(size or self.views[name].size)
        h, w = size
        s = self.spacing(name, size)
        if name in ORTHO:
            return getattr(Plane, name)(self.volume, position_mm=float(self.cross[POSITION_AXIS[name]]),
                                        shape=(h, w), spacing=s)
        if self.spin:
            R = axis_rotation((0.0, 0.0, 1.0), self.spin_angle)
            return Plane(self.center, R @ np.array([1.0, 0.0, 0.0]), (0.0, 0.0, -1.0), (h, w), (s, s))
        R = self.rotation
        n = R[:, 2]
        c = self.center + float((self.cross - self.center) @ n) * n
        return Plane(c, R[:, 0], R[:, 1], (h, w), (s, s))

    def cross_pixel(self, plane: Plane) -> tuple[float, float]:
        """``(x, y)`` pixel position (column, row) of the crosshair in an image of ``plane``."""
        d = self.cross - plane.origin
        dv, du = plane.spacing
        return float(d @ plane.u / du), float(d @ plane.v / dv)

    def _clamp(self, p: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(p, self.box[0]), self.box[1])

    # -- input --------------------------------------------------------------------------------------------------
    def _touch(self, names) -> None:
        for n in names:
            self.views[n].version += 1

    def _moved_cross(self) -> None:
        self._touch([n for n in VIEWS])

    def set_size(self, name: str, h: int, w: int) -> None:
        with self._lock:
            if self.views[name].size != (h, w):
                self.views[name].size = (h, w)
                self._touch([name])

    def scroll(self, name: str, steps: int) -> None:
        with self._lock:
            if name == "oblique" and self.spin:
                return
            n = self.plane(name, self.views[name].size or (1, 1)).normal
            step = spacing_along(self.volume, n)
            self.cross = self._clamp(self.cross + steps * step * n)
            self._moved_cross()

    def set_cross(self, name: str, x: float, y: float) -> None:
        with self._lock:
            if self.views[name].size is None or (name == "oblique" and self.spin):
                return
            p = self.plane(name).pixel_to_world([y, x])
            self.cross = self._clamp(np.asarray(p, dtype=np.float64))
            self._moved_cross()

    def rotate(self, phase: str, dx: float, dy: float) -> None:
        with self._lock:
            if phase == "start" or "rotation" not in self._drag:
                self._drag["rotation"] = self.rotation.copy()
            R0 = self._drag["rotation"]
            if phase != "start":
                self.rotation = drag_rotation(R0, dx, dy)
                self.spin = False
                self._touch(["oblique"])
            if phase == "end":
                self._drag.pop("rotation", None)

    def drag_window(self, phase: str, dx: float, dy: float) -> None:
        with self._lock:
            if phase == "start" or "window" not in self._drag:
                self._drag["window"] = self.window
            if phase != "start":
                self.window = drag_window(self._drag["window"], dx, dy)
                self._touch(VIEWS)
            if phase == "end":
                self._drag.pop("window", None)

    def set_window(self, c: float, w: float) -> None:
        with self._lock:
            self.window = (float(c), max(1.0, float(w)))
            self._touch(VIEWS)

    def set_slab(self, name: str, mm: float, mode: str) -> None:
        if mode not in MODES:
            raise InvalidParameterError(f"slab mode must be one of {MODES}, got {mode!r}")
        if not (0.0 <= mm <= MAX_SLAB_MM):
            raise InvalidParameterError(f"slab thickness must be 0..{MAX_SLAB_MM:g} mm, got {mm!r}")
        with self._lock:
            vs = self.views[name]
            vs.slab_mm, vs.mode = float(mm), mode
            self._touch([name])

    def set_spin(self, on: bool) -> None:
        with self._lock:
            self.spin = bool(on)
            self.spin_angle = 0.0
            self._touch(["oblique"])

    def advance_spin(self) -> None:
        with self._lock:
            self.spin_angle = (self.spin_angle + SPIN_STEP_DEG) % 360.0
            self._touch(["oblique"])

    def reset(self) -> None:
        with self._lock:
            self.cross = self.center.copy()
            self.rotation = rotation_matrix(INITIAL_OBLIQUE_DEG)
            self.spin = False
            self._touch(VIEWS)

    # -- a consistent snapshot for one render -----------------------------------------------------------------
    def snapshot(self, name: str) -> dict | None:
        """Everything a render of view ``name`` needs, taken under the lock (None until its size is known)."""
        with self._lock:
            vs = self.views[name]
            if vs.size is None:
                return None
            plane = self.plane(name)
            spin = name == "oblique" and self.spin
            return {"view": name, "plane": plane, "version": vs.version, "window": self.window,
                    "slab_mm": None if spin else vs.slab_mm, "mode": vs.mode if not spin else "max",
                    "spin": spin, "cross_px": None if spin else self.cross_pixel(plane),
                    "cross": self.cross.copy(), "input_id": self.input_id}


def drag_rotation(R0: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The oblique rotation after a drag of ``(dx, dy)`` pixels from rotation ``R0`` (see the module docstring)."""
    d = math.hypot(dx, dy)
    if d == 0:
        return np.array(R0, dtype=np.float64)
    axis = dy * R0[:, 0] - dx * R0[:, 1]
    return axis_rotation(axis, d * DEG_PER_PX) @ R0


def drag_window(w0: tuple[float, float], dx: float, dy: float) -> tuple[float, float]:
    """The window after a right-drag of ``(dx, dy)`` pixels from window ``w0 = (center, width)``."""
    c0, wd0 = w0
    k = max(wd0, 1.0) / WINDOW_PX
    return float(c0 - dy * k), float(max(1.0, wd0 + dx * k))


__all__ = ["Scene", "ViewState", "VIEWS", "direction_label", "edge_labels", "drag_rotation", "drag_window",
           "DEG_PER_PX", "WINDOW_PX", "INITIAL_OBLIQUE_DEG", "SPIN_STEP_DEG"]
