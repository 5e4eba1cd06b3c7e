// Backend-independent helpers: picking a backend for a device, and the CUDA entry points of a build
// without CUDA.
#include "backend/backend.h"

#include <string.h>

const char *rt_dtype_name(rt_dtype t) {
    return t == RT_BF16 ? "bf16" : "fp32";
}

#ifndef RT_HAVE_CUDA
const rt_backend *rt_backend_cuda(void) {
    return NULL;
}

int rt_cuda_available(rt_error *err) {
    return rt_fail(err, "retort was built without CUDA (nvcc not found at configure time)") + 1;
}

int rt_cuda_ctx_init(rt_ctx *ctx, rt_dtype act, int n_threads, int device_index, rt_error *err) {
    return rt_fail(err, "retort was built without CUDA (nvcc not found at configure time)");
}

int rt_cuda_device_count(void) {
    return 0;
}
#endif

const char *rt_device_resolve(const char *device) {
    if (strcmp(device, "auto") != 0) return device;
    rt_error why;
    return rt_backend_cuda() && rt_cuda_available(&why) ? "cuda" : "cpu";
}

int rt_ctx_init_device(rt_ctx *ctx, const char *device, const char *precision, int threads, int device_index,
                       rt_error *err) {
    const rt_backend *be = &rt_backend_cpu;
    if (strcmp(device, "cuda") == 0 || strcmp(device, "auto") == 0) {
        rt_error why;
        const rt_backend *cuda = rt_backend_cuda();
        if (cuda && rt_cuda_available(&why))
            be = cuda;
        else if (strcmp(device, "cuda") == 0) {
            if (!cuda) return rt_fail(err, "system.device is cuda, but this retort was built without CUDA");
            return rt_fail(err, "system.device is cuda, but no usable GPU: %s", why.msg);
        }
    } else if (strcmp(device, "cpu") != 0) {
        return rt_fail(err, "system.device: unknown device '%s' (expected cpu, cuda or auto)", device);
    }
    rt_dtype act = RT_F32;
    if (strcmp(precision, "bf16") == 0) act = RT_BF16; // the CPU refuses it where oneDNN has no bf16 kernels
    memset(ctx, 0, sizeof *ctx);
    if (be != &rt_backend_cpu) return rt_cuda_ctx_init(ctx, act, threads, device_index, err);
    return be->ctx_init(ctx, act, threads, err);
}
