// MFU's spec peaks: device names as the CUDA driver reports them (cudaDeviceProp.name) map to the dense
// figures of NVIDIA's data sheets (bf16 tensor cores with fp32 accumulation, sparse figures halved; fp32 on
// the CUDA cores); names that only contain a known name as part of a word do not match it. The measured
// GEMM on the CPU backend is checked for a plausible, positive rate; on a GPU, the CUDA backend's device
// name and the peak it leads to.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "train/peak.h"

static void expect_spec(const char *name, rt_dtype t, double tflops, const char *label) {
    double flops = 0;
    const char *got = NULL;
    ck_assert_msg(rt_peak_spec(name, t, &flops, &got) == 1, "%s (%s): not in the table", name,
                  rt_dtype_name(t));
    ck_assert_msg(fabs(flops - tflops * 1e12) < 1e9, "%s (%s): %g TFLOP/s, the data sheet says %g", name,
                  rt_dtype_name(t), flops / 1e12, tflops);
    ck_assert_str_eq(got, label);
}

static void expect_unknown(const char *name, rt_dtype t) {
    double flops = -1;
    const char *got = NULL;
    ck_assert_msg(rt_peak_spec(name, t, &flops, &got) == 0, "%s matched %s", name, got ? got : "?");
}

START_TEST(test_spec_names) {
    // data sheets: H100 SXM 1,979 bf16 TFLOPS with sparsity, 67 fp32; H100 PCIe 1,513 / 51
    expect_spec("NVIDIA H100 80GB HBM3", RT_BF16, 989.0, "H100 SXM");
    expect_spec("NVIDIA H100 80GB HBM3", RT_F32, 67.0, "H100 SXM");
    expect_spec("NVIDIA H100 PCIe", RT_BF16, 756.0, "H100 PCIe");
    expect_spec("NVIDIA H200", RT_BF16, 989.0, "H200");
    expect_spec("NVIDIA GH200 480GB", RT_BF16, 989.0, "GH200");
    // A100: 312 bf16 dense, 19.5 fp32, both form factors
    expect_spec("NVIDIA A100-SXM4-80GB", RT_BF16, 312.0, "A100");
    expect_spec("NVIDIA A100 80GB PCIe", RT_F32, 19.5, "A100");
    expect_spec("NVIDIA A10", RT_BF16, 125.0, "A10");
    expect_spec("NVIDIA L40S", RT_BF16, 362.0, "L40S");
    expect_spec("NVIDIA L4", RT_BF16, 121.0, "L4");
    expect_spec("NVIDIA GeForce RTX 4090", RT_BF16, 165.2, "RTX 4090");
    // a longer name that contains a known one is not that device
    expect_unknown("NVIDIA A10G", RT_BF16);
    expect_unknown("NVIDIA A100X", RT_BF16);
    expect_unknown("NVIDIA L40G", RT_BF16);
    expect_unknown("Tesla V100-SXM2-16GB", RT_BF16);
    expect_unknown("", RT_BF16);
    expect_unknown(NULL, RT_BF16);
    expect_unknown("NVIDIA B200", RT_F32); // no fp32 figure on the sheet: measured instead
}
END_TEST

START_TEST(test_resolve_cpu) {
    rt_ctx ctx;
    rt_error err;
    ck_assert_msg(rt_backend_cpu.ctx_init(&ctx, RT_F32, 1, &err) == 0, "%s", err.msg);
    ck_assert_ptr_null(rt_backend_cpu.device_name); // the CPU's peak is measured, never a spec
    rt_peak p;
    rt_peak_resolve(&ctx, 0.0, &p);
    // one thread of any CPU that runs the tests: between 0.1 and 1000 GFLOP/s
    ck_assert_msg(p.gemm > 1e8 && p.gemm < 1e12, "measured %g FLOP/s", p.gemm);
    ck_assert_str_eq(p.source, "measured");
    ck_assert(p.flops == p.gemm);
    rt_peak_resolve(&ctx, 12.5, &p);
    ck_assert_str_eq(p.source, "config");
    ck_assert(p.flops == 12.5e12);
    ck_assert(p.gemm > 1e8); // still measured, to print beside MFU
    rt_backend_cpu.ctx_free(&ctx);
}
END_TEST

// On a GPU (the test_peak_gpu run, skipped without one): the CUDA context names its device, and the peak is
// that device's spec when the table knows it, otherwise the measured GEMM; the GEMM is measured either way.
START_TEST(test_resolve_gpu) {
    rt_error err;
    const rt_backend *be = rt_backend_cuda();
    ck_assert_ptr_nonnull(be);
    rt_ctx ctx;
    ck_assert_msg(be->ctx_init(&ctx, RT_BF16, 0, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(be->device_name);
    const char *name = be->device_name(&ctx);
    ck_assert_msg(name && name[0], "the CUDA backend gives no device name");
    double spec;
    const char *label;
    int known = rt_peak_spec(name, RT_BF16, &spec, &label);
    rt_peak p;
    rt_peak_resolve(&ctx, 0.0, &p);
    ck_assert_msg(p.gemm > 1e12, "%s: measured bf16 GEMM %g FLOP/s", name, p.gemm);
    if (known) {
        char want[64];
        snprintf(want, sizeof want, "spec %s", label);
        ck_assert_str_eq(p.source, want);
        ck_assert(p.flops == spec);
        // a GEMM can approach the data sheet's dense peak, never pass it by much
        ck_assert_msg(p.gemm < 1.1 * spec, "%s: measured %g > spec %g FLOP/s", name, p.gemm, spec);
    } else {
        ck_assert_str_eq(p.source, "measured");
    }
    printf("test_resolve_gpu: %s: %s, peak %.4g TFLOP/s, measured bf16 GEMM %.4g TFLOP/s\n", name, p.source,
           p.flops / 1e12, p.gemm / 1e12);
    be->ctx_free(&ctx);
}
END_TEST

// "test_peak" runs the CPU cases; "test_peak gpu" the GPU case alone (exit 77, skipped, without a GPU).
int main(int argc, char **argv) {
    Suite *s = suite_create("peak");
    TCase *tc = tcase_create("peak");
    if (argc > 1 && strcmp(argv[1], "gpu") == 0) {
        int skip = rt_test_gpu_or_skip();
        if (skip) return skip;
        tcase_add_test(tc, test_resolve_gpu);
        suite_add_tcase(s, tc);
        return rt_test_run_suite_nofork(s);
    }
    tcase_add_test(tc, test_spec_names);
    tcase_add_test(tc, test_resolve_cpu);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
