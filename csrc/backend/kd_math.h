// The knowledge-distillation formulas of one category, shared by the CPU backend (csrc/cpu/distill.c) and
// the CUDA backend (cuda/distill.cu), so that both compute D and its gradient with the same expressions;
// the derivation is in docs/distillation.md. The backends differ only in how they loop, sum and reduce over
// a row, and in log(e^a + e^b): the CPU's is branch-free so its loops vectorize, so the including file
// defines RT_KD_LOGADDEXP(a, b) (callable from host and device code under nvcc) before including this.
#ifndef RT_KD_MATH_H
#define RT_KD_MATH_H

#include <math.h>

#include "backend/backend.h"

#ifndef RT_KD_LOGADDEXP
#error "define RT_KD_LOGADDEXP(a, b) before including backend/kd_math.h"
#endif

#ifndef RT_HOST_DEVICE
#ifdef __CUDACC__
#define RT_HOST_DEVICE __host__ __device__
#else
#define RT_HOST_DEVICE
#endif
#endif

#define RT_KD_FLOOR 1e-30 // floor of the tail masses inside logs (bucket tail)

typedef struct rt_kd_cfg {
    rt_kd_divergence div;
    float inv_t;    // 1 / T
    float beta, lb; // JSD: beta, log(beta)
    float l1b;      // JSD: log(1 - beta)
    float wce, wkd; // gradient weights: grad_scale (1 - alpha) and grad_scale alpha T
} rt_kd_cfg;

// The per-call constants of rt_kd_params (on the host, before the rows run).
static inline rt_kd_cfg rt_kd_cfg_of(const rt_kd_params *p, float grad_scale) {
    rt_kd_cfg c;
    c.div = p->divergence;
    c.inv_t = 1.0f / p->temperature;
    c.beta = p->beta;
    c.lb = logf(p->beta);
    c.l1b = log1pf(-p->beta);
    c.wce = grad_scale * (1.0f - p->alpha);
    c.wkd = grad_scale * p->alpha * p->temperature;
    return c;
}

// One category with teacher / student log-probabilities lr, lq and probabilities r, q: *d receives its term
// of D, *g the g_c = dD/dq_c up to a constant (0 for forward KL, whose gradient is formed as q - r).
static inline RT_HOST_DEVICE void rt_kd_cat(const rt_kd_cfg *c, float lr, float lq, float r, float q,
                                            float *d, float *g) {
    if (c->div == RT_KD_FORWARD_KL) {
        *d = r > 0.0f ? r * (lr - lq) : 0.0f;
        *g = 0.0f;
    } else if (c->div == RT_KD_REVERSE_KL) {
        *g = lq - lr;
        *d = q * *g;
    } else {
        float lm = RT_KD_LOGADDEXP(c->lb + lr, c->l1b + lq);
        *g = (1.0f - c->beta) * (lq - lm);
        *d = (r > 0.0f ? c->beta * r * (lr - lm) : 0.0f) + q * *g;
    }
}

// dD/du_c over categories that span the distribution (dense, or renormalised over the k ids), from
// rt_kd_cat's g and S = sum_c q_c g_c: q - r for forward KL, q (g - S) otherwise.
static inline RT_HOST_DEVICE float rt_kd_soft_grad(const rt_kd_cfg *c, float q, float r, float g, float S) {
    return c->div == RT_KD_FORWARD_KL ? q - r : q * (g - S);
}

// The tail bucket as one category (double): *d its term of D, *g its g_tail (forward KL: -r / q exactly).
static inline RT_HOST_DEVICE void rt_kd_bucket_tail(const rt_kd_cfg *c, double rt, double qt, double *d,
                                                    double *g) {
    double lrt = log(rt > RT_KD_FLOOR ? rt : RT_KD_FLOOR), lqt = log(qt > RT_KD_FLOOR ? qt : RT_KD_FLOOR);
    if (c->div == RT_KD_FORWARD_KL) {
        *d = rt > 0.0 ? rt * (lrt - lqt) : 0.0;
        *g = qt > RT_KD_FLOOR ? -rt / qt : 0.0; // a floored q_tail is a constant: no gradient through it
    } else if (c->div == RT_KD_REVERSE_KL) {
        *g = lqt - lrt;
        *d = qt * *g;
    } else {
        double a = log((double)c->beta) + lrt, b = log1p(-(double)c->beta) + lqt;
        double lm = (a > b ? a : b) + log1p(exp(-fabs(a - b)));
        *g = (1.0 - c->beta) * (lqt - lm);
        *d = (rt > 0.0 ? c->beta * rt * (lrt - lm) : 0.0) + qt * *g;
    }
}

#endif
