"""Pictures from a volume: named or oblique planes and projections, windowed to uint8 for PNG/GIF.

Shared by ``gpukit render`` / ``gpukit mip`` and the batch outputs, so a
picture means the same thing everywhere:

* :func:`plane_for` builds the :class:`~gpukit.Plane` of a name
  ("axial", "coronal", "sagittal", "oblique") with square display pixels (the
  smallest voxel size of the volume, unless a spacing is given), so a coronal
  image of 1 mm slices with 0.45 mm pixels is not squashed.
* :func:`display` windows an HU image: a preset name, ``(center, width)``,
  ``"auto"`` (the image's 0.5-99.5 percentile range), or ``None``: the file's
  own window, else auto; inverted for MONOCHROME1.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from .errors import InvalidParameterError, ParameterTypeError, WindowParameterError

from .arrays import is_host, to_host
from .planes import Plane, _check_volume, _finite, _unit

PLANE_NAMES = ("axial", "coronal", "sagittal", "oblique")
WindowSpec = Union[None, str, Sequence[float]]


def parse_window(text: str | None) -> WindowSpec:
    """``"lung"`` -> ``"lung"``; ``"-600,1500"`` -> ``(-600.0, 1500.0)`` (center, width); ``None``/"file" -> None."""
    if text is None or text == "file":
        return None
    if not isinstance(text, str):
        raise ParameterTypeError(f"a window is given as text ('lung', '-600,1500', 'auto', 'file'), got {text!r}")
    parts = text.replace(":", ",").split(",")
    if len(parts) == 2:
        try:
            return float(parts[0]), float(parts[1])
        except ValueError:
            pass
    return text


def plane_for(volume, name: str, *, position_mm: float | None = None, index: float | None = None,
              angles_deg: Sequence[float] | None = None, normal: Sequence[float] | None = None,
              up: Sequence[float] | None = None, spacing: float | None = None,
              shape: Sequence[int] | None = None) -> Plane:
    """The plane ``name`` through ``volume`` with square pixels (``spacing`` mm, default the smallest voxel size).

    ``oblique`` takes either ``angles_deg`` (rotations about x, y, z of the
    axial plane through the centre, :meth:`Plane.rotated`) or ``normal`` (and
    optionally ``up``, default the LPS axis least aligned with the normal
    pointing to the head or the front), through the volume's centre or
    ``position_mm`` along the normal from it.
    """
    _check_volume(volume)
    sp = float(min(volume.spacing)) if spacing is None else _finite(spacing, "spacing")
    if position_mm is not None:
        position_mm = _finite(position_mm, "position_mm")
    if name in ("axial", "coronal", "sagittal"):
        return getattr(Plane, name)(volume, position_mm=position_mm, index=index, shape=shape, spacing=sp)
    if name != "oblique":
        raise InvalidParameterError(f"plane must be one of {PLANE_NAMES}, got {name!r}")
    if normal is None:
        plane = Plane.rotated(volume, angles_deg if angles_deg is not None else (0.0, 0.0, 0.0), shape=shape,
                              spacing=sp)
        return plane if position_mm is None else plane.moved(position_mm)
    n = _unit(normal, "normal")
    if up is None:
        up = (0.0, 0.0, 1.0) if abs(n[2]) < 0.9 else (0.0, -1.0, 0.0)
    center = np.asarray(volume.center, dtype=np.float64) + (0.0 if position_mm is None else position_mm) * n
    if shape is None:
        probe = Plane.oblique(center, n, up, (1, 1), sp)
        return Plane._fit(volume, center, probe.u, probe.v, None, sp)
    return Plane.oblique(center, n, up, shape, sp)


def auto_window(image: Any, xp: Any = np, projection: bool = False) -> tuple[float, float]:
    """``(center, width)`` from the image's own histogram: its 0.5-99.5 percentiles (of the object's values, for
    a projection).

    Projections of CT are multimodal: air (and the fill outside the
    scanned field) against the object. A window over both leaves the object a
    narrow band at the top (a MIP of a head came out 34% white) and air
    grey. So the object is found first: Otsu's threshold on a 256-bin
    histogram splits off the lower class while the two classes are clearly
    separated (:data:`SEPARATED`) and the upper one holds 2-98% of the pixels
    (up to three times: outside the field, air, the rest), and the window
    spans the percentiles of what remains. Width at least 1.

    ``image`` is an ``xp`` array (numpy, or a device array with its
    namespace): the histogram and percentiles are computed where the image
    lives and only 256 counts and two numbers come back.
    """
    vals = image.astype(xp.float64) if image.dtype != np.float64 else image
    vals = vals[xp.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    for _ in range(3 if projection else 0):   # outside | air | object: peel off clearly separated lower classes
        counts, edges = xp.histogram(vals, bins=256)
        t, eta = _otsu(to_host(counts).astype(np.float64), to_host(edges))
        if t is None or eta < SEPARATED:
            break
        upper = vals[vals > t]
        if not 0.02 * vals.size <= upper.size <= 0.98 * vals.size:
            break
        vals = upper
    lo, hi = (float(v) for v in to_host(xp.stack([xp.percentile(vals, 0.5), xp.percentile(vals, 99.5)])))
    return float((lo + hi) / 2), float(max(hi - lo, 1.0))


#: how separated two classes must be (Otsu's between-class share of the variance) to be told apart
SEPARATED = 0.7     # a single normal mode gives 2/pi = 0.64


def _otsu(counts: np.ndarray, edges: np.ndarray) -> tuple[float | None, float]:
    """Otsu's threshold (the bin edge that maximises the between-class variance) and the share of the variance
    between the classes (1: two spikes; near 0.6 or below: one mode); ``(None, 0)`` for a one-valued image."""
    total = counts.sum()
    if total <= 0 or edges[-1] <= edges[0]:
        return None, 0.0
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)[:-1]
    w1 = total - w0
    s0 = np.cumsum(counts * centers)[:-1]
    ok = (w0 > 0) & (w1 > 0)
    if not ok.any():
        return None, 0.0
    m0 = np.where(ok, s0 / np.where(w0 > 0, w0, 1), 0)
    m1 = np.where(ok, (s0[-1] + counts[-1] * centers[-1] - s0) / np.where(w1 > 0, w1, 1), 0)
    between = np.where(ok, w0 * w1 * (m0 - m1) ** 2, -1.0)
    k = int(np.argmax(between))
    mean = (counts * centers).sum() / total
    var = (counts * (centers - mean) ** 2).sum() / total
    return float(edges[1:-1][k]), float(between[k] / total ** 2 / var) if var > 0 else 0.0


def display(image_hu: Any, window: WindowSpec = None, volume=None, backend: str | None = None,
            invert: bool | None = None, projection: bool = False) -> np.ndarray:
    """uint8 image(s) of HU values: preset name, ``(center, width)``, ``"auto"``, or None (the file's window, else auto).

    ``invert`` defaults to the volume's MONOCHROME1 (smallest value white); ``projection``: the image is a
    MIP/MinIP/AvgIP, whose auto window is the object's range (:func:`auto_window`). A picture is a host edge: the
    result is always a numpy array. A device image (an operation's result on a resident volume) is
    windowed on its device by its backend, and only the uint8 result is copied back.
    """
    from .backends import get_backend
    from .ops.intensity import file_window, window as _window

    img = image_hu
    if is_host(img):
        be_name = backend if backend is None or get_backend(backend).location == "host" else "numpy"
        xp = np
    else:
        be = get_backend(backend, volume)
        if not be.owns(img):
            raise ParameterTypeError(f"display: the image is a {type(img).__name__} and the {be.name!r} backend cannot "
                            f"compute on it; pass the backend of the volume it came from")
        be_name, xp = be.name, be.xp
    if img.dtype.kind not in "biuf" or img.dtype.itemsize > 8:
        raise ParameterTypeError(f"display: the image must hold real numbers, got dtype {img.dtype}")
    if img.dtype.kind != "f":
        img = img.astype(xp.float32)
    kw: dict = {}
    if isinstance(window, str) and window == "auto":
        c, w = auto_window(img, xp, projection)
        kw.update(center=c, width=max(w, 1.0))
    elif isinstance(window, str):
        kw["preset"] = window
    elif window is not None:
        try:
            c, w = window
            if isinstance(c, (str, bytes)) or isinstance(w, (str, bytes)):
                raise TypeError
            kw.update(center=float(c), width=float(w))
        except (TypeError, ValueError):
            raise WindowParameterError(f"window must be a preset name, 'auto', (center, width) or None, "
                                       f"got {window!r}") from None
    else:
        fw = file_window(volume) if volume is not None else None
        c, w = fw if fw is not None else auto_window(img, xp, projection)
        kw.update(center=c, width=max(w, 1.0))
    if invert is None:
        invert = bool(volume is not None and str(volume.meta.get("photometric_interpretation") or "").upper()
                      == "MONOCHROME1")
    return to_host(_window(img, backend=be_name, invert=invert, **kw))


def to_square_pixels(image: np.ndarray, volume, name: str) -> np.ndarray:
    """A named projection's image (rows along ``Plane.<name>(volume).v``) resized so its pixels are square.

    Display only: the rows or the columns are stretched (bilinear) to the
    smaller of the two pixel sizes; an image whose pixels are already square
    (within 1%) is returned as it is.
    """
    from PIL import Image

    if name not in ("axial", "coronal", "sagittal"):
        raise InvalidParameterError(f"name must be 'axial', 'coronal' or 'sagittal', got {name!r}")
    if getattr(image, "ndim", None) != 2:
        raise InvalidParameterError(f"image must be 2-D, got shape {getattr(image, 'shape', None)}")
    plane = getattr(Plane, name)(volume)
    dv, du = plane.spacing
    if abs(dv - du) <= 0.01 * min(dv, du):
        return image
    s = min(dv, du)
    nr, nc = image.shape
    size = (max(1, int(round(nc * du / s))), max(1, int(round(nr * dv / s))))
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BILINEAR))


__all__ = ["PLANE_NAMES", "to_square_pixels", "parse_window", "plane_for", "auto_window", "display"]
