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

// The part of the arena this rank updates, cut to the tensors: [lo, hi).
static void updated_range(const rt_param_arena *ar, size_t *lo, size_t *hi) {
    *lo = ar->shard_off;
    *hi = ar->shard_off + ar->shard_n < ar->n_used ? ar->shard_off + ar->shard_n : ar->n_used;
    if (*hi < *lo) *hi = *lo;
}

void rt_optimizer_norm_partials(rt_model *m) {
    rt_ctx *ctx = m->ctx;
    const rt_param_arena *ar = &m->arena;
    if (!ar->partials) return;
    size_t lo, hi;
    updated_range(ar, &lo, &hi);
    if (lo > 0 || hi < ar->n_used) ctx->be->zero(ctx, ar->partials, ar->n_segments * sizeof(float));
    if (hi > lo)
        ctx->be->sum_squares_segments(ctx, ar->partials + lo / RT_ARENA_SEGMENT, ar->acc + lo, hi - lo,
                                      RT_ARENA_SEGMENT);
}

void rt_optimizer_finish_norm(rt_model *m, const rt_adamw_config *oc) {
    rt_ctx *ctx = m->ctx;
    const rt_param_arena *ar = &m->arena;
    float *norm_sq = &m->scalars[0], *scale = &m->scalars[1];
    size_t used = (ar->n_used + RT_ARENA_SEGMENT - 1) / RT_ARENA_SEGMENT;
    if (used > 0)
        ctx->be->sum_f32(ctx, norm_sq, ar->partials, used);
    else
        ctx->be->zero(ctx, norm_sq, sizeof(float));
    ctx->be->clip_scale(ctx, scale, norm_sq, oc->grad_clip);
}

void rt_optimizer_prepare(rt_model *m, const rt_adamw_config *oc) {
    rt_optimizer_norm_partials(m);
    rt_optimizer_finish_norm(m, oc);
}

// AdamW over this rank's part of the arena: the matrices with weight decay, then the rest without.
void rt_optimizer_update(rt_model *m, const rt_adamw_config *oc, int64_t step, float lr) {
    rt_ctx *ctx = m->ctx;
    const rt_param_arena *ar = &m->arena;
    const float *scale = &m->scalars[1];
    size_t act = rt_dtype_size(ctx->act), lo, hi;
    updated_range(ar, &lo, &hi);
    size_t cut = ar->n_decay < lo ? lo : ar->n_decay > hi ? hi : ar->n_decay;
    size_t ranges[2][2] = {{lo, cut}, {cut, hi}};
    for (int r = 0; r < 2; r++) {
        size_t a = ranges[r][0], b = ranges[r][1];
        if (b <= a) continue;
        size_t mo = a - (m->dp.zero ? ar->shard_off : 0); // the moments are of the shard only with ZeRO-1
        size_t ma = a - (ar->master_sharded ? ar->shard_off : 0);
        ctx->be->adamw(ctx, ar->master + ma, (char *)ar->w + a * act, ar->acc + a, ar->m + mo, ar->v + mo,
                       b - a, lr, oc->beta1, oc->beta2, oc->eps, r == 0 ? oc->weight_decay : 0.0f, step,
                       scale);
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
