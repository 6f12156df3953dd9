// rescale.cu -- modality rescale, per slice: out = stored * slope + intercept (float64, then cast).
//
// =====================================================================================================
//  IN_T, OUT_T and INDEX_T below are DEFAULTS. gpukit's Python wrapper (gpukit/backends/cuda_src.py)
//  prepends its own #defines for each module it builds (input dtype, output dtype, index width).
// =====================================================================================================
//
// The numpy reference is np_intensity.rescale_kernel: the float64 value stored * slope + intercept (a
// multiply, then an add) converted to OUT_T (round to nearest for float; for int16 the ops layer only
// asks when every value is an exact int16, so the conversion is exact).
//
// Launch: as window.cu (blockIdx.y walks slices, x walks the values of a slice, both grid-stride).
#include "gpukit_common.cuh"

#ifndef IN_T
#define IN_T short
#endif
#ifndef OUT_T
#define OUT_T float
#endif

extern "C" __global__ void gk_rescale(const IN_T* __restrict__ data, const double* __restrict__ slopes,
                                      const double* __restrict__ intercepts, OUT_T* __restrict__ out,
                                      INDEX_T nz, INDEX_T per_slice) {
    const INDEX_T stride = (INDEX_T)blockDim.x * (INDEX_T)gridDim.x;
    const INDEX_T first = (INDEX_T)blockIdx.x * (INDEX_T)blockDim.x + (INDEX_T)threadIdx.x;
    for (INDEX_T k = blockIdx.y; k < nz; k += gridDim.y) {
        const double s = slopes[k];
        const double b = intercepts[k];
        const IN_T* __restrict__ src = data + k * per_slice;
        OUT_T* __restrict__ dst = out + k * per_slice;
        for (INDEX_T i = first; i < per_slice; i += stride) {
            dst[i] = (OUT_T)gk_rescale_value((double)src[i], s, b);
        }
    }
}
