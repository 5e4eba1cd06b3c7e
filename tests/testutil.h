// Helpers shared by the Check tests.
#ifndef RT_TESTUTIL_H
#define RT_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

// Runs every test of s (CK_NORMAL output); the process exit status: 0 when all passed, 1 otherwise.
int rt_test_run_suite(Suite *s);
// The same without fork(), for the GPU tests: CUDA does not survive fork() once the runtime has started.
int rt_test_run_suite_nofork(Suite *s);

// The GPU tests' first call: 0 when this retort has the CUDA backend and a usable GPU; otherwise it prints
// why and returns 77, the exit status ctest reports as skipped (SKIP_RETURN_CODE in tests/cuda.cmake).
int rt_test_gpu_or_skip(void);

// The thread count of the CPU contexts the GPU twin tests compare with: 2, or RT_TEST_CPU_THREADS (the
// ThreadSanitizer emulation run sets 1: OpenMP's runtime is not instrumented, and its workers would be
// reported).
int rt_test_cpu_threads(void);

// The CPU bf16 tests' first call: 0 when the CPU backend runs bf16 here (oneDNN has bf16 kernels for this
// CPU); otherwise it prints why and returns 77 (skipped).
int rt_test_cpu_bf16_or_skip(void);

// The backend the twin tests (cuda_twin.h, model_twin.h) check against the CPU's fp32 reference: the GPU, or,
// where the test is built with RT_TWIN_CPU (tests/cpu_bf16.cmake), the CPU backend itself, whose bf16 ops
// and model are then held to the GPU's bf16 tolerances against its own fp32 ones. RT_TEST_TWIN_SKIP(): the
// GPU tests' skip check, or the CPU's bf16 one.
#ifdef RT_TWIN_CPU
#define RT_TEST_TWIN_BACKEND (&rt_backend_cpu)
#define RT_TEST_TWIN_SKIP()  rt_test_cpu_bf16_or_skip()
#else
#define RT_TEST_TWIN_BACKEND rt_backend_cuda()
#define RT_TEST_TWIN_SKIP()  rt_test_gpu_or_skip()
#endif

// Environment set by ctest (tests/CMakeLists.txt); abort the test with a message when missing.
const char *rt_test_env(const char *name);

// A fresh empty directory under the build tree for this test ("<build>/tests/tmp/<tag>-<pid>").
// Returns a static buffer.
const char *rt_test_tmpdir(const char *tag);

// Run a shell command; returns its exit status (or -1 when it could not run / was signalled).
int rt_test_system(const char *fmt, ...);

// Read a whole float dataset from an HDF5 file as fp32 (any float/int type converts). Returns a malloc'd
// array and its element count; fails the current Check test when absent.
float *rt_test_h5_read_f32(const char *file, const char *dset, size_t *n);
int32_t *rt_test_h5_read_i32(const char *file, const char *dset, size_t *n);
// Read an integer attribute of the root group (fails the test when absent).
int64_t rt_test_h5_attr_i64(const char *file, const char *attr);

// Fill with uniform values in [lo, hi).
void rt_test_fill_uniform(rt_rng *r, float *x, size_t n, float lo, float hi);

// Check |got - ref| <= atol + rtol*|ref| element-wise; NaN never passes. On failure the Check test fails
// with the first offending index, both values and the worst error.
void rt_test_assert_close(const char *what, const float *got, const float *ref, size_t n, float atol,
                          float rtol);

#endif
