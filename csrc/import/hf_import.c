// Hugging Face folder -> retort checkpoint (hf_import.h). Everything is checked before any weight is
// converted: the config, then every tensor's presence, shape and type, then that no tensor is left over.
#include "import/hf_import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "export/hf_names.h"
#include "import/safetensors.h"
#include "tokenizer/tokenizer_source.h"
#include "train/checkpoint.h"

int rt_hf_to_config(const rt_hf_config *hf, const char *path, int max_seq_len, int tied, rt_config *cfg,
                    rt_error *err) {
    rt_config_defaults(cfg);
    int T = hf->max_position_embeddings;
    if (max_seq_len > T)
        return rt_fail(err,
                       "--max-seq-len %d exceeds max_position_embeddings %d of %s (it can only shorten the "
                       "context)",
                       max_seq_len, T, path);
    if (max_seq_len > 0) T = max_seq_len;
    if (hf->sliding_window > 0 && T > hf->sliding_window)
        return rt_fail(
            err,
            "%s: sliding_window %d is shorter than the context of %d positions, and retort's attention "
            "has no window: import with --max-seq-len %d or less",
            path, hf->sliding_window, T, hf->sliding_window);
    cfg->model.vocab_size = hf->vocab_size;
    cfg->model.dim = hf->hidden_size;
    cfg->model.n_layers = hf->n_layers;
    cfg->model.n_heads = hf->n_heads;
    cfg->model.n_kv_heads = hf->n_kv_heads;
    cfg->model.ffn_dim = hf->intermediate_size;
    cfg->model.max_seq_len = T;
    cfg->model.rope_theta = hf->rope_theta;
    cfg->model.norm_eps = hf->rms_norm_eps;
    cfg->model.tie_embeddings = tied;
    // the keys model-feat added keep their defaults unless the model needs them
    cfg->model.head_dim = hf->head_dim * hf->n_heads == hf->hidden_size ? 0 : hf->head_dim;
    cfg->model.attn_bias = hf->attn_bias;
    if (hf->rope_type != RT_HF_ROPE_DEFAULT) {
        snprintf(cfg->model.rope_scaling, sizeof cfg->model.rope_scaling, "%s",
                 rt_hf_rope_type_name(hf->rope_type));
        cfg->model.rope_factor = hf->rope_factor;
    }
    if (hf->rope_type == RT_HF_ROPE_LLAMA3) {
        cfg->model.rope_low_freq_factor = hf->rope_low_freq_factor;
        cfg->model.rope_high_freq_factor = hf->rope_high_freq_factor;
        cfg->model.rope_original_max_seq_len = hf->rope_original_max_position_embeddings;
    }
    if (cfg->data.seq_len > T) cfg->data.seq_len = T; // the default training length must fit the context
    if (rt_config_validate(cfg, err))
        return rt_fail_wrap(err, "%s describes a model retort's config cannot hold", path);
    return 0;
}

// The tensor the files hold under hf, checked against the shape the config gives it.
static int find_checked(const rt_st_model *m, const rt_hf_tensor *t, const char *dir,
                        const rt_st_tensor **out, rt_error *err) {
    const rt_st_tensor *st = rt_st_model_find(m, t->hf);
    char want[64], got[128];
    rt_hf_shape_str(t->ndim, t->shape, want, sizeof want);
    if (!st)
        return rt_fail(err, "%s: tensor %s is missing (expected %s, retort's %s)", dir, t->hf, want, t->rt);
    int same = st->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = st->shape[d] == t->shape[d];
    if (!same) {
        rt_hf_shape_str(st->ndim, st->shape, got, sizeof got);
        return rt_fail(err, "%s: tensor %s in %s has shape %s; config.json gives %s", dir, t->hf,
                       st->file->path, got, want);
    }
    if (!rt_st_readable(st)) return rt_st_read_f32(st, NULL, st->count, err); // the refusal names the dtype
    *out = st;
    return 0;
}

static int listed(const rt_hf_tensor *ts, int n, const char *hf) {
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].hf, hf) == 0) return 1;
    return 0;
}

// Every tensor of the files is either one of ts, the unused head of a tied model, or ignorable.
static int check_leftovers(const rt_st_model *m, const rt_hf_tensor *ts, int n, int skip_head,
                           const char *dir, rt_hf_import_report *rep, rt_error *err) {
    for (size_t i = 0; i < m->n_tensors; i++) {
        const char *name = m->tensors[i]->name;
        if (rt_hf_ignorable(name))
            rep->n_ignored++;
        else if (!(skip_head && strcmp(name, RT_HF_LM_HEAD) == 0) && !listed(ts, n, name))
            return rt_fail(
                err,
                "%s: tensor %s (in %s) is not part of a %s with this config.json; refusing to drop "
                "weights",
                dir, name, m->tensors[i]->file->path, rep->hf.architecture);
    }
    return 0;
}

static void count_dtype(const rt_st_tensor *st, rt_hf_import_report *rep) {
    size_t *n = strcmp(st->dtype, "F32") == 0   ? &rep->n_f32
                : strcmp(st->dtype, "F16") == 0 ? &rep->n_f16
                                                : &rep->n_bf16;
    *n += st->count;
}

// The tokenizer the checkpoint stores: the folder's tokenizer.json (tokenizer_config.json naming its special
// tokens), or the byte record when there is none or --no-tokenizer is given. A tokenizer.json retort cannot
// read is refused, not dropped: a model whose checkpoint tokenizes differently from its folder would
// silently train and generate on the wrong ids.
static int read_tokenizer(const char *dir, const rt_config *cfg, const rt_hf_import_opts *opts,
                          rt_tok_source *tok, rt_hf_import_report *rep, rt_error *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        return rt_fail(err, "%s: path too long", dir);
    FILE *f = opts && opts->no_tokenizer ? NULL : fopen(path, "rb");
    if (!f) {
        rep->tokenizer = opts && opts->no_tokenizer ? RT_HF_TOK_SKIPPED : RT_HF_TOK_ABSENT;
        rt_tok_source_byte(tok, cfg->model.vocab_size);
        return 0;
    }
    fclose(f);
    if (rt_tok_source_load(dir, tok, NULL, err)) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return rt_fail(err,
                       "%.900s; retort cannot read this tokenizer (docs/tokenizers.md lists the forms it "
                       "reads): import with --no-tokenizer to store the weights alone and give the model "
                       "token ids",
                       why);
    }
    if (tok->vocab_size > cfg->model.vocab_size) {
        rt_fail(err,
                "%s has %d ids but config.json's vocab_size is %d: the embedding has no row for ids %d and "
                "above (a tokenizer of another model?)",
                path, tok->vocab_size, cfg->model.vocab_size, cfg->model.vocab_size);
        rt_tok_source_free(tok);
        return -1;
    }
    rep->tokenizer = RT_HF_TOK_STORED;
    snprintf(rep->tok_type, sizeof rep->tok_type, "%s", tok->type);
    rep->tok_vocab = tok->vocab_size;
    return 0;
}

static int write_ckpt(const char *out, const rt_config *cfg, rt_named_tensor *ts, int n,
                      const rt_tok_source *tok, rt_error *err) {
    rt_ckpt c;
    memset(&c, 0, sizeof c);
    c.model = ts;
    c.n_model = n;
    c.state.world_size = 1;
    c.config_yaml = rt_config_to_yaml(cfg);
    if (!c.config_yaml) return rt_fail(err, "out of memory writing the config");
    snprintf(c.architecture, sizeof c.architecture, "llama");
    c.tokenizer = *tok; // borrowed: the caller frees it
    int rc = rt_ckpt_write(out, &c, err);
    free(c.config_yaml);
    return rc;
}

int rt_hf_import(const char *dir, const char *out, const rt_hf_import_opts *opts, rt_hf_import_report *rep,
                 rt_error *err) {
    memset(rep, 0, sizeof *rep);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
        return rt_fail(err, "%s: path too long", dir);
    if (rt_hf_config_read(dir, &rep->hf, err)) return -1;
    rt_st_model m;
    if (rt_st_model_open(dir, &m, err)) return -1;
    const rt_hf_config *hf = &rep->hf;
    int has_head = rt_st_model_find(&m, RT_HF_LM_HEAD) != NULL;
    rep->tied = hf->tie_word_embeddings || !has_head;
    rep->head_missing = !hf->tie_word_embeddings && !has_head;
    rep->head_ignored = hf->tie_word_embeddings && has_head;
    rep->window_ignored = hf->sliding_window;
    rt_config cfg;
    rt_hf_tensor *ts = NULL;
    int n = 0, rc = rt_hf_to_config(hf, path, opts ? opts->max_seq_len : 0, rep->tied, &cfg, err);
    if (rc == 0) rc = rt_hf_tensor_list(&cfg, &ts, &n, err);
    const rt_st_tensor **src = rc == 0 ? rt_calloc((size_t)n, sizeof *src, "the tensor list", err) : NULL;
    if (rc == 0 && !src) rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) rc = find_checked(&m, &ts[i], dir, &src[i], err);
    if (rc == 0) rc = check_leftovers(&m, ts, n, rep->head_ignored, dir, rep, err);
    rt_tok_source tok;
    memset(&tok, 0, sizeof tok);
    if (rc == 0) rc = read_tokenizer(dir, &cfg, opts, &tok, rep, err);
    rt_named_tensor *w = rc == 0 ? rt_calloc((size_t)n, sizeof *w, "the weights", err) : NULL;
    if (rc == 0 && !w) rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) { // one conversion per tensor, from the mapping into fp32
        snprintf(w[i].name, sizeof w[i].name, "%s", ts[i].rt);
        w[i].ndim = ts[i].ndim;
        memcpy(w[i].shape, ts[i].shape, sizeof ts[i].shape);
        w[i].data = rt_malloc(src[i]->count * sizeof(float), ts[i].hf, err);
        rc = w[i].data ? rt_st_read_f32(src[i], w[i].data, src[i]->count, err) : -1;
        if (rc == 0) count_dtype(src[i], rep), rep->n_params += src[i]->count;
    }
    if (rc == 0) rc = write_ckpt(out, &cfg, w, n, &tok, err);
    rt_tok_source_free(&tok);
    if (rc == 0) rep->n_tensors = n;
    for (int i = 0; w && i < n; i++) free(w[i].data);
    free(w);
    free(src);
    free(ts);
    rt_st_model_close(&m);
    return rc;
}
