// window.cu -- fused rescale + window (DICOM VOI LUT, PS3.3 C.11.2.1.2): stored values to display values.
//
// =====================================================================================================
//  IN_T, OUT_T, OUT_ROUNDED and INDEX_T below are DEFAULTS. gpukit's Python wrapper
//  (gpukit/backends/cupy_backend.py through cuda_src.py) prepends its own #defines for each module it
//  builds, one module per (input dtype, output dtype, index width), memoised per device.
// =====================================================================================================
//
// out[k, j, i] = window_value(data[k, j, i] * slopes[k] + intercepts[k]) for the three VOI LUT functions
// (LINEAR, LINEAR_EXACT, SIGMOID; `fcode`), rounded half away from zero for an integer output
// (OUT_ROUNDED), then mirrored (lo + hi - y) when `invert` (MONOCHROME1). The scalar maths is
// gpukit_common.cuh's restatement of gpukit/backends/_math.py; the numpy reference is
// np_intensity.window_kernel.
//
// Launch: grid (gx, gy), 1-D blocks; blockIdx.y walks the slices (stride gridDim.y) so each thread loads
// its slice's slope and intercept once, x walks the slice's values (grid stride). No shared memory, no
// synchronisation: any grid and block size gives the same result.
#include "gpukit_common.cuh"

#ifndef IN_T
#define IN_T short
#endif
#ifndef OUT_T
#define OUT_T unsigned char
#endif
#ifndef OUT_ROUNDED
#define OUT_ROUNDED 1
#endif

extern "C" __global__ void gk_window(const IN_T* __restrict__ data, const double* __restrict__ slopes,
                                     const double* __restrict__ intercepts, OUT_T* __restrict__ out,
                                     INDEX_T nz, INDEX_T per_slice, double center, double width, int fcode,
                                     double lo, double hi, int invert) {
    double cc, ww, lower, upper;
    gk_voi_params(center, width, fcode, &cc, &ww, &lower, &upper);
    const INDEX_T stride = (INDEX_T)blockDim.x * (INDEX_T)gridDim.x;
    const INDEX_T first = (INDEX_T)blockIdx.x * (INDEX_T)blockDim.x + (INDEX_T)threadIdx.x;
    for (INDEX_T k = blockIdx.y; k < nz; k += gridDim.y) {
        const double s = slopes[k];
        const double b = intercepts[k];
        const IN_T* __restrict__ src = data + k * per_slice;
        OUT_T* __restrict__ dst = out + k * per_slice;
        for (INDEX_T i = first; i < per_slice; i += stride) {
            const double x = gk_rescale_value((double)src[i], s, b);
            dst[i] = (OUT_T)gk_window_value(x, fcode, cc, ww, lower, upper, lo, hi, OUT_ROUNDED, invert);
        }
    }
}
