// Dumps what the safetensors reader reads, for check_safetensors.py: st_harness PATH OUT_DIR [META_KEY...].
// PATH is a file, an index or a folder (rt_st_model_open). OUT_DIR/meta.txt gets one line per tensor in name
// order, "tensor I DTYPE NDIM D0 D1 ... NAME", then "read I" with tI.bin holding its fp32 values, or
// "refused I MESSAGE" when the reader refuses to convert it; then "meta KEY\tVALUE" (or "nometa KEY") for
// each key asked, searched in every file. A file the reader refuses: the message and exit 1.
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "import/safetensors.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: safetensors_harness PATH OUT_DIR [META_KEY...]\n");
        return 2;
    }
    rt_harness_init("safetensors_harness", argv[2]);
    rt_st_model m;
    rt_error err;
    if (rt_st_model_open(argv[1], &m, &err) != 0) rt_harness_die(err.msg);
    FILE *meta = rt_harness_meta();
    for (size_t i = 0; i < m.n_tensors; i++) {
        const rt_st_tensor *t = m.tensors[i];
        if (rt_st_model_find(&m, t->name) != t) rt_harness_die("rt_st_model_find misses a listed tensor");
        fprintf(meta, "tensor %zu %s %d", i, t->dtype, t->ndim);
        for (int d = 0; d < t->ndim; d++) fprintf(meta, " %lld", (long long)t->shape[d]);
        fprintf(meta, " %s\n", t->name);
        float *buf = malloc((t->count ? t->count : 1) * sizeof(float));
        if (!buf) rt_harness_die("out of memory");
        if (rt_st_read_f32(t, buf, t->count, &err) == 0) {
            char name[32];
            snprintf(name, sizeof name, "t%zu", i);
            rt_harness_dump(name, buf, t->count * sizeof(float));
            fprintf(meta, "read %zu\n", i);
        } else {
            fprintf(meta, "refused %zu %s\n", i, err.msg);
        }
        free(buf);
    }
    for (int k = 3; k < argc; k++) {
        const char *v = NULL;
        for (size_t f = 0; f < m.n_files && !v; f++) v = rt_st_metadata(&m.files[f], argv[k]);
        if (v)
            fprintf(meta, "meta %s\t%s\n", argv[k], v);
        else
            fprintf(meta, "nometa %s\n", argv[k]);
    }
    fclose(meta);
    rt_st_model_close(&m);
    return 0;
}
