// The emulator's runtime API: device memory (host memory kept in a registry, so that copies to or from an
// address no allocation owns are refused as the driver refuses them), streams and events (work runs at once
// on the calling thread, so a stream is always idle), the last error and the sticky error, device queries.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <map>
#include <mutex>
#include <set>

#include "emu_internal.h"

namespace rt_emu {

namespace {
std::mutex mu;
std::map<uintptr_t, size_t> allocations; // base -> bytes
size_t allocated_bytes;
std::set<cudaStream_t> streams;
std::set<cudaEvent_t> events;
std::map<const void *, size_t> smem_limits;
cudaError_t sticky = cudaSuccess;
thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;

size_t memory_limit() {
    static size_t limit = (size_t)strtoull(knob("RT_EMU_MEMORY", "8589934592"), NULL, 10);
    return limit;
}

// The allocation that holds [p, p + bytes), if one does.
bool owned(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    std::lock_guard<std::mutex> lock(mu);
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return false;
    --it;
    return a >= it->first && bytes <= it->second && a - it->first <= it->second - bytes;
}
} // namespace

const char *knob(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const cudaDeviceProp &device_prop(void) {
    static const cudaDeviceProp prop = [] {
        cudaDeviceProp p;
        memset(&p, 0, sizeof p);
        snprintf(p.name, sizeof p.name, "retort CUDA emulator (sm_80 on the CPU)");
        p.totalGlobalMem = memory_limit();
        p.sharedMemPerBlock = 48 * 1024;
        p.regsPerBlock = 65536;
        p.warpSize = 32;
        p.maxThreadsPerBlock = 1024;
        p.maxThreadsDim[0] = p.maxThreadsDim[1] = 1024;
        p.maxThreadsDim[2] = 64;
        p.maxGridSize[0] = 0x7fffffff;
        p.maxGridSize[1] = p.maxGridSize[2] = 65535;
        p.clockRate = 1000000;
        p.totalConstMem = 65536;
        p.major = 8;
        p.minor = 0;
        p.multiProcessorCount = 4;
        p.maxThreadsPerMultiProcessor = 2048;
        p.sharedMemPerMultiprocessor = 167936;
        p.sharedMemPerBlockOptin = 166912; // A100's 163 KiB, the smaller of the two targets
        return p;
    }();
    return prop;
}

cudaError_t set_error(cudaError_t e) {
    if (e == cudaSuccess) return e;
    last_error = e;
    // errors of a kernel's execution poison the context, as on a GPU; argument errors do not
    if (e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure) {
        std::lock_guard<std::mutex> lock(mu);
        if (sticky == cudaSuccess) sticky = e;
    }
    return e;
}

cudaError_t sticky_error(void) {
    std::lock_guard<std::mutex> lock(mu);
    return sticky;
}

bool stream_ok(cudaStream_t stream) {
    if (!stream) return true;
    std::lock_guard<std::mutex> lock(mu);
    return streams.count(stream) != 0;
}

size_t kernel_smem_limit(const void *kernel) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = smem_limits.find(kernel);
    return it == smem_limits.end() ? device_prop().sharedMemPerBlock : it->second;
}

bool in_device_memory(const void *p, size_t bytes) {
    return owned(p, bytes);
}

} // namespace rt_emu

using namespace rt_emu;

// A call that finds the context poisoned returns the sticky error, as the real runtime does.
#define RETURN_IF_STICKY                                                                                     \
    do {                                                                                                     \
        cudaError_t s_ = sticky_error();                                                                     \
        if (s_ != cudaSuccess) return set_error(s_);                                                         \
    } while (0)

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return set_error(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
    if (!device) return set_error(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (!prop) return set_error(cudaErrorInvalidValue);
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    *prop = device_prop();
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    RETURN_IF_STICKY;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    RETURN_IF_STICKY;
    std::lock_guard<std::mutex> lock(mu);
    if (total_bytes) *total_bytes = memory_limit();
    if (free_bytes) *free_bytes = memory_limit() - allocated_bytes;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    if (!p) return set_error(cudaErrorInvalidValue);
    RETURN_IF_STICKY;
    *p = NULL;
    if (bytes == 0) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(mu);
        if (bytes > memory_limit() - allocated_bytes) return set_error(cudaErrorMemoryAllocation);
    }
    void *m = NULL;
    if (posix_memalign(&m, 256, bytes) != 0) return set_error(cudaErrorMemoryAllocation);
    memset(m, 0xff, bytes); // uninitialised device memory reads as NaN (or -1)
    std::lock_guard<std::mutex> lock(mu);
    allocations[(uintptr_t)m] = bytes;
    allocated_bytes += bytes;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    RETURN_IF_STICKY;
    std::lock_guard<std::mutex> lock(mu);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) return set_error(cudaErrorInvalidValue);
    allocated_bytes -= it->second;
    allocations.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes) {
    if (!p) return set_error(cudaErrorInvalidValue);
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    RETURN_IF_STICKY;
    if (!stream_ok(stream)) return set_error(cudaErrorInvalidResourceHandle);
    if (bytes == 0) return cudaSuccess;
    bool dst_dev = owned(dst, bytes), src_dev = owned(src, bytes);
    bool ok;
    switch (kind) {
    case cudaMemcpyHostToHost:
        ok = dst && src;
        break;
    case cudaMemcpyHostToDevice:
        ok = dst_dev && src;
        break;
    case cudaMemcpyDeviceToHost:
        ok = src_dev && dst;
        break;
    case cudaMemcpyDeviceToDevice:
        ok = dst_dev && src_dev;
        break;
    case cudaMemcpyDefault:
        ok = dst && src;
        break;
    default:
        return set_error(cudaErrorInvalidMemcpyDirection);
    }
    if (!ok) return set_error(cudaErrorInvalidValue);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t stream) {
    RETURN_IF_STICKY;
    if (!stream_ok(stream)) return set_error(cudaErrorInvalidResourceHandle);
    if (width == 0 || height == 0) return cudaSuccess;
    if (width > dpitch || width > spitch)
        return set_error(cudaErrorInvalidValue); // cudaErrorInvalidPitchValue
    // every row through one flat copy's checks: the spans of all rows must lie in one allocation each
    size_t dspan = (height - 1) * dpitch + width, sspan = (height - 1) * spitch + width;
    bool dst_dev = owned(dst, dspan), src_dev = owned(src, sspan);
    bool ok = kind == cudaMemcpyHostToDevice     ? dst_dev && src
              : kind == cudaMemcpyDeviceToHost   ? src_dev && dst
              : kind == cudaMemcpyDeviceToDevice ? dst_dev && src_dev
                                                 : dst && src;
    if (!ok) return set_error(cudaErrorInvalidValue);
    for (size_t r = 0; r < height; r++)
        memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpyAsync(dst, src, bytes, kind, 0);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream) {
    RETURN_IF_STICKY;
    if (!stream_ok(stream)) return set_error(cudaErrorInvalidResourceHandle);
    if (bytes == 0) return cudaSuccess;
    if (!owned(p, bytes)) return set_error(cudaErrorInvalidValue);
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    return cudaMemsetAsync(p, value, bytes, 0);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    if (!stream) return set_error(cudaErrorInvalidValue);
    RETURN_IF_STICKY;
    cudaStream_t s = (cudaStream_t)malloc(1);
    if (!s) return set_error(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(mu);
    streams.insert(s);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream) return set_error(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::mutex> lock(mu);
    if (!streams.erase(stream)) return set_error(cudaErrorInvalidResourceHandle);
    free(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!stream_ok(stream)) return set_error(cudaErrorInvalidResourceHandle);
    RETURN_IF_STICKY;
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    return cudaStreamSynchronize(stream);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
    if (!stream_ok(stream)) return set_error(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::mutex> lock(mu);
    return events.count(event) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
    if (!event) return set_error(cudaErrorInvalidValue);
    cudaEvent_t e = (cudaEvent_t)malloc(1);
    if (!e) return set_error(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(mu);
    events.insert(e);
    *event = e;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(mu);
    if (!events.erase(event)) return set_error(cudaErrorInvalidResourceHandle);
    free(event);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!stream_ok(stream)) return set_error(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::mutex> lock(mu);
    return events.count(event) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    RETURN_IF_STICKY;
    std::lock_guard<std::mutex> lock(mu);
    return events.count(event) ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    return cudaEventSynchronize(event);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms) return set_error(cudaErrorInvalidValue);
    *ms = 0.0f; // work runs when it is enqueued: no time passes on the emulated stream
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    cudaError_t s = sticky_error();
    return s != cudaSuccess ? s : e;
}

cudaError_t cudaPeekAtLastError(void) {
    cudaError_t s = sticky_error();
    return s != cudaSuccess ? s : last_error;
}

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
        return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer:
        return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection:
        return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
        return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
        return "cudaErrorNotReady";
    case cudaErrorIllegalAddress:
        return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure:
        return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInitializationError:
        return "initialization error";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer:
        return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection:
        return "invalid copy direction for memcpy";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
        return "invalid resource handle";
    case cudaErrorNotReady:
        return "device not ready";
    case cudaErrorIllegalAddress:
        return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure";
    }
    return "unknown error";
}

cudaError_t cudaFuncSetAttribute(const void *kernel, cudaFuncAttribute attr, int value) {
    if (!kernel) return set_error(cudaErrorInvalidValue);
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value > device_prop().sharedMemPerBlockOptin)
            return set_error(cudaErrorInvalidValue);
        std::lock_guard<std::mutex> lock(mu);
        smem_limits[kernel] = (size_t)value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    return set_error(cudaErrorInvalidValue);
}
