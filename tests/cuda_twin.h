// The harness of the tests that check CUDA ops against their CPU twins (test_cuda_ops.c, test_cuda_kv.c):
// a CPU and a GPU context per test case, buffers held on both devices, and the comparison of the two.
// In bf16 the inputs are rounded to bf16 first, so both backends see identical values and the difference is
// the GPU's rounding of its outputs. Outputs an op overwrites are poisoned with NaN first, so an element it
// forgets fails; NaN never passes a comparison.
#ifndef RT_TEST_CUDA_TWIN_H
#define RT_TEST_CUDA_TWIN_H

#include <stddef.h>

#include "backend/backend.h"
#include "base/rng.h"

// The contexts of the current test case (set up by the fixtures below), the GPU context's activation dtype,
// and the random stream the inputs are drawn from (the test's main seeds it).
extern rt_ctx cpu, gpu;
extern rt_dtype act;
extern rt_rng rng;

// Check fixtures: the CPU context (fp32, 2 threads) and the GPU context in fp32 or bf16; teardown fails the
// test when the GPU context recorded a failure.
void twin_setup_f32(void);
void twin_setup_bf16(void);
void twin_teardown(void);

// bf16 rounding on the host (round to nearest even), so the CPU twin sees what the GPU holds.
float twin_round_bf16(float f);

// n zeroed floats on the host (fails the test when out of memory).
float *twin_host(size_t n);

// A buffer on both devices: fp32 on the CPU, gt on the GPU.
typedef struct pair {
    void *c, *g;
    size_t n;
    rt_dtype gt;
} pair;

// A pair holding init on both sides (NULL: NaN in every element).
pair twin_make(size_t n, rt_dtype gt, const float *init);
void twin_drop(pair *p);

// Downloads both sides and checks |gpu - cpu| <= atol + rtol |cpu| over elements [0, n) (every element
// when n is 0); the label names the test case's dtype.
void twin_expect_close(const char *what, const pair *p, size_t n, float atol, float rtol);

#endif
