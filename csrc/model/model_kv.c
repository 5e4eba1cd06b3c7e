// Generation with a KV cache: rt_model_forward_cached runs only the new positions of a batch through the
// blocks, against the keys and values the cache holds for the earlier ones. Per position it is the same
// sequence of ops as rt_model_forward (model.c); only attention reads the cache instead of this call's rows.
#include <stddef.h>

#include "model/model.h"

int rt_model_forward_cached(rt_model *m, const int32_t *tokens, int B, int T_new, int pos0, rt_error *err) {
    if (!m->cache_k) return rt_fail(err, "the KV cache needs a model created for inference (training = 0)");
    if (B <= 0 || T_new <= 0 || pos0 < 0 || B > m->B_max || pos0 + T_new > m->T_max_batch)
        return rt_fail(err, "cached batch %d x %d at position %d exceeds the model's buffers (%d x %d)", B,
                       T_new, pos0, m->B_max, m->T_max_batch);
    if (pos0 > 0 && (B != m->kv_B || pos0 > m->kv_len))
        return rt_fail(err, "cached forward at position %d of %d sequences, but the cache holds %d of %d",
                       pos0, B, m->kv_len, m->kv_B);
    rt_ctx *ctx = m->ctx;
    if (ctx->be->check(ctx, err)) return -1;
    ctx->be->upload_i32(ctx, m->tokens, tokens, (size_t)B * T_new);
    rt_model_run_blocks(m, B, T_new, pos0, 1);
    m->kv_B = B;
    m->kv_len = pos0 + T_new;
    return 0;
}
