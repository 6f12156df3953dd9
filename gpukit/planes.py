"""Planes in patient space: where a reslice, a slab or a projection is taken.

A :class:`Plane` is a rectangle of pixels in DICOM LPS millimetres: a centre,
two in-plane unit directions ``u`` (along a row, i.e. to the next column) and
``v`` (down a column, i.e. to the next row), an output ``shape`` ``(nrows,
ncols)`` and a pixel ``spacing`` ``(dv, du)`` in mm (the DICOM ``PixelSpacing``
order: row spacing first). The normal is ``n = u x v``.

Display conventions (the DICOM defaults, so an image from gpukit looks like
the scanner's own):

============  ===================  ===================  ==================
constructor   ``u`` (columns, ->)   ``v`` (rows, down)   normal ``u x v``
============  ===================  ===================  ==================
axial         +x (patient left)    +y (anterior->post)  +z (head)
coronal       +x (patient left)    -z (head->feet)      +y (posterior)
sagittal      +y (anterior->post)  -z (head->feet)      -x (patient right)
============  ===================  ===================  ==================

Axial and coronal images are in the radiological convention: the patient's
left is on the image's right (as if facing the patient, or looking up from
the feet), which is DICOM ``ImageOrientationPatient`` ``[1,0,0, 0,1,0]`` and
``[1,0,0, 0,0,-1]``. Sagittal is ``[0,1,0, 0,0,-1]``: anterior on the left.

The output grid of a plane is indexed ``(c, r, s)`` exactly like a volume's
``(i, j, k)``: :attr:`Plane.affine` maps ``(c, r, s, 1)`` to LPS with
``s`` in mm along the normal (0 on the plane), so a one-slice grid of the
plane is a :class:`~gpukit.Volume` geometry and a slab is a few steps of ``s``.

Examples
--------
>>> import numpy as np
>>> from gpukit import Volume
>>> vol = Volume(np.zeros((3, 4, 5), np.int16), np.diag([0.5, 0.5, 2.0, 1.0]))
>>> p = Plane.axial(vol, position_mm=2.0)
>>> p.shape, p.spacing, p.center
((4, 5), (0.5, 0.5), array([1.  , 0.75, 2.  ]))
>>> p.affine @ [0, 0, 0, 1]        # first pixel lands on voxel (0, 0, 1)
array([0., 0., 2., 1.])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import geometry
from .errors import InvalidParameterError, ParameterTypeError

_X, _Y, _Z = np.eye(3)

#: (u, v) of the named planes; the normal is u x v.
NAMED_AXES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "axial": (_X, _Y),
    "coronal": (_X, -_Z),
    "sagittal": (_Y, -_Z),
}
#: The LPS axis (0 = x, 1 = y, 2 = z) that ``position_mm`` of a named plane is measured along.
NAMED_POSITION_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def _vec3(v, name: str) -> np.ndarray:
    """``v`` as 3 finite floats, or an error that says what was given (plain numbers, not ``np.float64(...)``)."""
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be 3 numbers, got {v!r}") from None
    if a.size != 3:
        raise InvalidParameterError(f"{name} must be 3 numbers (x, y, z), got {a.size}: {a.ravel().tolist()}")
    a = a.reshape(3)
    if not np.all(np.isfinite(a)):
        raise InvalidParameterError(f"{name} must be finite, got {a.tolist()}")
    return a


def _unit(v, name: str) -> np.ndarray:
    a = _vec3(v, name)
    m = float(np.max(np.abs(a)))
    n = m * float(np.linalg.norm(a / m)) if m > 0 else 0.0     # scaled first: (1e300, 1e300, 0) does not overflow
    if n < 1e-12:
        raise InvalidParameterError(f"{name} must be a non-zero 3-vector, got {a.tolist()}")
    a = a / m
    return a / np.linalg.norm(a)


def _pair(x, name: str) -> tuple[float, float]:
    try:
        if x is None or isinstance(x, (str, bytes)) or np.iscomplexobj(x):
            raise TypeError(name)
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number or a pair of numbers, got {x!r}") from None
    if a.ndim == 0:
        return (float(a), float(a))
    t = tuple(float(e) for e in a.ravel())
    if len(t) != 2:
        raise InvalidParameterError(f"{name} must be a number or a pair, got {x!r}")
    return t  # type: ignore[return-value]


def _spacing_pair(x, name: str = "spacing") -> tuple[float, float]:
    """``(dv, du)`` as two positive finite numbers (mm), or an error naming the value."""
    sp = _pair(x, name)
    if not (min(sp) > 0 and np.all(np.isfinite(sp))):
        raise InvalidParameterError(f"plane {name} must be positive finite mm, got {sp[0]:g}, {sp[1]:g}")
    return sp


def _shape_pair(shape, name: str = "shape") -> tuple[int, int]:
    """``(nrows, ncols)`` as two integers >= 1 (whole numbers given as floats are accepted), or an error."""
    out = []
    try:
        items = [] if shape is None or isinstance(shape, (str, bytes)) else np.asarray(shape, dtype=object).ravel()
        for e in items:
            if isinstance(e, (int, np.integer)) and not isinstance(e, (bool, np.bool_)):
                out.append(int(e))          # Python ints of any size: a huge plane is refused by the operation
            elif isinstance(e, (float, np.floating)) and np.isfinite(e) and float(e) == round(float(e)):
                out.append(int(e))
            else:
                break
    except (TypeError, ValueError):
        out = []
    if len(out) != 2 or len(items) != 2 or min(out) < 1:
        raise InvalidParameterError(f"plane {name} must be (nrows, ncols), two whole numbers >= 1, got {shape!r}")
    if max(out) > 2 ** 62:
        raise InvalidParameterError(f"plane {name} {shape!r} is beyond any output (at most 2**62 pixels a side)")
    return tuple(out)  # type: ignore[return-value]


def _finite(x, name: str) -> float:
    """``x`` as a finite float, or an error naming it."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"{name} must be a number, got {x!r}")
    f = float(x)
    if not np.isfinite(f):
        raise InvalidParameterError(f"{name} must be finite, got {f}")
    return f


def _check_volume(volume) -> None:
    """A :class:`~gpukit.Volume` (duck-typed: planes do not import it), else a typed error naming what came."""
    if not all(hasattr(volume, a) for a in ("affine", "shape", "center", "spacing")):
        raise ParameterTypeError(f"volume must be a gpukit.Volume, got {type(volume).__name__}")


def corners(volume) -> np.ndarray:
    """LPS positions of the 8 corner voxel centres of ``volume``, shape (8, 3)."""
    nz, ny, nx = volume.shape
    ijk = np.array([[i, j, k] for k in (0, nz - 1) for j in (0, ny - 1) for i in (0, nx - 1)], dtype=np.float64)
    return geometry.apply_affine(volume.affine, ijk)


def extent_along(volume, point, direction) -> tuple[float, float]:
    """Signed distances (mm) from ``point`` to the volume's nearest and farthest voxel centres along ``direction``."""
    d = (corners(volume) - np.asarray(point, dtype=np.float64)) @ _unit(direction, "direction")
    return float(d.min()), float(d.max())


def cylinder_radius(volume, axis) -> float:
    """Radius (mm) of the volume's bounding cylinder about ``axis`` through its centre (every voxel centre inside)."""
    a = _unit(axis, "axis")
    rel = corners(volume) - np.asarray(volume.center, dtype=np.float64)
    return float(np.max(np.linalg.norm(rel - np.outer(rel @ a, a), axis=1)))


def spacing_along(volume, direction) -> float:
    """The volume's voxel size along an LPS ``direction`` (mm).

    ``1 / |inv(M) d|`` with ``M`` the affine's 3x3 part: moving ``1 / |inv(M) d|``
    mm along ``d`` moves the continuous index by one unit (Euclidean). For a
    direction along an index axis of an unsheared volume this is exactly that
    axis' spacing, so default planes through an axis-aligned volume land on
    voxel centres.
    """
    d = _unit(direction, "direction")
    step = np.linalg.solve(np.asarray(volume.affine, dtype=np.float64)[:3, :3], d)
    return float(1.0 / np.linalg.norm(step))


def _extent_shape(volume, center: np.ndarray, axis: np.ndarray, spacing: float) -> int:
    """Pixels needed along ``axis`` (through ``center``) to cover every voxel centre, symmetric about ``center``."""
    proj = (corners(volume) - center) @ axis
    half = float(np.max(np.abs(proj)))
    with np.errstate(over="ignore"):
        n = np.floor(2 * half / spacing + 1e-6) + 1
    if not np.isfinite(n) or n > 2.0 ** 62:
        raise InvalidParameterError(f"a plane covering the volume with {spacing:g} mm pixels would need {n:.3g} "
                                    "pixels per side: give a larger spacing (or a shape)")
    return int(n)


@dataclass
class Plane:
    """A rectangle of output pixels in patient (LPS) space.

    Parameters
    ----------
    center : (3,) float
        LPS position (mm) of the centre of the pixel grid (a pixel centre when
        the shape is odd, between pixels when even).
    u : (3,) float
        Unit direction of increasing column index (left to right on screen).
    v : (3,) float
        Unit direction of increasing row index (top to bottom on screen),
        perpendicular to ``u``.
    shape : (nrows, ncols)
    spacing : (dv, du)
        Row spacing and column spacing in mm (DICOM PixelSpacing order).

    Notes
    -----
    ``u`` and ``v`` are renormalised; ``v`` is made exactly perpendicular to
    ``u`` when it is within 1e-3 of it (else ``ValueError``).
    """

    center: np.ndarray
    u: np.ndarray
    v: np.ndarray
    shape: tuple[int, int]
    spacing: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        self.center = _vec3(self.center, "center")
        u = _unit(self.u, "u")
        v = _unit(self.v, "v")
        if abs(float(u @ v)) > 1e-3:
            raise InvalidParameterError(f"plane directions u and v are not perpendicular (u.v = {u @ v:.3g})")
        v = _unit(v - (v @ u) * u, "v")
        self.u, self.v = u, v
        self.shape = _shape_pair(self.shape)  # type: ignore[assignment]
        self.spacing = _spacing_pair(self.spacing)
        with np.errstate(over="ignore", invalid="ignore"):
            extent_ok = np.all(np.isfinite(self.origin))
        if not extent_ok:
            raise InvalidParameterError(f"plane of {self.shape[0]} x {self.shape[1]} pixels of {self.spacing[0]:g} x "
                                        f"{self.spacing[1]:g} mm is too large for double precision")

    # -- geometry ---------------------------------------------------------------
    @property
    def normal(self) -> np.ndarray:
        """Unit normal ``u x v`` (the direction of increasing ``s`` in a slab)."""
        return np.cross(self.u, self.v)

    @property
    def origin(self) -> np.ndarray:
        """LPS position of pixel ``(row 0, column 0)``."""
        nr, nc = self.shape
        dv, du = self.spacing
        return self.center - (nc - 1) / 2 * du * self.u - (nr - 1) / 2 * dv * self.v

    @property
    def affine(self) -> np.ndarray:
        """4x4 map of output ``(c, r, s, 1)`` to LPS mm; ``s`` in mm along :attr:`normal`, 0 on the plane."""
        dv, du = self.spacing
        return geometry.from_matvec(np.column_stack([self.u * du, self.v * dv, self.normal]), self.origin)

    def grid_affine(self, n_steps: int = 1, step_mm: float = 1.0, first_mm: float | None = None) -> np.ndarray:
        """4x4 map of ``(c, r, s, 1)`` for ``n_steps`` copies of the plane ``step_mm`` apart along the normal.

        The copies are centred on the plane (``first_mm = -(n_steps - 1) / 2 * step_mm``)
        unless ``first_mm``, the signed offset (mm) of copy 0, is given.
        """
        step_mm = _finite(step_mm, "step_mm")
        if first_mm is None:
            if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
                raise InvalidParameterError(f"n_steps must be a whole number >= 1, got {n_steps!r}")
            first_mm = -(int(n_steps) - 1) / 2 * step_mm
        first_mm = _finite(first_mm, "first_mm")
        a = self.affine
        a[:3, 2] = self.normal * float(step_mm)
        a[:3, 3] = a[:3, 3] + self.normal * float(first_mm)
        return a

    def pixel_to_world(self, rc) -> np.ndarray:
        """LPS mm of pixel positions ``(..., 2)`` given as ``(row, col)``."""
        rc = np.asarray(rc, dtype=np.float64)
        return geometry.apply_affine(self.affine, np.stack([rc[..., 1], rc[..., 0], np.zeros(rc.shape[:-1])], -1))

    def iop(self) -> list[float]:
        """The DICOM ImageOrientationPatient of this plane (``u`` then ``v``)."""
        return [float(x) for x in np.concatenate([self.u, self.v])]

    def moved(self, offset_mm: float) -> "Plane":
        """The same plane shifted ``offset_mm`` along its normal."""
        return Plane(self.center + _finite(offset_mm, "offset_mm") * self.normal, self.u, self.v, self.shape,
                     self.spacing)

    # -- constructors -------------------------------------------------------------
    @classmethod
    def _named(cls, name: str, volume, position_mm, index, shape, spacing) -> "Plane":
        _check_volume(volume)
        u, v = NAMED_AXES[name]
        ax = NAMED_POSITION_AXIS[name]
        center = np.array(volume.center, dtype=np.float64)
        if index is not None and position_mm is not None:
            raise InvalidParameterError("give position_mm or index, not both")
        if index is not None:
            index = _finite(index, "index")
            # the voxel index along the array axis closest to this patient axis, at the volume's centre
            cols = np.abs(volume.affine[:3, :3][ax]) / np.linalg.norm(volume.affine[:3, :3], axis=0)
            arr_axis = int(np.argmax(cols))  # 0 = i, 1 = j, 2 = k
            nz, ny, nx = volume.shape
            ijk = np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2])
            ijk[arr_axis] = float(index)
            position_mm = float(volume.index_to_world(ijk)[ax])
        if position_mm is not None:
            center[ax] = _finite(position_mm, "position_mm")
        return cls._fit(volume, center, u, v, shape, spacing)

    @classmethod
    def _fit(cls, volume, center, u, v, shape, spacing) -> "Plane":
        _check_volume(volume)
        center = _vec3(center, "center")
        u = _unit(u, "u")
        v = _unit(v, "v")
        if spacing is None:
            spacing = (spacing_along(volume, v), spacing_along(volume, u))
        dv, du = _spacing_pair(spacing)
        if shape is None:
            shape = (_extent_shape(volume, center, v, dv), _extent_shape(volume, center, u, du))
        return cls(center, u, v, shape, (dv, du))

    @classmethod
    def axial(cls, volume, position_mm: float | None = None, shape: Sequence[int] | None = None,
              spacing: float | Sequence[float] | None = None, *, index: float | None = None) -> "Plane":
        """The axial plane at LPS ``z = position_mm`` (the volume's centre when ``None``).

        Parameters
        ----------
        volume : Volume
            Gives the default centre (its centre), shape (covering every voxel
            centre) and spacing (its voxel size along ``u`` and ``v``).
        position_mm : float, optional
            The LPS ``z`` coordinate (mm) of the plane.
        shape, spacing : optional
            ``(nrows, ncols)`` and ``(dv, du)`` (or one number) in mm.
        index : float, optional
            Instead of ``position_mm``: a (fractional) voxel index along the
            array axis closest to ``z``, taken at the volume's centre. For an
            ordinary axial series ``index=k`` is the plane of slice ``k``.
        """
        return cls._named("axial", volume, position_mm, index, shape, spacing)

    @classmethod
    def coronal(cls, volume, position_mm: float | None = None, shape: Sequence[int] | None = None,
                spacing: float | Sequence[float] | None = None, *, index: float | None = None) -> "Plane":
        """The coronal plane at LPS ``y = position_mm``; as :meth:`axial` otherwise."""
        return cls._named("coronal", volume, position_mm, index, shape, spacing)

    @classmethod
    def sagittal(cls, volume, position_mm: float | None = None, shape: Sequence[int] | None = None,
                 spacing: float | Sequence[float] | None = None, *, index: float | None = None) -> "Plane":
        """The sagittal plane at LPS ``x = position_mm``; as :meth:`axial` otherwise."""
        return cls._named("sagittal", volume, position_mm, index, shape, spacing)

    @classmethod
    def oblique(cls, center, normal, up, shape: Sequence[int], spacing: float | Sequence[float] = 1.0) -> "Plane":
        """A plane through ``center`` with the given ``normal``; ``up`` points to the top of the image.

        ``up`` is projected onto the plane: rows run opposite to it
        (``v = -up``, made perpendicular to the normal) and ``u = v x normal``
        so that ``u x v = normal``. For example ``normal=(0, 0, 1), up=(0, -1, 0)``
        is the axial plane (anterior at the top, patient left on the right).
        """
        n = _unit(normal, "normal")
        up = _unit(up, "up")
        vv = -(up - (up @ n) * n)
        if np.linalg.norm(vv) < 1e-9:
            raise InvalidParameterError(f"'up' {up.tolist()} is parallel to the normal {n.tolist()}: it must have "
                                        "a component in the plane")
        v = _unit(vv, "up")
        u = np.cross(v, n)
        return cls(center, u, v, shape, _pair(spacing, "spacing"))

    @classmethod
    def from_points(cls, p1, p2, p3, shape: Sequence[int] | None = None,
                    spacing: float | Sequence[float] | None = None, *, volume=None) -> "Plane":
        """The plane through three LPS points, centred on their centroid.

        ``u`` points from ``p1`` to ``p2``; the normal is ``(p2 - p1) x (p3 - p1)``
        (so ``p3`` is below the ``p1 -> p2`` line on screen when the points
        are anticlockwise seen from the normal). Without ``shape``/``spacing``:
        from ``volume`` when given (covering it; its smallest voxel size),
        else 1 mm pixels covering the three points with a 10% margin.
        """
        p1, p2, p3 = (_vec3(p, name) for p, name in ((p1, "p1"), (p2, "p2"), (p3, "p3")))
        with np.errstate(over="ignore", invalid="ignore"):
            n = np.cross(p2 - p1, p3 - p1)
            size = np.linalg.norm(p2 - p1) * np.linalg.norm(p3 - p1)
        if not (np.all(np.isfinite(n)) and np.isfinite(size)):
            raise InvalidParameterError("the three points are too far apart for double precision (over 1e150 mm)")
        if np.linalg.norm(n) < 1e-9 * max(1.0, size):
            raise InvalidParameterError("the three points are collinear (or coincide): they do not define a plane")
        n = n / np.linalg.norm(n)
        u = _unit(p2 - p1, "p2 - p1")
        v = np.cross(n, u)
        center = (p1 + p2 + p3) / 3
        if volume is not None:
            _check_volume(volume)
            if spacing is None:
                spacing = float(min(volume.spacing))
            return cls._fit(volume, center, u, v, shape, spacing)
        dv, du = _spacing_pair(1.0 if spacing is None else spacing)
        if shape is None:
            pts = np.stack([p1, p2, p3]) - center
            with np.errstate(over="ignore"):
                rc = np.ceil(2.2 * np.array([np.max(np.abs(pts @ v)) / dv, np.max(np.abs(pts @ u)) / du])) + 1
            if not (np.all(np.isfinite(rc)) and np.all(rc <= 2.0 ** 62)):
                raise InvalidParameterError(f"covering the three points with {dv:g} x {du:g} mm pixels would need "
                                            f"{rc[0]:.3g} x {rc[1]:.3g} pixels: give a larger spacing (or a shape)")
            shape = (int(rc[0]), int(rc[1]))
        return cls(center, u, v, shape, (dv, du))

    @classmethod
    def rotated(cls, volume, angles_deg: Sequence[float] = (0.0, 0.0, 0.0), shape: Sequence[int] | None = None,
                spacing: float | Sequence[float] | None = None, *, center=None) -> "Plane":
        """The axial plane through the volume's centre, rotated by ``(rx, ry, rz)`` degrees.

        The rotation is ``Rz @ Ry @ Rx`` about the LPS axes (first about x,
        then y, then z, each right-handed), applied to the axial ``u``, ``v``
        about ``center`` (default: the volume's centre). ``(0, 0, 0)`` is the
        axial plane, ``(-90, 0, 0)`` the coronal one. Default spacing: the
        volume's smallest voxel size; default shape: large enough to cover
        every voxel centre.
        """
        _check_volume(volume)
        R = rotation_matrix(angles_deg)
        u0, v0 = NAMED_AXES["axial"]
        c = _vec3(volume.center if center is None else center, "center")
        if spacing is None:
            spacing = float(min(volume.spacing))
        return cls._fit(volume, c, R @ u0, R @ v0, shape, spacing)


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """``Rz @ Ry @ Rx`` for angles ``(rx, ry, rz)`` in degrees (right-handed, about fixed LPS axes)."""
    rx, ry, rz = np.radians(_vec3(angles_deg, "angles_deg (rotations about x, y, z in degrees)"))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def axis_rotation(axis, angle_deg: float) -> np.ndarray:
    """Right-handed rotation by ``angle_deg`` about a unit ``axis`` (Rodrigues)."""
    a = _unit(axis, "axis")
    t = np.radians(_finite(angle_deg, "angle_deg"))
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * (K @ K)


__all__ = ["Plane", "rotation_matrix", "axis_rotation", "spacing_along", "corners", "extent_along",
           "cylinder_radius", "NAMED_AXES"]
