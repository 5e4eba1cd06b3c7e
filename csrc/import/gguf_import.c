// GGUF model file -> retort checkpoint (gguf_import.h). Everything is checked before any tensor is decoded:
// the architecture and hyperparameters, then every tensor's presence, shape and type, then that no tensor is
// left over (llama.cpp refuses files with extra tensors too, and dropping weights silently would change the
// model).
#include "import/gguf_import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/ggml_quants.h"
#include "train/checkpoint.h"

// ---------------------------------------------------------------------------------------------------
// hyperparameters: {arch}.* keys, each of the value type llama.cpp's loader accepts

typedef struct hparams {
    const char *arch;
    int llama; // llama (q/k permuted by the converter) or qwen2 (not)
    int64_t n_layers, dim, ffn, n_heads, n_kv_heads, head_dim, context, vocab;
    double eps, theta, linear_factor; // linear_factor 0: no linear scaling
} hparams;

static const rt_gguf_kv *arch_key(const rt_gguf_file *f, const char *arch, const char *suffix, char *key,
                                  size_t cap) {
    snprintf(key, cap, "%s.%s", arch, suffix);
    return rt_gguf_find_kv(f, key);
}

static int is_int_type(int t) {
    return t == RT_GGUF_UINT8 || t == RT_GGUF_INT8 || t == RT_GGUF_UINT16 || t == RT_GGUF_INT16 ||
           t == RT_GGUF_UINT32 || t == RT_GGUF_INT32 || t == RT_GGUF_UINT64 || t == RT_GGUF_INT64;
}
static int is_signed_type(int t) {
    return t == RT_GGUF_INT8 || t == RT_GGUF_INT16 || t == RT_GGUF_INT32 || t == RT_GGUF_INT64;
}

// An integer key in [lo, hi]; absent: dflt, or an error when dflt < 0 (required).
static int int_key(const rt_gguf_file *f, const char *path, const char *arch, const char *suffix,
                   int64_t dflt, int64_t lo, int64_t hi, int64_t *out, rt_error *err) {
    char key[128];
    const rt_gguf_kv *kv = arch_key(f, arch, suffix, key, sizeof key);
    if (!kv) {
        if (dflt < 0) return rt_fail(err, "%s: key %s is missing (a %s model needs it)", path, key, arch);
        *out = dflt;
        return 0;
    }
    if (kv->type == RT_GGUF_ARRAY)
        return rt_fail(err, "%s: key %s is an array (per-layer values): retort's layers are all alike", path,
                       key);
    if (!is_int_type(kv->type))
        return rt_fail(err, "%s: key %s is a %s, expected an integer", path, key,
                       rt_gguf_value_type_name(kv->type));
    int neg = is_signed_type(kv->type) && (int64_t)kv->u < 0;
    if (neg || kv->u > (uint64_t)hi || (int64_t)kv->u < lo)
        return rt_fail(err, "%s: key %s is %s%llu, expected %lld to %lld", path, key, neg ? "-" : "",
                       neg ? (unsigned long long)(-(kv->u)) : (unsigned long long)kv->u, (long long)lo,
                       (long long)hi);
    *out = (int64_t)kv->u;
    return 0;
}

// The shortest decimal that reads back as the same float32: GGUF stores these keys as float32, and the
// config then holds 1e-05, as the model's own config did, rather than 9.99999974737875e-06.
static double short_float(double v) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtof(buf, NULL) == (float)v) return strtod(buf, NULL);
    }
    return v;
}

// A float key in [lo, hi]; absent: dflt, or an error when dflt is NaN (required).
static int float_key(const rt_gguf_file *f, const char *path, const char *arch, const char *suffix,
                     double dflt, double lo, double hi, double *out, rt_error *err) {
    char key[128];
    const rt_gguf_kv *kv = arch_key(f, arch, suffix, key, sizeof key);
    if (!kv) {
        if (isnan(dflt)) return rt_fail(err, "%s: key %s is missing (a %s model needs it)", path, key, arch);
        *out = dflt;
        return 0;
    }
    if (kv->type != RT_GGUF_FLOAT32 && kv->type != RT_GGUF_FLOAT64)
        return rt_fail(err, "%s: key %s is a %s, expected a float", path, key,
                       rt_gguf_value_type_name(kv->type));
    if (!(kv->f >= lo && kv->f <= hi))
        return rt_fail(err, "%s: key %s is %g, expected %g to %g", path, key, kv->f, lo, hi);
    *out = kv->type == RT_GGUF_FLOAT32 ? short_float(kv->f) : kv->f;
    return 0;
}

static const char *string_key(const rt_gguf_file *f, const char *key) {
    const rt_gguf_kv *kv = rt_gguf_find_kv(f, key);
    return kv && kv->type == RT_GGUF_STRING ? kv->str : NULL;
}

static int read_rope_scaling(const rt_gguf_file *f, const char *path, hparams *h, rt_error *err) {
    char key[128];
    const rt_gguf_kv *kv = arch_key(f, h->arch, "rope.scaling.type", key, sizeof key);
    if (!kv) return 0;
    if (kv->type != RT_GGUF_STRING)
        return rt_fail(err, "%s: key %s is a %s, expected a string", path, key,
                       rt_gguf_value_type_name(kv->type));
    if (strcmp(kv->str, "none") == 0) return 0;
    if (strcmp(kv->str, "linear") != 0)
        return rt_fail(err,
                       "%s: %s is \"%.40s\": retort's RoPE has no such scaling (it has linear and llama3)",
                       path, key, kv->str);
    return float_key(f, path, h->arch, "rope.scaling.factor", NAN, 1.0, 1e6, &h->linear_factor, err);
}

static int read_hparams(const rt_gguf_file *f, const char *path, hparams *h, rt_error *err) {
    memset(h, 0, sizeof *h);
    const rt_gguf_kv *kv = rt_gguf_find_kv(f, "general.architecture");
    if (!kv || kv->type != RT_GGUF_STRING)
        return rt_fail(err, "%s: no general.architecture string: not a GGUF model file", path);
    if (strcmp(kv->str, "llama") != 0 && strcmp(kv->str, "qwen2") != 0)
        return rt_fail(err, "%s: architecture \"%.40s\": retort imports llama and qwen2 GGUF files", path,
                       kv->str);
    h->arch = kv->str;
    h->llama = strcmp(kv->str, "llama") == 0;
    const char *a = h->arch;
    if (int_key(f, path, a, "block_count", -1, 1, 1024, &h->n_layers, err) ||
        int_key(f, path, a, "embedding_length", -1, 8, 65536, &h->dim, err) ||
        int_key(f, path, a, "feed_forward_length", -1, 1, 1 << 20, &h->ffn, err) ||
        int_key(f, path, a, "attention.head_count", -1, 1, 1024, &h->n_heads, err) ||
        int_key(f, path, a, "attention.head_count_kv", h->n_heads, 1, h->n_heads, &h->n_kv_heads, err) ||
        int_key(f, path, a, "context_length", -1, 2, INT32_MAX, &h->context, err) ||
        float_key(f, path, a, "attention.layer_norm_rms_epsilon", NAN, 1e-12, 1.0, &h->eps, err) ||
        float_key(f, path, a, "rope.freq_base", 10000.0, 1.0, 1e12, &h->theta, err))
        return -1;
    if (h->n_heads % h->n_kv_heads != 0)
        return rt_fail(err, "%s: %s.attention.head_count_kv %lld does not divide head_count %lld", path, a,
                       (long long)h->n_kv_heads, (long long)h->n_heads);
    int64_t dflt = h->dim % h->n_heads == 0 ? h->dim / h->n_heads : -1, value_length, rot;
    if (int_key(f, path, a, "attention.key_length", dflt, 2, 65536, &h->head_dim, err) ||
        int_key(f, path, a, "attention.value_length", h->head_dim, 2, 65536, &value_length, err) ||
        int_key(f, path, a, "rope.dimension_count", h->head_dim, 2, 65536, &rot, err))
        return -1;
    if (value_length != h->head_dim)
        return rt_fail(err,
                       "%s: %s.attention.value_length %lld differs from key_length %lld: retort's heads have "
                       "one width",
                       path, a, (long long)value_length, (long long)h->head_dim);
    if (rot != h->head_dim)
        return rt_fail(err, "%s: %s.rope.dimension_count %lld: retort rotates the whole head (%lld dims)",
                       path, a, (long long)rot, (long long)h->head_dim);
    if (h->head_dim % 2 != 0)
        return rt_fail(err, "%s: head dim %lld is odd (RoPE rotates pairs)", path, (long long)h->head_dim);
    return read_rope_scaling(f, path, h, err);
}

// The vocabulary size: the rows of token_embd.weight, which the token list (and vocab_size) must match.
static int read_vocab(const rt_gguf_file *f, const char *path, hparams *h, rt_error *err) {
    const rt_gguf_tensor *emb = NULL;
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, "token_embd.weight") == 0) emb = &f->tensors[i];
    if (!emb) return rt_fail(err, "%s: tensor token_embd.weight is missing", path);
    if (emb->n_dims != 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 20))
        return rt_fail(err, "%s: tensor token_embd.weight has %d dims and %lld rows, expected [%lld, vocab]",
                       path, emb->n_dims, (long long)emb->ne[1], (long long)h->dim);
    h->vocab = emb->ne[1];
    const rt_gguf_kv *tokens = rt_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (tokens && (tokens->type != RT_GGUF_ARRAY || tokens->n != (uint64_t)h->vocab))
        return rt_fail(err, "%s: tokenizer.ggml.tokens holds %llu tokens but token_embd.weight has %lld rows",
                       path, tokens->type == RT_GGUF_ARRAY ? (unsigned long long)tokens->n : 0ull,
                       (long long)h->vocab);
    int64_t v;
    if (int_key(f, path, h->arch, "vocab_size", h->vocab, 1, 1 << 20, &v, err)) return -1;
    if (v != h->vocab)
        return rt_fail(err, "%s: %s.vocab_size %lld but token_embd.weight has %lld rows", path, h->arch,
                       (long long)v, (long long)h->vocab);
    return 0;
}

static int token_id(const rt_gguf_file *f, const char *key, int64_t vocab) {
    const rt_gguf_kv *kv = rt_gguf_find_kv(f, key);
    if (!kv || !is_int_type(kv->type) || (is_signed_type(kv->type) && (int64_t)kv->u < 0) ||
        kv->u >= (uint64_t)vocab)
        return -1;
    return (int)kv->u;
}

// ---------------------------------------------------------------------------------------------------
// tensors

#define N_BLOCK 12
static const char *const block_names[N_BLOCK] = {"attn_norm.weight", "attn_q.weight",      "attn_q.bias",
                                                 "attn_k.weight",    "attn_k.bias",        "attn_v.weight",
                                                 "attn_v.bias",      "attn_output.weight", "ffn_norm.weight",
                                                 "ffn_gate.weight",  "ffn_up.weight",      "ffn_down.weight"};

// One tensor the model needs: its retort shape (row-major [rows, cols]; cols 0 for a vector).
typedef struct wanted {
    char name[RT_GGUF_NAME_MAX];
    int64_t rows, cols;
    int heads; // llama: q/k rows to permute back, per heads of head_dim
    const rt_gguf_tensor *src;
} wanted;

static const rt_gguf_tensor *find_tensor(const rt_gguf_file *f, const char *name, int64_t *index) {
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) {
            if (index) *index = i;
            return &f->tensors[i];
        }
    return NULL;
}

static void shape_str(const rt_gguf_tensor *t, char *buf, size_t cap) {
    int k = snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims && k > 0 && (size_t)k < cap; d++)
        k += snprintf(buf + k, cap - (size_t)k, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
    if (k > 0 && (size_t)k < cap) snprintf(buf + k, cap - (size_t)k, "]");
}

// The tensor w names, checked for shape (GGUF lists [cols, rows]) and a type retort decodes.
static int check_tensor(const rt_gguf_file *f, const char *path, wanted *w, rt_error *err) {
    const rt_gguf_tensor *t = find_tensor(f, w->name, NULL);
    char want[64], got[96];
    if (w->cols > 0)
        snprintf(want, sizeof want, "[%lld, %lld]", (long long)w->cols, (long long)w->rows);
    else
        snprintf(want, sizeof want, "[%lld]", (long long)w->rows);
    if (!t) return rt_fail(err, "%s: tensor %s is missing (expected %s)", path, w->name, want);
    int64_t ne0 = w->cols > 0 ? w->cols : w->rows, ne1 = w->cols > 0 ? w->rows : 1;
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        shape_str(t, got, sizeof got);
        return rt_fail(err, "%s: tensor %s has shape %s, expected %s (GGUF order: the row length first)",
                       path, w->name, got, want);
    }
    if (!rt_ggml_can_decode(t->type))
        return rt_fail(
            err,
            "%s: tensor %s is %s, which retort cannot import (it reads f32, f16, bf16, q8_0, q4_0, "
            "q4_k and q6_k)",
            path, w->name, rt_ggml_type_name(t->type));
    w->src = t;
    return 0;
}

// llama.cpp's converter stores each head's rows of q and k for adjacent-pair RoPE: its row 2j is the
// rotate-half row j and its row 2j + 1 the row j + hd / 2 (docs/design.md, RoPE and the export
// permutation). This puts them back; a bias is a matrix of one column.
static void unpermute_rope_rows(const float *in, float *out, int heads, int hd, int64_t cols) {
    size_t row = (size_t)cols * sizeof(float);
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            size_t base = (size_t)h * (size_t)hd;
            memcpy(out + (base + (size_t)j) * (size_t)cols, in + (base + 2 * (size_t)j) * (size_t)cols, row);
            memcpy(out + (base + (size_t)j + (size_t)hd / 2) * (size_t)cols,
                   in + (base + 2 * (size_t)j + 1) * (size_t)cols, row);
        }
}

// The tensors a model with these hyperparameters has, in llama.cpp's order; biases only with bias.
static int wanted_list(const hparams *h, int tied, int bias, wanted **out, int *n, rt_error *err) {
    int cap = 3 + N_BLOCK * (int)h->n_layers, k = 0;
    wanted *w = rt_calloc((size_t)cap, sizeof *w, "the tensor list", err);
    if (!w) return -1;
    int64_t q = h->n_heads * h->head_dim, kv = h->n_kv_heads * h->head_dim;
    snprintf(w[k].name, sizeof w[k].name, "token_embd.weight");
    w[k].rows = h->vocab, w[k++].cols = h->dim;
    for (int l = 0; l < (int)h->n_layers; l++)
        for (int b = 0; b < N_BLOCK; b++) {
            const char *s = block_names[b];
            if (!bias && strstr(s, ".bias")) continue;
            snprintf(w[k].name, sizeof w[k].name, "blk.%d.%s", l, s);
            int is_q = strncmp(s, "attn_q.", 7) == 0, is_k = strncmp(s, "attn_k.", 7) == 0;
            int is_v = strncmp(s, "attn_v.", 7) == 0, vec = strstr(s, "norm") || strstr(s, ".bias");
            w[k].rows = strstr(s, "norm") || strstr(s, "attn_output") || strstr(s, "ffn_down") ? h->dim
                        : is_q                                                                 ? q
                        : is_k || is_v                                                         ? kv
                                                                                               : h->ffn;
            w[k].cols = vec ? 0 : strstr(s, "attn_output") ? q : strstr(s, "ffn_down") ? h->ffn : h->dim;
            w[k].heads = !h->llama ? 0 : is_q ? (int)h->n_heads : is_k ? (int)h->n_kv_heads : 0;
            k++;
        }
    snprintf(w[k].name, sizeof w[k].name, "output_norm.weight");
    w[k].rows = h->dim, w[k++].cols = 0;
    if (!tied) {
        snprintf(w[k].name, sizeof w[k].name, "output.weight");
        w[k].rows = h->vocab, w[k++].cols = h->dim;
    }
    *out = w;
    *n = k;
    return 0;
}

// Biases come for every layer's q, k and v or for none (retort's model.attn_bias covers all three).
static int has_biases(const rt_gguf_file *f, const char *path, const hparams *h, int *bias, rt_error *err) {
    char name[RT_GGUF_NAME_MAX];
    int first = -1;
    for (int l = 0; l < (int)h->n_layers; l++)
        for (int b = 0; b < 3; b++) {
            snprintf(name, sizeof name, "blk.%d.attn_%c.bias", l, "qkv"[b]);
            int here = find_tensor(f, name, NULL) != NULL;
            if (first < 0) first = here;
            if (here != first)
                return rt_fail(err,
                               "%s: tensor %s is %s while blk.0.attn_q.bias is %s: retort's attention biases "
                               "are on every layer's q, k and v or on none",
                               path, name, here ? "present" : "missing", first ? "present" : "missing");
        }
    *bias = first == 1;
    return 0;
}

// rope_freqs.weight [head_dim / 2]: llama3 scaling as llama.cpp stores it.
static int read_rope_freqs(const rt_gguf_file *f, const char *path, const hparams *h, rt_rope_scaling *s,
                           int *found, rt_error *err) {
    memset(s, 0, sizeof *s);
    wanted w = {"rope_freqs.weight", h->head_dim / 2, 0, 0, NULL};
    *found = find_tensor(f, w.name, NULL) != NULL;
    if (!*found) return 0;
    if (check_tensor(f, path, &w, err)) return -1;
    if (h->linear_factor > 0)
        return rt_fail(err, "%s: both linear RoPE scaling and rope_freqs.weight: retort has one or the other",
                       path);
    float *r = rt_malloc((size_t)w.rows * sizeof *r, w.name, err);
    if (!r) return -1;
    rt_ggml_dequantize(w.src->type, w.src->data, (size_t)w.rows, r);
    char what[1100];
    snprintf(what, sizeof what, "%s: rope_freqs.weight", path);
    int rc = rt_rope_llama3_from_factors(r, (int)h->head_dim, h->theta, what, s, err);
    free(r);
    return rc;
}

// Nothing in the file may be left over.
static int check_leftovers(const rt_gguf_file *f, const char *path, const wanted *w, int n, const char *arch,
                           rt_error *err) {
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        int used = strcmp(name, "rope_freqs.weight") == 0;
        for (int k = 0; k < n && !used; k++) used = strcmp(w[k].name, name) == 0;
        if (!used)
            return rt_fail(
                err, "%s: tensor %s is not part of a %s model retort can hold; refusing to drop weights",
                path, name, arch);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// config

static int to_config(const hparams *h, const char *path, int max_seq_len, int tied, int bias,
                     const rt_rope_scaling *s, rt_config *cfg, rt_error *err) {
    rt_config_defaults(cfg);
    int64_t T = h->context;
    if (max_seq_len > T)
        return rt_fail(
            err, "--max-seq-len %d exceeds %s.context_length %lld of %s (it can only shorten the context)",
            max_seq_len, h->arch, (long long)T, path);
    if (max_seq_len > 0) T = max_seq_len;
    if (T > (1 << 20))
        return rt_fail(err,
                       "%s: %s.context_length %lld exceeds retort's %d positions: import with --max-seq-len",
                       path, h->arch, (long long)T, 1 << 20);
    cfg->model.vocab_size = (int)h->vocab;
    cfg->model.dim = (int)h->dim;
    cfg->model.n_layers = (int)h->n_layers;
    cfg->model.n_heads = (int)h->n_heads;
    cfg->model.n_kv_heads = (int)h->n_kv_heads;
    cfg->model.ffn_dim = (int)h->ffn;
    cfg->model.max_seq_len = (int)T;
    cfg->model.rope_theta = h->theta;
    cfg->model.head_dim = h->head_dim * h->n_heads == h->dim ? 0 : (int)h->head_dim;
    cfg->model.attn_bias = bias;
    cfg->model.norm_eps = h->eps;
    cfg->model.tie_embeddings = tied;
    if (h->linear_factor > 0) {
        snprintf(cfg->model.rope_scaling, sizeof cfg->model.rope_scaling, "linear");
        cfg->model.rope_factor = h->linear_factor;
    } else if (s->type == RT_ROPE_SCALING_LLAMA3) {
        snprintf(cfg->model.rope_scaling, sizeof cfg->model.rope_scaling, "llama3");
        cfg->model.rope_factor = s->factor;
        cfg->model.rope_low_freq_factor = s->low_freq_factor;
        cfg->model.rope_high_freq_factor = s->high_freq_factor;
        cfg->model.rope_original_max_seq_len = s->original_max_seq_len;
    }
    if (cfg->data.seq_len > T) cfg->data.seq_len = (int)T; // the default training length must fit the context
    if (rt_config_validate(cfg, err))
        return rt_fail_wrap(err, "%s describes a model retort's config cannot hold", path);
    return 0;
}

// ---------------------------------------------------------------------------------------------------

void rt_gguf_import_free(rt_named_tensor *ts, int n) {
    for (int i = 0; ts && i < n; i++) free(ts[i].data);
    free(ts);
}

// Decode w into t ([rows, cols] fp32), putting q/k rows back in retort's order.
static int decode(const wanted *w, const hparams *h, rt_named_tensor *t, rt_gguf_import_report *rep,
                  rt_error *err) {
    size_t count;
    if (!rt_mul_size((size_t)w->rows, (size_t)(w->cols > 0 ? w->cols : 1), &count) ||
        !rt_mul_size(count, sizeof(float), &(size_t){0}))
        return rt_fail(err, "%s: size overflow", w->name);
    snprintf(t->name, sizeof t->name, "%s", w->name);
    t->ndim = w->cols > 0 ? 2 : 1;
    t->shape[0] = w->rows;
    t->shape[1] = w->cols;
    t->data = rt_malloc(count * sizeof(float), w->name, err);
    if (!t->data) return -1;
    rt_ggml_dequantize(w->src->type, w->src->data, count, t->data);
    if (w->heads > 0) {
        float *tmp = rt_malloc(count * sizeof(float), w->name, err);
        if (!tmp) return -1;
        unpermute_rope_rows(t->data, tmp, w->heads, (int)h->head_dim, w->cols > 0 ? w->cols : 1);
        free(t->data);
        t->data = tmp;
        rep->unpermuted = 1;
    }
    if (w->src->type >= 0 && w->src->type < (int)(sizeof rep->n_by_type / sizeof rep->n_by_type[0]))
        rep->n_by_type[w->src->type] += count;
    rep->n_params += count;
    return 0;
}

int rt_gguf_import_model(const rt_gguf_file *f, const char *path, const rt_gguf_import_opts *opts,
                         rt_config *cfg, rt_named_tensor **ts, int *n, rt_gguf_import_report *rep,
                         rt_error *err) {
    memset(rep, 0, sizeof *rep);
    *ts = NULL;
    *n = 0;
    hparams h;
    if (read_hparams(f, path, &h, err) || read_vocab(f, path, &h, err)) return -1;
    snprintf(rep->arch, sizeof rep->arch, "%s", h.arch);
    rep->context_length = (int)h.context;
    const char *tok = string_key(f, "tokenizer.ggml.model");
    snprintf(rep->tokenizer, sizeof rep->tokenizer, "%s", tok ? tok : "");
    rep->bos_id = token_id(f, "tokenizer.ggml.bos_token_id", h.vocab);
    rep->eos_id = token_id(f, "tokenizer.ggml.eos_token_id", h.vocab);
    rep->pad_id = token_id(f, "tokenizer.ggml.padding_token_id", h.vocab);
    rep->tied = find_tensor(f, "output.weight", NULL) == NULL;
    int bias = 0;
    rt_rope_scaling s;
    if (has_biases(f, path, &h, &bias, err) || read_rope_freqs(f, path, &h, &s, &rep->rope_freqs, err) ||
        to_config(&h, path, opts ? opts->max_seq_len : 0, rep->tied, bias, &s, cfg, err))
        return -1;
    wanted *w;
    int nw, rc = wanted_list(&h, rep->tied, bias, &w, &nw, err);
    if (rc) return -1;
    for (int i = 0; rc == 0 && i < nw; i++) rc = check_tensor(f, path, &w[i], err);
    if (rc == 0) rc = check_leftovers(f, path, w, nw, h.arch, err);
    rt_named_tensor *out = rc == 0 ? rt_calloc((size_t)nw, sizeof *out, "the weights", err) : NULL;
    if (rc == 0 && !out) rc = -1;
    for (int i = 0; rc == 0 && i < nw; i++) rc = decode(&w[i], &h, &out[i], rep, err);
    free(w);
    if (rc) {
        rt_gguf_import_free(out, nw);
        return -1;
    }
    rep->n_tensors = nw;
    *ts = out;
    *n = nw;
    return 0;
}

int rt_gguf_import(const char *path, const char *out, const rt_gguf_import_opts *opts,
                   rt_gguf_import_report *rep, rt_error *err) {
    rt_gguf_file f;
    if (rt_gguf_read(path, &f, err)) return -1;
    rt_config cfg;
    rt_named_tensor *ts;
    int n;
    int rc = rt_gguf_import_model(&f, path, opts, &cfg, &ts, &n, rep, err);
    rt_gguf_free(&f); // the weights are copies
    if (rc) return -1;
    rt_ckpt c;
    memset(&c, 0, sizeof c);
    c.model = ts;
    c.n_model = n;
    c.state.world_size = 1;
    snprintf(c.architecture, sizeof c.architecture, "llama");
    // the file's tokenizer, stored whole (its tokenizer.* keys as a vocab-only GGUF: tokenizer_source.h); one
    // retort cannot read is recorded with the byte tokenizer's type and the file's control ids, with a note
    rt_error tok_err;
    int have_tok = rt_tok_source_load(path, &c.tokenizer, NULL, &tok_err) == 0;
    if (have_tok && c.tokenizer.vocab_size > cfg.model.vocab_size) {
        snprintf(tok_err.msg, sizeof tok_err.msg, "its %d ids exceed the model's %d", c.tokenizer.vocab_size,
                 cfg.model.vocab_size);
        rt_tok_source_free(&c.tokenizer);
        have_tok = 0;
    }
    if (!have_tok) {
        if (rep->tokenizer[0])
            fprintf(stderr, "note: the %s tokenizer of %s is not imported (%s); give the model token ids\n",
                    rep->tokenizer, path, tok_err.msg);
        rt_tok_source_byte(&c.tokenizer, cfg.model.vocab_size);
        c.tokenizer.bos_id = rep->bos_id >= 0 ? rep->bos_id : 0;
        c.tokenizer.eos_id = rep->eos_id >= 0 ? rep->eos_id : c.tokenizer.bos_id;
        c.tokenizer.pad_id = rep->pad_id >= 0 ? rep->pad_id : c.tokenizer.eos_id;
    }
    rep->tokenizer_stored = have_tok;
    c.config_yaml = rt_config_to_yaml(&cfg);
    if (!c.config_yaml) rc = rt_fail(err, "out of memory writing the config");
    if (rc == 0) rc = rt_ckpt_write(out, &c, err);
    free(c.config_yaml);
    rt_tok_source_free(&c.tokenizer);
    rt_gguf_import_free(ts, n);
    return rc;
}
