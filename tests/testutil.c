#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/common.h"
#include "base/files.h"

static int run_suite(Suite *s, int fork) {
    SRunner *sr = srunner_create(s);
    if (!fork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

int rt_test_run_suite(Suite *s) {
    return run_suite(s, 1);
}

int rt_test_run_suite_nofork(Suite *s) {
    return run_suite(s, 0);
}

int rt_test_cpu_bf16_or_skip(void) {
    rt_ctx ctx;
    rt_error why;
    if (rt_backend_cpu.ctx_init(&ctx, RT_BF16, 1, &why)) {
        printf("skipped: %s\n", why.msg);
        return 77;
    }
    rt_backend_cpu.ctx_free(&ctx);
    return 0;
}

int rt_test_gpu_or_skip(void) {
    rt_error why;
    if (!rt_backend_cuda()) {
        printf("skipped: this retort was built without CUDA\n");
        return 77;
    }
    if (!rt_cuda_available(&why)) {
        printf("skipped: no usable GPU: %s\n", why.msg);
        return 77;
    }
    return 0;
}

int rt_test_cpu_threads(void) {
    const char *v = getenv("RT_TEST_CPU_THREADS");
    int n = v ? atoi(v) : 2;
    return n > 0 ? n : 2;
}

const char *rt_test_env(const char *name) {
    const char *v = getenv(name);
    ck_assert_msg(v && *v, "environment variable %s is not set: run the tests through ctest", name);
    return v;
}

const char *rt_test_tmpdir(const char *tag) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/tests/tmp/%s-%ld", rt_test_env("RT_BUILD_DIR"), tag, (long)getpid());
    rt_test_system("rm -rf '%s'", buf);
    rt_error err;
    ck_assert_msg(rt_mkdir_p(buf, &err) == 0, "%s", err.msg);
    return buf;
}

int rt_test_system(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static void *h5_read(const char *file, const char *dset, hid_t memtype, size_t elem, size_t *n) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", file);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no dataset %s", file, dset);
    hid_t s = H5Dget_space(d);
    hssize_t count = H5Sget_simple_extent_npoints(s);
    ck_assert_msg(count >= 0, "%s: bad dataspace for %s", file, dset);
    void *buf = malloc((size_t)count * elem + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_msg(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "%s: cannot read %s", file,
                  dset);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    *n = (size_t)count;
    return buf;
}

float *rt_test_h5_read_f32(const char *file, const char *dset, size_t *n) {
    return h5_read(file, dset, H5T_NATIVE_FLOAT, sizeof(float), n);
}

int32_t *rt_test_h5_read_i32(const char *file, const char *dset, size_t *n) {
    return h5_read(file, dset, H5T_NATIVE_INT32, sizeof(int32_t), n);
}

int64_t rt_test_h5_attr_i64(const char *file, const char *attr) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", file);
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "%s: no root attribute %s", file, attr);
    int64_t v = 0;
    ck_assert_msg(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0, "%s: cannot read attribute %s", file, attr);
    H5Aclose(a);
    H5Fclose(f);
    return v;
}

void rt_test_fill_uniform(rt_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rt_rng_uniform(r);
}

void rt_test_assert_close(const char *what, const float *got, const float *ref, size_t n, float atol,
                          float rtol) {
    size_t first_bad = n, worst_i = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        int bad = !(diff <= tol); // NaN in either side compares false, so it fails
        if (bad && first_bad == n) first_bad = i;
        if (!(diff <= worst)) {
            worst = diff;
            worst_i = i;
        }
    }
    ck_assert_msg(first_bad == n,
                  "%s: element %zu of %zu: got %.9g, reference %.9g (atol %g, rtol %g); worst |diff| %.3g at "
                  "%zu",
                  what, first_bad, n, first_bad < n ? got[first_bad] : 0.0,
                  first_bad < n ? ref[first_bad] : 0.0, atol, rtol, worst, worst_i);
}
