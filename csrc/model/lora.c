// LoRA / QLoRA configuration: targets, scale, NF4 layers (lora.h).
#include "model/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

static const char *const site_names[RT_N_SITES] = {"q", "k", "v", "o", "gate", "up", "down", "head"};

const char *rt_lora_site_name(rt_lora_site s) {
    return s >= 0 && s < RT_N_SITES ? site_names[s] : "?";
}

static const char *const site_suffix[RT_N_SITES] = {"attn_q.weight",      "attn_k.weight",   "attn_v.weight",
                                                    "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                                    "ffn_down.weight",    "output.weight"};

int rt_lora_site_of(const char *name, int *layer) {
    if (layer) *layer = -1;
    if (strcmp(name, "output.weight") == 0) return RT_SITE_HEAD;
    if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9') return -1;
    char *end;
    long l = strtol(name + 4, &end, 10);
    if (*end != '.' || l > 1000000) return -1;
    for (int s = 0; s < RT_N_BLOCK_SITES; s++)
        if (strcmp(end + 1, site_suffix[s]) == 0) {
            if (layer) *layer = (int)l;
            return s;
        }
    return -1;
}

int rt_lora_parse_targets(const char *text, unsigned *mask, rt_error *err) {
    *mask = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t n = strcspn(p, ", ");
        int found = 0;
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= (1u << RT_N_SITES) - 1u;
            found = 1;
        }
        for (int s = 0; s < RT_N_SITES && !found; s++)
            if (strlen(site_names[s]) == n && strncmp(p, site_names[s], n) == 0) {
                *mask |= 1u << s;
                found = 1;
            }
        if (!found)
            return rt_fail(
                err,
                "lora.targets: '%.*s' is not a projection (expected a comma-separated list of q, k, "
                "v, o, gate, up, down, head, or all)",
                (int)(n > 40 ? 40 : n), p);
        p += n;
    }
    if (*mask == 0) return rt_fail(err, "lora.targets is empty: name at least one projection (e.g. q,v)");
    return 0;
}

void rt_lora_targets_text(unsigned mask, char *out, size_t cap) {
    size_t at = 0;
    out[0] = '\0';
    for (int s = 0; s < RT_N_SITES; s++)
        if (mask & (1u << s)) {
            int n = snprintf(out + at, cap - at, "%s%s", at ? "," : "", site_names[s]);
            if (n < 0 || (size_t)n >= cap - at) return; // cap holds every site: RT_LORA_TARGETS_MAX
            at += (size_t)n;
        }
}

int rt_lora_spec_from_config(const rt_config *cfg, rt_lora_spec *spec, rt_error *err) {
    memset(spec, 0, sizeof *spec);
    if (strcmp(cfg->finetune.method, "full") == 0) return 0;
    if (rt_lora_parse_targets(cfg->lora.targets, &spec->targets, err)) return -1;
    spec->rank = cfg->lora.rank;
    double r = (double)cfg->lora.rank;
    spec->scale = (float)(cfg->lora.alpha / (cfg->lora.rslora ? sqrt(r) : r));
    spec->dropout = (float)cfg->lora.dropout;
    spec->freeze_base = 1;
    if (strcmp(cfg->finetune.method, "qlora") == 0) {
        unsigned block = (1u << RT_N_BLOCK_SITES) - 1u;
        spec->nf4_sites = strcmp(cfg->qlora.layers, "all") == 0 ? block : spec->targets & block;
        spec->double_quant = cfg->qlora.double_quant;
    }
    return 0;
}

uint64_t rt_lora_dropout_seed(uint64_t run_seed, int64_t step, int micro, int layer, int site) {
    uint64_t s = rt_seed_mix(run_seed, 0x6c6f7261ULL); // "lora"
    s = rt_seed_mix(s, (uint64_t)step);
    s = rt_seed_mix(s, (uint64_t)(uint32_t)micro);
    s = rt_seed_mix(s, (uint64_t)(uint32_t)(layer + 1));
    return rt_seed_mix(s, (uint64_t)(uint32_t)site);
}
