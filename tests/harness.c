// The tensor-dumping harnesses' shared helpers (harness.h).
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model/model_internal.h"

static const char *prog_name = "harness", *dir = ".";

void rt_harness_init(const char *prog, const char *out_dir) {
    prog_name = prog;
    dir = out_dir;
}

_Noreturn void rt_harness_die(const char *msg) {
    fprintf(stderr, "%s: %s\n", prog_name, msg);
    exit(1);
}

int rt_harness_read_record(char **buf, size_t *cap, size_t *len) {
    unsigned long long n;
    int rc = scanf("%llu", &n);
    if (rc == EOF) return 0;
    if (rc != 1 || getchar() != '\n') rt_harness_die("bad record header");
    if (n + 1 > *cap) {
        *cap = (size_t)n + 1;
        *buf = realloc(*buf, *cap);
        if (!*buf) rt_harness_die("out of memory");
    }
    if (fread(*buf, 1, (size_t)n, stdin) != n) rt_harness_die("truncated record");
    *len = (size_t)n;
    return 1;
}

void rt_harness_dump(const char *name, const void *data, size_t bytes) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) rt_harness_die(path);
}

FILE *rt_harness_meta(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) rt_harness_die(path);
    return f;
}

rt_model_dims rt_harness_dims(int tied) {
    rt_model_dims d = {.V = 259,
                       .C = 32,
                       .L = 2,
                       .H = 4,
                       .KVH = 2,
                       .D = 8,
                       .F = 40,
                       .T_max = 16,
                       .eps = 1e-5f,
                       .theta = 10000.0f,
                       .tied = tied};
    return d;
}

void rt_harness_random_biases(rt_model *m, uint64_t seed) {
    rt_rng r;
    rt_rng_seed(&r, seed);
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (!strstr(p->name, ".bias")) continue;
        float *h = malloc(p->n * sizeof(float));
        if (!h) rt_harness_die("out of memory");
        for (size_t j = 0; j < p->n; j++) h[j] = 0.3f * rt_rng_normal(&r);
        rt_model_set_weight(m, p, h);
        free(h);
    }
}
