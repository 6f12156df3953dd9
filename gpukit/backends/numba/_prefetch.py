"""``prefetch(array, index)``: a software prefetch of one element's cache line, for Numba kernels.

LLVM's ``llvm.prefetch`` intrinsic (read, keep in all cache levels): a hint, never a fault, whatever the index
(out-of-range indices are clamped by the callers anyway). It compiles to ``prefetcht0`` on x86-64. Used where
a kernel's next reads are known but scattered (one short run per slice row in a thin slab), which the hardware
prefetchers do not follow.
"""

from __future__ import annotations

try:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic
except ImportError:  # numba absent: the backend is unavailable and nothing calls this
    def prefetch(arr, idx):
        return None
else:
    @intrinsic
    def prefetch(typingctx, arr, idx):
        if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
            return None
        sig = types.void(arr, idx)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [ptr, i32(0), i32(3), i32(1)])     # read, high locality, data cache
            return context.get_dummy_value()

        return sig, codegen

__all__ = ["prefetch"]
