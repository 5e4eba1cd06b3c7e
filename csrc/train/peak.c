#include "train/peak.h"

#include <stdlib.h>

double rt_measure_matmul_peak(rt_ctx *ctx, int n) {
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
        be->matmul(ctx, c, a, b, n, n, n, 0, 1, 1.0f, 0.0f); // warm-up
        be->sync(ctx);
        for (int rep = 0; rep < 5; rep++) {
            double t0 = rt_now();
            be->matmul(ctx, c, a, b, n, n, n, 0, 1, 1.0f, 0.0f);
            be->sync(ctx);
            double dt = rt_now() - t0;
            double flops = 2.0 * n * (double)n * n / dt;
            if (dt > 0 && flops > best) best = flops;
        }
    }
    free(host);
    if (a) be->free(ctx, a);
    if (b) be->free(ctx, b);
    if (c) be->free(ctx, c);
    return best;
}
