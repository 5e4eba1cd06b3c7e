// Generation with a KV cache: rt_model_forward_cached runs only the new positions of a batch through the
// blocks, against the keys and values the cache holds for the earlier ones. Per position it is the same
// sequence of ops as rt_model_forward (model.c); only attention reads the cache instead of this call's rows.
#include <stddef.h>

#include "model.h"

#define W(idx) (m->params[(idx)].w)

int rt_model_forward_cached(rt_model *m, const int32_t *tokens, int B, int T_new, int pos0, rt_error *err) {
    if (!m->cache_k) return rt_fail(err, "the KV cache needs a model created for inference (training = 0)");
    if (B <= 0 || T_new <= 0 || pos0 < 0 || B > m->B_max || pos0 + T_new > m->T_max_batch)
        return rt_fail(err, "cached batch %d x %d at position %d exceeds the model's buffers (%d x %d)", B,
                       T_new, pos0, m->B_max, m->T_max_batch);
    if (pos0 > 0 && (B != m->kv_B || pos0 > m->kv_len))
        return rt_fail(err, "cached forward at position %d of %d sequences, but the cache holds %d of %d",
                       pos0, B, m->kv_len, m->kv_B);
    rt_ctx *ctx = m->ctx;
    const rt_backend *be = ctx->be;
    const rt_model_dims *d = &m->dims;
    int N = B * T_new, C = d->C, HD = d->H * d->D, KD = d->KVH * d->D, F = d->F, S = m->T_max_batch;
    int T_ctx = pos0 + T_new; // positions each sequence has after this call
    if (be->check(ctx, err)) return -1;

    be->upload_i32(ctx, m->tokens, tokens, (size_t)N);
    be->embedding_forward(ctx, m->acts[0].x, m->tokens, W(m->tok_embd), N, C); // [N, C]
    for (int l = 0; l < d->L; l++) {
        const rt_layer_params *lp = &m->layer[l];
        rt_layer_acts *a = &m->acts[l];
        void *out = l + 1 < d->L ? m->acts[l + 1].x : m->resid_out; // [N, C]
        be->rmsnorm_forward(ctx, a->xn1, a->rstd1, a->x, W(lp->attn_norm), N, C, d->eps);
        be->matmul(ctx, a->q, a->xn1, W(lp->wq), N, HD, C, 0, 1, 1.0f, 0.0f); // [N, H*D]
        be->matmul(ctx, a->k, a->xn1, W(lp->wk), N, KD, C, 0, 1, 1.0f, 0.0f); // [N, KVH*D]
        be->matmul(ctx, a->v, a->xn1, W(lp->wv), N, KD, C, 0, 1, 1.0f, 0.0f); // [N, KVH*D]
        be->rope_forward_at(ctx, a->q, a->q, m->rope_cos, m->rope_sin, B, T_new, d->H, d->D, pos0);
        be->rope_forward_at(ctx, a->k, a->k, m->rope_cos, m->rope_sin, B, T_new, d->KVH, d->D, pos0);
        be->kv_append(ctx, m->cache_k[l], a->k, B, T_new, d->KVH, d->D, pos0, S); // [B, S, KVH, D]
        be->kv_append(ctx, m->cache_v[l], a->v, B, T_new, d->KVH, d->D, pos0, S);
        if (pos0 == 0) // a prefill sees only its own rows: the training kernel, exactly rt_model_forward's
            be->attention_forward(ctx, a->att, a->lse, a->q, a->k, a->v, B, T_new, d->H, d->KVH, d->D);
        else
            be->attention_forward_cached(ctx, a->att, a->q, m->cache_k[l], m->cache_v[l], B, T_new, T_ctx,
                                         d->H, d->KVH, d->D, S);                 // [N, H*D]
        be->matmul(ctx, a->xmid, a->att, W(lp->wo), N, C, HD, 0, 1, 1.0f, 0.0f); // [N, C]
        be->add_inplace(ctx, a->xmid, a->x, (size_t)N * C);
        be->rmsnorm_forward(ctx, a->xn2, a->rstd2, a->xmid, W(lp->ffn_norm), N, C, d->eps);
        be->matmul(ctx, a->gate, a->xn2, W(lp->wgate), N, F, C, 0, 1, 1.0f, 0.0f); // [N, F]
        be->matmul(ctx, a->up, a->xn2, W(lp->wup), N, F, C, 0, 1, 1.0f, 0.0f);     // [N, F]
        be->swiglu_forward(ctx, a->h, a->gate, a->up, (size_t)N * F);
        be->matmul(ctx, out, a->h, W(lp->wdown), N, C, F, 0, 1, 1.0f, 0.0f); // [N, C]
        be->add_inplace(ctx, out, a->xmid, (size_t)N * C);
    }
    be->rmsnorm_forward(ctx, m->xf, m->rstdf, m->resid_out, W(m->out_norm), N, C, d->eps);
    be->matmul(ctx, m->logits, m->xf, W(m->out_head), N, d->V, C, 0, 1, 1.0f, 0.0f); // [N, V]
    m->kv_B = B;
    m->kv_len = T_ctx;
    return 0;
}
