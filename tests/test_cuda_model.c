// The whole model on the GPU against the CPU model (itself checked against PyTorch in model_torch):
// - fp32: the same weights and batch give the same per-token losses and every parameter gradient;
// - bf16: one step's per-token losses and every parameter gradient near the CPU's fp32 ones;
//   50 AdamW steps on a learnable token stream track the CPU's fp32 loss curve within
//   |gpu - cpu| <= 0.05 + 0.03 * cpu at every step, and both end well below where they started.
// - the KV cache: prefill + single steps give the whole-sequence forward's logits (fp32 and bf16).
// Exits 77 (skipped) without a GPU.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "model_twin.h"
#include "testutil.h"

static const rt_model_dims dims = {.V = 259,
                                   .C = 64,
                                   .L = 2,
                                   .H = 4,
                                   .KVH = 2,
                                   .D = 16,
                                   .F = 96,
                                   .T_max = 48,
                                   .eps = 1e-5f,
                                   .theta = 10000.0f,
                                   .tied = 1};
enum { B = 4, T = 48, N = B * T };

typedef rt_test_model_twin twin;

static void twin_create(twin *tw, rt_dtype gpu_act, int tied) {
    rt_error err;
    rt_model_dims d = dims;
    d.tied = tied;
    rt_test_twin_open(tw, gpu_act);
    ck_assert_msg(rt_model_create(&tw->cpu, &d, &tw->cpu_ctx, B, T, 1, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_model_create(&tw->gpu, &d, &tw->gpu_ctx, B, T, 1, &err) == 0, "%s", err.msg);
    // the init draws on the host, so both get the same weights (the GPU's bf16 copy is their rounding)
    ck_assert_msg(rt_model_init_weights(&tw->cpu, 99, 0.05f, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_model_init_weights(&tw->gpu, 99, 0.05f, &err) == 0, "%s", err.msg);
}

// A learnable stream: mostly next = (7 * prev + 3) mod 256, with one token in eight random.
static void patterned_batch(rt_rng *r, int32_t *tok, int32_t *tgt) {
    for (int b = 0; b < B; b++) {
        int32_t prev = (int32_t)rt_rng_below(r, 256);
        for (int t = 0; t <= T; t++) {
            int32_t next = rt_rng_below(r, 8) == 0 ? (int32_t)rt_rng_below(r, 256) : (7 * prev + 3) % 256;
            if (t < T) tok[b * T + t] = prev;
            if (t > 0) tgt[b * T + t - 1] = prev;
            prev = next;
        }
    }
}

static float *download_param(rt_model *m, const rt_param *p, const void *buf) {
    float *h = malloc(p->n * sizeof(float));
    ck_assert_ptr_nonnull(h);
    m->ctx->be->download(m->ctx, h, buf, buf == p->master ? RT_F32 : m->ctx->act, p->n);
    return h;
}

// ||got - ref|| / ||ref|| over n elements (0 when both are zero).
static double rel_l2(const float *got, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

// One forward and backward of the twin in gpu_act and of the CPU in fp32 on the same weights and batch.
// fp32: the per-token losses and every gradient element match to fp32 rounding. bf16: every per-token loss
// within BF16_LOSS_ATOL, and each parameter's gradient within BF16_GRAD_REL_L2 of the fp32 one in relative
// L2 norm (elementwise bounds mean nothing for the gradients' small elements, which bf16 rounding of the
// activations upstream moves by more than their size).
#define BF16_LOSS_ATOL   0.05f
#define BF16_GRAD_REL_L2 0.03
static void check_gradients(rt_dtype gpu_act, int tied) {
    twin tw;
    twin_create(&tw, gpu_act, tied);
    rt_rng r;
    rt_rng_seed(&r, 5 + (uint64_t)tied);
    int32_t tok[N], tgt[N];
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)rt_rng_below(&r, 259);
        tgt[i] = rt_rng_below(&r, 6) == 0 ? -1 : (int32_t)rt_rng_below(&r, 259);
    }
    rt_error err;
    float scale = 1.0f / N;
    rt_model *ms[2] = {&tw.cpu, &tw.gpu};
    for (int k = 0; k < 2; k++) {
        rt_model_zero_grad(ms[k]);
        ck_assert_msg(rt_model_forward(ms[k], tok, tgt, B, T, scale, &err) == 0, "%s", err.msg);
        rt_model_backward(ms[k], B, T);
    }
    float lc[N], lg[N];
    tw.cpu_ctx.be->download(&tw.cpu_ctx, lc, tw.cpu.losses, RT_F32, N);
    tw.gpu_ctx.be->download(&tw.gpu_ctx, lg, tw.gpu.losses, RT_F32, N);
    ck_assert_msg(tw.gpu_ctx.be->check(&tw.gpu_ctx, &err) == 0, "%s", err.msg);
    const char *dt = rt_dtype_name(gpu_act);
    char what[160];
    snprintf(what, sizeof what, "%s model per-token losses", dt);
    if (gpu_act == RT_BF16)
        rt_test_assert_close(what, lg, lc, N, BF16_LOSS_ATOL, 0.0f);
    else
        rt_test_assert_close(what, lg, lc, N, 1e-5f, 1e-5f);
    double worst = 0.0;
    for (int i = 0; i < tw.cpu.n_params; i++) {
        rt_param *pc = &tw.cpu.params[i], *pg = &tw.gpu.params[i];
        float *gc = download_param(&tw.cpu, pc, pc->grad), *gg = download_param(&tw.gpu, pg, pg->grad);
        snprintf(what, sizeof what, "%s model gradient %s (tied=%d)", dt, pc->name, tied);
        if (gpu_act == RT_BF16) {
            double e = rel_l2(gg, gc, pc->n);
            ck_assert_msg(e <= BF16_GRAD_REL_L2, "%s: relative L2 error %.4f > %.2f", what, e,
                          BF16_GRAD_REL_L2);
            worst = e > worst ? e : worst;
        } else {
            float mx = 0.0f;
            for (size_t j = 0; j < pc->n; j++) mx = fmaxf(mx, fabsf(gc[j]));
            rt_test_assert_close(what, gg, gc, pc->n, 1e-4f * mx + 1e-9f, 1e-3f);
        }
        free(gc);
        free(gg);
    }
    if (gpu_act == RT_BF16)
        printf("bf16 model gradients (tied=%d): largest relative L2 error %.4f (bound %.2f)\n", tied, worst,
               BF16_GRAD_REL_L2);
    rt_test_twin_free(&tw);
}

#ifndef RT_TWIN_CPU // on the CPU the fp32 twin is the reference itself
START_TEST(test_fp32_matches_cpu) {
    check_gradients(RT_F32, 1);
    check_gradients(RT_F32, 0);
}
END_TEST
#endif

START_TEST(test_bf16_gradients_near_cpu) {
    check_gradients(RT_BF16, 1);
    check_gradients(RT_BF16, 0);
}
END_TEST

START_TEST(test_bf16_tracks_cpu_loss) {
    twin tw;
    twin_create(&tw, RT_BF16, 1);
    rt_adamw_config oc = {.lr = 3e-3f,
                          .min_lr = 3e-4f,
                          .warmup_steps = 5,
                          .total_steps = 50,
                          .beta1 = 0.9f,
                          .beta2 = 0.95f,
                          .eps = 1e-8f,
                          .weight_decay = 0.1f,
                          .grad_clip = 1.0f};
    rt_test_bf16_tracks_cpu(&tw.cpu, &tw.gpu, &oc, 50, 77, patterned_batch, B, T, 0.7f, "model");
    rt_test_twin_free(&tw);
}
END_TEST

// Generation on the GPU: a prefill and then single positions through the KV cache give the logits the same
// GPU model's whole-sequence forward gives at every position (fp32 to rounding, bf16 within its precision).
static void check_kv_cache(rt_dtype gpu_act, int tied) {
    enum { KB = 3, KT = 40, P = 8 };
    rt_error err;
    rt_ctx gctx;
    rt_model m;
    rt_model_dims d = dims;
    d.tied = tied;
    ck_assert_msg(RT_TEST_TWIN_BACKEND->ctx_init(&gctx, gpu_act, 0, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_model_create(&m, &d, &gctx, KB, T, 0, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_model_init_weights(&m, 17, 0.2f, &err) == 0, "%s", err.msg);
    rt_rng r;
    rt_rng_seed(&r, 31 + (uint64_t)tied);
    int32_t tok[KB * KT], piece[KB * P];
    for (int i = 0; i < KB * KT; i++) tok[i] = (int32_t)rt_rng_below(&r, 259);
    int V = d.V;
    float *ref = malloc((size_t)KB * KT * V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    ck_assert_msg(rt_model_forward(&m, tok, NULL, KB, KT, 1.0f, &err) == 0, "%s", err.msg);
    float scale = 0.0f;
    for (int i = 0; i < KB * KT; i++) rt_model_logits_row(&m, i, ref + (size_t)i * V);
    for (size_t i = 0; i < (size_t)KB * KT * V; i++) scale = fmaxf(scale, fabsf(ref[i]));
    float atol = gpu_act == RT_BF16 ? 5e-2f * scale : 1e-4f * scale,
          rtol = gpu_act == RT_BF16 ? 5e-2f : 1e-4f;
    for (int pos0 = 0; pos0 < KT;) {
        int n = pos0 == 0 ? P : 1;
        for (int b = 0; b < KB; b++) memcpy(piece + b * n, tok + b * KT + pos0, (size_t)n * sizeof(int32_t));
        ck_assert_msg(rt_model_forward_cached(&m, piece, KB, n, pos0, &err) == 0, "%s", err.msg);
        for (int b = 0; b < KB; b++)
            for (int t = 0; t < n; t++) {
                rt_model_logits_row(&m, b * n + t, got);
                char what[128];
                snprintf(what, sizeof what, "GPU cached logits [%s] (tied=%d) of sequence %d position %d",
                         rt_dtype_name(gpu_act), tied, b, pos0 + t);
                rt_test_assert_close(what, got, ref + ((size_t)b * KT + pos0 + t) * V, (size_t)V, atol, rtol);
            }
        pos0 += n;
    }
    ck_assert_msg(gctx.be->check(&gctx, &err) == 0, "%s", err.msg);
    free(ref);
    free(got);
    rt_model_free(&m);
    gctx.be->ctx_free(&gctx);
}

START_TEST(test_kv_cache_matches_forward) {
#ifndef RT_TWIN_CPU // the CPU's fp32 cache is checked in test_kv_cache
    check_kv_cache(RT_F32, 1);
    check_kv_cache(RT_F32, 0);
#endif
    check_kv_cache(RT_BF16, 1);
}
END_TEST

int main(void) {
    int skip = RT_TEST_TWIN_SKIP();
    if (skip) return skip;
    Suite *s = suite_create("cuda model vs cpu");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
#ifndef RT_TWIN_CPU // on the CPU the fp32 twin is the reference itself
    tcase_add_test(tc, test_fp32_matches_cpu);
#endif
    tcase_add_test(tc, test_bf16_gradients_near_cpu);
    tcase_add_test(tc, test_bf16_tracks_cpu_loss);
    tcase_add_test(tc, test_kv_cache_matches_forward);
    suite_add_tcase(s, tc);
    return rt_test_run_suite_nofork(s); // CUDA does not survive fork() once the runtime has started
}
