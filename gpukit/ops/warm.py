"""Kernel warm-up ahead of need: compile (or load from Numba's on-disk cache) the kernels a command will use,
in a background thread, while it does something else (writes or reads a study, scans a folder).

The first call of an operation in a fresh process loads its kernels (a few tenths of a second with the
on-disk cache warm) or compiles them (seconds per kernel family right after install). A command that knows it
will need them starts :func:`warm_up` first: ``gpukit demo`` while it writes its study (the compiled kernels
land in the on-disk cache, where the batch workers find them), each batch worker at its first series while it
reads it, ``gpukit view`` while it loads the series. The warm-up runs the real operations on a tiny volume of
the given stored dtype, so it loads exactly the specialisations the real calls use.
"""

from __future__ import annotations

import threading

import numpy as np

_started: dict = {}
_lock = threading.Lock()


def _run(backend: str | None, dtype) -> None:
    import gpukit
    from ..planes import Plane

    rng = np.random.default_rng(0)
    data = rng.integers(0, 200, (8, 16, 16)).astype(dtype)
    vol = gpukit.Volume(data, np.diag([0.7, 0.7, 1.0, 1.0]), {"rescale_intercept": -100.0})
    if backend is not None:
        vol = vol.to(backend)
    plane = Plane.rotated(vol, (10.0, 20.0, 0.0), shape=(8, 8))
    gpukit.window(vol, 40, 400, backend=backend)
    gpukit.reslice(vol, plane, backend=backend)
    for mode in ("max", "min", "mean"):
        gpukit.project(vol, plane, mode=mode, thickness_mm=3.0, backend=backend)
        gpukit.project(vol, "axial", mode=mode, backend=backend)
    gpukit.project(vol, "coronal", backend=backend)


def warm_up(backend: str | None = None, dtype=np.int16, *, background: bool = True) -> "threading.Thread | None":
    """Load or compile the kernels of ``backend`` (None: the default one) for ``dtype`` volumes, once per process.

    ``background``: in a daemon thread (returned; None when this process already started one); errors are
    ignored there (the real call reports them). Else here, and errors propagate.
    """
    key = (backend, np.dtype(dtype).str)
    if not background:
        _run(backend, dtype)
        return None
    with _lock:
        if key in _started:
            return None

        def quiet():
            try:
                _run(backend, dtype)
            except Exception:      # the real call will report it, with its own context
                pass

        t = _started[key] = threading.Thread(target=quiet, name="gpukit-warm-up", daemon=True)
        t.start()      # under the lock: a thread found in ``_started`` (join_warm_up) has always started
    return t


def join_warm_up(backend: str | None = None, dtype=np.int16, timeout: float | None = None) -> None:
    """Wait for the warm-up of ``(backend, dtype)`` that this process started, if any (whoever started it).

    A batch worker running two series at once starts the warm-up with the first; the second waits here
    before its own kernels run, so no kernel runs beside the warm-up's (Numba's ``workqueue`` threading layer
    aborts the process when two threads run parallel kernels at once).
    """
    with _lock:
        t = _started.get((backend, np.dtype(dtype).str))
    if t is not None and t is not threading.current_thread():
        t.join(timeout)


__all__ = ["warm_up", "join_warm_up"]
