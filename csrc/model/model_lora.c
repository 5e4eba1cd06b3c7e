// LoRA adapters and the NF4 base of QLoRA inside the model (docs/training.md, LoRA): every projection goes
// through rt_model_linear_forward / _backward, which run a fused group (q, k, v; gate, up) as one matmul, add
// each adapter's path into its columns where there is one, and dequantize an NF4 weight block-wise into one
// shared buffer right before its matmul, so no full-precision copy of a quantized base stays in memory.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "backend/nf4.h"
#include "base/rng.h"

int rt_model_site_weight(const rt_model *m, int l, rt_lora_site site) {
    if (site == RT_SITE_HEAD) return m->out_head;
    const rt_layer_params *lp = &m->layer[l];
    switch (site) {
    case RT_SITE_Q:
        return lp->wq;
    case RT_SITE_K:
        return lp->wk;
    case RT_SITE_V:
        return lp->wv;
    case RT_SITE_O:
        return lp->wo;
    case RT_SITE_GATE:
        return lp->wgate;
    case RT_SITE_UP:
        return lp->wup;
    default:
        return lp->wdown;
    }
}

int rt_model_site_bias(const rt_model *m, int l, rt_lora_site site) {
    if (site == RT_SITE_Q) return m->layer[l].bq;
    if (site == RT_SITE_K) return m->layer[l].bk;
    if (site == RT_SITE_V) return m->layer[l].bv;
    return -1;
}

static int add_adapter(rt_model *m, int weight, const char *suffix, int64_t rows, int64_t cols) {
    rt_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", m->params[weight].name, suffix);
    p->ndim = 2;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->n = (size_t)rows * (size_t)cols;
    p->decay = 1;
    p->adapter = 1;
    return m->n_params++;
}

// A [r, in] and B [out, r] of one site.
static void define_site(rt_model *m, int weight, int *a_idx, int *b_idx) {
    const rt_param *w = &m->params[weight];
    int64_t r = m->lora.rank, out = w->shape[0], in = w->shape[1];
    *a_idx = add_adapter(m, weight, "lora_a", r, in);
    *b_idx = add_adapter(m, weight, "lora_b", out, r);
}

void rt_model_define_adapters(rt_model *m) {
    m->head_lora_a = m->head_lora_b = -1;
    for (int l = 0; l < m->dims.L; l++)
        for (int s = 0; s < RT_N_BLOCK_SITES; s++) m->layer[l].lora_a[s] = m->layer[l].lora_b[s] = -1;
    if (m->lora.rank <= 0) return;
    for (int l = 0; l < m->dims.L; l++)
        for (int s = 0; s < RT_N_BLOCK_SITES; s++)
            if (m->lora.targets & (1u << s))
                define_site(m, rt_model_site_weight(m, l, (rt_lora_site)s), &m->layer[l].lora_a[s],
                            &m->layer[l].lora_b[s]);
    if (m->lora.targets & (1u << RT_SITE_HEAD)) define_site(m, m->out_head, &m->head_lora_a, &m->head_lora_b);
}

int rt_model_param_is_nf4(const rt_model *m, int i) {
    if (!m->params[i].frozen || m->lora.nf4_sites == 0) return 0;
    for (int l = 0; l < m->dims.L; l++)
        for (int s = 0; s < RT_N_BLOCK_SITES; s++)
            if ((m->lora.nf4_sites & (1u << s)) && rt_model_site_weight(m, l, (rt_lora_site)s) == i) return 1;
    return 0;
}

void rt_model_alloc_nf4(rt_model *m, alloc_state *a, rt_param *p) {
    if (a->failed) return;
    p->nf4 = rt_calloc(1, sizeof *p->nf4, "NF4 table", a->err);
    if (!p->nf4) {
        a->failed = 1;
        return;
    }
    size_t n_blocks = (p->n + RT_NF4_BLOCK - 1) / RT_NF4_BLOCK;
    p->nf4->codes = rt_model_dev_alloc(a, (p->n + 1) / 2, 1, p->name);
    if (m->lora.double_quant) {
        p->nf4->absmax_q = rt_model_dev_alloc(a, n_blocks, 1, p->name);
        p->nf4->absmax_scale = rt_model_dev_alloc(a, (n_blocks + RT_NF4_SCALE_BLOCK - 1) / RT_NF4_SCALE_BLOCK,
                                                  sizeof(float), p->name);
    } else {
        p->nf4->absmax = rt_model_dev_alloc(a, n_blocks, sizeof(float), p->name);
    }
}

int rt_model_upload_nf4(rt_model *m, rt_param *p, const float *w, rt_error *err) {
    rt_nf4 q;
    if (rt_nf4_quantize(w, p->n, m->lora.double_quant, &q, p->name, err)) return -1;
    const rt_backend *be = m->ctx->be;
    rt_nf4_weight *d = p->nf4;
    be->upload_bytes(m->ctx, d->codes, q.codes, (q.n + 1) / 2);
    if (q.double_quant) {
        be->upload_bytes(m->ctx, d->absmax_q, q.absmax_q, q.n_blocks);
        be->upload_bytes(m->ctx, d->absmax_scale, q.absmax_scale, q.n_scales * sizeof(float));
    } else {
        be->upload_bytes(m->ctx, d->absmax, q.absmax, q.n_blocks * sizeof(float));
    }
    d->absmax_offset = q.absmax_offset;
    m->ctx->be->sync(m->ctx);
    rt_nf4_free(&q);
    return 0;
}

void rt_model_alloc_lora(rt_model *m, alloc_state *a) {
    const rt_model_dims *d = &m->dims;
    size_t N = (size_t)m->B_max * (size_t)m->T_max_batch, act = rt_dtype_size(m->ctx->act);
    size_t r = (size_t)m->lora.rank, wmax = 0, in_max = 0, slice_max = 0;
    // m->wtmp holds the largest projection or fused group (rt_param.fuse_next) with an NF4 member
    size_t group_n = 0;
    int group_nf4 = 0;
    for (int i = 0; i < m->n_params; i++) {
        const rt_param *p = &m->params[i];
        group_n += p->n;
        group_nf4 |= p->nf4 != NULL;
        if (p->fuse_next) continue;
        if (group_nf4 && group_n > wmax) wmax = group_n;
        group_n = 0;
        group_nf4 = 0;
    }
    if (wmax) m->wtmp = rt_model_dev_alloc(a, wmax, act, "NF4 dequantization buffer");
    if (m->training && m->lora.freeze_base)
        m->dnorm_sink = rt_model_dev_alloc(a, (size_t)d->C, act, "gradients");
    if (r == 0) return;
    for (int l = 0; l < d->L; l++)
        for (int s = 0; s < RT_N_BLOCK_SITES; s++)
            if (m->layer[l].lora_a[s] >= 0) {
                m->acts[l].lora_u[s] = rt_model_dev_alloc(a, N * r, act, "activations");
                size_t in = (size_t)m->params[m->layer[l].lora_a[s]].shape[1];
                size_t out = (size_t)m->params[m->layer[l].lora_b[s]].shape[0];
                if (in > in_max) in_max = in;
                if (s != RT_SITE_O && s != RT_SITE_DOWN && out > slice_max) slice_max = out; // a fused site
            }
    if (slice_max) m->lora_slice = rt_model_dev_alloc(a, N * slice_max, act, "activations");
    if (m->head_lora_a >= 0) {
        m->head_lora_u = rt_model_dev_alloc(a, N * r, act, "activations");
        if ((size_t)d->C > in_max) in_max = (size_t)d->C;
    }
    if (!m->training) return;
    m->lora_du = rt_model_dev_alloc(a, N * r, act, "gradients");
    if (m->lora.dropout > 0.0f) {
        m->lora_xd = rt_model_dev_alloc(a, N * in_max, act, "activations");
        m->lora_dxd = rt_model_dev_alloc(a, N * in_max, act, "gradients");
    }
}

void rt_model_free_lora(rt_model *m) {
    const rt_backend *be = m->ctx->be;
    void *bufs[] = {m->head_lora_u, m->lora_du, m->lora_xd,   m->lora_dxd,
                    m->lora_slice,  m->wtmp,    m->dnorm_sink};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(m->ctx, bufs[i]);
    for (int l = 0; m->acts && l < m->dims.L; l++)
        for (int s = 0; s < RT_N_BLOCK_SITES; s++)
            if (m->acts[l].lora_u[s]) be->free(m->ctx, m->acts[l].lora_u[s]);
    for (int i = 0; m->params && i < m->n_params; i++) {
        rt_nf4_weight *q = m->params[i].nf4;
        if (!q) continue;
        void *qb[] = {q->codes, q->absmax, q->absmax_q, q->absmax_scale};
        for (size_t j = 0; j < 4; j++)
            if (qb[j]) be->free(m->ctx, qb[j]);
        free(q);
        m->params[i].nf4 = NULL;
    }
}

int rt_model_init_adapters(rt_model *m, uint64_t seed, rt_error *err) {
    size_t max_n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].adapter && m->params[i].n > max_n) max_n = m->params[i].n;
    if (max_n == 0) return 0;
    float *host = rt_malloc(max_n * sizeof(float), "adapter init", err);
    if (!host) return -1;
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (!p->adapter) continue;
        int is_a = strstr(p->name, ".lora_a") != NULL;
        rt_rng r;
        rt_rng_seed(&r, rt_seed_mix(seed, 0x4c6f5241ULL + (uint64_t)i));
        float bound = 1.0f / sqrtf((float)p->shape[1]);
        for (size_t j = 0; j < p->n; j++) host[j] = is_a ? bound * (2.0f * rt_rng_uniform(&r) - 1.0f) : 0.0f;
        rt_model_set_weight(m, p, host);
    }
    m->ctx->be->sync(m->ctx);
    free(host);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// the linear layers

// The stacked weights [out, in] of params first .. first + n - 1 in act dtype for a matmul: the first's
// compute copy, which the group's others follow (arena.c, alloc_params), or, when a member is NF4, every
// member dequantized or copied into m->wtmp.
static const void *weight_for_matmul(rt_model *m, int first, int n) {
    int any_nf4 = 0;
    for (int i = first; i < first + n; i++) any_nf4 |= m->params[i].nf4 != NULL;
    if (!any_nf4) return m->params[first].w;
    rt_ctx *ctx = m->ctx;
    size_t off = 0, act = rt_dtype_size(ctx->act);
    for (int i = first; i < first + n; i++) {
        rt_param *p = &m->params[i];
        void *dst = (char *)m->wtmp + off * act;
        rt_nf4_weight *q = p->nf4;
        if (q)
            ctx->be->nf4_dequantize(ctx, dst, q->codes, q->absmax, q->absmax_q, q->absmax_scale,
                                    q->absmax_offset, p->n);
        else
            ctx->be->convert(ctx, dst, ctx->act, p->w, ctx->act, p->n);
        off += p->n;
    }
    return m->wtmp;
}

typedef struct adapter_view {
    int a, b;      // param indices, a < 0: no adapter
    void *u;       // [N, r]
    int drop;      // dropout applies
    uint64_t seed; // of its mask
} adapter_view;

static adapter_view adapter_of(const rt_model *m, int l, rt_lora_site site) {
    adapter_view v = {-1, -1, NULL, 0, 0};
    if (site == RT_SITE_HEAD) {
        v.a = m->head_lora_a;
        v.b = m->head_lora_b;
        v.u = m->head_lora_u;
    } else if (m->lora.rank > 0) {
        v.a = m->layer[l].lora_a[site];
        v.b = m->layer[l].lora_b[site];
        v.u = m->acts[l].lora_u[site];
    }
    v.drop = v.a >= 0 && m->dropout_on && m->lora.dropout > 0.0f && m->lora_xd;
    if (v.drop)
        v.seed = rt_lora_dropout_seed(m->dropout_run_seed, m->dropout_step, m->dropout_micro, l, site);
    return v;
}

// The out rows of the group of sites site .. site + n_sites - 1; *first receives its first weight.
static int group_out(const rt_model *m, int l, rt_lora_site site, int n_sites, int *first) {
    int n_out = 0;
    *first = rt_model_site_weight(m, l, site);
    for (int s = 0; s < n_sites; s++) n_out += (int)m->params[rt_model_site_weight(m, l, site + s)].shape[0];
    return n_out;
}

void rt_model_linear_forward(rt_model *m, int l, rt_lora_site site, int n_sites, void *out, const void *x,
                             int N) {
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    int idx, n_out = group_out(m, l, site, n_sites, &idx), n_in = (int)m->params[idx].shape[1];
    int r = m->lora.rank;
    size_t act = rt_dtype_size(ctx->act);
    be->matmul(ctx, out, x, weight_for_matmul(m, idx, n_sites), N, n_out, n_in, 0, 1, 1.0f, 0.0f); // [N, out]
    int bias = rt_model_site_bias(m, l, site); // a group's biases are one vector, like its weights
    if (bias >= 0) be->add_bias_rows(ctx, out, m->params[bias].w, N, n_out); // [N, out] += [out]
    for (int s = 0, col = 0; s < n_sites; s++) {
        rt_lora_site st = (rt_lora_site)(site + s);
        int n_s = (int)m->params[rt_model_site_weight(m, l, st)].shape[0];
        adapter_view ad = adapter_of(m, l, st);
        if (ad.a >= 0) {
            const void *xin = x;
            if (ad.drop) {
                be->dropout(ctx, m->lora_xd, x, (size_t)N * n_in, m->lora.dropout, ad.seed);
                xin = m->lora_xd;
            }
            be->matmul(ctx, ad.u, xin, m->params[ad.a].w, N, r, n_in, 0, 1, 1.0f, 0.0f); // [N, r]
            if (n_sites == 1) {
                be->matmul(ctx, out, ad.u, m->params[ad.b].w, N, n_s, r, 0, 1, m->lora.scale, 1.0f); // +=
            } else { // its columns of the fused output: [N, n_s] rows n_out apart
                be->matmul(ctx, m->lora_slice, ad.u, m->params[ad.b].w, N, n_s, r, 0, 1, m->lora.scale, 0.0f);
                be->copy_rows(ctx, (char *)out + (size_t)col * act, n_out, m->lora_slice, n_s, N, n_s, 1);
            }
        }
        col += n_s;
    }
}

void rt_model_linear_backward(rt_model *m, int l, rt_lora_site site, int n_sites, void *dx, float dx_beta,
                              const void *dy, const void *x, int N) {
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    int idx, n_out = group_out(m, l, site, n_sites, &idx);
    rt_param *w = &m->params[idx];
    int n_in = (int)w->shape[1], r = m->lora.rank;
    size_t act = rt_dtype_size(ctx->act);
    if (w->grad) be->matmul(ctx, w->grad, dy, x, n_out, n_in, N, 1, 0, 1.0f, 1.0f); // [out, in] +=
    int bias = rt_model_site_bias(m, l, site);
    if (bias >= 0 && m->params[bias].grad)
        be->bias_backward(ctx, m->params[bias].grad, dy, N, n_out); // [out] +=
    if (dx)
        be->matmul(ctx, dx, dy, weight_for_matmul(m, idx, n_sites), N, n_in, n_out, 0, 0, 1.0f,
                   dx_beta); // [N, in]
    for (int s = 0, col = 0; s < n_sites; s++) {
        rt_lora_site st = (rt_lora_site)(site + s);
        int n_s = (int)m->params[rt_model_site_weight(m, l, st)].shape[0];
        adapter_view ad = adapter_of(m, l, st);
        const void *dys = dy;
        if (ad.a >= 0 && n_sites > 1) { // its columns of the fused gradient, contiguous for the matmuls
            be->copy_rows(ctx, m->lora_slice, n_s, (const char *)dy + (size_t)col * act, n_out, N, n_s, 0);
            dys = m->lora_slice;
        }
        col += n_s;
        if (ad.a < 0) continue;
        rt_param *A = &m->params[ad.a], *Bm = &m->params[ad.b];
        float sc = m->lora.scale;
        be->matmul(ctx, Bm->grad, dys, ad.u, n_s, r, N, 1, 0, sc, 1.0f);    // dB [out, r] += s dy^T u
        be->matmul(ctx, m->lora_du, dys, Bm->w, N, r, n_s, 0, 0, sc, 0.0f); // du [N, r] = s dy B
        const void *xin = x;
        if (ad.drop) {
            be->dropout(ctx, m->lora_xd, x, (size_t)N * n_in, m->lora.dropout, ad.seed); // the forward's mask
            xin = m->lora_xd;
        }
        be->matmul(ctx, A->grad, m->lora_du, xin, r, n_in, N, 1, 0, 1.0f, 1.0f); // dA [r, in] += du^T xd
        if (!dx) continue;
        if (ad.drop) {
            be->matmul(ctx, m->lora_dxd, m->lora_du, A->w, N, n_in, r, 0, 0, 1.0f, 0.0f); // [N, in]
            be->dropout(ctx, m->lora_dxd, m->lora_dxd, (size_t)N * n_in, m->lora.dropout, ad.seed);
            be->add_inplace(ctx, dx, m->lora_dxd, (size_t)N * n_in);
        } else {
            be->matmul(ctx, dx, m->lora_du, A->w, N, n_in, r, 0, 0, 1.0f, 1.0f); // dx [N, in] += du A
        }
    }
}
