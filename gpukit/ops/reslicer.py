"""The real-time :class:`Reslicer`: one volume, many poses, lowest latency, safe from several threads."""

from __future__ import annotations

import threading
import time

import numpy as np

from ..errors import InvalidParameterError, ParameterTypeError

from ..backends import get_backend, resolve_name
from ..backends.codes import BRICKED_LAYOUT, CONCURRENT_CALLS, FUSED_WINDOW
from ..planes import Plane
from .residency import _check_precision, _fill_value, _host_data
from .validate import _apply_window, _check_interp, _window_stage, check_work, index_map

#: the Reslicer keeps a bricked copy of volumes larger than this (numba backend, layout="auto")
BRICKED_MIN_BYTES = 8 << 20


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
    large volume (same values as the plain layout at the same precision; costs one more copy of the volume in
    memory and a pass at construction). Not for 16-bit values at ``precision="fast"``: there the plain
    layout's paired reads are faster, and "auto" keeps the plain layout.

    Parameters
    ----------
    volume : Volume
    backend : str, optional
    interp : "linear" or "nearest"
    fill : float, optional (default: the volume's lowest rescaled value)
    window : (center, width), optional
        When given, :meth:`reslice` returns uint8 (DICOM LINEAR window).
    layout : "auto", "bricked" or "plain"
    precision : "fast" (default) or "exact"
        "fast" uses the backend's float32 sampler where it has one (capability ``FAST_PRECISION``: numba), within
        the error bound its kernels state (see :func:`gpukit.resample`); "exact" the float64 arithmetic of the
        numpy reference (bit for bit on numba, plain or bricked).

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
                 window: tuple[float, float] | None = None, layout: str = "auto", precision: str = "fast"):
        self.volume = volume
        self.precision = _check_precision(precision)
        self.backend = resolve_name(backend, volume)
        self.interp = _check_interp(interp)
        self.window = window
        self._be = get_backend(self.backend)
        self._data = _host_data(volume, self._be)
        self._slopes = np.ascontiguousarray(volume.slopes, dtype=np.float64)
        self._intercepts = np.ascontiguousarray(volume.intercepts, dtype=np.float64)
        self.fill = _fill_value(volume, self._data, self._be, fill)
        if layout not in ("auto", "bricked", "plain"):
            raise InvalidParameterError(f"layout must be 'auto', 'bricked' or 'plain', got {layout!r}")
        can_brick = self._be.has(BRICKED_LAYOUT)
        if layout == "bricked" and not can_brick:
            raise InvalidParameterError(f"the {self.backend!r} backend has no bricked layout; use layout='plain' or 'auto'")
        # "auto": bricks for a large volume, except 16-bit values at the fast precision, where the plain layout's
        # paired reads (one 32-bit load for two neighbours) beat the bricked copy (benchmark: p50 2.02 ms plain,
        # 2.94 ms bricked, 512^3 int16, 100 new poses) and the copy's memory is saved
        paired = self.precision == "fast" and self._data.dtype.itemsize == 2
        use = can_brick and (layout == "bricked" or (layout == "auto" and self._data.nbytes > BRICKED_MIN_BYTES
                                                     and not paired))
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
        if not isinstance(plane, Plane):
            raise ParameterTypeError(f"Reslicer.reslice needs a Plane (e.g. Plane.oblique(...)), got {plane!r}")
        nr, nc = plane.shape
        check_work(float(nr) * nc, (nr, nc), 4, "Reslicer.reslice")
        fused = self.window is not None and self._be.has(FUSED_WINDOW)
        stage = _window_stage(self.window) if fused else None
        want = np.dtype(np.uint8) if self.window is not None else np.dtype(np.float32)
        if out is not None and not self._be.owns(out):
            raise ParameterTypeError(f"out must be an array of the {self.backend!r} backend's kind, got "
                                     f"{type(out).__name__}")
        if out is not None and (tuple(out.shape) != (nr, nc) or out.dtype != want or not out.flags.c_contiguous):
            raise InvalidParameterError(f"out must be a C-contiguous {want} array of shape {(nr, nc)}")
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
                                             (1, nr, nc), self.interp, self.fill, buf, window=stage,
                                             precision=self.precision)
            else:
                self._be.sample_grid(self._data, self._slopes, self._intercepts, A, b, (1, nr, nc), "none",
                                     self.interp, self.fill, buf, window=stage, precision=self.precision)
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


__all__ = ["Reslicer", "BRICKED_MIN_BYTES"]
