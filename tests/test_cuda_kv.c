// The CUDA KV-cache ops (rope_forward_at, kv_append, attention_forward_cached; contiguous and with the row
// strides of the fused q | k | v) against their CPU twins, in fp32 and bf16, the way test_cuda_ops.c checks
// the other ops (kept apart so neither file grows past a screenful of helpers): the same random inputs on
// both sides (rounded to bf16 first when the GPU runs bf16), outputs poisoned with NaN,
// |gpu - cpu| <= atol + rtol |cpu|. Cache rows past the valid positions stay NaN on both sides, so reading
// one fails. Exits 77 (skipped) without a GPU.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cuda_twin.h"
#include "testutil.h"

// uniform in [lo, hi), rounded to bf16 when the GPU holds bf16 (round = 1)
static float *random_vals(size_t n, float lo, float hi, int round) {
    float *p = twin_host(n);
    rt_test_fill_uniform(&rng, p, n, lo, hi);
    if (round && act == RT_BF16)
        for (size_t i = 0; i < n; i++) p[i] = twin_round_bf16(p[i]);
    return p;
}

START_TEST(test_rope_at) {
    // B, T, H, D, pos0, columns past H * D in a row (a fused q | k | v: those keep their values)
    static const int shapes[][6] = {
        {1, 1, 1, 2, 0, 0}, {2, 5, 3, 8, 7, 0}, {1, 3, 2, 64, 120, 0}, {2, 5, 3, 8, 7, 8}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], D = shapes[s][3], pos0 = shapes[s][4];
        int ld = H * D + shapes[s][5];
        int rows = pos0 + T + 2, half = D / 2;
        float *cs = twin_host((size_t)rows * half), *sn = twin_host((size_t)rows * half);
        for (int t = 0; t < rows; t++)
            for (int i = 0; i < half; i++) {
                double ang = t * pow(10000.0, -2.0 * i / D);
                cs[(size_t)t * half + i] = (float)cos(ang), sn[(size_t)t * half + i] = (float)sin(ang);
            }
        size_t n = (size_t)B * T * ld;
        float *x = random_vals(n, -1, 1, 1), *o0 = random_vals(n, -1, 1, 1);
        pair Cs = twin_make((size_t)rows * half, RT_F32, cs), Sn = twin_make((size_t)rows * half, RT_F32, sn);
        pair X = twin_make(n, act, x), O = twin_make(n, act, ld > H * D ? o0 : NULL);
        cpu.be->rope_forward_at(&cpu, O.c, X.c, Cs.c, Sn.c, B, T, H, D, pos0, ld);
        gpu.be->rope_forward_at(&gpu, O.g, X.g, Cs.g, Sn.g, B, T, H, D, pos0, ld);
        float tol = act == RT_BF16 ? 2e-2f : 2e-6f;
        twin_expect_close("rope_forward_at", &O, 0, tol, tol);
        cpu.be->rope_forward_at(&cpu, X.c, X.c, Cs.c, Sn.c, B, T, H, D, pos0, ld); // in place
        gpu.be->rope_forward_at(&gpu, X.g, X.g, Cs.g, Sn.g, B, T, H, D, pos0, ld);
        twin_expect_close("rope_forward_at in place", &X, 0, tol, tol);
        twin_drop(&Cs), twin_drop(&Sn), twin_drop(&X), twin_drop(&O);
        free(cs), free(sn), free(x), free(o0);
    }
}
END_TEST

// Appends into a randomly filled cache (rows not appended must keep their values: a copy is exact).
START_TEST(test_kv_append) {
    // B, T, KVH, D, pos0, columns of x past KVH * D (the k or v slice of a fused q | k | v row)
    static const int shapes[][6] = {
        {1, 1, 1, 2, 0, 0}, {3, 4, 2, 8, 5, 0}, {2, 9, 1, 64, 0, 0}, {3, 4, 2, 8, 5, 24}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], KVH = shapes[s][2], D = shapes[s][3], pos0 = shapes[s][4];
        int S = pos0 + T + 3, ld = KVH * D + shapes[s][5];
        size_t nx = (size_t)B * T * ld, nc = (size_t)B * S * KVH * D;
        float *x = random_vals(nx, -1, 1, 1), *c0 = random_vals(nc, -1, 1, 1);
        pair X = twin_make(nx, act, x), Cc = twin_make(nc, act, c0);
        cpu.be->kv_append(&cpu, Cc.c, X.c, B, T, KVH, D, pos0, S, ld);
        gpu.be->kv_append(&gpu, Cc.g, X.g, B, T, KVH, D, pos0, S, ld);
        twin_expect_close("kv_append", &Cc, 0, 0.0f, 0.0f);
        twin_drop(&X), twin_drop(&Cc);
        free(x), free(c0);
    }
}
END_TEST

START_TEST(test_attention_cached) {
    // B, Tq, T_ctx, H, KVH, D, cache rows: one and several queries, one and many key chunks, grouped heads,
    // head dims 2 to 256, odd ones
    // head dims 2 to 256, odd ones; the last two with q rows (H + 2 KVH) D apart, as in the fused q | k | v
    static const int shapes[][8] = {{1, 1, 1, 1, 1, 2, 1, 0},     {2, 1, 17, 4, 2, 8, 20, 0},
                                    {3, 1, 70, 6, 3, 32, 80, 0},  {1, 5, 129, 4, 1, 64, 130, 0},
                                    {2, 33, 33, 2, 2, 16, 40, 0}, {1, 2, 40, 2, 1, 128, 48, 0},
                                    {1, 1, 50, 2, 2, 256, 64, 0}, {2, 3, 11, 3, 1, 5, 12, 0},
                                    {2, 3, 11, 3, 1, 5, 12, 10},  {1, 5, 129, 4, 1, 64, 130, 128}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], Tq = shapes[s][1], T = shapes[s][2], H = shapes[s][3], KVH = shapes[s][4],
            D = shapes[s][5], S = shapes[s][6], ldq = H * D + shapes[s][7];
        size_t nq = (size_t)B * Tq * ldq, no = (size_t)B * Tq * H * D, nkv = (size_t)B * T * KVH * D,
               nc = (size_t)B * S * KVH * D;
        float *q = random_vals(nq, -2, 2, 1), *k = random_vals(nkv, -2, 2, 1),
              *v = random_vals(nkv, -1, 1, 1);
        pair Q = twin_make(nq, act, q), K = twin_make(nkv, act, k), Vv = twin_make(nkv, act, v);
        pair Kc = twin_make(nc, act, NULL), Vc = twin_make(nc, act, NULL), O = twin_make(no, act, NULL);
        cpu.be->kv_append(&cpu, Kc.c, K.c, B, T, KVH, D, 0, S, KVH * D);
        gpu.be->kv_append(&gpu, Kc.g, K.g, B, T, KVH, D, 0, S, KVH * D);
        cpu.be->kv_append(&cpu, Vc.c, Vv.c, B, T, KVH, D, 0, S, KVH * D);
        gpu.be->kv_append(&gpu, Vc.g, Vv.g, B, T, KVH, D, 0, S, KVH * D);
        cpu.be->attention_forward_cached(&cpu, O.c, Q.c, Kc.c, Vc.c, B, Tq, T, H, KVH, D, S, ldq);
        gpu.be->attention_forward_cached(&gpu, O.g, Q.g, Kc.g, Vc.g, B, Tq, T, H, KVH, D, S, ldq);
        char what[160];
        snprintf(what, sizeof what,
                 "attention_forward_cached B=%d Tq=%d T_ctx=%d H=%d KVH=%d D=%d S=%d ldq=%d", B, Tq, T, H,
                 KVH, D, S, ldq);
        float tol = act == RT_BF16 ? 2e-2f : 2e-5f;
        twin_expect_close(what, &O, 0, tol, act == RT_BF16 ? 2e-2f : 1e-4f);
        pair *all[] = {&Q, &K, &Vv, &Kc, &Vc, &O};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) twin_drop(all[i]);
        free(q), free(k), free(v);
    }
}
END_TEST

// Two identical runs give identical bits (no atomics).
START_TEST(test_attention_cached_deterministic) {
    enum { B = 2, Tq = 3, T = 100, H = 4, KVH = 2, D = 32, S = 100 };
    size_t nq = (size_t)B * Tq * H * D, nc = (size_t)B * S * KVH * D;
    float *q = random_vals(nq, -2, 2, 1), *k = random_vals(nc, -2, 2, 1), *v = random_vals(nc, -1, 1, 1);
    pair Q = twin_make(nq, act, q), Kc = twin_make(nc, act, k), Vc = twin_make(nc, act, v);
    float *out[2];
    for (int run = 0; run < 2; run++) {
        pair O = twin_make(nq, act, NULL);
        gpu.be->attention_forward_cached(&gpu, O.g, Q.g, Kc.g, Vc.g, B, Tq, T, H, KVH, D, S, H * D);
        out[run] = twin_host(nq);
        gpu.be->download(&gpu, out[run], O.g, act, nq);
        twin_drop(&O);
    }
    ck_assert_msg(memcmp(out[0], out[1], nq * sizeof(float)) == 0,
                  "cached attention differs between two runs");
    twin_drop(&Q), twin_drop(&Kc), twin_drop(&Vc);
    free(q), free(k), free(v), free(out[0]), free(out[1]);
}
END_TEST

static void add_all(TCase *tc) {
    tcase_add_test(tc, test_rope_at);
    tcase_add_test(tc, test_kv_append);
    tcase_add_test(tc, test_attention_cached);
    tcase_add_test(tc, test_attention_cached_deterministic);
}

int main(void) {
    int skip = RT_TEST_TWIN_SKIP();
    if (skip) return skip;
    rt_rng_seed(&rng, 20261202);
    Suite *s = suite_create("cuda kv-cache ops vs cpu");
    TCase *f32 = tcase_create("fp32"), *b16 = tcase_create("bf16");
    tcase_add_checked_fixture(f32, twin_setup_f32, twin_teardown);
    tcase_add_checked_fixture(b16, twin_setup_bf16, twin_teardown);
#ifndef RT_TWIN_CPU // on the CPU the fp32 twin is the reference itself: only bf16 has something to check
    add_all(f32);
    suite_add_tcase(s, f32);
#endif
    add_all(b16);
    suite_add_tcase(s, b16);
    return rt_test_run_suite_nofork(s); // CUDA does not survive fork() once the runtime has started
}
