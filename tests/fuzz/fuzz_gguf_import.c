// libFuzzer harness: GGUF import (rt_gguf_import_model) on the input as a file that the GGUF reader accepts:
// the hyperparameters, the tensor checks, the dequantization of every tensor, the q/k permutation and the
// llama3 recovery from rope_freqs.weight. What it accepts must be a validated config and tensors of exactly
// the shapes the config gives, every value decoded (written to, so ASan sees each one).
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "import/gguf_import.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("in.gguf");
    fz_write(path, data, size);
    rt_gguf_file f;
    rt_error err;
    if (rt_gguf_read(path, &f, &err) != 0) return 0;
    rt_config cfg;
    rt_named_tensor *ts;
    int n;
    rt_gguf_import_report rep;
    rt_gguf_import_opts opts = {size % 2 ? 0 : 16}; // half the inputs with a shorter context
    if (rt_gguf_import_model(&f, path, &opts, &cfg, &ts, &n, &rep, &err) == 0) {
        if (rt_config_validate(&cfg, &err) != 0) abort();
        const rt_named_tensor *emb = rt_named_tensor_find(ts, n, "token_embd.weight");
        if (!emb || emb->shape[0] != cfg.model.vocab_size || emb->shape[1] != cfg.model.dim) abort();
        if (!cfg.model.tie_embeddings && !rt_named_tensor_find(ts, n, "output.weight")) abort();
        for (int i = 0; i < n; i++) {
            size_t count = (size_t)ts[i].shape[0] * (size_t)(ts[i].ndim == 2 ? ts[i].shape[1] : 1);
            for (size_t j = 0; j < count; j++) fz_sink ^= (uint8_t)(ts[i].data[j] != ts[i].data[j]);
        }
        rt_gguf_import_free(ts, n);
    }
    rt_gguf_free(&f);
    return 0;
}
