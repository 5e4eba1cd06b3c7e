#include "model/optimizer.h"

#include <math.h>

rt_adamw_config rt_adamw_config_from(const rt_config *cfg) {
    rt_adamw_config oc;
    oc.lr = (float)cfg->train.lr;
    oc.min_lr = (float)cfg->train.min_lr;
    oc.warmup_steps = cfg->train.warmup_steps;
    oc.total_steps = cfg->train.steps;
    oc.beta1 = (float)cfg->train.beta1;
    oc.beta2 = (float)cfg->train.beta2;
    oc.eps = (float)cfg->train.eps;
    oc.weight_decay = (float)cfg->train.weight_decay;
    oc.grad_clip = (float)cfg->train.grad_clip;
    return oc;
}

float rt_lr_at(const rt_adamw_config *oc, int64_t step) {
    if (step < oc->warmup_steps) return oc->lr * (float)(step + 1) / (float)oc->warmup_steps;
    int64_t decay_steps = oc->total_steps - oc->warmup_steps;
    if (decay_steps <= 0 || step >= oc->total_steps) return oc->min_lr;
    double progress = (double)(step - oc->warmup_steps) / (double)decay_steps;
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return (float)(oc->min_lr + (oc->lr - oc->min_lr) * cosine);
}

void rt_optimizer_prepare(rt_model *m, const rt_adamw_config *oc) {
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    float *norm_sq = &m->scalars[0], *scale = &m->scalars[1];
    be->zero(ctx, norm_sq, sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const rt_param *p = &m->params[i];
        // A tied head shares its gradient buffer with the embedding; the table lists it once.
        if (p->grad) be->sum_squares(ctx, norm_sq, p->grad, p->n);
    }
    be->clip_scale(ctx, scale, norm_sq, oc->grad_clip);
}

void rt_optimizer_update(rt_model *m, const rt_adamw_config *oc, int64_t step, float lr) {
    rt_ctx *ctx = m->ctx;
    const float *scale = &m->scalars[1];
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (!p->grad) continue;
        ctx->be->adamw(ctx, p->master, p->w, p->grad, p->m, p->v, p->n, lr, oc->beta1, oc->beta2, oc->eps,
                       p->decay ? oc->weight_decay : 0.0f, step, scale);
    }
}

void rt_optimizer_step(rt_model *m, const rt_adamw_config *oc, int64_t step, float lr) {
    rt_optimizer_prepare(m, oc);
    rt_optimizer_update(m, oc, step, lr);
}

float rt_optimizer_grad_norm(rt_model *m) {
    float norm_sq = 0.0f;
    m->ctx->be->download(m->ctx, &norm_sq, &m->scalars[0], RT_F32, 1);
    return sqrtf(norm_sq);
}
