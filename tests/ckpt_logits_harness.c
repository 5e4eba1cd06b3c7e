// Loads a checkpoint as `retort generate` does (rt_load_model, CPU, fp32) and dumps, for given token ids,
// the logits of one forward over them (OUT/logits.bin, [T, V] fp32) and the greedy continuation that
// rt_generate (with the KV cache) produces (OUT/greedy.txt, the new ids on one line; it stops after EOS
// 257 like retort generate). tests/check_import_hf.py compares both with transformers.
//
// usage: ckpt_logits_harness CKPT OUT_DIR N_NEW ID...
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "harness.h"
#include "infer/load.h"
#include "infer/sample.h"

int main(int argc, char **argv) {
    rt_harness_init("ckpt_logits_harness", argc > 2 ? argv[2] : ".");
    if (argc < 5) rt_harness_die("usage: ckpt_logits_harness CKPT OUT_DIR N_NEW ID...");
    int n_new = atoi(argv[3]), T = argc - 4;
    int32_t *ids = malloc((size_t)(T + n_new) * sizeof *ids);
    if (!ids) rt_harness_die("out of memory");
    for (int i = 0; i < T; i++) ids[i] = (int32_t)atoi(argv[4 + i]);
    rt_error err;
    rt_ctx ctx;
    if (rt_backend_cpu.ctx_init(&ctx, RT_F32, 2, &err)) rt_harness_die(err.msg);
    rt_model m;
    rt_config cfg;
    if (rt_load_model(argv[1], &ctx, 1, 0, &m, &cfg, &err)) rt_harness_die(err.msg);
    if (rt_model_forward(&m, ids, NULL, 1, T, 1.0f, &err)) rt_harness_die(err.msg);
    size_t n = (size_t)T * (size_t)m.dims.V;
    float *logits = malloc(n * sizeof *logits);
    if (!logits) rt_harness_die("out of memory");
    ctx.be->download(&ctx, logits, m.logits, RT_F32, n);
    rt_harness_dump("logits", logits, n * sizeof *logits);
    rt_sampling greedy = {0.0f, 0, 1.0f};
    rt_rng rng;
    rt_rng_seed(&rng, 1);
    int64_t total = rt_generate(&m, ids, T, n_new, &greedy, &rng, NULL, NULL, &err); // prompt + new ids
    if (total < 0) rt_harness_die(err.msg);
    FILE *f = rt_harness_meta();
    fprintf(f, "V %d\n", m.dims.V);
    fclose(f);
    char path[2048];
    snprintf(path, sizeof path, "%s/greedy.txt", argv[2]);
    f = fopen(path, "w");
    if (!f) rt_harness_die(path);
    for (int64_t i = T; i < total; i++) fprintf(f, "%s%d", i > T ? " " : "", ids[i]);
    fprintf(f, "\n");
    fclose(f);
    free(logits);
    free(ids);
    rt_model_free(&m);
    ctx.be->ctx_free(&ctx);
    return 0;
}
