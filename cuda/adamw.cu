// AdamW on fp32 master weights with decoupled weight decay and bias-corrected moments (backend.h has the
// formula), writing the bf16 compute copy in the same pass. The bias corrections are computed on the host
// in double, exactly as the CPU backend does, so both see the same constants.
#include <math.h>

#include "cuda_internal.h"

template <typename T>
__global__ void adamw_kernel(float *master, T *param, const float *grad, float *m, float *v, size_t n,
                             float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
                             float bc2, const float *grad_scale, int write_param) {
    float gs = *grad_scale;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i] * gs;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float w = master[i];
        w = w - lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + weight_decay * w);
        master[i] = w;
        if (write_param) param[i] = from_f32<T>(w);
    }
}

void cuda_adamw(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
                float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
                const float *grad_scale) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    int write_param = (void *)param != (void *)master;
    CUDA_DISPATCH_ACT(ctx, adamw_kernel<T><<<cuda_grid(n, 256), 256, 0, st->stream>>>(
                               master, (T *)param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1,
                               bc2, grad_scale, write_param));
    cuda_check_launch(ctx, "adamw");
}
