// gpukit_common.cuh -- device maths shared by every gpukit CUDA kernel.
//
// =====================================================================================================
//  The macros below are DEFAULTS for compiling this file on its own. gpukit's Python wrapper
//  (gpukit/backends/cuda_src.py) prepends its own #defines for every module it builds (element
//  types, index width, VOI and mode codes), so the values here are never the ones used at run time.
// =====================================================================================================
//
// This header restates, as scalar CUDA C++, the specification written in Python:
//
// * gpukit/backends/_math.py     voi_params, rescale_value, voi_value, round_half_away, window_value
// * gpukit/backends/numpy/sampler.py the inside rule (EPS), clamping, trilinear / nearest reads, the blend
//                                 order a + (b - a) * f, per-slice rescale between the two slices.
// * gpukit/backends/_sampler_math.py combine_init / combine_step / combine_finish / combine_selects /
//                                 combine_mirror: the combine rule of the projection modes (gk_combine_*).
//
// Every expression is the same float64 expression, in the same order, as the numpy reference, so a
// module compiled with contraction off (NVRTC --fmad=false, g++ -ffp-contract=off for the host shim)
// gives the same bits for LINEAR / LINEAR_EXACT windows, rescale and the sampler's blends (SIGMOID goes
// through exp, whose last bit differs between libraries).
//
// Plain NVRTC: no headers are included (no <cmath>, no CuPy headers); only CUDA's built-in math
// functions (floor, ceil, exp) are called. Sources are assembled by the Python wrapper, which inlines
// this file in place of each .cu's include directive (cuda_src.assemble).
#ifndef GPUKIT_COMMON_CUH
#define GPUKIT_COMMON_CUH

#ifndef INDEX_T
#define INDEX_T int  // 32-bit indices; Python passes long long when an array exceeds 2**31 - 1 elements
#endif

// VOI LUT function codes (np_intensity.LINEAR, LINEAR_EXACT, SIGMOID)
#ifndef GK_LINEAR
#define GK_LINEAR 0
#endif
#ifndef GK_LINEAR_EXACT
#define GK_LINEAR_EXACT 1
#endif
#ifndef GK_SIGMOID
#define GK_SIGMOID 2
#endif

// combination modes along s (np_sampler.MODES)
#ifndef GK_MODE_NONE
#define GK_MODE_NONE 0
#endif
#ifndef GK_MODE_MAX
#define GK_MODE_MAX 1
#endif
#ifndef GK_MODE_MIN
#define GK_MODE_MIN 2
#endif
#ifndef GK_MODE_MEAN
#define GK_MODE_MEAN 3
#endif

// +infinity without <math_constants.h> (the host shim defines __longlong_as_double too)
#define GK_INF (__longlong_as_double(0x7ff0000000000000LL))

// -- window scalar maths (_math.py) -------------------------------------------------------------------
// Templates on the compute type R: double is the exact path (the very float64 expressions of _math.py, in the
// same order); float is the fast sampler's output stage (sample_fast.cu). Literals are written (R)x so the
// double instantiation is the expression it always was and the float one has no float64 in it.

__device__ __forceinline__ double gk_floor(double x) { return floor(x); }
__device__ __forceinline__ float gk_floor(float x) { return floorf(x); }
__device__ __forceinline__ double gk_exp(double x) { return exp(x); }
__device__ __forceinline__ float gk_exp(float x) { return expf(x); }

// (c', w', lower, upper) of a window: _math.voi_params
template <typename R>
__device__ __forceinline__ void gk_voi_params(R center, R width, int fcode, R* cc, R* ww, R* lower, R* upper) {
    if (fcode == GK_LINEAR) {
        *cc = center - (R)0.5;
        *ww = width - (R)1.0;
    } else {
        *cc = center;
        *ww = width;
    }
    const R half = *ww / (R)2.0;
    *lower = *cc - half;
    *upper = *cc + half;
}

// stored * slope + intercept: a multiply, then an add (never fused): _math.rescale_value
__device__ __forceinline__ double gk_rescale_value(double stored, double slope, double intercept) {
    return stored * slope + intercept;
}

// the VOI LUT output for x, unrounded, clamped to [lo, hi]; NaN gives lo: _math.voi_value
template <typename R>
__device__ __forceinline__ R gk_voi_value(R x, int fcode, R cc, R ww, R lower, R upper, R lo, R hi) {
    R y;
    if (fcode == GK_SIGMOID) {
        if (x != x) return lo;
        y = (hi - lo) / ((R)1.0 + gk_exp((R)-4.0 * (x - cc) / ww)) + lo;
    } else {
        if (!(x > lower)) return lo;
        if (x > upper) return hi;
        y = ((x - cc) / ww + (R)0.5) * (hi - lo) + lo;
    }
    if (y < lo) return lo;
    if (y > hi) return hi;
    return y;
}

// round half away from zero: _math.round_half_away
template <typename R>
__device__ __forceinline__ R gk_round_half_away(R y) {
    if (y >= (R)0.0) return gk_floor(y + (R)0.5);
    return -gk_floor((R)0.5 - y);
}

// one output value of the window: rounded when `rounded`, then inverted when `invert`: _math.window_value
template <typename R>
__device__ __forceinline__ R gk_window_value(R x, int fcode, R cc, R ww, R lower, R upper, R lo, R hi, int rounded,
                                             int invert) {
    R y = gk_voi_value(x, fcode, cc, ww, lower, upper, lo, hi);
    if (rounded) y = gk_round_half_away(y);
    if (invert) y = (lo + hi) - y;
    return y;
}

// -- the combine rule along s (codes.MODES; _sampler_math.combine_*) ------------------------------------
// Every combination of samples (sample.cu's projections, project.cu's axis fast paths) goes through these;
// a new mode gets its branch here and nowhere else in the .cu files.

// max / min with numpy's NaN rule (np.maximum / np.minimum / ndarray.max propagate NaN)
template <typename T>
__device__ __forceinline__ T gk_max(T acc, T v) {
    return (v > acc || v != v) ? v : acc;  // a NaN acc stays NaN (v > NaN is false, v != v is false)
}

template <typename T>
__device__ __forceinline__ T gk_min(T acc, T v) {
    return (v < acc || v != v) ? v : acc;
}

// +infinity in the compute type (no float64 constant in a float kernel)
template <typename R>
__device__ __forceinline__ R gk_inf();
template <>
__device__ __forceinline__ double gk_inf<double>() { return GK_INF; }
template <>
__device__ __forceinline__ float gk_inf<float>() { return __int_as_float(0x7f800000); }

// the accumulator before the first sample: _sampler_math.combine_init (double: the exact path)
template <typename R = double>
__device__ __forceinline__ R gk_combine_init(int mode) {
    if (mode == GK_MODE_MAX) return -gk_inf<R>();
    if (mode == GK_MODE_MIN) return gk_inf<R>();
    return (R)0.0;
}

// acc combined with the sample v (float64, or stored values in their type for the modes that select):
// _sampler_math.combine_step
template <typename T>
__device__ __forceinline__ T gk_combine_step(T acc, T v, int mode) {
    if (mode == GK_MODE_MAX) return gk_max(acc, v);
    if (mode == GK_MODE_MIN) return gk_min(acc, v);
    return (T)(acc + v);
}

// the result of `count` combined samples: fill when none, the mean's division: _sampler_math.combine_finish
template <typename R>
__device__ __forceinline__ R gk_combine_finish(R acc, long long count, int mode, R fill) {
    if (count <= 0) return fill;
    if (mode == GK_MODE_MEAN) return acc / (R)count;
    return acc;
}

// whether the result is one of the values (max, min): reducible on stored values in their own type, and
// commuting with a monotone rescale: _sampler_math.combine_selects
__device__ __forceinline__ bool gk_combine_selects(int mode) {
    return mode == GK_MODE_MAX || mode == GK_MODE_MIN;
}

// the mode whose result through a decreasing rescale (negative slope) is mode's: _sampler_math.combine_mirror
__device__ __forceinline__ int gk_combine_mirror(int mode) {
    if (mode == GK_MODE_MAX) return GK_MODE_MIN;
    if (mode == GK_MODE_MIN) return GK_MODE_MAX;
    return mode;
}

// -- the sampler's rule (np_sampler.py) ------------------------------------------------------------------

__device__ __forceinline__ double gk_clamp(double x, double hi) {
    if (x < 0.0) return 0.0;
    if (x > hi) return hi;
    return x;
}

// inside when -eps <= x <= n - 1 + eps on every axis (xl = nx - 1.0 + eps, ...)
__device__ __forceinline__ bool gk_inside(double x, double y, double z, double xl, double yl, double zl,
                                          double eps) {
    return x >= -eps && x <= xl && y >= -eps && y <= yl && z >= -eps && z <= zl;
}

// trilinear value at an inside point, eight neighbours clamped to the edge; blended along x, then y, per
// slice; rescaled once (uniform rescale) or per slice before the z blend (nb_sampler._linear)
template <typename T>
__device__ __forceinline__ double gk_linear(const T* __restrict__ flat, INDEX_T nx, INDEX_T ny, INDEX_T nz,
                                            const double* __restrict__ slopes,
                                            const double* __restrict__ intercepts, int uniform, double x,
                                            double y, double z) {
    x = gk_clamp(x, (double)(nx - 1));
    y = gk_clamp(y, (double)(ny - 1));
    z = gk_clamp(z, (double)(nz - 1));
    const INDEX_T i0 = (INDEX_T)floor(x);
    const INDEX_T j0 = (INDEX_T)floor(y);
    const INDEX_T k0 = (INDEX_T)floor(z);
    const double fx = x - (double)i0;
    const double fy = y - (double)j0;
    const double fz = z - (double)k0;
    const INDEX_T di = i0 < nx - 1 ? 1 : 0;
    const INDEX_T dj = j0 < ny - 1 ? nx : 0;
    const INDEX_T dk = k0 < nz - 1 ? nx * ny : 0;
    const INDEX_T o = (k0 * ny + j0) * nx + i0;
    double a = (double)flat[o];
    const double c00 = a + ((double)flat[o + di] - a) * fx;
    const INDEX_T o1 = o + dj;
    a = (double)flat[o1];
    const double c01 = a + ((double)flat[o1 + di] - a) * fx;
    const double p0 = c00 + (c01 - c00) * fy;
    const INDEX_T o2 = o + dk;
    a = (double)flat[o2];
    const double c10 = a + ((double)flat[o2 + di] - a) * fx;
    const INDEX_T o3 = o2 + dj;
    a = (double)flat[o3];
    const double c11 = a + ((double)flat[o3 + di] - a) * fx;
    const double p1 = c10 + (c11 - c10) * fy;
    if (uniform) return (p0 + (p1 - p0) * fz) * slopes[0] + intercepts[0];
    const INDEX_T k1 = k0 < nz - 1 ? k0 + 1 : k0;
    const double h0 = p0 * slopes[k0] + intercepts[k0];
    const double h1 = p1 * slopes[k1] + intercepts[k1];
    return h0 + (h1 - h0) * fz;
}

// nearest voxel (round half up: floor(x + 0.5) of the clamped index), rescaled with its slice's rescale
template <typename T>
__device__ __forceinline__ double gk_nearest(const T* __restrict__ flat, INDEX_T nx, INDEX_T ny, INDEX_T nz,
                                             const double* __restrict__ slopes,
                                             const double* __restrict__ intercepts, int uniform, double x,
                                             double y, double z) {
    const INDEX_T i = (INDEX_T)floor(gk_clamp(x, (double)(nx - 1)) + 0.5);
    const INDEX_T j = (INDEX_T)floor(gk_clamp(y, (double)(ny - 1)) + 0.5);
    const INDEX_T k = (INDEX_T)floor(gk_clamp(z, (double)(nz - 1)) + 0.5);
    const double v = (double)flat[(k * ny + j) * nx + i];
    if (uniform) return v * slopes[0] + intercepts[0];
    return v * slopes[k] + intercepts[k];
}

// Narrow the interval [*lo, *hi] of ray steps t where -eps <= p + d * t <= lim (an estimate in real
// arithmetic; callers widen it by two steps and keep the exact per-sample test): nb_sampler._axis_window
__device__ __forceinline__ void gk_axis_window(double p, double d, double lim, double eps, double* lo,
                                               double* hi) {
    if (d == 0.0) {
        if (p < -eps || p > lim) {
            *lo = 1.0;
            *hi = -10.0;  // empty, and stays empty
        }
        return;
    }
    double ta = (-eps - p) / d;
    double tb = (lim - p) / d;
    if (ta > tb) {
        const double t = ta;
        ta = tb;
        tb = t;
    }
    if (ta > *lo) *lo = ta;
    if (tb < *hi) *hi = tb;
}

// -- the float32 sampler (precision "fast": sample_fast.cu) -----------------------------------------------
// No float64 anywhere: fp64 runs at 1/32 to 1/64 of the fp32 rate on L4, A10 and RTX cards.
//
// Coordinates are 64-bit fixed point with GK_FIX_BITS fractional bits (the wrapper converts A and b once per
// launch, rounding to nearest, and uses this path only when every partial sum of A @ (c, r, s) + b stays
// below 2^21 voxels, so nothing overflows). A ray starts at b + A00 c + A01 r (integer multiply-adds) and
// steps by adding A02 (exact integer adds): the index error is the rounding of A and b only,
//     |index - reference index| <= 2^-41 (1 + c + r + s)        (+ 1e-13, the reference's own float64 sum),
// i.e. below 2^-25 voxel for grids up to 2^15 per side; the fraction then goes to float32 (2^-25 more).
// The inside test and the clamp are integer compares against the limits rounded the same way, so a sample
// is inside exactly when the reference says so, except within that index error of the band's edges.
// Weights, blends (fmaf: one rounding each), the rescale and the combination are float32; a uniform rescale
// is applied once per output (after the projection for max / min / mean); means are Kahan-compensated.
//
// Error bound (linear), per output, against the float64 reference with both rounded to float32:
//     |fast - exact| <= 2^-20 (V |s| + |t|) + 3 d G + ulp32(out)
// with V the largest |stored value| among the eight neighbours, s / t the slope / intercept, d the index
// error above and G the largest difference between two of the eight rescaled neighbours. For int16 CT with
// |stored| < 4096, |s| <= 1, |t| <= 1024 and grids up to 4096 per side this is below 0.0063 HU (we state
// 0.01 HU). Nearest: always the reference's voxel (near a .5 tie, where the fixed-point index cannot tell, the
// index is recomputed in float64 as the reference does: gk_nearest_index_f64, the only float64 code, off the
// common path); the value differs by the float32 rescale only (0 for integer slope and intercept with
// |HU| < 2^24, else below 2^-22 relative). Max / min / mean of such samples keep the bound.
typedef long long gk_fix_t;
#define GK_FIX_BITS 40
#define GK_FIX_HALF (1LL << (GK_FIX_BITS - 1))
#define GK_FIX_TO_FLOAT 9.094947017729282e-13f  // 2^-40
#define GK_FRAC32_TO_FLOAT 2.3283064365386963e-10f  // 2^-32

// read-only data cache loads (ld.global.nc)
template <typename T>
__device__ __forceinline__ T gk_ldg(const T* p) {
    return __ldg(p);
}

// inside when -eps <= x <= xl on every axis, in fixed point (xl = round(((nx - 1) + eps) 2^40), ...)
__device__ __forceinline__ bool gk_inside_fix(gk_fix_t x, gk_fix_t y, gk_fix_t z, gk_fix_t xl, gk_fix_t yl,
                                              gk_fix_t zl, gk_fix_t eps) {
    return x >= -eps && x <= xl && y >= -eps && y <= yl && z >= -eps && z <= zl;
}

__device__ __forceinline__ gk_fix_t gk_clamp_fix(gk_fix_t x, gk_fix_t hi) {
    if (x < 0) return 0;
    if (x > hi) return hi;
    return x;
}

// the fraction of a non-negative fixed-point index as float32: its top 32 bits, rounded to 24 (< 2^-25 off)
__device__ __forceinline__ float gk_fix_frac(gk_fix_t x) {
    return (float)(unsigned int)(x >> (GK_FIX_BITS - 32)) * GK_FRAC32_TO_FLOAT;
}

// trilinear at an inside point (fixed-point index, clamped to [0, n - 1] here: xm = (nx - 1) << 40, ...),
// float32 weights and fmaf blends along x, then y; uniform: the blend along z of the stored values, NOT
// rescaled (the caller rescales once per output); per slice: the two slices rescaled, then blended
template <typename T>
__device__ __forceinline__ float gk_linear_fast(const T* __restrict__ flat, INDEX_T nx, INDEX_T ny, INDEX_T nz,
                                                gk_fix_t xm, gk_fix_t ym, gk_fix_t zm,
                                                const float* __restrict__ slopes,
                                                const float* __restrict__ intercepts, int uniform, gk_fix_t x,
                                                gk_fix_t y, gk_fix_t z) {
    x = gk_clamp_fix(x, xm);
    y = gk_clamp_fix(y, ym);
    z = gk_clamp_fix(z, zm);
    const INDEX_T i0 = (INDEX_T)(x >> GK_FIX_BITS);
    const INDEX_T j0 = (INDEX_T)(y >> GK_FIX_BITS);
    const INDEX_T k0 = (INDEX_T)(z >> GK_FIX_BITS);
    const float fx = gk_fix_frac(x);
    const float fy = gk_fix_frac(y);
    const float fz = gk_fix_frac(z);
    const INDEX_T di = i0 < nx - 1 ? 1 : 0;
    const INDEX_T dj = j0 < ny - 1 ? nx : 0;
    const INDEX_T dk = k0 < nz - 1 ? nx * ny : 0;
    const INDEX_T o = (k0 * ny + j0) * nx + i0;
    float a = (float)gk_ldg(flat + o);
    const float c00 = fmaf((float)gk_ldg(flat + o + di) - a, fx, a);
    const INDEX_T o1 = o + dj;
    a = (float)gk_ldg(flat + o1);
    const float c01 = fmaf((float)gk_ldg(flat + o1 + di) - a, fx, a);
    const float p0 = fmaf(c01 - c00, fy, c00);
    const INDEX_T o2 = o + dk;
    a = (float)gk_ldg(flat + o2);
    const float c10 = fmaf((float)gk_ldg(flat + o2 + di) - a, fx, a);
    const INDEX_T o3 = o2 + dj;
    a = (float)gk_ldg(flat + o3);
    const float c11 = fmaf((float)gk_ldg(flat + o3 + di) - a, fx, a);
    const float p1 = fmaf(c11 - c10, fy, c10);
    if (uniform) return fmaf(p1 - p0, fz, p0);
    const INDEX_T k1 = k0 < nz - 1 ? k0 + 1 : k0;
    const float h0 = fmaf(p0, gk_ldg(slopes + k0), gk_ldg(intercepts + k0));
    const float h1 = fmaf(p1, gk_ldg(slopes + k1), gk_ldg(intercepts + k1));
    return fmaf(h1 - h0, fz, h0);
}

// The reference's float64 index map (A and b as doubles): only for nearest's tie rule below.
struct gk_map64 {
    double a00, a01, a02, a10, a11, a12, a20, a21, a22, b0, b1, b2;
};

// within GK_TIE_TOL of a .5 tie: the fixed-point index cannot tell which way the reference's float64 index
// rounds (|fixed - reference| < 2^-15 voxel over every grid the wrapper allows; the tolerance is 2^-12)
#define GK_TIE_TOL (1LL << (GK_FIX_BITS - 12))
__device__ __forceinline__ bool gk_near_tie(gk_fix_t x) {
    const gk_fix_t f = x & ((1LL << GK_FIX_BITS) - 1);
    return (f > GK_FIX_HALF ? f - GK_FIX_HALF : GK_FIX_HALF - f) <= GK_TIE_TOL;
}

// nearest's index along one axis exactly as the reference (and sample.cu) computes it, in float64:
// floor(clamp((a0 c + a1 r) + a2 s + b0) + 0.5). Not inlined: the only float64 code of the fast kernels, run
// for samples within GK_TIE_TOL of a .5 tie only (a handful per image, or every sample of a grid that sits on
// half voxels -- which then costs what the exact kernel costs)
__device__ __noinline__ int gk_nearest_index_f64(double a0, double a1, double a2, double b, int c, int r, int s,
                                                 long long n) {
    const double x = a0 * (double)c + a1 * (double)r + a2 * (double)s + b;
    return (int)floor(gk_clamp(x, (double)(n - 1)) + 0.5);
}

// nearest voxel (floor(x + 0.5) of the clamped index): fixed point, or the reference's float64 index near a .5
// tie, so it is always the reference's voxel; uniform: the stored value, not rescaled (the caller rescales once
// per output); per slice: rescaled with its slice's rescale
template <typename T>
__device__ __forceinline__ float gk_nearest_fast(const T* __restrict__ flat, INDEX_T nx, INDEX_T ny, INDEX_T nz,
                                                 gk_fix_t xm, gk_fix_t ym, gk_fix_t zm,
                                                 const float* __restrict__ slopes,
                                                 const float* __restrict__ intercepts, int uniform, gk_fix_t x,
                                                 gk_fix_t y, gk_fix_t z, const gk_map64& m, int c, int r, int s) {
    x = gk_clamp_fix(x, xm);
    y = gk_clamp_fix(y, ym);
    z = gk_clamp_fix(z, zm);
    INDEX_T i = (INDEX_T)((x + GK_FIX_HALF) >> GK_FIX_BITS);
    INDEX_T j = (INDEX_T)((y + GK_FIX_HALF) >> GK_FIX_BITS);
    INDEX_T k = (INDEX_T)((z + GK_FIX_HALF) >> GK_FIX_BITS);
    if (gk_near_tie(x)) i = (INDEX_T)gk_nearest_index_f64(m.a00, m.a01, m.a02, m.b0, c, r, s, (long long)nx);
    if (gk_near_tie(y)) j = (INDEX_T)gk_nearest_index_f64(m.a10, m.a11, m.a12, m.b1, c, r, s, (long long)ny);
    if (gk_near_tie(z)) k = (INDEX_T)gk_nearest_index_f64(m.a20, m.a21, m.a22, m.b2, c, r, s, (long long)nz);
    const float v = (float)gk_ldg(flat + (k * ny + j) * nx + i);
    if (uniform) return v;
    return fmaf(v, gk_ldg(slopes + k), gk_ldg(intercepts + k));
}

// Narrow [*lo, *hi] (ray steps, float32) to the steps t where -eps <= p + d t <= lim can hold, p, d, lim, eps in
// fixed point. An estimate that never cuts an inside step: p, d and lim are read as float32 (2^-24 relative)
// and the quotient carries at most (|p| + |lim| + 1) 2^-22 / |d| steps of error, so the interval is widened by
// 2 + (|p| + |lim| + 1) 2^-20 / |d| steps (no narrowing at all when that is huge: a nearly flat axis); the
// caller then trims the ends with the exact integer test gk_inside_fix. d == 0: the axis test is constant.
__device__ __forceinline__ void gk_axis_window_fix(gk_fix_t p, gk_fix_t d, gk_fix_t lim, gk_fix_t eps, float* lo,
                                                   float* hi) {
    if (d == 0) {
        if (p < -eps || p > lim) {
            *lo = 1.0f;
            *hi = -10.0f;  // empty, and stays empty
        }
        return;
    }
    const float pf = (float)p * GK_FIX_TO_FLOAT;
    const float df = (float)d * GK_FIX_TO_FLOAT;
    const float lf = (float)lim * GK_FIX_TO_FLOAT;
    const float ef = (float)eps * GK_FIX_TO_FLOAT;
    const float m = 2.0f + (fabsf(pf) + fabsf(lf) + 1.0f) * 9.5367431640625e-7f / fabsf(df);  // 2^-20
    if (!(m < 1.0e7f)) return;
    float ta = (-ef - pf) / df;
    float tb = (lf - pf) / df;
    if (ta > tb) {
        const float t = ta;
        ta = tb;
        tb = t;
    }
    if (ta - m > *lo) *lo = ta - m;
    if (tb + m < *hi) *hi = tb + m;
}

// compensated (Kahan) running sum of float32 samples: the error of a mean stays within about 2^-23 of the
// mean of |samples| for any ray length; a partial sum that is no longer finite (inf, NaN samples) drops the
// compensation, so inf and NaN propagate as in the float64 reference
__device__ __forceinline__ void gk_kahan_add(float* sum, float* comp, float v) {
    const float y = v - *comp;
    const float t = *sum + y;
    *comp = fabsf(t) <= 3.40282347e38f ? (t - *sum) - y : 0.0f;
    *sum = t;
}

#endif  // GPUKIT_COMMON_CUH
