// Backward passes against central finite differences of the forward passes, on tiny shapes: for a random
// projection L = sum(out * R), every input element's dL/dx from the op's backward must match
// (L(x + h) - L(x - h)) / 2h. Independent of PyTorch: it checks the backward against our own forward.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "testutil.h"

static rt_ctx ctx;
static const rt_backend *be = &rt_backend_cpu;
static rt_rng rng;

static void setup(void) {
    rt_error err;
    ck_assert(be->ctx_init(&ctx, RT_F32, 2, &err) == 0);
    rt_rng_seed(&rng, 77);
}
static void teardown(void) {
    be->ctx_free(&ctx);
}

// The forward under test, evaluated as L = sum(out * R) in double.
typedef double (*loss_fn)(void *state);

// Compares analytic gradient g[n] of input x[n] with central differences of f.
static void check_grad(const char *what, loss_fn f, void *state, float *x, const float *g, size_t n) {
    const float h = 1e-2f;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = f(state);
        x[i] = keep - h;
        double lm = f(state);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double err = fabs(num - g[i]), tol = 5e-4 + 5e-3 * fabs(num);
        if (err > worst) worst = err;
        ck_assert_msg(err <= tol, "%s: element %zu: backward %.6g, finite difference %.6g", what, i, g[i],
                      num);
    }
}

static double dot(const float *a, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * r[i];
    return s;
}

// ---- rmsnorm
typedef struct {
    int N, C;
    float *x, *w, *out, *rstd, *R;
} norm_state;
static double norm_loss(void *p) {
    norm_state *s = p;
    be->rmsnorm_forward(&ctx, s->out, s->rstd, s->x, s->w, s->N, s->C, 1e-5f);
    return dot(s->out, s->R, (size_t)s->N * s->C);
}
START_TEST(test_rmsnorm) {
    norm_state s = {.N = 3, .C = 6};
    size_t n = (size_t)s.N * s.C;
    s.x = malloc(n * 4), s.w = malloc(s.C * 4), s.out = malloc(n * 4), s.rstd = malloc(s.N * 4),
    s.R = malloc(n * 4);
    rt_test_fill_uniform(&rng, s.x, n, -1, 1);
    rt_test_fill_uniform(&rng, s.w, s.C, 0.5f, 1.5f);
    rt_test_fill_uniform(&rng, s.R, n, -1, 1);
    float *dx = calloc(n, 4), *dw = calloc(s.C, 4);
    norm_loss(&s);
    be->rmsnorm_backward(&ctx, dx, dw, s.R, s.x, s.w, s.rstd, s.N, s.C);
    check_grad("rmsnorm dx", norm_loss, &s, s.x, dx, n);
    check_grad("rmsnorm dweight", norm_loss, &s, s.w, dw, s.C);
    free(s.x), free(s.w), free(s.out), free(s.rstd), free(s.R), free(dx), free(dw);
}
END_TEST

// ---- rope
typedef struct {
    int B, T, H, D;
    float *x, *out, *cs, *sn, *R;
} rope_state;
static double rope_loss(void *p) {
    rope_state *s = p;
    be->rope_forward(&ctx, s->out, s->x, s->cs, s->sn, s->B, s->T, s->H, s->D, s->H * s->D);
    return dot(s->out, s->R, (size_t)s->B * s->T * s->H * s->D);
}
START_TEST(test_rope) {
    rope_state s = {.B = 2, .T = 3, .H = 2, .D = 4};
    size_t n = (size_t)s.B * s.T * s.H * s.D;
    s.x = malloc(n * 4), s.out = malloc(n * 4), s.R = malloc(n * 4), s.cs = malloc(s.T * 2 * 4),
    s.sn = malloc(s.T * 2 * 4);
    for (int t = 0; t < s.T; t++)
        for (int i = 0; i < 2; i++)
            s.cs[t * 2 + i] = cosf(t * powf(1e4f, -i / 2.0f)),
                         s.sn[t * 2 + i] = sinf(t * powf(1e4f, -i / 2.0f));
    rt_test_fill_uniform(&rng, s.x, n, -1, 1);
    rt_test_fill_uniform(&rng, s.R, n, -1, 1);
    float *dx = malloc(n * 4);
    be->rope_backward(&ctx, dx, s.R, s.cs, s.sn, s.B, s.T, s.H, s.D, s.H * s.D);
    check_grad("rope dx", rope_loss, &s, s.x, dx, n);
    free(s.x), free(s.out), free(s.R), free(s.cs), free(s.sn), free(dx);
}
END_TEST

// ---- attention (grouped-query)
typedef struct {
    int B, T, H, KVH, D;
    float *q, *k, *v, *out, *lse, *R;
} att_state;
static double att_loss(void *p) {
    att_state *s = p;
    be->attention_forward(&ctx, s->out, s->lse, s->q, s->k, s->v, s->B, s->T, s->H, s->KVH, s->D, s->H * s->D,
                          s->KVH * s->D);
    return dot(s->out, s->R, (size_t)s->B * s->T * s->H * s->D);
}
START_TEST(test_attention) {
    att_state s = {.B = 2, .T = 4, .H = 4, .KVH = 2, .D = 4};
    size_t nq = (size_t)s.B * s.T * s.H * s.D, nk = (size_t)s.B * s.T * s.KVH * s.D;
    s.q = malloc(nq * 4), s.k = malloc(nk * 4), s.v = malloc(nk * 4), s.out = malloc(nq * 4),
    s.R = malloc(nq * 4);
    s.lse = malloc((size_t)s.B * s.H * s.T * 4);
    rt_test_fill_uniform(&rng, s.q, nq, -1, 1);
    rt_test_fill_uniform(&rng, s.k, nk, -1, 1);
    rt_test_fill_uniform(&rng, s.v, nk, -1, 1);
    rt_test_fill_uniform(&rng, s.R, nq, -1, 1);
    float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    att_loss(&s);
    be->attention_backward(&ctx, dq, dk, dv, s.R, s.q, s.k, s.v, s.out, s.lse, s.B, s.T, s.H, s.KVH, s.D,
                           s.H * s.D, s.KVH * s.D);
    check_grad("attention dq", att_loss, &s, s.q, dq, nq);
    check_grad("attention dk", att_loss, &s, s.k, dk, nk);
    check_grad("attention dv", att_loss, &s, s.v, dv, nk);
    free(s.q), free(s.k), free(s.v), free(s.out), free(s.R), free(s.lse), free(dq), free(dk), free(dv);
}
END_TEST

// ---- swiglu
typedef struct {
    size_t n;
    float *g, *u, *out, *R;
} glu_state;
static double glu_loss(void *p) {
    glu_state *s = p;
    be->swiglu_forward(&ctx, s->out, s->g, s->u, 1, (int)s->n, (int)s->n);
    return dot(s->out, s->R, s->n);
}
START_TEST(test_swiglu) {
    glu_state s = {.n = 13};
    s.g = malloc(s.n * 4), s.u = malloc(s.n * 4), s.out = malloc(s.n * 4), s.R = malloc(s.n * 4);
    rt_test_fill_uniform(&rng, s.g, s.n, -3, 3);
    rt_test_fill_uniform(&rng, s.u, s.n, -1, 1);
    rt_test_fill_uniform(&rng, s.R, s.n, -1, 1);
    float *dg = malloc(s.n * 4), *du = malloc(s.n * 4);
    be->swiglu_backward(&ctx, dg, du, s.R, s.g, s.u, 1, (int)s.n, (int)s.n);
    check_grad("swiglu dgate", glu_loss, &s, s.g, dg, s.n);
    check_grad("swiglu dup", glu_loss, &s, s.u, du, s.n);
    free(s.g), free(s.u), free(s.out), free(s.R), free(dg), free(du);
}
END_TEST

// ---- bias: out = x + bias on every row
typedef struct {
    int N, n;
    float *x, *b, *out, *R;
} bias_state;
static double bias_loss(void *p) {
    bias_state *s = p;
    size_t total = (size_t)s->N * s->n;
    memcpy(s->out, s->x, total * sizeof(float));
    be->add_bias_rows(&ctx, s->out, s->b, s->N, s->n);
    return dot(s->out, s->R, total);
}
START_TEST(test_bias) {
    bias_state s = {.N = 5, .n = 7};
    size_t total = (size_t)s.N * s.n;
    s.x = malloc(total * 4), s.b = malloc(s.n * 4), s.out = malloc(total * 4), s.R = malloc(total * 4);
    rt_test_fill_uniform(&rng, s.x, total, -1, 1);
    rt_test_fill_uniform(&rng, s.b, s.n, -1, 1);
    rt_test_fill_uniform(&rng, s.R, total, -1, 1);
    float *db = calloc(s.n, 4);
    be->bias_backward(&ctx, db, s.R, s.N, s.n);
    check_grad("bias dbias", bias_loss, &s, s.b, db, (size_t)s.n);
    free(s.x), free(s.b), free(s.out), free(s.R), free(db);
}
END_TEST

// ---- cross-entropy: L = sum of losses * 0.5 (the grad_scale)
typedef struct {
    int N, V;
    float *logits, *losses;
    int32_t *tg;
} ce_state;
static double ce_loss(void *p) {
    ce_state *s = p;
    be->cross_entropy(&ctx, s->losses, NULL, s->logits, s->tg, s->N, s->V, 1.0f);
    double sum = 0;
    for (int i = 0; i < s->N; i++) sum += 0.5 * s->losses[i];
    return sum;
}
START_TEST(test_cross_entropy) {
    ce_state s = {.N = 4, .V = 9};
    int32_t tg[4] = {3, -1, 8, 0};
    s.tg = tg;
    size_t n = (size_t)s.N * s.V;
    s.logits = malloc(n * 4), s.losses = malloc(s.N * 4);
    rt_test_fill_uniform(&rng, s.logits, n, -2, 2);
    float *dl = malloc(n * 4);
    be->cross_entropy(&ctx, s.losses, dl, s.logits, tg, s.N, s.V, 0.5f);
    check_grad("cross_entropy dlogits", ce_loss, &s, s.logits, dl, n);
    free(s.logits), free(s.losses), free(dl);
}
END_TEST

// ---- distillation: L = grad_scale * sum((1 - alpha) ce + alpha T^2 kd), every teacher kind and divergence
typedef struct {
    int N, V, k;
    float *logits, *teacher, *lps, *ce, *kd;
    int32_t *tg, *ids;
    rt_kd_params p;
} kd_state;
static double kd_loss(void *q) {
    kd_state *s = q;
    be->distill_loss(&ctx, s->ce, s->kd, NULL, s->logits, s->teacher, s->ids, s->lps, s->k, s->tg, s->N, s->V,
                     &s->p, 1.0f);
    double sum = 0, T = s->p.temperature;
    for (int i = 0; i < s->N; i++) sum += 0.5 * ((1 - s->p.alpha) * s->ce[i] + s->p.alpha * T * T * s->kd[i]);
    return sum;
}
START_TEST(test_distill) {
    enum { N = 4, V = 9, K = 3 };
    int32_t tg[N] = {3, -1, 8, 0}, ids[N * K];
    float logits[N * V], teacher[N * V], lps[N * K], ce[N], kd[N], dl[N * V];
    rt_test_fill_uniform(&rng, logits, N * V, -2, 2);
    rt_test_fill_uniform(&rng, teacher, N * V, -3, 3);
    // the sparse teacher: the top K of log_softmax(teacher / 2) in descending order; row 3 has none
    for (int i = 0; i < N; i++) {
        const float *t = teacher + i * V;
        double mx = t[0], z = 0;
        for (int j = 1; j < V; j++) mx = t[j] > mx ? t[j] : mx;
        for (int j = 0; j < V; j++) z += exp((t[j] - mx) / 2.0);
        for (int c = 0; c < K; c++) {
            int best = -1;
            for (int j = 0; j < V; j++) {
                int taken = 0;
                for (int e = 0; e < c; e++) taken |= ids[i * K + e] == j;
                if (!taken && (best < 0 || t[j] > t[best])) best = j;
            }
            ids[i * K + c] = i == 3 ? -1 : best;
            lps[i * K + c] = (float)((t[best] - mx) / 2.0 - log(z));
        }
    }
    static const char *tails[] = {"dense", "bucket", "renorm"}, *divs[] = {"forward KL", "reverse KL", "JSD"};
    for (int kind = 0; kind < 3; kind++)
        for (int div = 0; div < 3; div++) {
            kd_state s = {.N = N, .V = V, .k = K, .logits = logits, .ce = ce, .kd = kd, .tg = tg};
            s.p = (rt_kd_params){.divergence = (rt_kd_divergence)div,
                                 .temperature = 2.0f,
                                 .alpha = 0.6f,
                                 .beta = 0.3f,
                                 .tail = kind == 2 ? RT_KD_TAIL_RENORM : RT_KD_TAIL_BUCKET,
                                 .topk_temperature = kind == 2 ? 1.0f : 2.0f};
            if (kind == 0)
                s.teacher = teacher;
            else
                s.ids = ids, s.lps = lps;
            be->distill_loss(&ctx, ce, kd, dl, logits, s.teacher, s.ids, s.lps, K, tg, N, V, &s.p, 0.5f);
            char what[64];
            snprintf(what, sizeof what, "distill %s %s dlogits", tails[kind], divs[div]);
            check_grad(what, kd_loss, &s, logits, dl, N * V);
        }
}
END_TEST

// ---- embedding: L = sum(table[tokens] * R)
typedef struct {
    int N, C;
    int32_t *tok;
    float *table, *out, *R;
} emb_state;
static double emb_loss(void *p) {
    emb_state *s = p;
    be->embedding_forward(&ctx, s->out, s->tok, s->table, s->N, s->C);
    return dot(s->out, s->R, (size_t)s->N * s->C);
}
START_TEST(test_embedding) {
    int32_t tok[5] = {2, 0, 2, 3, 2};
    emb_state s = {.N = 5, .C = 3, .tok = tok};
    s.table = malloc(4 * 3 * 4), s.out = malloc(15 * 4), s.R = malloc(15 * 4);
    rt_test_fill_uniform(&rng, s.table, 12, -1, 1);
    rt_test_fill_uniform(&rng, s.R, 15, -1, 1);
    float *dt = calloc(12, 4);
    be->embedding_backward(&ctx, dt, s.R, tok, s.N, s.C);
    check_grad("embedding dtable", emb_loss, &s, s.table, dt, 12);
    free(s.table), free(s.out), free(s.R), free(dt);
}
END_TEST

int main(void) {
    Suite *s = suite_create("finite differences");
    TCase *tc = tcase_create("gradcheck");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_distill);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_bias);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
