// Export to GGUF for llama.cpp (gguf_export.h).
#include "export/gguf_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/ggml_quants.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer_gguf_write.h"
#include "model/rope_scaling.h"

// llama.cpp's architecture for the model. A model with q/k/v biases is qwen2, as llama.cpp's converter writes
// Qwen2, when qwen2 can hold it: llama.cpp's qwen2 has q_proj [dim, dim] (no head_dim of its own) and no
// rope_freqs (llama3 scaling), and refuses such files. Everything else is llama, which loads optional q/k/v
// biases, a head_dim of its own and rope_freqs. llama.cpp runs qwen2's RoPE in the rotate-half (NEOX) form
// retort uses and llama's on adjacent pairs, for which the q/k rows (and biases) are permuted.
static const char *arch_of(const rt_config *c) {
    int own_head_dim = c->model.head_dim != 0 && c->model.head_dim * c->model.n_heads != c->model.dim;
    int llama3 = strcmp(c->model.rope_scaling, "llama3") == 0;
    return c->model.attn_bias && !own_head_dim && !llama3 ? "qwen2" : "llama";
}

void rt_gguf_permute_rope_rows(const float *w, float *out, int heads, int hd, int64_t cols) {
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            size_t base = (size_t)h * hd;
            memcpy(out + (base + 2 * j) * cols, w + (base + j) * cols, (size_t)cols * sizeof(float));
            memcpy(out + (base + 2 * j + 1) * cols, w + (base + j + hd / 2) * cols,
                   (size_t)cols * sizeof(float));
        }
}

static int file_type_of(int type) {
    switch (type) {
    case RT_GGML_F32:
        return 0;
    case RT_GGML_F16:
        return 1;
    case RT_GGML_Q4_0:
        return 2;
    case RT_GGML_Q8_0:
        return 7;
    case RT_GGML_Q6_K:
        return 18;
    default:
        return 32; // BF16
    }
}

// The order llama.cpp's converter writes: token_embd, the blocks, output_norm, output. The biases exist
// only with model.attn_bias.
#define N_BLOCK_TENSORS 12
static const char *const block_order[N_BLOCK_TENSORS] = {
    "attn_norm.weight", "attn_q.weight",   "attn_q.bias",   "attn_k.weight",
    "attn_k.bias",      "attn_v.weight",   "attn_v.bias",   "attn_output.weight",
    "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

// The heads whose rows llama.cpp's RoPE needs permuted for the tensor `name` (or an adapter of it):
// n_heads for attn_q, n_kv_heads for attn_k in the llama architecture, 0 for every other tensor.
static int rope_heads(const char *name, const rt_config *cfg) {
    if (strcmp(arch_of(cfg), "llama") != 0) return 0;
    if (strstr(name, ".attn_q.")) return cfg->model.n_heads;
    if (strstr(name, ".attn_k.")) return cfg->model.n_kv_heads;
    return 0;
}

// The rows of t permuted for `heads` heads; a copy the caller frees, or NULL when heads is 0.
static float *rope_rows(const rt_named_tensor *t, const rt_config *cfg, int heads, rt_error *err,
                        int *failed) {
    *failed = 0;
    if (heads == 0) return NULL;
    int hd = rt_config_head_dim(cfg);
    if (t->ndim < 1 || t->ndim > 2 || t->shape[0] != (int64_t)heads * hd) {
        *failed = 1;
        rt_fail(err, "%s has %lld rows, expected %d heads x %d", t->name, (long long)t->shape[0], heads, hd);
        return NULL;
    }
    int64_t cols = t->ndim == 2 ? t->shape[1] : 1; // a bias permutes like a weight of one column
    float *out = rt_malloc((size_t)t->shape[0] * (size_t)cols * sizeof(float), t->name, err);
    if (!out) {
        *failed = 1;
        return NULL;
    }
    rt_gguf_permute_rope_rows(t->data, out, heads, hd, cols);
    return out;
}

static int add_weight(rt_gguf_writer *w, const rt_named_tensor *t, const rt_config *cfg, int type,
                      rt_gguf_export_report *rep, rt_error *err) {
    int failed;
    float *perm = rope_rows(t, cfg, rope_heads(t->name, cfg), err, &failed);
    if (failed) return -1;
    const float *data = perm ? perm : t->data;
    int use = t->ndim == 1 ? RT_GGML_F32 : type;
    int64_t inner = t->ndim == 2 ? t->shape[1] : t->shape[0];
    while (inner % rt_ggml_block_size(use) != 0) use = use == RT_GGML_Q8_0 ? RT_GGML_F16 : RT_GGML_Q8_0;
    if (use != type && t->ndim == 2) {
        if (rep->n_fallback++ == 0)
            snprintf(rep->fallback_note, sizeof rep->fallback_note, "%s (rows of %lld) as %s", t->name,
                     (long long)inner, rt_ggml_type_name(use));
    }
    int rc = rt_gguf_add_tensor(w, t->name, use, data, t->shape[0], t->ndim == 2 ? t->shape[1] : 0, err);
    if (rc == 0) {
        rep->n_tensors++;
        rep->bytes += w->tensors[w->n_tensors - 1].nbytes;
    }
    free(perm);
    return rc;
}

// RoPE metadata: the rotated dims, the base, and the scaling: linear as llama.cpp's rope.scaling keys,
// llama3 as the per-frequency factors of rope_freqs.weight [head_dim / 2] (as llama.cpp's converter writes
// Llama 3.1), which llama.cpp divides each pair's angle by.
static int add_rope(rt_gguf_writer *w, const rt_config *c, const char *arch, rt_error *err) {
    char key[96];
    int hd = rt_config_head_dim(c);
    snprintf(key, sizeof key, "%s.rope.dimension_count", arch);
    rt_gguf_add_u32(w, key, (uint32_t)hd);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    rt_gguf_add_f32(w, key, (float)c->model.rope_theta);
    rt_rope_scaling s = rt_rope_scaling_from_config(c);
    if (s.type == RT_ROPE_SCALING_LINEAR) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        rt_gguf_add_string(w, key, "linear");
        snprintf(key, sizeof key, "%s.rope.scaling.factor", arch);
        rt_gguf_add_f32(w, key, s.factor);
    }
    if (s.type != RT_ROPE_SCALING_LLAMA3) return 0;
    float *factors = rt_malloc((size_t)(hd / 2) * sizeof(float), "rope_freqs.weight", err);
    if (!factors) return -1;
    rt_rope_freq_factors(c->model.rope_theta, hd, &s, factors);
    int rc = rt_gguf_add_tensor(w, "rope_freqs.weight", RT_GGML_F32, factors, hd / 2, 0, err);
    free(factors);
    return rc;
}

int rt_gguf_export_model(const rt_named_tensor *weights, int n, const rt_config *cfg, const rt_tokenizer *tok,
                         int type, const char *model_name, const char *path, rt_gguf_export_report *rep,
                         rt_error *err) {
    memset(rep, 0, sizeof *rep);
    const rt_config *c = cfg;
    const char *arch = arch_of(c);
    char key[96];
    rt_gguf_writer w;
    rt_gguf_writer_init(&w);
    rt_gguf_add_string(&w, "general.architecture", arch);
    rt_gguf_add_string(&w, "general.type", "model");
    rt_gguf_add_string(&w, "general.name", model_name);
    rt_gguf_add_u32(&w, "general.file_type", (uint32_t)file_type_of(type));
    if (type == RT_GGML_Q8_0 || type == RT_GGML_Q4_0 || type == RT_GGML_Q6_K)
        rt_gguf_add_u32(&w, "general.quantization_version", 2);
    const struct {
        const char *suffix;
        uint32_t value;
    } u32s[] = {{"context_length", (uint32_t)c->model.max_seq_len},
                {"embedding_length", (uint32_t)c->model.dim},
                {"block_count", (uint32_t)c->model.n_layers},
                {"feed_forward_length", (uint32_t)c->model.ffn_dim},
                {"attention.head_count", (uint32_t)c->model.n_heads},
                {"attention.head_count_kv", (uint32_t)c->model.n_kv_heads},
                // llama.cpp takes dim / head_count unless these say otherwise
                {"attention.key_length", (uint32_t)rt_config_head_dim(c)},
                {"attention.value_length", (uint32_t)rt_config_head_dim(c)},
                {"vocab_size", (uint32_t)c->model.vocab_size}};
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, u32s[i].suffix);
        rt_gguf_add_u32(&w, key, u32s[i].value);
    }
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    rt_gguf_add_f32(&w, key, (float)c->model.norm_eps);
    int rc = add_rope(&w, c, arch, err);
    if (rc == 0) rc = rt_tokenizer_to_gguf(tok, c->model.vocab_size, &w, err);
    // tensors in llama.cpp's order; every one must exist, and nothing else may be in the file
    char name[RT_TENSOR_NAME_MAX];
    int used = 0;
    for (int i = -1; rc == 0 && i <= c->model.n_layers; i++) {
        int count = i < 0 || i == c->model.n_layers ? (i < 0 ? 1 : 2) : N_BLOCK_TENSORS;
        for (int k = 0; rc == 0 && k < count; k++) {
            if (i < 0)
                snprintf(name, sizeof name, "token_embd.weight");
            else if (i == c->model.n_layers)
                snprintf(name, sizeof name, "%s", k == 0 ? "output_norm.weight" : "output.weight");
            else if (strstr(block_order[k], ".bias") && !c->model.attn_bias)
                continue;
            else
                snprintf(name, sizeof name, "blk.%d.%s", i, block_order[k]);
            const rt_named_tensor *t = rt_named_tensor_find(weights, n, name);
            if (!t && strcmp(name, "output.weight") == 0 && c->model.tie_embeddings) continue; // tied: omit
            if (!t) {
                rc = rt_fail(err, "the checkpoint has no tensor %s", name);
                break;
            }
            rc = add_weight(&w, t, cfg, type, rep, err);
            used++;
        }
    }
    if (rc == 0 && used != n)
        rc = rt_fail(err, "the checkpoint holds %d tensors that are not part of a %s model", n - used, arch);
    if (rc == 0) rc = rt_gguf_write(&w, path, err);
    rt_gguf_writer_free(&w);
    return rc;
}

int rt_gguf_export_adapter(const rt_named_tensor *adapters, int n, const rt_config *cfg, float scale,
                           const char *path, rt_gguf_export_report *rep, rt_error *err) {
    memset(rep, 0, sizeof *rep);
    int rank = n > 0 && adapters[0].ndim == 2 ? 0 : -1;
    for (int i = 0; i < n; i++) {
        const rt_named_tensor *t = &adapters[i];
        if (strstr(t->name, ".lora_a")) rank = (int)t->shape[0];
        if (strncmp(t->name, "token_embd.weight.", 18) == 0)
            return rt_fail(
                err,
                "%s: a head adapter on tied embeddings has no llama.cpp LoRA equivalent (it would "
                "adapt the embedding lookup too); merge the adapters with `retort merge` and export "
                "the merged checkpoint",
                t->name);
    }
    if (rank <= 0) return rt_fail(err, "no LoRA A matrices among the %d adapter tensors", n);
    rt_gguf_writer w;
    rt_gguf_writer_init(&w);
    rt_gguf_add_string(&w, "general.architecture", arch_of(cfg));
    rt_gguf_add_string(&w, "general.type", "adapter");
    rt_gguf_add_string(&w, "adapter.type", "lora");
    rt_gguf_add_f32(&w, "adapter.lora.alpha", scale * (float)rank); // llama.cpp scales by alpha / rank
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const rt_named_tensor *t = &adapters[i];
        // B's rows are the output rows of Q or K: permuted like the weight's (A is unchanged)
        int failed, heads = strstr(t->name, ".weight.lora_b") ? rope_heads(t->name, cfg) : 0;
        float *perm = rope_rows(t, cfg, heads, err, &failed);
        if (failed) rc = -1;
        if (rc == 0)
            rc = rt_gguf_add_tensor(&w, t->name, RT_GGML_F32, perm ? perm : t->data, t->shape[0], t->shape[1],
                                    err);
        if (rc == 0) {
            rep->n_tensors++;
            rep->bytes += w.tensors[w.n_tensors - 1].nbytes;
        }
        free(perm);
    }
    if (rc == 0) rc = rt_gguf_write(&w, path, err);
    rt_gguf_writer_free(&w);
    return rc;
}
