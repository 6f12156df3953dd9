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

// (c', w', lower, upper) of a window: _math.voi_params
__device__ __forceinline__ void gk_voi_params(double center, double width, int fcode, double* cc, double* ww,
                                              double* lower, double* upper) {
    if (fcode == GK_LINEAR) {
        *cc = center - 0.5;
        *ww = width - 1.0;
    } else {
        *cc = center;
        *ww = width;
    }
    const double half = *ww / 2.0;
    *lower = *cc - half;
    *upper = *cc + half;
}

// stored * slope + intercept: a multiply, then an add (never fused): _math.rescale_value
__device__ __forceinline__ double gk_rescale_value(double stored, double slope, double intercept) {
    return stored * slope + intercept;
}

// the VOI LUT output for x, unrounded, clamped to [lo, hi]; NaN gives lo: _math.voi_value
__device__ __forceinline__ double gk_voi_value(double x, int fcode, double cc, double ww, double lower,
                                               double upper, double lo, double hi) {
    double y;
    if (fcode == GK_SIGMOID) {
        if (x != x) return lo;
        y = (hi - lo) / (1.0 + exp(-4.0 * (x - cc) / ww)) + lo;
    } else {
        if (!(x > lower)) return lo;
        if (x > upper) return hi;
        y = ((x - cc) / ww + 0.5) * (hi - lo) + lo;
    }
    if (y < lo) return lo;
    if (y > hi) return hi;
    return y;
}

// round half away from zero: _math.round_half_away
__device__ __forceinline__ double gk_round_half_away(double y) {
    if (y >= 0.0) return floor(y + 0.5);
    return -floor(0.5 - y);
}

// one output value of the window: rounded when `rounded`, then inverted when `invert`: _math.window_value
__device__ __forceinline__ double gk_window_value(double x, int fcode, double cc, double ww, double lower,
                                                  double upper, double lo, double hi, int rounded, int invert) {
    double y = gk_voi_value(x, fcode, cc, ww, lower, upper, lo, hi);
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

// the accumulator before the first sample: _sampler_math.combine_init
__device__ __forceinline__ double gk_combine_init(int mode) {
    if (mode == GK_MODE_MAX) return -GK_INF;
    if (mode == GK_MODE_MIN) return GK_INF;
    return 0.0;
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
__device__ __forceinline__ double gk_combine_finish(double acc, long long count, int mode, double fill) {
    if (count <= 0) return fill;
    if (mode == GK_MODE_MEAN) return acc / (double)count;
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

#endif  // GPUKIT_COMMON_CUH
