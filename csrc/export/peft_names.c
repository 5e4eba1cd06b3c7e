// PEFT adapter tensor names (peft_names.h).
#include "export/peft_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/hf_names.h"

int rt_peft_site_list(const rt_config *cfg, unsigned targets, rt_peft_site **out, int *n, rt_error *err) {
    *out = NULL;
    *n = 0;
    rt_hf_tensor *ts;
    int nt;
    if (rt_hf_tensor_list(cfg, &ts, &nt, err)) return -1;
    rt_peft_site *sites = rt_calloc((size_t)nt + 1, sizeof *sites, "the adapter sites", err);
    if (!sites) {
        free(ts);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < nt; i++) {
        int layer, s = rt_lora_site_of(ts[i].rt, &layer);
        if (s < 0 || s == RT_SITE_HEAD || !(targets & (1u << s))) continue;
        size_t len = strlen(ts[i].hf) - strlen(".weight"); // every adaptable HF name ends in .weight
        snprintf(sites[k].module, sizeof sites[k].module, "%.*s", (int)len, ts[i].hf);
        snprintf(sites[k].weight, sizeof sites[k].weight, "%s", ts[i].rt);
        sites[k].site = (rt_lora_site)s;
        sites[k].layer = layer;
        sites[k].out = ts[i].shape[0];
        sites[k].in = ts[i].shape[1];
        k++;
    }
    if (targets & (1u << RT_SITE_HEAD)) { // a tied head is the embedding, which names its adapters
        snprintf(sites[k].module, sizeof sites[k].module, "lm_head");
        snprintf(sites[k].weight, sizeof sites[k].weight, "%s",
                 cfg->model.tie_embeddings ? "token_embd.weight" : "output.weight");
        sites[k].site = RT_SITE_HEAD;
        sites[k].layer = -1;
        sites[k].out = cfg->model.vocab_size;
        sites[k].in = cfg->model.dim;
        k++;
    }
    free(ts);
    *out = sites;
    *n = k;
    return 0;
}

void rt_peft_key(const rt_peft_site *s, int b, char *out, size_t cap) {
    snprintf(out, cap, RT_PEFT_PREFIX "%s.lora_%c.weight", s->module, b ? 'B' : 'A');
}

void rt_peft_rt_key(const rt_peft_site *s, int b, char *out, size_t cap) {
    snprintf(out, cap, "%s.lora_%c", s->weight, b ? 'b' : 'a');
}
