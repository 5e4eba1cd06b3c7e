// libFuzzer harness: the GGUF reader (rt_gguf_read) on the input as a file. What it accepts must be safe to
// walk as its header promises: every key and string, every numeric array's elements, every tensor's bytes.
#include <stdlib.h>
#include <string.h>

#include "gguf/ggml_quants.h"
#include "gguf/gguf.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("in.gguf");
    fz_write(path, data, size);
    rt_gguf_file f;
    rt_error err;
    if (rt_gguf_read(path, &f, &err) != 0) return 0;
    for (int64_t i = 0; i < f.n_kv; i++) {
        const rt_gguf_kv *kv = &f.kv[i];
        fz_sink ^= (uint8_t)strlen(kv->key);
        if (kv->str) fz_sink ^= (uint8_t)strlen(kv->str);
        if (kv->type == RT_GGUF_ARRAY && kv->array) {
            size_t bytes = (size_t)kv->n * (size_t)rt_gguf_scalar_size(kv->elem_type);
            if (kv->array < f.image || kv->array + bytes > f.image + f.size) abort();
            for (size_t j = 0; j < bytes; j++) fz_sink ^= kv->array[j];
        }
        if (rt_gguf_find_kv(&f, kv->key) == NULL) abort();
    }
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const rt_gguf_tensor *t = &f.tensors[i];
        if (t->data < f.image || t->data + t->nbytes > f.image + f.size) abort();
        for (size_t j = 0; j < t->nbytes; j++) fz_sink ^= t->data[j];
        // the first row decodes as its type says (what the round-trip tests do with a whole tensor)
        if (t->ne[0] <= 4096) {
            static float row[4096];
            rt_ggml_dequantize(t->type, t->data, (size_t)t->ne[0], row);
            fz_sink ^= (uint8_t)(row[0] != row[0]);
        }
    }
    rt_gguf_free(&f);
    return 0;
}
