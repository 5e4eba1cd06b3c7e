// AdamW with decoupled weight decay (matrices only), global-norm gradient clipping and a warmup + cosine
// learning-rate schedule. Everything runs as backend ops on device scalars, so a step never waits for the
// host.
#ifndef RT_OPTIMIZER_H
#define RT_OPTIMIZER_H

#include <stdint.h>

#include "model/model.h"

typedef struct rt_adamw_config {
    float lr, min_lr;
    int64_t warmup_steps, total_steps;
    float beta1, beta2, eps, weight_decay;
    float grad_clip; // global-norm limit, 0 = off
} rt_adamw_config;

rt_adamw_config rt_adamw_config_from(const rt_config *cfg);

// Learning rate for optimizer step `step` (0-based): linear warmup from lr/warmup to lr over warmup_steps,
// then cosine decay to min_lr at total_steps (min_lr after that).
float rt_lr_at(const rt_adamw_config *oc, int64_t step);

// One optimizer update over every trainable parameter of m, using its accumulated gradients. `step` is the
// 1-based count of this update (bias correction). The squared global norm lands in m->scalars[0] and the
// clip factor in m->scalars[1]; read them with rt_optimizer_grad_norm. It is rt_optimizer_prepare, then
// rt_optimizer_update.
void rt_optimizer_step(rt_model *m, const rt_adamw_config *oc, int64_t step, float lr);

// The update in two halves, so a caller can look at the gradient norm before anything changes (the
// training loop skips or stops on a non-finite step). prepare computes the squared global norm and the clip
// factor on device and changes no weight or moment; update applies AdamW with that factor.
void rt_optimizer_prepare(rt_model *m, const rt_adamw_config *oc);
void rt_optimizer_update(rt_model *m, const rt_adamw_config *oc, int64_t step, float lr);

// prepare's two halves, for ranks that hold the summed gradient of their shard only (ZeRO-1): the
// squared-norm partials of the arena segments this rank updates (the others zero), and, once the ranks
// have summed the partials, the norm and clip factor from them. Every configuration adds the same
// partials in the same order, so the norm is the same bits with or without sharding, on 1 rank or N.
void rt_optimizer_norm_partials(rt_model *m);
void rt_optimizer_finish_norm(rt_model *m, const rt_adamw_config *oc);

// Global gradient norm before clipping of the last step (synchronises the context).
float rt_optimizer_grad_norm(rt_model *m);

#endif
