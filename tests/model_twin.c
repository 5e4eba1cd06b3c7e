// A model and its GPU twin, and the bf16 training run against the CPU (model_twin.h).
#include "model_twin.h"

#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void rt_test_twin_open(rt_test_model_twin *tw, rt_dtype gpu_act) {
    rt_error err;
    ck_assert_msg(rt_backend_cpu.ctx_init(&tw->cpu_ctx, RT_F32, rt_test_cpu_threads(), &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(RT_TEST_TWIN_BACKEND->ctx_init(&tw->gpu_ctx, gpu_act, 0, &err) == 0, "%s", err.msg);
}

void rt_test_twin_free(rt_test_model_twin *tw) {
    rt_error err;
    ck_assert_msg(tw->gpu_ctx.be->check(&tw->gpu_ctx, &err) == 0, "%s", err.msg);
    rt_model_free(&tw->cpu);
    rt_model_free(&tw->gpu);
    tw->cpu_ctx.be->ctx_free(&tw->cpu_ctx);
    tw->gpu_ctx.be->ctx_free(&tw->gpu_ctx);
}

void rt_test_bf16_tracks_cpu(rt_model *cpu, rt_model *gpu, const rt_adamw_config *oc, int steps,
                             uint64_t seed, rt_test_batch_fn batch, int B, int T, float fall,
                             const char *what) {
    int N = B * T;
    rt_rng r;
    rt_rng_seed(&r, seed);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t)), *tgt = malloc((size_t)N * sizeof(int32_t));
    ck_assert(tok && tgt);
    float first[2] = {0}, last[2] = {0};
    rt_error err;
    rt_model *ms[2] = {cpu, gpu};
    const char *cap = getenv("RT_TEST_STEPS_MAX");
    int full = steps;
    if (cap && atoi(cap) > 0 && atoi(cap) < steps) steps = atoi(cap);
    for (int step = 0; step < steps; step++) {
        batch(&r, tok, tgt);
        float loss[2];
        for (int k = 0; k < 2; k++) {
            rt_model_zero_grad(ms[k]);
            ck_assert_msg(rt_model_forward(ms[k], tok, tgt, B, T, 1.0f / N, &err) == 0, "%s", err.msg);
            rt_model_backward(ms[k], B, T);
            loss[k] = rt_model_loss_sum(ms[k], B, T) / N;
            rt_optimizer_step(ms[k], oc, step + 1, rt_lr_at(oc, step));
        }
        ck_assert_msg(gpu->ctx->be->check(gpu->ctx, &err) == 0, "%s", err.msg);
        ck_assert_msg(fabsf(loss[1] - loss[0]) <= 0.05f + 0.03f * loss[0],
                      "step %d: bf16 %s %s loss %.5f vs CPU fp32 %.5f", step + 1, gpu->ctx->be->name, what,
                      loss[1], loss[0]);
        if (step == 0) first[0] = loss[0], first[1] = loss[1];
        last[0] = loss[0], last[1] = loss[1];
    }
    printf("bf16 %s vs fp32 cpu %s over %d steps: %.4f -> %.4f vs %.4f -> %.4f\n", gpu->ctx->be->name, what,
           steps, first[1], last[1], first[0], last[0]);
    if (steps < full) {
        printf("%s: cut to %d of %d steps by RT_TEST_STEPS_MAX: the loss-fall check is left out\n", what,
               steps, full);
    } else {
        ck_assert_msg(last[0] < fall * first[0] && last[1] < fall * first[1],
                      "%s: the loss did not fall: CPU %.4f -> %.4f, GPU %.4f -> %.4f", what, first[0],
                      last[0], first[1], last[1]);
    }
    free(tok);
    free(tgt);
}
