// Dumps what tests/check_lora_torch.py needs to check NF4 and the LoRA / QLoRA layers against PyTorch:
//   nf4 mode: Gaussian weights (with an all-zero block, an outlier and partial blocks) of several sizes,
//     their NF4 codes and scales with and without double quantization, and the dequantized weights from
//     the host code and from the CPU backend's nf4_dequantize op.
//   lora / qlora mode: a tiny model's base weights, the adapted model's logits at step 0 next to the plain
//     model's (they must be identical), then with random B (so every adapter gets a gradient) the logits,
//     per-token losses and every adapter gradient of one batch, with dropout in lora mode (the masks' seeds
//     per layer and site are dumped); qlora keeps every block projection in NF4 with double quantization.
//     After a few AdamW steps it checks in C that the base did not move and that only adapters have
//     gradients and moments. The untied qlora case also has q/k/v biases (random, frozen like the base, kept
//     in fp32 rather than NF4) and a head dim of 12 on 4 heads of a width of 32.
//   qlora_partial mode: qlora with adapters on q, v, gate and the head only, NF4 on q, v and gate only (so
//     the fused q|k|v and gate|up projections mix NF4 and fp32 members and adapters cover some of their
//     columns), and dropout as in lora mode.
// Raw little-endian files plus meta.txt (targets and nf4_sites as site masks).
//
// usage: lora_harness OUT_DIR nf4|lora|qlora|qlora_partial TIED SEED
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "harness.h"
#include "model/lora.h"
#include "model/model.h"
#include "backend/nf4.h"
#include "model/optimizer.h"
#include "base/rng.h"

static void run_nf4(uint64_t seed) {
    const size_t sizes[] = {64 * 5, 1000, 64 * 256 * 2 + 100, 1 << 16};
    rt_error err;
    rt_ctx ctx;
    if (rt_backend_cpu.ctx_init(&ctx, RT_F32, 2, &err)) rt_harness_die(err.msg);
    rt_rng r;
    rt_rng_seed(&r, seed);
    FILE *meta = rt_harness_meta();
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        float *w = malloc(n * sizeof(float)), *host = malloc(n * sizeof(float)),
              *dev = malloc(n * sizeof(float));
        if (!w || !host || !dev) rt_harness_die("out of memory");
        float std = k == 3 ? 1.0f : 0.02f;
        for (size_t i = 0; i < n; i++) w[i] = std * rt_rng_normal(&r);
        if (k < 3) {
            memset(w + 64, 0, 64 * sizeof(float)); // an all-zero block
            w[200] = 40.0f * std;                  // an outlier dominating its block
        }
        for (int dq = 0; dq < 2; dq++) {
            rt_nf4 q;
            if (rt_nf4_quantize(w, n, dq, &q, "weights", &err)) rt_harness_die(err.msg);
            rt_nf4_dequantize(&q, host);
            ctx.be->nf4_dequantize(&ctx, dev, q.codes, q.absmax, q.absmax_q, q.absmax_scale, q.absmax_offset,
                                   n);
            char name[64];
#define DUMP(field, ptr, bytes)                                                                              \
    snprintf(name, sizeof name, "t%zu_dq%d_%s", k, dq, field);                                               \
    rt_harness_dump(name, ptr, bytes)
            DUMP("w", w, n * sizeof(float));
            DUMP("codes", q.codes, (n + 1) / 2);
            if (dq) {
                DUMP("absmax_q", q.absmax_q, q.n_blocks);
                DUMP("absmax_scale", q.absmax_scale, q.n_scales * sizeof(float));
                DUMP("absmax_offset", &q.absmax_offset, sizeof(float));
            } else {
                DUMP("absmax", q.absmax, q.n_blocks * sizeof(float));
            }
            DUMP("deq_host", host, n * sizeof(float));
            DUMP("deq_op", dev, n * sizeof(float));
#undef DUMP
            fprintf(meta, "tensor %zu %zu %d %zu\n", k, n, dq, rt_nf4_bytes(&q));
            rt_nf4_free(&q);
        }
        free(w);
        free(host);
        free(dev);
    }
    fclose(meta);
    ctx.be->ctx_free(&ctx);
}

static void download_param(rt_model *m, const rt_param *p, float *out) {
    m->ctx->be->download(m->ctx, out, p->master, RT_F32, p->n);
}

static void random_batch(rt_rng *r, int32_t *tok, int32_t *tgt, int n, int V) {
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)rt_rng_below(r, (uint64_t)V);
        tgt[i] = rt_rng_below(r, 5) == 0 ? -1 : (int32_t)rt_rng_below(r, (uint64_t)V);
    }
}

static void run_lora(int qlora, int partial, int tied, uint64_t seed) {
    rt_model_dims d = rt_harness_dims(tied);
    if (qlora && !tied) {
        d.D = 12;
        d.attn_bias = 1;
    }
    const int B = 3, T = 13, N = B * T;
    rt_error err;
    rt_ctx ctx;
    if (rt_backend_cpu.ctx_init(&ctx, RT_F32, 2, &err)) rt_harness_die(err.msg);
    rt_model base;
    if (rt_model_create(&base, &d, &ctx, B, T, 0, &err)) rt_harness_die(err.msg);
    if (rt_model_init_weights(&base, seed, 0.08f, &err)) rt_harness_die(err.msg);
    rt_harness_random_biases(&base, seed + 5);
    rt_named_tensor *bw;
    int nb;
    if (rt_model_export_tensors(&base, &bw, NULL, NULL, &nb, &err)) rt_harness_die(err.msg);
    for (int i = 0; i < nb; i++) {
        char name[160];
        size_t n = (size_t)bw[i].shape[0] * (size_t)(bw[i].ndim == 2 ? bw[i].shape[1] : 1);
        snprintf(name, sizeof name, "base.%s", bw[i].name);
        rt_harness_dump(name, bw[i].data, n * sizeof(float));
    }

    unsigned some = (1u << RT_SITE_Q) | (1u << RT_SITE_V) | (1u << RT_SITE_GATE);
    rt_lora_spec spec = {.rank = 4,
                         .scale = 2.0f,
                         .dropout = qlora && !partial ? 0.0f : 0.25f,
                         .targets = partial ? some | (1u << RT_SITE_HEAD) : (1u << RT_N_SITES) - 1u,
                         .freeze_base = 1,
                         .nf4_sites = partial ? some
                                      : qlora ? (1u << RT_N_BLOCK_SITES) - 1u
                                              : 0u,
                         .double_quant = 1};
    rt_model m;
    if (rt_model_create_adapted(&m, &d, &spec, &ctx, B, T, 1, &err)) rt_harness_die(err.msg);
    if (rt_model_import_tensors(&m, bw, nb, NULL, NULL, 0, "base", &err)) rt_harness_die(err.msg);
    if (rt_model_init_adapters(&m, seed + 1, &err)) rt_harness_die(err.msg);
    for (int i = 0; i < m.n_params; i++) {
        rt_param *p = &m.params[i];
        if (p->adapter != (p->grad != NULL) || p->adapter != (p->m != NULL))
            rt_harness_die("a frozen weight has gradients");
        if (qlora && p->nf4 && (p->master || p->w))
            rt_harness_die("an NF4 weight kept a full-precision copy");
    }

    rt_rng r;
    rt_rng_seed(&r, seed + 99);
    int32_t tok[3 * 13], tgt[3 * 13];
    random_batch(&r, tok, tgt, N, d.V);
    int valid = 0;
    for (int i = 0; i < N; i++) valid += tgt[i] >= 0;
    rt_harness_dump("tokens", tok, sizeof tok);
    rt_harness_dump("targets", tgt, sizeof tgt);
    float *logits = malloc((size_t)N * d.V * sizeof(float)), *plain = malloc((size_t)N * d.V * sizeof(float));
    if (!logits || !plain) rt_harness_die("out of memory");

    // step 0: B = 0, so the adapted model is the base (for QLoRA, the NF4 base)
    if (rt_model_forward(&m, tok, NULL, B, T, 1.0f, &err) ||
        rt_model_forward(&base, tok, NULL, B, T, 1.0f, &err))
        rt_harness_die(err.msg);
    for (int i = 0; i < N; i++) {
        rt_model_logits_row(&m, i, logits + (size_t)i * d.V);
        rt_model_logits_row(&base, i, plain + (size_t)i * d.V);
    }
    rt_harness_dump("step0_logits", logits, (size_t)N * d.V * sizeof(float));
    rt_harness_dump("plain_logits", plain, (size_t)N * d.V * sizeof(float));

    // random B, then one batch with dropout (lora) through forward and backward
    size_t max_n = 0;
    for (int i = 0; i < m.n_params; i++)
        if (m.params[i].adapter && m.params[i].n > max_n) max_n = m.params[i].n;
    float *h = malloc(max_n * sizeof(float));
    if (!h) rt_harness_die("out of memory");
    for (int i = 0; i < m.n_params; i++) {
        rt_param *p = &m.params[i];
        if (!p->adapter) continue;
        if (strstr(p->name, ".lora_b")) {
            for (size_t j = 0; j < p->n; j++) h[j] = 0.1f * rt_rng_normal(&r);
            ctx.be->upload(&ctx, p->master, RT_F32, h, p->n);
        }
        download_param(&m, p, h);
        char name[160];
        snprintf(name, sizeof name, "adapter.%s", p->name);
        rt_harness_dump(name, h, p->n * sizeof(float));
    }
    m.dropout_on = 1;
    m.dropout_run_seed = seed;
    m.dropout_step = 5;
    m.dropout_micro = 1;
    uint64_t seeds[3 * RT_N_SITES];
    for (int l = -1; l < d.L; l++)
        for (int s = 0; s < RT_N_SITES; s++)
            seeds[(l + 1) * RT_N_SITES + s] = rt_lora_dropout_seed(seed, 5, 1, l, s);
    rt_harness_dump("dropout_seeds", seeds, sizeof seeds);
    if (rt_model_forward(&m, tok, NULL, B, T, 1.0f, &err)) rt_harness_die(err.msg);
    for (int i = 0; i < N; i++) rt_model_logits_row(&m, i, logits + (size_t)i * d.V);
    rt_harness_dump("logits", logits, (size_t)N * d.V * sizeof(float));
    rt_model_zero_grad(&m);
    if (rt_model_forward(&m, tok, tgt, B, T, 1.0f / (float)valid, &err)) rt_harness_die(err.msg);
    rt_model_backward(&m, B, T);
    float losses[3 * 13];
    ctx.be->download(&ctx, losses, m.losses, RT_F32, (size_t)N);
    rt_harness_dump("losses", losses, sizeof losses);
    for (int i = 0; i < m.n_params; i++) {
        rt_param *p = &m.params[i];
        if (!p->grad) continue;
        ctx.be->download(&ctx, h, p->grad, RT_F32, p->n);
        char name[160];
        snprintf(name, sizeof name, "grad.%s", p->name);
        rt_harness_dump(name, h, p->n * sizeof(float));
    }

    // a few optimizer steps: the base must not move
    rt_adamw_config oc = {.lr = 1e-2f,
                          .min_lr = 1e-3f,
                          .warmup_steps = 1,
                          .total_steps = 3,
                          .beta1 = 0.9f,
                          .beta2 = 0.95f,
                          .eps = 1e-8f,
                          .weight_decay = 0.1f,
                          .grad_clip = 1.0f};
    for (int s = 0; s < 3; s++) {
        rt_model_zero_grad(&m);
        if (rt_model_forward(&m, tok, tgt, B, T, 1.0f / (float)valid, &err)) rt_harness_die(err.msg);
        rt_model_backward(&m, B, T);
        rt_optimizer_step(&m, &oc, s + 1, rt_lr_at(&oc, s));
    }
    m.dropout_on = 0;
    rt_named_tensor *after;
    int na;
    if (rt_model_export_tensors(&m, &after, NULL, NULL, &na, &err)) rt_harness_die(err.msg);
    for (int i = 0; i < na; i++)
        if (!strstr(after[i].name, ".lora_")) rt_harness_die("an adapter checkpoint exported a base weight");
    rt_model_free_host_tensors(after, na);
    for (int i = 0; !qlora && i < m.n_params; i++) {
        rt_param *p = &m.params[i];
        if (p->adapter) continue;
        const rt_named_tensor *t = rt_named_tensor_find(bw, nb, p->name);
        float *now = malloc(p->n * sizeof(float));
        if (!now || !t) rt_harness_die("base lookup");
        ctx.be->download(&ctx, now, p->w, RT_F32, p->n);
        if (memcmp(now, t->data, p->n * sizeof(float)) != 0)
            rt_harness_die("a frozen base weight changed in training");
        free(now);
    }

    FILE *f = rt_harness_meta();
    fprintf(f,
            "V %d\nC %d\nL %d\nH %d\nKVH %d\nF %d\nT_max %d\neps %g\ntheta %g\ntied %d\nB %d\nT %d\n"
            "rank %d\nscale %g\ndropout %g\nqlora %d\nD %d\nattn_bias %d\ntargets %u\nnf4_sites %u\n",
            d.V, d.C, d.L, d.H, d.KVH, d.F, d.T_max, d.eps, d.theta, d.tied, B, T, spec.rank, spec.scale,
            spec.dropout, qlora, d.D, d.attn_bias, spec.targets, spec.nf4_sites);
    fclose(f);
    free(h);
    free(logits);
    free(plain);
    rt_model_free_host_tensors(bw, nb);
    rt_model_free(&m);
    rt_model_free(&base);
    ctx.be->ctx_free(&ctx);
}

int main(int argc, char **argv) {
    rt_harness_init("lora_harness", argc > 1 ? argv[1] : ".");
    if (argc != 5) rt_harness_die("usage: lora_harness OUT_DIR nf4|lora|qlora|qlora_partial TIED SEED");
    uint64_t seed = strtoull(argv[4], NULL, 10);
    if (strcmp(argv[2], "nf4") == 0)
        run_nf4(seed);
    else if (strcmp(argv[2], "lora") == 0 || strcmp(argv[2], "qlora") == 0)
        run_lora(strcmp(argv[2], "qlora") == 0, 0, atoi(argv[3]), seed);
    else if (strcmp(argv[2], "qlora_partial") == 0)
        run_lora(1, 1, atoi(argv[3]), seed);
    else
        rt_harness_die("mode is nf4, lora, qlora or qlora_partial");
    return 0;
}
