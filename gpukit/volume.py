"""The :class:`Volume`: a 3-D array with its exact patient-space geometry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidParameterError, ParameterTypeError

from . import geometry
from .geometry import check_affine


def _check_data_dtype(data: Any) -> None:
    """Refuse, at construction, stored values no operation can use: complex, object, strings, bytes, records,
    dates and floats wider than 64 bits (booleans are kept: a mask can still be written or converted)."""
    try:
        dt = np.dtype(data.dtype)
    except (AttributeError, TypeError):
        return          # another library's array whose dtype numpy cannot name: its backend decides
    if dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8):
        return
    raise ParameterTypeError(f"Volume data must hold integers or real floats (up to 64 bits), got dtype {dt}; "
                             "convert it first, e.g. data.astype(np.int16) or data.astype(np.float32)")


class Volume:
    """A stack of slices with a 4x4 LPS affine and the metadata needed to interpret it.

    Parameters
    ----------
    data : array, shape ``(nz, ny, nx)``
        Stored values (raw, not rescaled), C order, ``data[k, j, i]``. A numpy
        array, or a CuPy array for the GPU backends.
    affine : (4, 4) array
        ``affine @ (i, j, k, 1)`` is the LPS position (mm) of the centre of
        ``data[k, j, i]``. May be sheared (gantry tilt).
    meta : dict, optional
        Metadata. Keys gpukit sets when loading DICOM: ``modality``,
        ``series_uid``, ``study_uid``, ``frame_of_reference_uid``,
        ``series_description``, ``series_number``, ``rescale_slope`` and
        ``rescale_intercept`` (arrays of length ``nz``, one per slice),
        ``rescale_type``, ``window_center`` / ``window_width`` (lists from the
        file), ``voi_lut_function``, ``photometric_interpretation``,
        ``pixel_padding_value``, ``bits_stored``, ``signed``, ``tilt_deg``,
        ``spacing_report`` (dict), ``slice_positions`` (offsets along the
        normal, mm), ``files`` (the source files, in slice order).
    backend : str, optional
        Backend used by operations on this volume when none is given per call.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((2, 3, 4), np.int16), np.diag([0.5, 0.5, 2.0, 1.0]))
    >>> v.shape, v.spacing
    ((2, 3, 4), (2.0, 0.5, 0.5))
    >>> v.index_to_world([3, 2, 1])
    array([1.5, 1. , 2. ])
    """

    def __init__(self, data: Any, affine: Any, meta: dict | None = None, backend: str | None = None):
        if getattr(data, "ndim", None) != 3:
            raise InvalidParameterError(f"Volume data must be 3-D (nz, ny, nx), got shape {getattr(data, 'shape', None)}")
        if min(int(x) for x in data.shape) < 1:
            raise InvalidParameterError(f"Volume data has an empty axis (shape {tuple(data.shape)}): a volume needs "
                                        "at least one slice, row and column")
        _check_data_dtype(data)
        aff = check_affine(affine, "affine")
        if isinstance(data, np.ndarray) and not data.dtype.isnative:
            data = data.astype(data.dtype.newbyteorder("="))   # big-endian: converted once (kernels read native)
        if isinstance(data, np.ndarray) and data.dtype == np.float16:
            data = data.astype(np.float32)    # half floats: widened once, exactly (not every kernel reads float16)
        if meta is not None and not isinstance(meta, Mapping):
            raise ParameterTypeError(f"meta must be a dict, got {type(meta).__name__}")
        self.data = data
        self.affine = aff
        self.meta: dict = dict(meta or {})
        self.backend = backend
        nz = data.shape[0]
        for key, default in (("rescale_slope", 1.0), ("rescale_intercept", 0.0)):
            raw = self.meta.get(key, default)
            try:
                if np.iscomplexobj(raw):
                    raise TypeError("complex")
                v = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidParameterError(f"meta[{key!r}] must be a real number or one per slice, got "
                                            f"{raw!r}") from None
            self.meta[key] = np.full(nz, float(v)) if v.ndim == 0 else v
            if self.meta[key].shape != (nz,):
                raise InvalidParameterError(f"meta[{key!r}] must have one value per slice ({nz}), got {self.meta[key].shape}")
            if not np.all(np.isfinite(self.meta[key])):
                bad = self.meta[key][~np.isfinite(self.meta[key])]
                raise InvalidParameterError(f"meta[{key!r}] must be finite, got {bad[:3].tolist()} among its values")

    # -- shape and geometry --------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nz, ny, nx)``."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm in array-axis order ``(slice step, row spacing, column spacing)``.

        The slice value is the length of the slice step vector (for a tilted
        series it is longer than the distance between planes, see
        :attr:`slice_gap`).
        """
        di, dj, dk = geometry.voxel_sizes(self.affine)
        return (float(dk), float(dj), float(di))

    @property
    def slice_gap(self) -> float:
        """Distance between consecutive slice planes along the normal (mm)."""
        a = self.affine[:3, :3]
        n = np.cross(a[:, 0], a[:, 1])
        return float(abs(a[:, 2] @ n) / np.linalg.norm(n))

    @property
    def slopes(self) -> np.ndarray:
        return self.meta["rescale_slope"]

    @property
    def intercepts(self) -> np.ndarray:
        return self.meta["rescale_intercept"]

    def index_to_world(self, ijk: Any) -> np.ndarray:
        """LPS mm of continuous indices ``(..., 3)`` given as ``(i, j, k)``."""
        return geometry.apply_affine(self.affine, ijk)

    def world_to_index(self, xyz: Any) -> np.ndarray:
        """Continuous indices ``(i, j, k)`` of LPS points ``(..., 3)``."""
        return geometry.apply_affine(np.linalg.inv(self.affine), xyz)

    @property
    def center(self) -> np.ndarray:
        """LPS position of the volume's centre (mm)."""
        nz, ny, nx = self.shape
        return self.index_to_world([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2])

    # -- where the data lives -------------------------------------------------------
    @property
    def device(self) -> str:
        """Where ``data`` lives: ``"host"`` for a numpy array, else ``"device"`` (a GPU array, or the test
        stand-in's pretend-device array), with the backend that made it resident: ``"device (cupy)"``."""
        if isinstance(self.data, np.ndarray):
            return "host"
        return f"device ({self.backend})" if self.backend else "device"

    def to(self, backend: str) -> "Volume":
        """This volume with its data resident where ``backend`` computes, and ``backend`` as its default.

        ``backend``: a backend name (``"cupy"``, ``"numba-cuda"``, ``"numba"``, ``"numpy"``, ``"cuda-host"``),
        ``"auto"``, or ``"host"`` (the fastest host backend). A GPU backend uploads the stored values once
        (no copy when they are already there: a CuPy array, or another library's GPU array such as a
        PyTorch tensor, taken zero-copy through ``__cuda_array_interface__`` or DLPack); a host backend
        downloads device data. Operations on the returned volume run on ``backend`` by default, keep their
        results there and never upload the volume again. Geometry and metadata are shared, not copied.

        Examples
        --------
        >>> import numpy as np
        >>> v = Volume(np.zeros((2, 3, 4), np.int16), np.eye(4)).to("numpy")
        >>> v.device, v.backend
        ('host', 'numpy')
        """
        from .backends import available_backends, get_backend, resolve_name

        if backend == "host":
            name = next(n for n in available_backends() if get_backend(n).location == "host")
        else:
            name = resolve_name(backend)
        be = get_backend(name)
        data = self.data if be.owns(self.data) else (
            be.to_host(self.data) if be.location == "host" else be.asarray(self.data))
        if be.location == "device":
            be.prepare_rescale(self.slopes, self.intercepts)
        return Volume(data, self.affine, self.meta, backend=name)

    # -- values ------------------------------------------------------------------
    def to_numpy(self) -> np.ndarray:
        """The stored values as a numpy array (an explicit device-to-host copy for device data)."""
        if isinstance(self.data, np.ndarray):
            return self.data
        return self.data.get()  # CuPy, or the stand-in's device array: the named edge

    def hu(self, backend: str | None = None):
        """Rescaled values (``stored * slope + intercept`` per slice) as a new array.

        int16 when every rescaled value is exactly representable, else float32.
        For CT this is Hounsfield units.
        """
        from .ops.intensity import rescale

        return rescale(self, backend=backend or self.backend)

    def with_data(self, data: Any, **meta_updates) -> "Volume":
        """A new Volume on the same grid with other values (metadata copied)."""
        meta = dict(self.meta)
        meta.update(meta_updates)
        return Volume(data, self.affine.copy(), meta, backend=self.backend)

    # -- conversions ---------------------------------------------------------------
    def to_nifti(self, path: "str | os.PathLike | None" = None, *, hu: bool = False):
        """Write (or return) a NIfTI-1 image with the exact affine, shear included.

        The array is written in NIfTI order ``(i, j, k)`` with the RAS sform and
        qform set from :attr:`affine`. A sheared affine cannot be a qform; the
        qform then holds the nearest rigid frame with code 0 (unknown) so
        readers use the exact sform. Stored values are written as they are,
        with the rescale in ``scl_slope``/``scl_inter`` when it is the same for
        every slice; with ``hu=True`` (or per-slice rescale) the rescaled values
        are written instead. Writing is atomic (temporary file, then rename).
        """
        from .interop import to_nifti

        return to_nifti(self, path, hu=hu)

    def to_sitk(self, hu: bool = False):
        """A SimpleITK image with the same voxels, origin, spacing and direction.

        SimpleITK cannot express a shear: a sheared (tilted) volume raises
        ``ValueError``; resample it to a regular grid first.
        """
        from .interop import to_sitk

        return to_sitk(self, hu=hu)

    @classmethod
    def from_sitk(cls, image) -> "Volume":
        """A Volume from a 3-D SimpleITK image (LPS, as ITK uses)."""
        from .interop import from_sitk

        return from_sitk(image, cls)

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.4g}" for s in self.spacing)
        mod = self.meta.get("modality", "?")
        return (f"<Volume {mod} shape={self.shape} dtype={self.dtype} spacing=({sp}) mm "
                f"tilt={geometry.tilt_angle_deg(self.affine):.3g} deg>")
