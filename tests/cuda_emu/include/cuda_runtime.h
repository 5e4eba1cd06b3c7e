// Emulation build (tests/cuda_emu, docs/cuda_emulation.md): the part of the CUDA runtime and of the device
// language that cuda/*.cu uses, for compiling those files as host C++. Kernels run on the CPU: every CUDA
// thread is a fiber, a block's fibers take turns on one OS thread and switch only at barriers, warp
// collectives and exit, and blocks run one after another. Not the product: only the tests link it.
#ifndef RT_EMU_CUDA_RUNTIME_H
#define RT_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

// ---- the language: qualifiers the host compiler does not know ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __constant__
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
// __shared__ never reaches the compiler: translate.cmake rewrites static shared arrays into references to
// the running block's storage (rt_emu::block_shared) and extern __shared__ arrays into a pointer to its
// dynamic shared memory (rt_emu::dynamic_smem).

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float2 {
    float x, y;
};

// ---- the runtime API ----
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

#define cudaStreamDefault      0x00
#define cudaStreamNonBlocking  0x01
#define cudaEventDefault       0x00
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault   0x00

typedef struct rt_emu_stream *cudaStream_t;
typedef struct rt_emu_event *cudaEvent_t;

typedef struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int clockRate;
    size_t totalConstMem;
    int major, minor;
    int multiProcessorCount;
    int maxThreadsPerMultiProcessor;
    size_t sharedMemPerMultiprocessor;
    size_t sharedMemPerBlockOptin;
    int pciBusID, pciDeviceID;
} cudaDeviceProp;

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);

cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T> static inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc((void **)p, bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream = 0);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

cudaError_t cudaFuncSetAttribute(const void *kernel, cudaFuncAttribute attr, int value);
template <class T>
static inline cudaError_t cudaFuncSetAttribute(T *kernel, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void *)kernel, attr, value);
}

// ---- the emulator's side of the device language ----
namespace rt_emu {

extern thread_local uint3 tl_thread_idx, tl_block_idx;
extern thread_local dim3 tl_block_dim, tl_grid_dim;

// Stops the kernel with a message naming the launch, the block, the thread and `file:line` (aborts the
// process: an emulated kernel that goes wrong is a test failure with the place it went wrong).
[[noreturn]] void fault(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// The block's dynamic shared memory (launch argument), filled with 0xff bytes (NaN) at the block's start.
unsigned char *dynamic_smem(void);
// The running block's copy of one static __shared__ declaration, told apart by `tag` (the address of a
// static object distinct per declaration and template instantiation): made at the declaration's first use
// in a launch, filled with 0xff bytes (NaN) at every block's start.
void *static_smem(const void *tag, size_t bytes, size_t align);
template <class A> static inline A &block_shared(const void *tag) {
    return *(A *)static_smem(tag, sizeof(A), alignof(A));
}
// Whether [p, p + bytes) lies in this block's shared memory (dynamic or static).
bool in_shared(const void *p, size_t bytes);
// Whether [p, p + bytes) lies in one live device allocation.
bool in_device_memory(const void *p, size_t bytes);

void syncthreads(const char *file, int line);
// __syncthreads_or / _and / _count: the barrier, then the reduction of every thread's predicate.
int syncthreads_reduce(int op, int predicate, const char *file, int line);

// A warp collective: every lane of `mask` calls it with its `in` and `out`; once all have, complete() runs
// once with every lane's pointers (indexed by lane; NULL for lanes outside the mask) and they go on.
// Lanes must agree on `what` (the operation) and the mask, or the emulator stops with their places.
typedef void (*collective_fn)(const void *const ins[32], void *const outs[32], unsigned mask, int arg);
void warp_collective(const char *what, collective_fn complete, int arg, unsigned mask, const void *in,
                     void *out, const char *file, int line);
void syncwarp(const char *file, int line, unsigned mask = 0xffffffffu);

enum shfl_mode { SHFL_IDX = 0, SHFL_UP = 1, SHFL_DOWN = 2, SHFL_XOR = 3 };
uint64_t shfl_bits(shfl_mode mode, unsigned mask, uint64_t value, int arg, int width, const char *file,
                   int line);
template <class T>
static inline T shfl(shfl_mode mode, unsigned mask, T v, int arg, const char *file, int line,
                     int width = 32) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type over 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = shfl_bits(mode, mask, bits, arg, width, file, line);
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}

// cp.async (per thread): a copy of `bytes` into shared memory, `src_bytes` of them read from src and the
// rest zeroed; commit closes a group; wait_group(n) lands every group but the n newest.
void cp_async(void *dst, const void *src, int bytes, int src_bytes, const char *file, int line);
void cp_async_commit(void);
void cp_async_wait(int n, const char *file, int line);

// ---- kernel launches: translate.cmake rewrites  k<<<cfg>>>(args)  as  k << launch_cfg(cfg) >>
// launch_args(args)
struct launch_config {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    const char *file;
    int line;
};
static inline launch_config launch_cfg(const char *file, int line, dim3 grid, dim3 block, size_t smem = 0,
                                       cudaStream_t stream = 0) {
    return launch_config{grid, block, smem, stream, file, line};
}
// Checks the configuration as the runtime does (an invalid one sets the last error and runs nothing) and
// runs body(arg) as every thread of every block.
void launch(const launch_config &cfg, const void *kernel, void (*body)(void *), void *arg);

template <class... P> struct bound_kernel {
    void (*fn)(P...);
    launch_config cfg;
};
template <class... P>
static inline bound_kernel<P...> operator<<(void (*fn)(P...), const launch_config &cfg) {
    return bound_kernel<P...>{fn, cfg};
}
template <class... A> struct kernel_args { std::tuple<A...> values; };
template <class... A> static inline kernel_args<std::decay_t<A>...> launch_args(A &&...a) {
    return kernel_args<std::decay_t<A>...>{std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}
template <class... P, class... A>
static inline void operator>>(const bound_kernel<P...> &k, const kernel_args<A...> &a) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    struct call {
        void (*fn)(P...);
        std::tuple<std::decay_t<P>...> params; // converted once, as the launch converts them
    };
    call c{k.fn, std::apply([](const auto &...x) { return std::tuple<std::decay_t<P>...>(x...); }, a.values)};
    launch(
        k.cfg, (const void *)k.fn, [](void *p) { std::apply(((call *)p)->fn, ((call *)p)->params); }, &c);
}

} // namespace rt_emu

#define threadIdx (static_cast<const uint3 &>(rt_emu::tl_thread_idx))
#define blockIdx  (static_cast<const uint3 &>(rt_emu::tl_block_idx))
#define blockDim  (static_cast<const dim3 &>(rt_emu::tl_block_dim))
#define gridDim   (static_cast<const dim3 &>(rt_emu::tl_grid_dim))
static constexpr int warpSize = 32;

#define __syncthreads()        rt_emu::syncthreads(__FILE__, __LINE__)
#define __syncthreads_or(p)    rt_emu::syncthreads_reduce(0, (p), __FILE__, __LINE__)
#define __syncthreads_and(p)   rt_emu::syncthreads_reduce(1, (p), __FILE__, __LINE__)
#define __syncthreads_count(p) rt_emu::syncthreads_reduce(2, (p), __FILE__, __LINE__)
#define __syncwarp(...)        rt_emu::syncwarp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(m, v, l, ...)                                                                            \
    rt_emu::shfl(rt_emu::SHFL_IDX, (m), (v), (l), __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_up_sync(m, v, d, ...)                                                                         \
    rt_emu::shfl(rt_emu::SHFL_UP, (m), (v), (d), __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_down_sync(m, v, d, ...)                                                                       \
    rt_emu::shfl(rt_emu::SHFL_DOWN, (m), (v), (d), __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_xor_sync(m, v, x, ...)                                                                        \
    rt_emu::shfl(rt_emu::SHFL_XOR, (m), (v), (x), __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)

// Device math the host library lacks under these names.
static inline int min(int a, int b) {
    return a < b ? a : b;
}
static inline int max(int a, int b) {
    return a > b ? a : b;
}
static inline long long min(long long a, long long b) {
    return a < b ? a : b;
}
static inline long long max(long long a, long long b) {
    return a > b ? a : b;
}
static inline unsigned min(unsigned a, unsigned b) {
    return a < b ? a : b;
}
static inline unsigned max(unsigned a, unsigned b) {
    return a > b ? a : b;
}
static inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}

#endif
