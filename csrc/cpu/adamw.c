// AdamW on fp32 master weights, decoupled weight decay, bias-corrected moments (backend.h has the formula).
// Elementwise, so a static split over threads gives the same bits for any thread count.
#include <math.h>

#include "bf16.h"
#include "cpu_internal.h"

// master, m, v [n] fp32; param [n] receives the new weights (may be master); grad [n]
void cpu_adamw(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
               float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
               const float *grad_scale) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_adamw(ctx, master, param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step,
                       grad_scale);
        return;
    }
    const float *g = grad;
    float *p = param;
    float gs = *grad_scale;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    // memory-bound: 5 streams in, 3 out; sqrtf (errno) keeps GCC from vectorizing it, which costs little
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gs;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float w = master[i];
        master[i] = w - lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + weight_decay * w);
    }
    if (p != master) {
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n))
        for (size_t i = 0; i < n; i++) p[i] = master[i];
    }
}
