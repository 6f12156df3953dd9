"""Loading a series straight onto the GPU: decode on the CPU into pinned buffers, upload chunk by chunk.

The volume arrives on the device as its stored integers (int16/uint16, not
float32) and stays there. Slices are read (or decoded) on the CPU into one of
two page-locked host buffers of ``chunk`` slices while the other buffer's
chunk is copied to the device on a CUDA stream; a buffer is refilled only
after the event recorded behind its last copy has completed, so decoding
chunk ``n + 1`` overlaps uploading chunk ``n`` and no copy reads a buffer
being rewritten.

:func:`stream_to_device` holds that schedule and takes the device operations
as a small object (:class:`CupyDevice` on a GPU), so the schedule itself is
exercised without a GPU by the tests through :class:`HostDevice`, which
performs the same steps on host memory and records their order.

A JPEG 2000 series on a GPU is decoded by nvJPEG2000 straight into the
device volume instead (:mod:`gpukit.dicom.nvjpeg2k`; small or
unsupported codestreams go to the CPU decoders frame by frame). That path
has not run here: there is no GPU on the development machine.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import DeviceMemoryError
from .pixels import _stored_dtype, check_frames, read_pixels

#: bytes per chunk (two pinned buffers of this size are allocated)
CHUNK_BYTES = 32 << 20
#: fraction of the device's free memory a volume may take
FREE_FRACTION = 0.9


class CupyDevice:
    """The device operations of :func:`stream_to_device` with CuPy on the current CUDA device."""

    def __init__(self):
        import cupy as cp

        self.cp = cp
        self.stream = cp.cuda.Stream(non_blocking=True)

    def free_bytes(self) -> int:
        return int(self.cp.cuda.runtime.memGetInfo()[0])

    def name(self) -> str:
        return f"CUDA device {self.cp.cuda.Device().id}"

    def empty(self, shape, dtype):
        return self.cp.empty(shape, dtype)

    def pinned(self, shape, dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        mem = self.cp.cuda.alloc_pinned_memory(max(n, 1))
        return np.frombuffer(mem, dtype, int(np.prod(shape))).reshape(shape)

    def upload(self, dst, src: np.ndarray):
        """Asynchronous copy on the stream (``src`` is pinned); returns an event recorded after it."""
        dst.set(src, stream=self.stream)
        return self.stream.record()

    def wait(self, event) -> None:
        event.synchronize()

    def finish(self) -> None:
        self.stream.synchronize()


class HostDevice:
    """The same operations on host memory, with a log of the order they ran in (tests; no GPU needed).

    An upload is "in flight" until :meth:`wait` is called on its event or
    :meth:`finish`; reusing a buffer whose upload is still in flight is
    recorded as an error, which the tests check never happens.
    """

    def __init__(self, free: int = 1 << 40):
        self._free = free
        self.log: list[tuple] = []
        self.inflight: dict[int, tuple] = {}
        self.violations: list[str] = []

    def free_bytes(self) -> int:
        return self._free

    def name(self) -> str:
        return "host stand-in"

    def empty(self, shape, dtype):
        a = np.empty(shape, dtype)      # filled with a value no slice write leaves behind unnoticed
        a.fill(np.iinfo(a.dtype).max if a.dtype.kind in "iu" else np.nan)
        return a

    def pinned(self, shape, dtype):
        return np.empty(shape, dtype)

    def upload(self, dst, src):
        key = src.__array_interface__["data"][0]
        dst[...] = src        # done now; "completes" when waited on
        ev = ("event", len(self.log))
        self.inflight[key] = ev
        self.log.append(("upload", key, src.shape[0]))
        return ev

    def wait(self, event):
        self.log.append(("wait", event))
        for k, e in list(self.inflight.items()):
            if e == event:
                del self.inflight[k]

    def filling(self, buf) -> None:
        key = buf.__array_interface__["data"][0]
        if key in self.inflight:
            self.violations.append(f"buffer {key:#x} refilled while its upload is in flight")
        self.log.append(("fill", key, buf.shape[0]))

    def finish(self):
        self.inflight.clear()
        self.log.append(("finish",))


def stream_to_device(n_slices: int, slice_shape: Sequence[int], dtype, read: Callable[[int, int, np.ndarray], None],
                     device, chunk_slices: int | None = None, what: str = "volume"):
    """A ``(n_slices, *slice_shape)`` device array filled by ``read(k0, k1, host_buffer)`` chunk by chunk.

    ``read`` writes slices ``k0:k1`` into ``host_buffer`` (shape ``(k1 - k0, *slice_shape)``).
    Raises :class:`~gpukit.errors.DeviceMemoryError` before reading anything when the volume
    does not fit in the device's free memory.
    """
    dtype = np.dtype(dtype)
    per = int(np.prod(slice_shape)) * dtype.itemsize
    need = n_slices * per
    free = device.free_bytes()
    if need > FREE_FRACTION * free:
        raise DeviceMemoryError(f"{what} needs {need / 2**20:.0f} MiB on {device.name()}, which has "
                                f"{free / 2**20:.0f} MiB free; load it on the CPU (backend='numba') or free "
                                f"device memory")
    dev = device.empty((n_slices,) + tuple(slice_shape), dtype)
    chunk = max(1, min(n_slices, chunk_slices or CHUNK_BYTES // max(per, 1)))
    bufs = [device.pinned((chunk,) + tuple(slice_shape), dtype) for _ in range(2 if n_slices > chunk else 1)]
    pending: list = [None] * len(bufs)
    for n, k0 in enumerate(range(0, n_slices, chunk)):
        k1 = min(n_slices, k0 + chunk)
        b = n % len(bufs)
        if pending[b] is not None:
            device.wait(pending[b])          # the copy out of this buffer has completed
            pending[b] = None
        view = bufs[b][:k1 - k0]
        if hasattr(device, "filling"):
            device.filling(view)
        read(k0, k1, view)
        pending[b] = device.upload(dev[k0:k1], view)
    device.finish()
    return dev


def read_series_to_device(frames, workers: int | None = None, device=None, chunk_slices: int | None = None, *,
                          warnings_out: list | None = None):
    """The stored values of ``frames`` (in order) as a CuPy array, decoded and uploaded chunk by chunk
    (the decoders' warnings go to ``warnings_out``, as in :func:`~gpukit.dicom.pixels.read_pixels`)."""
    check_frames(frames)          # before any device memory is allocated
    h0 = frames[0].header
    rows, cols = int(h0.get("Rows")), int(h0.get("Columns"))
    device = device or CupyDevice()
    if isinstance(device, CupyDevice) and all(f.header.transfer_syntax in JPEG2000 for f in frames):
        gpu_decoded = _nvjpeg2k_to_device(frames, rows, cols, _stored_dtype(frames[0]), device)
        if gpu_decoded is not None:
            return gpu_decoded

    def read(k0, k1, buf):
        read_pixels(frames[k0:k1], workers=workers, out=buf, warnings_out=warnings_out)

    return stream_to_device(len(frames), (rows, cols), _stored_dtype(frames[0]), read, device, chunk_slices,
                            what=f"series in {frames[0].path}")


JPEG2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")


def _nvjpeg2k_to_device(frames, rows, cols, dtype, device):
    """JPEG 2000 frames decoded on the GPU by nvJPEG2000 straight into the device volume (CPU fallback per frame).

    None when libnvjpeg2k is not installed (the caller then decodes on the CPU and uploads).
    """
    from . import nvjpeg2k

    if not nvjpeg2k.is_available():
        return None
    by_file: dict = {}
    jframes = []
    for f in frames:            # each file read once, however many of its frames the series takes
        if f.path not in by_file:
            by_file[f.path] = nvjpeg2k.frames_of(f.path)
        jframes.append(by_file[f.path][f.index])
    dev = device.empty((len(frames), rows, cols), dtype)
    nvjpeg2k.decode_series(jframes, dev, stream=device.stream)
    return dev


__all__ = ["CHUNK_BYTES", "CupyDevice", "HostDevice", "stream_to_device", "read_series_to_device"]
