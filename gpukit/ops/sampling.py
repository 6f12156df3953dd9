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

import threading
import time
import weakref
from typing import Sequence, Union

import numpy as np

from ..backends import get_backend, resolve_name
from ..backends import codes
from ..backends.codes import BRICK_SKIPPING, BRICKED_LAYOUT, CONCURRENT_CALLS, FUNCTION_CODES, FUSED_WINDOW
from ..planes import Plane, axis_rotation, cylinder_radius, extent_along, NAMED_AXES, NAMED_POSITION_AXIS

INTERPS = tuple(codes.INTERPS)
PROJECTION_MODES = codes.PROJECTION_MODES
#: tolerance for snapping index-map entries to integers (see module docstring)
SNAP = 1e-9
#: the Reslicer keeps a bricked copy of volumes larger than this (numba backend, layout="auto")
BRICKED_MIN_BYTES = 8 << 20

_extrema_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_brick_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_upload_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_upload_lock = threading.Lock()


# -- host-side helpers --------------------------------------------------------------------------------
def _check_interp(interp: str) -> str:
    if interp not in INTERPS:
        raise ValueError(f"interp must be one of {INTERPS}, got {interp!r}")
    return interp


def _check_mode(mode: str) -> str:
    if mode not in PROJECTION_MODES:
        raise ValueError(f"mode must be one of {PROJECTION_MODES}, got {mode!r}")
    return mode


def _host_data(volume, be) -> "np.ndarray":
    """The volume's stored values as a C-contiguous array of the backend's kind.

    Data the backend already holds is used as it is (a resident volume: no copy). A host volume given to a
    device backend is uploaded once and the upload is cached with the volume (weakly), so later operations
    do not upload it again (:func:`clear_caches` forgets it; ``Volume.to`` makes the residency explicit).
    A device array given to a host backend is a ``TypeError`` that names the explicit copy to make.
    """
    data = volume.data
    if not be.owns(data):
        if be.location == "device":
            data = _uploaded(volume, be)
        else:
            try:
                data = be.asarray(data)
            except TypeError as exc:
                raise TypeError(f"the volume's data lives on a device ({type(data).__name__}) and the "
                                f"{be.name!r} backend computes on the host: use the volume's own backend, or copy "
                                f"it explicitly with volume.to('{be.name}') ({exc})") from None
    if not data.flags.c_contiguous:
        data = be.xp.ascontiguousarray(data)
    if data.dtype.kind not in "iuf" or data.dtype.itemsize > 8:
        raise TypeError(f"volume data must be integer or float, got {data.dtype}; convert it with astype() first")
    return data


def _uploaded(volume, be):
    """``volume.data`` on ``be``'s device, uploaded once per volume, data array and backend (weak cache)."""
    key = (_data_key(volume, volume.data), be.name)
    with _upload_lock:
        hit = _upload_cache.get(volume)
        if hit is not None and hit[0] == key:
            return hit[1]
        dev = be.asarray(volume.data)
        be.prepare_rescale(volume.slopes, volume.intercepts)
        try:
            _upload_cache[volume] = (key, dev)
        except TypeError:  # not weak-referenceable: no cache
            pass
        return dev


def _snap(x: np.ndarray) -> np.ndarray:
    r = np.round(x)
    return np.where(np.abs(x - r) < SNAP, r, x)


def index_map(volume_affine: np.ndarray, output_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (3x3) and ``b`` (3,) with ``(i, j, k) = A @ (c, r, s) + b``.

    ``output_affine`` maps output ``(c, r, s, 1)`` to LPS; the result is
    ``inv(volume_affine) @ output_affine`` with near-integer entries snapped.
    """
    M = np.linalg.solve(np.asarray(volume_affine, dtype=np.float64), np.asarray(output_affine, dtype=np.float64))
    return np.ascontiguousarray(_snap(M[:3, :3])), np.ascontiguousarray(_snap(M[:3, 3]))


def _extrema(volume, data: np.ndarray, be) -> tuple[np.ndarray, np.ndarray]:
    key = _data_key(volume, data)
    hit = _extrema_cache.get(volume)
    if hit is not None and hit[0] == key:
        return hit[1]
    ext = be.slice_extrema(data)
    try:
        _extrema_cache[volume] = (key, ext)
    except TypeError:  # not weak-referenceable: no cache
        pass
    return ext


def clear_caches(volume=None) -> None:
    """Forget the cached per-slice extrema, brick grids and device uploads (of one volume, or of all)."""
    for cache in (_extrema_cache, _brick_cache, _upload_cache):
        if volume is None:
            cache.clear()
        else:
            cache.pop(volume, None)


def _data_key(volume, data) -> tuple:
    iface = getattr(data, "__cuda_array_interface__", None) or getattr(data, "__array_interface__", None)
    return (id(volume.data), iface["data"][0] if iface else id(data), tuple(data.shape), data.dtype.str)


def _bricks(volume, data, be, build: bool = True):
    """The backend's empty-space skipping grid for max/min projections (built once per volume and rescale), or None.

    With ``build=False`` only a grid already cached is returned.
    """
    if not be.has(BRICK_SKIPPING):
        return None
    key = (_data_key(volume, data), np.asarray(volume.slopes, np.float64).tobytes(),
           np.asarray(volume.intercepts, np.float64).tobytes())
    hit = _brick_cache.get(volume)
    if hit is not None and hit[0] == key:
        return hit[1]
    if not build:
        return None
    bricks = be.brick_extrema(data, volume.slopes, volume.intercepts)
    try:
        _brick_cache[volume] = (key, bricks)
    except TypeError:
        pass
    return bricks


def _project_grid(be, volume, data, A, b, grid, mode, interp, fill, out):
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
                                  bricks=bricks)
    return be.sample_grid(data, volume.slopes, volume.intercepts, A, b, grid, mode, interp, fill, out)


def _hu_range(volume, data, be) -> tuple[float, float]:
    lo, hi = _extrema(volume, data, be)
    s = np.asarray(volume.slopes, dtype=np.float64)
    t = np.asarray(volume.intercepts, dtype=np.float64)
    a, c = lo * s + t, hi * s + t
    return float(np.minimum(a, c).min()), float(np.maximum(a, c).max())


def default_fill(volume, backend: str | None = None) -> float:
    """The fill value used when none is given: the lowest rescaled value in the volume (air for CT)."""
    be = get_backend(backend, volume)
    return _hu_range(volume, _host_data(volume, be), be)[0]


def _nearest_dtype(volume, data, be, fill: float) -> type:
    """int16 when every rescaled value and the fill are exact int16 values, else float32."""
    s = np.asarray(volume.slopes, dtype=np.float64)
    t = np.asarray(volume.intercepts, dtype=np.float64)
    if data.dtype.kind not in "iu" or np.any(s != np.round(s)) or np.any(t != np.round(t)) or fill != round(fill):
        return np.float32
    lo, hi = _hu_range(volume, data, be)
    if lo >= -32768 and hi <= 32767 and -32768 <= fill <= 32767:
        return np.int16
    return np.float32


def _fill_value(volume, data, be, fill) -> float:
    if fill is None:
        return _hu_range(volume, data, be)[0]
    f = float(fill)
    if np.isnan(f):
        raise ValueError("fill must be a number, not NaN")
    return f


def _grid_shape(shape, n: int, name: str) -> tuple[int, ...]:
    shp = tuple(int(x) for x in np.asarray(shape).ravel())
    if len(shp) != n or min(shp) < 1:
        raise ValueError(f"{name} must be {n} positive integers, got {shape!r}")
    return shp


def _window_stage(window) -> tuple:
    """The kernels' fused output stage for ``window=(center, width)``: DICOM LINEAR (C.11.2.1.2.1) to 0..255."""
    center, width = (float(x) for x in window)
    if not width >= 1.0:
        raise ValueError(f"window width must be >= 1 for LINEAR (PS3.3 C.11.2.1.2.1), got {width:g}")
    return (center, width, FUNCTION_CODES["LINEAR"], 0.0, 255.0, False)


def _apply_window(hu, window, be):
    """The same output stage as a second pass (:func:`gpukit.window` on the HU image, on ``be``), for backends
    without the fused stage."""
    from .intensity import window as _window

    center, width = (float(x) for x in window)
    return _window(hu, center, width, backend=be.name)


def _volume_meta(volume, **extra) -> dict:
    keep = ("modality", "series_uid", "study_uid", "frame_of_reference_uid", "series_description", "series_number",
            "rescale_type", "window_center", "window_width", "voi_lut_function", "photometric_interpretation")
    meta = {k: volume.meta[k] for k in keep if k in volume.meta}
    meta.update(extra)
    return meta


# -- resample and reslice ----------------------------------------------------------------------------------
def resample(volume, affine, shape: Sequence[int], *, interp: str = "linear", fill: float | None = None,
             backend: str | None = None):
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
    shp = _grid_shape(shape, 3, "shape")
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    A, b = index_map(volume.affine, affine)
    dtype = np.float32 if interp == "linear" else _nearest_dtype(volume, data, be, f)
    out = be.xp.empty(shp, dtype=dtype)
    be.sample_grid(data, volume.slopes, volume.intercepts, A, b, shp, "none", interp, f, out)
    from ..volume import Volume

    return Volume(out, np.asarray(affine, dtype=np.float64), _volume_meta(volume, derived="resampled"),
                  backend=volume.backend)


def reslice(volume, plane: Plane, *, interp: str = "linear", fill: float | None = None,
            window: tuple[float, float] | None = None, backend: str | None = None) -> np.ndarray:
    """The volume sampled on a :class:`~gpukit.Plane`: a 2-D ``(nrows, ncols)`` image.

    ``resample`` with a one-slice grid built from the plane. Returns float32
    HU, or uint8 when ``window=(center, width)`` is given (DICOM LINEAR window
    applied to the HU image).

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
        raise TypeError(f"plane must be a gpukit.Plane (e.g. Plane.axial(volume)), got {type(plane).__name__}")
    _check_interp(interp)
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    A, b = index_map(volume.affine, plane.affine)
    nr, nc = plane.shape
    out = be.xp.empty((1, nr, nc), dtype=np.float32)
    if window is not None and be.has(FUSED_WINDOW):     # rescale, sample and window in one pass
        out = be.xp.empty((1, nr, nc), dtype=np.uint8)
        be.sample_grid(data, volume.slopes, volume.intercepts, A, b, (1, nr, nc), "none", interp, f, out,
                       window=_window_stage(window))
        return out[0]
    be.sample_grid(data, volume.slopes, volume.intercepts, A, b, (1, nr, nc), "none", interp, f, out)
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
    c0, c1 = A[:3, 0], A[:3, 1]
    n = np.cross(c0, c1)
    n /= np.linalg.norm(n)
    pos = _slice_positions(volume)
    if (pos[-1] - pos[0]) @ n < 0:
        n = -n
    d = (pos - pos[0]) @ n
    if spacing_mm is None:
        if nz == 1:
            return A.copy(), (nz, ny, nx)
        steps = np.diff(np.sort(d))
        dz = float(np.median(steps[steps > 1e-6])) if np.any(steps > 1e-6) else 1.0
        du, dv = float(np.linalg.norm(c0)), float(np.linalg.norm(c1))
    else:
        dz = du = dv = float(spacing_mm)
        if not dz > 0:
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    u, v = c0 / np.linalg.norm(c0), c1 / np.linalg.norm(c1)
    # in-plane offsets of every slice's first voxel, in output pixels; the corners of each slice after them
    inplane = (pos - pos[0]) - np.outer(d, n)
    a = inplane @ u / du
    b = inplane @ v / dv
    ext_i = (nx - 1) * np.linalg.norm(c0) / du
    ext_j = (ny - 1) * np.linalg.norm(c1) / dv
    lo_i, hi_i = np.floor(min(0.0, a.min()) + 1e-6), np.ceil(max(0.0, a.max()) + ext_i - 1e-6)
    lo_j, hi_j = np.floor(min(0.0, b.min()) + 1e-6), np.ceil(max(0.0, b.max()) + ext_j - 1e-6)
    ns = int(np.floor((d.max() - d.min()) / dz + 1e-6)) + 1
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = u * du, v * dv, n * dz
    out[:3, 3] = pos[0] + float(d.min()) * n + lo_i * du * u + lo_j * dv * v
    return out, (ns, int(hi_j - lo_j) + 1, int(hi_i - lo_i) + 1)


def _slice_positions(volume) -> np.ndarray:
    """LPS position of each slice's first voxel: the true ones of an irregular series, else from the affine."""
    true = volume.meta.get("slice_positions_lps")
    if true is not None and len(true) == volume.shape[0]:
        return np.asarray(true, dtype=np.float64).reshape(-1, 3)
    A = np.asarray(volume.affine, dtype=np.float64)
    return A[:3, 3] + np.outer(np.arange(volume.shape[0]), A[:3, 2])


def regularize(volume, spacing_mm: float | None = None, *, interp: str = "linear", fill: float | None = None,
               backend: str | None = None):
    """The volume on a regular, unsheared grid (:func:`regular_grid`): untilts a tilted CT, evens irregular slices.

    A sheared (tilted) volume is one :func:`resample`. A series loaded with
    ``on_irregular="keep"`` (slices at uneven positions, kept in
    ``meta["slice_positions_lps"]``) is resampled slice by slice: each output
    slice blends the two input slices that bracket it along the normal, at
    their true positions (linear), or takes the nearer one (nearest).

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
    aff, shape = regular_grid(volume, spacing_mm)
    true = volume.meta.get("slice_positions_lps")
    if true is None or volume.shape[0] < 2:
        return resample(volume, aff, shape, interp=interp, fill=fill, backend=backend)
    pos = _slice_positions(volume)
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    n = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    d = (pos - pos[0]) @ n
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    dtype = np.float32 if interp == "linear" else _nearest_dtype(volume, data, be, f)
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
                       out[s:s + 1])
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
    if thickness_mm < 0:
        raise ValueError(f"thickness_mm must be >= 0, got {thickness_mm}")
    m = min(n, int(np.floor(thickness_mm / spacing + 1e-6)) + 1)
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
    step = float(min(volume.spacing)) if step_mm is None else float(step_mm)
    if step <= 0:
        raise ValueError(f"step_mm must be positive, got {step_mm}")
    if thickness_mm is None:
        dmin, dmax = extent_along(volume, plane.center, plane.normal)
        ns = int(np.floor((dmax - dmin) / step + 1e-6)) + 1
        return plane.grid_affine(ns, step, first_mm=dmin), ns
    if thickness_mm < 0:
        raise ValueError(f"thickness_mm must be >= 0, got {thickness_mm}")
    ns = int(np.floor(float(thickness_mm) / step + 1e-6)) + 1
    return plane.grid_affine(ns, step), ns


def project(volume, plane_or_axis: Union[Plane, str, int] = "axial", *, mode: str = "max",
            thickness_mm: float | None = None, interp: str = "linear", step_mm: float | None = None,
            fill: float | None = None, backend: str | None = None) -> np.ndarray:
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

    Returns
    -------
    ndarray, float32, 2-D, in HU. Outside samples are skipped; a ray with no
    inside sample gives ``fill``.
    """
    _check_mode(mode)
    _check_interp(interp)
    be = get_backend(backend, volume)
    if isinstance(plane_or_axis, (int, np.integer)) and not isinstance(plane_or_axis, bool):
        axis = int(plane_or_axis)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2 (array axes k, j, i), got {axis}")
        return _project_axis(volume, axis, mode, thickness_mm, be)
    if isinstance(plane_or_axis, str):
        name = plane_or_axis.lower()
        if name not in NAMED_AXES:
            raise ValueError(f"plane_or_axis must be a Plane, 0/1/2 or one of {list(NAMED_AXES)}, "
                             f"got {plane_or_axis!r}")
        plane = getattr(Plane, name)(volume)
        aligned = _aligned_axes(volume.affine)
        if aligned is not None:
            return _project_named_fast(volume, name, plane, aligned, mode, thickness_mm, be)
        plane_or_axis = plane
    if not isinstance(plane_or_axis, Plane):
        raise TypeError(f"plane_or_axis must be a Plane, an axis number or a name, got {type(plane_or_axis).__name__}")
    plane = plane_or_axis
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    aff, ns = _plane_grid(volume, plane, thickness_mm, step_mm)
    A, b = index_map(volume.affine, aff)
    nr, nc = plane.shape
    out = be.xp.empty((nr, nc), np.float32)
    _project_grid(be, volume, data, A, b, (ns, nr, nc), mode, interp, f, out)
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
                 fill: float | None = None, backend: str | None = None) -> np.ndarray:
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

    Returns
    -------
    ndarray, float32, shape ``(n_angles, nrows, ncols)``
    """
    _check_mode(mode)
    _check_interp(interp)
    n_angles = int(n_angles)
    if n_angles < 1:
        raise ValueError(f"n_angles must be >= 1, got {n_angles}")
    if isinstance(axis, str):
        key = axis.lower()
        if key not in ("x", "y", "z"):
            raise ValueError(f"axis must be 'x', 'y', 'z' or a 3-vector, got {axis!r}")
        a = np.eye(3)["xyz".index(key)]
    else:
        a = np.asarray(axis, dtype=np.float64).reshape(3)
        a = a / np.linalg.norm(a)
    v = -a
    e = np.eye(3)[0] if abs(v[0]) < 0.9 else np.eye(3)[1]
    u0 = e - (e @ v) * v
    u0 /= np.linalg.norm(u0)
    step = float(min(volume.spacing)) if spacing is None else float(spacing)
    center = np.asarray(volume.center, dtype=np.float64)
    half = int(np.ceil(cylinder_radius(volume, a) / step - 1e-6))   # pixels and ray samples at whole steps
    if shape is None:
        along = max(abs(x) for x in extent_along(volume, center, a))
        shape = (int(np.floor(2 * along / step + 1e-6)) + 1, 2 * half + 1)
    nr, nc = _grid_shape(shape, 2, "shape")
    ns = 2 * half + 1
    be = get_backend(backend, volume)
    data = _host_data(volume, be)
    f = _fill_value(volume, data, be, fill)
    frames = be.xp.empty((n_angles, nr, nc), np.float32)
    for n in range(n_angles):
        R = axis_rotation(a, 360.0 * n / n_angles)
        plane = Plane(center, R @ u0, v, (nr, nc), (step, step))
        A, b = index_map(volume.affine, plane.grid_affine(ns, step))
        _project_grid(be, volume, data, A, b, (ns, nr, nc), mode, interp, f, frames[n])
    return frames


# -- real-time reslicing -----------------------------------------------------------------------------------------
class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()
_SERIAL_LOCK = threading.Lock()


def _serialising_lock(be):
    """A lock when ``be``'s kernels may not run from two threads at once (no ``CONCURRENT_CALLS`` capability:
    Numba's ``workqueue`` threading layer aborts the process then), else nothing."""
    return _NO_LOCK if be.has(CONCURRENT_CALLS) else _SERIAL_LOCK


class Reslicer:
    """Reslice one volume at many poses with the lowest latency the backend allows.

    Holds the stored array (contiguous, on the host for the CPU backends) and
    its per-slice rescale, so each call only builds the 3x3 index map and runs
    the kernel; the kernels are compiled (or loaded from Numba's cache) at
    construction; output buffers are reused per plane shape and per thread.

    Thread safety: one Reslicer may be called from several threads at once
    (a server answering several views). Each thread has its own output
    buffers, so a call never overwrites another thread's image; the volume and
    its bricked copy are only read. Where the backend's parallel runtime
    cannot run two kernels at once (Numba's ``workqueue`` threading layer,
    used when neither TBB nor OpenMP is installed) calls are serialised by a
    lock instead of crashing the process.

    With the numba backend and a volume larger than the CPU caches
    (``layout="auto"``: over 8 MiB), the Reslicer keeps its own copy of the
    stored values in 4x4x4 bricks: an oblique plane then reads about one
    cache line per sample instead of four, which is what limits reslicing a
    large volume (same values, bit for bit; costs one more copy of the
    volume in memory and a pass at construction).

    Parameters
    ----------
    volume : Volume
    backend : str, optional
    interp : "linear" or "nearest"
    fill : float, optional (default: the volume's lowest rescaled value)
    window : (center, width), optional
        When given, :meth:`reslice` returns uint8 (DICOM LINEAR window).
    layout : "auto", "bricked" or "plain"

    Attributes
    ----------
    latencies : list of float
        Wall time (s) of every :meth:`reslice` call, for p50/p99 (:meth:`latency`).

    Examples
    --------
    >>> import numpy as np, gpukit
    >>> vol = gpukit.Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    >>> rs = gpukit.Reslicer(vol, backend="numpy")
    >>> img = rs.reslice(gpukit.Plane.rotated(vol, (0, 0, 30)))
    >>> img.dtype, len(rs.latencies)
    (dtype('float32'), 1)
    """

    def __init__(self, volume, backend: str | None = None, interp: str = "linear", fill: float | None = None,
                 window: tuple[float, float] | None = None, layout: str = "auto"):
        self.volume = volume
        self.backend = resolve_name(backend, volume)
        self.interp = _check_interp(interp)
        self.window = window
        self._be = get_backend(self.backend)
        self._data = _host_data(volume, self._be)
        self._slopes = np.ascontiguousarray(volume.slopes, dtype=np.float64)
        self._intercepts = np.ascontiguousarray(volume.intercepts, dtype=np.float64)
        self.fill = _fill_value(volume, self._data, self._be, fill)
        if layout not in ("auto", "bricked", "plain"):
            raise ValueError(f"layout must be 'auto', 'bricked' or 'plain', got {layout!r}")
        can_brick = self._be.has(BRICKED_LAYOUT)
        if layout == "bricked" and not can_brick:
            raise ValueError(f"the {self.backend!r} backend has no bricked layout; use layout='plain' or 'auto'")
        use = can_brick and (layout == "bricked" or (layout == "auto" and self._data.nbytes > BRICKED_MIN_BYTES))
        self.layout = "bricked" if use else "plain"
        self._bricked = self._be.to_bricks(self._data) if use else None
        self._local = threading.local()     # per-thread output buffers: calls from threads never share one
        self.latencies: list[float] = []
        self._be.sampler_warmup(self._data, modes=("none",), interps=(interp,))
        # one real call through the whole path (compiles the bricked kernel, allocates), not counted
        self.reslice(Plane.axial(volume, shape=(2, 2)))
        self._serial = _serialising_lock(self._be)
        self.latencies.clear()

    def reslice(self, plane: Plane, out: np.ndarray | None = None) -> np.ndarray:
        """The image of ``plane`` (float32 HU, or uint8 with a window).

        Without ``out`` the result is a view of a buffer this Reslicer reuses:
        the next call *from the same thread* with the same plane shape
        overwrites it (copy it to keep it); calls from other threads use their
        own buffers. ``out`` may be a C-contiguous ``(nrows, ncols)`` array of the
        backend's kind: float32, or uint8 with a window. With a window and a
        backend that has the fused stage, sampling, rescale and window are one pass.
        """
        t0 = time.perf_counter()
        nr, nc = plane.shape
        fused = self.window is not None and self._be.has(FUSED_WINDOW)
        stage = _window_stage(self.window) if fused else None
        want = np.dtype(np.uint8) if self.window is not None else np.dtype(np.float32)
        if out is not None and (tuple(out.shape) != (nr, nc) or out.dtype != want or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {want} array of shape {(nr, nc)}")
        if out is not None and (fused or self.window is None):
            buf = out.reshape(1, nr, nc)
        else:
            buffers = getattr(self._local, "buffers", None)
            if buffers is None:
                buffers = self._local.buffers = {}
            dt = np.uint8 if fused else np.float32
            buf = buffers.get((nr, nc, dt))
            if buf is None:
                buf = buffers[(nr, nc, dt)] = self._be.xp.empty((1, nr, nc), dt)
        A, b = index_map(self.volume.affine, plane.affine)
        with getattr(self, "_serial", _NO_LOCK):
            if self._bricked is not None:
                self._be.sample_grid_bricked(self._bricked, self._data.shape, self._slopes, self._intercepts, A, b,
                                             (1, nr, nc), self.interp, self.fill, buf, window=stage)
            else:
                self._be.sample_grid(self._data, self._slopes, self._intercepts, A, b, (1, nr, nc), "none",
                                     self.interp, self.fill, buf, window=stage)
        img = buf[0]
        if self.window is not None and not fused:
            img = _apply_window(img, self.window, self._be)
            if out is not None:
                out[...] = img
                img = out
        self.latencies.append(time.perf_counter() - t0)
        return img

    def latency(self) -> dict:
        """p50, p99 and max of the recorded latencies (s) and their count."""
        if not self.latencies:
            return {"n": 0}
        a = np.asarray(self.latencies)
        return {"n": int(a.size), "p50_s": float(np.percentile(a, 50)), "p99_s": float(np.percentile(a, 99)),
                "max_s": float(a.max())}


__all__ = ["resample", "regularize", "regular_grid", "reslice", "project", "rotating_mip", "Reslicer", "index_map", "default_fill", "clear_caches"]
