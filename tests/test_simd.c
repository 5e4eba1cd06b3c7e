// csrc/cpu/simd.h: each form of cpu_v16 against the scalar code it stands for, lane by lane and bit for bit.
// Built three times (tests/ops.cmake): with the build's instruction set (test_simd), for AVX2 with FMA
// (test_simd_avx2) and without AVX (test_simd_plain); RT_SIMD_EXPECT names the form a variant must compile
// to, and a CPU without it skips that variant.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_internal.h"

#define SKIP 77 // ctest's SKIP_RETURN_CODE

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint32_t next_random(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

START_TEST(test_exp) {
    const float special[16] = {NAN,   -NAN,    INFINITY, -INFINITY, 0.0f,    -0.0f,   88.37f, 88.5f,
                               88.8f, 1000.0f, -87.33f,  -87.4f,    -100.0f, -104.0f, -1e30f, 1e-40f};
    uint32_t state = 12345;
    int bad = 0; // one assertion at the end: Check reports every assertion to its parent process
    float xs[16], got[16], bad_x = 0, bad_got = 0, bad_want = 0;
    for (int round = 0; round < 200000; round++) {
        for (int j = 0; j < 16; j++)
            xs[j] = round == 0 ? special[j] : ((float)next_random(&state) / 16777216.0f - 0.5f) * 200.0f;
        cpu_v16_store(got, cpu_v16_exp(cpu_v16_load(xs)));
        for (int j = 0; j < 16; j++) {
            float want = cpu_expf(xs[j]);
            if (!(isnan(want) ? isnan(got[j]) : bits_of(got[j]) == bits_of(want)) && !bad++)
                bad_x = xs[j], bad_got = got[j], bad_want = want;
        }
    }
    ck_assert_msg(!bad, "cpu_v16_exp differs from cpu_expf %d times, first at %.9g: %.9g, not %.9g", bad,
                  bad_x, bad_got, bad_want);
}
END_TEST

// add, sub, mul, div, neg and max against the C operators, on values with NaNs, zeros and infinities mixed in
START_TEST(test_arithmetic) {
    const float odd[8] = {NAN, -NAN, 0.0f, -0.0f, INFINITY, -INFINITY, 1e-40f, -3.5f};
    uint32_t state = 777;
    int bad = 0;
    char what[64] = "";
    for (int round = 0; round < 20000; round++) {
        float a[16], b[16], r[6][16];
        for (int j = 0; j < 16; j++) {
            uint32_t pick = next_random(&state);
            a[j] = pick % 5 == 0 ? odd[pick % 8] : ((float)next_random(&state) / 16777216.0f - 0.5f) * 8.0f;
            b[j] = pick % 7 == 0 ? odd[(pick / 8) % 8]
                                 : ((float)next_random(&state) / 16777216.0f - 0.5f) * 8.0f;
        }
        cpu_v16 va = cpu_v16_load(a), vb = cpu_v16_load(b);
        cpu_v16_store(r[0], cpu_v16_add(va, vb));
        cpu_v16_store(r[1], cpu_v16_sub(va, vb));
        cpu_v16_store(r[2], cpu_v16_mul(va, vb));
        cpu_v16_store(r[3], cpu_v16_div(va, vb));
        cpu_v16_store(r[4], cpu_v16_neg(va));
        cpu_v16_store(r[5], cpu_v16_max(va, vb));
        for (int j = 0; j < 16; j++) {
            float want[6] = {a[j] + b[j], a[j] - b[j], a[j] * b[j],
                             a[j] / b[j], -a[j],       a[j] > b[j] ? a[j] : b[j]};
            for (int o = 0; o < 6; o++)
                if (bits_of(r[o][j]) != bits_of(want[o]) && !(isnan(want[o]) && isnan(r[o][j]) && o != 4) &&
                    !bad++)
                    snprintf(what, sizeof what, "op %d of %.9g, %.9g: %.9g", o, a[j], b[j], r[o][j]);
        }
    }
    ck_assert_msg(!bad, "%d lanes differ from the C operators, first %s", bad, what);
}
END_TEST

START_TEST(test_bf16) {
    int bad = 0, bad_back = 0;
    uint32_t bad_w = 0;
    uint16_t bad_h = 0, want_h = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 4099) { // every exponent, mantissa patterns, both signs
        uint32_t w[16];
        float xs[16];
        uint16_t got[16];
        for (int j = 0; j < 16; j++) w[j] = (uint32_t)u + (uint32_t)j * 0x10001u;
        memcpy(xs, w, sizeof xs);
        cpu_v16_store_bf16(got, cpu_v16_load(xs));
        for (int j = 0; j < 16; j++) {
            uint16_t want = cpu_bf16_store(xs[j]);
#if defined(CPU_SIMD_AVX512) && defined(__AVX512BF16__)
            if (fpclassify(xs[j]) == FP_SUBNORMAL) want = (uint16_t)((w[j] >> 16) & 0x8000u); // VCVTNEPS2BF16
#endif
            if (got[j] != want && !bad++) bad_w = w[j], bad_h = got[j], want_h = want;
        }
        // and back: bf16 -> fp32 is exact
        float wide[16];
        cpu_v16_store(wide, cpu_v16_load_bf16(got));
        for (int j = 0; j < 16; j++) bad_back += bits_of(wide[j]) != (uint32_t)got[j] << 16;
    }
    ck_assert_msg(!bad, "bf16 rounding differs %d times, first of 0x%08x: 0x%04x, not 0x%04x", bad, bad_w,
                  bad_h, want_h);
    ck_assert_msg(!bad_back, "bf16 -> fp32 differs %d times", bad_back);
}
END_TEST

// the _n forms: lanes past n read as 0 and are not written; keep_first; hmax
START_TEST(test_partial) {
    float src[16], dst[16], lanes[16];
    uint16_t hsrc[16], hdst[16];
    for (int j = 0; j < 16; j++) src[j] = (float)(j + 1), hsrc[j] = cpu_bf16_store((float)(j + 1));
    for (int n = 1; n <= 16; n++) {
        for (int j = 0; j < 16; j++) dst[j] = -1.0f, hdst[j] = 0xffff;
        cpu_v16_store(lanes, cpu_v16_load_n(src, n));
        cpu_v16_store_n(dst, cpu_v16_load(src), n);
        cpu_v16_store_bf16_n(hdst, cpu_v16_load_bf16_n(hsrc, n), n);
        for (int j = 0; j < 16; j++) {
            ck_assert_msg(lanes[j] == (j < n ? src[j] : 0.0f), "load_n(%d) lane %d = %g", n, j, lanes[j]);
            ck_assert_msg(dst[j] == (j < n ? src[j] : -1.0f), "store_n(%d) lane %d = %g", n, j, dst[j]);
            ck_assert_msg(hdst[j] == (j < n ? hsrc[j] : 0xffff), "bf16 store_n(%d) lane %d = 0x%04x", n, j,
                          hdst[j]);
        }
        cpu_v16_store(lanes, cpu_v16_keep_first(cpu_v16_set(-2.0f), n));
        for (int j = 0; j < 16; j++)
            ck_assert_msg(bits_of(lanes[j]) == bits_of(j < n ? -2.0f : 0.0f), "keep_first(%d) lane %d = %g",
                          n, j, lanes[j]);
        float desc[16];
        for (int j = 0; j < 16; j++) desc[j] = j == n - 1 ? 100.0f : (float)-j;
        ck_assert_msg(cpu_v16_hmax(cpu_v16_load(desc)) == 100.0f, "hmax misses lane %d", n - 1);
    }
}
END_TEST

// the helpers built on cpu_v16 (cpu_internal.h) against their plain loops
START_TEST(test_row_helpers) {
    uint32_t state = 4242;
    float row[80], copy[80];
    for (int n = 1; n <= 80; n++)
        for (int nan_at = -1; nan_at<n; nan_at += n> 20 ? 7 : 1) {
            for (int j = 0; j < n; j++)
                row[j] = j == nan_at ? NAN : ((float)next_random(&state) / 16777216.0f - 0.5f) * 30.0f;
            float want = row[0];
            for (int j = 1; j < n; j++) want = row[j] > want ? row[j] : want;
            float got = cpu_max(row, n);
            ck_assert_msg(isnan(want) ? isnan(got) : got == want, "cpu_max n=%d, NaN at %d: %g, not %g", n,
                          nan_at, got, want);
            if (nan_at >= 0) continue;
            // cpu_exp_sum: the exponentials, and their sum in CPU_LANES lanes taken in order
            float acc[CPU_LANES] = {0}, sum = 0.0f, shift = want;
            memcpy(copy, row, (size_t)n * sizeof *row);
            for (int j = 0; j < n; j++) acc[j % CPU_LANES] += cpu_expf(row[j] - shift);
            for (int j = 0; j < CPU_LANES; j++) sum += acc[j];
            float got_sum = cpu_exp_sum(copy, n, shift);
            ck_assert_msg(bits_of(got_sum) == bits_of(sum), "cpu_exp_sum n=%d: %.9g, not %.9g", n, got_sum,
                          sum);
            for (int j = 0; j < n; j++)
                ck_assert_msg(bits_of(copy[j]) == bits_of(cpu_expf(row[j] - shift)),
                              "cpu_exp_sum n=%d element %d", n, j);
            memcpy(copy, row, (size_t)n * sizeof *row);
            cpu_exp_shift(copy, n, 1.5f);
            for (int j = 0; j < n; j++)
                ck_assert_msg(bits_of(copy[j]) == bits_of(cpu_expf(row[j] - 1.5f)),
                              "cpu_exp_shift n=%d element %d", n, j);
        }
}
END_TEST

int main(void) {
#if defined(CPU_SIMD_AVX512)
    const char *form = "AVX-512";
    int runs = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#elif defined(CPU_SIMD_AVX2)
    const char *form = "AVX2";
    int runs = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    const char *form = "plain";
    int runs = 1;
#endif
#ifdef RT_SIMD_EXPECT
    if (strcmp(form, RT_SIMD_EXPECT) != 0) {
        fprintf(stderr, "test_simd: built as the %s form, expected %s\n", form, RT_SIMD_EXPECT);
        return 1;
    }
#endif
    if (!runs) {
        printf("test_simd: this CPU cannot run the %s form; skipped\n", form);
        return SKIP;
    }
    printf("test_simd: the %s form\n", form);
    Suite *s = suite_create("cpu_v16");
    TCase *tc = tcase_create("simd");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_exp);
    tcase_add_test(tc, test_arithmetic);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_partial);
    tcase_add_test(tc, test_row_helpers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
