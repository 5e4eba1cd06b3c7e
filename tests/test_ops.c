// Every op of the CPU backend, forward and backward, against PyTorch float64 references written by
// tests/ref_ops.py (RT_OPS_REF names the file; the layout is documented there). Outputs that an op overwrites
// are poisoned with NaN first, so an element the op forgets to write fails; outputs it accumulates into start
// from random prefills, so += is checked as well as the value. In-place variants run where backend.h allows
// them, and a last test checks that results are bit-identical from one run to the next.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cpu/cpu_internal.h"
#include "testutil.h"

static rt_ctx ctx;
static const rt_backend *be = &rt_backend_cpu;

static void setup(void) {
    rt_error err;
    ck_assert_msg(be->ctx_init(&ctx, RT_F32, 2, &err) == 0, "%s", err.msg);
}
static void teardown(void) {
    be->ctx_free(&ctx);
}

static const char *ref_file(void) {
    return rt_test_env("RT_OPS_REF");
}

static int n_cases(const char *op) {
    char attr[64];
    snprintf(attr, sizeof attr, "n_%s", op);
    int64_t n = rt_test_h5_attr_i64(ref_file(), attr);
    ck_assert_msg(n > 0, "%s: no cases for %s", ref_file(), op);
    return (int)n;
}

// Dataset <name> of case i of op, as fp32; *n receives its element count when n is not NULL.
static float *get(const char *op, int i, const char *name, size_t *n) {
    char path[128];
    size_t count;
    snprintf(path, sizeof path, "/%s/%d/%s", op, i, name);
    float *p = rt_test_h5_read_f32(ref_file(), path, &count);
    if (n) *n = count;
    return p;
}

static int32_t *get_i32(const char *op, int i, const char *name, size_t *n) {
    char path[128];
    size_t count;
    snprintf(path, sizeof path, "/%s/%d/%s", op, i, name);
    int32_t *p = rt_test_h5_read_i32(ref_file(), path, &count);
    if (n) *n = count;
    return p;
}

static float *poisoned(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static float *copy_of(const float *src, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    memcpy(p, src, n * sizeof(float));
    return p;
}

static void dims_str(char *buf, size_t cap, const int32_t *d, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (size_t j = 0; j < n && len + 16 < cap; j++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", j ? "," : "", d[j]);
}

// rt_test_assert_close with the op, case and shape in the message.
#define CLOSE(what, got, ref, n, atol, rtol)                                                                 \
    do {                                                                                                     \
        char label_[192];                                                                                    \
        snprintf(label_, sizeof label_, "%s case %d (dims %s): %s", op, i, shape, what);                     \
        rt_test_assert_close(label_, got, ref, n, atol, rtol);                                               \
    } while (0)

// Strided layouts (the model's fused q | k | v and gate | up): the [rows, w] tensor x as columns
// [col, col + w) of buf, whose rows are ld apart.
static void put_cols(float *buf, size_t ld, size_t col, const float *x, size_t rows, size_t w) {
    for (size_t r = 0; r < rows; r++) memcpy(buf + r * ld + col, x + r * w, w * sizeof(float));
}
static float *get_cols(const float *buf, size_t ld, size_t col, size_t rows, size_t w) {
    float *x = poisoned(rows * w);
    for (size_t r = 0; r < rows; r++) memcpy(x + r * w, buf + r * ld + col, w * sizeof(float));
    return x;
}
// [rows, ld] filled with PAD, the value the columns no op writes must keep.
#define PAD 7.25f
static float *padded(size_t rows, size_t ld) {
    float *p = poisoned(rows * ld);
    for (size_t i = 0; i < rows * ld; i++) p[i] = PAD;
    return p;
}
static void expect_pad(const char *what, const float *buf, size_t rows, size_t ld, size_t col0) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = col0; c < ld; c++)
            ck_assert_msg(buf[r * ld + c] == PAD, "%s: row %zu column %zu past the tensors was written", what,
                          r, c);
}

// d: the case's shape parameters, shape: them as text, sc: its scalar parameters.
#define LOAD_DIMS()                                                                                          \
    size_t nd_;                                                                                              \
    int32_t *d = get_i32(op, i, "dims", &nd_);                                                               \
    char shape[96];                                                                                          \
    dims_str(shape, sizeof shape, d, nd_);                                                                   \
    float *sc = get(op, i, "scalars", NULL)

// The vectorizable exp every softmax, SwiGLU and loss uses, against double-precision exp: within 2 ulp over
// the whole range it covers (every 1/4096 from -87.3 to 88.3, and each step's neighbouring floats), 0 below
// it.
START_TEST(test_expf) {
    double worst = 0.0, worst_x = 0.0;
    for (int k = -87 * 4096; k <= 88 * 4096; k++) {
        float x0 = (float)k / 4096.0f;
        float xs[3] = {nextafterf(x0, -INFINITY), x0, nextafterf(x0, INFINITY)};
        for (int j = 0; j < 3; j++) {
            float x = xs[j], got = cpu_expf(x);
            double ref = exp((double)x), ulp = nextafterf((float)ref, INFINITY) - (float)ref;
            double err = fabs((double)got - ref) / ulp;
            if (err > worst) worst = err, worst_x = x;
        }
    }
    ck_assert_msg(worst <= 2.0, "cpu_expf: %.2f ulp at x = %.9g", worst, worst_x);
    ck_assert_msg(cpu_expf(-88.0f) == 0.0f && cpu_expf(-1000.0f) == 0.0f,
                  "cpu_expf below its range is not 0");
    ck_assert_msg(cpu_expf(0.0f) == 1.0f, "cpu_expf(0) = %.9g", cpu_expf(0.0f));
}
END_TEST

START_TEST(test_matmul) {
    const char *op = "matmul";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int M = d[0], N = d[1], K = d[2], ta = d[3], tb = d[4];
        size_t n;
        float *a = get(op, i, "a", NULL), *b = get(op, i, "b", NULL), *c0 = get(op, i, "c0", &n);
        float *r0 = get(op, i, "out0", NULL), *r1 = get(op, i, "out1", NULL);
        float *out = poisoned(n); // beta 0 must not read the output
        be->matmul(&ctx, out, a, b, M, N, K, ta, tb, sc[0], 0.0f);
        CLOSE("beta 0", out, r0, n, 1e-5f, 1e-4f);
        memcpy(out, c0, n * sizeof(float));
        be->matmul(&ctx, out, a, b, M, N, K, ta, tb, sc[0], 1.0f);
        CLOSE("beta 1 (accumulated)", out, r1, n, 1e-5f, 1e-4f);
        free(a), free(b), free(c0), free(r0), free(r1), free(out), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_add) {
    const char *op = "add";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        size_t n;
        float *a = get(op, i, "a", &n), *b = get(op, i, "b", NULL), *ref = get(op, i, "out", NULL);
        float *out = poisoned(n);
        be->add(&ctx, out, a, b, n);
        CLOSE("add", out, ref, n, 0.0f, 1e-7f);
        be->add_inplace(&ctx, a, b, n);
        CLOSE("add_inplace", a, ref, n, 0.0f, 1e-7f);
        free(a), free(b), free(ref), free(out), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_embedding) {
    const char *op = "embedding";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int N = d[0], C = d[1];
        size_t ntab;
        int32_t *tokens = get_i32(op, i, "tokens", NULL);
        float *table = get(op, i, "table", &ntab), *dout = get(op, i, "dout", NULL);
        float *dtable = get(op, i, "dtable0", NULL), *out = poisoned((size_t)N * C);
        float *r_out = get(op, i, "out", NULL), *r_dt = get(op, i, "dtable", NULL);
        be->embedding_forward(&ctx, out, tokens, table, N, C);
        CLOSE("forward", out, r_out, (size_t)N * C, 0.0f, 0.0f);
        be->embedding_backward(&ctx, dtable, dout, tokens, N, C);
        CLOSE("dtable (accumulated)", dtable, r_dt, ntab, 1e-6f, 1e-5f);
        free(tokens), free(table), free(dout), free(dtable), free(out), free(r_out), free(r_dt), free(d),
            free(sc);
    }
}
END_TEST

START_TEST(test_rmsnorm) {
    const char *op = "rmsnorm";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int N = d[0], C = d[1];
        size_t n = (size_t)N * C;
        float *x = get(op, i, "x", NULL), *w = get(op, i, "weight", NULL), *dout = get(op, i, "dout", NULL);
        float *dx = get(op, i, "dx0", NULL), *dw = get(op, i, "dw0", NULL);
        float *r_out = get(op, i, "out", NULL), *r_rstd = get(op, i, "rstd", NULL);
        float *r_dx = get(op, i, "dx", NULL), *r_dw = get(op, i, "dw", NULL);
        float *out = poisoned(n), *rstd = poisoned((size_t)N);
        be->rmsnorm_forward(&ctx, out, rstd, x, w, N, C, sc[0]);
        CLOSE("out", out, r_out, n, 1e-6f, 1e-5f);
        CLOSE("rstd", rstd, r_rstd, (size_t)N, 1e-6f, 1e-5f);
        be->rmsnorm_backward(&ctx, dx, dw, dout, x, w, rstd, N, C);
        CLOSE("dx (accumulated)", dx, r_dx, n, 1e-5f, 1e-4f);
        CLOSE("dweight (accumulated)", dw, r_dw, (size_t)C, 1e-5f, 1e-4f);
        free(x), free(w), free(dout), free(dx), free(dw), free(out), free(rstd), free(r_out), free(r_rstd);
        free(r_dx), free(r_dw), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_bias) {
    const char *op = "bias";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int N = d[0], n = d[1];
        float *x = get(op, i, "x", NULL), *b = get(op, i, "bias", NULL), *dout = get(op, i, "dout", NULL);
        float *db = get(op, i, "db0", NULL), *r_out = get(op, i, "out", NULL), *r_db = get(op, i, "db", NULL);
        be->add_bias_rows(&ctx, x, b, N, n); // in place on the projection's output
        CLOSE("out (added in place)", x, r_out, (size_t)N * n, 0.0f, 1e-7f);
        be->bias_backward(&ctx, db, dout, N, n);
        CLOSE("dbias (accumulated)", db, r_db, (size_t)n, 1e-5f, 1e-5f);
        free(x), free(b), free(dout), free(db), free(r_out), free(r_db), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_rope) {
    const char *op = "rope";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int B = d[0], T = d[1], H = d[2], D = d[3];
        size_t n;
        float *cs = get(op, i, "cos", NULL), *sn = get(op, i, "sin", NULL), *x = get(op, i, "x", &n);
        float *dout = get(op, i, "dout", NULL), *r_out = get(op, i, "out", NULL),
              *r_dx = get(op, i, "dx", NULL);
        float *out = poisoned(n), *dx = poisoned(n);
        be->rope_forward(&ctx, out, x, cs, sn, B, T, H, D, H * D);
        CLOSE("forward", out, r_out, n, 1e-6f, 1e-5f);
        be->rope_backward(&ctx, dx, dout, cs, sn, B, T, H, D, H * D);
        CLOSE("backward", dx, r_dx, n, 1e-6f, 1e-5f);
        be->rope_forward(&ctx, x, x, cs, sn, B, T, H, D, H * D);
        CLOSE("forward in place", x, r_out, n, 1e-6f, 1e-5f);
        be->rope_backward(&ctx, dout, dout, cs, sn, B, T, H, D, H * D);
        CLOSE("backward in place", dout, r_dx, n, 1e-6f, 1e-5f);
        // rows H * D + 3 apart (the q | k heads of a fused projection), in place; the 3 columns stay
        size_t rows = (size_t)B * T, w = (size_t)H * D, ld = w + 3;
        float *xs = padded(rows, ld), *x0 = get(op, i, "x", NULL), *d0 = get(op, i, "dout", NULL);
        put_cols(xs, ld, 0, x0, rows, w);
        be->rope_forward(&ctx, xs, xs, cs, sn, B, T, H, D, (int)ld);
        float *got = get_cols(xs, ld, 0, rows, w);
        CLOSE("forward, strided rows", got, r_out, n, 1e-6f, 1e-5f);
        expect_pad("rope_forward", xs, rows, ld, w);
        free(got);
        put_cols(xs, ld, 0, d0, rows, w);
        be->rope_backward(&ctx, xs, xs, cs, sn, B, T, H, D, (int)ld);
        got = get_cols(xs, ld, 0, rows, w);
        CLOSE("backward, strided rows", got, r_dx, n, 1e-6f, 1e-5f);
        expect_pad("rope_backward", xs, rows, ld, w);
        free(got), free(xs), free(x0), free(d0);
        free(cs), free(sn), free(x), free(dout), free(r_out), free(r_dx), free(out), free(dx), free(d),
            free(sc);
    }
}
END_TEST

START_TEST(test_attention) {
    const char *op = "attention";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int B = d[0], T = d[1], H = d[2], KVH = d[3], D = d[4];
        size_t nq, nk, nl = (size_t)B * H * T;
        float *q = get(op, i, "q", &nq), *k = get(op, i, "k", &nk), *v = get(op, i, "v", NULL);
        float *dout = get(op, i, "dout", NULL);
        float *r_out = get(op, i, "out", NULL), *r_lse = get(op, i, "lse", NULL);
        float *r_dq = get(op, i, "dq", NULL), *r_dk = get(op, i, "dk", NULL), *r_dv = get(op, i, "dv", NULL);
        float *out = poisoned(nq), *lse = poisoned(nl), *dq = poisoned(nq), *dk = poisoned(nk),
              *dv = poisoned(nk);
        be->attention_forward(&ctx, out, lse, q, k, v, B, T, H, KVH, D, H * D, KVH * D);
        CLOSE("out", out, r_out, nq, 1e-5f, 1e-4f);
        CLOSE("lse", lse, r_lse, nl, 1e-5f, 1e-5f);
        be->attention_backward(&ctx, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KVH, D, H * D, KVH * D);
        CLOSE("dq", dq, r_dq, nq, 1e-5f, 1e-4f);
        CLOSE("dk (overwritten)", dk, r_dk, nk, 1e-5f, 1e-4f);
        CLOSE("dv (overwritten)", dv, r_dv, nk, 1e-5f, 1e-4f);
        // backward overwrites: values already in the gradients must not leak into the result
        for (size_t j = 0; j < nk; j++) dk[j] = dv[j] = 1e3f;
        be->attention_backward(&ctx, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KVH, D, H * D, KVH * D);
        CLOSE("dk over old values", dk, r_dk, nk, 1e-5f, 1e-4f);
        CLOSE("dv over old values", dv, r_dv, nk, 1e-5f, 1e-4f);
        // q | k | v as one [B*T, (H + 2 KVH) D + 3] buffer and dq | dk | dv as another (the model's fused
        // projection); the 3 columns past v are never written
        size_t rows = (size_t)B * T, wq = (size_t)H * D, wk = (size_t)KVH * D, ld = wq + 2 * wk + 3;
        float *qkv = padded(rows, ld), *dqkv = padded(rows, ld), *out2 = poisoned(nq), *lse2 = poisoned(nl);
        put_cols(qkv, ld, 0, q, rows, wq);
        put_cols(qkv, ld, wq, k, rows, wk);
        put_cols(qkv, ld, wq + wk, v, rows, wk);
        be->attention_forward(&ctx, out2, lse2, qkv, qkv + wq, qkv + wq + wk, B, T, H, KVH, D, (int)ld,
                              (int)ld);
        CLOSE("out, fused q|k|v", out2, r_out, nq, 1e-5f, 1e-4f);
        CLOSE("lse, fused q|k|v", lse2, r_lse, nl, 1e-5f, 1e-5f);
        be->attention_backward(&ctx, dqkv, dqkv + wq, dqkv + wq + wk, dout, qkv, qkv + wq, qkv + wq + wk,
                               out2, lse2, B, T, H, KVH, D, (int)ld, (int)ld);
        float *g_dq = get_cols(dqkv, ld, 0, rows, wq), *g_dk = get_cols(dqkv, ld, wq, rows, wk),
              *g_dv = get_cols(dqkv, ld, wq + wk, rows, wk);
        CLOSE("dq, fused", g_dq, r_dq, nq, 1e-5f, 1e-4f);
        CLOSE("dk, fused", g_dk, r_dk, nk, 1e-5f, 1e-4f);
        CLOSE("dv, fused", g_dv, r_dv, nk, 1e-5f, 1e-4f);
        expect_pad("attention_backward", dqkv, rows, ld, wq + 2 * wk);
        expect_pad("attention_forward", qkv, rows, ld, wq + 2 * wk);
        free(qkv), free(dqkv), free(out2), free(lse2), free(g_dq), free(g_dk), free(g_dv);
        free(q), free(k), free(v), free(dout), free(r_out), free(r_lse), free(r_dq), free(r_dk), free(r_dv);
        free(out), free(lse), free(dq), free(dk), free(dv), free(d), free(sc);
    }
}
END_TEST

// rope_forward_at on rows pos0 .. pos0 + T - 1 gives exactly the rows rope_forward gives them in a longer
// sequence (the same arithmetic on the same table rows), out of place and in place.
START_TEST(test_rope_at) {
    static const int cases[][6] = {{1, 1, 1, 2, 0, 1},
                                   {2, 9, 3, 8, 4, 5},
                                   {3, 40, 4, 16, 39, 1},
                                   {2, 70, 2, 32, 17, 50}}; // B, T_total, H, D, pos0, T
    rt_rng r;
    rt_rng_seed(&r, 21);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c][0], Tt = cases[c][1], H = cases[c][2], D = cases[c][3], pos0 = cases[c][4],
            T = cases[c][5], half = D / 2;
        size_t row = (size_t)H * D, n_full = (size_t)B * Tt * row, n = (size_t)B * T * row;
        float *cs = malloc((size_t)Tt * half * 4), *sn = malloc((size_t)Tt * half * 4);
        for (int t = 0; t < Tt; t++)
            for (int j = 0; j < half; j++) {
                double ang = t * pow(10000.0, -2.0 * j / D);
                cs[(size_t)t * half + j] = (float)cos(ang), sn[(size_t)t * half + j] = (float)sin(ang);
            }
        float *x = malloc(n_full * 4), *full = poisoned(n_full), *xs = malloc(n * 4), *ref = malloc(n * 4);
        float *out = poisoned(n);
        rt_test_fill_uniform(&r, x, n_full, -1, 1);
        be->rope_forward(&ctx, full, x, cs, sn, B, Tt, H, D, H * D);
        for (int b = 0; b < B; b++) {
            memcpy(xs + (size_t)b * T * row, x + ((size_t)b * Tt + pos0) * row, (size_t)T * row * 4);
            memcpy(ref + (size_t)b * T * row, full + ((size_t)b * Tt + pos0) * row, (size_t)T * row * 4);
        }
        char what[96];
        snprintf(what, sizeof what, "rope_forward_at B=%d T=%d H=%d D=%d pos0=%d", B, T, H, D, pos0);
        be->rope_forward_at(&ctx, out, xs, cs, sn, B, T, H, D, pos0, H * D);
        rt_test_assert_close(what, out, ref, n, 0.0f, 0.0f);
        be->rope_forward_at(&ctx, xs, xs, cs, sn, B, T, H, D, pos0, H * D);
        rt_test_assert_close("rope_forward_at in place", xs, ref, n, 0.0f, 0.0f);
        free(cs), free(sn), free(x), free(full), free(xs), free(ref), free(out);
    }
}
END_TEST

// attention_forward_cached of the last Tq queries against a cache filled by kv_append (in two appends, the
// rows past T_ctx left NaN so that reading them fails) gives the last Tq rows of attention_forward over the
// whole sequence: single and several queries, blocks of queries, a whole prefill, odd D, grouped heads.
START_TEST(test_attention_cached) {
    static const int cases[][7] = {{1, 1, 1, 1, 2, 1, 1},    {2, 17, 6, 3, 16, 1, 20},
                                   {2, 17, 6, 3, 16, 5, 17}, {1, 150, 4, 2, 8, 70, 160},
                                   {2, 33, 4, 1, 8, 33, 40}, {3, 9, 2, 2, 5, 4, 9},
                                   {2, 80, 8, 2, 32, 1, 96}}; // B, T_ctx, H, KVH, D, Tq, cache rows
    rt_rng r;
    rt_rng_seed(&r, 23);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c][0], T = cases[c][1], H = cases[c][2], KVH = cases[c][3], D = cases[c][4],
            Tq = cases[c][5], S = cases[c][6], p0 = T - Tq;
        size_t qrow = (size_t)H * D, krow = (size_t)KVH * D, nq = (size_t)B * T * qrow,
               nk = (size_t)B * T * krow, nc = (size_t)B * S * krow, no = (size_t)B * Tq * qrow;
        float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *full = poisoned(nq);
        float *lse = poisoned((size_t)B * H * T), *kc = poisoned(nc), *vc = poisoned(nc);
        float *qs = malloc(no * 4), *ref = malloc(no * 4), *out = poisoned(no);
        float *part = malloc(nk * 4); // [B, n, KVH, D] rows of one append
        rt_test_fill_uniform(&r, q, nq, -2, 2);
        rt_test_fill_uniform(&r, k, nk, -2, 2);
        rt_test_fill_uniform(&r, v, nk, -1, 1);
        be->attention_forward(&ctx, full, lse, q, k, v, B, T, H, KVH, D, H * D, KVH * D);
        for (int which = 0; which < 2; which++) {
            const float *src = which ? v : k;
            float *cache = which ? vc : kc;
            int splits[2][2] = {{0, p0}, {p0, Tq}}; // (pos0, rows) of the two appends
            for (int sp = 0; sp < 2; sp++) {
                int pos0 = splits[sp][0], n = splits[sp][1];
                if (n == 0) continue;
                for (int b = 0; b < B; b++)
                    memcpy(part + (size_t)b * n * krow, src + ((size_t)b * T + pos0) * krow,
                           (size_t)n * krow * 4);
                be->kv_append(&ctx, cache, part, B, n, KVH, D, pos0, S, KVH * D);
            }
        }
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                size_t cache_off = ((size_t)b * S + t) * krow, off = ((size_t)b * T + t) * krow;
                ck_assert_msg(memcmp(kc + cache_off, k + off, krow * 4) == 0 &&
                                  memcmp(vc + cache_off, v + off, krow * 4) == 0,
                              "kv_append: batch %d position %d is not the row appended", b, t);
            }
        for (int b = 0; b < B; b++) {
            memcpy(qs + (size_t)b * Tq * qrow, q + ((size_t)b * T + p0) * qrow, (size_t)Tq * qrow * 4);
            memcpy(ref + (size_t)b * Tq * qrow, full + ((size_t)b * T + p0) * qrow, (size_t)Tq * qrow * 4);
        }
        be->attention_forward_cached(&ctx, out, qs, kc, vc, B, Tq, T, H, KVH, D, S, H * D);
        char what[128];
        snprintf(what, sizeof what, "attention_forward_cached B=%d Tq=%d T_ctx=%d H=%d KVH=%d D=%d S=%d", B,
                 Tq, T, H, KVH, D, S);
        rt_test_assert_close(what, out, ref, no, 1e-6f, 1e-5f);
        // the same from the model's fused layout: keys and values appended from their columns of q | k | v
        // rows (H + 2 KVH) D + 2 apart, the queries read from rows as far apart
        size_t ld = qrow + 2 * krow + 2, rows = (size_t)B * T;
        float *qkv = padded(rows, ld), *qf = padded((size_t)B * Tq, ld), *kc2 = poisoned(nc),
              *vc2 = poisoned(nc);
        float *out2 = poisoned(no);
        put_cols(qkv, ld, 0, q, rows, qrow);
        put_cols(qkv, ld, qrow, k, rows, krow);
        put_cols(qkv, ld, qrow + krow, v, rows, krow);
        put_cols(qf, ld, 0, qs, (size_t)B * Tq, qrow);
        be->kv_append(&ctx, kc2, qkv + qrow, B, T, KVH, D, 0, S, (int)ld);
        be->kv_append(&ctx, vc2, qkv + qrow + krow, B, T, KVH, D, 0, S, (int)ld);
        for (int b = 0; b < B; b++) {
            size_t off = (size_t)b * S * krow, bytes = (size_t)T * krow * 4;
            ck_assert_msg(memcmp(kc2 + off, kc + off, bytes) == 0 && memcmp(vc2 + off, vc + off, bytes) == 0,
                          "kv_append from strided rows: batch %d differs from the contiguous append", b);
        }
        be->attention_forward_cached(&ctx, out2, qf, kc2, vc2, B, Tq, T, H, KVH, D, S, (int)ld);
        snprintf(what, sizeof what, "attention_forward_cached, fused q|k|v, B=%d Tq=%d T_ctx=%d", B, Tq, T);
        rt_test_assert_close(what, out2, ref, no, 1e-6f, 1e-5f);
        free(qkv), free(qf), free(kc2), free(vc2), free(out2);
        free(q), free(k), free(v), free(full), free(lse), free(kc), free(vc), free(qs), free(ref), free(out),
            free(part);
    }
}
END_TEST

START_TEST(test_swiglu) {
    const char *op = "swiglu";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        size_t n;
        float *g = get(op, i, "gate", &n), *u = get(op, i, "up", NULL), *dout = get(op, i, "dout", NULL);
        float *r_out = get(op, i, "out", NULL), *r_dg = get(op, i, "dgate", NULL),
              *r_du = get(op, i, "dup", NULL);
        float *out = poisoned(n), *dg = poisoned(n), *du = poisoned(n);
        be->swiglu_forward(&ctx, out, g, u, 1, (int)n, (int)n);
        CLOSE("out", out, r_out, n, 1e-6f, 1e-5f);
        be->swiglu_backward(&ctx, dg, du, dout, g, u, 1, (int)n, (int)n);
        CLOSE("dgate", dg, r_dg, n, 1e-6f, 1e-5f);
        CLOSE("dup", du, r_du, n, 1e-6f, 1e-5f);
        // gate | up as the halves of one [N, 2F + 1] buffer (the model's fused projection, one column more)
        size_t N = n % 5 == 0 ? 5 : n % 3 == 0 ? 3 : 1, F = n / N, ld = 2 * F + 1;
        float *gu = padded(N, ld), *dgu = padded(N, ld), *out2 = poisoned(n);
        put_cols(gu, ld, 0, g, N, F);
        put_cols(gu, ld, F, u, N, F);
        be->swiglu_forward(&ctx, out2, gu, gu + F, (int)N, (int)F, (int)ld);
        CLOSE("out, fused gate|up", out2, r_out, n, 1e-6f, 1e-5f);
        be->swiglu_backward(&ctx, dgu, dgu + F, dout, gu, gu + F, (int)N, (int)F, (int)ld);
        float *g_dg = get_cols(dgu, ld, 0, N, F), *g_du = get_cols(dgu, ld, F, N, F);
        CLOSE("dgate, fused", g_dg, r_dg, n, 1e-6f, 1e-5f);
        CLOSE("dup, fused", g_du, r_du, n, 1e-6f, 1e-5f);
        expect_pad("swiglu_backward", dgu, N, ld, 2 * F);
        free(gu), free(dgu), free(out2), free(g_dg), free(g_du);
        free(g), free(u), free(dout), free(r_out), free(r_dg), free(r_du), free(out), free(dg), free(du);
        free(d), free(sc);
    }
}
END_TEST

// copy_rows moves a column slice of rows ld apart out of and (accumulating) back into a wider buffer; every
// other column keeps its value.
START_TEST(test_copy_rows) {
    enum { ROWS = 9, COLS = 5, LD = 12, OFF = 4 };
    rt_rng r;
    rt_rng_seed(&r, 31);
    float wide[ROWS * LD], before[ROWS * LD], narrow[ROWS * COLS];
    rt_test_fill_uniform(&r, wide, ROWS * LD, -1, 1);
    memcpy(before, wide, sizeof wide);
    for (size_t j = 0; j < ROWS * COLS; j++) narrow[j] = NAN;
    be->copy_rows(&ctx, narrow, COLS, wide + OFF, LD, ROWS, COLS, 0);
    for (int i = 0; i < ROWS; i++)
        for (int c = 0; c < COLS; c++)
            ck_assert_msg(narrow[i * COLS + c] == wide[i * LD + OFF + c], "copy_rows: row %d column %d", i,
                          c);
    be->copy_rows(&ctx, wide + OFF, LD, narrow, COLS, ROWS, COLS, 1);
    for (int i = 0; i < ROWS; i++)
        for (int c = 0; c < LD; c++) {
            int in = c >= OFF && c < OFF + COLS;
            float want = in ? before[i * LD + c] + before[i * LD + c] : before[i * LD + c];
            ck_assert_msg(wide[i * LD + c] == want, "copy_rows accumulating: row %d column %d", i, c);
        }
}
END_TEST

START_TEST(test_cross_entropy) {
    const char *op = "cross_entropy";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int N = d[0], V = d[1];
        size_t n;
        int32_t *targets = get_i32(op, i, "targets", NULL);
        float *logits = get(op, i, "logits", &n), *r_loss = get(op, i, "losses", NULL);
        float *r_dl = get(op, i, "dlogits", NULL), *losses = poisoned((size_t)N), *dl = poisoned(n);
        be->cross_entropy(&ctx, losses, NULL, logits, targets, N, V, sc[0]);
        CLOSE("losses without gradient", losses, r_loss, (size_t)N, 1e-5f, 1e-5f);
        for (int r = 0; r < N; r++) losses[r] = NAN;
        be->cross_entropy(&ctx, losses, dl, logits, targets, N, V, sc[0]);
        CLOSE("losses", losses, r_loss, (size_t)N, 1e-5f, 1e-5f);
        CLOSE("dlogits", dl, r_dl, n, 1e-7f, 1e-5f);
        for (int r = 0; r < N; r++) losses[r] = NAN;
        be->cross_entropy(&ctx, losses, logits, logits, targets, N, V, sc[0]);
        CLOSE("losses with in-place dlogits", losses, r_loss, (size_t)N, 1e-5f, 1e-5f);
        CLOSE("dlogits in place", logits, r_dl, n, 1e-7f, 1e-5f);
        free(targets), free(logits), free(r_loss), free(r_dl), free(losses), free(dl), free(d), free(sc);
    }
}
END_TEST

// Dense and sparse teachers, every divergence and tail: losses alone, then with the gradient into a poisoned
// buffer, then in place over the logits.
START_TEST(test_distill) {
    const char *op = "distill";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int N = d[0], V = d[1], k = d[2], sparse = d[4];
        rt_kd_params kp = {.divergence = (rt_kd_divergence)d[3],
                           .temperature = sc[0],
                           .alpha = sc[1],
                           .beta = sc[2],
                           .tail = (rt_kd_tail)d[5],
                           .topk_temperature = sc[3]};
        size_t n;
        int32_t *targets = get_i32(op, i, "targets", NULL),
                *ids = sparse ? get_i32(op, i, "ids", NULL) : NULL;
        float *logits = get(op, i, "logits", &n), *teacher = sparse ? NULL : get(op, i, "teacher", NULL);
        float *lps = sparse ? get(op, i, "logprobs", NULL) : NULL;
        float *r_ce = get(op, i, "ce", NULL), *r_kd = get(op, i, "kd", NULL),
              *r_dl = get(op, i, "dlogits", NULL);
        float *ce = poisoned((size_t)N), *kd = poisoned((size_t)N), *dl = poisoned(n);
        for (int run = 0; run < 3; run++) {
            float *grad = run == 0 ? NULL : run == 1 ? dl : logits;
            static const char *what[3][3] = {{"ce without gradient", "kd without gradient", ""},
                                             {"ce", "kd", "dlogits"},
                                             {"ce (in place)", "kd (in place)", "dlogits in place"}};
            for (int r = 0; r < N; r++) ce[r] = kd[r] = NAN;
            be->distill_loss(&ctx, ce, kd, grad, logits, teacher, ids, lps, k, targets, N, V, &kp, sc[4]);
            CLOSE(what[run][0], ce, r_ce, (size_t)N, 1e-5f, 1e-5f);
            CLOSE(what[run][1], kd, r_kd, (size_t)N, 2e-5f, 1e-4f);
            if (grad) CLOSE(what[run][2], grad, r_dl, n, 1e-7f, 1e-4f);
        }
        free(targets), free(ids), free(logits), free(teacher), free(lps), free(r_ce), free(r_kd), free(r_dl);
        free(ce), free(kd), free(dl), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_reductions) {
    const char *op = "reduce";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        size_t n;
        float *x = get(op, i, "x", &n), *acc = get(op, i, "acc0", NULL);
        float *r_sq = get(op, i, "sum_squares", NULL), *r_sum = get(op, i, "sum", NULL);
        float sum = NAN;
        be->sum_squares(&ctx, acc, x, n);
        CLOSE("sum_squares (accumulated)", acc, r_sq, 1, 1e-5f, 1e-5f);
        be->sum_f32(&ctx, &sum, x, n);
        CLOSE("sum_f32", &sum, r_sum, 1, 1e-4f, 1e-5f);
        free(x), free(acc), free(r_sq), free(r_sum), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_clip_scale) {
    const char *op = "clip";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        float *ref = get(op, i, "scale", NULL), scale = NAN;
        be->clip_scale(&ctx, &scale, &sc[0], sc[1]);
        CLOSE("scale", &scale, ref, 1, 0.0f, 1e-6f);
        free(ref), free(d), free(sc);
    }
}
END_TEST

// Several steps, once with param == master (fp32 act) and once into a separate compute copy.
START_TEST(test_adamw) {
    const char *op = "adamw";
    for (int i = 0; i < n_cases(op); i++) {
        LOAD_DIMS();
        int steps = d[1];
        size_t n;
        float *w0 = get(op, i, "master0", &n), *m0 = get(op, i, "m0", NULL), *v0 = get(op, i, "v0", NULL);
        float *grads = get(op, i, "grads", NULL), *r_w = get(op, i, "master", NULL);
        float *r_m = get(op, i, "m", NULL), *r_v = get(op, i, "v", NULL);
        for (int separate = 0; separate < 2; separate++) {
            float *w = copy_of(w0, n), *m = copy_of(m0, n), *v = copy_of(v0, n);
            float *param = separate ? poisoned(n) : w;
            for (int s = 1; s <= steps; s++)
                be->adamw(&ctx, w, param, grads + (size_t)(s - 1) * n, m, v, n, sc[0], sc[1], sc[2], sc[3],
                          sc[4], s, &sc[5]);
            CLOSE(separate ? "master (separate param)" : "master", w, r_w, n, 1e-6f, 1e-5f);
            CLOSE("param", param, r_w, n, 1e-6f, 1e-5f);
            CLOSE("m", m, r_m, n, 1e-7f, 1e-5f);
            CLOSE("v", v, r_v, n, 1e-9f, 1e-5f);
            if (separate) free(param);
            free(w), free(m), free(v);
        }
        free(w0), free(m0), free(v0), free(grads), free(r_w), free(r_m), free(r_v), free(d), free(sc);
    }
}
END_TEST

START_TEST(test_context_and_memory) {
    rt_error err;
    float *a = be->alloc(&ctx, 1001 * sizeof(float), "test buffer", &err);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq((uintptr_t)a % 64, 0);
    for (int i = 0; i < 1001; i++) ck_assert_float_eq(a[i], 0.0f); // zero-filled
    float x[1001], back[1001];
    rt_rng r;
    rt_rng_seed(&r, 5);
    rt_test_fill_uniform(&r, x, 1001, -1, 1);
    be->upload(&ctx, a, RT_F32, x, 1001);
    be->sync(&ctx);
    be->download(&ctx, back, a, RT_F32, 1001);
    ck_assert_int_eq(memcmp(back, x, sizeof x), 0);
    float *c = be->alloc(&ctx, 1001 * sizeof(float), "copy", &err);
    ck_assert_ptr_nonnull(c);
    be->convert(&ctx, c, RT_F32, a, RT_F32, 1001);
    ck_assert_int_eq(memcmp(c, x, sizeof x), 0);
    be->zero(&ctx, a, 1001 * sizeof(float));
    for (int i = 0; i < 1001; i++) ck_assert_float_eq(a[i], 0.0f);
    int32_t ids[5] = {1, -1, 7, 0, 300}, *dev = be->alloc(&ctx, sizeof ids, "ids", &err);
    ck_assert_ptr_nonnull(dev);
    be->upload_i32(&ctx, dev, ids, 5);
    ck_assert_int_eq(memcmp(dev, ids, sizeof ids), 0);
    be->free(&ctx, a), be->free(&ctx, c), be->free(&ctx, dev);

    rt_ctx other;
    ck_assert_int_eq(be->ctx_init(&other, RT_F32, 0, &err), 0); // 0 = every core
    ck_assert_int_ge(other.n_threads, 1);
    be->ctx_free(&other);
    ck_assert_str_eq(rt_dtype_name(RT_F32), "fp32");
    ck_assert_str_eq(rt_dtype_name(RT_BF16), "bf16");
}
END_TEST

// Resume after a checkpoint is bit-exact only if every op gives the same bits for the same inputs: run the
// ops whose threads share outputs (reductions across rows, scatter-adds, GQA heads sharing kv gradients)
// twice on 2 threads, on shapes big enough for every thread to get work, and compare bytes.
START_TEST(test_determinism) {
    rt_rng r;
    rt_rng_seed(&r, 11);
    enum { B = 2, T = 96, H = 6, KVH = 2, D = 16, N = 1500, C = 130, V = 40 };
    size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D, nl = (size_t)B * H * T;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *dout = malloc(nq * 4);
    float *out = malloc(nq * 4), *lse = malloc(nl * 4);
    rt_test_fill_uniform(&r, q, nq, -2, 2);
    rt_test_fill_uniform(&r, k, nk, -2, 2);
    rt_test_fill_uniform(&r, v, nk, -1, 1);
    rt_test_fill_uniform(&r, dout, nq, -1, 1);
    be->attention_forward(&ctx, out, lse, q, k, v, B, T, H, KVH, D, H * D, KVH * D);
    float *g[2][3];
    for (int run = 0; run < 2; run++) {
        g[run][0] = poisoned(nq), g[run][1] = poisoned(nk), g[run][2] = poisoned(nk);
        be->attention_backward(&ctx, g[run][0], g[run][1], g[run][2], dout, q, k, v, out, lse, B, T, H, KVH,
                               D, H * D, KVH * D);
    }
    ck_assert_msg(memcmp(g[0][0], g[1][0], nq * 4) == 0, "attention dq differs between two runs");
    ck_assert_msg(memcmp(g[0][1], g[1][1], nk * 4) == 0, "attention dk differs between two runs");
    ck_assert_msg(memcmp(g[0][2], g[1][2], nk * 4) == 0, "attention dv differs between two runs");
    for (int run = 0; run < 2; run++)
        for (int j = 0; j < 3; j++) free(g[run][j]);

    size_t nx = (size_t)N * C;
    float *x = malloc(nx * 4), *w = malloc(C * 4), *dy = malloc(nx * 4), *y = malloc(nx * 4);
    float *rstd = malloc(N * 4);
    rt_test_fill_uniform(&r, x, nx, -2, 2);
    rt_test_fill_uniform(&r, w, C, 0.5f, 1.5f);
    rt_test_fill_uniform(&r, dy, nx, -1, 1);
    be->rmsnorm_forward(&ctx, y, rstd, x, w, N, C, 1e-5f);
    float *dx[2], *dw[2];
    for (int run = 0; run < 2; run++) {
        dx[run] = calloc(nx, 4), dw[run] = calloc(C, 4);
        be->rmsnorm_backward(&ctx, dx[run], dw[run], dy, x, w, rstd, N, C);
    }
    ck_assert_msg(memcmp(dx[0], dx[1], nx * 4) == 0, "rmsnorm dx differs between two runs");
    ck_assert_msg(memcmp(dw[0], dw[1], C * 4) == 0, "rmsnorm dweight differs between two runs");

    int32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = (int32_t)(rt_rng_uniform(&r) * V) % V; // many repeats
    float *dt[2];
    for (int run = 0; run < 2; run++) {
        dt[run] = calloc((size_t)V * C, 4);
        be->embedding_backward(&ctx, dt[run], dy, tokens, N, C);
    }
    ck_assert_msg(memcmp(dt[0], dt[1], (size_t)V * C * 4) == 0, "embedding dtable differs between two runs");
    float *db[2];
    for (int run = 0; run < 2; run++) {
        db[run] = calloc(C, 4);
        be->bias_backward(&ctx, db[run], dy, N, C);
    }
    ck_assert_msg(memcmp(db[0], db[1], C * 4) == 0, "bias gradient differs between two runs");
    free(db[0]), free(db[1]);

    float s[2] = {0.5f, 0.5f}, f[2];
    for (int run = 0; run < 2; run++) {
        be->sum_squares(&ctx, &s[run], dy, nx);
        be->sum_f32(&ctx, &f[run], dy, nx);
    }
    ck_assert_msg(memcmp(&s[0], &s[1], 4) == 0 && memcmp(&f[0], &f[1], 4) == 0, "reductions differ");
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(x), free(w), free(dy), free(y),
        free(rstd);
    for (int run = 0; run < 2; run++) free(dx[run]), free(dw[run]), free(dt[run]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cpu ops vs PyTorch");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_expf);
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_add);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_bias);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_rope_at);
    tcase_add_test(tc, test_attention_cached);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_copy_rows);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_distill);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_clip_scale);
    tcase_add_test(tc, test_adamw);
    tcase_add_test(tc, test_context_and_memory);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
