"""Conversions to and from NIfTI (nibabel) and SimpleITK, with exact geometry.

NIfTI: RAS world, array order ``(i, j, k)``. gpukit's ``data[k, j, i]`` is
written transposed (``data.T``) so the index axes keep their meaning, and the
affine only changes LPS -> RAS (``diag(-1, -1, 1, 1) @ affine``). The sform
holds the exact affine, shear included.

SimpleITK: LPS world, ``GetArrayFromImage`` order ``[k, j, i]`` (the same as
gpukit's), origin = affine column 3, spacing = column lengths, direction =
normalised columns. ITK cannot express a shear, so a sheared volume raises.

:class:`~gpukit.Volume`'s ``to_nifti``, ``to_sitk`` and ``from_sitk`` call
these functions, so this module does not import :mod:`gpukit.volume` back:
it takes any object with a Volume's ``affine``, ``meta``, ``slopes``,
``intercepts``, ``to_numpy()`` and ``hu()``, and :func:`from_sitk` is given
the class to build (gpukit imports only downward, ``tests/test_imports.py``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import geometry
from .arrays import to_host
from .errors import GpukitError, InvalidParameterError, OutputWriteError, ParameterTypeError
from .safepath import write_bytes_atomic


def _nifti_array(arr: np.ndarray) -> np.ndarray:
    """``arr`` in a dtype NIfTI-1 holds and nibabel writes without an explicit header: booleans as uint8 (a mask),
    float16 as float32, 64-bit integers as int32 when every value fits (else kept, with an explicit dtype)."""
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if -2 ** 31 <= lo and hi < 2 ** 31:
            return arr.astype(np.int32)
    if arr.dtype.kind not in "iuf" or arr.dtype.itemsize > 8:
        raise ParameterTypeError(f"NIfTI cannot hold voxels of dtype {arr.dtype}; convert the volume's data first")
    return arr


def _output_path(path) -> str:
    """``path`` as a file name to write, or a typed error (not a number, empty, with a NUL byte)."""
    try:
        p = os.fspath(path)
    except TypeError:
        raise ParameterTypeError(f"path must be a file name (str or os.PathLike), got {type(path).__name__}") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p or "\0" in p:
        raise InvalidParameterError(f"path must be a non-empty file name without NUL bytes, got {p!r}")
    if os.path.isdir(p):
        raise OutputWriteError("cannot write: the path is a folder", p)
    return p


def _write_error(exc: OSError, path: str) -> OutputWriteError:
    """An ``OSError`` while writing ``path`` as an :class:`OutputWriteError` naming it (the batch's wording)."""
    import errno as _errno

    if exc.errno in (_errno.ENOSPC, getattr(_errno, "EDQUOT", _errno.ENOSPC)):
        what = "no space left on device"
    elif exc.errno == _errno.EROFS:
        what = "the output is on a read-only file system"
    elif exc.errno in (_errno.EACCES, _errno.EPERM):
        what = "permission denied (the output folder is not writable)"
    else:
        what = (exc.strerror or str(exc)).lower()
    return OutputWriteError(f"cannot write: {what}", path, exc.errno)


def _uniform(values: np.ndarray) -> bool:
    return bool(np.all(values == values[0]))


def to_nifti(volume: Any, path: "str | os.PathLike | None" = None, *, hu: bool = False,
             root: "str | os.PathLike | None" = None):
    """Build (and optionally write, atomically) a NIfTI-1 image of the :class:`~gpukit.Volume` ``volume``.

    ``root``: an output root that ``path`` must stay inside (batch outputs).
    Returns the ``nibabel.Nifti1Image``.
    """
    import nibabel as nib

    ras = geometry.nifti_affine(volume.affine)
    slopes, intercepts = volume.slopes, volume.intercepts
    if hu or not (_uniform(slopes) and _uniform(intercepts)):
        arr = to_host(volume.hu())
        scl = None
    else:
        arr = volume.to_numpy()
        scl = (float(slopes[0]), float(intercepts[0]))
    arr = _nifti_array(np.asarray(arr))
    img = nib.Nifti1Image(arr.T, ras, dtype=arr.dtype)
    img.set_sform(ras, code=1)  # scanner anatomical
    # a qform is a rotation + zooms; a sheared affine has none, so leave it unset (code 0)
    rot = ras[:3, :3] / geometry.voxel_sizes(ras)
    if np.allclose(rot.T @ rot, np.eye(3), atol=1e-6):
        img.set_qform(ras, code=1)
    else:
        img.set_qform(None, code=0)
    if scl is not None and scl != (1.0, 0.0):
        img.header.set_slope_inter(*scl)
    xyzt = img.header.get_xyzt_units()
    img.header.set_xyzt_units("mm", xyzt[1] or None)
    desc = f"gpukit {volume.meta.get('modality', '')} {volume.meta.get('series_description', '')}"[:79]
    img.header["descrip"] = desc.encode("ascii", "replace")
    if path is not None:
        path = _output_path(path)
        if path.endswith(".gz"):
            import gzip

            # mtime=0: no time stamp in the gzip header, so the same volume gives the same bytes on every run
            payload = gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)
        else:
            payload = img.to_bytes()
        try:
            write_bytes_atomic(path, payload, root=root)
        except OSError as exc:
            if isinstance(exc, GpukitError):
                raise
            raise _write_error(exc, path) from None
    return img


def to_sitk(volume: Any, hu: bool = False):
    """A SimpleITK image of the :class:`~gpukit.Volume` ``volume``: the same voxels (stored, or rescaled with
    ``hu=True``) and geometry."""
    import SimpleITK as sitk

    a = volume.affine[:3, :3]
    sizes = geometry.voxel_sizes(volume.affine)
    direction = a / sizes
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
        raise InvalidParameterError("this volume's affine is sheared (e.g. gantry tilt); SimpleITK images cannot hold a "
                         "shear. Resample it to a regular grid first (gpukit.resample).")
    arr = np.ascontiguousarray(to_host(volume.hu()) if hu else volume.to_numpy())
    if arr.dtype.kind == "b" or arr.dtype == np.float16:
        arr = arr.astype(np.uint8 if arr.dtype.kind == "b" else np.float32)    # SimpleITK has neither
    elif arr.dtype.kind not in "iuf" or arr.dtype.itemsize > 8:
        raise ParameterTypeError(f"SimpleITK cannot hold voxels of dtype {arr.dtype}; convert the volume's data first")
    img = sitk.GetImageFromArray(arr)
    img.SetOrigin(tuple(float(x) for x in volume.affine[:3, 3]))
    img.SetSpacing(tuple(float(s) for s in sizes))
    img.SetDirection(tuple(float(x) for x in direction.ravel()))
    return img


def from_sitk(image, volume_class: type) -> Any:
    """A ``volume_class`` (:class:`~gpukit.Volume`; values as they are in the image, unit rescale) from a 3-D
    SimpleITK image. ``Volume.from_sitk(image)`` is the way to call it."""
    import SimpleITK as sitk

    if not isinstance(image, sitk.Image):
        raise ParameterTypeError(f"from_sitk needs a SimpleITK.Image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise InvalidParameterError(f"need a 3-D image, got {image.GetDimension()}-D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidParameterError("need a scalar image (one component per pixel)")
    arr = sitk.GetArrayFromImage(image)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    aff = geometry.from_matvec(direction * spacing, image.GetOrigin())
    return volume_class(arr, aff, {"source": "SimpleITK"})
