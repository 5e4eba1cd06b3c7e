// A PEFT LoRA adapter as a retort adapter checkpoint (peft_import.h).
#define _XOPEN_SOURCE 700 // realpath
#include "import/peft_import.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/peft_names.h"
#include "import/safetensors.h"
#include "model/lora.h"
#include "train/checkpoint.h"
#include "train/finetune.h"

// What the import holds while it reads: the base, the sites of every adaptable weight, and the factors
// found (lora[2 k] = A of site k, lora[2 k + 1] = B; data NULL until found).
typedef struct importer {
    const char *file; // adapter_model.safetensors, for messages
    const rt_peft_config *pc;
    rt_ckpt base;
    rt_config base_cfg;
    rt_peft_site *sites;
    int n_sites;
    rt_named_tensor *lora; // [2 n_sites]
    rt_error *err;
} importer;

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

// PEFT saves the head's own weight next to its factors when lm_head is a target (save_embedding_layers).
// An adapter checkpoint cannot carry a changed head, so it must be the base's exactly.
static int check_head_weight(importer *im, const rt_st_tensor *t, rt_peft_import_report *rep) {
    const char *name = im->base_cfg.model.tie_embeddings ? "token_embd.weight" : "output.weight";
    const rt_named_tensor *w = rt_named_tensor_find(im->base.model, im->base.n_model, name);
    rt_error *err = im->err;
    if (!w || t->ndim != 2 || t->shape[0] != w->shape[0] || t->shape[1] != w->shape[1])
        return rt_fail(err, "%s: %s does not have the shape of the base's head %s", im->file, t->name, name);
    float *x = rt_malloc(t->count * sizeof *x, t->name, err);
    if (!x || rt_st_read_f32(t, x, t->count, err)) {
        free(x);
        return -1;
    }
    double worst = 0;
    for (size_t i = 0; i < t->count; i++) worst = fmax(worst, fabs((double)x[i] - (double)w->data[i]));
    free(x);
    if (worst != 0)
        return rt_fail(
            err,
            "%s: %s differs from the base's head %s by up to %g: the adapter carries a changed head "
            "(trained or resized), which a retort adapter checkpoint cannot hold; is --base the "
            "model it was trained on?",
            im->file, t->name, name, worst);
    rep->head_layer_ok = 1;
    return 0;
}

// One tensor of the file: a factor placed by its module name with its shape checked, or the head's weight.
static int place(importer *im, const rt_st_tensor *t, rt_peft_import_report *rep) {
    rt_error *err = im->err;
    const size_t np = strlen(RT_PEFT_PREFIX);
    if (strcmp(t->name, RT_PEFT_PREFIX "lm_head.base_layer.weight") == 0)
        return check_head_weight(im, t, rep);
    int b = ends_with(t->name, ".lora_B.weight");
    const size_t ns = strlen(".lora_A.weight");
    if (strlen(t->name) <= np + ns || strncmp(t->name, RT_PEFT_PREFIX, np) != 0 ||
        (!b && !ends_with(t->name, ".lora_A.weight")))
        return rt_fail(
            err,
            "%s: tensor %s is not a LoRA factor (expected " RT_PEFT_PREFIX
            "<module>.lora_A.weight or .lora_B.weight; DoRA magnitudes, embedding adapters, biases "
            "and saved modules are not part of retort's adapters)",
            im->file, t->name);
    size_t mlen = strlen(t->name) - np - ns;
    int k = 0;
    for (; k < im->n_sites; k++)
        if (strlen(im->sites[k].module) == mlen && strncmp(im->sites[k].module, t->name + np, mlen) == 0)
            break;
    if (k == im->n_sites)
        return rt_fail(
            err,
            "%s: tensor %s: %.*s is not a projection of the base (expected model.layers.N. with "
            "N < %d and self_attn.q_proj, k_proj, v_proj, o_proj, mlp.gate_proj, up_proj, down_proj, "
            "or lm_head)",
            im->file, t->name, (int)mlen, t->name + np, im->base_cfg.model.n_layers);
    const rt_peft_site *s = &im->sites[k];
    int64_t r = im->pc->rank, rows = b ? s->out : r, cols = b ? r : s->in;
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char got[96];
        snprintf(got, sizeof got, "%d dims", t->ndim);
        if (t->ndim == 2)
            snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
        return rt_fail(err,
                       "%s: tensor %s has shape %s; r %lld and the base's %s [%lld, %lld] give [%lld, %lld]",
                       im->file, t->name, got, (long long)r, s->weight, (long long)s->out, (long long)s->in,
                       (long long)rows, (long long)cols);
    }
    rt_named_tensor *dst = &im->lora[2 * k + b];
    if (dst->data) return rt_fail(err, "%s: tensor %s appears twice", im->file, t->name);
    rt_peft_rt_key(s, b, dst->name, sizeof dst->name);
    dst->ndim = 2;
    dst->shape[0] = rows;
    dst->shape[1] = cols;
    dst->data = rt_malloc(t->count * sizeof(float), t->name, err);
    if (!dst->data) return -1;
    return rt_st_read_f32(t, dst->data, t->count, err);
}

// The sites found form whole projections (every layer, both factors) and agree with target_modules.
static int check_coverage(importer *im, rt_peft_import_report *rep) {
    unsigned found = 0, partial = 0;
    int count[RT_N_SITES] = {0};
    for (int k = 0; k < im->n_sites; k++) {
        int a = im->lora[2 * k].data != NULL, b = im->lora[2 * k + 1].data != NULL;
        if (a != b)
            return rt_fail(im->err, "%s: %s has lora_%c but no lora_%c", im->file, im->sites[k].module,
                           a ? 'A' : 'B', a ? 'B' : 'A');
        if (a) found |= 1u << im->sites[k].site, count[im->sites[k].site]++;
    }
    int L = im->base_cfg.model.n_layers;
    for (int s = 0; s < RT_N_BLOCK_SITES; s++)
        if ((found & (1u << s)) && count[s] != L) partial |= 1u << s;
    for (int s = 0; s < RT_N_BLOCK_SITES; s++)
        if (partial & (1u << s))
            return rt_fail(im->err,
                           "%s: %s has adapters in %d of the base's %d layers%s; retort adapts a projection "
                           "in every layer",
                           im->file, rt_peft_module_of_site((rt_lora_site)s), count[s], L,
                           im->pc->layer_subset ? " (layers_to_transform)" : "");
    if (!found) return rt_fail(im->err, "%s holds no LoRA factors", im->file);
    const rt_peft_config *pc = im->pc;
    for (int s = 0; s < RT_N_SITES && !pc->pattern; s++) {
        unsigned bit = 1u << s;
        if ((pc->targets & bit) && !(found & bit))
            return rt_fail(im->err,
                           "adapter_config.json: target_modules names %s, but %s has no factors for it",
                           rt_peft_module_of_site((rt_lora_site)s), im->file);
        if (!(pc->targets & bit) && (found & bit))
            return rt_fail(im->err,
                           "%s has factors for %s, which adapter_config.json's target_modules does not name",
                           im->file, rt_peft_module_of_site((rt_lora_site)s));
    }
    rep->targets = found;
    return 0;
}

// The factors of the sites found, in site order (the order retort's model defines them).
static int write_ckpt(importer *im, const char *out, rt_peft_import_report *rep) {
    rt_error *err = im->err;
    rt_config cfg = im->base_cfg;
    snprintf(cfg.finetune.method, sizeof cfg.finetune.method, "lora");
    snprintf(cfg.finetune.base, sizeof cfg.finetune.base, "%s", rep->base);
    cfg.lora.rank = im->pc->rank;
    cfg.lora.alpha = im->pc->alpha;
    cfg.lora.dropout = im->pc->dropout;
    cfg.lora.rslora = im->pc->rslora;
    rt_lora_targets_text(rep->targets, cfg.lora.targets, sizeof cfg.lora.targets);
    rt_ckpt c;
    memset(&c, 0, sizeof c);
    c.config_yaml = rt_config_to_yaml(&cfg);
    if (!c.config_yaml) return rt_fail(err, "out of memory writing the config");
    rt_config check; // the values PEFT allows and retort's config does not (lora.dropout <= 0.9, ...)
    int rc = rt_ckpt_parse_config("adapter_config.json", c.config_yaml, &check, err);
    rt_named_tensor *ts =
        rc == 0 ? rt_calloc(2 * (size_t)im->n_sites, sizeof *ts, "the adapters", err) : NULL;
    int n = 0;
    for (int k = 0; ts && k < 2 * im->n_sites; k++)
        if (im->lora[k].data) ts[n++] = im->lora[k];
    if (rc == 0 && !ts) rc = -1;
    if (rc == 0) {
        c.lora = ts;
        c.n_lora = n;
        snprintf(c.base, sizeof c.base, "%s", rep->base);
        snprintf(c.base_hash, sizeof c.base_hash, "%s", rep->base_hash);
        c.state.world_size = 1;
        snprintf(c.architecture, sizeof c.architecture, "%s", im->base.architecture);
        c.tokenizer = im->base.tokenizer;
        rc = rt_ckpt_write(out, &c, err);
    }
    if (rc == 0) rep->n_tensors = n;
    free(ts);
    free(c.config_yaml);
    return rc;
}

int rt_peft_import(const char *dir, const char *base_path, const char *out, rt_peft_import_report *rep,
                   rt_error *err) {
    memset(rep, 0, sizeof *rep);
    if (rt_peft_config_read(dir, &rep->peft, err)) return -1;
    char file[4096];
    struct stat st;
    if ((size_t)snprintf(file, sizeof file, "%s/adapter_model.safetensors", dir) >= sizeof file)
        return rt_fail(err, "%s: path too long", dir);
    if (stat(file, &st) != 0) {
        int missing = errno; // the probe for adapter_model.bin below overwrites errno
        char bin[4096];
        snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
        if (stat(bin, &st) == 0)
            return rt_fail(
                err,
                "%s holds adapter_model.bin (a pickle), which retort does not read: save the adapter "
                "with save_pretrained(..., safe_serialization=True) for adapter_model.safetensors",
                dir);
        return rt_fail(err, "%s: %s", file, strerror(missing));
    }
    char *abs = realpath(base_path, NULL);
    if (!abs) return rt_fail(err, "--base %s: %s", base_path, strerror(errno));
    int fits = strlen(abs) < sizeof rep->base && strlen(abs) < RT_CKPT_PATH_MAX;
    snprintf(rep->base, sizeof rep->base, "%s", abs);
    free(abs);
    if (!fits) return rt_fail(err, "--base %s: the resolved path is too long", base_path);
    importer im;
    memset(&im, 0, sizeof im);
    im.file = file;
    im.pc = &rep->peft;
    im.err = err;
    if (rt_finetune_read_base(rep->base, NULL, "--base", &im.base, &im.base_cfg, rep->base_hash, err))
        return -1;
    rep->n_layers = im.base_cfg.model.n_layers;
    rt_st_file f;
    int rc = rt_st_open(file, &f, err);
    int opened = rc == 0;
    if (rc == 0) rc = rt_peft_site_list(&im.base_cfg, (1u << RT_N_SITES) - 1u, &im.sites, &im.n_sites, err);
    if (rc == 0) {
        im.lora = rt_calloc(2 * (size_t)im.n_sites, sizeof *im.lora, "the adapters", err);
        if (!im.lora) rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < f.n_tensors; i++) rc = place(&im, &f.tensors[i], rep);
    if (rc == 0) rc = check_coverage(&im, rep);
    if (rc == 0) rc = write_ckpt(&im, out, rep);
    for (int k = 0; im.lora && k < 2 * im.n_sites; k++) free(im.lora[k].data);
    free(im.lora);
    free(im.sites);
    if (opened) rt_st_close(&f);
    rt_ckpt_free(&im.base);
    return rc;
}
