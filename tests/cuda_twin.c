// The CUDA twin-test harness (cuda_twin.h).
#include "cuda_twin.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

rt_ctx cpu, gpu;
rt_dtype act;
rt_rng rng;

static void setup_ctx(rt_dtype a) {
    rt_error err;
    act = a;
    ck_assert_msg(rt_backend_cpu.ctx_init(&cpu, RT_F32, rt_test_cpu_threads(), &err) == 0, "%s", err.msg);
    ck_assert_msg(RT_TEST_TWIN_BACKEND->ctx_init(&gpu, a, 0, &err) == 0, "%s", err.msg);
}

void twin_setup_f32(void) {
    setup_ctx(RT_F32);
}

void twin_setup_bf16(void) {
    setup_ctx(RT_BF16);
}

void twin_teardown(void) {
    rt_error err;
    ck_assert_msg(gpu.be->check(&gpu, &err) == 0, "%s", err.msg);
    gpu.be->ctx_free(&gpu);
    cpu.be->ctx_free(&cpu);
}

float twin_round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

float *twin_host(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

pair twin_make(size_t n, rt_dtype gt, const float *init) {
    rt_error err;
    pair p = {NULL, NULL, n, gt};
    p.c = cpu.be->alloc(&cpu, (n ? n : 1) * sizeof(float), "test", &err);
    p.g = gpu.be->alloc(&gpu, (n ? n : 1) * rt_dtype_size(gt), "test", &err);
    ck_assert_msg(p.c && p.g, "%s", err.msg);
    float *nan_fill = NULL;
    if (!init) { // poison: NaN in every element the op must overwrite
        nan_fill = twin_host(n);
        for (size_t i = 0; i < n; i++) nan_fill[i] = NAN;
        init = nan_fill;
    }
    cpu.be->upload(&cpu, p.c, RT_F32, init, n);
    gpu.be->upload(&gpu, p.g, gt, init, n);
    free(nan_fill);
    return p;
}

void twin_drop(pair *p) {
    cpu.be->free(&cpu, p->c);
    gpu.be->free(&gpu, p->g);
}

void twin_expect_close(const char *what, const pair *p, size_t n, float atol, float rtol) {
    rt_error err;
    if (n == 0) n = p->n;
    float *c = twin_host(p->n), *g = twin_host(p->n);
    cpu.be->download(&cpu, c, p->c, RT_F32, p->n);
    gpu.be->sync(&gpu);
    ck_assert_msg(gpu.be->check(&gpu, &err) == 0, "%s: %s", what, err.msg);
    gpu.be->download(&gpu, g, p->g, p->gt, p->n);
    char label[192];
    snprintf(label, sizeof label, "%s [%s]", what, rt_dtype_name(act));
    rt_test_assert_close(label, g, c, n, atol, rtol);
    free(c);
    free(g);
}
