"""Scalar intensity maths shared by every compiled kernel (Numba CPU now, Numba CUDA later).

Plain scalar functions of float64 values, decorated ``@njit``: a Numba CPU
kernel calls them, and a ``@cuda.jit`` kernel can call the same functions
(Numba compiles an ``@njit`` callee for the caller's target). They use only
``math`` and arithmetic (no numpy calls, no allocation), so they also read as
the specification that the CUDA C++ kernels restate.

The numpy reference (:mod:`gpukit.backends.numpy.intensity`) evaluates exactly
the same float64 expressions, in the same order, vectorised; every backend
must therefore agree with it bit for bit on LINEAR and LINEAR_EXACT (SIGMOID
goes through ``exp``, whose last bit differs between libraries: within one
output unit). Keep ``fastmath`` off in every caller: a fused multiply-add or a
reciprocal instead of a division would change the last bit. (NVVM contracts
``a * b + c`` into an FMA by default: the CUDA kernels must compile with
contraction off to stay exact.)

The window (DICOM PS3.3 C.11.2.1.2), with ``lo``/``hi`` the output range:

* LINEAR (C.11.2.1.2.1): ``c' = center - 0.5``, ``w' = width - 1``;
  ``x <= c' - w'/2`` gives ``lo``, ``x > c' + w'/2`` gives ``hi``, else
  ``((x - c') / w' + 0.5) * (hi - lo) + lo``.
* LINEAR_EXACT (C.11.2.1.3.2): the same with ``c' = center``, ``w' = width``.
* SIGMOID (C.11.2.1.3.1): ``(hi - lo) / (1 + exp(-4 * (x - center) / width)) + lo``.

then clamped to ``[lo, hi]``; a NaN input gives ``lo``. For an integer output
the value is rounded half away from zero, written exactly as
:func:`round_half_away` (``floor(y + 0.5)`` for ``y >= 0``, else
``-floor(0.5 - y)``, in float64). MONOCHROME1 inversion is applied last
(after rounding): ``lo + hi - y``, so an inverted integer image is exactly the
mirror of the plain one.

The helpers are ``inline="always"`` (inlined in Numba IR, so each kernel
loop sees straight-line code it can vectorise). Numba's on-disk cache keys a
kernel on its own source file only: after editing this file, delete the
``*.nbi``/``*.nbc`` files under ``gpukit/backends/__pycache__`` or the
kernels keep the old maths.
"""

from __future__ import annotations

import math

from ._jit import njit

# VOI LUT function codes passed to kernels (defined with the numpy reference, which must not import Numba)
# and the window's (c', w', lower, upper), computed once per call on the host: one definition for every backend
from .codes import FUNCTION_CODES, LINEAR, LINEAR_EXACT, SIGMOID
from .numpy.intensity import voi_params  # noqa: E402,F401

_JIT = dict(cache=True, fastmath=False, nogil=True, inline="always")


@njit(**_JIT)
def rescale_value(stored, slope, intercept):
    """``stored * slope + intercept`` in float64 (a multiply, then an add: never fused)."""
    return stored * slope + intercept


@njit(**_JIT)
def voi_value(x, function_code, cc, ww, lower, upper, lo, hi):
    """The VOI LUT output for value ``x`` (float64, unrounded, clamped to ``[lo, hi]``; NaN gives ``lo``)."""
    if function_code == SIGMOID:
        if x != x:
            return lo
        y = (hi - lo) / (1.0 + math.exp(-4.0 * (x - cc) / ww)) + lo
    else:
        if not (x > lower):
            return lo
        if x > upper:
            return hi
        y = ((x - cc) / ww + 0.5) * (hi - lo) + lo
    if y < lo:
        return lo
    if y > hi:
        return hi
    return y


@njit(**_JIT)
def round_half_away(y):
    """Round half away from zero, as every backend writes it: ``floor(|y| + 0.5)`` with the sign of ``y``."""
    if y >= 0.0:
        return math.floor(y + 0.5)
    return -math.floor(0.5 - y)


@njit(**_JIT)
def window_value(x, function_code, cc, ww, lower, upper, lo, hi, rounded, invert):
    """One output value of the window: :func:`voi_value`, rounded when ``rounded``, then inverted when ``invert``."""
    y = voi_value(x, function_code, cc, ww, lower, upper, lo, hi)
    if rounded:
        y = round_half_away(y)
    if invert:
        y = (lo + hi) - y
    return y


__all__ = ["LINEAR", "LINEAR_EXACT", "SIGMOID", "FUNCTION_CODES", "voi_params", "rescale_value", "voi_value",
           "round_half_away", "window_value"]
