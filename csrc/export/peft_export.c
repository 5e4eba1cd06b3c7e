// The PEFT adapter folder export (peft_export.h).
#include "export/peft_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "export/export_folder.h"
#include "export/peft_names.h"
#include "export/safetensors_write.h"
#include "export/peft_config.h"
#include "model/lora.h"

static const char *const peft_files[] = {"adapter_config.json", "adapter_model.safetensors"};

typedef struct job {
    const rt_peft_config *pc;
    const rt_st_out *tensors;
    int n, bf16;
    size_t *bytes;
} job;

static int write_files(const char *dir, void *user, rt_error *err) {
    const job *j = user;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir) >= sizeof path)
        return rt_fail(err, "%s: path too long", dir);
    if (rt_st_write(path, j->tensors, (size_t)j->n, j->bf16, j->bytes, err)) return -1;
    rt_buf b = {0};
    rt_peft_config_json(&b, j->pc);
    int rc = rt_export_text_file(dir, "adapter_config.json", &b, NULL, err);
    rt_buf_free(&b);
    return rc;
}

// One factor of a site under PEFT's name, checked against the shape the base's config gives it.
static int map_factor(const rt_ckpt *ad, const rt_peft_site *s, int b, int rank, char *name, size_t cap,
                      rt_st_out *out, rt_error *err) {
    char rt[RT_TENSOR_NAME_MAX + 8];
    rt_peft_rt_key(s, b, rt, sizeof rt);
    const rt_named_tensor *t = rt_named_tensor_find(ad->lora, ad->n_lora, rt);
    if (!t) return rt_fail(err, "the adapter checkpoint has no %s (lora.targets names its projection)", rt);
    int64_t rows = b ? s->out : rank, cols = b ? rank : s->in;
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return rt_fail(err,
                       "the adapter checkpoint's %s has %d dims [%lld, ...]; lora.rank %d and the model give "
                       "[%lld, %lld]",
                       rt, t->ndim, (long long)t->shape[0], rank, (long long)rows, (long long)cols);
    rt_peft_key(s, b, name, cap);
    *out = (rt_st_out){name, 2, t->shape, t->data};
    return 0;
}

int rt_peft_export(const rt_ckpt *ad, const rt_config *cfg, const rt_peft_export_opts *opts,
                   const char *out_dir, rt_peft_export_report *rep, rt_error *err) {
    memset(rep, 0, sizeof *rep);
    rt_lora_spec spec;
    if (ad->n_lora == 0)
        return rt_fail(err, "--format peft needs an adapter checkpoint (LoRA or QLoRA); this one holds full "
                            "weights (export it with --format hf)");
    if (rt_lora_spec_from_config(cfg, &spec, err)) return -1;
    if (spec.rank <= 0)
        return rt_fail(err, "finetune.method %s has no adapters to export", cfg->finetune.method);
    rt_peft_config pc;
    memset(&pc, 0, sizeof pc);
    pc.rank = cfg->lora.rank;
    pc.alpha = cfg->lora.alpha;
    pc.dropout = cfg->lora.dropout;
    pc.rslora = cfg->lora.rslora;
    pc.targets = spec.targets;
    snprintf(pc.base_model, sizeof pc.base_model, "%s", opts->base_name ? opts->base_name : ad->base);
    rt_peft_site *sites;
    int ns;
    if (rt_peft_site_list(cfg, spec.targets, &sites, &ns, err)) return -1;
    size_t nt = 2 * (size_t)ns;
    rt_st_out *out = rt_calloc(nt, sizeof *out, "the tensor list", err);
    char(*names)[256] = rt_calloc(nt, sizeof *names, "the tensor names", err);
    int rc = out && names ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nt; i++)
        rc = map_factor(ad, &sites[i / 2], (int)(i % 2), pc.rank, names[i], sizeof names[i], &out[i], err);
    if (rc == 0 && nt != (size_t)ad->n_lora) // names are unique, so a count mismatch means a stray tensor
        for (int i = 0; rc == 0 && i < ad->n_lora; i++) {
            int found = 0;
            char rt[RT_TENSOR_NAME_MAX + 8];
            for (size_t k = 0; k < nt && !found; k++) {
                rt_peft_rt_key(&sites[k / 2], (int)(k % 2), rt, sizeof rt);
                found = strcmp(rt, ad->lora[i].name) == 0;
            }
            if (!found)
                rc = rt_fail(err, "the adapter checkpoint's %s is not on a projection lora.targets names",
                             ad->lora[i].name);
        }
    if (rc == 0) {
        job j = {&pc, out, (int)nt, opts->bf16, &rep->bytes};
        rt_export_folder f = {"PEFT", peft_files, (int)(sizeof peft_files / sizeof *peft_files), write_files,
                              &j};
        rc = rt_export_folder_write(out_dir, &f, err);
    }
    if (rc == 0) {
        rep->n_tensors = (int)nt;
        rep->tied_head = cfg->model.tie_embeddings && (spec.targets & (1u << RT_SITE_HEAD));
        rep->nf4 = spec.nf4_sites != 0;
    }
    free(names);
    free(out);
    free(sites);
    return rc;
}
