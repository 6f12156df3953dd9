// extrema.cu -- per-slice minimum and maximum of the stored values (and, on the host, the volume's).
//
// =====================================================================================================
//  IN_T and INDEX_T below are DEFAULTS. gpukit's Python wrapper (gpukit/backends/cuda_src.py) prepends
//  its own #defines for each module it builds (input dtype, index width).
// =====================================================================================================
//
// Two passes, no atomics, no shared memory, no synchronisation (deterministic for any launch):
//
// 1. gk_extrema_partial: thread p of slice k (x index, grid-stride over `parts`; y walks the slices)
//    reduces values p, p + parts, p + 2 parts, ... of the slice (neighbouring threads read neighbouring
//    values) into pmin[k * parts + p], pmax[...]. A thread whose p is past the slice's end has nothing
//    to read: the wrapper makes parts <= per_slice.
// 2. gk_extrema_final: one thread per slice reduces its `parts` partials.
//
// NaN follows numpy (ndarray.min / max propagate NaN): gk_min / gk_max in gpukit_common.cuh. Values
// stay in IN_T (exact for 64-bit integers); the wrapper converts to float64 as np_sampler.slice_extrema.
#include "gpukit_common.cuh"

#ifndef IN_T
#define IN_T short
#endif

extern "C" __global__ void gk_extrema_partial(const IN_T* __restrict__ data, IN_T* __restrict__ pmin,
                                              IN_T* __restrict__ pmax, INDEX_T nz, INDEX_T per_slice,
                                              INDEX_T parts) {
    const INDEX_T stride = (INDEX_T)blockDim.x * (INDEX_T)gridDim.x;
    const INDEX_T first = (INDEX_T)blockIdx.x * (INDEX_T)blockDim.x + (INDEX_T)threadIdx.x;
    for (INDEX_T k = blockIdx.y; k < nz; k += gridDim.y) {
        const IN_T* __restrict__ src = data + k * per_slice;
        for (INDEX_T p = first; p < parts; p += stride) {
            IN_T lo = src[p];
            IN_T hi = lo;
            for (INDEX_T i = p + parts; i < per_slice; i += parts) {
                const IN_T v = src[i];
                lo = gk_min(lo, v);
                hi = gk_max(hi, v);
            }
            pmin[k * parts + p] = lo;
            pmax[k * parts + p] = hi;
        }
    }
}

extern "C" __global__ void gk_extrema_final(const IN_T* __restrict__ pmin, const IN_T* __restrict__ pmax,
                                            IN_T* __restrict__ lo_out, IN_T* __restrict__ hi_out, INDEX_T nz,
                                            INDEX_T parts) {
    const INDEX_T stride = (INDEX_T)blockDim.x * (INDEX_T)gridDim.x;
    for (INDEX_T k = (INDEX_T)blockIdx.x * (INDEX_T)blockDim.x + (INDEX_T)threadIdx.x; k < nz; k += stride) {
        IN_T lo = pmin[k * parts];
        IN_T hi = pmax[k * parts];
        for (INDEX_T p = 1; p < parts; ++p) {
            lo = gk_min(lo, pmin[k * parts + p]);
            hi = gk_max(hi, pmax[k * parts + p]);
        }
        lo_out[k] = lo;
        hi_out[k] = hi;
    }
}
