// Runs retort's model and optimizer on a tiny configuration and dumps everything a PyTorch reference needs
// to check it (tests/check_model_torch.py): initial weights, a batch, logits, per-token losses, every
// parameter gradient, then 10 AdamW steps (2 accumulated micro-batches each, clipping, warmup + cosine) with
// their batches, losses and final weights, and the RoPE tables. Raw little-endian fp32 / int32 files plus
// meta.txt. The optional variant changes the architecture: "qwen" has q/k/v biases (random, so the forward
// uses them), a head dim of 12 with 4 heads on a width of 32, and linear RoPE scaling; "llama3" has the head
// dim of 12 and Llama 3.1 RoPE scaling whose thresholds put two of the six frequencies in each regime.
//
// usage: model_harness OUT_DIR TIED(0|1) SEED [plain|qwen|llama3]
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "harness.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "base/rng.h"

static void dump_weights(rt_model *m, const char *prefix, int grads) {
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        float *h = malloc(p->n * sizeof(float));
        if (!h) rt_harness_die("out of memory");
        if (grads)
            m->ctx->be->download(m->ctx, h, p->grad, RT_F32, p->n);
        else
            m->ctx->be->download(m->ctx, h, p->master, RT_F32, p->n);
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        rt_harness_dump(name, h, p->n * sizeof(float));
        free(h);
    }
}

static void random_batch(rt_rng *r, int32_t *tok, int32_t *tgt, int n, int V, int ignore_some) {
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)rt_rng_below(r, (uint64_t)V);
        tgt[i] = (int32_t)rt_rng_below(r, (uint64_t)V);
        if (ignore_some && rt_rng_below(r, 5) == 0) tgt[i] = -1;
    }
}

int main(int argc, char **argv) {
    rt_harness_init("model_harness", argc > 1 ? argv[1] : ".");
    if (argc != 4 && argc != 5) rt_harness_die("usage: model_harness OUT_DIR TIED SEED [plain|qwen|llama3]");
    int tied = atoi(argv[2]);
    uint64_t seed = strtoull(argv[3], NULL, 10);
    const char *variant = argc == 5 ? argv[4] : "plain";
    rt_model_dims d = rt_harness_dims(tied);
    if (strcmp(variant, "qwen") == 0) {
        d.D = 12;
        d.attn_bias = 1;
        d.rope = (rt_rope_scaling){.type = RT_ROPE_SCALING_LINEAR, .factor = 4.0f};
    } else if (strcmp(variant, "llama3") == 0) {
        d.D = 12;
        d.rope = (rt_rope_scaling){.type = RT_ROPE_SCALING_LLAMA3,
                                   .factor = 8.0f,
                                   .low_freq_factor = 1.0f,
                                   .high_freq_factor = 8.0f,
                                   .original_max_seq_len = 1024};
    } else if (strcmp(variant, "plain") != 0) {
        rt_harness_die("unknown variant (plain, qwen or llama3)");
    }
    const int B = 3, T = 13, N = B * T, STEPS = 10, MICRO = 2;
    rt_error err;
    rt_ctx ctx;
    if (rt_backend_cpu.ctx_init(&ctx, RT_F32, 2, &err)) rt_harness_die(err.msg);
    rt_model m;
    if (rt_model_create(&m, &d, &ctx, B, T, 1, &err)) rt_harness_die(err.msg);
    if (rt_model_init_weights(&m, seed, 0.08f, &err)) rt_harness_die(err.msg);
    rt_harness_random_biases(&m, seed + 7);
    dump_weights(&m, "init.", 0);
    size_t n_rope = (size_t)d.T_max * (d.D / 2);
    float *tab = malloc(n_rope * sizeof(float));
    if (!tab) rt_harness_die("out of memory");
    ctx.be->download(&ctx, tab, m.rope_cos, RT_F32, n_rope);
    rt_harness_dump("rope_cos", tab, n_rope * sizeof(float));
    ctx.be->download(&ctx, tab, m.rope_sin, RT_F32, n_rope);
    rt_harness_dump("rope_sin", tab, n_rope * sizeof(float));
    free(tab);

    rt_rng r;
    rt_rng_seed(&r, seed + 99);
    int32_t tok[3 * 13], tgt[3 * 13];
    random_batch(&r, tok, tgt, N, d.V, 1);
    int valid = 0;
    for (int i = 0; i < N; i++) valid += tgt[i] >= 0;
    rt_harness_dump("tokens", tok, sizeof tok);
    rt_harness_dump("targets", tgt, sizeof tgt);

    // logits without targets, then loss and gradients with them
    if (rt_model_forward(&m, tok, NULL, B, T, 1.0f, &err)) rt_harness_die(err.msg);
    float *logits = malloc((size_t)N * d.V * sizeof(float));
    for (int i = 0; i < N; i++) rt_model_logits_row(&m, i, logits + (size_t)i * d.V);
    rt_harness_dump("logits", logits, (size_t)N * d.V * sizeof(float));
    free(logits);
    rt_model_zero_grad(&m);
    if (rt_model_forward(&m, tok, tgt, B, T, 1.0f / (float)valid, &err)) rt_harness_die(err.msg);
    rt_model_backward(&m, B, T);
    float losses[3 * 13];
    ctx.be->download(&ctx, losses, m.losses, RT_F32, (size_t)N);
    rt_harness_dump("losses", losses, sizeof losses);
    dump_weights(&m, "grad.", 1);

    // training: fresh batches, accumulation, clipping, schedule
    rt_adamw_config oc = {.lr = 1e-2f,
                          .min_lr = 1e-3f,
                          .warmup_steps = 3,
                          .total_steps = STEPS,
                          .beta1 = 0.9f,
                          .beta2 = 0.95f,
                          .eps = 1e-8f,
                          .weight_decay = 0.1f,
                          .grad_clip = 0.5f};
    float step_loss[10], step_norm[10], step_lr[10];
    int32_t train_tok[10 * 2 * 3 * 13], train_tgt[10 * 2 * 3 * 13];
    for (int s = 0; s < STEPS; s++) {
        rt_model_zero_grad(&m);
        double sum = 0;
        for (int k = 0; k < MICRO; k++) {
            int32_t *bt = train_tok + (size_t)(s * MICRO + k) * N,
                    *bg = train_tgt + (size_t)(s * MICRO + k) * N;
            random_batch(&r, bt, bg, N, d.V, 0);
            if (rt_model_forward(&m, bt, bg, B, T, 1.0f / (float)(MICRO * N), &err)) rt_harness_die(err.msg);
            rt_model_backward(&m, B, T);
            sum += rt_model_loss_sum(&m, B, T);
        }
        step_lr[s] = rt_lr_at(&oc, s);
        rt_optimizer_step(&m, &oc, s + 1, step_lr[s]);
        step_loss[s] = (float)(sum / (MICRO * N));
        step_norm[s] = rt_optimizer_grad_norm(&m);
    }
    rt_harness_dump("train_tokens", train_tok, sizeof train_tok);
    rt_harness_dump("train_targets", train_tgt, sizeof train_tgt);
    rt_harness_dump("train_loss", step_loss, sizeof step_loss);
    rt_harness_dump("train_grad_norm", step_norm, sizeof step_norm);
    rt_harness_dump("train_lr", step_lr, sizeof step_lr);
    dump_weights(&m, "final.", 0);

    FILE *f = rt_harness_meta();
    fprintf(
        f,
        "V %d\nC %d\nL %d\nH %d\nKVH %d\nF %d\nT_max %d\neps %g\ntheta %g\ntied %d\nB %d\nT %d\n"
        "steps %d\nmicro %d\nlr %g\nmin_lr %g\nwarmup %d\nbeta1 %g\nbeta2 %g\nadam_eps %g\nwd %g\nclip %g\n",
        d.V, d.C, d.L, d.H, d.KVH, d.F, d.T_max, d.eps, d.theta, d.tied, B, T, STEPS, MICRO, oc.lr, oc.min_lr,
        (int)oc.warmup_steps, oc.beta1, oc.beta2, oc.eps, oc.weight_decay, oc.grad_clip);
    static const char *const scaling_names[] = {"none", "linear", "llama3"};
    fprintf(f,
            "D %d\nattn_bias %d\nrope_scaling %s\nrope_factor %g\nrope_low %g\nrope_high %g\nrope_orig %d\n",
            d.D, d.attn_bias, scaling_names[d.rope.type], d.rope.factor, d.rope.low_freq_factor,
            d.rope.high_freq_factor, d.rope.original_max_seq_len);
    fclose(f);
    rt_model_free(&m);
    ctx.be->ctx_free(&ctx);
    return 0;
}
