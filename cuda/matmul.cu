// Matrix multiply through cuBLASLt: bf16 (or fp32) inputs and outputs, fp32 accumulation and scaling.
//
// retort's matrices are row-major; cuBLASLt's are column-major. A row-major [r, c] matrix is the same memory
// as a column-major [c, r] one, so out[M,N] = op(a) op(b) is computed as the column-major product
// out^T[N,M] = op(b)^T op(a)^T, with b as cuBLASLt's first operand. The descriptors and the algorithm the
// heuristic picks are cached per shape (a model uses a handful), so a step makes no heuristic queries after
// the first.
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

// Largest power of two (at most 256) that divides every address: cuBLASLt picks kernels by alignment.
static int common_alignment(const void *a, const void *b, const void *c) {
    uintptr_t bits = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c;
    int align = 256;
    while (align > 1 && (bits & (uintptr_t)(align - 1))) align >>= 1;
    return align;
}

static void destroy_plan(cuda_matmul_plan *p) {
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    memset(p, 0, sizeof *p);
}

void cuda_matmul_free_plans(rt_ctx *ctx) {
    cuda_state *st = cuda_of(ctx);
    for (int i = 0; i < st->n_plans; i++) destroy_plan(&st->plans[i]);
    st->n_plans = 0;
}

// Builds (or finds) the plan for one shape. `first`/`second` are cuBLASLt's A and B: our b and a.
static cuda_matmul_plan *get_plan(rt_ctx *ctx, int M, int N, int K, int trans_a, int trans_b, int align) {
    cuda_state *st = cuda_of(ctx);
    for (int i = 0; i < st->n_plans; i++) {
        cuda_matmul_plan *p = &st->plans[i];
        if (p->M == M && p->N == N && p->K == K && p->trans_a == trans_a && p->trans_b == trans_b &&
            p->align == align)
            return p;
    }
    if (st->n_plans == CUDA_MATMUL_PLANS) { // more shapes than a model has: start the cache over
        cuda_matmul_free_plans(ctx);
    }
    cuda_matmul_plan *p = &st->plans[st->n_plans];
    memset(p, 0, sizeof *p);
    cudaDataType_t dt = ctx->act == RT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                           sizeof op_second);
    // first operand (our b) as stored: column-major [N, K] or, transposed, [K, N]
    uint64_t b_rows = trans_b ? (uint64_t)K : (uint64_t)N, b_cols = trans_b ? (uint64_t)N : (uint64_t)K;
    // second operand (our a): column-major [K, M] or, transposed, [M, K]
    uint64_t a_rows = trans_a ? (uint64_t)M : (uint64_t)K, a_cols = trans_a ? (uint64_t)K : (uint64_t)M;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->a, dt, b_rows, b_cols, (int64_t)b_rows);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->b, dt, a_rows, a_cols, (int64_t)a_rows);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&p->c, dt, (uint64_t)N, (uint64_t)M, N);
    cublasLtMatmulPreference_t pref = NULL;
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulPreferenceCreate(&pref);
    uint64_t ws = st->lt_workspace_bytes;
    uint32_t al = (uint32_t)align;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                 sizeof ws);
    const cublasLtMatmulPreferenceAttributes_t aligns[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = cublasLtMatmulPreferenceSetAttribute(pref, aligns[i], &al, sizeof al);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(st->lt, p->desc, p->a, p->b, p->c, p->c, pref, 1, &result, &found);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
        cuda_record_failure(ctx, "matmul",
                            "cuBLASLt has no algorithm for [%d x %d] = op[%d x %d] op[%d x %d] (%s, "
                            "status %d)",
                            M, N, M, K, K, N, rt_dtype_name(ctx->act), (int)s);
        destroy_plan(p);
        return NULL;
    }
    p->M = M;
    p->N = N;
    p->K = K;
    p->trans_a = trans_a;
    p->trans_b = trans_b;
    p->algo = result.algo;
    p->align = align;
    st->n_plans++;
    return p;
}

// out[M,N] = alpha * op(a) @ op(b) + beta * out (backend.h)
void cuda_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                 int trans_b, float alpha, float beta) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f) {
            cudaError_t e = cudaMemsetAsync(out, 0, (size_t)M * N * rt_dtype_size(ctx->act), st->stream);
            if (e != cudaSuccess) cuda_record_failure(ctx, "matmul", "%s", cudaGetErrorString(e));
        }
        return;
    }
    cuda_matmul_plan *p = get_plan(ctx, M, N, K, trans_a, trans_b, common_alignment(out, a, b));
    if (!p) return;
    cublasStatus_t s = cublasLtMatmul(st->lt, p->desc, &alpha, b, p->a, a, p->b, &beta, out, p->c, out, p->c,
                                      &p->algo, st->lt_workspace, st->lt_workspace_bytes, st->stream);
    if (s != CUBLAS_STATUS_SUCCESS)
        cuda_record_failure(ctx, "matmul", "cublasLtMatmul failed with status %d for [%d x %d x %d]", (int)s,
                            M, N, K);
}
