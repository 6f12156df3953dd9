"""Where an operation's input lives, and what is derived from it once per volume (caches).

* :func:`_host_data`: the stored values as an array of the backend's kind:
  resident data as it is; a host volume on a device backend uploaded once
  and the upload cached with the volume (weakly).
* per-slice extrema (for the default fill and value ranges) and the brick
  grid of the max/min empty-space skipping, computed once per volume, data
  array and rescale.

After modifying ``volume.data`` in place call :func:`clear_caches`
(assigning a new array to ``volume.data`` needs nothing).
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ..errors import InvalidParameterError, ParameterTypeError

from ..backends import get_backend
from ..backends.codes import BRICK_SKIPPING, PRECISIONS
from .validate import check_volume

_extrema_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_brick_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_upload_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_upload_lock = threading.Lock()


def _host_data(volume, be) -> "np.ndarray":
    """The volume's stored values as a C-contiguous array of the backend's kind.

    Data the backend already holds is used as it is (a resident volume: no copy). A host volume given to a
    device backend is uploaded once and the upload is cached with the volume (weakly), so later operations
    do not upload it again (:func:`clear_caches` forgets it; ``Volume.to`` makes the residency explicit).
    A device array given to a host backend is a ``TypeError`` that names the explicit copy to make.
    """
    check_volume(volume, "this operation")
    data = volume.data
    if not be.owns(data):
        if be.location == "device":
            data = _uploaded(volume, be)
        else:
            try:
                data = be.asarray(data)
            except TypeError as exc:
                raise ParameterTypeError(f"the volume's data lives on a device ({type(data).__name__}) and the "
                                f"{be.name!r} backend computes on the host: use the volume's own backend, or copy "
                                f"it explicitly with volume.to('{be.name}') ({exc})") from None
    if not data.flags.c_contiguous:
        data = be.xp.ascontiguousarray(data)
    if data.dtype.kind not in "iuf" or data.dtype.itemsize > 8:
        raise ParameterTypeError(f"volume data must be integer or float, got {data.dtype}; convert it with astype() first")
    kernel_input = getattr(be, "kernel_input", None)
    return kernel_input(data) if kernel_input is not None else data


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


def _check_precision(precision) -> str:
    """``precision`` if it is one of :data:`gpukit.backends.codes.PRECISIONS`, else InvalidParameterError."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InvalidParameterError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, "
                                    f"got {precision!r}")
    return precision


def _fill_value(volume, data, be, fill) -> float:
    if fill is None:
        return _hu_range(volume, data, be)[0]
    if isinstance(fill, (bool, np.bool_)) or not isinstance(fill, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(f"fill must be a number, got {fill!r}")
    f = float(fill)
    if np.isnan(f):
        raise InvalidParameterError("fill must be a number, not NaN")
    if np.isfinite(f) and abs(f) > float(np.finfo(np.float32).max):   # +-inf is a fill (a MIP's -inf): kept
        raise InvalidParameterError(f"fill must fit the float32 output (|fill| <= {np.finfo(np.float32).max:.3g}, "
                                    f"or +-inf), got {fill!r}")
    return f


__all__ = ["clear_caches", "default_fill"]
