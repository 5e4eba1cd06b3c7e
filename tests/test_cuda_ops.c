// Every CUDA op against its CPU twin (the CPU backend is itself checked against PyTorch in test_ops): the
// same random inputs, several shapes including odd ones, forward and backward, in fp32 and in bf16.
// |gpu - cpu| <= atol + rtol * |cpu| with tolerances per precision; NaN never passes. Outputs an op
// overwrites are poisoned with NaN before each run (so an element it forgets fails); outputs it accumulates
// into start from the same random prefill on both sides. In bf16 the inputs are rounded to bf16 first, so
// both backends see identical values and the difference is the GPU's rounding of its outputs.
//
// Without a GPU (or in a build without CUDA) the test says so and exits 77, which ctest reports as skipped.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda_twin.h"
#include "testutil.h"

typedef struct tol {
    float atol, rtol;
} tol;

// Tolerances per precision; `scale` is the typical magnitude of the output (atol is relative to it).
static tol tol_for(float scale_fp32, float scale_bf16) {
    if (act == RT_BF16) return (tol){2e-2f * scale_bf16, 2e-2f};
    return (tol){2e-5f * scale_fp32, 1e-4f};
}

// ---- host buffers and the two devices ----

// Random act-dtype values: uniform in [lo, hi), rounded to bf16 when the GPU runs bf16.
static float *random_act(size_t n, float lo, float hi) {
    float *p = twin_host(n);
    rt_test_fill_uniform(&rng, p, n, lo, hi);
    if (act == RT_BF16)
        for (size_t i = 0; i < n; i++) p[i] = twin_round_bf16(p[i]);
    return p;
}
static float *random_f32(size_t n, float lo, float hi) {
    float *p = twin_host(n);
    rt_test_fill_uniform(&rng, p, n, lo, hi);
    return p;
}

static pair make_act(size_t n, const float *init) {
    return twin_make(n, act, init);
}
static pair make_f32(size_t n, const float *init) {
    return twin_make(n, RT_F32, init);
}

static pair make_i32(size_t n, const int32_t *v) {
    rt_error err;
    pair p = {NULL, NULL, n, RT_F32};
    p.c = cpu.be->alloc(&cpu, (n ? n : 1) * sizeof(int32_t), "test", &err);
    p.g = gpu.be->alloc(&gpu, (n ? n : 1) * sizeof(int32_t), "test", &err);
    ck_assert_msg(p.c && p.g, "%s", err.msg);
    cpu.be->upload_i32(&cpu, p.c, v, n);
    gpu.be->upload_i32(&gpu, p.g, v, n);
    return p;
}

static void expect_close(const char *what, const pair *p, tol t) {
    twin_expect_close(what, p, 0, t.atol, t.rtol);
}

// Elements [off, n) of both sides of p: a slice of a fused buffer (never dropped itself).
static pair view(const pair *p, size_t off) {
    pair v = {(float *)p->c + off, (char *)p->g + off * rt_dtype_size(p->gt), p->n - off, p->gt};
    return v;
}

// bf16 gradients of the fused losses against the GPU's own fp32 result on the same inputs. Their elements
// span many decades (a non-target dlogit at V = 32768 is ~1e-5 and may be 1e-11), so an absolute tolerance
// against the CPU would let zeros pass. The kernels do all their arithmetic in fp32 in the same code for both
// activation dtypes: only the loads (bf16 -> fp32, exact, and the inputs are bf16 values already) and the
// final store (fp32 -> bf16, round to nearest even) differ. So the bf16 output must be the fp32 output
// rounded once: bf16 keeps 8 significant bits, so |bf16 - fp32| <= 2^-8 |fp32| = 3.906e-3 |fp32| element
// by element, zero where fp32 is zero. BF16_ROUND_RTOL adds 2.4% to 2^-8 for a few fp32 ulps should the
// compiler contract the two instantiations differently; it is relative only, so no element escapes it.
#define BF16_ROUND_RTOL 4e-3f
static rt_ctx gpu32; // an fp32 context on the same GPU, opened by the bf16 cases that need it

// n fp32 or int32 values on the fp32 context, uploaded from init unless it is NULL.
static void *dev32(const void *init, size_t n, int is_i32) {
    rt_error err;
    void *d = gpu32.be->alloc(&gpu32, (n ? n : 1) * 4, "test", &err);
    ck_assert_msg(d, "%s", err.msg);
    if (init && is_i32)
        gpu32.be->upload_i32(&gpu32, d, init, n);
    else if (init)
        gpu32.be->upload(&gpu32, d, RT_F32, init, n);
    return d;
}

static void expect_bf16_rounding_of_f32(const char *what, const pair *p, void *f32_dev) {
    rt_error err;
    float *g = twin_host(p->n), *ref = twin_host(p->n);
    gpu.be->sync(&gpu);
    gpu32.be->sync(&gpu32);
    ck_assert_msg(gpu.be->check(&gpu, &err) == 0, "%s: %s", what, err.msg);
    ck_assert_msg(gpu32.be->check(&gpu32, &err) == 0, "%s (fp32 run): %s", what, err.msg);
    gpu.be->download(&gpu, g, p->g, p->gt, p->n);
    gpu32.be->download(&gpu32, ref, f32_dev, RT_F32, p->n);
    char label[200];
    snprintf(label, sizeof label, "%s [bf16 against the GPU's fp32 result]", what);
    rt_test_assert_close(label, g, ref, p->n, 0.0f, BF16_ROUND_RTOL);
    free(g);
    free(ref);
}

// ---- the ops ----

START_TEST(test_matmul) {
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {64, 48, 32}, {129, 65, 257}, {3, 300, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta = 0; beta < 2; beta++) {
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    float *a = random_act((size_t)M * K, -1, 1), *b = random_act((size_t)K * N, -1, 1);
                    float *o = random_act((size_t)M * N, -1, 1);
                    pair A = make_act((size_t)M * K, a), Bm = make_act((size_t)K * N, b);
                    pair O = make_act((size_t)M * N, beta ? o : NULL);
                    float alpha = 0.75f;
                    cpu.be->matmul(&cpu, O.c, A.c, Bm.c, M, N, K, ta, tb, alpha, (float)beta);
                    gpu.be->matmul(&gpu, O.g, A.g, Bm.g, M, N, K, ta, tb, alpha, (float)beta);
                    char what[96];
                    snprintf(what, sizeof what, "matmul %dx%dx%d ta=%d tb=%d beta=%d", M, N, K, ta, tb, beta);
                    float scale = sqrtf((float)K) * 0.5f + 1.0f;
                    expect_close(what, &O, tol_for(scale, scale));
                    twin_drop(&A);
                    twin_drop(&Bm);
                    twin_drop(&O);
                    free(a);
                    free(b);
                    free(o);
                }
}
END_TEST

START_TEST(test_embedding) {
    static const int shapes[][3] = {{1, 1, 1}, {37, 24, 11}, {500, 33, 259}}; // N, C, V (repeats: N > V)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1], V = shapes[s][2];
        int32_t *tok = malloc((size_t)N * sizeof(int32_t));
        for (int i = 0; i < N; i++) tok[i] = (int32_t)rt_rng_below(&rng, (uint64_t)V);
        float *table = random_act((size_t)V * C, -1, 1), *dout = random_act((size_t)N * C, -1, 1);
        float *prefill = random_act((size_t)V * C, -1, 1);
        pair Tk = make_i32((size_t)N, tok), Tb = make_act((size_t)V * C, table),
             O = make_act((size_t)N * C, NULL);
        cpu.be->embedding_forward(&cpu, O.c, Tk.c, Tb.c, N, C);
        gpu.be->embedding_forward(&gpu, O.g, Tk.g, Tb.g, N, C);
        expect_close("embedding_forward", &O, (tol){0, 0}); // a gather is exact
        pair D = make_act((size_t)N * C, dout), dT = make_act((size_t)V * C, prefill);
        cpu.be->embedding_backward(&cpu, dT.c, D.c, Tk.c, N, C);
        gpu.be->embedding_backward(&gpu, dT.g, D.g, Tk.g, N, C);
        float reps = (float)N / (float)V + 1.0f;
        expect_close("embedding_backward", &dT, tol_for(reps, reps));
        twin_drop(&Tk);
        twin_drop(&Tb);
        twin_drop(&O);
        twin_drop(&D);
        twin_drop(&dT);
        free(tok);
        free(table);
        free(dout);
        free(prefill);
    }
}
END_TEST

START_TEST(test_rmsnorm) {
    static const int shapes[][2] = {{1, 8}, {37, 33}, {300, 768}, {5, 4099}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        float *x = random_act((size_t)N * C, -2, 2), *w = random_act((size_t)C, 0.5f, 1.5f);
        float *dout = random_act((size_t)N * C, -1, 1), *dx0 = random_act((size_t)N * C, -1, 1);
        float *dw0 = random_act((size_t)C, -1, 1);
        pair X = make_act((size_t)N * C, x), W = make_act((size_t)C, w), O = make_act((size_t)N * C, NULL);
        pair R = make_f32((size_t)N, NULL);
        cpu.be->rmsnorm_forward(&cpu, O.c, R.c, X.c, W.c, N, C, 1e-5f);
        gpu.be->rmsnorm_forward(&gpu, O.g, R.g, X.g, W.g, N, C, 1e-5f);
        expect_close("rmsnorm_forward out", &O, tol_for(2, 2));
        expect_close("rmsnorm_forward rstd", &R, (tol){1e-5f, 1e-5f});
        pair Dd = make_act((size_t)N * C, dout), dX = make_act((size_t)N * C, dx0),
             dW = make_act((size_t)C, dw0);
        cpu.be->rmsnorm_backward(&cpu, dX.c, dW.c, Dd.c, X.c, W.c, R.c, N, C);
        gpu.be->rmsnorm_backward(&gpu, dX.g, dW.g, Dd.g, X.g, W.g, R.g, N, C);
        expect_close("rmsnorm_backward dx", &dX, tol_for(2, 2));
        float rows = sqrtf((float)N) + 1.0f;
        expect_close("rmsnorm_backward dweight", &dW, tol_for(rows, rows));
        twin_drop(&X);
        twin_drop(&W);
        twin_drop(&O);
        twin_drop(&R);
        twin_drop(&Dd);
        twin_drop(&dX);
        twin_drop(&dW);
        free(x);
        free(w);
        free(dout);
        free(dx0);
        free(dw0);
    }
}
END_TEST

START_TEST(test_bias) {
    static const int shapes[][2] = {{1, 1}, {37, 33}, {300, 768}, {5000, 24}}; // N rows of n
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], n = shapes[s][1];
        float *x = random_act((size_t)N * n, -1, 1), *b = random_act((size_t)n, -1, 1);
        float *dout = random_act((size_t)N * n, -1, 1), *db0 = random_act((size_t)n, -1, 1);
        pair X = make_act((size_t)N * n, x), Bb = make_act((size_t)n, b), Dd = make_act((size_t)N * n, dout);
        pair dB = make_act((size_t)n, db0);
        cpu.be->add_bias_rows(&cpu, X.c, Bb.c, N, n);
        gpu.be->add_bias_rows(&gpu, X.g, Bb.g, N, n);
        expect_close("add_bias_rows", &X, tol_for(1, 1));
        cpu.be->bias_backward(&cpu, dB.c, Dd.c, N, n);
        gpu.be->bias_backward(&gpu, dB.g, Dd.g, N, n);
        float rows = sqrtf((float)N) + 1.0f;
        expect_close("bias_backward", &dB, tol_for(rows, rows));
        // the column sum runs in a fixed order: a second run gives the same bits
        float *first = twin_host((size_t)n), *second = twin_host((size_t)n);
        pair dB2 = make_act((size_t)n, db0);
        gpu.be->bias_backward(&gpu, dB2.g, Dd.g, N, n);
        gpu.be->download(&gpu, first, dB.g, act, (size_t)n);
        gpu.be->download(&gpu, second, dB2.g, act, (size_t)n);
        ck_assert_msg(memcmp(first, second, (size_t)n * sizeof(float)) == 0,
                      "bias_backward differs between runs");
        pair *all[] = {&X, &Bb, &Dd, &dB, &dB2};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(x), free(b), free(dout), free(db0), free(first), free(second);
    }
}
END_TEST

static void rope_tables(int T, int D, float **cos_tab, float **sin_tab) {
    int half = D / 2;
    *cos_tab = twin_host((size_t)T * half);
    *sin_tab = twin_host((size_t)T * half);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double ang = t * pow(10000.0, -2.0 * i / D);
            (*cos_tab)[(size_t)t * half + i] = (float)cos(ang);
            (*sin_tab)[(size_t)t * half + i] = (float)sin(ang);
        }
}

START_TEST(test_rope) {
    // B, T, H, D, and the columns past H * D in a row: the model's fused q | k | v rotates the q and k heads
    // of rows (H + 2 KVH) D apart; the columns past the heads keep their (random) values on both sides
    static const int shapes[][5] = {{1, 1, 1, 2, 0}, {2, 9, 3, 8, 0}, {1, 130, 2, 64, 0}, {2, 9, 3, 8, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], D = shapes[s][3], ld = H * D + shapes[s][4];
        size_t n = (size_t)B * T * ld;
        float *cs, *sn;
        rope_tables(T, D, &cs, &sn);
        float *x = random_act(n, -1, 1), *o0 = random_act(n, -1, 1);
        pair Cs = make_f32((size_t)T * D / 2, cs), Sn = make_f32((size_t)T * D / 2, sn);
        pair X = make_act(n, x), O = make_act(n, ld > H * D ? o0 : NULL);
        cpu.be->rope_forward(&cpu, O.c, X.c, Cs.c, Sn.c, B, T, H, D, ld);
        gpu.be->rope_forward(&gpu, O.g, X.g, Cs.g, Sn.g, B, T, H, D, ld);
        expect_close("rope_forward", &O, tol_for(1, 1));
        cpu.be->rope_backward(&cpu, X.c, X.c, Cs.c, Sn.c, B, T, H, D, ld); // in place
        gpu.be->rope_backward(&gpu, X.g, X.g, Cs.g, Sn.g, B, T, H, D, ld);
        expect_close("rope_backward in place", &X, tol_for(1, 1));
        twin_drop(&Cs);
        twin_drop(&Sn);
        twin_drop(&X);
        twin_drop(&O);
        free(cs);
        free(sn);
        free(x);
        free(o0);
    }
}
END_TEST

START_TEST(test_attention) {
    // B, T, H, KVH, D: odd lengths, grouped heads, head dims from 2 to 128. In bf16, D = 16, 32, 64 and 128
    // take the tensor-core path (attention_mma.cu) with several 64-row tiles each way (query tiles, key
    // tiles of 64 or 32 and partial last tiles); T = 300 is past 4 tiles, where the emulation build's lowered
    // grid limit sends it to the portable kernels (and those stride over grid.y).
    // On the CPU twin, T = 1000 also splits the kv heads over tasks in the CPU's bf16 attention (its score
    // blocks for all four would pass its scratch bound, attention_bf16.c).
    static const int shapes[][5] = {
        {1, 1, 1, 1, 2},     {2, 17, 4, 2, 8},   {1, 70, 3, 1, 32},   {2, 33, 2, 2, 64},  {1, 40, 2, 1, 128},
        {1, 129, 4, 4, 16},  {2, 150, 4, 2, 64}, {1, 100, 2, 1, 128}, {1, 193, 2, 2, 32}, {1, 300, 2, 1, 64},
#ifdef RT_TWIN_CPU
        {2, 1000, 8, 4, 16},
#endif
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], KVH = shapes[s][3], D = shapes[s][4];
        size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
        float *q = random_act(nq, -1, 1), *k = random_act(nk, -1, 1), *v = random_act(nk, -1, 1);
        float *dout = random_act(nq, -1, 1);
        pair Q = make_act(nq, q), K = make_act(nk, k), Vv = make_act(nk, v), O = make_act(nq, NULL);
        pair L = make_f32((size_t)B * H * T, NULL);
        cpu.be->attention_forward(&cpu, O.c, L.c, Q.c, K.c, Vv.c, B, T, H, KVH, D, H * D, KVH * D);
        gpu.be->attention_forward(&gpu, O.g, L.g, Q.g, K.g, Vv.g, B, T, H, KVH, D, H * D, KVH * D);
        char what[128];
        snprintf(what, sizeof what, "attention_forward B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D);
        expect_close(what, &O, tol_for(1, 1));
        snprintf(what, sizeof what, "attention_forward lse B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D);
        expect_close(what, &L, (tol){act == RT_BF16 ? 2e-2f : 2e-5f, 1e-4f});
        // backward from the CPU's forward results on both sides, so only backward is compared
        float *o_ref = twin_host(nq), *l_ref = twin_host((size_t)B * H * T);
        cpu.be->download(&cpu, o_ref, O.c, RT_F32, nq);
        cpu.be->download(&cpu, l_ref, L.c, RT_F32, (size_t)B * H * T);
        if (act == RT_BF16)
            for (size_t i = 0; i < nq; i++) o_ref[i] = twin_round_bf16(o_ref[i]);
        pair O2 = make_act(nq, o_ref), L2 = make_f32((size_t)B * H * T, l_ref), Dd = make_act(nq, dout);
        pair dQ = make_act(nq, NULL), dK = make_act(nk, NULL), dV = make_act(nk, NULL);
        cpu.be->attention_backward(&cpu, dQ.c, dK.c, dV.c, Dd.c, Q.c, K.c, Vv.c, O2.c, L2.c, B, T, H, KVH, D,
                                   H * D, KVH * D);
        gpu.be->attention_backward(&gpu, dQ.g, dK.g, dV.g, Dd.g, Q.g, K.g, Vv.g, O2.g, L2.g, B, T, H, KVH, D,
                                   H * D, KVH * D);
        float grp = sqrtf((float)(H / KVH)) * 2.0f;
        snprintf(what, sizeof what, "attention_backward dq B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D);
        expect_close(what, &dQ, tol_for(1, 2));
        snprintf(what, sizeof what, "attention_backward dk B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D);
        expect_close(what, &dK, tol_for(grp, grp));
        snprintf(what, sizeof what, "attention_backward dv B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D);
        expect_close(what, &dV, tol_for(grp, grp));
        pair *all[] = {&Q, &K, &Vv, &O, &L, &O2, &L2, &Dd, &dQ, &dK, &dV};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(q);
        free(k);
        free(v);
        free(dout);
        free(o_ref);
        free(l_ref);
    }
}
END_TEST

// q, k and v as slices of one [B*T, ld] buffer and dq, dk, dv of another, as the model's fused projection
// lays them out, with 8 columns past v (so bf16 rows stay 16-byte aligned for the tensor-core path, taken at
// D = 16 .. 128) that neither direction may touch: they start with the same random values on both sides.
START_TEST(test_attention_fused) {
    static const int shapes[][5] = {
        {2, 17, 4, 2, 8}, {1, 70, 3, 1, 32}, {1, 70, 2, 1, 64}, {1, 66, 2, 1, 128}, {1, 129, 2, 2, 16}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], KVH = shapes[s][3], D = shapes[s][4];
        int ld = (H + 2 * KVH) * D + 8;
        size_t n = (size_t)B * T * ld, nq = (size_t)B * T * H * D, nl = (size_t)B * H * T;
        size_t k_off = (size_t)H * D, v_off = (size_t)(H + KVH) * D;
        float *qkv = random_act(n, -1, 1), *dout = random_act(nq, -1, 1), *d0 = random_act(n, -1, 1);
        pair QKV = make_act(n, qkv), O = make_act(nq, NULL), L = make_f32(nl, NULL);
        pair Q = view(&QKV, 0), K = view(&QKV, k_off), Vv = view(&QKV, v_off);
        cpu.be->attention_forward(&cpu, O.c, L.c, Q.c, K.c, Vv.c, B, T, H, KVH, D, ld, ld);
        gpu.be->attention_forward(&gpu, O.g, L.g, Q.g, K.g, Vv.g, B, T, H, KVH, D, ld, ld);
        char what[128];
        snprintf(what, sizeof what, "fused attention_forward B=%d T=%d H=%d KVH=%d D=%d", B, T, H, KVH, D);
        expect_close(what, &O, tol_for(1, 1));
        expect_close(what, &L, (tol){act == RT_BF16 ? 2e-2f : 2e-5f, 1e-4f});
        float *o_ref = twin_host(nq), *l_ref = twin_host(nl);
        cpu.be->download(&cpu, o_ref, O.c, RT_F32, nq);
        cpu.be->download(&cpu, l_ref, L.c, RT_F32, nl);
        if (act == RT_BF16)
            for (size_t i = 0; i < nq; i++) o_ref[i] = twin_round_bf16(o_ref[i]);
        pair O2 = make_act(nq, o_ref), L2 = make_f32(nl, l_ref), Dd = make_act(nq, dout),
             dQKV = make_act(n, d0);
        pair dQ = view(&dQKV, 0), dK = view(&dQKV, k_off), dV = view(&dQKV, v_off);
        cpu.be->attention_backward(&cpu, dQ.c, dK.c, dV.c, Dd.c, Q.c, K.c, Vv.c, O2.c, L2.c, B, T, H, KVH, D,
                                   ld, ld);
        gpu.be->attention_backward(&gpu, dQ.g, dK.g, dV.g, Dd.g, Q.g, K.g, Vv.g, O2.g, L2.g, B, T, H, KVH, D,
                                   ld, ld);
        float grp = sqrtf((float)(H / KVH)) * 2.0f;
        snprintf(what, sizeof what, "fused attention_backward dq|dk|dv B=%d T=%d H=%d KVH=%d D=%d", B, T, H,
                 KVH, D);
        expect_close(what, &dQKV, tol_for(grp, grp));
        pair *all[] = {&QKV, &O, &L, &O2, &L2, &Dd, &dQKV};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(qkv), free(dout), free(d0), free(o_ref), free(l_ref);
    }
}
END_TEST

START_TEST(test_swiglu) {
    static const size_t sizes[] = {1, 1000, 4097};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *g = random_act(n, -6, 6), *u = random_act(n, -2, 2), *d = random_act(n, -1, 1);
        pair G = make_act(n, g), U = make_act(n, u), D = make_act(n, d), O = make_act(n, NULL);
        pair dG = make_act(n, NULL), dU = make_act(n, NULL);
        cpu.be->swiglu_forward(&cpu, O.c, G.c, U.c, 1, (int)n, (int)n);
        gpu.be->swiglu_forward(&gpu, O.g, G.g, U.g, 1, (int)n, (int)n);
        expect_close("swiglu_forward", &O, tol_for(1, 1));
        cpu.be->swiglu_backward(&cpu, dG.c, dU.c, D.c, G.c, U.c, 1, (int)n, (int)n);
        gpu.be->swiglu_backward(&gpu, dG.g, dU.g, D.g, G.g, U.g, 1, (int)n, (int)n);
        expect_close("swiglu_backward dgate", &dG, tol_for(1, 1));
        expect_close("swiglu_backward dup", &dU, tol_for(1, 1));
        pair *all[] = {&G, &U, &D, &O, &dG, &dU};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(g);
        free(u);
        free(d);
    }
    // gate | up as the halves of one [N, 2F] buffer and dgate | dup of another, as the model runs it
    enum { N = 33, F = 100 };
    float *gu = random_act((size_t)N * 2 * F, -4, 4), *d = random_act((size_t)N * F, -1, 1);
    pair GU = make_act((size_t)N * 2 * F, gu), D = make_act((size_t)N * F, d),
         O = make_act((size_t)N * F, NULL);
    pair dGU = make_act((size_t)N * 2 * F, NULL), U = view(&GU, F), dU = view(&dGU, F);
    cpu.be->swiglu_forward(&cpu, O.c, GU.c, U.c, N, F, 2 * F);
    gpu.be->swiglu_forward(&gpu, O.g, GU.g, U.g, N, F, 2 * F);
    expect_close("fused swiglu_forward", &O, tol_for(1, 1));
    cpu.be->swiglu_backward(&cpu, dGU.c, dU.c, D.c, GU.c, U.c, N, F, 2 * F);
    gpu.be->swiglu_backward(&gpu, dGU.g, dU.g, D.g, GU.g, U.g, N, F, 2 * F);
    expect_close("fused swiglu_backward dgate|dup", &dGU, tol_for(1, 1));
    twin_drop(&GU), twin_drop(&D), twin_drop(&O), twin_drop(&dGU);
    free(gu), free(d);
}
END_TEST

// copy_rows into and out of a column slice of a wider buffer, overwriting and accumulating; the columns
// outside the slice keep their (random) values.
START_TEST(test_copy_rows) {
    enum { ROWS = 37, COLS = 21, LD = 50, OFF = 13 };
    float *wide = random_act((size_t)ROWS * LD, -1, 1), *narrow = random_act((size_t)ROWS * COLS, -1, 1);
    pair Wd = make_act((size_t)ROWS * LD, wide), Nw = make_act((size_t)ROWS * COLS, NULL);
    pair Sl = view(&Wd, OFF);
    cpu.be->copy_rows(&cpu, Nw.c, COLS, Sl.c, LD, ROWS, COLS, 0);
    gpu.be->copy_rows(&gpu, Nw.g, COLS, Sl.g, LD, ROWS, COLS, 0);
    expect_close("copy_rows out of a slice", &Nw, (tol){0.0f, 0.0f});
    twin_drop(&Nw);
    Nw = make_act((size_t)ROWS * COLS, narrow);
    cpu.be->copy_rows(&cpu, Sl.c, LD, Nw.c, COLS, ROWS, COLS, 1);
    gpu.be->copy_rows(&gpu, Sl.g, LD, Nw.g, COLS, ROWS, COLS, 1);
    expect_close("copy_rows accumulating into a slice", &Wd, tol_for(1, 1));
    twin_drop(&Wd), twin_drop(&Nw);
    free(wide), free(narrow);
}
END_TEST

START_TEST(test_cross_entropy) {
    static const int shapes[][2] = {{1, 3}, {20, 259}, {7, 1000}, {3, 32768}}; // N, V
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        float *x = random_act((size_t)N * V, -8, 8);
        int32_t *tgt = malloc((size_t)N * sizeof(int32_t));
        for (int i = 0; i < N; i++) tgt[i] = i % 5 == 3 ? -1 : (int32_t)rt_rng_below(&rng, (uint64_t)V);
        pair X = make_act((size_t)N * V, x), Tg = make_i32((size_t)N, tgt), Ls = make_f32((size_t)N, NULL);
        cpu.be->cross_entropy(&cpu, Ls.c, NULL, X.c, Tg.c, N, V, 0.5f);
        gpu.be->cross_entropy(&gpu, Ls.g, NULL, X.g, Tg.g, N, V, 0.5f);
        expect_close("cross_entropy losses", &Ls, (tol){1e-4f, 1e-5f});
        // gradient in place over the logits, as the model runs it
        cpu.be->cross_entropy(&cpu, Ls.c, X.c, X.c, Tg.c, N, V, 0.5f);
        gpu.be->cross_entropy(&gpu, Ls.g, X.g, X.g, Tg.g, N, V, 0.5f);
        expect_close("cross_entropy losses (with gradient)", &Ls, (tol){1e-4f, 1e-5f});
        expect_close("cross_entropy dlogits in place", &X, (tol){act == RT_BF16 ? 2e-3f : 1e-7f, 2e-2f});
        if (act ==
            RT_BF16) { // the coarse bound above is only the link to the CPU; this one checks every element
            rt_error err;
            ck_assert_msg(RT_TEST_TWIN_BACKEND->ctx_init(&gpu32, RT_F32, 0, &err) == 0, "%s", err.msg);
            void *x32 = dev32(x, (size_t)N * V, 0), *t32 = dev32(tgt, (size_t)N, 1),
                 *l32 = dev32(NULL, (size_t)N, 0);
            gpu32.be->cross_entropy(&gpu32, l32, x32, x32, t32, N, V, 0.5f);
            expect_bf16_rounding_of_f32("cross_entropy dlogits in place", &X, x32);
            void *all32[] = {x32, t32, l32};
            for (size_t i = 0; i < sizeof all32 / sizeof all32[0]; i++) gpu32.be->free(&gpu32, all32[i]);
            gpu32.be->ctx_free(&gpu32);
        }
        twin_drop(&X);
        twin_drop(&Tg);
        twin_drop(&Ls);
        free(x);
        free(tgt);
    }
}
END_TEST

static const float *kd_sort_keys;
static int kd_desc(const void *a, const void *b) {
    float x = kd_sort_keys[*(const int32_t *)a], y = kd_sort_keys[*(const int32_t *)b];
    return x < y ? 1 : x > y ? -1 : 0;
}

// Dense, bucket and renorm teachers with every divergence, the gradient in place over the logits. The sparse
// teacher is the top k of a random teacher's log_softmax at the capture temperature; some rows have none.
START_TEST(test_distill) {
    static const int shapes[][3] = {{1, 3, 1}, {9, 259, 16}, {5, 1000, 64}, {3, 32768, 1024}}; // N, V, k
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int kind = 0; kind < 3; kind++) // dense, bucket, renorm
            for (int div = 0; div < 3; div++) {
                int N = shapes[s][0], V = shapes[s][1], k = shapes[s][2];
                rt_kd_params kp = {.divergence = (rt_kd_divergence)div,
                                   .temperature = kind == 2 ? 1.5f : 2.0f,
                                   .alpha = 0.6f,
                                   .beta = 0.3f,
                                   .tail = kind == 2 ? RT_KD_TAIL_RENORM : RT_KD_TAIL_BUCKET,
                                   .topk_temperature = 2.0f};
                float *x = random_act((size_t)N * V, -8, 8), *t = random_act((size_t)N * V, -8, 8);
                float *lps = twin_host((size_t)N * k);
                int32_t *tgt = malloc((size_t)N * sizeof(int32_t)),
                        *ids = malloc((size_t)N * k * sizeof(int32_t));
                int32_t *order = malloc((size_t)V * sizeof(int32_t));
                for (int i = 0; i < N; i++) {
                    tgt[i] = i % 5 == 3 ? -1 : (int32_t)rt_rng_below(&rng, (uint64_t)V);
                    const float *ti = t + (size_t)i * V;
                    double mx = ti[0], z = 0;
                    for (int j = 0; j < V; j++) mx = ti[j] > mx ? ti[j] : mx, order[j] = j;
                    for (int j = 0; j < V; j++) z += exp((ti[j] - mx) / 2.0);
                    kd_sort_keys = ti;
                    qsort(order, (size_t)V, sizeof(int32_t), kd_desc);
                    for (int c = 0; c < k; c++) {
                        ids[(size_t)i * k + c] = i % 4 == 2 ? -1 : order[c];
                        lps[(size_t)i * k + c] = (float)((ti[order[c]] - mx) / 2.0 - log(z));
                    }
                }
                pair X = make_act((size_t)N * V, x), Tt = make_act((size_t)N * V, t),
                     Tg = make_i32((size_t)N, tgt);
                pair Id = make_i32((size_t)N * k, ids), Lp = make_f32((size_t)N * k, lps);
                pair Ce = make_f32((size_t)N, NULL), Kd = make_f32((size_t)N, NULL);
                int dense = kind == 0;
                char pre[96], what[160];
                static const char *kinds[] = {"dense", "bucket", "renorm"};
                snprintf(pre, sizeof pre, "distill %s divergence %d N=%d V=%d k=%d", kinds[kind], div, N, V,
                         k);
                for (int grad = 0; grad < 2; grad++) { // losses alone, then with the gradient in place
                    cpu.be->distill_loss(&cpu, Ce.c, Kd.c, grad ? X.c : NULL, X.c, dense ? Tt.c : NULL,
                                         dense ? NULL : Id.c, dense ? NULL : Lp.c, k, Tg.c, N, V, &kp, 0.5f);
                    gpu.be->distill_loss(&gpu, Ce.g, Kd.g, grad ? X.g : NULL, X.g, dense ? Tt.g : NULL,
                                         dense ? NULL : Id.g, dense ? NULL : Lp.g, k, Tg.g, N, V, &kp, 0.5f);
                    snprintf(what, sizeof what, "%s: ce%s", pre, grad ? " (with gradient)" : "");
                    expect_close(what, &Ce, (tol){1e-4f, 1e-5f});
                    snprintf(what, sizeof what, "%s: kd%s", pre, grad ? " (with gradient)" : "");
                    expect_close(what, &Kd, (tol){1e-4f, 1e-4f});
                }
                snprintf(what, sizeof what, "%s: dlogits in place", pre);
                expect_close(what, &X, (tol){act == RT_BF16 ? 2e-3f : 2e-6f, act == RT_BF16 ? 2e-2f : 1e-3f});
                if (act == RT_BF16) { // as in test_cross_entropy: every element against the fp32 kernel's
                    rt_error err;
                    ck_assert_msg(RT_TEST_TWIN_BACKEND->ctx_init(&gpu32, RT_F32, 0, &err) == 0, "%s",
                                  err.msg);
                    size_t nv = (size_t)N * V, nk = (size_t)N * k;
                    void *x32 = dev32(x, nv, 0), *t32 = dev32(t, nv, 0), *y32 = dev32(tgt, (size_t)N, 1);
                    void *id32 = dev32(ids, nk, 1), *lp32 = dev32(lps, nk, 0);
                    void *ce32 = dev32(NULL, (size_t)N, 0), *kd32 = dev32(NULL, (size_t)N, 0);
                    gpu32.be->distill_loss(&gpu32, ce32, kd32, x32, x32, dense ? t32 : NULL,
                                           dense ? NULL : id32, dense ? NULL : lp32, k, y32, N, V, &kp, 0.5f);
                    expect_bf16_rounding_of_f32(what, &X, x32);
                    void *all32[] = {x32, t32, y32, id32, lp32, ce32, kd32};
                    for (size_t i = 0; i < sizeof all32 / sizeof all32[0]; i++)
                        gpu32.be->free(&gpu32, all32[i]);
                    gpu32.be->ctx_free(&gpu32);
                }
                pair *all[] = {&X, &Tt, &Tg, &Id, &Lp, &Ce, &Kd};
                for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
                free(x);
                free(t);
                free(lps);
                free(tgt);
                free(ids);
                free(order);
            }
}
END_TEST

START_TEST(test_reductions_and_adamw) {
    static const size_t sizes[] = {1, 255, 70001};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *x = random_act(n, -1, 1), *xf = random_f32(n, -1, 1), start = 0.25f;
        pair X = make_act(n, x), Xf = make_f32(n, xf), Acc = make_f32(1, &start), Out = make_f32(1, NULL);
        cpu.be->sum_squares(&cpu, Acc.c, X.c, n);
        gpu.be->sum_squares(&gpu, Acc.g, X.g, n);
        expect_close("sum_squares (accumulating)", &Acc, (tol){1e-5f, 1e-5f});
        cpu.be->sum_f32(&cpu, Out.c, Xf.c, n);
        gpu.be->sum_f32(&gpu, Out.g, Xf.g, n);
        expect_close("sum_f32", &Out, (tol){1e-5f, 1e-5f});
        for (int k = 0; k < 2; k++) { // below and above the clip threshold
            float max_norm = k ? 1e6f : 0.5f;
            pair Sc = make_f32(1, NULL);
            cpu.be->clip_scale(&cpu, Sc.c, Acc.c, max_norm);
            gpu.be->clip_scale(&gpu, Sc.g, Acc.g, max_norm);
            expect_close("clip_scale", &Sc, (tol){1e-6f, 1e-5f});
            twin_drop(&Sc);
        }
        // AdamW over 3 steps from random moments; the act copy of the weights must follow the master
        float *w = random_f32(n, -1, 1), *m = random_f32(n, -0.1f, 0.1f), *v = random_f32(n, 0, 0.01f);
        float gs = 0.7f;
        pair Wm = make_f32(n, w), Wa = make_act(n, NULL), M = make_f32(n, m), Vm = make_f32(n, v);
        pair G = make_f32(n, x), Gs = make_f32(1, &gs); // the gradient is fp32 whatever the act dtype
        for (int step = 1; step <= 3; step++) {
            cpu.be->adamw(&cpu, Wm.c, Wm.c, G.c, M.c, Vm.c, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step, Gs.c);
            gpu.be->adamw(&gpu, Wm.g, act == RT_F32 ? Wm.g : Wa.g, G.g, M.g, Vm.g, n, 1e-2f, 0.9f, 0.95f,
                          1e-8f, 0.1f, step, Gs.g);
        }
        expect_close("adamw master", &Wm, (tol){1e-6f, 1e-5f});
        expect_close("adamw m", &M, (tol){1e-7f, 1e-5f});
        expect_close("adamw v", &Vm, (tol){1e-8f, 1e-5f});
        if (act == RT_BF16) { // the bf16 copy is the master rounded
            cpu.be->convert(&cpu, Wa.c, RT_F32, Wm.c, RT_F32, n);
            expect_close("adamw bf16 copy", &Wa, (tol){1e-6f, 5e-3f});
        }
        pair *all[] = {&X, &Xf, &Acc, &Out, &Wm, &Wa, &M, &Vm, &G, &Gs};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(x);
        free(xf);
        free(w);
        free(m);
        free(v);
    }
}
END_TEST

START_TEST(test_copies_and_adds) {
    size_t n = 10007;
    float *a = random_act(n, -3, 3), *b = random_act(n, -3, 3);
    pair A = make_act(n, a), Bb = make_act(n, b), O = make_act(n, NULL);
    cpu.be->add(&cpu, O.c, A.c, Bb.c, n);
    gpu.be->add(&gpu, O.g, A.g, Bb.g, n);
    expect_close("add", &O, tol_for(1, 1));
    cpu.be->add_inplace(&cpu, A.c, Bb.c, n);
    gpu.be->add_inplace(&gpu, A.g, Bb.g, n);
    expect_close("add_inplace", &A, tol_for(1, 1));
    // fp32 -> act -> fp32 round trip through convert
    float *f = random_f32(n, -100, 100);
    pair F = make_f32(n, f), Ac = make_act(n, NULL), Back = make_f32(n, NULL);
    cpu.be->convert(&cpu, Ac.c, RT_F32, F.c, RT_F32, n);
    gpu.be->convert(&gpu, Ac.g, act, F.g, RT_F32, n);
    expect_close("convert fp32 -> act", &Ac, (tol){0, act == RT_BF16 ? 4e-3f : 0});
    cpu.be->convert(&cpu, Back.c, RT_F32, Ac.c, RT_F32, n);
    gpu.be->convert(&gpu, Back.g, RT_F32, Ac.g, act, n);
    expect_close("convert act -> fp32", &Back, (tol){0, act == RT_BF16 ? 4e-3f : 0});
    pair *all[] = {&A, &Bb, &O, &F, &Ac, &Back};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
    free(a);
    free(b);
    free(f);
}
END_TEST

// The same inputs twice give the same bits: no atomics, fixed reduction orders.
START_TEST(test_deterministic) {
    int B = 2, T = 45, H = 4, KVH = 2, D = 32, N = 300, C = 64, V = 20;
    size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
    float *q = random_act(nq, -1, 1), *k = random_act(nk, -1, 1), *v = random_act(nk, -1, 1);
    float *d = random_act(nq, -1, 1), *dout = random_act((size_t)N * C, -1, 1);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) tok[i] = (int32_t)rt_rng_below(&rng, (uint64_t)V);
    float *first = NULL;
    size_t total = 3 * nq + (size_t)V * C;
    for (int rep = 0; rep < 2; rep++) {
        float *out = twin_host(total);
        pair Q = make_act(nq, q), K = make_act(nk, k), Vv = make_act(nk, v), Dd = make_act(nq, d);
        pair O = make_act(nq, NULL), L = make_f32((size_t)B * H * T, NULL), dQ = make_act(nq, NULL);
        pair dK = make_act(nk, NULL), dV = make_act(nk, NULL), Do = make_act((size_t)N * C, dout);
        float *zeros = twin_host((size_t)V * C);
        pair Tk = make_i32((size_t)N, tok), dT = make_act((size_t)V * C, zeros);
        gpu.be->attention_forward(&gpu, O.g, L.g, Q.g, K.g, Vv.g, B, T, H, KVH, D, H * D, KVH * D);
        gpu.be->attention_backward(&gpu, dQ.g, dK.g, dV.g, Dd.g, Q.g, K.g, Vv.g, O.g, L.g, B, T, H, KVH, D,
                                   H * D, KVH * D);
        gpu.be->embedding_backward(&gpu, dT.g, Do.g, Tk.g, N, C);
        gpu.be->download(&gpu, out, O.g, act, nq);
        gpu.be->download(&gpu, out + nq, dQ.g, act, nq);
        gpu.be->download(&gpu, out + 2 * nq, dK.g, act, nk);
        gpu.be->download(&gpu, out + 2 * nq + nk, dV.g, act, nk);
        gpu.be->download(&gpu, out + 3 * nq, dT.g, act, (size_t)V * C);
        if (rep == 0)
            first = out;
        else {
            ck_assert_msg(memcmp(first, out, (2 * nq + 2 * nk + (size_t)V * C) * sizeof(float)) == 0,
                          "attention / embedding results differ between two identical runs");
            free(out);
        }
        pair *all[] = {&Q, &K, &Vv, &Dd, &O, &L, &dQ, &dK, &dV, &Do, &Tk, &dT};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(zeros);
    }
    free(first);
    free(q);
    free(k);
    free(v);
    free(d);
    free(dout);
    free(tok);
}
END_TEST

#ifndef RT_TWIN_CPU // a bad device address is the GPU's failure; the CPU has no such check
// A failed op is reported by check() with the op's name, and later ops on that context do nothing.
START_TEST(test_failure_is_reported) {
    rt_error err;
    ck_assert_int_eq(gpu.be->check(&gpu, &err), 0);
    float one = 1.0f;
    // an address no allocation owns: the copy is refused at once (the CUDA context itself stays usable)
    gpu.be->upload(&gpu, (void *)(uintptr_t)16, RT_F32, &one, 1);
    ck_assert_int_ne(gpu.be->check(&gpu, &err), 0);
    ck_assert_msg(strstr(err.msg, "upload"), "%s", err.msg);
    float back = 0.0f;
    pair O = make_f32(1, &one);
    gpu.be->download(&gpu, &back, O.g, RT_F32, 1);
    ck_assert_msg(isnan(back), "a failed context returned data: %g", back);
    twin_drop(&O);
    // a fresh context is healthy again (twin_teardown checks it)
    gpu.be->ctx_free(&gpu);
    ck_assert_msg(RT_TEST_TWIN_BACKEND->ctx_init(&gpu, act, 0, &err) == 0, "%s", err.msg);
}
END_TEST
#endif

static void add_all(TCase *tc) {
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_embedding);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_bias);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_attention_fused);
    tcase_add_test(tc, test_swiglu);
    tcase_add_test(tc, test_copy_rows);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_distill);
    tcase_add_test(tc, test_reductions_and_adamw);
    tcase_add_test(tc, test_copies_and_adds);
    tcase_add_test(tc, test_deterministic);
#ifndef RT_TWIN_CPU
    tcase_add_test(tc, test_failure_is_reported);
#endif
}

int main(void) {
    int skip = RT_TEST_TWIN_SKIP();
    if (skip) return skip;
    rt_rng_seed(&rng, 20261201);
    Suite *s = suite_create("cuda ops vs cpu");
    TCase *f32 = tcase_create("fp32"), *b16 = tcase_create("bf16");
    tcase_add_checked_fixture(f32, twin_setup_f32, twin_teardown);
    tcase_add_checked_fixture(b16, twin_setup_bf16, twin_teardown);
    tcase_set_timeout(f32, 600);
    tcase_set_timeout(b16, 600);
#ifndef RT_TWIN_CPU // on the CPU the fp32 twin is the reference itself: only bf16 has something to check
    add_all(f32);
    suite_add_tcase(s, f32);
#endif
    add_all(b16);
    suite_add_tcase(s, b16);
    return rt_test_run_suite_nofork(s); // CUDA does not survive fork() once the runtime has started
}
