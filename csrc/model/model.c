// Llama-style decoder: parameters, activations, forward and backward over backend ops.
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "base/rng.h"

rt_model_dims rt_model_dims_from_config(const rt_config *cfg) {
    rt_model_dims d;
    d.V = cfg->model.vocab_size;
    d.C = cfg->model.dim;
    d.L = cfg->model.n_layers;
    d.H = cfg->model.n_heads;
    d.KVH = cfg->model.n_kv_heads;
    d.D = rt_config_head_dim(cfg);
    d.F = cfg->model.ffn_dim;
    d.T_max = cfg->model.max_seq_len;
    d.eps = (float)cfg->model.norm_eps;
    d.theta = (float)cfg->model.rope_theta;
    d.tied = cfg->model.tie_embeddings;
    d.attn_bias = cfg->model.attn_bias;
    d.rope = rt_rope_scaling_from_config(cfg);
    return d;
}

// ---------------------------------------------------------------------------------------------------
// allocation

void *rt_model_dev_alloc(alloc_state *a, size_t n_elems, size_t elem_size, const char *what) {
    if (a->failed) return NULL;
    size_t bytes;
    if (!rt_mul_size(n_elems, elem_size, &bytes)) {
        rt_fail(a->err, "size overflow allocating %s", what);
        a->failed = 1;
        return NULL;
    }
    void *p = a->m->ctx->be->alloc(a->m->ctx, bytes, what, a->err);
    if (!p) {
        a->failed = 1;
        return NULL;
    }
    rt_model_memory *mem = &a->m->memory;
    if (strcmp(what, "gradient") == 0)
        mem->gradients += bytes;
    else if (strncmp(what, "AdamW", 5) == 0)
        mem->optimizer += bytes;
    else if (a->kind == ALLOC_PARAMS)
        mem->parameters += bytes;
    else if (a->kind == ALLOC_BASE)
        mem->base += bytes;
    else
        mem->activations += bytes;
    return p;
}
#define dev_alloc rt_model_dev_alloc

static void dev_free(rt_model *m, void *p) {
    if (p) m->ctx->be->free(m->ctx, p);
}

static int add_param(rt_model *m, const char *name, int64_t rows, int64_t cols) {
    rt_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 0;
    p->n = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    p->decay = p->ndim == 2;
    return m->n_params++;
}

static void define_params(rt_model *m) {
    const rt_model_dims *d = &m->dims;
    char name[RT_TENSOR_NAME_MAX];
    m->tok_embd = add_param(m, "token_embd.weight", d->V, d->C);
    for (int l = 0; l < d->L; l++) {
        rt_layer_params *lp = &m->layer[l];
#define LAYER_PARAM(field, suffix, rows, cols)                                                               \
    snprintf(name, sizeof name, "blk.%d." suffix, l);                                                        \
    lp->field = add_param(m, name, rows, cols)
        LAYER_PARAM(attn_norm, "attn_norm.weight", d->C, 0);
        LAYER_PARAM(wq, "attn_q.weight", (int64_t)d->H * d->D, d->C);
        LAYER_PARAM(wk, "attn_k.weight", (int64_t)d->KVH * d->D, d->C);
        LAYER_PARAM(wv, "attn_v.weight", (int64_t)d->KVH * d->D, d->C);
        lp->bq = lp->bk = lp->bv = -1;
        if (d->attn_bias) { // vectors: no weight decay, like the norms
            LAYER_PARAM(bq, "attn_q.bias", (int64_t)d->H * d->D, 0);
            LAYER_PARAM(bk, "attn_k.bias", (int64_t)d->KVH * d->D, 0);
            LAYER_PARAM(bv, "attn_v.bias", (int64_t)d->KVH * d->D, 0);
        }
        m->params[lp->wq].fuse_next = m->params[lp->wk].fuse_next = 1; // [wq; wk; wv]
        if (d->attn_bias) m->params[lp->bq].fuse_next = m->params[lp->bk].fuse_next = 1;
        LAYER_PARAM(wo, "attn_output.weight", d->C, (int64_t)d->H * d->D);
        LAYER_PARAM(ffn_norm, "ffn_norm.weight", d->C, 0);
        LAYER_PARAM(wgate, "ffn_gate.weight", d->F, d->C);
        LAYER_PARAM(wup, "ffn_up.weight", d->F, d->C);
        LAYER_PARAM(wdown, "ffn_down.weight", d->C, d->F);
        m->params[lp->wgate].fuse_next = 1; // [wgate; wup]
#undef LAYER_PARAM
    }
    m->out_norm = add_param(m, "output_norm.weight", d->C, 0);
    m->out_head = d->tied ? m->tok_embd : add_param(m, "output.weight", d->V, d->C);
}

// Params first .. last of a fused group (rt_param.fuse_next) outside the arena: one allocation for all, the
// later members views into it. A group with an NF4 member keeps separate buffers (the linear layer gathers
// it in m->wtmp).
static int alloc_group(rt_model *m, alloc_state *a, int first, int last) {
    rt_ctx *ctx = m->ctx;
    size_t act = rt_dtype_size(ctx->act), n = 0;
    for (int i = first; i <= last; i++) {
        if (m->params[i].in_arena || rt_model_param_is_nf4(m, i)) return 0;
        n += m->params[i].n;
    }
    rt_param *lead = &m->params[first];
    a->kind = lead->frozen ? ALLOC_BASE : ALLOC_PARAMS;
    if (!(lead->frozen && ctx->act != RT_F32)) lead->master = dev_alloc(a, n, sizeof(float), lead->name);
    lead->w = ctx->act == RT_F32 && lead->master ? (void *)lead->master : dev_alloc(a, n, act, lead->name);
    if (a->failed) return 1;
    size_t off = lead->n;
    for (int i = first + 1; i <= last; i++) {
        rt_param *p = &m->params[i];
        p->view = 1;
        p->master = lead->master ? lead->master + off : NULL;
        p->w = (char *)lead->w + off * act;
        off += p->n;
    }
    return 1;
}

// The trainable weights of a training model live in the arenas (arena.c). Of the others, a frozen weight
// keeps no fp32 master beside its compute copy (they are the same buffer in fp32), and an NF4 one only its
// codes and scales.
static void alloc_params(rt_model *m, alloc_state *a) {
    rt_ctx *ctx = m->ctx;
    size_t act = rt_dtype_size(ctx->act);
    rt_model_alloc_arena(m, a);
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (p->in_arena || p->view) continue;
        if (p->fuse_next && (i == 0 || !m->params[i - 1].fuse_next)) {
            int last = i;
            while (m->params[last].fuse_next) last++;
            if (alloc_group(m, a, i, last)) continue;
        }
        a->kind = p->frozen ? ALLOC_BASE : ALLOC_PARAMS;
        if (rt_model_param_is_nf4(m, i)) {
            rt_model_alloc_nf4(m, a, p);
            continue;
        }
        if (p->frozen && ctx->act != RT_F32) {
            p->w = dev_alloc(a, p->n, act, p->name);
            continue;
        }
        p->master = dev_alloc(a, p->n, sizeof(float), p->name);
        p->w = ctx->act == RT_F32 ? (void *)p->master : dev_alloc(a, p->n, act, p->name);
    }
}

static void alloc_acts(rt_model *m, alloc_state *a) {
    const rt_model_dims *d = &m->dims;
    size_t act = rt_dtype_size(m->ctx->act);
    size_t N = (size_t)m->B_max * (size_t)m->T_max_batch;
    size_t HD = (size_t)d->H * d->D, QKV = (size_t)(d->H + 2 * d->KVH) * d->D, F2 = 2 * (size_t)d->F;
    for (int l = 0; l < d->L; l++) {
        rt_layer_acts *la = &m->acts[l];
        la->x = dev_alloc(a, N * d->C, act, "activations");
        la->xn1 = dev_alloc(a, N * d->C, act, "activations");
        la->rstd1 = dev_alloc(a, N, sizeof(float), "activations");
        la->qkv = dev_alloc(a, N * QKV, act, "activations");
        la->att = dev_alloc(a, N * HD, act, "activations");
        la->lse = dev_alloc(a, N * d->H, sizeof(float), "activations");
        la->xmid = dev_alloc(a, N * d->C, act, "activations");
        la->xn2 = dev_alloc(a, N * d->C, act, "activations");
        la->rstd2 = dev_alloc(a, N, sizeof(float), "activations");
        la->gu = dev_alloc(a, N * F2, act, "activations");
        la->h = dev_alloc(a, N * d->F, act, "activations");
    }
    m->resid_out = dev_alloc(a, N * d->C, act, "activations");
    m->xf = dev_alloc(a, N * d->C, act, "activations");
    m->rstdf = dev_alloc(a, N, sizeof(float), "activations");
    m->logits = dev_alloc(a, N * d->V, act, "logits");
    m->losses = dev_alloc(a, N, sizeof(float), "losses");
    if (m->training) m->kd_losses = dev_alloc(a, N, sizeof(float), "losses");
    m->tokens = dev_alloc(a, N, sizeof(int32_t), "token ids");
    m->targets = dev_alloc(a, N, sizeof(int32_t), "targets");
    m->scalars = dev_alloc(a, 4, sizeof(float), "scalars");
    m->rope_cos = dev_alloc(a, (size_t)d->T_max * (d->D / 2), sizeof(float), "RoPE table");
    m->rope_sin = dev_alloc(a, (size_t)d->T_max * (d->D / 2), sizeof(float), "RoPE table");
    if (m->training) {
        size_t wide = HD > (size_t)d->F ? HD : (size_t)d->F;
        m->dresid = dev_alloc(a, N * d->C, act, "gradients");
        m->dx = dev_alloc(a, N * d->C, act, "gradients");
        m->dC = dev_alloc(a, N * d->C, act, "gradients");
        m->dqkv = dev_alloc(a, N * QKV, act, "gradients");
        m->datt = dev_alloc(a, N * wide, act, "gradients");
        m->dgu = dev_alloc(a, N * F2, act, "gradients");
        m->dh = dev_alloc(a, N * d->F, act, "gradients");
    }
}

// Inference models keep the keys (after RoPE) and values of every position they have seen, per layer, so
// generation runs one new position per step (rt_model_forward_cached).
static void alloc_kv_cache(rt_model *m, alloc_state *a) {
    const rt_model_dims *d = &m->dims;
    if (a->failed) return;
    m->cache_k = rt_calloc((size_t)d->L, sizeof(void *), "KV cache table", a->err);
    m->cache_v = rt_calloc((size_t)d->L, sizeof(void *), "KV cache table", a->err);
    if (!m->cache_k || !m->cache_v) {
        a->failed = 1;
        return;
    }
    size_t n = (size_t)m->B_max * (size_t)m->T_max_batch * (size_t)d->KVH * (size_t)d->D;
    size_t act = rt_dtype_size(m->ctx->act);
    for (int l = 0; l < d->L; l++) {
        m->cache_k[l] = dev_alloc(a, n, act, "KV cache"); // [B_max, T_max_batch, KVH, D]
        m->cache_v[l] = dev_alloc(a, n, act, "KV cache");
    }
}

static void upload_rope_tables(rt_model *m, float *cos_tab, float *sin_tab) {
    const rt_model_dims *d = &m->dims;
    int half = d->D / 2;
    for (int i = 0; i < half; i++) {
        // double for the angle: t * theta^(-2i/D) loses digits in fp32 at long positions
        double freq = rt_rope_inv_freq((double)d->theta, i, d->D, &d->rope);
        for (int t = 0; t < d->T_max; t++) {
            cos_tab[(size_t)t * half + i] = (float)cos((double)t * freq);
            sin_tab[(size_t)t * half + i] = (float)sin((double)t * freq);
        }
    }
    size_t n = (size_t)d->T_max * half;
    m->ctx->be->upload(m->ctx, m->rope_cos, RT_F32, cos_tab, n);
    m->ctx->be->upload(m->ctx, m->rope_sin, RT_F32, sin_tab, n);
}

int rt_model_create(rt_model *m, const rt_model_dims *dims, rt_ctx *ctx, int B, int T, int training,
                    rt_error *err) {
    return rt_model_create_adapted(m, dims, NULL, ctx, B, T, training, err);
}

int rt_model_create_adapted(rt_model *m, const rt_model_dims *dims, const rt_lora_spec *lora, rt_ctx *ctx,
                            int B, int T, int training, rt_error *err) {
    rt_data_parallel one = {1, 0, 0, 1};
    return rt_model_create_parallel(m, dims, lora, ctx, B, T, training ? &one : NULL, err);
}

int rt_model_create_parallel(rt_model *m, const rt_model_dims *dims, const rt_lora_spec *lora, rt_ctx *ctx,
                             int B, int T, const rt_data_parallel *dp, rt_error *err) {
    memset(m, 0, sizeof *m);
    if (lora) m->lora = *lora;
    m->dims = *dims;
    m->ctx = ctx;
    m->B_max = B;
    m->T_max_batch = T;
    m->training = dp != NULL;
    int training = m->training;
    if (dp) m->dp = *dp;
    if (dp && (dp->world < 1 || dp->rank < 0 || dp->rank >= dp->world || dp->grad_accum < 1))
        return rt_fail(err, "data-parallel layout: rank %d of %d, %d micro-batches per step", dp->rank,
                       dp->world, dp->grad_accum);
    if (B <= 0 || T <= 0 || T > dims->T_max)
        return rt_fail(err, "batch %d x %d does not fit the model (max_seq_len %d)", B, T, dims->T_max);
    if (dims->H <= 0 || dims->KVH <= 0 || dims->H % dims->KVH != 0 || dims->D <= 0 || dims->D % 2 != 0)
        return rt_fail(err, "model dims: n_heads %d, n_kv_heads %d, head_dim %d do not form even head dims",
                       dims->H, dims->KVH, dims->D);
    const rt_rope_scaling *rs = &dims->rope;
    if (rs->type != RT_ROPE_SCALING_NONE && !(rs->factor >= 1.0f))
        return rt_fail(err, "model.rope_factor %g must be at least 1", (double)rs->factor);
    if (rs->type == RT_ROPE_SCALING_LLAMA3 &&
        (!(rs->high_freq_factor > rs->low_freq_factor) || !(rs->low_freq_factor > 0.0f) ||
         rs->original_max_seq_len <= 0))
        return rt_fail(err,
                       "llama3 RoPE scaling: model.rope_low_freq_factor %g, rope_high_freq_factor %g, "
                       "rope_original_max_seq_len %d (need 0 < low < high and a positive length)",
                       (double)rs->low_freq_factor, (double)rs->high_freq_factor, rs->original_max_seq_len);
    int max_params = 3 + 12 * dims->L + 2 * (RT_N_BLOCK_SITES * dims->L + 1);
    m->params = rt_calloc((size_t)max_params, sizeof(rt_param), "parameter table", err);
    m->layer = rt_calloc((size_t)dims->L, sizeof(rt_layer_params), "layer table", err);
    m->acts = rt_calloc((size_t)dims->L, sizeof(rt_layer_acts), "activation table", err);
    if (!m->params || !m->layer || !m->acts) {
        rt_model_free(m);
        return -1;
    }
    define_params(m);
    rt_model_define_adapters(m);
    for (int i = 0; i < m->n_params; i++) m->params[i].frozen = m->lora.freeze_base && !m->params[i].adapter;
    alloc_state a = {m, err, 0, ALLOC_PARAMS};
    alloc_params(m, &a);
    a.kind = ALLOC_ACTS;
    alloc_acts(m, &a);
    rt_model_alloc_lora(m, &a);
    if (!training) alloc_kv_cache(m, &a);
    if (a.failed) {
        rt_model_free(m);
        return -1;
    }
    size_t half_n = (size_t)dims->T_max * (dims->D / 2);
    float *cos_tab = rt_malloc(half_n * sizeof(float), "RoPE table", err);
    float *sin_tab = rt_malloc(half_n * sizeof(float), "RoPE table", err);
    if (!cos_tab || !sin_tab) {
        free(cos_tab);
        free(sin_tab);
        rt_model_free(m);
        return -1;
    }
    upload_rope_tables(m, cos_tab, sin_tab);
    ctx->be->sync(ctx);
    free(cos_tab);
    free(sin_tab);
    return 0;
}

void rt_model_free(rt_model *m) {
    if (!m->ctx) return;
    rt_model_free_lora(m);
    if (m->params) {
        for (int i = 0; i < m->n_params; i++) {
            rt_param *p = &m->params[i];
            if (p->in_arena || p->view) continue;
            if (p->w != p->master) dev_free(m, p->w);
            dev_free(m, p->master);
        }
    }
    rt_model_free_arena(m);
    if (m->acts) {
        for (int l = 0; l < m->dims.L; l++) {
            rt_layer_acts *la = &m->acts[l];
            void *bufs[] = {la->x,    la->xn1, la->rstd1, la->qkv, la->att, la->lse,
                            la->xmid, la->xn2, la->rstd2, la->gu,  la->h};
            for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dev_free(m, bufs[i]);
        }
    }
    dev_free(m, m->kd_losses);
    for (int l = 0; l < m->dims.L; l++) {
        if (m->cache_k) dev_free(m, m->cache_k[l]);
        if (m->cache_v) dev_free(m, m->cache_v[l]);
    }
    free(m->cache_k);
    free(m->cache_v);
    void *bufs[] = {m->resid_out, m->xf,      m->rstdf,    m->logits,   m->losses, m->tokens,
                    m->targets,   m->scalars, m->rope_cos, m->rope_sin, m->dresid, m->dx,
                    m->dC,        m->dqkv,    m->datt,     m->dgu,      m->dh};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dev_free(m, bufs[i]);
    free(m->params);
    free(m->layer);
    free(m->acts);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------------
// weights

static void sync_compute_copy(rt_model *m, rt_param *p) {
    if (p->master && p->w != p->master)
        m->ctx->be->convert(m->ctx, p->w, m->ctx->act, p->master, RT_F32, p->n);
}

// Host values of arena tensor p (p->n floats) into a buffer holding this rank's shard of the arena only
// ([arena.shard_n]: sharded masters or moments): the part of p inside the shard.
static void upload_shard_part(rt_model *m, const rt_param *p, float *shard_buf, const float *host) {
    const rt_param_arena *ar = &m->arena;
    size_t lo = p->off > ar->shard_off ? p->off : ar->shard_off;
    size_t hi = p->off + p->n < ar->shard_off + ar->shard_n ? p->off + p->n : ar->shard_off + ar->shard_n;
    if (lo < hi)
        m->ctx->be->upload(m->ctx, shard_buf + (lo - ar->shard_off), RT_F32, host + (lo - p->off), hi - lo);
}

void rt_model_set_weight(rt_model *m, rt_param *p, const float *host) {
    const rt_backend *be = m->ctx->be;
    if (!(p->in_arena && m->arena.master_sharded)) {
        be->upload(m->ctx, p->master, RT_F32, host, p->n);
        sync_compute_copy(m, p);
        return;
    }
    upload_shard_part(m, p, m->arena.master, host);
    be->upload(m->ctx, p->w, m->ctx->act, host, p->n); // the compute copy is whole on every rank
}

int rt_model_init_weights(rt_model *m, uint64_t seed, float std, rt_error *err) {
    size_t max_n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].n > max_n) max_n = m->params[i].n;
    float *host = rt_malloc(max_n * sizeof(float), "weight init", err);
    if (!host) return -1;
    // Each tensor has its own stream, so adding a tensor later does not change the others' values.
    float resid_std = std / sqrtf(2.0f * (float)m->dims.L);
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (p->adapter) continue; // rt_model_init_adapters
        if (p->frozen) {
            free(host);
            return rt_fail(err, "%s is frozen: an adapted model starts from a loaded base", p->name);
        }
        rt_rng r;
        rt_rng_seed(&r, rt_seed_mix(seed, (uint64_t)i + 1));
        int is_out_proj = strstr(p->name, "attn_output") || strstr(p->name, "ffn_down");
        float s = is_out_proj ? resid_std : std, vec = strstr(p->name, ".bias") ? 0.0f : 1.0f; // norms 1
        for (size_t j = 0; j < p->n; j++) host[j] = p->ndim == 1 ? vec : s * rt_rng_normal(&r);
        rt_model_set_weight(m, p, host);
    }
    m->ctx->be->sync(m->ctx);
    free(host);
    return 0;
}

size_t rt_model_param_count(const rt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += m->params[i].n;
    return n;
}

double rt_model_train_flops_per_token(const rt_model *m, int T) {
    // N counts parameters that take part in matmuls: every matrix but the embedding lookup, plus the
    // output head (which is the embedding when tied). A frozen weight costs its forward and the gradient
    // of its input, 4 per parameter; a trained one also its weight gradient, 6 (docs/training.md, FLOPs
    // per token).
    double n = 0;
    for (int i = 0; i < m->n_params; i++) {
        const rt_param *p = &m->params[i];
        double per = p->frozen ? 4.0 : 6.0;
        if (p->ndim == 2 && i != m->tok_embd) n += per * (double)p->n;
    }
    if (m->dims.tied) n += (m->params[m->tok_embd].frozen ? 4.0 : 6.0) * (double)m->params[m->tok_embd].n;
    const rt_model_dims *d = &m->dims;
    return n + 12.0 * d->L * (double)d->H * d->D * (double)T; // attention runs over H heads of D
}

// ---------------------------------------------------------------------------------------------------
// forward and backward

#define W(idx) (m->params[(idx)].w)
#define G(idx) (m->params[(idx)].grad)

// The embedding and the blocks for tokens [B, T] at positions pos0 .. pos0 + T - 1. With cached, keys and
// values go to the KV cache and attention reads it (rt_model_forward_cached); a prefill (pos0 = 0) still runs
// the training attention kernel, so its logits are exactly rt_model_forward's.
void rt_model_run_blocks(rt_model *m, int B, int T, int pos0, int cached) {
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    const rt_model_dims *d = &m->dims;
    int N = B * T, C = d->C, F = d->F, S = m->T_max_batch;
    int QKV = (d->H + 2 * d->KVH) * d->D; // row stride of the fused q | k | v
    size_t act = rt_dtype_size(ctx->act), k_off = (size_t)d->H * d->D * act,
           v_off = k_off + (size_t)d->KVH * d->D * act;
    be->embedding_forward(ctx, m->acts[0].x, m->tokens, W(m->tok_embd), N, C); // [N, C]
    for (int l = 0; l < d->L; l++) {
        const rt_layer_params *lp = &m->layer[l];
        rt_layer_acts *a = &m->acts[l];
        void *out = l + 1 < d->L ? m->acts[l + 1].x : m->resid_out; // [N, C]
        be->rmsnorm_forward(ctx, a->xn1, a->rstd1, a->x, W(lp->attn_norm), N, C, d->eps);
        rt_model_linear_forward(m, l, RT_SITE_Q, 3, a->qkv, a->xn1, N); // [N, (H + 2 KVH) D]
        void *k = (char *)a->qkv + k_off, *v = (char *)a->qkv + v_off;  // [N, KVH*D] each, rows QKV apart
        // q and k heads are adjacent in a row: one rotation over H + KVH heads
        if (cached) {
            be->rope_forward_at(ctx, a->qkv, a->qkv, m->rope_cos, m->rope_sin, B, T, d->H + d->KVH, d->D,
                                pos0, QKV);
            be->kv_append(ctx, m->cache_k[l], k, B, T, d->KVH, d->D, pos0, S, QKV); // [B, S, KVH, D]
            be->kv_append(ctx, m->cache_v[l], v, B, T, d->KVH, d->D, pos0, S, QKV);
        } else {
            be->rope_forward(ctx, a->qkv, a->qkv, m->rope_cos, m->rope_sin, B, T, d->H + d->KVH, d->D, QKV);
        }
        if (cached && pos0 > 0)
            be->attention_forward_cached(ctx, a->att, a->qkv, m->cache_k[l], m->cache_v[l], B, T, pos0 + T,
                                         d->H, d->KVH, d->D, S, QKV); // [N, H*D]
        else
            be->attention_forward(ctx, a->att, a->lse, a->qkv, k, v, B, T, d->H, d->KVH, d->D, QKV, QKV);
        rt_model_linear_forward(m, l, RT_SITE_O, 1, a->xmid, a->att, N); // [N, C]
        be->add_inplace(ctx, a->xmid, a->x, (size_t)N * C);
        be->rmsnorm_forward(ctx, a->xn2, a->rstd2, a->xmid, W(lp->ffn_norm), N, C, d->eps);
        rt_model_linear_forward(m, l, RT_SITE_GATE, 2, a->gu, a->xn2, N);                   // [N, 2F]
        be->swiglu_forward(ctx, a->h, a->gu, (char *)a->gu + (size_t)F * act, N, F, 2 * F); // [N, F]
        rt_model_linear_forward(m, l, RT_SITE_DOWN, 1, out, a->h, N);                       // [N, C]
        be->add_inplace(ctx, out, a->xmid, (size_t)N * C);
    }
    be->rmsnorm_forward(ctx, m->xf, m->rstdf, m->resid_out, W(m->out_norm), N, C, d->eps);
    rt_model_linear_forward(m, -1, RT_SITE_HEAD, 1, m->logits, m->xf, N); // [N, V]
}

int rt_model_forward(rt_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                     float grad_scale, rt_error *err) {
    if (B <= 0 || T <= 0 || B > m->B_max || T > m->T_max_batch)
        return rt_fail(err, "batch %d x %d exceeds the model's buffers (%d x %d)", B, T, m->B_max,
                       m->T_max_batch);
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    const rt_model_dims *d = &m->dims;
    int N = B * T;
    // ops report failures through the context; a failure in earlier work stops here, before more is queued
    if (be->check(ctx, err)) return -1;
    be->upload_i32(ctx, m->tokens, tokens, (size_t)N);
    rt_model_run_blocks(m, B, T, 0, 0);
    if (targets) {
        be->upload_i32(ctx, m->targets, targets, (size_t)N);
        be->cross_entropy(ctx, m->losses, m->training ? m->logits : NULL, m->logits, m->targets, N, d->V,
                          grad_scale);
    }
    return 0;
}

// Hands one completed range of the step's gradient sum to grad_ready (once per range, in bucket order).
static void range_ready(rt_model *m, size_t lo, size_t hi) {
    if (hi <= lo || !m->grad_ready || m->grad_ready_failed) return;
    if (m->grad_ready(m->grad_ready_user, m->arena.acc + lo, hi - lo)) m->grad_ready_failed = 1;
}

// Bucket b's gradients are complete: into the fp32 sum, and on to the ranks when that is the step's last.
static void bucket_done(rt_model *m, int b) {
    rt_param_arena *ar = &m->arena;
    if (!ar->buckets) return;
    const rt_grad_bucket *k = &ar->buckets[b];
    size_t act = rt_dtype_size(m->ctx->act);
    size_t ranges[2][2] = {{k->decay_lo, k->decay_hi}, {k->norm_lo, k->norm_hi}};
    for (int r = 0; r < 2; r++) {
        size_t lo = ranges[r][0], hi = ranges[r][1];
        if (ar->separate_acc && hi > lo)
            m->ctx->be->accumulate_f32(m->ctx, ar->acc + lo, (char *)ar->grad + lo * act, hi - lo,
                                       m->micro_count == 0);
        if (m->reduce_in_backward) range_ready(m, lo, hi);
    }
}

void rt_model_reduce_buckets(rt_model *m) {
    const rt_param_arena *ar = &m->arena;
    for (int b = 0; b < ar->n_buckets; b++) {
        range_ready(m, ar->buckets[b].decay_lo, ar->buckets[b].decay_hi);
        range_ready(m, ar->buckets[b].norm_lo, ar->buckets[b].norm_hi);
    }
}

void rt_model_backward(rt_model *m, int B, int T) {
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    const rt_model_dims *d = &m->dims;
    int N = B * T, C = d->C, F = d->F, QKV = (d->H + 2 * d->KVH) * d->D;
    size_t act = rt_dtype_size(ctx->act), k_off = (size_t)d->H * d->D * act,
           v_off = k_off + (size_t)d->KVH * d->D * act;
    void *dlogits = m->logits; // [N, V], written in place by cross_entropy
    rt_param_arena *ar = &m->arena;
    // a micro-batch after the first starts from a zero gradient of its own; its sum joins arena.acc bucket
    // by bucket as backward completes them
    if (ar->separate_acc && m->micro_count > 0) be->zero(ctx, ar->grad, ar->n_used * rt_dtype_size(ctx->act));
    m->buckets_reduced = 0;
    // a frozen norm's weight gradient goes to a sink nobody reads (the op always computes it)
#define GN(idx) (G(idx) ? G(idx) : m->dnorm_sink)

    // output head: logits = xf @ W^T
    rt_model_linear_backward(m, -1, RT_SITE_HEAD, 1, m->dx, 0.0f, dlogits, m->xf, N); // dx [N, C]
    be->zero(ctx, m->dresid, (size_t)N * C * rt_dtype_size(ctx->act));
    be->rmsnorm_backward(ctx, m->dresid, GN(m->out_norm), m->dx, m->resid_out, W(m->out_norm), m->rstdf, N,
                         C);
    bucket_done(m, 0);

    for (int l = d->L - 1; l >= 0; l--) {
        const rt_layer_params *lp = &m->layer[l];
        rt_layer_acts *a = &m->acts[l];
        // dresid holds dL/d(block output); the block output is xmid + down(h)
        rt_model_linear_backward(m, l, RT_SITE_DOWN, 1, m->dh, 0.0f, m->dresid, a->h, N); // dh [N, F]
        be->swiglu_backward(ctx, m->dgu, (char *)m->dgu + (size_t)F * act, m->dh, a->gu,
                            (char *)a->gu + (size_t)F * act, N, F, 2 * F);               // dgu [N, 2F]
        rt_model_linear_backward(m, l, RT_SITE_GATE, 2, m->dx, 0.0f, m->dgu, a->xn2, N); // dx [N, C]
        // dresid becomes dL/dxmid: the residual path plus the ffn_norm path
        be->rmsnorm_backward(ctx, m->dresid, GN(lp->ffn_norm), m->dx, a->xmid, W(lp->ffn_norm), a->rstd2, N,
                             C);

        // xmid = x + att @ Wo^T
        rt_model_linear_backward(m, l, RT_SITE_O, 1, m->datt, 0.0f, m->dresid, a->att, N); // datt [N, H*D]
        be->attention_backward(ctx, m->dqkv, (char *)m->dqkv + k_off, (char *)m->dqkv + v_off, m->datt,
                               a->qkv, (char *)a->qkv + k_off, (char *)a->qkv + v_off, a->att, a->lse, B, T,
                               d->H, d->KVH, d->D, QKV, QKV); // dqkv [N, (H + 2 KVH) D]
        be->rope_backward(ctx, m->dqkv, m->dqkv, m->rope_cos, m->rope_sin, B, T, d->H + d->KVH, d->D, QKV);
        rt_model_linear_backward(m, l, RT_SITE_Q, 3, m->dx, 0.0f, m->dqkv, a->xn1, N); // dx [N, C]
        // dresid becomes dL/dx: the residual path plus the attn_norm path
        be->rmsnorm_backward(ctx, m->dresid, GN(lp->attn_norm), m->dx, a->x, W(lp->attn_norm), a->rstd1, N,
                             C);
        bucket_done(m, 1 + (d->L - 1 - l));
    }
    if (G(m->tok_embd)) be->embedding_backward(ctx, G(m->tok_embd), m->dresid, m->tokens, N, C);
#undef GN
    bucket_done(m, d->L + 1);
    m->buckets_reduced = m->reduce_in_backward;
    m->micro_count++;
}

void rt_model_zero_grad(rt_model *m) {
    if (m->arena.grad) m->ctx->be->zero(m->ctx, m->arena.grad, m->arena.n_used * rt_dtype_size(m->ctx->act));
    m->micro_count = 0;
    m->grad_ready_failed = 0;
    m->buckets_reduced = 0;
}

int rt_model_distill_loss(rt_model *m, const int32_t *targets, const void *teacher_logits,
                          const int32_t *topk_ids, const float *topk_logprobs, int k, const rt_kd_params *p,
                          int B, int T, float grad_scale, rt_error *err) {
    if (!m->training) return rt_fail(err, "distillation needs a model created for training");
    if (B <= 0 || T <= 0 || B > m->B_max || T > m->T_max_batch)
        return rt_fail(err, "batch %d x %d exceeds the model's buffers (%d x %d)", B, T, m->B_max,
                       m->T_max_batch);
    if (!teacher_logits == !topk_ids)
        return rt_fail(err, "distillation needs exactly one teacher: dense or top-k");
    rt_ctx *ctx = m->ctx;
    int N = B * T;
    ctx->be->upload_i32(ctx, m->targets, targets, (size_t)N);
    ctx->be->distill_loss(ctx, m->losses, m->kd_losses, m->logits, m->logits, teacher_logits, topk_ids,
                          topk_logprobs, k, m->targets, N, m->dims.V, p, grad_scale);
    return ctx->be->check(ctx, err);
}

float rt_model_kd_sum(rt_model *m, int B, int T) {
    float sum = 0.0f;
    m->ctx->be->sum_f32(m->ctx, &m->scalars[3], m->kd_losses, (size_t)B * T);
    m->ctx->be->download(m->ctx, &sum, &m->scalars[3], RT_F32, 1);
    return sum;
}

float rt_model_loss_sum(rt_model *m, int B, int T) {
    float sum = 0.0f;
    m->ctx->be->sum_f32(m->ctx, &m->scalars[2], m->losses, (size_t)B * T);
    m->ctx->be->download(m->ctx, &sum, &m->scalars[2], RT_F32, 1);
    return sum;
}

void rt_model_logits_row(rt_model *m, int row, float *out) {
    size_t V = (size_t)m->dims.V;
    size_t off = (size_t)row * V * rt_dtype_size(m->ctx->act);
    m->ctx->be->download(m->ctx, out, (const char *)m->logits + off, m->ctx->act, V);
}

// ---------------------------------------------------------------------------------------------------
// host tensors for checkpoints

static int host_tensor(rt_named_tensor *t, const rt_param *p, rt_error *err) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", p->name);
    t->ndim = p->ndim;
    t->shape[0] = p->shape[0];
    t->shape[1] = p->shape[1];
    t->data = rt_malloc(p->n * sizeof(float), p->name, err);
    return t->data ? 0 : -1;
}

void rt_model_free_host_tensors(rt_named_tensor *ts, int n) {
    if (!ts) return;
    for (int i = 0; i < n; i++) free(ts[i].data);
    free(ts);
}

// A model with a frozen base saves its adapters only; the base stays in the file it came from.
static int exported(const rt_model *m, const rt_param *p) {
    return m->lora.freeze_base ? p->adapter : 1;
}

int rt_model_export_tensors(rt_model *m, rt_named_tensor **weights, rt_named_tensor **adam_m,
                            rt_named_tensor **adam_v, int *n, rt_error *err) {
    return rt_model_export_tensors_gathered(m, NULL, NULL, NULL, weights, adam_m, adam_v, n, err);
}

int rt_model_export_tensors_gathered(rt_model *m, const float *host_master, const float *host_m,
                                     const float *host_v, rt_named_tensor **weights, rt_named_tensor **adam_m,
                                     rt_named_tensor **adam_v, int *n, rt_error *err) {
    const rt_backend *be = m->ctx->be;
    if (adam_m && adam_v && m->training && m->dp.zero && !(host_m && host_v))
        return rt_fail(err, "the AdamW moments are sharded over ranks: gather them before exporting");
    if (m->arena.master_sharded && !host_master)
        return rt_fail(err, "the master weights are sharded over ranks: gather them before exporting");
    int want_optim = adam_m && adam_v && m->training, count = 0;
    for (int i = 0; i < m->n_params; i++) count += exported(m, &m->params[i]);
    rt_named_tensor *w = rt_calloc((size_t)count, sizeof *w, "tensor list", err);
    rt_named_tensor *mm = want_optim ? rt_calloc((size_t)count, sizeof *mm, "tensor list", err) : NULL;
    rt_named_tensor *vv = want_optim ? rt_calloc((size_t)count, sizeof *vv, "tensor list", err) : NULL;
    int ok = w && (!want_optim || (mm && vv));
    for (int i = 0, j = 0; ok && i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (!exported(m, p)) continue;
        ok = host_tensor(&w[j], p, err) == 0;
        if (ok && p->in_arena && host_master)
            memcpy(w[j].data, host_master + p->off, p->n * sizeof(float));
        else if (ok)
            be->download(m->ctx, w[j].data, p->master, RT_F32, p->n);
        if (ok && want_optim) {
            ok = host_tensor(&mm[j], p, err) == 0 && host_tensor(&vv[j], p, err) == 0;
            if (ok && host_m) {
                memcpy(mm[j].data, host_m + p->off, p->n * sizeof(float));
                memcpy(vv[j].data, host_v + p->off, p->n * sizeof(float));
            } else if (ok) {
                be->download(m->ctx, mm[j].data, p->m, RT_F32, p->n);
                be->download(m->ctx, vv[j].data, p->v, RT_F32, p->n);
            }
        }
        j++;
    }
    if (!ok) {
        rt_model_free_host_tensors(w, count);
        rt_model_free_host_tensors(mm, count);
        rt_model_free_host_tensors(vv, count);
        return -1;
    }
    *weights = w;
    if (want_optim) {
        *adam_m = mm;
        *adam_v = vv;
    } else {
        if (adam_m) *adam_m = NULL;
        if (adam_v) *adam_v = NULL;
    }
    *n = count;
    return 0;
}

static int check_shape(const rt_named_tensor *t, const rt_param *p, const char *what, const char *source,
                       rt_error *err) {
    int same =
        t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
    if (same) return 0;
    char got[64];
    if (t->ndim == 2)
        snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
    else
        snprintf(got, sizeof got, "%d-D starting [%lld]", t->ndim, (long long)t->shape[0]);
    if (p->ndim == 2)
        return rt_fail(err, "%s: %s %s has shape %s, the model expects [%lld, %lld]", source, what, p->name,
                       got, (long long)p->shape[0], (long long)p->shape[1]);
    return rt_fail(err, "%s: %s %s has shape %s, the model expects [%lld]", source, what, p->name, got,
                   (long long)p->shape[0]);
}

// Load the weights of one kind (adapters or the rest) and, for trainable ones, their moments.
static int import_kind(rt_model *m, int adapters, const rt_named_tensor *weights, int n_weights,
                       const rt_named_tensor *adam_m, const rt_named_tensor *adam_v, int n_optim,
                       const char *source, rt_error *err) {
    const rt_backend *be = m->ctx->be;
    // Every tensor in the file must belong to the model, so a checkpoint of a different architecture
    // is refused rather than half-loaded.
    for (int j = 0; j < n_weights; j++) {
        int found = 0;
        for (int i = 0; i < m->n_params && !found; i++)
            found = m->params[i].adapter == adapters && strcmp(m->params[i].name, weights[j].name) == 0;
        if (!found)
            return rt_fail(err,
                           adapters ? "%s: adapter %s is not part of this model (lora.targets or the base "
                                      "differ?)"
                                    : "%s: tensor %s is not part of this model (tie_embeddings, n_layers or "
                                      "attn_bias differ?)",
                           source, weights[j].name);
    }
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (p->adapter != adapters) continue;
        const rt_named_tensor *t = rt_named_tensor_find(weights, n_weights, p->name);
        if (!t) return rt_fail(err, "%s: missing tensor %s", source, p->name);
        if (check_shape(t, p, "tensor", source, err)) return -1;
        if (p->nf4) {
            if (rt_model_upload_nf4(m, p, t->data, err)) return rt_fail_wrap(err, "%s", source);
            continue;
        }
        if (p->master || p->in_arena) {
            rt_model_set_weight(m, p, t->data);
        } else {
            be->upload(m->ctx, p->w, m->ctx->act, t->data, p->n); // a frozen weight: its compute copy only
        }
        if (!m->training || p->frozen || n_optim == 0) continue;
        const rt_named_tensor *tm = rt_named_tensor_find(adam_m, n_optim, p->name);
        const rt_named_tensor *tv = rt_named_tensor_find(adam_v, n_optim, p->name);
        if (!tm || !tv) return rt_fail(err, "%s: missing optimizer state for %s", source, p->name);
        if (check_shape(tm, p, "adam_m", source, err) || check_shape(tv, p, "adam_v", source, err)) return -1;
        if (p->m) {
            be->upload(m->ctx, p->m, RT_F32, tm->data, p->n);
            be->upload(m->ctx, p->v, RT_F32, tv->data, p->n);
            continue;
        }
        upload_shard_part(m, p, m->arena.m, tm->data); // ZeRO-1: the moments of this rank's shard only
        upload_shard_part(m, p, m->arena.v, tv->data);
    }
    be->sync(m->ctx);
    return 0;
}

int rt_model_import_tensors(rt_model *m, const rt_named_tensor *weights, int n_weights,
                            const rt_named_tensor *adam_m, const rt_named_tensor *adam_v, int n_optim,
                            const char *source, rt_error *err) {
    return import_kind(m, 0, weights, n_weights, adam_m, adam_v, n_optim, source, err);
}

int rt_model_import_adapters(rt_model *m, const rt_named_tensor *adapters, int n_adapters,
                             const rt_named_tensor *adam_m, const rt_named_tensor *adam_v, int n_optim,
                             const char *source, rt_error *err) {
    return import_kind(m, 1, adapters, n_adapters, adam_m, adam_v, n_optim, source, err);
}
