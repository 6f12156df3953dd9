"""Geometric operations: reslice, resample, slab and full projections, rotating MIP, and a real-time Reslicer.

All of them are one sampler (DESIGN.md, "One sampler for reslice, resample
and MIP"): an output grid ``(c, r, s)`` is mapped to continuous voxel indices
by ``(i, j, k) = A @ (c, r, s) + b``, where ``A`` and ``b`` come from
``inv(volume.affine) @ output_affine`` computed here on the host; the backend
samples (trilinear or nearest), rescales to HU per slice in the same pass and
combines along ``s`` (none, max, min, mean). The exact rule, its edge cases
and its float64 expressions are in :mod:`gpukit.backends.numpy.sampler`.

This module validates arguments, builds the maps and picks the backend.

Host-side details shared by every backend:

* Entries of ``A`` and ``b`` within ``1e-9`` of an integer are set to that
  integer, so grids that sit on voxel centres (an axial plane through slice
  ``k`` of an axial series, a coronal plane through row ``j``) read exactly
  the stored voxels instead of blends with weights of ``1e-13``.
* The default fill is the lowest rescaled value in the volume (air for CT):
  ``min_k (lowest stored value of slice k * slope_k + intercept_k)``.
* Max/min projections on backends that have it (numba) skip samples that
  cannot change the result, using the largest/smallest rescaled value of
  each 8^3 brick (an exact optimisation: same result as the plain march).
* The per-slice extrema and the brick grid are computed once per Volume and
  data buffer and cached (weakly, keyed on the Volume); after modifying
  ``volume.data`` in place call :func:`clear_caches` (assigning a new array
  to ``volume.data`` needs nothing).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from ..errors import InvalidParameterError, ParameterTypeError

from .. import geometry
from ..backends import get_backend
from ..backends.codes import BRICK_SKIPPING, FUSED_WINDOW, ORDERS, SLICE_ORDER
from .reslicer import BRICKED_MIN_BYTES, Reslicer  # noqa: F401  (re-exported)
from .residency import (_bricks, _check_precision, _fill_value, _host_data, _nearest_dtype, clear_caches,
                        default_fill)
from .validate import (INTERPS, LIMITS, PROJECTION_MODES, SNAP, _apply_window, _check_interp,  # noqa: F401
                       _check_mode, _grid_shape, _volume_meta, _window_stage, check_volume, check_work, index_map,
                       positive_mm, real, set_limits, steps, thickness, whole)
from ..planes import Plane, axis_rotation, cylinder_radius, extent_along, NAMED_AXES, NAMED_POSITION_AXIS


# -- host-side helpers --------------------------------------------------------------------------------


def _project_grid(be, volume, data, A, b, grid, mode, interp, fill, out, precision="exact"):
    """Run a max/min/mean projection, with empty-space skipping where the backend has it.

    The brick grid costs about one pass over the volume: it is built for
    projections with at least a quarter as many samples as the volume has
    voxels (a full MIP, a rotating MIP) and reused by any later projection.
    """
    if mode in ("max", "min") and grid[0] >= 16 and be.has(BRICK_SKIPPING):
        big = grid[0] * grid[1] * grid[2] >= data.size // 4
        bricks = _bricks(volume, data, be, build=big)
        if bricks is not None:
            return be.sample_grid(data, volume.slopes, volume.intercepts, A, b, grid, mode, interp, fill, out,
                                  bricks=bricks, precision=precision)
    return be.sample_grid(data, volume.slopes, volume.intercepts, A, b, grid, mode, interp, fill, out,
                          precision=precision)


# -- resample and reslice ----------------------------------------------------------------------------------
def resample(volume, affine, shape: Sequence[int], *, interp: str = "linear", fill: float | None = None,
             backend: str | None = None, precision: str = "fast"):
    """Resample ``volume`` onto any regular grid; the result is a new :class:`~gpukit.Volume` in HU.

    Parameters
    ----------
    volume : Volume
    affine : (4, 4) array
        Maps an output index ``(i, j, k, 1)`` to LPS mm, exactly like
        ``Volume.affine`` (it may be sheared or oblique).
    shape : (nk, nj, ni)
        Output array shape (slice-major, like ``Volume.data``).
    interp : "linear" (trilinear) or "nearest" (round half up)
    fill : float, optional
        Value of output points outside the volume; default the volume's
        lowest rescaled value (air for CT).
    backend : str, optional
    precision : "fast" (default) or "exact"
        "fast" lets a backend with a float32 sampler (capability ``FAST_PRECISION``: numba, cupy, numba-cuda)
        use it, within the error bound its kernels state (trilinear on int16 CT with |stored| < 4096: within
        0.006 HU of the float64 result on numba, 0.01 HU on the CUDA C++ kernels; nearest picks the same voxel);
        "exact" is the float64 arithmetic of the numpy reference. Backends without the fast path (numpy)
        compute "exact" either way.

    Returns
    -------
    Volume
        ``data`` float32 HU for ``linear``; for ``nearest``, int16 when every
        rescaled value (and the fill) is an exact int16, else float32. Its
        ``affine`` is the given one and its rescale is the identity, so it can
        be written, resliced or resampled again.

    Examples
    --------
    Undo a gantry tilt: resample onto the same in-plane grid with the slice
    step along the normal (this is how a tilted or irregular series becomes a
    regular one):

    >>> import numpy as np, gpukit
    >>> aff = np.array([[1., 0, 0, 0], [0, 1, 0.2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # sheared
    >>> vol = gpukit.Volume(np.arange(64, dtype=np.int16).reshape(4, 4, 4), aff)
    >>> out = gpukit.resample(vol, np.eye(4), (4, 4, 4), backend="numpy")
    >>> out.data.dtype, round(float(out.data[1, 1, 1]), 4)    # index (1, 0.8, 1): 16 + 4 * 0.8 + 1
    (dtype('float32'), 20.2)
    """
    _check_interp(interp)
    _check_precision(precision)
    shp = _grid_shape(shape, 3, "shape")
    check_work(np.prod([float(x) for x in shp]), shp, 4, "resample")
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    A, b = index_map(volume.affine, affine)
    dtype = np.float32 if interp == "linear" else _nearest_dtype(volume, data, be, f)
    out = be.xp.empty(shp, dtype=dtype)
    be.sample_grid(data, volume.slopes, volume.intercepts, A, b, shp, "none", interp, f, out, precision=precision)
    from ..volume import Volume

    return Volume(out, np.asarray(affine, dtype=np.float64), _volume_meta(volume, derived="resampled"),
                  backend=volume.backend)


def reslice(volume, plane: Plane, *, interp: str = "linear", fill: float | None = None,
            window: tuple[float, float] | None = None, backend: str | None = None,
            precision: str = "fast") -> np.ndarray:
    """The volume sampled on a :class:`~gpukit.Plane`: a 2-D ``(nrows, ncols)`` image.

    ``resample`` with a one-slice grid built from the plane. Returns float32
    HU, or uint8 when ``window=(center, width)`` is given (DICOM LINEAR window
    applied to the HU image). ``precision``: "fast" (default; float32 sampler
    where the backend has one, see :func:`resample`) or "exact".

    Examples
    --------
    >>> import numpy as np, gpukit
    >>> vol = gpukit.Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4),
    ...                     {"rescale_intercept": -1000.0})
    >>> gpukit.reslice(vol, gpukit.Plane.axial(vol, index=1), backend="numpy")
    array([[-988., -987., -986., -985.],
           [-984., -983., -982., -981.],
           [-980., -979., -978., -977.]], dtype=float32)
    """
    if not isinstance(plane, Plane):
        raise ParameterTypeError(f"plane must be a gpukit.Plane (e.g. Plane.axial(volume)), got {type(plane).__name__}")
    _check_interp(interp)
    _check_precision(precision)
    nr, nc = plane.shape
    check_work(float(nr) * nc, (nr, nc), 4, "reslice")
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    A, b = index_map(volume.affine, plane.affine)
    out = be.xp.empty((1, nr, nc), dtype=np.float32)
    if window is not None and be.has(FUSED_WINDOW):     # rescale, sample and window in one pass
        out = be.xp.empty((1, nr, nc), dtype=np.uint8)
        be.sample_grid(data, volume.slopes, volume.intercepts, A, b, (1, nr, nc), "none", interp, f, out,
                       window=_window_stage(window), precision=precision)
        return out[0]
    be.sample_grid(data, volume.slopes, volume.intercepts, A, b, (1, nr, nc), "none", interp, f, out,
                   precision=precision)
    img = out[0]
    if window is not None:
        return _apply_window(img, window, be)
    return img


def regular_grid(volume, spacing_mm: float | None = None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``(affine, shape)`` of the regular grid :func:`regularize` fills: unsheared, along the volume's own axes.

    Rows and columns keep the directions of the volume's; slices step along
    the normal ``row x column``. ``spacing_mm=None`` keeps the in-plane pixel
    sizes and takes the slice spacing along the normal (the median for an
    irregular series): for a gantry-tilted CT this is exactly
    :func:`gpukit.geometry.unsheared_grid` (dcm2niix's tilt-corrected grid).
    A number gives isotropic voxels of that size. The grid covers every voxel
    centre of the volume, its first pixels sitting on the first slice's.
    """
    A = np.asarray(volume.affine, dtype=np.float64)
    nz, ny, nx = volume.shape
    if spacing_mm is None and nz == 1:
        return A.copy(), (nz, ny, nx)
    return geometry.regular_grid_through(A[:3, 0], A[:3, 1], _slice_positions(volume), ny, nx, spacing_mm)


def _slice_positions(volume) -> np.ndarray:
    """LPS position of each slice's first voxel: the true ones of an irregular series, else from the affine."""
    true = volume.meta.get("slice_positions_lps")
    if true is not None and len(true) == volume.shape[0]:
        return np.asarray(true, dtype=np.float64).reshape(-1, 3)
    A = np.asarray(volume.affine, dtype=np.float64)
    return A[:3, 3] + np.outer(np.arange(volume.shape[0]), A[:3, 2])


def regularize(volume, spacing_mm: float | None = None, *, interp: str = "linear", fill: float | None = None,
               backend: str | None = None, precision: str = "fast"):
    """The volume on a regular, unsheared grid (:func:`regular_grid`): untilts a tilted CT, evens irregular slices.

    A sheared (tilted) volume is one :func:`resample`. A series loaded with
    ``on_irregular="keep"`` (slices at uneven positions, kept in
    ``meta["slice_positions_lps"]``) is resampled slice by slice: each output
    slice blends the two input slices that bracket it along the normal, at
    their true positions (linear), or takes the nearer one (nearest).

    ``precision``: "fast" (default) or "exact", as in :func:`resample`.

    Returns
    -------
    Volume in HU (float32; int16 for nearest when exact), with the regular affine.

    Examples
    --------
    >>> import numpy as np, gpukit
    >>> data = np.arange(4 * 2 * 2, dtype=np.int16).reshape(4, 2, 2)
    >>> pos = [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 4]]           # the slice at z = 3 is missing
    >>> vol = gpukit.Volume(data, np.eye(4), {"slice_positions_lps": pos})
    >>> reg = gpukit.regularize(vol, backend="numpy")        # slices at z = 0, 1, 2, 3, 4 (the median step)
    >>> reg.shape, reg.data[:, 0, 0].tolist()                # z = 3 is halfway between slices 2 and 3
    ((5, 2, 2), [0.0, 4.0, 8.0, 10.0, 12.0])
    """
    _check_interp(interp)
    _check_precision(precision)
    aff, shape = regular_grid(volume, spacing_mm)
    true = volume.meta.get("slice_positions_lps")
    if true is None or volume.shape[0] < 2:
        return resample(volume, aff, shape, interp=interp, fill=fill, backend=backend, precision=precision)
    pos = _slice_positions(volume)
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    n = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    d = (pos - pos[0]) @ n
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    dtype = np.float32 if interp == "linear" else _nearest_dtype(volume, data, be, f)
    check_work(np.prod([float(x) for x in shape]), shape, 4, "regularize")
    out = be.xp.empty(shape, dtype=dtype)
    slopes = np.asarray(volume.slopes, dtype=np.float64)
    intercepts = np.asarray(volume.intercepts, dtype=np.float64)
    for s in range(shape[0]):
        z = (aff[:3, 3] + s * aff[:3, 2] - pos[0]) @ n
        t = int(np.clip(np.searchsorted(d_sorted, z - 1e-6), 1, len(d_sorted) - 1))
        k0, k1 = int(order[t - 1]), int(order[t])
        # a two-slice volume whose slice step is the true step between k0 and k1
        pair_aff = np.asarray(volume.affine, dtype=np.float64).copy()
        pair_aff[:3, 2] = pos[k1] - pos[k0]
        pair_aff[:3, 3] = pos[k0]
        pair = be.xp.ascontiguousarray(data[[k0, k1]])
        plane_aff = aff.copy()
        plane_aff[:3, 3] = aff[:3, 3] + s * aff[:3, 2]
        A, b = index_map(pair_aff, plane_aff)
        be.sample_grid(pair, slopes[[k0, k1]], intercepts[[k0, k1]], A, b, (1,) + shape[1:], "none", interp, f,
                       out[s:s + 1], precision=precision)
    from ..volume import Volume

    return Volume(out, aff, _volume_meta(volume, derived="regularized"), backend=volume.backend)


# -- projections -----------------------------------------------------------------------------------------------
def _aligned_axes(affine: np.ndarray) -> list[tuple[int, float]] | None:
    """For each array axis in (i, j, k) order, its LPS axis and sign, if the affine is a scaled signed permutation."""
    M = np.asarray(affine, dtype=np.float64)[:3, :3]
    out = []
    for col in range(3):
        v = M[:, col]
        ax = int(np.argmax(np.abs(v)))
        if np.any(np.abs(np.delete(v, ax)) > 1e-9 * abs(v[ax])):
            return None
        out.append((ax, float(np.sign(v[ax]))))
    if len({a for a, _ in out}) != 3:
        return None
    return out


def _slab_range(n: int, spacing: float, thickness_mm: float | None) -> tuple[int, int]:
    if thickness_mm is None:
        return 0, n
    thickness_mm = thickness(thickness_mm)
    m = int(min(n, np.floor(thickness_mm / spacing + 1e-6) + 1))
    lo = (n - m) // 2
    return lo, lo + m


def _project_axis(volume, axis: int, mode: str, thickness_mm, be) -> np.ndarray:
    data = _host_data(volume, be)
    nz, ny, nx = data.shape
    n = data.shape[axis]
    spacing = volume.spacing[axis]
    lo, hi = _slab_range(n, spacing, thickness_mm)
    shape = [(ny, nx), (nz, nx), (nz, ny)][axis]
    out = be.xp.empty(shape, np.float32)
    be.project_axis(data, volume.slopes, volume.intercepts, axis, lo, hi, mode, out)
    return out


def _plane_grid(volume, plane: Plane, thickness_mm, step_mm) -> tuple[np.ndarray, int]:
    step = float(min(volume.spacing)) if step_mm is None else positive_mm(step_mm, "step_mm")
    if thickness_mm is None:
        dmin, dmax = extent_along(volume, plane.center, plane.normal)
        ns = steps(dmax - dmin, step, "a full projection")
        return plane.grid_affine(ns, step, first_mm=dmin), ns
    ns = steps(thickness(thickness_mm), step, "a slab")
    return plane.grid_affine(ns, step), ns


def project(volume, plane_or_axis: Union[Plane, str, int] = "axial", *, mode: str = "max",
            thickness_mm: float | None = None, interp: str = "linear", step_mm: float | None = None,
            fill: float | None = None, backend: str | None = None, precision: str = "fast",
            order: str = "ray") -> np.ndarray:
    """Maximum, minimum or mean intensity projection (MIP, MinIP, AvgIP), full or as a thick slab.

    Parameters
    ----------
    volume : Volume
    plane_or_axis : Plane, "axial", "coronal", "sagittal", or 0, 1, 2
        * a :class:`~gpukit.Plane`: rays along its normal through each pixel;
          a slab ``thickness_mm`` thick centred on the plane, sampled every
          ``step_mm`` (default the volume's smallest voxel size), or the whole
          extent of the volume along the normal when ``thickness_mm`` is None.
        * an array axis number (0 = slices k, 1 = rows j, 2 = columns i):
          reduces the stored array directly (the bandwidth-bound fast path);
          the image is in array order (``(ny, nx)``, ``(nz, nx)``, ``(nz, ny)``).
        * a name: along LPS z, y or x, in the orientation of
          ``Plane.axial/coronal/sagittal(volume)``. When the volume's axes lie
          along the patient axes (no obliquity, no tilt) this is the array
          fast path, flipped to that orientation; otherwise the sampler on
          that plane with the volume's full extent.

        For axes and names, ``thickness_mm`` keeps the central
        ``floor(thickness / spacing) + 1`` slices.
    mode : "max", "min" or "mean"
    interp : "linear" or "nearest" (sampler path only)
    fill : value of rays that miss the volume (sampler path); default the
        lowest rescaled value.
    precision : "fast" (default) or "exact": the sampler path's arithmetic (see :func:`resample`); the array-axis
        paths are exact either way.
    order : "ray" (default) or "slice": the sampler path's order. "ray" marches each output ray every
        ``step_mm`` with trilinear reads (the reference). "slice" streams the volume slice by slice
        (shear-warp: samples where the rays cross the slices, one bilinear weight pair per slice, then a 2-D
        warp of the projected image; backends with the ``slice_order`` capability: numpy, numba). It is
        several times faster on the CPU and a close approximation, not the same numbers: its rule and how it
        differs are in :mod:`gpukit.backends._slices`. ``step_mm`` does not apply to it (one sample per slice
        crossed).

    Returns
    -------
    ndarray, float32, 2-D, in HU. Outside samples are skipped; a ray with no
    inside sample gives ``fill``.
    """
    _check_mode(mode)
    _check_interp(interp)
    _check_precision(precision)
    if order not in ORDERS:
        raise InvalidParameterError(f"order must be one of {', '.join(map(repr, ORDERS))}, got {order!r}")
    be = get_backend(backend, volume)
    if order == "slice":
        be.require(SLICE_ORDER, "project(order='slice')")
    if isinstance(plane_or_axis, (int, np.integer)) and not isinstance(plane_or_axis, bool):
        axis = int(plane_or_axis)
        if axis not in (0, 1, 2):
            raise InvalidParameterError(f"axis must be 0, 1 or 2 (array axes k, j, i), got {axis}")
        return _project_axis(volume, axis, mode, thickness_mm, be)
    if isinstance(plane_or_axis, str):
        name = plane_or_axis.lower()
        if name not in NAMED_AXES:
            raise InvalidParameterError(f"plane_or_axis must be a Plane, 0/1/2 or one of {list(NAMED_AXES)}, "
                             f"got {plane_or_axis!r}")
        plane = getattr(Plane, name)(volume)
        aligned = _aligned_axes(volume.affine)
        if aligned is not None:
            return _project_named_fast(volume, name, plane, aligned, mode, thickness_mm, be)
        plane_or_axis = plane
    if not isinstance(plane_or_axis, Plane):
        raise ParameterTypeError(f"plane_or_axis must be a Plane, an axis number or a name, got {type(plane_or_axis).__name__}")
    plane = plane_or_axis
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    aff, ns = _plane_grid(volume, plane, thickness_mm, step_mm)
    nr, nc = plane.shape
    check_work(float(ns) * nr * nc, (nr, nc), 4, "project")
    A, b = index_map(volume.affine, aff)
    out = be.xp.empty((nr, nc), np.float32)
    if order == "slice":
        return be.project_slices(data, volume.slopes, volume.intercepts, A, b, (ns, nr, nc), mode, interp, f, out,
                                 precision=precision)
    _project_grid(be, volume, data, A, b, (ns, nr, nc), mode, interp, f, out, precision)
    return out


def _project_named_fast(volume, name, plane, aligned, mode, thickness_mm, be) -> np.ndarray:
    """Array-axis projection turned to the orientation of ``plane`` (a default named plane)."""
    lps_axis = NAMED_POSITION_AXIS[name]
    # aligned[c] = (LPS axis, sign) of index column c (c = 0 -> i, 1 -> j, 2 -> k); array axis of column c is 2 - c
    col = next(c for c, (ax, _) in enumerate(aligned) if ax == lps_axis)
    img = _project_axis(volume, 2 - col, mode, thickness_mm, be)
    rest = [c for c in (2, 1, 0) if c != col]     # remaining index columns in array-axis order
    # img axes are (rest[0], rest[1]); find which one runs along v (rows) and which along u (columns)
    u_ax = int(np.argmax(np.abs(plane.u)))
    v_ax = int(np.argmax(np.abs(plane.v)))
    if aligned[rest[0]][0] != v_ax:
        img = img.T
        rest = rest[::-1]
    if aligned[rest[0]][1] * plane.v[v_ax] < 0:
        img = img[::-1]
    if aligned[rest[1]][1] * plane.u[u_ax] < 0:
        img = img[:, ::-1]
    return be.xp.ascontiguousarray(img)


def rotating_mip(volume, n_angles: int, axis: Union[str, Sequence[float]] = "z", *, mode: str = "max",
                 shape: Sequence[int] | None = None, spacing: float | None = None, interp: str = "linear",
                 fill: float | None = None, backend: str | None = None, precision: str = "fast") -> np.ndarray:
    """Projections of the whole volume from ``n_angles`` directions spinning about ``axis``.

    Frame ``n`` looks along the view direction turned by ``360 * n / n_angles``
    degrees (right-handed) about ``axis`` through the volume's centre. For the
    default ``axis="z"`` frame 0 is the coronal view (looking from anterior,
    head at the top, patient left on the image right). The axis is the image's
    vertical (rows run along ``-axis``); ``axis`` is "x", "y", "z" or an LPS
    vector.

    Every frame has the same shape, by default large enough for the volume at
    any angle (its bounding cylinder), with pixels and ray steps of
    ``spacing`` mm (default the smallest voxel size). Columns and ray samples
    sit at whole steps from the centre, so frame 0 of an axis-aligned volume
    with an odd number of columns samples exactly its voxel centres (frame 0
    then equals ``project(volume, "coronal")`` padded left and right).
    ``precision``: "fast" (default) or "exact", as in :func:`resample`.

    When ``axis`` is the slice normal of an unsheared volume (``"z"`` for an
    axial series), every ray of a frame stays in one plane of constant slice
    coordinate, one per image row; the numba backend's fast path then projects
    in slice order (shear-warp style: the volume streamed slice by slice, each
    slice's bilinear blends shared by the rows that read it), which gives the
    same numbers as ray order bit for bit (trilinear with a constant z is the
    per-slice bilinear blends, then the z blend).

    Returns
    -------
    ndarray, float32, shape ``(n_angles, nrows, ncols)``
    """
    _check_mode(mode)
    _check_interp(interp)
    _check_precision(precision)
    check_volume(volume, "rotating_mip")
    n_angles = whole(n_angles, "n_angles")
    if isinstance(axis, str):
        key = axis.lower()
        if key not in ("x", "y", "z"):
            raise InvalidParameterError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        a = np.eye(3)["xyz".index(key)]
    else:
        try:
            a = np.asarray([real(x, "axis") for x in axis], dtype=np.float64)
        except TypeError:
            raise ParameterTypeError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}") from None
        if a.shape != (3,) or not np.linalg.norm(a) > 0 or not np.isfinite(np.linalg.norm(a)):
            raise InvalidParameterError(f"axis must be 'x', 'y', 'z' or a non-zero 3-vector, got {axis!r}")
        a = a / np.linalg.norm(a)
    v = -a
    e = np.eye(3)[0] if abs(v[0]) < 0.9 else np.eye(3)[1]
    u0 = e - (e @ v) * v
    u0 /= np.linalg.norm(u0)
    step = float(min(volume.spacing)) if spacing is None else positive_mm(spacing, "spacing")
    center = np.asarray(volume.center, dtype=np.float64)
    half = int(np.ceil(cylinder_radius(volume, a) / step - 1e-6))   # pixels and ray samples at whole steps
    if shape is None:
        along = max(abs(x) for x in extent_along(volume, center, a))
        shape = (int(np.floor(2 * along / step + 1e-6)) + 1, 2 * half + 1)
    nr, nc = _grid_shape(shape, 2, "shape")
    ns = 2 * half + 1
    check_work(float(n_angles) * ns * nr * nc, (n_angles, nr, nc), 4, "rotating_mip")
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    frames = be.xp.empty((n_angles, nr, nc), np.float32)
    for n in range(n_angles):
        R = axis_rotation(a, 360.0 * n / n_angles)
        plane = Plane(center, R @ u0, v, (nr, nc), (step, step))
        A, b = index_map(volume.affine, plane.grid_affine(ns, step))
        _project_grid(be, volume, data, A, b, (ns, nr, nc), mode, interp, f, frames[n], precision)
    return frames


# -- real-time reslicing -----------------------------------------------------------------------------------------


__all__ = ["set_limits", "resample", "regularize", "regular_grid", "reslice", "project", "rotating_mip", "Reslicer", "index_map", "default_fill", "clear_caches"]
