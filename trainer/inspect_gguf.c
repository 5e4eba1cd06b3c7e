// retort inspect FILE.gguf: what a GGUF file holds (any GGUF file, read with the hardened reader): the
// header, every key with its type and value (arrays by type, length and first element), every tensor with
// its type, GGUF shape, offset and the statistics of its dequantized values (types retort knows).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "gguf/ggml_quants.h"
#include "gguf/gguf.h"

static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void value_text(const rt_gguf_kv *kv, char *out, size_t cap) {
    switch (kv->type) {
    case RT_GGUF_STRING:
        snprintf(out, cap, "\"%.60s\"", kv->str ? kv->str : "");
        break;
    case RT_GGUF_ARRAY:
        if (kv->elem_type == RT_GGUF_STRING)
            snprintf(out, cap, "[%llu strings] first \"%.24s\"", (unsigned long long)kv->n,
                     kv->str ? kv->str : "");
        else
            snprintf(out, cap, "[%llu %s]", (unsigned long long)kv->n,
                     rt_gguf_value_type_name(kv->elem_type));
        break;
    case RT_GGUF_FLOAT32:
    case RT_GGUF_FLOAT64:
        snprintf(out, cap, "%.9g", kv->f);
        break;
    case RT_GGUF_INT8:
    case RT_GGUF_INT16:
    case RT_GGUF_INT32:
    case RT_GGUF_INT64:
        snprintf(out, cap, "%lld", (long long)kv->u);
        break;
    case RT_GGUF_BOOL:
        snprintf(out, cap, "%s", kv->u ? "true" : "false");
        break;
    default:
        snprintf(out, cap, "%llu", (unsigned long long)kv->u);
    }
}

typedef struct stats {
    double l2, min, max;
    size_t n;
} stats;

static int stats_of(const rt_gguf_tensor *t, stats *s) {
    if (!rt_ggml_can_decode(t->type)) return -1; // listed with its type and size, no statistics
    size_t n = (size_t)t->ne[0] * (size_t)t->ne[1] * (size_t)t->ne[2] * (size_t)t->ne[3];
    float *x = malloc(n * sizeof(float));
    if (!x) return -1;
    rt_ggml_dequantize(t->type, t->data, n, x);
    double ss = 0.0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        ss += (double)x[i] * x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    free(x);
    *s = (stats){sqrt(ss), lo, hi, n};
    return 0;
}

int rt_inspect_gguf(const char *path, int json) {
    rt_gguf_file f;
    rt_error err;
    if (rt_gguf_read(path, &f, &err)) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    char v[160];
    if (!json) {
        printf("%s: GGUF version %u, %zu bytes, alignment %zu\n\nkeys (%lld)\n", path, f.version, f.size,
               f.alignment, (long long)f.n_kv);
        for (int64_t i = 0; i < f.n_kv; i++) {
            value_text(&f.kv[i], v, sizeof v);
            printf("  %-44s %-8s %s\n", f.kv[i].key, rt_gguf_value_type_name(f.kv[i].type), v);
        }
        printf("\ntensors (%lld)\n  %-32s %-6s %-22s %12s %11s %11s %11s\n", (long long)f.n_tensors, "name",
               "type", "ne", "bytes", "L2", "min", "max");
    } else {
        printf("{\"path\": ");
        json_str(path);
        printf(", \"kind\": \"gguf\", \"version\": %u, \"size\": %zu, \"alignment\": %zu,\n \"kv\": [",
               f.version, f.size, f.alignment);
        for (int64_t i = 0; i < f.n_kv; i++) {
            value_text(&f.kv[i], v, sizeof v);
            printf("%s\n  {\"key\": ", i ? "," : "");
            json_str(f.kv[i].key);
            printf(", \"type\": \"%s\", \"value\": ", rt_gguf_value_type_name(f.kv[i].type));
            json_str(v);
            printf("}");
        }
        printf("],\n \"tensors\": [");
    }
    size_t total = 0;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const rt_gguf_tensor *t = &f.tensors[i];
        char ne[64];
        int k = snprintf(ne, sizeof ne, "[");
        for (int d = 0; d < t->n_dims && k > 0 && (size_t)k < sizeof ne; d++)
            k += snprintf(ne + k, sizeof ne - (size_t)k, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
        if (k > 0 && (size_t)k < sizeof ne) snprintf(ne + k, sizeof ne - (size_t)k, "]");
        stats s = {0};
        int ok = stats_of(t, &s) == 0;
        total += t->nbytes;
        if (!json) {
            printf("  %-32s %-6s %-22s %12zu %11.5g %11.5g %11.5g\n", t->name, rt_ggml_type_name(t->type), ne,
                   t->nbytes, ok ? s.l2 : NAN, ok ? s.min : NAN, ok ? s.max : NAN);
        } else {
            printf("%s\n  {\"name\": ", i ? "," : "");
            json_str(t->name);
            printf(", \"type\": \"%s\", \"ne\": %s, \"offset\": %llu, \"bytes\": %zu, \"l2\": %.9g}",
                   rt_ggml_type_name(t->type), ne, (unsigned long long)t->offset, t->nbytes, ok ? s.l2 : 0.0);
        }
    }
    if (!json)
        printf("  total: %zu bytes of tensor data\n", total);
    else
        printf("]}\n");
    rt_gguf_free(&f);
    return 0;
}
