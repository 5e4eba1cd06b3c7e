// Matrix multiply through OpenBLAS sgemm. Inside our own OpenMP regions the OpenMP build of OpenBLAS runs
// single-threaded, so ops that call it per (batch, head) task do not oversubscribe the cores. (The binary
// must load the OpenMP build: Debian's libopenblas.so.0 alternative defaults to the pthread build, which
// starts its own threads; the build links with a runpath to openblas-openmp.)
#include <cblas.h>
#include <string.h>

#include "cpu_internal.h"

// out[M,N] = alpha * op(a) @ op(b) + beta * out; op(a) [M,K] (stored [K,M] when trans_a), op(b) [K,N]
// (stored [N,K] when trans_b).
void cpu_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { // empty product: sgemm rejects a leading dimension of 0
        if (beta == 0.0f) memset(out, 0, (size_t)M * N * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, beta, out, N);
}
