// The flat arenas of a training model (arena.h): layout, allocation and release.
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

// Tensors start on 16-element boundaries (64 bytes in fp32), for vector loads; the members of a fused group
// (rt_param.fuse_next: wq, wk, wv; bq, bk, bv; wgate, wup) follow each other without a gap, so the group is
// one matrix in every arena and the group's start is aligned.
#define ALIGN 16

static size_t round_up(size_t x, size_t to) {
    return (x + to - 1) / to * to;
}

static int in_arena(const rt_model *m, int i) {
    const rt_param *p = &m->params[i];
    return m->training && !p->frozen && !rt_model_param_is_nf4(m, i);
}

// Which bucket each weight's gradient completes in (arena.h): 0 the head and final norm (and the head's
// adapters), 1 + (L - 1 - l) layer l with its adapters, L + 1 the token embedding, which a tied head shares
// and whose gradient the embedding lookup's backward completes last.
static void assign_buckets(rt_model *m) {
    int L = m->dims.L;
    for (int i = 0; i < m->n_params; i++) m->params[i].bucket = 0;
    for (int l = 0; l < L; l++) {
        const rt_layer_params *lp = &m->layer[l];
        int ids[] = {lp->attn_norm, lp->wq,    lp->wk,  lp->wv,   lp->wo,
                     lp->ffn_norm,  lp->wgate, lp->wup, lp->wdown};
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) m->params[ids[k]].bucket = 1 + (L - 1 - l);
        int biases[] = {lp->bq, lp->bk, lp->bv};
        for (size_t k = 0; k < 3; k++)
            if (biases[k] >= 0) m->params[biases[k]].bucket = 1 + (L - 1 - l);
        for (int s = 0; s < RT_N_BLOCK_SITES; s++) {
            if (lp->lora_a[s] >= 0) m->params[lp->lora_a[s]].bucket = 1 + (L - 1 - l);
            if (lp->lora_b[s] >= 0) m->params[lp->lora_b[s]].bucket = 1 + (L - 1 - l);
        }
    }
    m->params[m->tok_embd].bucket = L + 1;
}

// Matrices (weight decay) first, then norms, so AdamW runs as two ranges; within each, bucket by bucket in
// the order backward completes them, so each bucket is one range of each.
static void layout(rt_model *m) {
    rt_param_arena *ar = &m->arena;
    size_t off = 0;
    assign_buckets(m);
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < ar->n_buckets; b++) {
            size_t lo = off;
            for (int i = 0; i < m->n_params; i++) {
                rt_param *p = &m->params[i];
                if (!in_arena(m, i) || (p->decay != 0) != (pass == 0) || p->bucket != b) continue;
                p->in_arena = 1;
                p->off = off;
                // a group's members share bucket, decay and training, so the next one in the pass is the
                // next member
                int gap = !p->fuse_next || !in_arena(m, i + 1);
                off = gap ? round_up(off + p->n, ALIGN) : off + p->n;
            }
            if (pass == 0) {
                ar->buckets[b].decay_lo = lo;
                ar->buckets[b].decay_hi = off;
            } else {
                ar->buckets[b].norm_lo = lo;
                ar->buckets[b].norm_hi = off;
            }
        }
        if (pass == 0) ar->n_decay = off;
    }
    ar->n_used = off;
    int world = m->dp.world > 0 ? m->dp.world : 1;
    size_t used_segments = (off + RT_ARENA_SEGMENT - 1) / RT_ARENA_SEGMENT;
    size_t shard_segments = (used_segments + (size_t)world - 1) / (size_t)world;
    if (shard_segments == 0) shard_segments = 1;
    ar->shard_n = shard_segments * RT_ARENA_SEGMENT;
    ar->n = ar->shard_n * (size_t)world;
    ar->n_segments = ar->n / RT_ARENA_SEGMENT;
    ar->shard_off = m->dp.zero ? ar->shard_n * (size_t)m->dp.rank : 0;
    if (!m->dp.zero) ar->shard_n = ar->n; // without sharding, every rank updates everything
}

void rt_model_alloc_arena(rt_model *m, alloc_state *a) {
    rt_param_arena *ar = &m->arena;
    rt_ctx *ctx = m->ctx;
    size_t act = rt_dtype_size(ctx->act);
    ar->n_buckets = m->dims.L + 2;
    ar->buckets = rt_calloc((size_t)ar->n_buckets, sizeof *ar->buckets, "gradient buckets", a->err);
    if (!ar->buckets) {
        a->failed = 1;
        return;
    }
    layout(m);
    if (ar->n_used == 0) return; // nothing trains
    a->kind = ALLOC_PARAMS;
    // in fp32 the master is the compute copy every rank computes with, so only a bf16 run can shard it
    ar->master_sharded = m->dp.zero && ctx->act != RT_F32;
    ar->master = rt_model_dev_alloc(a, ar->master_sharded ? ar->shard_n : ar->n, sizeof(float), "parameters");
    ar->w = ctx->act == RT_F32 ? (void *)ar->master : rt_model_dev_alloc(a, ar->n, act, "parameters");
    ar->grad = rt_model_dev_alloc(a, ar->n, act, "gradient");
    ar->separate_acc = ctx->act != RT_F32 || m->dp.grad_accum > 1;
    ar->acc = ar->separate_acc ? rt_model_dev_alloc(a, ar->n, sizeof(float), "gradient") : (float *)ar->grad;
    size_t moments = m->dp.zero ? ar->shard_n : ar->n;
    ar->m = rt_model_dev_alloc(a, moments, sizeof(float), "AdamW first moment");
    ar->v = rt_model_dev_alloc(a, moments, sizeof(float), "AdamW second moment");
    ar->partials = rt_model_dev_alloc(a, ar->n_segments, sizeof(float), "gradient");
    if (a->failed) return;
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (!p->in_arena) continue;
        p->master = ar->master_sharded ? NULL : ar->master + p->off; // rt_model_set_weight fills a shard
        p->w = (char *)ar->w + p->off * act;
        p->grad = (char *)ar->grad + p->off * act;
        p->m = m->dp.zero ? NULL : ar->m + p->off;
        p->v = m->dp.zero ? NULL : ar->v + p->off;
    }
}

void rt_model_free_arena(rt_model *m) {
    rt_param_arena *ar = &m->arena;
    const rt_backend *be = m->ctx->be;
    void *bufs[] = {ar->master,  ar->w == ar->master ? NULL : ar->w,
                    ar->grad,    ar->acc == ar->grad ? NULL : ar->acc,
                    ar->m,       ar->v,
                    ar->partials};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(m->ctx, bufs[i]);
    free(ar->buckets);
    memset(ar, 0, sizeof *ar);
}
