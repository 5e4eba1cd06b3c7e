// Knowledge-distillation loss fused with its gradient (the contract is in backend.h, the formulas for users
// in docs/distillation.md). Row-parallel. A row is a few passes over V: the maxima, the normalisers, the
// divergence, then the gradient, which is written only after every read of the row, so it may overwrite the
// logits in place. Per-element math is fp32 (cpu_expf and a polynomial log1p, so the loops vectorize); every
// sum runs in double in fixed lanes, or in index order over the k ids of a sparse teacher, so results are
// bit-identical run to run. A sparse row keeps its k per-id values in the thread's scratch. The formulas of
// one category are backend/kd_math.h, shared with the CUDA twin.
#include <math.h>
#include <omp.h>

#include "bf16.h"
#include "cpu_internal.h"

// log(1 + x) for 0 <= x <= 1 within a few ulp (Cephes logf polynomial on [sqrt(1/2) - 1, sqrt(2) - 1]),
// branch-free so loops vectorize.
static inline float kd_log1p01(float x) {
    int hi = x > 0.41421356f;
    float f = hi ? (x - 1.0f) * 0.5f : x; // 1 + x = 2^hi (1 + f)
    float z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z + (hi ? -2.12194440e-4f : 0.0f) - 0.5f * z;
    return f + y + (hi ? 0.693359375f : 0.0f);
}

// log(e^a + e^b) for a, b not both -inf.
static inline float kd_logaddexp(float a, float b) {
    float m = a > b ? a : b, d = a > b ? b - a : a - b;
    return m + kd_log1p01(cpu_expf(d));
}

#define RT_KD_LOGADDEXP(a, b) kd_logaddexp(a, b)
#include "backend/kd_math.h"

static double lanes_total(const double *acc) {
    double s = 0.0;
    for (int l = 0; l < CPU_LANES; l++) s += acc[l];
    return s;
}

// The row's student normalisers: Z1 = sum exp(z - mz) (temperature 1) and Zu = sum exp((z - mz) / T).
static void student_sums(const rt_kd_cfg *c, const float *z, int V, float mz, double *Z1, double *Zu) {
    double s1[CPU_LANES] = {0}, su[CPU_LANES] = {0};
    int j = 0;
    for (; j + CPU_LANES <= V; j += CPU_LANES)
        for (int l = 0; l < CPU_LANES; l++) {
            float e = z[j + l] - mz;
            s1[l] += cpu_expf(e);
            su[l] += cpu_expf(e * c->inv_t);
        }
    for (int l = 0; j < V; j++, l++) {
        float e = z[j] - mz;
        s1[l] += cpu_expf(e);
        su[l] += cpu_expf(e * c->inv_t);
    }
    *Z1 = lanes_total(s1);
    *Zu = lanes_total(su);
}

// dz[j] = wce softmax(z)_j - a p_j (p = softmax(z / T)) for every j, then the one-hot of the target.
static void write_dense(const rt_kd_cfg *c, float *dz, const float *z, int V, int y, float mz, double Z1,
                        double Zu, float a) {
    float s1 = (float)(c->wce / Z1), su = (float)(a / Zu);
#pragma omp simd
    for (int j = 0; j < V; j++) {
        float e = z[j] - mz;
        dz[j] = s1 * cpu_expf(e) - su * cpu_expf(e * c->inv_t);
    }
    dz[y] -= c->wce;
}

// Dense teacher v: categories = the whole vocabulary, r = softmax(v / T), q = softmax(z / T).
static void dense_row(const rt_kd_cfg *c, float *ce, float *kd, float *dz, const float *z, const float *v,
                      int y, int V) {
    float mz = cpu_max(z, V), mv = cpu_max(v, V);
    double Z1, Zu, sw[CPU_LANES] = {0};
    student_sums(c, z, V, mz, &Z1, &Zu);
    int j = 0;
    for (; j + CPU_LANES <= V; j += CPU_LANES)
        for (int l = 0; l < CPU_LANES; l++) sw[l] += cpu_expf((v[j + l] - mv) * c->inv_t);
    for (int l = 0; j < V; j++, l++) sw[l] += cpu_expf((v[j] - mv) * c->inv_t);
    float lzu = (float)log(Zu), lzw = (float)log(lanes_total(sw));
    *ce = (float)(log(Z1) + (double)mz - (double)z[y]);

    double sd[CPU_LANES] = {0}, sg[CPU_LANES] = {0}; // D, and sum q g
    j = 0;
    for (; j + CPU_LANES <= V; j += CPU_LANES)
        for (int l = 0; l < CPU_LANES; l++) {
            float lq = (z[j + l] - mz) * c->inv_t - lzu, lr = (v[j + l] - mv) * c->inv_t - lzw, d, g;
            float q = cpu_expf(lq);
            rt_kd_cat(c, lr, lq, cpu_expf(lr), q, &d, &g);
            sd[l] += d;
            sg[l] += q * g;
        }
    for (int l = 0; j < V; j++, l++) {
        float lq = (z[j] - mz) * c->inv_t - lzu, lr = (v[j] - mv) * c->inv_t - lzw, d, g;
        float q = cpu_expf(lq);
        rt_kd_cat(c, lr, lq, cpu_expf(lr), q, &d, &g);
        sd[l] += d;
        sg[l] += q * g;
    }
    *kd = (float)lanes_total(sd);
    if (!dz) return;
    float S = (float)lanes_total(sg), s1 = (float)(c->wce / Z1);
    for (j = 0; j < V; j++) {
        float e = z[j] - mz, lq = e * c->inv_t - lzu, lr = (v[j] - mv) * c->inv_t - lzw, d, g;
        float q = cpu_expf(lq), r = cpu_expf(lr);
        rt_kd_cat(c, lr, lq, r, q, &d, &g);
        dz[j] = s1 * cpu_expf(e) + c->wkd * rt_kd_soft_grad(c, q, r, g, S);
    }
    dz[y] -= c->wce;
}

// Sparse teacher (k ids with stored log-probs; ids[0] >= 0 and every id in [0, V)). Writes kd and, when dz,
// the k gradient values of the ids into val[k] and returns the coefficient a of the dense part
// (-wkd p_j A for the bucket, 0 for renorm). lq, lr: scratch [k] each.
static float sparse_kd(const rt_kd_cfg *c, rt_kd_tail tail, float lp_scale, float *kd, float *val, float *lq,
                       float *lr, const float *z, const int32_t *ids, const float *lp, int k, int y, float mz,
                       double Z1, double Zu) {
    double D = 0.0;
    float a = 0.0f;
    if (tail == RT_KD_TAIL_BUCKET) {
        // q_tail = 1 - sum_S p as (Zu - E_S) / Zu, where E_S sums the very terms of Zu that belong to S: the
        // difference is then the sum of the other terms, accurate however small; r_c = exp(l_c) in double
        float lzu = (float)log(Zu);
        double ES = 0.0, RS = 0.0;
        for (int i = 0; i < k; i++) {
            float e = (z[ids[i]] - mz) * c->inv_t;
            ES += cpu_expf(e);
            RS += exp((double)lp[i]);
            lq[i] = e - lzu;
        }
        double qraw = (Zu - ES) / Zu, qt = qraw > 0.0 ? qraw : 0.0, rt = 1.0 - RS > 0.0 ? 1.0 - RS : 0.0;
        double gt, As = 0.0;
        rt_kd_bucket_tail(c, rt, qt, &D, &gt);
        for (int i = 0; i < k; i++) {
            float r = cpu_expf(lp[i]), q = cpu_expf(lq[i]), d, g;
            rt_kd_cat(c, lp[i], lq[i], r, q, &d, &g);
            D += d;
            lr[i] = c->div == RT_KD_FORWARD_KL ? -r : q * g; // p_c g_c
            As += lr[i];
        }
        // A = sum_S p_c (g_c - g_tail); at an id the gradient is p_c (g_c - g_tail - A) = p_c g_c - p_c B
        // with B = g_tail + A = As + g_tail q_tail formed in double, which keeps it exact when q_tail -> 0
        double B = As + gt * qraw;
        a = (float)(c->wkd * (B - gt));
        for (int i = 0; i < k; i++) lr[i] = c->wkd * (lr[i] - (float)B * cpu_expf(lq[i]));
    } else {
        // renorm: student softmax(u) and teacher softmax(l * T_capture / T), both over the k ids
        float mq = -INFINITY, mr = -INFINITY;
        for (int i = 0; i < k; i++) {
            lq[i] = (z[ids[i]] - mz) * c->inv_t;
            lr[i] = lp[i] * lp_scale;
            mq = lq[i] > mq ? lq[i] : mq;
            mr = lr[i] > mr ? lr[i] : mr;
        }
        double zq = 0.0, zr = 0.0, S = 0.0;
        for (int i = 0; i < k; i++) zq += cpu_expf(lq[i] - mq), zr += cpu_expf(lr[i] - mr);
        float lzq = (float)log(zq) + mq, lzr = (float)log(zr) + mr;
        for (int i = 0; i < k; i++) {
            lq[i] -= lzq;
            lr[i] -= lzr;
            float r = cpu_expf(lr[i]), q = cpu_expf(lq[i]), d, g;
            rt_kd_cat(c, lr[i], lq[i], r, q, &d, &g);
            D += d;
            S += q * g;
        }
        for (int i = 0; i < k; i++) {
            float r = cpu_expf(lr[i]), q = cpu_expf(lq[i]), d, g;
            rt_kd_cat(c, lr[i], lq[i], r, q, &d, &g);
            lr[i] = c->wkd * rt_kd_soft_grad(c, q, r, g, (float)S);
        }
    }
    *kd = (float)D;
    if (val) {
        float s1 = (float)(c->wce / Z1);
        for (int i = 0; i < k; i++)
            val[i] = s1 * cpu_expf(z[ids[i]] - mz) - (ids[i] == y ? c->wce : 0.0f) + lr[i];
    }
    return a;
}

static void zero_row(float *dz, int V) {
    if (dz)
        for (int j = 0; j < V; j++) dz[j] = 0.0f;
}

void cpu_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                      const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs, int k,
                      const int32_t *targets, int N, int V, const rt_kd_params *p, float grad_scale) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_distill_loss(ctx, ce, kd, dlogits, logits, teacher_logits, topk_ids, topk_logprobs, k,
                              targets, N, V, p, grad_scale);
        return;
    }
    rt_kd_cfg c = rt_kd_cfg_of(p, grad_scale);
    const float *x = logits, *tv = teacher_logits;
    float *dx = dlogits;
    int sparse = tv == NULL;
    float *scratch = sparse ? cpu_scratch(ctx, 3 * (size_t)(k > 0 ? k : 1)) : NULL;
    size_t per = cpu_of(ctx)->scratch_per_thread;
    float lp_scale = p->topk_temperature / p->temperature;
    int nt = cpu_threads(ctx, (size_t)N * V);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int i = 0; i < N; i++) {
        const float *z = x + (size_t)i * V;
        float *dz = dx ? dx + (size_t)i * V : NULL;
        const int32_t *ids = sparse ? topk_ids + (size_t)i * k : NULL;
        int y = targets[i], teacher = !sparse || (k > 0 && ids[0] >= 0), bad = y >= V;
        for (int j = 0; sparse && teacher && j < k; j++) bad |= ids[j] < 0 || ids[j] >= V;
        if (y < 0 ||
            bad) { // ignored, or impossible after dataset validation (then NaN, not a plausible loss)
            ce[i] = kd[i] = y < 0 ? 0.0f : NAN;
            zero_row(dz, V);
            continue;
        }
        if (!sparse) {
            dense_row(&c, &ce[i], &kd[i], dz, z, tv + (size_t)i * V, y, V);
            continue;
        }
        float mz = cpu_max(z, V), a = 0.0f;
        double Z1, Zu;
        student_sums(&c, z, V, mz, &Z1, &Zu);
        ce[i] = (float)(log(Z1) + (double)mz - (double)z[y]);
        float *val = scratch + (size_t)omp_get_thread_num() * per, *lq = val + k, *lr = lq + k;
        if (teacher)
            a = sparse_kd(&c, p->tail, lp_scale, &kd[i], dz ? val : NULL, lq, lr, z, ids,
                          topk_logprobs + (size_t)i * k, k, y, mz, Z1, Zu);
        else
            kd[i] = 0.0f;
        if (!dz) continue;
        write_dense(&c, dz, z, V, y, mz, Z1, Zu, a);
        for (int j = 0; teacher && j < k; j++) dz[ids[j]] = val[j];
    }
}
