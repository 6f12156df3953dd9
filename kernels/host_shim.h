// host_shim.h -- compiles gpukit's CUDA kernels as plain C++ for the CPU (tests without a GPU).
//
// gpukit/backends/cuda_host.py puts this header in front of a module's assembled source (the same text
// NVRTC compiles, see cuda_src.assemble), appends one exported launcher per entry point, and builds a
// shared library with
//     g++ -x c++ -std=c++14 -O2 -fPIC -shared -ffp-contract=off
// (contraction off, like NVRTC's --fmad=false, so the float64 expressions round as in numpy).
//
// What CUDA provides and the kernels use, restated for one host thread:
// * __global__ / __device__ / __forceinline__ / __noinline__ qualifiers;
// * blockIdx, threadIdx, blockDim, gridDim: thread_local, set by the launcher's loop over the grid and
//   the block (the kernels use no shared memory and no __syncthreads, so running the threads of a block
//   one after another is a valid schedule);
// * the math built-ins floor, ceil, exp and their float versions floorf, ceilf, expf, fabsf, fmaf (GCC's
//   built-ins; exp / expf are the C library's), __longlong_as_double, __int_as_float and __ldg (a plain load).
#ifndef GPUKIT_HOST_SHIM_H
#define GPUKIT_HOST_SHIM_H

// No headers (they would double the compile time of every module): the built-ins are GCC's.

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

static thread_local uint3 threadIdx;
static thread_local uint3 blockIdx;
static thread_local dim3 blockDim;
static thread_local dim3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))

static inline double floor(double x) { return __builtin_floor(x); }
static inline double ceil(double x) { return __builtin_ceil(x); }
static inline double exp(double x) { return __builtin_exp(x); }  // the C library's exp

// float32 built-ins of the fast sampler (sample_fast.cu): IEEE single precision as on the device (SSE, no x87);
// fmaf is a single rounding on both sides (the C library's fmaf where the CPU has no FMA instruction)
static inline float floorf(float x) { return __builtin_floorf(x); }
static inline float ceilf(float x) { return __builtin_ceilf(x); }
static inline float expf(float x) { return __builtin_expf(x); }  // the C library's expf
static inline float fabsf(float x) { return __builtin_fabsf(x); }
static inline float fmaf(float a, float b, float c) { return __builtin_fmaf(a, b, c); }

static inline double __longlong_as_double(long long v) {
    double d;
    __builtin_memcpy(&d, &v, sizeof d);
    return d;
}

static inline float __int_as_float(int v) {
    float f;
    __builtin_memcpy(&f, &v, sizeof f);
    return f;
}

// read-only data cache load: a plain load on the host
template <typename T>
static inline T __ldg(const T* p) {
    return *p;
}

// the launcher loop: every block of the grid, every thread of the block, one after another
#define GKHOST_LOOP(gx, gy, gz, bx, by, bz, CALL)                                          \
    do {                                                                                   \
        gridDim.x = (gx); gridDim.y = (gy); gridDim.z = (gz);                              \
        blockDim.x = (bx); blockDim.y = (by); blockDim.z = (bz);                           \
        for (unsigned int gkz = 0; gkz < gridDim.z; ++gkz)                                 \
            for (unsigned int gky = 0; gky < gridDim.y; ++gky)                             \
                for (unsigned int gkx = 0; gkx < gridDim.x; ++gkx) {                       \
                    blockIdx.x = gkx; blockIdx.y = gky; blockIdx.z = gkz;                  \
                    for (unsigned int tkz = 0; tkz < blockDim.z; ++tkz)                    \
                        for (unsigned int tky = 0; tky < blockDim.y; ++tky)                \
                            for (unsigned int tkx = 0; tkx < blockDim.x; ++tkx) {          \
                                threadIdx.x = tkx; threadIdx.y = tky; threadIdx.z = tkz;   \
                                CALL;                                                      \
                            }                                                              \
                }                                                                          \
    } while (0)

#endif  // GPUKIT_HOST_SHIM_H
