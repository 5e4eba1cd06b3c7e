// Fine-tuning around the model (finetune.h).
#define _POSIX_C_SOURCE 200809L
#include "train/finetune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/nf4.h"
#include "base/files.h"

int rt_finetune_read_base(const char *path, const char *want_hash, const char *what, rt_ckpt *base,
                          rt_config *base_cfg, char hash[17], rt_error *err) {
    memset(base, 0, sizeof *base);
    if (!path[0]) return rt_fail(err, "%s is empty: name the checkpoint to fine-tune", what);
    if (rt_file_hash(path, hash, err)) return rt_fail_wrap(err, "%s", what);
    if (want_hash && want_hash[0] && strcmp(hash, want_hash) != 0)
        return rt_fail(err,
                       "%s %s has hash %s, but these adapters were trained on a base with hash %s: the file "
                       "changed or is another checkpoint; point it at the base they were trained on",
                       what, path, hash, want_hash);
    if (rt_ckpt_read(path, 0, base, err)) return rt_fail_wrap(err, "%s", what);
    int rc = 0;
    if (base->n_lora > 0)
        rc = rt_fail(err,
                     "%s %s is an adapter checkpoint; a base holds full weights (fold the adapters in with "
                     "`retort merge %s --out merged.h5` and use that)",
                     what, path, path);
    if (rc == 0) rc = rt_ckpt_parse_config(path, base->config_yaml, base_cfg, err);
    if (rc) rt_ckpt_free(base);
    return rc;
}

int rt_finetune_load_adapted(const char *ckpt_path, const rt_ckpt *adapter, const rt_config *cfg, rt_ctx *ctx,
                             int B, int T, rt_model *m, rt_error *err) {
    rt_lora_spec spec;
    if (rt_lora_spec_from_config(cfg, &spec, err)) return rt_fail_wrap(err, "%s", ckpt_path);
    rt_ckpt base;
    rt_config base_cfg;
    char hash[17], what[RT_CKPT_PATH_MAX + 64];
    snprintf(what, sizeof what, "the base of %s,", ckpt_path);
    if (rt_finetune_read_base(adapter->base, adapter->base_hash, what, &base, &base_cfg, hash, err))
        return -1;
    rt_model_dims dims = rt_model_dims_from_config(cfg);
    if (T <= 0 || T > dims.T_max) T = dims.T_max;
    int rc = rt_model_create_adapted(m, &dims, &spec, ctx, B, T, 0, err);
    if (rc == 0) {
        rc = rt_model_import_tensors(m, base.model, base.n_model, NULL, NULL, 0, adapter->base, err);
        if (rc == 0)
            rc = rt_model_import_adapters(m, adapter->lora, adapter->n_lora, NULL, NULL, 0, ckpt_path, err);
        if (rc) rt_model_free(m);
    }
    rt_ckpt_free(&base);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// merging

static int copy_tensor(rt_named_tensor *dst, const rt_named_tensor *src, const char *name, rt_error *err) {
    *dst = *src;
    snprintf(dst->name, sizeof dst->name, "%s", name);
    size_t n = 1;
    for (int d = 0; d < src->ndim; d++) n *= (size_t)src->shape[d];
    dst->data = rt_malloc(n * sizeof(float), name, err);
    if (!dst->data) return -1;
    memcpy(dst->data, src->data, n * sizeof(float));
    return 0;
}

// w [out, in] += scale * b [out, r] @ a [r, in]
static int add_product(rt_named_tensor *w, const rt_named_tensor *a, const rt_named_tensor *b, float scale,
                       rt_error *err) {
    int64_t out = w->shape[0], in = w->shape[1], r = a->shape[0];
    if (w->ndim != 2 || a->ndim != 2 || b->ndim != 2 || a->shape[1] != in || b->shape[0] != out ||
        b->shape[1] != r)
        return rt_fail(err,
                       "adapter of %s: A [%lld, %lld] and B [%lld, %lld] do not fit the weight [%lld, %lld]",
                       w->name, (long long)a->shape[0], (long long)a->shape[1], (long long)b->shape[0],
                       (long long)b->shape[1], (long long)out, (long long)in);
    for (int64_t o = 0; o < out; o++) {
        float *row = w->data + o * in;
        for (int64_t k = 0; k < r; k++) {
            float c = scale * b->data[o * r + k];
            const float *arow = a->data + k * in;
            for (int64_t i = 0; i < in; i++) row[i] += c * arow[i];
        }
    }
    return 0;
}

static int nf4_round_trip(rt_named_tensor *w, int double_quant, rt_error *err) {
    size_t n = (size_t)w->shape[0] * (size_t)w->shape[1];
    rt_nf4 q;
    if (rt_nf4_quantize(w->data, n, double_quant, &q, w->name, err)) return -1;
    rt_nf4_dequantize(&q, w->data);
    rt_nf4_free(&q);
    return 0;
}

int rt_finetune_merge(const rt_ckpt *adapter, const rt_config *cfg, const rt_ckpt *base,
                      rt_named_tensor **merged, int *n_merged, rt_config *merged_cfg, rt_error *err) {
    rt_lora_spec spec;
    if (rt_lora_spec_from_config(cfg, &spec, err)) return -1;
    if (spec.rank <= 0)
        return rt_fail(err, "finetune.method %s has no adapters to merge", cfg->finetune.method);
    *merged_cfg = *cfg;
    snprintf(merged_cfg->finetune.method, sizeof merged_cfg->finetune.method, "full");
    const rt_named_tensor *head_a =
        rt_named_tensor_find(adapter->lora, adapter->n_lora, "output.weight.lora_a");
    if (cfg->model.tie_embeddings && !head_a)
        head_a = rt_named_tensor_find(adapter->lora, adapter->n_lora, "token_embd.weight.lora_a");
    int untie = cfg->model.tie_embeddings && head_a != NULL;
    if (untie) merged_cfg->model.tie_embeddings = 0;
    int n = base->n_model + untie;
    rt_named_tensor *ts = rt_calloc((size_t)n, sizeof *ts, "merged tensors", err);
    if (!ts) return -1;
    int rc = 0, done = 0, used = 0;
    for (int i = 0; rc == 0 && i < base->n_model; i++, done++)
        rc = copy_tensor(&ts[i], &base->model[i], base->model[i].name, err);
    if (rc == 0 && untie) {
        const rt_named_tensor *emb = rt_named_tensor_find(base->model, base->n_model, "token_embd.weight");
        rc = emb ? copy_tensor(&ts[done], emb, "output.weight", err)
                 : rt_fail(err, "the base has no token_embd.weight");
        done += rc == 0;
    }
    for (int i = 0; rc == 0 && i < done; i++) {
        rt_named_tensor *w = &ts[i];
        int s = rt_lora_site_of(w->name, NULL);
        if (s < 0) continue;
        if (s < RT_N_BLOCK_SITES && (spec.nf4_sites & (1u << s)))
            rc = nf4_round_trip(w, spec.double_quant, err);
        // the adapters are named after the weight they adapt; a tied head's are named after the embedding
        char an[RT_TENSOR_NAME_MAX + 8], bn[RT_TENSOR_NAME_MAX + 8];
        const char *wname =
            s == RT_SITE_HEAD && untie &&
                    !rt_named_tensor_find(adapter->lora, adapter->n_lora, "output.weight.lora_a")
                ? "token_embd.weight"
                : w->name;
        snprintf(an, sizeof an, "%s.lora_a", wname);
        snprintf(bn, sizeof bn, "%s.lora_b", wname);
        const rt_named_tensor *a = rt_named_tensor_find(adapter->lora, adapter->n_lora, an);
        const rt_named_tensor *b = rt_named_tensor_find(adapter->lora, adapter->n_lora, bn);
        if (rc == 0 && (!a != !b))
            rc = rt_fail(err, "adapter of %s has only one of lora_a and lora_b", w->name);
        if (rc == 0 && a) {
            rc = add_product(w, a, b, spec.scale, err);
            used += 2;
        }
    }
    if (rc == 0 && used != adapter->n_lora)
        rc = rt_fail(err, "%d of the %d adapter tensors match no weight of the base", adapter->n_lora - used,
                     adapter->n_lora);
    if (rc) {
        for (int i = 0; i < done; i++) free(ts[i].data);
        free(ts);
        return -1;
    }
    *merged = ts;
    *n_merged = n;
    return 0;
}
