// Every CPU backend op, forward and backward, against PyTorch float64 references (tests/ref_ops.py writes
// them; RT_OPS_REF names the file). Accumulating outputs start from random prefills; in-place variants run
// too; outputs are poisoned with NaN first so an element the op forgets to write fails.
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "testutil.h"

static const char *ref_file(void) { return rt_test_env("RT_OPS_REF"); }

static int case_exists(const char *op, int i) {
    char path[128];
    snprintf(path, sizeof path, "/%s/%d", op, i);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(ref_file(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", ref_file());
    htri_t a = H5Lexists(f, op, H5P_DEFAULT);
    htri_t e = a > 0 ? H5Lexists(f, path, H5P_DEFAULT) : 0;
    H5Fclose(f);
    return e > 0;
}

static float *get(const char *op, int i, const char *name, size_t *n) {
    char path[128];
    snprintf(path, sizeof path, "/%s/%d/%s", op, i, name);
    size_t dummy;
    return rt_test_h5_read_f32(ref_file(), path, n ? n : &dummy);
}

static int *dims(const char *op, int i) {
    char path[128];
    size_t n;
    snprintf(path, sizeof path, "/%s/%d/dims", op, i);
    return rt_test_h5_read_i32(ref_file(), path, &n);
}

static float *poisoned(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static rt_ctx ctx;
static const rt_backend *be = &rt_backend_cpu;

static void setup(void) {
    rt_error err;
    ck_assert_msg(be->ctx_init(&ctx, RT_F32, 2, &err) == 0, "%s", err.msg);
}
static void teardown(void) { be->ctx_free(&ctx); }

#define CLOSE(what, got, ref, n, atol, rtol)                                                                  \
    do {                                                                                                       \
        char label_[160];                                                                                      \
        snprintf(label_, sizeof label_, "%s case %d: %s", op, i, what);                                        \
        rt_test_assert_close(label_, got, ref, n, atol, rtol);                                                 \
    } while (0)

START_TEST(test_matmul) {
    const char *op = "matmul";
    for (int i = 0; case_exists(op, i); i++) {
        int *d = dims(op, i);
        int M = d[0], N = d[1], K = d[2], ta = d[3], tb = d[4], beta = d[5];
        size_t n;
        float *a = get(op, i, "a", NULL), *b = get(op, i, "b", NULL), *c = get(op, i, "c0", &n);
        float *ref = get(op, i, "out", NULL);
        if (!beta)
            for (size_t j = 0; j < n; j++) c[j] = NAN;  // beta 0 must not read the output
        be->matmul(&ctx, c, a, b, M, N, K, ta, tb, 0.7f, (float)beta);
        CLOSE("out", c, ref, n, 1e-5f, 1e-5f);
        free(a), free(b), free(c), free(ref), free(d);
    }
}
END_TEST

START_TEST(test_embedding) {
    const char *op = "embedding";
    for (int i = 0; case_exists(op, i); i++) {
        int *d = dims(op, i);
        int N = d[0], C = d[1];
        size_t nt, ntab;
        char path[64];
        snprintf(path, sizeof path, "/%s/%d/tokens", op, i);
        int32_t *tokens = rt_test_h5_read_i32(ref_file(), path, &nt);
        float *table = get(op, i, "table", &ntab), *dout = get(op, i, "dout", NULL);
        float *dtable = get(op, i, "prefill", NULL), *out = poisoned((size_t)N * C);
        float *ref_out = get(op, i, "out", NULL), *ref_dt = get(op, i, "dtable", NULL);
        be->embedding_forward(&ctx, out, tokens, table, N, C);
        CLOSE("forward", out, ref_out, (size_t)N * C, 0, 0);
        be->embedding_backward(&ctx, dtable, dout, tokens, N, C);
        CLOSE("backward (accumulated)", dtable, ref_dt, ntab, 1e-5f, 1e-5f);
        free(tokens), free(table), free(dout), free(dtable), free(out), free(ref_out), free(ref_dt), free(d);
    }
}
END_TEST

START_TEST(test_rmsnorm) {
    const char *op = "rmsnorm";
    for (int i = 0; case_exists(op, i); i++) {
        int *d = dims(op, i);
        int N = d[0], C = d[1];
        float *x = get(op, i, "x", NULL), *w = get(op, i, "w", NULL), *dout = get(op, i, "dout", NULL);
        float *dx = get(op, i, "pdx", NULL), *dw = get(op, i, "pdw", NULL);
        float *out = poisoned((size_t)N * C), *rstd = poisoned((size_t)N);
        float *r_out = get(op, i, "out", NULL), *r_rstd = get(op, i, "rstd", NULL);
        float *r_dx = get(op, i, "dx", NULL), *r_dw = get(op, i, "dw", NULL);
        be->rmsnorm_forward(&ctx, out, rstd, x, w, N, C, 1e-5f);
        CLOSE("out", out, r_out, (size_t)N * C, 1e-5f, 1e-5f);
        CLOSE("rstd", rstd, r_rstd, (size_t)N, 1e-5f, 1e-5f);
        be->rmsnorm_backward(&ctx, dx, dw, dout, x, w, rstd, N, C);
        CLOSE("dx (accumulated)", dx, r_dx, (size_t)N * C, 1e-4f, 1e-4f);
        CLOSE("dweight (accumulated)", dw, r_dw, (size_t)C, 1e-4f, 1e-4f);
        free(x), free(w), free(dout), free(dx), free(dw), free(out), free(rstd), free(r_out), free(r_rstd);
        free(r_dx), free(r_dw), free(d);
    }
}
END_TEST

START_TEST(test_rope) {
    const char *op = "rope";
    for (int i = 0; case_exists(op, i); i++) {
        int *d = dims(op, i);
        int B = d[0], T = d[1], H = d[2], D = d[3];
        size_t n;
        float *cs = get(op, i, "cos", NULL), *sn = get(op, i, "sin", NULL), *x = get(op, i, "x", &n);
        float *dout = get(op, i, "dout", NULL), *r_out = get(op, i, "out", NULL), *r_dx = get(op, i, "dx", NULL);
        float *out = poisoned(n), *dx = poisoned(n);
        be->rope_forward(&ctx, out, x, cs, sn, B, T, H, D);
        CLOSE("forward", out, r_out, n, 1e-5f, 1e-5f);
        be->rope_backward(&ctx, dx, dout, cs, sn, B, T, H, D);
        CLOSE("backward", dx, r_dx, n, 1e-5f, 1e-5f);
        be->rope_forward(&ctx, x, x, cs, sn, B, T, H, D);  // in place
        CLOSE("forward in place", x, r_out, n, 1e-5f, 1e-5f);
        be->rope_backward(&ctx, dout, dout, cs, sn, B, T, H, D);
        CLOSE("backward in place", dout, r_dx, n, 1e-5f, 1e-5f);
        free(cs), free(sn), free(x), free(dout), free(r_out), free(r_dx), free(out), free(dx), free(d);
    }
}
END_TEST

START_TEST(test_attention) {
    const char *op = "attention";
    for (int i = 0; case_exists(op, i); i++) {
        int *d = dims(op, i);
        int B = d[0], T = d[1], H = d[2], KVH = d[3], D = d[4];
        size_t nq, nk;
        float *q = get(op, i, "q", &nq), *k = get(op, i, "k", &nk), *v = get(op, i, "v", NULL);
        float *dout = get(op, i, "dout", NULL);
        float *r_out = get(op, i, "out", NULL), *r_lse = get(op, i, "lse", NULL);
        float *r_dq = get(op, i, "dq", NULL), *r_dk = get(op, i, "dk", NULL), *r_dv = get(op, i, "dv", NULL);
        float *out = poisoned(nq), *lse = poisoned((size_t)B * H * T);
        float *dq = poisoned(nq), *dk = poisoned(nk), *dv = poisoned(nk);
        be->attention_forward(&ctx, out, lse, q, k, v, B, T, H, KVH, D);
        CLOSE("out", out, r_out, nq, 1e-5f, 1e-4f);
        CLOSE("lse", lse, r_lse, (size_t)B * H * T, 1e-5f, 1e-5f);
        be->attention_backward(&ctx, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KVH, D);
        CLOSE("dq", dq, r_dq, nq, 1e-4f, 1e-4f);
        CLOSE("dk", dk, r_dk, nk, 1e-4f, 1e-4f);
        CLOSE("dv", dv, r_dv, nk, 1e-4f, 1e-4f);
        // determinism: the same inputs give the same bits
        float *dk2 = poisoned(nk), *dv2 = poisoned(nk), *dq2 = poisoned(nq);
        be->attention_backward(&ctx, dq2, dk2, dv2, dout, q, k, v, out, lse, B, T, H, KVH, D);
        ck_assert_msg(memcmp(dq, dq2, nq * 4) == 0 && memcmp(dk, dk2, nk * 4) == 0 && memcmp(dv, dv2, nk * 4) == 0,
                      "attention backward is not deterministic");
        free(q), free(k), free(v), free(dout), free(r_out), free(r_lse), free(r_dq), free(r_dk), free(r_dv);
        free(out), free(lse), free(dq), free(dk), free(dv), free(dk2), free(dv2), free(dq2), free(d);
    }
}
END_TEST

START_TEST(test_swiglu) {
    const char *op = "swiglu";
    for (int i = 0; case_exists(op, i); i++) {
        size_t n;
        float *g = get(op, i, "gate", &n), *u = get(op, i, "up", NULL), *dout = get(op, i, "dout", NULL);
        float *r_out = get(op, i, "out", NULL), *r_dg = get(op, i, "dgate", NULL), *r_du = get(op, i, "dup", NULL);
        float *out = poisoned(n), *dg = poisoned(n), *du = poisoned(n);
        be->swiglu_forward(&ctx, out, g, u, n);
        CLOSE("out", out, r_out, n, 1e-6f, 1e-5f);
        be->swiglu_backward(&ctx, dg, du, dout, g, u, n);
        CLOSE("dgate", dg, r_dg, n, 1e-6f, 1e-5f);
        CLOSE("dup", du, r_du, n, 1e-6f, 1e-5f);
        free(g), free(u), free(dout), free(r_out), free(r_dg), free(r_du), free(out), free(dg), free(du);
    }
}
END_TEST

START_TEST(test_cross_entropy) {
    const char *op = "cross_entropy";
    for (int i = 0; case_exists(op, i); i++) {
        int *d = dims(op, i);
        int N = d[0], V = d[1];
        size_t n, nt;
        char path[64];
        snprintf(path, sizeof path, "/%s/%d/targets", op, i);
        int32_t *targets = rt_test_h5_read_i32(ref_file(), path, &nt);
        float *logits = get(op, i, "logits", &n), *scale = get(op, i, "scale", NULL);
        float *r_loss = get(op, i, "losses", NULL), *r_dl = get(op, i, "dlogits", NULL);
        float *losses = poisoned((size_t)N), *dl = poisoned(n);
        be->cross_entropy(&ctx, losses, NULL, logits, targets, N, V, scale[0]);
        CLOSE("losses without gradient", losses, r_loss, (size_t)N, 1e-5f, 1e-5f);
        be->cross_entropy(&ctx, losses, dl, logits, targets, N, V, scale[0]);
        CLOSE("losses", losses, r_loss, (size_t)N, 1e-5f, 1e-5f);
        CLOSE("dlogits", dl, r_dl, n, 1e-6f, 1e-5f);
        be->cross_entropy(&ctx, losses, logits, logits, targets, N, V, scale[0]);  // in place
        CLOSE("dlogits in place", logits, r_dl, n, 1e-6f, 1e-5f);
        free(targets), free(logits), free(scale), free(r_loss), free(r_dl), free(losses), free(dl), free(d);
    }
}
END_TEST

START_TEST(test_adamw) {
    const char *op = "adamw";
    for (int i = 0; case_exists(op, i); i++) {
        size_t n;
        float *w = get(op, i, "w", &n), *grads = get(op, i, "grads", NULL), *p = get(op, i, "params", NULL);
        float *r_w = get(op, i, "w_out", NULL), *r_m = get(op, i, "m", NULL), *r_v = get(op, i, "v", NULL);
        float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float)), *copy = poisoned(n);
        for (int s = 1; s <= 3; s++)
            be->adamw(&ctx, w, copy, grads + (size_t)(s - 1) * n, m, v, n, p[0], p[1], p[2], p[3], p[4], s, &p[5]);
        CLOSE("weights", w, r_w, n, 1e-6f, 1e-5f);
        CLOSE("compute copy", copy, r_w, n, 1e-6f, 1e-5f);
        CLOSE("m", m, r_m, n, 1e-7f, 1e-5f);
        CLOSE("v", v, r_v, n, 1e-9f, 1e-5f);
        free(w), free(grads), free(p), free(r_w), free(r_m), free(r_v), free(m), free(v), free(copy);
    }
}
END_TEST

START_TEST(test_reductions) {
    const char *op = "reduce";
    for (int i = 0; case_exists(op, i); i++) {
        size_t n;
        float *x = get(op, i, "x", &n), *r_sq = get(op, i, "sum_sq", NULL), *r_sum = get(op, i, "sum", NULL);
        float acc = 1.5f, sum = NAN;
        be->sum_squares(&ctx, &acc, x, n);
        float want = r_sq[0] + 1.5f;
        CLOSE("sum_squares (accumulated)", &acc, &want, 1, 1e-4f, 1e-5f);
        be->sum_f32(&ctx, &sum, x, n);
        CLOSE("sum", &sum, r_sum, 1, 1e-3f, 1e-5f);
        free(x), free(r_sq), free(r_sum);
    }
    float scale, norm_sq = 16.0f;
    be->clip_scale(&ctx, &scale, &norm_sq, 2.0f);
    ck_assert_float_eq_tol(scale, 0.5f, 1e-7f);
    be->clip_scale(&ctx, &scale, &norm_sq, 8.0f);
    ck_assert_float_eq(scale, 1.0f);
    be->clip_scale(&ctx, &scale, &norm_sq, 0.0f);
    ck_assert_float_eq(scale, 1.0f);
}
END_TEST

START_TEST(test_elementwise_and_memory) {
    rt_error err;
    float *a = be->alloc(&ctx, 1000 * sizeof(float), "test", &err);
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < 1000; i++) ck_assert_float_eq(a[i], 0.0f);  // alloc is zero-filled
    float x[1000], y[1000], out[1000], back[1000];
    rt_rng r;
    rt_rng_seed(&r, 5);
    rt_test_fill_uniform(&r, x, 1000, -1, 1);
    rt_test_fill_uniform(&r, y, 1000, -1, 1);
    be->upload(&ctx, a, RT_F32, x, 1000);
    be->download(&ctx, back, a, RT_F32, 1000);
    ck_assert_int_eq(memcmp(back, x, sizeof x), 0);
    be->add(&ctx, out, x, y, 1000);
    for (int i = 0; i < 1000; i++) ck_assert_float_eq(out[i], x[i] + y[i]);
    be->add_inplace(&ctx, a, y, 1000);
    for (int i = 0; i < 1000; i++) ck_assert_float_eq(a[i], x[i] + y[i]);
    be->zero(&ctx, a, 1000 * sizeof(float));
    for (int i = 0; i < 1000; i++) ck_assert_float_eq(a[i], 0.0f);
    be->free(&ctx, a);
    rt_ctx bf;
    ck_assert_int_ne(be->ctx_init(&bf, RT_BF16, 1, &err), 0);  // the CPU computes in fp32 only
    ck_assert_ptr_nonnull(strstr(err.msg, "fp32"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("cpu ops vs PyTorch");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_adamw);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_elementwise_and_memory);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
