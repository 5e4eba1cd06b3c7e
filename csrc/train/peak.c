#include "train/peak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Dense peaks from NVIDIA's data sheets and architecture whitepapers, in TFLOP/s: bf16 with fp32
// accumulation (the sparse figures the sheets lead with are twice these), fp32 on the CUDA cores; 0 where
// the sheet gives none. GeForce cards accumulate bf16 in fp32 at half their fp16-accumulate rate. The
// first row whose pattern is a whole word of the name wins, so the specific variants come first.
static const struct {
    const char *pattern, *label;
    double bf16, fp32;
} spec_table[] = {
    {"H100 PCIe", "H100 PCIe", 756.0, 51.0},
    {"H100 NVL", "H100 NVL", 835.0, 60.0},
    {"H100", "H100 SXM", 989.0, 67.0},
    {"H200 NVL", "H200 NVL", 835.0, 60.0},
    {"H200", "H200", 989.0, 67.0},
    {"GH200", "GH200", 989.0, 67.0},
    {"B200", "B200", 2250.0, 0.0},
    {"A100", "A100", 312.0, 19.5},
    {"A10", "A10", 125.0, 31.2},
    {"A30", "A30", 165.0, 10.3},
    {"A40", "A40", 149.7, 37.4},
    {"L40S", "L40S", 362.0, 91.6},
    {"L40", "L40", 181.0, 90.5},
    {"L4", "L4", 121.0, 30.3},
    {"RTX A6000", "RTX A6000", 154.8, 38.7},
    {"RTX 4090", "RTX 4090", 165.2, 82.6},
    {"RTX 3090", "RTX 3090", 35.6, 35.6},
};

static int word_edge(char c) {
    return c == '\0' || c == ' ' || c == '-';
}

// pattern occurs in name as whole words: "A10" is not in "A100" or "A10G", "H200" not in "GH200"
static int has_word(const char *name, const char *pattern) {
    size_t n = strlen(pattern);
    for (const char *p = strstr(name, pattern); p; p = strstr(p + 1, pattern))
        if ((p == name || word_edge(p[-1])) && word_edge(p[n])) return 1;
    return 0;
}

int rt_peak_spec(const char *device_name, rt_dtype t, double *flops, const char **label) {
    if (!device_name) return 0;
    for (size_t i = 0; i < sizeof spec_table / sizeof spec_table[0]; i++) {
        if (!has_word(device_name, spec_table[i].pattern)) continue;
        double tf = t == RT_BF16 ? spec_table[i].bf16 : spec_table[i].fp32;
        if (tf <= 0) return 0;
        *flops = tf * 1e12;
        *label = spec_table[i].label;
        return 1;
    }
    return 0;
}

// The size of the GPU's product. The CUDA emulation build (tests/cuda_emu, docs/cuda_emulation.md) runs
// cuBLASLt's products on the CPU one multiply-add at a time, where an 8192-cube would take hours.
#ifdef RT_CUDA_EMU
#define PEAK_GPU_N 128
#else
#define PEAK_GPU_N 8192
#endif

double rt_measure_matmul_peak(rt_ctx *ctx, int n, int max_reps, double budget_s) {
    const rt_backend *be = ctx->be;
    rt_error err;
    size_t elems = (size_t)n * (size_t)n, bytes = elems * rt_dtype_size(ctx->act);
    void *a = be->alloc(ctx, bytes, "peak benchmark", &err);
    void *b = be->alloc(ctx, bytes, "peak benchmark", &err);
    void *c = be->alloc(ctx, bytes, "peak benchmark", &err);
    float *host = malloc(elems * sizeof(float));
    double best = 0.0;
    if (a && b && c && host) {
        for (size_t i = 0; i < elems; i++) host[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        be->upload(ctx, a, ctx->act, host, elems);
        be->upload(ctx, b, ctx->act, host, elems);
        be->matmul(ctx, c, a, b, n, n, n, 0, 1, 1.0f, 0.0f); // warm-up: threads started, caches and clocks up
        be->sync(ctx);
        // The best run, not the mean: on a shared machine other work only ever slows a run down, so the
        // fastest of several is the closest to what the device does idle.
        double start = rt_now();
        for (int rep = 0; rep < max_reps && (rep < 3 || rt_now() - start < budget_s); rep++) {
            double t0 = rt_now();
            be->matmul(ctx, c, a, b, n, n, n, 0, 1, 1.0f, 0.0f);
            be->sync(ctx);
            double dt = rt_now() - t0;
            double flops = dt > 0 ? 2.0 * n * (double)n * n / dt : 0.0;
            if (flops > best) best = flops;
        }
    }
    free(host);
    if (a) be->free(ctx, a);
    if (b) be->free(ctx, b);
    if (c) be->free(ctx, c);
    return best;
}

void rt_peak_resolve(rt_ctx *ctx, double config_tflops, rt_peak *out) {
    memset(out, 0, sizeof *out);
    // A GPU needs large products to reach its peak. On the CPU the fastest size depends on the caches and
    // the run-to-run noise of a shared machine is larger than the difference: the best of two sizes, each
    // repeated, with about half a second spent in all.
    if (ctx->be->device_name) {
        out->gemm = rt_measure_matmul_peak(ctx, PEAK_GPU_N, 10, 0.5);
    } else {
        double small = rt_measure_matmul_peak(ctx, 512, 24, 0.15);
        double large = rt_measure_matmul_peak(ctx, 1024, 12, 0.35);
        out->gemm = small > large ? small : large;
    }
    const char *name = ctx->be->device_name ? ctx->be->device_name(ctx) : NULL, *label;
    double spec;
    if (config_tflops > 0) {
        out->flops = config_tflops * 1e12;
        snprintf(out->source, sizeof out->source, "config");
    } else if (rt_peak_spec(name, ctx->act, &spec, &label)) {
        out->flops = spec;
        snprintf(out->source, sizeof out->source, "spec %s", label);
    } else {
        out->flops = out->gemm;
        snprintf(out->source, sizeof out->source, "measured");
    }
}
