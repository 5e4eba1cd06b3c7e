// libFuzzer harness: the safetensors reader (rt_st_open) on the input as a file. What it accepts must be safe
// to use as its header promises: every tensor's bytes inside the mapping, the tensors tiling the data
// section, every readable tensor converted, every name found again, every metadata key looked up.
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "import/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("in.safetensors");
    fz_write(path, data, size);
    rt_st_file f;
    rt_error err;
    if (rt_st_open(path, &f, &err) != 0) {
        if (f.map || f.tensors || f.path) abort(); // a refusal leaves nothing behind
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const rt_st_tensor *t = &f.tensors[i];
        if (t->data < f.map + f.data_start || t->nbytes > f.size || t->data + t->nbytes > f.map + f.size)
            abort();
        if (t->count * (size_t)t->dtype_size != t->nbytes) abort();
        total += t->nbytes;
        for (size_t j = 0; j < t->nbytes; j++) fz_sink ^= t->data[j];
        if (rt_st_find(&f, t->name) != t) abort();
        if (rt_st_readable(t)) {
            float *out = malloc((t->count ? t->count : 1) * sizeof(float));
            if (!out) abort();
            if (rt_st_read_f32(t, out, t->count, &err) != 0) abort();
            for (size_t j = 0; j < t->count; j++) fz_sink ^= (uint8_t)(out[j] != out[j]);
            free(out);
        } else if (rt_st_read_f32(t, NULL, t->count, &err) == 0) {
            abort();
        }
    }
    // contiguous and non-overlapping: the sizes add up to the data section exactly
    if (total != f.size - f.data_start) abort();
    for (size_t i = 0; i < f.n_meta; i++)
        if (rt_st_metadata(&f, f.meta_keys[i]) == NULL) abort();
    rt_st_close(&f);
    return 0;
}
