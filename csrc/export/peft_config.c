// adapter_config.json of a PEFT LoRA adapter (peft_config.h).
#include "export/peft_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "base/json_fields.h"

static const char *const modules[RT_N_SITES] = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                                "gate_proj", "up_proj", "down_proj", "lm_head"};
#define MODULE_LIST "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or lm_head"

const char *rt_peft_module_of_site(rt_lora_site s) {
    return s >= 0 && s < RT_N_SITES ? modules[s] : "?";
}

// Keys whose every value but PEFT's default (absent, null, false, [] or {}) changes what the adapter
// computes or holds, with what retort's adapters are instead.
static const struct {
    const char *key, *expected;
} defaults_only[] = {
    {"use_dora", "false (DoRA's magnitude vectors are not part of retort's adapters)"},
    {"fan_in_fan_out", "false (retort's weights are [out, in], as torch.nn.Linear stores them)"},
    {"lora_bias", "false (retort's adapters train no bias)"},
    {"modules_to_save", "none (retort's adapters hold only lora_A and lora_B, no trained copies of modules)"},
    {"layer_replication", "none (retort's model has no replicated layers)"},
    {"target_parameters", "none (retort adapts modules, not bare parameters)"},
    {"trainable_token_indices", "none (retort does not train embedding rows)"},
    {"use_qalora", "false (QA-LoRA pools the adapter's input; retort's adapters do not)"},
    {"alora_invocation_tokens",
     "none (activated LoRA switches on mid-sequence; retort's adapters are always on)"},
    {"megatron_config", "none (Megatron's parallel layers)"},
};

static int is_default(const rt_json *v) {
    if (!v) return 1;
    if (v->type == RT_JSON_BOOL) return !v->boolean;
    return (v->type == RT_JSON_ARRAY || v->type == RT_JSON_OBJECT) && v->n == 0;
}

// rank_pattern / alpha_pattern: per-module values, accepted only when each equals the shared one.
static int check_pattern(rt_json_reader *r, const rt_json *root, const char *key, double shared,
                         const char *shared_key) {
    const rt_json *p = rt_jf_get(root, key);
    if (!p) return 0;
    if (p->type != RT_JSON_OBJECT) return rt_jf_bad(r, "", key, p, "an object");
    for (size_t i = 0; i < p->n; i++) {
        const rt_json *v = &p->items[i];
        double x = v->type == RT_JSON_NUMBER ? strtod(v->str, NULL) : NAN;
        if (x != shared)
            return rt_fail(r->err,
                           "%s: %s: \"%.80s\" has %.40s, but %s is %g: retort's adapters share one rank and "
                           "one alpha",
                           r->path, key, p->keys[i], v->type == RT_JSON_NUMBER ? v->str : "a non-number",
                           shared_key, shared);
    }
    return 0;
}

// The site a target_modules entry names: its last dotted part (PEFT matches an entry against the end of a
// module's name), or -1.
static int site_of_module(const char *name) {
    const char *leaf = strrchr(name, '.');
    leaf = leaf ? leaf + 1 : name;
    for (int s = 0; s < RT_N_SITES; s++)
        if (strcmp(leaf, modules[s]) == 0) return s;
    return -1;
}

static int read_targets(rt_json_reader *r, const rt_json *root, rt_peft_config *c) {
    const rt_json *t = rt_jf_get(root, "target_modules");
    c->targets = 0;
    if (!t) { // PEFT resolves null to its per-architecture default before saving; the tensors tell
        c->pattern = 1;
        return 0;
    }
    if (t->type == RT_JSON_STRING) {
        if (strcmp(t->str, "all-linear") == 0) // every linear layer but the output head
            c->targets = (1u << RT_N_BLOCK_SITES) - 1u;
        else
            c->pattern = 1; // a regular expression over module names
        return 0;
    }
    if (t->type != RT_JSON_ARRAY || t->n == 0)
        return rt_jf_bad(r, "", "target_modules", t, "a list of module names, or a string");
    for (size_t i = 0; i < t->n; i++) {
        const rt_json *v = &t->items[i];
        if (v->type != RT_JSON_STRING || strlen(v->str) != v->len)
            return rt_jf_bad(r, "target_modules", "[]", v, "module names");
        int s = site_of_module(v->str);
        if (s < 0)
            return rt_fail(
                r->err,
                "%s: target_modules: \"%.80s\" is not a module retort adapts (expected " MODULE_LIST ")",
                r->path, v->str);
        c->targets |= 1u << s;
    }
    return 0;
}

int rt_peft_config_parse(const char *text, size_t len, const char *path, rt_peft_config *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    rt_json root;
    char msg[256];
    if (rt_json_parse(text, len, &root, msg, sizeof msg))
        return rt_fail(err, "%s: not valid JSON: %s", path, msg);
    rt_json_reader r = {path, err};
    int rc = 0;
    const char *type = NULL, *task = NULL, *bias = NULL;
    if (root.type != RT_JSON_OBJECT) rc = rt_fail(err, "%s: expected a JSON object", path);
    if (rc == 0) rc = rt_jf_str(&r, &root, "", "peft_type", &type);
    if (rc == 0 && (!type || strcmp(type, "LORA") != 0))
        rc = rt_jf_bad(&r, "", "peft_type", rt_jf_get(&root, "peft_type"),
                       "\"LORA\" (retort's adapters are LoRA)");
    if (rc == 0) rc = rt_jf_str(&r, &root, "", "task_type", &task);
    if (rc == 0 && task && strcmp(task, "CAUSAL_LM") != 0)
        rc = rt_jf_bad(&r, "", "task_type", rt_jf_get(&root, "task_type"), "\"CAUSAL_LM\" or none");
    for (size_t i = 0; rc == 0 && i < sizeof defaults_only / sizeof *defaults_only; i++) {
        const rt_json *v = rt_jf_get(&root, defaults_only[i].key);
        if (!is_default(v)) rc = rt_jf_bad(&r, "", defaults_only[i].key, v, defaults_only[i].expected);
    }
    if (rc == 0) rc = rt_jf_str(&r, &root, "", "bias", &bias);
    if (rc == 0 && bias && strcmp(bias, "none") != 0)
        rc =
            rt_jf_bad(&r, "", "bias", rt_jf_get(&root, "bias"), "\"none\" (retort's adapters train no bias)");
    if (rc == 0) rc = rt_jf_int(&r, &root, "", "r", 8, 1, 1 << 20, &out->rank);
    if (rc == 0) rc = rt_jf_num(&r, &root, "", "lora_alpha", 8.0, 0.0, 0, &out->alpha);
    if (rc == 0) rc = rt_jf_num(&r, &root, "", "lora_dropout", 0.0, 0.0, 1, &out->dropout);
    if (rc == 0 && out->dropout >= 1.0)
        rc = rt_jf_bad(&r, "", "lora_dropout", rt_jf_get(&root, "lora_dropout"), "a probability below 1");
    if (rc == 0) rc = rt_jf_bool(&r, &root, "use_rslora", 0, &out->rslora);
    if (rc == 0) rc = check_pattern(&r, &root, "rank_pattern", out->rank, "r");
    if (rc == 0) rc = check_pattern(&r, &root, "alpha_pattern", out->alpha, "lora_alpha");
    if (rc == 0) rc = read_targets(&r, &root, out);
    if (rc == 0) out->layer_subset = rt_jf_get(&root, "layers_to_transform") != NULL;
    rt_json_free(&root);
    return rc;
}

int rt_peft_config_read(const char *dir, rt_peft_config *out, rt_error *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/adapter_config.json", dir) >= sizeof path)
        return rt_fail(err, "%s: path too long", dir);
    char *text;
    size_t len;
    if (rt_read_file(path, &text, &len, err))
        return rt_fail_wrap(err, "a PEFT adapter folder needs adapter_config.json");
    int rc = rt_peft_config_parse(text, len, path, out, err);
    free(text);
    return rc;
}

void rt_peft_config_json(rt_buf *b, const rt_peft_config *c) {
    rt_buf_printf(b, "{\n  \"alpha_pattern\": {},\n  \"base_model_name_or_path\": ");
    rt_buf_json_string(b, c->base_model);
    rt_buf_printf(b, ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n"
                     "  \"init_lora_weights\": true,\n  \"layers_pattern\": null,\n"
                     "  \"layers_to_transform\": null,\n  \"lora_alpha\": ");
    if (c->alpha == floor(c->alpha) && fabs(c->alpha) < 1e15) // PEFT's lora_alpha is an int in most configs
        rt_buf_printf(b, "%.0f", c->alpha);
    else
        rt_buf_py_float(b, c->alpha);
    rt_buf_printf(b, ",\n  \"lora_dropout\": ");
    rt_buf_py_float(b, c->dropout);
    rt_buf_printf(b,
                  ",\n  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n  \"r\": %d,\n"
                  "  \"rank_pattern\": {},\n  \"revision\": null,\n  \"target_modules\": [",
                  c->rank);
    int first = 1;
    for (int s = 0; s < RT_N_SITES; s++)
        if (c->targets & (1u << s)) {
            rt_buf_printf(b, "%s\n    \"%s\"", first ? "" : ",", modules[s]);
            first = 0;
        }
    rt_buf_printf(
        b, "\n  ],\n  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": %s\n}\n",
        c->rslora ? "true" : "false");
}
