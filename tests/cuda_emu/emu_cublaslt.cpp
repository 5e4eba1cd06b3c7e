// cuBLASLt on the host for the emulation build (include/cublasLt.h says what is covered). Matrices are
// column-major as the layouts describe them: element (r, c) of a layout with leading dimension ld is at
// r + c * ld. op(A) is m x k, op(B) is k x n, C and D are m x n; anything else is refused. An operand that
// reaches past its allocation is what a GPU reports as an illegal address at the next synchronisation: here
// the same sticky error, with a line on stderr naming the operand.
#include <stdio.h>
#include <stdlib.h>

#include "cublasLt.h"
#include "cuda_bf16.h"
#include "emu_internal.h"

struct rt_emu_lt_handle {
    int live;
};
struct rt_emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t trans_a, trans_b;
};
struct rt_emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct rt_emu_lt_pref {
    uint64_t max_workspace;
    uint32_t align[4]; // A, B, C, D
};

namespace {

const uint64_t ALGO_TAG = 0x72746c74656d75ull; // marks an algo this emulation made

size_t type_size(cudaDataType_t t) {
    return t == CUDA_R_32F ? 4 : t == CUDA_R_16BF ? 2 : 0;
}

float load(const void *base, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)base)[i];
    return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
}

void store(void *base, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_32F)
        ((float *)base)[i] = v;
    else
        ((__nv_bfloat16 *)base)[i] = __float2bfloat16_rn(v);
}

// Bytes a column-major layout spans from its first element.
size_t span(const rt_emu_lt_layout *l) {
    return ((size_t)(l->cols - 1) * (size_t)l->ld + (size_t)l->rows) * type_size(l->type);
}

// m, n, k of D = op(A) op(B) (+ C); CUBLAS_STATUS_SUCCESS when the layouts agree.
cublasStatus_t shape(const rt_emu_lt_desc *desc, const rt_emu_lt_layout *a, const rt_emu_lt_layout *b,
                     const rt_emu_lt_layout *c, const rt_emu_lt_layout *d, uint64_t *m, uint64_t *n,
                     uint64_t *k) {
    if (!desc || !a || !b || !c || !d) return CUBLAS_STATUS_INVALID_VALUE;
    if (desc->compute != CUBLAS_COMPUTE_32F || desc->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (a->type != b->type || c->type != d->type || a->type != c->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    *m = desc->trans_a ? a->cols : a->rows;
    *k = desc->trans_a ? a->rows : a->cols;
    uint64_t kb = desc->trans_b ? b->cols : b->rows;
    *n = desc->trans_b ? b->rows : b->cols;
    if (kb != *k || c->rows != *m || c->cols != *n || d->rows != *m || d->cols != *n)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (c->ld != d->ld) return CUBLAS_STATUS_INVALID_VALUE; // in place (C == D) needs one layout
    return CUBLAS_STATUS_SUCCESS;
}

bool operand_ok(const char *name, const void *p, const rt_emu_lt_layout *l) {
    if (rt_emu::in_device_memory(p, span(l))) return true;
    fprintf(
        stderr,
        "cuda emulator: cublasLtMatmul operand %s (%p, %llu x %llu, ld %lld, column-major) is not inside one "
        "device allocation: an illegal address on a GPU\n",
        name, p, (unsigned long long)l->rows, (unsigned long long)l->cols, (long long)l->ld);
    rt_emu::set_error(cudaErrorIllegalAddress);
    return false;
}

} // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new rt_emu_lt_handle{1};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    *desc = new rt_emu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t bytes) {
    if (!desc || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) {
        int32_t op;
        if (bytes != sizeof op) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&op, buf, sizeof op);
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED; // real types: C is T
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? desc->trans_a : desc->trans_b) = op;
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED; // an attribute retort does not set: this emulation has no meaning for
                                        // it
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    if (!type_size(type)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (rows == 0 || cols == 0 || ld < (int64_t)rows) return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new rt_emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new rt_emu_lt_pref{0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t bytes) {
    if (!pref || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (bytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&pref->max_workspace, buf, sizeof(uint64_t));
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES &&
        attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        if (bytes != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&pref->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, sizeof(uint32_t));
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *found) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!pref || requested < 1 || !results || !found) return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m, n, k;
    cublasStatus_t s = shape(desc, a, b, c, d, &m, &n, &k);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = ALGO_TAG;
    for (int i = 0; i < 4; i++) results[0].algo.data[1 + i] = pref->align[i]; // the alignment it relies on
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t a_layout, const void *B,
                              cublasLtMatrixLayout_t b_layout, const void *beta, const void *C,
                              cublasLtMatrixLayout_t c_layout, void *D, cublasLtMatrixLayout_t d_layout,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!alpha || !beta || !A || !B || !C || !D) return CUBLAS_STATUS_INVALID_VALUE;
    if (!rt_emu::stream_ok(stream)) return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m, n, k;
    cublasStatus_t s = shape(desc, a_layout, b_layout, c_layout, d_layout, &m, &n, &k);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (algo) {
        if (algo->data[0] != ALGO_TAG) return CUBLAS_STATUS_INVALID_VALUE;
        const void *ptrs[4] = {A, B, C, D};
        for (int i = 0; i < 4; i++) // an algorithm chosen for an alignment the operands do not have
            if ((uintptr_t)ptrs[i] % (algo->data[1 + i] ? algo->data[1 + i] : 1))
                return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (rt_emu::sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    float al, be;
    memcpy(&al, alpha, sizeof al);
    memcpy(&be, beta, sizeof be);
    if (!operand_ok("A", A, a_layout) || !operand_ok("B", B, b_layout) ||
        (be != 0.0f && !operand_ok("C", C, c_layout)) || !operand_ok("D", D, d_layout))
        return CUBLAS_STATUS_SUCCESS; // the fault shows at the next synchronisation, as on a GPU
    cudaDataType_t t = a_layout->type;
    size_t lda = (size_t)a_layout->ld, ldb = (size_t)b_layout->ld, ldc = (size_t)c_layout->ld,
           ldd = (size_t)d_layout->ld;
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            float acc = 0.0f;
            for (uint64_t p = 0; p < k; p++) {
                size_t ia = desc->trans_a ? p + i * lda : i + p * lda; // op(A)(i, p)
                size_t ib = desc->trans_b ? j + p * ldb : p + j * ldb; // op(B)(p, j)
                acc += load(A, t, ia) * load(B, t, ib);
            }
            float out = al * acc;
            if (be != 0.0f) out += be * load(C, t, i + j * ldc); // beta == 0: C is not read (it may be NaN)
            store(D, t, i + j * ldd, out);
        }
    return CUBLAS_STATUS_SUCCESS;
}
