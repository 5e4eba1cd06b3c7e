// The Hugging Face folder export (hf_export.h): LlamaForCausalLM, or Qwen2ForCausalLM for a model with q/k/v
// biases. config.json is written in the form transformers 4.x wrote
// (top-level rope_theta and rope_scaling, torch_dtype next to dtype), which transformers 5 also reads, with
// keys sorted and indented as transformers writes them.
#include "export/hf_export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "export/export_folder.h"
#include "export/export_tokenizer.h"
#include "export/hf_names.h"
#include "export/safetensors_write.h"

static const char *const hf_files[] = {"config.json",    "generation_config.json", "model.safetensors",
                                       "tokenizer.json", "tokenizer_config.json",  "special_tokens_map.json"};

static void key_int(rt_buf *b, const char *key, long long v) {
    rt_buf_printf(b, "  \"%s\": %lld,\n", key, v);
}

static void key_id(rt_buf *b, const char *key, int id) {
    if (id < 0)
        rt_buf_printf(b, "  \"%s\": null,\n", key);
    else
        key_int(b, key, id);
}

static void key_float(rt_buf *b, const char *key, double v) {
    rt_buf_printf(b, "  \"%s\": ", key);
    rt_buf_py_float(b, v);
    rt_buf_printf(b, ",\n");
}

// The scaling as transformers 4.x wrote rope_scaling (rope_type, then the type's parameters), or null.
static void rope_scaling_json(rt_buf *b, const rt_config *cfg) {
    const char *type = cfg->model.rope_scaling;
    if (strcmp(type, "linear") != 0 && strcmp(type, "llama3") != 0) {
        rt_buf_printf(b, "  \"rope_scaling\": null,\n");
        return;
    }
    rt_buf_printf(b, "  \"rope_scaling\": {\n    \"factor\": ");
    rt_buf_py_float(b, cfg->model.rope_factor);
    if (strcmp(type, "llama3") == 0) {
        rt_buf_printf(b, ",\n    \"high_freq_factor\": ");
        rt_buf_py_float(b, cfg->model.rope_high_freq_factor);
        rt_buf_printf(b, ",\n    \"low_freq_factor\": ");
        rt_buf_py_float(b, cfg->model.rope_low_freq_factor);
        rt_buf_printf(b, ",\n    \"original_max_position_embeddings\": %d",
                      cfg->model.rope_original_max_seq_len);
    }
    rt_buf_printf(b, ",\n    \"rope_type\": \"%s\"\n  },\n", type);
}

// Llama, or Qwen2 for a model with q/k/v biases (Llama's attention_bias would add an o_proj bias too).
static const char *architecture(const rt_config *cfg) {
    return cfg->model.attn_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
}

static void config_json(rt_buf *b, const rt_config *cfg, const rt_hf_export_opts *o) {
    const char *dtype = o->bf16 ? "bfloat16" : "float32";
    int qwen2 = cfg->model.attn_bias;
    rt_buf_printf(b, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n", architecture(cfg));
    if (!qwen2) rt_buf_printf(b, "  \"attention_bias\": false,\n");
    rt_buf_printf(b, "  \"attention_dropout\": 0.0,\n");
    key_id(b, "bos_token_id", o->bos_id);
    rt_buf_printf(b, "  \"dtype\": \"%s\",\n", dtype);
    key_id(b, "eos_token_id", o->eos_id);
    key_int(b, "head_dim", rt_config_head_dim(cfg));
    rt_buf_printf(b, "  \"hidden_act\": \"silu\",\n");
    key_int(b, "hidden_size", cfg->model.dim);
    key_float(b, "initializer_range", cfg->model.init_std);
    key_int(b, "intermediate_size", cfg->model.ffn_dim);
    key_int(b, "max_position_embeddings", cfg->model.max_seq_len);
    if (qwen2) key_int(b, "max_window_layers", cfg->model.n_layers);
    if (!qwen2) rt_buf_printf(b, "  \"mlp_bias\": false,\n");
    rt_buf_printf(b, "  \"model_type\": \"%s\",\n", qwen2 ? "qwen2" : "llama");
    key_int(b, "num_attention_heads", cfg->model.n_heads);
    key_int(b, "num_hidden_layers", cfg->model.n_layers);
    key_int(b, "num_key_value_heads", cfg->model.n_kv_heads);
    key_id(b, "pad_token_id", o->pad_id);
    if (!qwen2) rt_buf_printf(b, "  \"pretraining_tp\": 1,\n");
    key_float(b, "rms_norm_eps", cfg->model.norm_eps);
    rope_scaling_json(b, cfg);
    key_float(b, "rope_theta", cfg->model.rope_theta);
    if (qwen2) rt_buf_printf(b, "  \"sliding_window\": null,\n");
    rt_buf_printf(b, "  \"tie_word_embeddings\": %s,\n", cfg->model.tie_embeddings ? "true" : "false");
    rt_buf_printf(b, "  \"torch_dtype\": \"%s\",\n  \"use_cache\": true,\n", dtype);
    if (qwen2) rt_buf_printf(b, "  \"use_sliding_window\": false,\n");
    rt_buf_printf(b, "  \"vocab_size\": %d\n}\n", cfg->model.vocab_size);
}

static void generation_config_json(rt_buf *b, const rt_hf_export_opts *o) {
    rt_buf_printf(b, "{\n");
    const char *keys[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    int ids[3] = {o->bos_id, o->eos_id, o->pad_id}, first = 1;
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0) rt_buf_printf(b, "%s  \"%s\": %d", first ? "" : ",\n", keys[i], ids[i]), first = 0;
    rt_buf_printf(b, "\n}\n");
}

typedef struct job {
    const rt_config *cfg;
    const rt_hf_export_opts *opts;
    const rt_st_out *tensors;
    int n;
    rt_hf_export_report *rep;
} job;

static int write_files(const char *dir, void *user, rt_error *err) {
    const job *j = user;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors", dir) >= sizeof path)
        return rt_fail(err, "%s: path too long", dir);
    if (rt_st_write(path, j->tensors, (size_t)j->n, j->opts->bf16, &j->rep->weights_bytes, err)) return -1;
    rt_buf b = {0};
    config_json(&b, j->cfg, j->opts);
    int rc = rt_export_text_file(dir, "config.json", &b, NULL, err);
    rt_buf_free(&b);
    memset(&b, 0, sizeof b);
    generation_config_json(&b, j->opts);
    if (rc == 0) rc = rt_export_text_file(dir, "generation_config.json", &b, NULL, err);
    rt_buf_free(&b);
    if (rc == 0)
        rc = rt_export_tokenizer_folder_files(dir, j->opts->tok, j->opts->tok_src, j->cfg->model.vocab_size,
                                              j->cfg->model.max_seq_len, NULL, err);
    return rc;
}

// The weights under HF names, each checked against the shape the config gives it; no tensor left over.
static int map_tensors(const rt_named_tensor *w, int n, const rt_hf_tensor *ts, int nt, rt_st_out *out,
                       rt_error *err) {
    for (int i = 0; i < nt; i++) {
        const rt_named_tensor *t = rt_named_tensor_find(w, n, ts[i].rt);
        char want[64], got[64];
        rt_hf_shape_str(ts[i].ndim, ts[i].shape, want, sizeof want);
        if (!t) return rt_fail(err, "the checkpoint has no %s (expected %s)", ts[i].rt, want);
        int same = t->ndim == ts[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == ts[i].shape[d];
        if (!same) {
            rt_hf_shape_str(t->ndim, t->shape, got, sizeof got);
            return rt_fail(err, "the checkpoint's %s has shape %s; its config gives %s", t->name, got, want);
        }
        out[i] = (rt_st_out){ts[i].hf, t->ndim, t->shape, t->data};
    }
    if (n != nt) // names are unique in a checkpoint, so a count mismatch means an unmapped tensor
        for (int i = 0; i < n; i++) {
            int found = 0;
            for (int k = 0; k < nt && !found; k++) found = strcmp(w[i].name, ts[k].rt) == 0;
            if (!found)
                return rt_fail(err,
                               "the checkpoint's %s has no place in a Llama or Qwen2 Hugging Face folder",
                               w[i].name);
        }
    return 0;
}

int rt_hf_export_model(const rt_named_tensor *weights, int n, const rt_config *cfg,
                       const rt_hf_export_opts *opts, const char *out_dir, rt_hf_export_report *rep,
                       rt_error *err) {
    memset(rep, 0, sizeof *rep);
    rep->architecture = architecture(cfg);
    rt_hf_tensor *ts;
    int nt;
    if (rt_hf_tensor_list(cfg, &ts, &nt, err)) return -1;
    rt_st_out *out = rt_calloc((size_t)nt, sizeof *out, "the tensor list", err);
    int rc = out ? map_tensors(weights, n, ts, nt, out, err) : -1;
    if (rc == 0) {
        job j = {cfg, opts, out, nt, rep};
        rt_export_folder f = {"Hugging Face", hf_files, (int)(sizeof hf_files / sizeof *hf_files),
                              write_files, &j};
        rc = rt_export_folder_write(out_dir, &f, err);
    }
    if (rc == 0) rep->n_tensors = nt;
    free(out);
    free(ts);
    return rc;
}
