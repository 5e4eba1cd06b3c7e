// The HF <-> retort tensor table (hf_names.h).
#include "export/hf_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// One tensor of a block: HF's name after "model.layers.N.", retort's after "blk.N.", and its shape by role.
// Biases (SHAPE_QB, SHAPE_KVB) exist only with model.attn_bias.
typedef enum {
    SHAPE_NORM,
    SHAPE_Q,
    SHAPE_KV,
    SHAPE_QB,
    SHAPE_KVB,
    SHAPE_O,
    SHAPE_UP,
    SHAPE_DOWN
} block_shape;
static const struct {
    const char *hf, *rt;
    block_shape shape;
} block_tensors[] = {
    {"input_layernorm.weight", "attn_norm.weight", SHAPE_NORM},
    {"self_attn.q_proj.weight", "attn_q.weight", SHAPE_Q},
    {"self_attn.k_proj.weight", "attn_k.weight", SHAPE_KV},
    {"self_attn.v_proj.weight", "attn_v.weight", SHAPE_KV},
    {"self_attn.q_proj.bias", "attn_q.bias", SHAPE_QB},
    {"self_attn.k_proj.bias", "attn_k.bias", SHAPE_KVB},
    {"self_attn.v_proj.bias", "attn_v.bias", SHAPE_KVB},
    {"self_attn.o_proj.weight", "attn_output.weight", SHAPE_O},
    {"post_attention_layernorm.weight", "ffn_norm.weight", SHAPE_NORM},
    {"mlp.gate_proj.weight", "ffn_gate.weight", SHAPE_UP},
    {"mlp.up_proj.weight", "ffn_up.weight", SHAPE_UP},
    {"mlp.down_proj.weight", "ffn_down.weight", SHAPE_DOWN},
};
#define N_BLOCK ((int)(sizeof block_tensors / sizeof *block_tensors))

static void set(rt_hf_tensor *t, const char *hf, const char *rt, int ndim, int64_t rows, int64_t cols) {
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    snprintf(t->rt, sizeof t->rt, "%s", rt);
    t->ndim = ndim;
    t->shape[0] = rows;
    t->shape[1] = ndim == 2 ? cols : 0;
}

int rt_hf_tensor_list(const rt_config *cfg, rt_hf_tensor **out, int *n, rt_error *err) {
    *out = NULL;
    *n = 0;
    const int64_t V = cfg->model.vocab_size, C = cfg->model.dim, L = cfg->model.n_layers,
                  H = cfg->model.n_heads, KVH = cfg->model.n_kv_heads, F = cfg->model.ffn_dim;
    if (V < 1 || C < 1 || L < 1 || H < 1 || KVH < 1 || F < 1 || L > 100000 || rt_config_head_dim(cfg) < 1)
        return rt_fail(err,
                       "the model's dims (vocab %lld, dim %lld, %lld layers, %lld/%lld heads) are invalid",
                       (long long)V, (long long)C, (long long)L, (long long)H, (long long)KVH);
    const int64_t D = rt_config_head_dim(cfg);
    // [rows, cols] by block_shape; cols 0 = a vector
    const int64_t dims[][2] = {[SHAPE_NORM] = {C, 0},   [SHAPE_Q] = {H * D, C},     [SHAPE_KV] = {KVH * D, C},
                               [SHAPE_QB] = {H * D, 0}, [SHAPE_KVB] = {KVH * D, 0}, [SHAPE_O] = {C, H * D},
                               [SHAPE_UP] = {F, C},     [SHAPE_DOWN] = {C, F}};
    int total = 3 + (int)L * N_BLOCK;
    rt_hf_tensor *ts = rt_calloc((size_t)total, sizeof *ts, "the tensor table", err);
    if (!ts) return -1;
    int k = 0;
    set(&ts[k++], "model.embed_tokens.weight", "token_embd.weight", 2, V, C);
    for (int64_t l = 0; l < L; l++)
        for (int i = 0; i < N_BLOCK; i++) {
            block_shape shape = block_tensors[i].shape;
            if (!cfg->model.attn_bias && (shape == SHAPE_QB || shape == SHAPE_KVB)) continue;
            char hf[RT_TENSOR_NAME_MAX], rt[RT_TENSOR_NAME_MAX];
            snprintf(hf, sizeof hf, "model.layers.%lld.%s", (long long)l, block_tensors[i].hf);
            snprintf(rt, sizeof rt, "blk.%lld.%s", (long long)l, block_tensors[i].rt);
            set(&ts[k++], hf, rt, dims[shape][1] ? 2 : 1, dims[shape][0], dims[shape][1]);
        }
    set(&ts[k++], "model.norm.weight", "output_norm.weight", 1, C, 0);
    if (!cfg->model.tie_embeddings) set(&ts[k++], RT_HF_LM_HEAD, "output.weight", 2, V, C);
    *out = ts;
    *n = k;
    return 0;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

int rt_hf_ignorable(const char *name) {
    return strcmp(name, "model.rotary_emb.inv_freq") == 0 ||
           (strncmp(name, "model.layers.", 13) == 0 && ends_with(name, ".self_attn.rotary_emb.inv_freq"));
}

void rt_hf_shape_str(int ndim, const int64_t *shape, char *out, size_t cap) {
    size_t at = 0;
    at += (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(out + at, cap - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < cap) snprintf(out + at, cap - at, "]");
}
