// Llama 3.1 RoPE scaling recovered from llama.cpp's rope_freqs.weight (rt_rope_llama3_from_factors): factor
// vectors made here with llama.cpp's converter's formula (conversion/llama.py, generate_extra_tensors) give
// back Llama 3.1's and 3.2's parameters, an equivalent parametrisation gives the canonical one (low factor
// 1), vectors with one or no interpolated pair give parameters that reproduce them, all ones is no scaling,
// and vectors no llama3 scaling makes are refused.
#include <check.h>
#include <math.h>
#include <string.h>

#include "import/gguf_import.h"
#include "testutil.h"

// The converter's rope_freqs.weight, in double as Python computes it, stored as fp32.
static void converter_factors(double theta, int D, double factor, double low, double high, double n,
                              float *out) {
    for (int i = 0; i < D / 2; i++) {
        double freq = 1.0 / pow(theta, 2.0 * i / D), wavelen = 2 * 3.14159265358979323846 / freq;
        if (wavelen < n / high)
            out[i] = 1.0f;
        else if (wavelen > n / low)
            out[i] = (float)factor;
        else {
            double smooth = (n / wavelen - low) / (high - low);
            out[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
}

// The parameters reproduce r within 1e-6 relative (by the converter's formula, not retort's).
static void expect_reproduces(const float *r, double theta, int D, const rt_rope_scaling *s) {
    float mine[64];
    converter_factors(theta, D, s->factor, s->low_freq_factor, s->high_freq_factor, s->original_max_seq_len,
                      mine);
    for (int i = 0; i < D / 2; i++)
        ck_assert_msg(fabsf(mine[i] - r[i]) <= 1e-6f * r[i], "pair %d: %g from (%g, %g, %g, %d), stored %g",
                      i, (double)mine[i], (double)s->factor, (double)s->low_freq_factor,
                      (double)s->high_freq_factor, s->original_max_seq_len, (double)r[i]);
}

static rt_rope_scaling recover(const float *r, double theta, int D) {
    rt_rope_scaling s;
    rt_error err;
    ck_assert_msg(rt_rope_llama3_from_factors(r, D, theta, "rope_freqs.weight", &s, &err) == 0, "%s",
                  err.msg);
    return s;
}

START_TEST(test_llama31_and_32) {
    float r[64];
    const double factors[2] = {8.0, 32.0}; // Llama 3.1 8B; Llama 3.2 1B/3B
    for (int k = 0; k < 2; k++) {
        converter_factors(500000.0, 128, factors[k], 1.0, 4.0, 8192.0, r);
        rt_rope_scaling s = recover(r, 500000.0, 128);
        ck_assert_int_eq(s.type, RT_ROPE_SCALING_LLAMA3);
        ck_assert_float_eq(s.factor, (float)factors[k]);
        ck_assert_float_eq(s.low_freq_factor, 1.0f);
        ck_assert_float_eq(s.high_freq_factor, 4.0f);
        ck_assert_int_eq(s.original_max_seq_len, 8192);
    }
}
END_TEST

START_TEST(test_equivalent_parameters) {
    // n : low : high = 16384 : 2 : 8 is the same scaling as 8192 : 1 : 4
    float r[64];
    converter_factors(500000.0, 128, 4.0, 2.0, 8.0, 16384.0, r);
    rt_rope_scaling s = recover(r, 500000.0, 128);
    ck_assert_float_eq(s.low_freq_factor, 1.0f);
    ck_assert_float_eq(s.high_freq_factor, 4.0f);
    ck_assert_int_eq(s.original_max_seq_len, 8192);
    expect_reproduces(r, 500000.0, 128, &s);
    // and a ratio that is no integer context: still reproduced
    converter_factors(10000.0, 64, 6.0, 1.5, 5.0, 1000.0, r);
    s = recover(r, 10000.0, 64);
    expect_reproduces(r, 10000.0, 64, &s);
}
END_TEST

START_TEST(test_few_interpolated_pairs) {
    float r[4];
    // head dim 8, theta 10000: wavelengths 6.3, 63, 628, 6283; original context 16: one interpolated pair
    converter_factors(10000.0, 8, 4.0, 1.0, 4.0, 16.0, r);
    ck_assert(r[0] > 1.0f && r[0] < 4.0f && r[1] == 4.0f);
    rt_rope_scaling s = recover(r, 10000.0, 8);
    expect_reproduces(r, 10000.0, 8, &s);
    const float step[4] = {1.0f, 1.0f, 4.0f, 4.0f}, scaled[4] = {4.0f, 4.0f, 4.0f, 4.0f};
    s = recover(step, 10000.0, 8);
    expect_reproduces(step, 10000.0, 8, &s);
    s = recover(scaled, 10000.0, 8);
    expect_reproduces(scaled, 10000.0, 8, &s);
    const float ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    ck_assert_int_eq(recover(ones, 10000.0, 8).type, RT_ROPE_SCALING_NONE);
}
END_TEST

static void expect_refused(const float *r, int D, const char *why) {
    rt_rope_scaling s;
    rt_error err;
    ck_assert_msg(rt_rope_llama3_from_factors(r, D, 500000.0, "x.gguf: rope_freqs.weight", &s, &err) != 0,
                  "%s: accepted", why);
    ck_assert_msg(strstr(err.msg, "x.gguf: rope_freqs.weight is not a llama3 frequency scaling"), "%s: %s",
                  why, err.msg);
}

START_TEST(test_refusals) {
    const float order[4] = {1.0f, 4.0f, 1.0f, 4.0f}, small[4] = {0.5f, 1.0f, 2.0f, 4.0f};
    const float nan[4] = {1.0f, NAN, 2.0f, 4.0f};
    expect_refused(order, 8, "not monotone");
    expect_refused(small, 8, "below 1");
    expect_refused(nan, 8, "NaN");
    float r[64];
    converter_factors(500000.0, 128, 8.0, 1.0, 4.0, 8192.0, r);
    int mid = 0;
    while (!(r[mid] > 1.0f && r[mid + 1] > r[mid] && r[mid + 2] > r[mid + 1] && r[mid + 2] < 8.0f)) mid++;
    r[mid + 1] *= 1.001f; // the interpolated band off the llama3 curve
    expect_refused(r, 128, "a middle pair off the curve");
}
END_TEST

int main(void) {
    Suite *s = suite_create("gguf_rope");
    TCase *tc = tcase_create("gguf_rope");
    tcase_add_test(tc, test_llama31_and_32);
    tcase_add_test(tc, test_equivalent_parameters);
    tcase_add_test(tc, test_few_interpolated_pairs);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
