// AdamW on fp32 master weights, decoupled weight decay, bias-corrected moments (backend.h has the formula).
// Elementwise, so a static split over threads gives the same bits for any thread count.
#include <math.h>

#include "bf16.h"
#include "cpu_internal.h"

// One element's update of m, v and the master weight; returns the new weight.
static inline float adamw_step(float *master, float *m, float *v, float g, float lr, float beta1, float beta2,
                               float eps, float weight_decay, float bc1, float bc2) {
    float mi = beta1 * *m + (1.0f - beta1) * g;
    float vi = beta2 * *v + (1.0f - beta2) * g * g;
    *m = mi;
    *v = vi;
    float w = *master;
    w = w - lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + weight_decay * w);
    *master = w;
    return w;
}

// master, m, v [n] fp32; param [n] receives the new weights: master itself, an fp32 copy, or (bf16 contexts)
// the bf16 compute copy, rounded in the same pass; grad [n]
void cpu_adamw(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
               float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
               const float *grad_scale) {
    float gs = *grad_scale;
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    int nt = cpu_threads(ctx, n);
    // 4 streams in, 3 or 4 out; SIMD (the build has no math errno), and vsqrtps and vdivps round as the
    // scalar instructions do, so the bits do not depend on the vector width
    if (ctx->act == RT_BF16) {
        uint16_t *p = param;
#pragma omp parallel for simd schedule(static) num_threads(nt)
        for (size_t i = 0; i < n; i++)
            p[i] = cpu_bf16_store(adamw_step(&master[i], &m[i], &v[i], grad[i] * gs, lr, beta1, beta2, eps,
                                             weight_decay, bc1, bc2));
    } else if (param != master) {
        float *p = param;
#pragma omp parallel for simd schedule(static) num_threads(nt)
        for (size_t i = 0; i < n; i++)
            p[i] = adamw_step(&master[i], &m[i], &v[i], grad[i] * gs, lr, beta1, beta2, eps, weight_decay,
                              bc1, bc2);
    } else {
#pragma omp parallel for simd schedule(static) num_threads(nt)
        for (size_t i = 0; i < n; i++)
            adamw_step(&master[i], &m[i], &v[i], grad[i] * gs, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
    }
}
