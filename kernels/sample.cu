// sample.cu -- the one sampler (DESIGN.md "One sampler for reslice, resample and MIP"): reslice, resample,
// slab and full MIP / MinIP / AvgIP along any direction.
//
// =====================================================================================================
//  IN_T, OUT_T, OUT_ROUNDED, FUSED_WINDOW and INDEX_T below are DEFAULTS. gpukit's Python wrapper
//  (gpukit/backends/cuda_src.py) prepends its own #defines for each module it builds (input dtype,
//  output dtype, whether the window stage is fused, index width).
// =====================================================================================================
//
// For output position (c, r, s) the continuous voxel index is
//     x = a00*c + a01*r + a02*s + b0,  y = a10*c + ...,  z = a20*c + ...
// evaluated left to right in float64 exactly as np_sampler.sample_grid writes it (the inside test then
// gives the same answer as the numpy reference). Inside means -eps <= x <= nx - 1 + eps (and y, z);
// inside points are clamped and read trilinearly or as the nearest voxel with the per-slice rescale
// (gpukit_common.cuh: gk_linear, gk_nearest); outside points give `fill` (mode none) or are skipped.
//
// One thread per output pixel (c, r) marching along s (grid-stride in both c and r):
//   gk_sample_none_{linear,nearest}     mode none: out (ns, nr, nc), every sample written
//   gk_sample_combine_{linear,nearest}  `mode` max, min, mean (GK_MODE_*): out (nr, nc), the inside
//                                       samples of the ray combined by gk_combine_init / _step / _finish
//                                       (gpukit_common.cuh: np.maximum / np.minimum NaN rule; mean = sum /
//                                       count); a ray with no inside sample gives `fill`.
// The interpolation is compiled in (it decides the memory reads); the combination is a launch-uniform
// branch (one instantiation instead of three keeps NVRTC compile time down).
// Projections first clip each ray to the steps whose samples can be inside (nb_sampler's analytic
// window, widened by two steps); the exact per-sample test is still applied to every visited step, so
// the clip only saves work.
//
// Output stage: OUT_T (float32: round to nearest; int16 for nearest resamples of exactly-int16 values).
// With FUSED_WINDOW the value is rounded to float32 first and then windowed (gk_window_value with the
// w_* arguments; OUT_ROUNDED for an integer OUT_T) -- the same numbers as windowing the float32 image.
// No shared memory, no synchronisation.
#include "gpukit_common.cuh"

#ifndef IN_T
#define IN_T short
#endif
#ifndef OUT_T
#define OUT_T float
#endif
#ifndef OUT_ROUNDED
#define OUT_ROUNDED 0
#endif
#ifndef FUSED_WINDOW
#define FUSED_WINDOW 0
#endif

#define GK_SAMPLE_PARAMS                                                                                   \
    const IN_T *__restrict__ data, const double *__restrict__ slopes, const double *__restrict__ intercepts, \
        OUT_T *__restrict__ out, INDEX_T nx, INDEX_T ny, INDEX_T nz, int ns, int nr, int nc, int uniform,   \
        double a00, double a01, double a02, double a10, double a11, double a12, double a20, double a21,     \
        double a22, double b0, double b1, double b2, double fill, double eps, double w_center,              \
        double w_width, int w_fcode, double w_lo, double w_hi, int w_invert, int mode
#define GK_SAMPLE_ARGS                                                                                       \
    data, slopes, intercepts, out, nx, ny, nz, ns, nr, nc, uniform, a00, a01, a02, a10, a11, a12, a20, a21, \
        a22, b0, b1, b2, fill, eps, w_center, w_width, w_fcode, w_lo, w_hi, w_invert, mode

struct gk_out_stage {
    double cc, ww, lower, upper, lo, hi;
    int fcode, invert;
};

__device__ __forceinline__ OUT_T gk_store(double v, const gk_out_stage& w) {
#if FUSED_WINDOW
    return (OUT_T)gk_window_value((double)(float)v, w.fcode, w.cc, w.ww, w.lower, w.upper, w.lo, w.hi,
                                  OUT_ROUNDED, w.invert);
#else
    (void)w;  // no window stage in this specialisation
    return (OUT_T)v;
#endif
}

template <int LINEAR>
__device__ __forceinline__ double gk_read(const IN_T* __restrict__ data, INDEX_T nx, INDEX_T ny, INDEX_T nz,
                                          const double* __restrict__ slopes,
                                          const double* __restrict__ intercepts, int uniform, double x,
                                          double y, double z) {
    if (LINEAR) return gk_linear(data, nx, ny, nz, slopes, intercepts, uniform, x, y, z);
    return gk_nearest(data, nx, ny, nz, slopes, intercepts, uniform, x, y, z);
}

template <int LINEAR, int NONE>
__device__ __forceinline__ void gk_sample_body(GK_SAMPLE_PARAMS) {
    gk_out_stage w;
    w.cc = w.ww = w.lower = w.upper = 0.0;
#if FUSED_WINDOW
    gk_voi_params(w_center, w_width, w_fcode, &w.cc, &w.ww, &w.lower, &w.upper);
#else
    (void)w_center;  // every specialisation takes the same arguments
    (void)w_width;
#endif
    w.lo = w_lo;
    w.hi = w_hi;
    w.fcode = w_fcode;
    w.invert = w_invert;
    const double xl = (double)(nx - 1) + eps;
    const double yl = (double)(ny - 1) + eps;
    const double zl = (double)(nz - 1) + eps;
    const int rstride = (int)(blockDim.y * gridDim.y);
    const int cstride = (int)(blockDim.x * gridDim.x);
    for (int r = (int)(blockIdx.y * blockDim.y + threadIdx.y); r < nr; r += rstride) {
        for (int c = (int)(blockIdx.x * blockDim.x + threadIdx.x); c < nc; c += cstride) {
            // x(s) = ((a00*c + a01*r) + a02*s) + b0: the reference's left-to-right sum
            const double bx = a00 * (double)c + a01 * (double)r;
            const double by = a10 * (double)c + a11 * (double)r;
            const double bz = a20 * (double)c + a21 * (double)r;
            if (NONE) {
                for (int s = 0; s < ns; ++s) {
                    const double x = bx + a02 * (double)s + b0;
                    const double y = by + a12 * (double)s + b1;
                    const double z = bz + a22 * (double)s + b2;
                    double v = fill;
                    if (gk_inside(x, y, z, xl, yl, zl, eps))
                        v = gk_read<LINEAR>(data, nx, ny, nz, slopes, intercepts, uniform, x, y, z);
                    out[((INDEX_T)s * nr + r) * nc + c] = gk_store(v, w);
                }
                continue;
            }
            double lo_f = -1.0;
            double hi_f = (double)ns;
            gk_axis_window(bx + b0, a02, xl, eps, &lo_f, &hi_f);
            gk_axis_window(by + b1, a12, yl, eps, &lo_f, &hi_f);
            gk_axis_window(bz + b2, a22, zl, eps, &lo_f, &hi_f);
            int s0 = 0;
            int s1 = -1;
            if (lo_f <= hi_f + 4.0) {
                s0 = (int)ceil(lo_f) - 2;
                s1 = (int)floor(hi_f) + 2;
                if (s0 < 0) s0 = 0;
                if (s1 > ns - 1) s1 = ns - 1;
            }
            double acc = gk_combine_init(mode);
            int cnt = 0;
            for (int s = s0; s <= s1; ++s) {
                const double x = bx + a02 * (double)s + b0;
                const double y = by + a12 * (double)s + b1;
                const double z = bz + a22 * (double)s + b2;
                if (!gk_inside(x, y, z, xl, yl, zl, eps)) continue;
                acc = gk_combine_step(acc, gk_read<LINEAR>(data, nx, ny, nz, slopes, intercepts, uniform, x, y, z),
                                      mode);
                ++cnt;
            }
            out[(INDEX_T)r * nc + c] = gk_store(gk_combine_finish(acc, cnt, mode, fill), w);
        }
    }
}

extern "C" __global__ void gk_sample_none_linear(GK_SAMPLE_PARAMS) { gk_sample_body<1, 1>(GK_SAMPLE_ARGS); }
extern "C" __global__ void gk_sample_none_nearest(GK_SAMPLE_PARAMS) { gk_sample_body<0, 1>(GK_SAMPLE_ARGS); }
extern "C" __global__ void gk_sample_combine_linear(GK_SAMPLE_PARAMS) { gk_sample_body<1, 0>(GK_SAMPLE_ARGS); }
extern "C" __global__ void gk_sample_combine_nearest(GK_SAMPLE_PARAMS) { gk_sample_body<0, 0>(GK_SAMPLE_ARGS); }
