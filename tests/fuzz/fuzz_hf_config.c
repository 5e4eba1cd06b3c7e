// libFuzzer harness: a Hugging Face config.json (rt_hf_config_parse, csrc/import/hf_config.c). What it
// accepts must keep the promises the importer builds on (heads that split into KV groups, an even head dim,
// positive sizes, a window only for Mistral and Qwen2, scaling factors in range); what then passes
// rt_hf_to_config must give a tensor table whose shapes are positive and whose count is the model's.
#include <stdlib.h>
#include <string.h>

#include "export/hf_names.h"
#include "fuzz_util.h"
#include "import/hf_config.h"
#include "import/hf_import.h"

static void check_accepted(const rt_hf_config *c) {
    if (c->vocab_size < 1 || c->hidden_size < 1 || c->intermediate_size < 1 || c->n_layers < 1 ||
        c->n_heads < 1 || c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0 || c->head_dim < 2 ||
        c->head_dim % 2 != 0 || c->max_position_embeddings < 1 || !(c->rope_theta > 0) ||
        !(c->rms_norm_eps > 0))
        abort();
    if (c->sliding_window < 0 || (c->arch == RT_HF_LLAMA && c->sliding_window != 0)) abort();
    if (c->rope_type != RT_HF_ROPE_DEFAULT && !(c->rope_factor >= 1)) abort();
    if (c->rope_type == RT_HF_ROPE_LLAMA3 && (!(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
                                              c->rope_original_max_position_embeddings < 1))
        abort();
    if (c->attn_bias != (c->arch == RT_HF_QWEN2) ||
        memchr(c->architecture, 0, sizeof c->architecture) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rt_hf_config c;
    rt_error err;
    if (rt_hf_config_parse((const char *)data, size, "config.json", &c, &err) != 0) {
        if (!memchr(err.msg, 0, sizeof err.msg) || strncmp(err.msg, "config.json", 11) != 0) abort();
        return 0;
    }
    check_accepted(&c);
    rt_config cfg;
    for (int tied = 0; tied < 2; tied++) {
        if (rt_hf_to_config(&c, "config.json", 0, tied, &cfg, &err) != 0) continue;
        rt_hf_tensor *ts;
        int n;
        if (rt_hf_tensor_list(&cfg, &ts, &n, &err) != 0) abort(); // a validated config always has a table
        if (n != 2 + (9 + 3 * c.attn_bias) * cfg.model.n_layers + !tied) abort();
        for (int i = 0; i < n; i++)
            if (ts[i].shape[0] < 1 || (ts[i].ndim == 2 && ts[i].shape[1] < 1) || !ts[i].hf[0] || !ts[i].rt[0])
                abort();
        free(ts);
    }
    return 0;
}
