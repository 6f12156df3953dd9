// project.cu -- axis-aligned maximum / minimum / mean projections over a slab lo:hi of one array axis:
// the bandwidth-bound fast path of gpukit.project(volume, axis).
//
// =====================================================================================================
//  IN_T and INDEX_T below are DEFAULTS. gpukit's Python wrapper (gpukit/backends/cuda_src.py) prepends
//  its own #defines for each module it builds (input dtype, index width).
// =====================================================================================================
//
// The numpy reference is np_sampler.project_axis; the wrapper takes the same branches it does:
//
// * gk_project_k (axis 0, reduce along slices; out (ny, nx)): one thread per output pixel, reading
//   down the slices (neighbouring threads read neighbouring voxels).
//   - `raw` = 1 (one rescale over lo:hi, and mean or a positive slope): stored values are reduced
//     (max / min in IN_T, mean as a float64 sum over k divided by the count) and rescaled once:
//     raw * slopes[lo] + intercepts[lo];
//   - `raw` = 0: every slice is rescaled on the way, acc = data[lo] * s + t, then np.maximum /
//     np.minimum / += of data[k] * s_k + t_k, mean divided by the count at the end.
// * gk_project_ji (axes 1 and 2, reduce inside each slice; out (nz, n)): output (k, q) reduces
//   data at k * slice_stride + q * q_stride + t * t_stride for t = lo .. hi - 1, stored values first,
//   then rescaled with slice k's slope and intercept (a negative slope swaps max and min of the stored
//   values); mean = sum / count, then rescaled. Axis 1: q_stride 1, t_stride nx (coalesced); axis 2:
//   q_stride nx, t_stride 1 (each thread walks its own row).
//
// Every combination is gpukit_common.cuh's gk_combine_* (max / min follow numpy's NaN rule; a mode that
// selects -- gk_combine_selects -- is reduced on stored values in IN_T, the others accumulate in float64 from
// gk_combine_init and end with gk_combine_finish). Output float32 (the float64 value rounded).
// No shared memory, no synchronisation.
#include "gpukit_common.cuh"

#ifndef IN_T
#define IN_T short
#endif

// stored values src[lo * step] .. src[(hi - 1) * step] combined by `mode` and finished (not rescaled): in IN_T
// for a mode that selects (max / min), else accumulated in float64 from gk_combine_init
__device__ __forceinline__ double gk_reduce_stored(const IN_T* __restrict__ src, INDEX_T step, int lo, int hi,
                                                   int mode) {
    if (gk_combine_selects(mode)) {
        IN_T m = src[(INDEX_T)lo * step];
        for (int u = lo + 1; u < hi; ++u) m = gk_combine_step(m, src[(INDEX_T)u * step], mode);
        return gk_combine_finish((double)m, hi - lo, mode, 0.0);
    }
    double acc = gk_combine_init(mode);
    for (int u = lo; u < hi; ++u) acc = gk_combine_step(acc, (double)src[(INDEX_T)u * step], mode);
    return gk_combine_finish(acc, hi - lo, mode, 0.0);
}

extern "C" __global__ void gk_project_k(const IN_T* __restrict__ data, const double* __restrict__ slopes,
                                        const double* __restrict__ intercepts, float* __restrict__ out,
                                        INDEX_T plane, int lo, int hi, int mode, int raw) {
    const INDEX_T stride = (INDEX_T)blockDim.x * (INDEX_T)gridDim.x;
    for (INDEX_T p = (INDEX_T)blockIdx.x * (INDEX_T)blockDim.x + (INDEX_T)threadIdx.x; p < plane; p += stride) {
        const IN_T* __restrict__ src = data + p;
        double acc;
        if (raw) {
            acc = gk_reduce_stored(src, plane, lo, hi, mode);
            acc = acc * slopes[lo] + intercepts[lo];
        } else {
            acc = (double)src[(INDEX_T)lo * plane] * slopes[lo] + intercepts[lo];
            for (int k = lo + 1; k < hi; ++k)
                acc = gk_combine_step(acc, (double)src[(INDEX_T)k * plane] * slopes[k] + intercepts[k], mode);
            acc = gk_combine_finish(acc, hi - lo, mode, 0.0);
        }
        out[p] = (float)acc;
    }
}

extern "C" __global__ void gk_project_ji(const IN_T* __restrict__ data, const double* __restrict__ slopes,
                                         const double* __restrict__ intercepts, float* __restrict__ out,
                                         INDEX_T nz, INDEX_T nq, INDEX_T slice_stride, INDEX_T q_stride,
                                         INDEX_T t_stride, int lo, int hi, int mode) {
    const INDEX_T stride = (INDEX_T)blockDim.x * (INDEX_T)gridDim.x;
    const INDEX_T first = (INDEX_T)blockIdx.x * (INDEX_T)blockDim.x + (INDEX_T)threadIdx.x;
    for (INDEX_T k = blockIdx.y; k < nz; k += gridDim.y) {
        const double s = slopes[k];
        const double t = intercepts[k];
        const int m = s >= 0.0 ? mode : gk_combine_mirror(mode);  // a negative slope swaps max and min
        for (INDEX_T q = first; q < nq; q += stride) {
            const IN_T* __restrict__ src = data + k * slice_stride + q * q_stride;
            const double raw = gk_reduce_stored(src, t_stride, lo, hi, m);
            out[k * nq + q] = (float)(raw * s + t);
        }
    }
}
