"""Pair reads of 16-bit stored values for the numba CPU sampler's fast path.

A trilinear sample reads four pairs of x-neighbours, ``flat[o], flat[o + 1]``
(and the same at ``o + dj``, ``o + dk``, ``o + dk + dj``). :func:`load_pair`
reads one pair as a single unaligned 32-bit load (little-endian hosts: the
low half is ``flat[o]``, the high half ``flat[o + 1]``), so the scalar read
loop of a row issues four loads per sample instead of eight, and the float32
blends run in a separate loop over the row that LLVM vectorises (the halves
are split with shifts and masks, :func:`pair_lo` / :func:`pair_hi`, which
vectorise; a read of arbitrary addresses does not: this host's LLVM target
prefers no gathers). The values are the same integers as two 16-bit reads,
so every blend is bit for bit the one of :func:`gpukit.backends._sampler_math._blend4_f32`.

Only for 16-bit stored values on a little-endian host, with ``o + 1`` inside
the array (the fast path's lower corner is ``min(floor(x), nx - 2)``, so this
holds whenever ``nx >= 2``): :func:`pairs_apply` says when.

Numba's on-disk cache keys a kernel on its own source file only: after editing this file, delete the
``*.nbi``/``*.nbc`` files of :mod:`.sampler` under ``gpukit/backends/numba/__pycache__`` (or touch
``sampler.py``), or its kernels keep the old code.
"""

from __future__ import annotations

import sys

import numpy as np

from .._jit import njit

_JIT = dict(cache=True, fastmath=False, nogil=True)

#: stored dtypes whose neighbours along x are read as pairs
PAIR_KINDS = ("int16", "uint16")

try:
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def load_pair(typingctx, arr, idx):
        """``flat[idx] | flat[idx + 1] << 16`` as one int32 (an unaligned 32-bit load; 16-bit ``flat``). Other
        integer dtypes (which the kernels never read in pairs, but type every branch for) read ``flat[idx]`` alone."""
        if not (isinstance(arr, types.Array) and isinstance(arr.dtype, types.Integer)
                and isinstance(idx, types.Integer)):
            return None
        sig = types.int32(arr, idx)
        pair = arr.dtype.bitwidth == 16

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            i = context.cast(builder, args[1], signature.args[1], types.intp)
            p = builder.gep(ary.data, [i])
            if not pair:
                return context.cast(builder, builder.load(p), signature.args[0].dtype, types.int32)
            p32 = builder.bitcast(p, ir.IntType(32).as_pointer())
            return builder.load(p32, align=2)

        return sig, codegen
except ImportError:  # numba absent: the backend is unavailable and nothing calls this
    def load_pair(arr, idx):
        return np.int32(int(np.uint16(arr[idx])) | (int(arr[idx + 1]) << 16))


@njit(inline="always", **_JIT)
def pair_lo(w, m):
    """The low 16 bits of ``w`` as float32: sign-extended (``m = 0x8000``, int16) or not (``m = 0``, uint16)."""
    return np.float32(((w & 0xFFFF) ^ m) - m)


@njit(inline="always", **_JIT)
def pair_hi(w, m):
    """The high 16 bits of ``w`` as float32 (``m`` as in :func:`pair_lo`)."""
    return np.float32((((w >> 16) & 0xFFFF) ^ m) - m)


def pairs_apply(data, nx: int) -> bool:
    """Whether the pair reads apply: 16-bit stored values, a little-endian host, rows of at least 2 voxels."""
    return data.dtype.name in PAIR_KINDS and sys.byteorder == "little" and int(nx) >= 2 \
        and data.dtype.byteorder in ("=", "<", "|")


def pair_sign(data) -> int:
    """The ``m`` of :func:`pair_lo` for ``data``'s dtype."""
    return 0x8000 if data.dtype.name == "int16" else 0


__all__ = ["load_pair", "pair_lo", "pair_hi", "pairs_apply", "pair_sign", "PAIR_KINDS"]
