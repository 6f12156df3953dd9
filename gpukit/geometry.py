"""Patient-space geometry as small pure functions (numpy in, numpy out, no I/O).

Conventions (see DESIGN.md):

* Patient coordinates are DICOM LPS millimetres (x to the patient's left,
  y to posterior, z to head).
* A volume's array is ``data[k, j, i]``: ``k`` the slice, ``j`` the row,
  ``i`` the column.
* ``affine @ (i, j, k, 1)`` is the LPS position of the centre of voxel
  ``data[k, j, i]``. Column 0 is ``row_cosine * column_spacing`` (moving along
  a row, i.e. to the next column), column 1 is ``column_cosine * row_spacing``,
  column 2 is the step between consecutive slice positions as found in
  ``ImagePositionPatient`` (so a gantry-tilted series gives a sheared matrix),
  column 3 the first slice's position. DICOM PS3.3 C.7.6.2.1.1 writes this as

  ``P = S + X*dc*i + Y*dr*j`` with ``X`` the row direction cosine, ``dc`` the
  column spacing (``PixelSpacing[1]``), ``Y`` the column direction cosine and
  ``dr`` the row spacing (``PixelSpacing[0]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import InvalidParameterError, ParameterTypeError

#: LPS <-> RAS: negate x and y. Its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def check_affine(affine, name: str = "affine", invertible: bool = True) -> np.ndarray:
    """``affine`` as a 4x4 float64 index->LPS matrix, or an :class:`InvalidParameterError` that says what is wrong:
    not numbers (a :class:`ParameterTypeError`), complex, not 4x4, NaN or infinity, a last row other than
    ``(0, 0, 0, 1)``, or (with ``invertible``) singular: its three index columns do not span space, also judged on
    the unit columns so huge or tiny voxel sizes neither overflow nor pass as regular. An output grid need not be
    invertible (a one-slice grid may have any step along ``s``)."""
    if isinstance(affine, (str, bytes)) or affine is None:
        raise ParameterTypeError(f"{name} must be a 4x4 array of numbers, got {affine!r}")
    try:
        if np.iscomplexobj(affine):
            raise InvalidParameterError(f"{name} must hold real numbers, got complex values")
        aff = np.asarray(affine, dtype=np.float64)       # no copy: Volume.to shares its geometry
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise ParameterTypeError(f"{name} must be a 4x4 array of numbers ({exc})") from None
    if aff.shape == (4, 4) and not np.all(np.isfinite(aff)):
        raise InvalidParameterError(f"{name} holds NaN or infinity: {aff[~np.isfinite(aff)][:3].tolist()}")
    if aff.shape != (4, 4):
        raise InvalidParameterError(f"{name} must be 4x4, got {aff.shape}")
    if not np.array_equal(aff[3], [0.0, 0.0, 0.0, 1.0]):
        raise InvalidParameterError(f"the last row of {name} must be (0, 0, 0, 1) (an affine, not a projective "
                                    f"map), got {aff[3].tolist()}")
    if not invertible:
        return aff
    m = aff[:3, :3]
    scaled = m / max(float(np.max(np.abs(m))), 1e-300)         # column lengths without overflow (1e200 mm voxels)
    norms = np.linalg.norm(scaled, axis=0)
    with np.errstate(over="ignore", under="ignore"):
        det = abs(float(np.linalg.det(m)))
        unit_det = abs(float(np.linalg.det(scaled / norms))) if np.all(norms > 0) else 0.0
    if det < 1e-12 or unit_det < 1e-12:
        raise InvalidParameterError(f"{name} is singular: its three index columns do not span space")
    return aff


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to points of shape ``(..., 3)``; returns ``(..., 3)``."""
    affine = np.asarray(affine, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    return pts @ affine[:3, :3].T + affine[:3, 3]


def from_matvec(matrix: np.ndarray, vector: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Build a 4x4 affine from a 3x3 matrix and a translation."""
    out = np.eye(4)
    out[:3, :3] = matrix
    out[:3, 3] = vector
    return out


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Length of each of the three index-axis columns, in index order ``(i, j, k)``."""
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    with np.errstate(over="ignore"):
        sizes = np.sqrt((m ** 2).sum(axis=0))
    if not np.all(np.isfinite(sizes)) and np.all(np.isfinite(m)):     # columns over 1e154 mm: scaled, not inf
        scale = float(np.max(np.abs(m)))
        sizes = np.sqrt(((m / scale) ** 2).sum(axis=0)) * scale
    return sizes


def orientation_vectors(iop: Sequence[float], tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosine, column cosine and their normal from ImageOrientationPatient.

    The cosines are renormalised (files often store them to 6 decimals). A pair
    that is not unit length or not orthogonal within ``tol`` raises
    ``ValueError``: the file's geometry cannot be trusted.
    """
    v = np.asarray(iop, dtype=np.float64).reshape(2, 3)
    row, col = v[0], v[1]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if abs(nr - 1) > tol or abs(nc - 1) > tol:
        raise InvalidParameterError(f"ImageOrientationPatient cosines are not unit vectors: {list(v.ravel())}")
    if abs(float(row @ col)) > tol:
        raise InvalidParameterError(f"ImageOrientationPatient cosines are not orthogonal (dot {row @ col:.2e})")
    row = row / nr
    col = col / nc
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def slice_affine(iop: Sequence[float], ipp: Sequence[float], pixel_spacing: Sequence[float],
                 slice_step: Sequence[float] | None = None) -> np.ndarray:
    """The 4x4 LPS affine of a stack of slices.

    Parameters
    ----------
    iop : 6 floats, ImageOrientationPatient (row cosine, column cosine).
    ipp : 3 floats, ImagePositionPatient of the first slice (centre of its first pixel).
    pixel_spacing : 2 floats, DICOM PixelSpacing ``(row spacing, column spacing)``.
    slice_step : 3 floats, LPS vector from one slice's position to the next; when
        ``None`` (a single slice) the unit normal is used.
    """
    row, col, normal = orientation_vectors(iop)
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    step = normal if slice_step is None else np.asarray(slice_step, dtype=np.float64)
    m = np.column_stack([row * dc, col * dr, step])
    return from_matvec(m, np.asarray(ipp, dtype=np.float64))


def orientation_label(iop: Sequence[float], oblique_deg: float = 10.0) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique' from the slice normal.

    The plane is named after the patient axis its normal lies along, when the
    angle between them is under ``oblique_deg`` degrees.
    """
    _, _, n = orientation_vectors(iop, tol=1e-2)
    ax = int(np.argmax(np.abs(n)))
    angle = np.degrees(np.arccos(min(1.0, abs(n[ax]))))
    if angle > oblique_deg:
        return "oblique"
    return ("sagittal", "coronal", "axial")[ax]


def tilt_angle_deg(affine: np.ndarray) -> float:
    """Angle between the slice step (column 2) and the slice normal, in degrees.

    Zero for an ordinary stack; the gantry tilt for a tilted CT. The sign says
    whether the step leans towards the column direction (+) or away (-), which
    is how scanners report Gantry/Detector Tilt for an axial series; the value
    comes from geometry only, never from the (0018,1120) tag.
    """
    a = np.asarray(affine, dtype=np.float64)
    row = a[:3, 0] / np.linalg.norm(a[:3, 0])
    col = a[:3, 1] / np.linalg.norm(a[:3, 1])
    n = np.cross(row, col)
    step = a[:3, 2]
    ls = np.linalg.norm(step)
    if ls == 0:
        return 0.0
    cosang = abs(float(step @ n)) / ls
    ang = float(np.degrees(np.arccos(min(1.0, cosang))))
    return ang if float(step @ col) * float(step @ n) >= 0 else -ang


@dataclass
class SpacingReport:
    """What the slice positions along the normal look like.

    ``positions`` are the offsets (mm) of the sorted slices along the slice
    normal; ``steps`` the differences between neighbours; ``regular`` says
    whether every step is within ``tolerance`` of the median step.
    """

    positions: np.ndarray
    steps: np.ndarray
    median_step: float
    regular: bool
    tolerance: float
    missing: list[int] = field(default_factory=list)       # slice indices after which slices are missing
    duplicates: list[int] = field(default_factory=list)    # slice indices that repeat the previous position
    irregular: list[int] = field(default_factory=list)     # other steps off the median
    n_missing: int = 0

    def summary(self) -> str:
        if len(self.positions) < 2:
            return "single slice"
        s = f"{len(self.positions)} slices, step {self.median_step:.4g} mm"
        if self.regular:
            return s + " (regular)"
        parts = []
        if self.duplicates:
            parts.append(f"duplicate positions at slices {self.duplicates}")
        if self.missing:
            parts.append(f"{self.n_missing} missing slice(s) after slices {self.missing}")
        if self.irregular:
            parts.append(f"irregular steps after slices {self.irregular}: "
                         f"{[round(float(self.steps[i]), 4) for i in self.irregular]} mm")
        return s + "; " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "n_slices": int(len(self.positions)),
            "median_step_mm": float(self.median_step),
            "regular": bool(self.regular),
            "tolerance_mm": float(self.tolerance),
            "missing_after": [int(i) for i in self.missing],
            "n_missing": int(self.n_missing),
            "duplicates": [int(i) for i in self.duplicates],
            "irregular_after": [int(i) for i in self.irregular],
            "min_step_mm": float(self.steps.min()) if len(self.steps) else 0.0,
            "max_step_mm": float(self.steps.max()) if len(self.steps) else 0.0,
            "summary": self.summary(),
        }


def regular_grid_through(row_step: np.ndarray, col_step: np.ndarray, positions: np.ndarray, ny: int, nx: int,
                         spacing_mm: float | None = None, slice_step: float | None = None
                         ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The regular, unsheared grid that holds a stack of slices: ``(affine, (nk, nj, ni))``.

    ``row_step``/``col_step``: the in-plane index steps (affine columns 0 and
    1, mm); ``positions``: ``(nz, 3)`` LPS position of each slice's first voxel,
    in slice order (sheared, irregular or not). Rows and columns keep their
    directions; slices step along the normal ``n = row_step x col_step``
    (pointing the way the slices advance). ``spacing_mm=None`` keeps the
    in-plane pixel sizes and takes the median spacing along ``n`` (``slice_step``
    for a single slice); a number gives isotropic voxels. The grid covers every
    voxel centre, widened by whole pixels for the in-plane drift of the slices
    (a gantry tilt), its first pixels on the first slice's.
    """
    c0, c1 = np.asarray(row_step, np.float64), np.asarray(col_step, np.float64)
    pos = np.asarray(positions, np.float64).reshape(-1, 3)
    n = np.cross(c0, c1)
    n /= np.linalg.norm(n)
    if (pos[-1] - pos[0]) @ n < 0:
        n = -n
    d = (pos - pos[0]) @ n
    if spacing_mm is None:
        steps = np.diff(np.sort(d))
        if np.any(steps > 1e-6):
            dz = float(np.median(steps[steps > 1e-6]))
        else:
            dz = float(slice_step) if slice_step else 1.0
        du, dv = float(np.linalg.norm(c0)), float(np.linalg.norm(c1))
    else:
        ok = isinstance(spacing_mm, (int, float, np.integer, np.floating)) and not isinstance(spacing_mm, bool)
        dz = du = dv = float(spacing_mm) if ok else float("nan")
        if not (dz > 0 and np.isfinite(dz)):
            raise InvalidParameterError(f"spacing_mm must be a positive finite number (mm), got {spacing_mm!r}")
    u, v = c0 / np.linalg.norm(c0), c1 / np.linalg.norm(c1)
    # in-plane offsets of every slice's first voxel, in output pixels; the corners of each slice after them
    inplane = (pos - pos[0]) - np.outer(d, n)
    with np.errstate(over="ignore", invalid="ignore"):       # tiny spacings overflow: refused just below
        a = inplane @ u / du
        b = inplane @ v / dv
        ext_i = (nx - 1) * np.linalg.norm(c0) / du
        ext_j = (ny - 1) * np.linalg.norm(c1) / dv
        lo_i, hi_i = np.floor(min(0.0, a.min()) + 1e-6), np.ceil(max(0.0, a.max()) + ext_i - 1e-6)
        lo_j, hi_j = np.floor(min(0.0, b.min()) + 1e-6), np.ceil(max(0.0, b.max()) + ext_j - 1e-6)
        counts = np.array([np.floor((d.max() - d.min()) / dz + 1e-6) + 1, hi_j - lo_j + 1, hi_i - lo_i + 1])
    if not (np.all(np.isfinite(counts)) and np.all(counts <= 2.0 ** 62)):
        raise InvalidParameterError(f"a regular grid with {dz:g} mm voxels would have {counts[0]:.3g} x "
                                    f"{counts[1]:.3g} x {counts[2]:.3g} voxels: give a larger spacing_mm")
    ns = int(counts[0])
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = u * du, v * dv, n * dz
    out[:3, 3] = pos[0] + float(d.min()) * n + lo_i * du * u + lo_j * dv * v
    return out, (ns, int(hi_j - lo_j) + 1, int(hi_i - lo_i) + 1)


def unsheared_grid(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The regular grid that holds a sheared (gantry-tilted) volume: ``(affine, (nk, nj, ni))``.

    The in-plane axes (columns 0 and 1) and the first slice are kept; the
    slice step becomes the normal ``n = col0 x col1`` (unit, pointing the way
    the slices advance) times the slices' spacing along it, ``step . n``; the
    grid is widened by whole pixels so every voxel centre of the old one is
    inside (:func:`regular_grid_through` with the affine's slice positions).
    For an unsheared affine it returns the same affine and shape.

    This is the grid dcm2niix resamples a tilted CT to (its ``*_Tilt_1``
    output, rows flipped): :func:`gpukit.resample` onto it gives a regular,
    untilted volume.

    Examples
    --------
    >>> aff = from_matvec(np.array([[1.0, 0, 0], [0, 1, 0.5], [0, 0, 2]]))   # step (0, 0.5, 2): sheared in y
    >>> new, shp = unsheared_grid(aff, (5, 4, 3))
    >>> shp, new[:3, 2].tolist(), new[:3, 3].tolist()
    ((5, 6, 3), [0.0, 0.0, 2.0], [0.0, 0.0, 0.0])
    """
    A = np.asarray(affine, dtype=np.float64)
    nk, nj, ni = (int(n) for n in shape)
    c0, c1, step = A[:3, 0], A[:3, 1], A[:3, 2]
    n = np.cross(c0, c1)
    dz = abs(float(step @ n / np.linalg.norm(n)))
    if not dz > 1e-9 * float(np.linalg.norm(step)):
        raise InvalidParameterError("the slice step lies in the image plane: not a stack of slices")
    positions = A[:3, 3] + np.outer(np.arange(nk), step)
    return regular_grid_through(c0, c1, positions, nj, ni, slice_step=dz)


def spacing_report(positions: Sequence[float], rel_tol: float = 0.01, abs_tol: float = 1e-3) -> SpacingReport:
    """Analyse sorted slice offsets along the normal.

    A step is regular when it is within ``max(abs_tol, rel_tol * median)`` of
    the median step. A step near 0 is a duplicate position; a step near an
    integer multiple ``m >= 2`` of the median means ``m - 1`` missing slices;
    anything else is irregular.
    """
    pos = np.asarray(positions, dtype=np.float64)
    steps = np.diff(pos)
    if len(steps) == 0:
        return SpacingReport(pos, steps, 0.0, True, abs_tol)
    nonzero = steps[np.abs(steps) > abs_tol]
    med = float(np.median(nonzero)) if len(nonzero) else 0.0
    tol = max(abs_tol, rel_tol * abs(med))
    rep = SpacingReport(pos, steps, med, True, tol)
    for n, s in enumerate(steps):
        if abs(s - med) <= tol:
            continue
        rep.regular = False
        if abs(s) <= tol:
            rep.duplicates.append(n + 1)
        elif med != 0 and s / med > 1.5 and abs(s / med - round(s / med)) * abs(med) <= tol:
            rep.missing.append(n)
            rep.n_missing += int(round(s / med)) - 1
        else:
            rep.irregular.append(n)
    return rep


def lps_to_ras_affine(affine: np.ndarray) -> np.ndarray:
    """An LPS index->world affine as an RAS one (same index axes)."""
    return LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)


def nifti_affine(affine: np.ndarray) -> np.ndarray:
    """RAS affine for the array transposed to NIfTI order ``(i, j, k)``.

    gpukit's ``data[k, j, i]`` transposed is ``data.T[i, j, k]``; the index
    axes keep their meaning, so only LPS -> RAS changes.
    """
    return lps_to_ras_affine(affine)
