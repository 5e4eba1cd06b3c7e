// Backend-independent helpers, and the CUDA entry points of a build without CUDA.
#include "backend.h"

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
#endif
