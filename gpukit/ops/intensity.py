"""Intensity operations: rescale (and, later, window)."""

from __future__ import annotations

import numpy as np


def rescale(volume, backend: str | None = None):
    """``stored * slope + intercept`` per slice; int16 when exact, else float32.

    Minimal numpy version; the backend-dispatching version replaces it.
    """
    data = volume.to_numpy()
    s = np.asarray(volume.slopes, dtype=np.float64)[:, None, None]
    b = np.asarray(volume.intercepts, dtype=np.float64)[:, None, None]
    out = data * s + b
    if np.all(s == np.round(s)) and np.all(b == np.round(b)) and out.size and \
            out.min() >= -32768 and out.max() <= 32767:
        return out.astype(np.int16)
    return out.astype(np.float32)
