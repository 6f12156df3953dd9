"""Atomic writers: every output is written under a temporary name in its own folder, then renamed.

A reader (or a rerun) therefore sees either no file or a complete one, never a
partial file, whatever happens mid-write (full disk, killed worker, Ctrl-C).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


#: files get the permissions an ordinary ``open(path, "w")`` would give (mkstemp makes them 0600)
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: "str | os.PathLike", *, is_dir: bool = False):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else remove it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    if is_dir:
        tmp = tempfile.mkdtemp(prefix=f".tmp-{base}-", dir=folder)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{base}-", dir=folder)
        os.close(fd)
        os.chmod(tmp, FILE_MODE)
    try:
        yield tmp
        if is_dir:
            if os.path.isdir(path):
                shutil.rmtree(path)
            os.replace(tmp, path)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path, payload: bytes) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(payload)
    return os.fspath(path)


def write_png(path, image: np.ndarray) -> str:
    """A 2-D uint8 (or uint16) image as a greyscale PNG."""
    from PIL import Image

    img = np.ascontiguousarray(image)
    if img.ndim != 2 or img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png wants a 2-D uint8/uint16 image, got {img.shape} {img.dtype}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=False)
    return write_bytes(path, buf.getvalue())


def write_gif(path, frames: np.ndarray, fps: float = 12.0) -> str:
    """A ``(n, rows, cols)`` uint8 stack as a looping greyscale animated GIF."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_gif wants (n, rows, cols) uint8 frames, got {frames.shape} {frames.dtype}")
    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], loop=0,
                duration=int(round(1000 / fps)), optimize=False)
    return write_bytes(path, buf.getvalue())


def write_npy(path, array: np.ndarray) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
    return os.fspath(path)


def write_nifti(path, volume, hu: bool = False) -> str:
    from ..interop import to_nifti

    to_nifti(volume, path, hu=hu)   # already atomic
    return os.fspath(path)


def write_zarr(path, volume, hu: bool = False) -> str:
    """A Zarr store (a folder) with the array in ``data`` and the affine and metadata as attributes."""
    import zarr

    arr = np.asarray(volume.hu() if hu else volume.to_numpy())
    with atomic_path(path, is_dir=True) as tmp:
        root = zarr.open_group(tmp, mode="w")
        z = root.create_array("data", shape=arr.shape, dtype=arr.dtype,
                              chunks=(min(32, arr.shape[0]),) + arr.shape[1:])
        z[...] = arr
        root.attrs["affine_lps"] = volume.affine.tolist()
        root.attrs["axes"] = ["k", "j", "i"]
        root.attrs["values"] = "hu" if hu else "stored"
        root.attrs["rescale_slope"] = [float(x) for x in volume.slopes]
        root.attrs["rescale_intercept"] = [float(x) for x in volume.intercepts]
    return os.fspath(path)
