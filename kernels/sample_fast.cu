// sample_fast.cu -- the one sampler in float32 (precision "fast"): the same operations, grid and rules as
// sample.cu, with no float64 arithmetic on its common path (fp64 runs at 1/32 to 1/64 of the fp32 rate on L4,
// A10 and RTX cards; only A100 / H100 / H200 have fast fp64).
//
// =====================================================================================================
//  IN_T, OUT_T, OUT_ROUNDED, FUSED_WINDOW and INDEX_T below are DEFAULTS. gpukit's Python wrapper
//  (gpukit/backends/cuda/src.py, sample_fast_spec) prepends its own #defines for each module it builds.
// =====================================================================================================
//
// What differs from sample.cu (the float64 path, which stays the numpy reference's arithmetic):
// * coordinates: 64-bit fixed point (gpukit_common.cuh, GK_FIX_BITS). The wrapper passes A, b, the inside
//   limits and eps already converted (long long); a ray starts at b + A00 c + A01 r and each step adds A02
//   (exact integer adds), so the index error does not grow along a ray beyond the rounding of A02;
// * the inside test and the clamp are integer compares (gk_inside_fix, gk_clamp_fix);
// * reads through the read-only data cache (__ldg); weights, blends (fmaf), rescale and combination in float32
//   (gk_linear_fast, gk_nearest_fast); the slope / intercept tables are float32 copies;
// * nearest near a .5 tie (within 2^-12 voxel) recomputes that axis's index in float64 exactly as sample.cu
//   does, from the float64 map r00 .. rb2 (gk_nearest_index_f64, not inlined: the kernels' only float64 code),
//   so nearest always reads the reference's voxel;
// * a uniform rescale (every slice the same) is applied once per output: after the blend for mode none,
//   after the combination for max / min / mean (a negative slope swaps max and min: gk_combine_mirror);
// * projections clip each ray with a float32 estimate that never cuts an inside step (gk_axis_window_fix),
//   then trim both ends with the exact integer test; the steps in between are all inside (each fixed-point
//   coordinate is linear in s, so the inside steps of a ray are one interval) and run with no test;
// * means are Kahan-compensated float32 sums (gk_kahan_add);
// * the fused window stage is gpukit_common.cuh's gk_window_value in float32.
//
// Error bound: gpukit_common.cuh, "the float32 sampler" (at most 0.01 HU for trilinear on int16 CT with
// |stored| < 4096; nearest always reads the reference's voxel; the fused uint8 window is at most 1 off).
// Entry points and launch are those of sample.cu with a _fast suffix:
//   gk_sample_none_{linear,nearest}_fast     mode none: out (ns, nr, nc)
//   gk_sample_combine_{linear,nearest}_fast  max, min, mean (`mode`): out (nr, nc); no inside sample: fill
// One thread per output pixel (c, r) marching along s, grid-stride in c and r; no shared memory, no
// synchronisation.
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

#define GK_FAST_PARAMS                                                                                      \
    const IN_T *__restrict__ data, const float *__restrict__ slopes, const float *__restrict__ intercepts,    \
        OUT_T *__restrict__ out, INDEX_T nx, INDEX_T ny, INDEX_T nz, int ns, int nr, int nc, int uniform,    \
        long long a00, long long a01, long long a02, long long a10, long long a11, long long a12,           \
        long long a20, long long a21, long long a22, long long b0, long long b1, long long b2, long long xl, \
        long long yl, long long zl, long long eps, float fill, float w_center, float w_width, int w_fcode,   \
        float w_lo, float w_hi, int w_invert, int mode, double r00, double r01, double r02, double r10,      \
        double r11, double r12, double r20, double r21, double r22, double rb0, double rb1, double rb2
#define GK_FAST_ARGS                                                                                         \
    data, slopes, intercepts, out, nx, ny, nz, ns, nr, nc, uniform, a00, a01, a02, a10, a11, a12, a20, a21, \
        a22, b0, b1, b2, xl, yl, zl, eps, fill, w_center, w_width, w_fcode, w_lo, w_hi, w_invert, mode, r00, \
        r01, r02, r10, r11, r12, r20, r21, r22, rb0, rb1, rb2

struct gk_out_stage_f {
    float cc, ww, lower, upper, lo, hi;
    int fcode, invert;
};

__device__ __forceinline__ OUT_T gk_store_fast(float v, const gk_out_stage_f& w) {
#if FUSED_WINDOW
    return (OUT_T)gk_window_value(v, w.fcode, w.cc, w.ww, w.lower, w.upper, w.lo, w.hi, OUT_ROUNDED, w.invert);
#else
    (void)w;  // no window stage in this specialisation
    return (OUT_T)v;
#endif
}

// one sample at an inside point: per slice rescaled; uniform: NOT rescaled (the caller does it once)
template <int LINEAR>
__device__ __forceinline__ float gk_read_fast(const IN_T* __restrict__ data, INDEX_T nx, INDEX_T ny, INDEX_T nz,
                                              gk_fix_t xm, gk_fix_t ym, gk_fix_t zm,
                                              const float* __restrict__ slopes,
                                              const float* __restrict__ intercepts, int uniform, gk_fix_t x,
                                              gk_fix_t y, gk_fix_t z, const gk_map64& m, int c, int r, int s) {
    if (LINEAR) return gk_linear_fast(data, nx, ny, nz, xm, ym, zm, slopes, intercepts, uniform, x, y, z);
    return gk_nearest_fast(data, nx, ny, nz, xm, ym, zm, slopes, intercepts, uniform, x, y, z, m, c, r, s);
}

template <int LINEAR, int NONE>
__device__ __forceinline__ void gk_sample_fast_body(GK_FAST_PARAMS) {
    gk_out_stage_f w;
    w.cc = w.ww = w.lower = w.upper = 0.0f;
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
    gk_map64 m;  // the reference's float64 map: nearest's tie rule only
    m.a00 = r00;
    m.a01 = r01;
    m.a02 = r02;
    m.a10 = r10;
    m.a11 = r11;
    m.a12 = r12;
    m.a20 = r20;
    m.a21 = r21;
    m.a22 = r22;
    m.b0 = rb0;
    m.b1 = rb1;
    m.b2 = rb2;
    const gk_fix_t xm = (gk_fix_t)(nx - 1) << GK_FIX_BITS;
    const gk_fix_t ym = (gk_fix_t)(ny - 1) << GK_FIX_BITS;
    const gk_fix_t zm = (gk_fix_t)(nz - 1) << GK_FIX_BITS;
    // the uniform rescale, applied once per output
    const float us = gk_ldg(slopes);
    const float ut = gk_ldg(intercepts);
    // max of (v s + t) is (max v) s + t for s >= 0 and (min v) s + t for s < 0
    const int cmode = (uniform && us < 0.0f) ? gk_combine_mirror(mode) : mode;
    const int rstride = (int)(blockDim.y * gridDim.y);
    const int cstride = (int)(blockDim.x * gridDim.x);
    for (int r = (int)(blockIdx.y * blockDim.y + threadIdx.y); r < nr; r += rstride) {
        for (int c = (int)(blockIdx.x * blockDim.x + threadIdx.x); c < nc; c += cstride) {
            // the ray's start (s = 0), fixed point: b + A00 c + A01 r
            const gk_fix_t px = b0 + a00 * (gk_fix_t)c + a01 * (gk_fix_t)r;
            const gk_fix_t py = b1 + a10 * (gk_fix_t)c + a11 * (gk_fix_t)r;
            const gk_fix_t pz = b2 + a20 * (gk_fix_t)c + a21 * (gk_fix_t)r;
            if (NONE) {
                gk_fix_t x = px, y = py, z = pz;
                for (int s = 0; s < ns; ++s) {
                    float v = fill;
                    if (gk_inside_fix(x, y, z, xl, yl, zl, eps)) {
                        v = gk_read_fast<LINEAR>(data, nx, ny, nz, xm, ym, zm, slopes, intercepts, uniform, x, y,
                                                 z, m, c, r, s);
                        if (uniform) v = fmaf(v, us, ut);
                    }
                    out[((INDEX_T)s * nr + r) * nc + c] = gk_store_fast(v, w);
                    x += a02;
                    y += a12;
                    z += a22;
                }
                continue;
            }
            // the inside steps [s0, s1] of the ray: a float32 estimate that cuts none, then exact trims
            float lo_f = -1.0f;
            float hi_f = (float)ns;
            gk_axis_window_fix(px, a02, xl, eps, &lo_f, &hi_f);
            gk_axis_window_fix(py, a12, yl, eps, &lo_f, &hi_f);
            gk_axis_window_fix(pz, a22, zl, eps, &lo_f, &hi_f);
            int s0 = 0;
            int s1 = -1;
            if (lo_f <= hi_f && hi_f >= 0.0f && lo_f <= (float)(ns - 1)) {   // ns < 2^24 (the wrapper checks)
                s0 = lo_f <= 0.0f ? 0 : (int)ceilf(lo_f);
                s1 = hi_f >= (float)(ns - 1) ? ns - 1 : (int)floorf(hi_f);
            }
            gk_fix_t x = px + a02 * (gk_fix_t)s0;
            gk_fix_t y = py + a12 * (gk_fix_t)s0;
            gk_fix_t z = pz + a22 * (gk_fix_t)s0;
            while (s0 <= s1 && !gk_inside_fix(x, y, z, xl, yl, zl, eps)) {
                ++s0;
                x += a02;
                y += a12;
                z += a22;
            }
            if (s0 <= s1) {  // s0 is inside: trim the far end down to it at most
                gk_fix_t xe = px + a02 * (gk_fix_t)s1;
                gk_fix_t ye = py + a12 * (gk_fix_t)s1;
                gk_fix_t ze = pz + a22 * (gk_fix_t)s1;
                while (s1 > s0 && !gk_inside_fix(xe, ye, ze, xl, yl, zl, eps)) {
                    --s1;
                    xe -= a02;
                    ye -= a12;
                    ze -= a22;
                }
            }
            float acc = gk_combine_init<float>(cmode);
            float comp = 0.0f;
            for (int s = s0; s <= s1; ++s) {
                const float v = gk_read_fast<LINEAR>(data, nx, ny, nz, xm, ym, zm, slopes, intercepts, uniform, x,
                                                     y, z, m, c, r, s);
                if (cmode == GK_MODE_MEAN)
                    gk_kahan_add(&acc, &comp, v);
                else
                    acc = gk_combine_step(acc, v, cmode);
                x += a02;
                y += a12;
                z += a22;
            }
            float res = gk_combine_finish(acc, (long long)(s1 - s0 + 1), cmode, fill);
            if (uniform && s1 >= s0) res = fmaf(res, us, ut);
            out[(INDEX_T)r * nc + c] = gk_store_fast(res, w);
        }
    }
}

extern "C" __global__ void gk_sample_none_linear_fast(GK_FAST_PARAMS) { gk_sample_fast_body<1, 1>(GK_FAST_ARGS); }
extern "C" __global__ void gk_sample_none_nearest_fast(GK_FAST_PARAMS) { gk_sample_fast_body<0, 1>(GK_FAST_ARGS); }
extern "C" __global__ void gk_sample_combine_linear_fast(GK_FAST_PARAMS) { gk_sample_fast_body<1, 0>(GK_FAST_ARGS); }
extern "C" __global__ void gk_sample_combine_nearest_fast(GK_FAST_PARAMS) { gk_sample_fast_body<0, 0>(GK_FAST_ARGS); }
