// config.json of a Hugging Face Llama-family model (hf_config.h). transformers 5 writes the RoPE settings
// as rope_parameters {rope_theta, rope_type, ...} and the weight type as dtype; 4.x files carry a top-level
// rope_theta, rope_scaling {rope_type or type, ...} and torch_dtype. Both are read; a key absent or null
// takes transformers' default for the architecture.
#include "import/hf_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "base/json.h"
#include "base/json_fields.h"

#define MAX_DIM (1 << 30) // any larger count overflows the products retort forms from it

// bos_token_id / eos_token_id: an id, a list of ids (the first is kept), or null.
static int get_token(rt_json_reader *r, const rt_json *root, const char *key, int *out) {
    const rt_json *v = rt_jf_get(root, key);
    *out = -1;
    if (!v) return 0;
    if (v->type == RT_JSON_ARRAY)
        return v->n ? rt_jf_int_value(r, &v->items[0], "", key, 0, MAX_DIM, out) : 0;
    return rt_jf_int_value(r, v, "", key, 0, MAX_DIM, out);
}

static const struct {
    const char *name;
    rt_hf_arch arch;
    int max_pos; // transformers' default max_position_embeddings
} archs[] = {{"LlamaForCausalLM", RT_HF_LLAMA, 2048},
             {"MistralForCausalLM", RT_HF_MISTRAL, 4096 * 32},
             {"Qwen2ForCausalLM", RT_HF_QWEN2, 32768}};

static int read_arch(rt_json_reader *r, const rt_json *root, rt_hf_config *c) {
    const rt_json *a = rt_jf_get(root, "architectures");
    const char *expected = "a list naming LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM";
    if (!a || a->type != RT_JSON_ARRAY || a->n == 0 || a->items[0].type != RT_JSON_STRING)
        return rt_jf_bad(r, "", "architectures", a, expected);
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (strcmp(a->items[0].str, archs[i].name) == 0 && strlen(a->items[0].str) == a->items[0].len) {
            c->arch = archs[i].arch;
            snprintf(c->architecture, sizeof c->architecture, "%s", archs[i].name);
            return 0;
        }
    return rt_fail(r->err, "%s: architectures: \"%.60s\" is not a model retort imports (expected %s)",
                   r->path, a->items[0].str, "LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM");
}

static int read_dims(rt_json_reader *r, const rt_json *root, rt_hf_config *c) {
    int max_pos = 2048;
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (archs[i].arch == c->arch) max_pos = archs[i].max_pos;
    if (rt_jf_int(r, root, "", "vocab_size", 0, 1, MAX_DIM, &c->vocab_size) ||
        rt_jf_int(r, root, "", "hidden_size", 0, 1, MAX_DIM, &c->hidden_size) ||
        rt_jf_int(r, root, "", "intermediate_size", 0, 1, MAX_DIM, &c->intermediate_size) ||
        rt_jf_int(r, root, "", "num_hidden_layers", 0, 1, 100000, &c->n_layers) ||
        rt_jf_int(r, root, "", "num_attention_heads", 0, 1, MAX_DIM, &c->n_heads) ||
        rt_jf_int(r, root, "", "num_key_value_heads", c->n_heads, 1, MAX_DIM, &c->n_kv_heads) ||
        rt_jf_int(r, root, "", "max_position_embeddings", max_pos, 1, MAX_DIM, &c->max_position_embeddings))
        return -1;
    if (c->n_heads % c->n_kv_heads != 0)
        return rt_fail(r->err, "%s: num_key_value_heads %d: expected a divisor of num_attention_heads %d",
                       r->path, c->n_kv_heads, c->n_heads);
    if (rt_jf_int(r, root, "", "head_dim", c->hidden_size / c->n_heads, 1, MAX_DIM, &c->head_dim)) return -1;
    if (c->head_dim % 2 != 0 || (int64_t)c->head_dim * c->n_heads > MAX_DIM)
        return rt_fail(r->err, "%s: head_dim %d: expected an even number (RoPE rotates pairs)%s", r->path,
                       c->head_dim, c->head_dim % 2 ? "" : " whose product with num_attention_heads fits");
    return rt_jf_num(r, root, "", "rms_norm_eps", 1e-6, 0, 0, &c->rms_norm_eps);
}

// The RoPE base and scaling: rope_parameters (5.x) or rope_theta + rope_scaling (4.x).
static int read_rope(rt_json_reader *r, const rt_json *root, rt_hf_config *c) {
    const rt_json *params = rt_jf_get(root, "rope_parameters"), *scaling = rt_jf_get(root, "rope_scaling");
    if (params && params->type != RT_JSON_OBJECT)
        return rt_jf_bad(r, "", "rope_parameters", params, "an object");
    if (scaling && scaling->type != RT_JSON_OBJECT)
        return rt_jf_bad(r, "", "rope_scaling", scaling, "an object");
    const char *what = scaling ? "rope_scaling." : "rope_parameters.";
    const rt_json *src = scaling ? scaling : params;
    if (rt_jf_get(root, "rope_theta")) {
        if (rt_jf_num(r, root, "", "rope_theta", NAN, 0, 0, &c->rope_theta)) return -1;
    } else if (params) {
        if (rt_jf_num(r, params, "rope_parameters.", "rope_theta", 10000.0, 0, 0, &c->rope_theta)) return -1;
    } else {
        c->rope_theta = 10000.0;
    }
    c->rope_type = RT_HF_ROPE_DEFAULT;
    if (!src) return 0;
    const char *type, *key = "rope_type";
    if (rt_jf_str(r, src, what, "rope_type", &type)) return -1;
    if (!type) {
        key = "type"; // the name before transformers 4.43
        if (rt_jf_str(r, src, what, "type", &type)) return -1;
    }
    double partial = 1;
    if (rt_jf_num(r, src, what, "partial_rotary_factor", 1.0, 0, 0, &partial)) return -1;
    if (partial != 1.0)
        return rt_fail(r->err, "%s: %spartial_rotary_factor %g: expected 1 (RoPE on every dim of a head)",
                       r->path, what, partial);
    if (!type || strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "linear") == 0) {
        c->rope_type = RT_HF_ROPE_LINEAR;
        return rt_jf_num(r, src, what, "factor", NAN, 1, 1, &c->rope_factor);
    }
    if (strcmp(type, "llama3") == 0) {
        c->rope_type = RT_HF_ROPE_LLAMA3;
        if (rt_jf_num(r, src, what, "factor", NAN, 1, 1, &c->rope_factor) ||
            rt_jf_num(r, src, what, "low_freq_factor", NAN, 0, 0, &c->rope_low_freq_factor) ||
            rt_jf_num(r, src, what, "high_freq_factor", NAN, 0, 0, &c->rope_high_freq_factor) ||
            rt_jf_int(r, src, what, "original_max_position_embeddings", 0, 1, MAX_DIM,
                      &c->rope_original_max_position_embeddings))
            return -1;
        if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
            return rt_fail(r->err, "%s: %shigh_freq_factor %g: expected more than low_freq_factor %g",
                           r->path, what, c->rope_high_freq_factor, c->rope_low_freq_factor);
        return 0;
    }
    return rt_fail(r->err,
                   "%s: %s%s \"%.40s\": expected default, linear or llama3 (retort's RoPE does not implement "
                   "%.40s scaling)",
                   r->path, what, key, type, type);
}

// What retort's blocks do not compute: another activation, MLP biases, Llama's o_proj bias.
static int read_block_kind(rt_json_reader *r, const rt_json *root, rt_hf_config *c) {
    const char *act;
    if (rt_jf_str(r, root, "", "hidden_act", &act)) return -1;
    if (act && strcmp(act, "silu") != 0)
        return rt_fail(r->err, "%s: hidden_act \"%.40s\": expected \"silu\" (retort's MLP is SwiGLU)",
                       r->path, act);
    int mlp_bias, attention_bias;
    if (rt_jf_bool(r, root, "mlp_bias", 0, &mlp_bias) ||
        rt_jf_bool(r, root, "attention_bias", 0, &attention_bias))
        return -1;
    if (mlp_bias)
        return rt_fail(r->err, "%s: mlp_bias true: expected false (retort's MLP projections have no biases)",
                       r->path);
    if (attention_bias && c->arch == RT_HF_LLAMA)
        return rt_fail(r->err,
                       "%s: attention_bias true: expected false (Llama's attention biases include o_proj's, "
                       "which retort's model does not have)",
                       r->path);
    c->attn_bias = c->arch == RT_HF_QWEN2; // Qwen2's q/k/v always carry biases
    if (rt_jf_get(root, "quantization_config"))
        return rt_fail(
            r->err,
            "%s: quantization_config: expected none (quantized checkpoints are not imported; use the "
            "F32, F16 or BF16 weights)",
            r->path);
    return 0;
}

// The attention window in effect: Mistral's sliding_window (4096 when absent, as transformers defaults);
// Qwen2's only with use_sliding_window, on the layers layer_types (or max_window_layers) marks.
static int read_window(rt_json_reader *r, const rt_json *root, rt_hf_config *c) {
    c->sliding_window = 0;
    if (c->arch == RT_HF_LLAMA) return 0;
    int window = 0;
    const rt_json *w = rt_json_get(root, "sliding_window");
    if (w && w->type != RT_JSON_NULL) {
        if (rt_jf_int(r, root, "", "sliding_window", 0, 1, MAX_DIM, &window)) return -1;
    } else if (!w && c->arch == RT_HF_MISTRAL) {
        window = 4096;
    }
    if (c->arch == RT_HF_MISTRAL || window == 0) {
        c->sliding_window = window;
        return 0;
    }
    int use = 0, max_window_layers = 28;
    if (rt_jf_bool(r, root, "use_sliding_window", 0, &use) ||
        rt_jf_int(r, root, "", "max_window_layers", 28, 0, MAX_DIM, &max_window_layers))
        return -1;
    if (!use) return 0;
    const rt_json *types = rt_jf_get(root, "layer_types");
    int sliding = max_window_layers < c->n_layers;
    if (types) {
        if (types->type != RT_JSON_ARRAY) return rt_jf_bad(r, "", "layer_types", types, "a list");
        sliding = 0;
        for (size_t i = 0; i < types->n; i++)
            if (types->items[i].type == RT_JSON_STRING &&
                strcmp(types->items[i].str, "sliding_attention") == 0)
                sliding = 1;
    }
    c->sliding_window = sliding ? window : 0;
    return 0;
}

int rt_hf_config_parse(const char *text, size_t len, const char *path, rt_hf_config *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    rt_json root;
    char msg[256];
    if (rt_json_parse(text, len, &root, msg, sizeof msg))
        return rt_fail(err, "%s: not valid JSON: %s", path, msg);
    rt_json_reader r = {path, err};
    int rc = 0;
    if (root.type != RT_JSON_OBJECT) rc = rt_fail(err, "%s: expected a JSON object", path);
    if (rc == 0) rc = read_arch(&r, &root, out);
    if (rc == 0) rc = read_dims(&r, &root, out);
    if (rc == 0) rc = read_rope(&r, &root, out);
    if (rc == 0) rc = read_block_kind(&r, &root, out);
    if (rc == 0) rc = read_window(&r, &root, out);
    if (rc == 0) rc = rt_jf_bool(&r, &root, "tie_word_embeddings", 0, &out->tie_word_embeddings);
    const char *dtype = NULL;
    if (rc == 0) rc = rt_jf_str(&r, &root, "", "dtype", &dtype);
    if (rc == 0 && !dtype) rc = rt_jf_str(&r, &root, "", "torch_dtype", &dtype);
    if (rc == 0 && dtype) snprintf(out->dtype, sizeof out->dtype, "%s", dtype);
    if (rc == 0) rc = get_token(&r, &root, "bos_token_id", &out->bos_token_id);
    if (rc == 0) rc = get_token(&r, &root, "eos_token_id", &out->eos_token_id);
    rt_json_free(&root);
    return rc;
}

int rt_hf_config_read(const char *dir, rt_hf_config *out, rt_error *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
        return rt_fail(err, "%s: path too long", dir);
    char *text;
    size_t len;
    if (rt_read_file(path, &text, &len, err))
        return rt_fail_wrap(err, "a Hugging Face model folder needs config.json");
    int rc = rt_hf_config_parse(text, len, path, out, err);
    free(text);
    return rc;
}

const char *rt_hf_rope_type_name(rt_hf_rope_type t) {
    return t == RT_HF_ROPE_LINEAR ? "linear" : t == RT_HF_ROPE_LLAMA3 ? "llama3" : "default";
}
