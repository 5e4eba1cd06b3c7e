// Matrix multiply through oneDNN's sgemm (docs/cpu_performance.md says why oneDNN). oneDNN picks its
// kernels by the instruction sets the CPU reports (AVX2, AVX-512, AVX512-BF16, AMX), never by a table of
// CPU models, so a CPU newer than the library still gets its widest kernels. Debian builds it for OpenMP:
// called inside one of our parallel regions it runs on the calling thread, so ops that call it per (batch,
// head) task do not oversubscribe the cores; called outside, it uses the OpenMP thread count the context set.
#include <oneapi/dnnl/dnnl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// The first failed GEMM of the process (oneDNN out of memory for its packing buffers; a bad argument
// would be our bug): ops cannot return a status, so it is kept here and reported by the next check.
static atomic_int gemm_failed;
static char gemm_failure[256];

void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc) {
    dnnl_status_t st =
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
    if (st != dnnl_success && atomic_exchange(&gemm_failed, 1) == 0)
        snprintf(gemm_failure, sizeof gemm_failure,
                 "oneDNN sgemm failed (status %d%s) on [%d x %d] = op(A) [%d x %d] op(B) [%d x %d]", (int)st,
                 st == dnnl_out_of_memory ? ", out of memory" : "", M, N, M, K, K, N);
}

void cpu_gemm_record_failure(const char *msg) {
    if (atomic_exchange(&gemm_failed, 1) == 0) snprintf(gemm_failure, sizeof gemm_failure, "%s", msg);
}

int cpu_gemm_check(rt_error *err) {
    if (!atomic_load(&gemm_failed)) return 0;
    return rt_fail(err, "%s", gemm_failure);
}

// out[M,N] = alpha * op(a) @ op(b) + beta * out; op(a) [M,K] (stored [K,M] when trans_a), op(b) [K,N]
// (stored [N,K] when trans_b).
void cpu_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                int trans_b, float alpha, float beta) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_matmul(ctx, out, a, b, M, N, K, trans_a, trans_b, alpha, beta);
        return;
    }
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { // empty product: the leading dimensions below would be 0
        if (beta == 0.0f) memset(out, 0, (size_t)M * N * sizeof(float));
        return;
    }
    cpu_gemm(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, beta, out, N);
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41:
        return "SSE4.1";
    case dnnl_cpu_isa_avx:
        return "AVX";
    case dnnl_cpu_isa_avx2:
        return "AVX2";
    case dnnl_cpu_isa_avx2_vnni:
        return "AVX2-VNNI";
    case dnnl_cpu_isa_avx512_core:
        return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "AVX-512 VNNI";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "AVX-512 BF16";
    case dnnl_cpu_isa_avx512_core_amx:
        return "AVX-512 AMX";
    default:
        return NULL;
    }
}

const char *rt_cpu_gemm_library(void) {
    static char desc[96];
    if (!desc[0]) {
        const dnnl_version_t *v = dnnl_version();
        dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        const char *name = isa_name(isa);
        char isa_buf[24];
        if (!name) {
            snprintf(isa_buf, sizeof isa_buf, "isa 0x%x", (unsigned)isa);
            name = isa_buf;
        }
        snprintf(desc, sizeof desc, "oneDNN %d.%d.%d, %s kernels", v->major, v->minor, v->patch, name);
    }
    return desc;
}
