// bf16 matrix multiply through oneDNN's matmul primitive: bf16 operands, fp32 accumulation, one rounding to
// bf16 on store; alpha is the primitive's output scale and beta = 1 a sum post-op (old value + product,
// added in fp32 before the rounding). oneDNN runs it natively on AVX512-BF16 and AMX and emulates it on
// plain AVX-512; below AVX-512 it has no bf16 kernels and the CPU context refuses bf16 (cpu_backend.c).
// Creating a primitive costs far more than a small GEMM, so each context keeps the ones it made, keyed by
// everything that shapes them; the memory objects are created with the primitive and only their data
// pointers change per call.
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// A model uses a few distinct GEMM shapes per layer type (the same for every layer): 64 is plenty, and a
// full cache replaces its oldest entry.
#define MM_CACHE 64

typedef struct mm_entry {
    int M, N, K, trans_a, trans_b;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} mm_entry;

struct cpu_bf16_mm {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    mm_entry entry[MM_CACHE];
    int n, next; // entries in use; the one a full cache replaces next
};

const char *cpu_bf16_unsupported(void) {
    static char why[160];
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core) return NULL;
    snprintf(why, sizeof why,
             "oneDNN has no bf16 kernels for this CPU (%s): bf16 needs AVX-512, natively AVX512-BF16 or AMX",
             rt_cpu_gemm_library());
    return why;
}

const char *rt_cpu_bf16_kernels(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) return "native (AMX)";
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) return "native (AVX512-BF16)";
    if ((isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core)
        return "emulated on AVX-512 (this CPU has no AVX512-BF16: expect no speed-up over fp32)";
    return "unavailable (needs AVX-512)";
}

int cpu_bf16_matmul_init(rt_ctx *ctx, rt_error *err) {
    cpu_state *st = cpu_of(ctx);
    struct cpu_bf16_mm *mm = calloc(1, sizeof *mm);
    if (!mm) return rt_fail(err, "out of memory creating the CPU bf16 GEMM cache");
    if (dnnl_engine_create(&mm->engine, dnnl_cpu, 0) != dnnl_success) {
        free(mm);
        return rt_fail(err, "oneDNN: cannot create a CPU engine for bf16 GEMMs");
    }
    if (dnnl_stream_create(&mm->stream, mm->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(mm->engine);
        free(mm);
        return rt_fail(err, "oneDNN: cannot create a CPU stream for bf16 GEMMs");
    }
    st->mm = mm;
    return 0;
}

static void entry_free(mm_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->a) dnnl_memory_destroy(e->a);
    if (e->b) dnnl_memory_destroy(e->b);
    if (e->c) dnnl_memory_destroy(e->c);
    memset(e, 0, sizeof *e);
}

void cpu_bf16_matmul_free(rt_ctx *ctx) {
    struct cpu_bf16_mm *mm = cpu_of(ctx)->mm;
    if (!mm) return;
    for (int i = 0; i < mm->n; i++) entry_free(&mm->entry[i]);
    dnnl_stream_destroy(mm->stream);
    dnnl_engine_destroy(mm->engine);
    free(mm);
    cpu_of(ctx)->mm = NULL;
}

// The primitive for out[M,N] = alpha op(a)[M,K] op(b)[K,N] + beta out, all bf16 row-major; a transposed
// operand is the same matrix described with swapped strides. Fills e or returns a oneDNN status.
static dnnl_status_t entry_create(struct cpu_bf16_mm *mm, mm_entry *e) {
    dnnl_dims_t a_dims = {e->M, e->K}, b_dims = {e->K, e->N}, c_dims = {e->M, e->N};
    dnnl_dims_t a_strides = {e->trans_a ? 1 : e->K, e->trans_a ? e->M : 1};
    dnnl_dims_t b_strides = {e->trans_b ? 1 : e->N, e->trans_b ? e->K : 1};
    dnnl_dims_t c_strides = {e->N, 1};
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, dnnl_bf16, a_strides)) ||
        (s = dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, dnnl_bf16, b_strides)) ||
        (s = dnnl_memory_desc_init_by_strides(&c_md, 2, c_dims, dnnl_bf16, c_strides)) ||
        (s = dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md)) ||
        (s = dnnl_primitive_attr_create(&attr)))
        goto done;
    if (e->alpha != 1.0f && (s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha))) goto done;
    if (e->beta != 0.0f) {
        if ((s = dnnl_post_ops_create(&ops)) || (s = dnnl_post_ops_append_sum(ops, e->beta)) ||
            (s = dnnl_primitive_attr_set_post_ops(attr, ops)))
            goto done;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &desc, attr, mm->engine, NULL)) ||
        (s = dnnl_primitive_create(&e->prim, pd)) ||
        (s = dnnl_memory_create(&e->a, &a_md, mm->engine, DNNL_MEMORY_NONE)) ||
        (s = dnnl_memory_create(&e->b, &b_md, mm->engine, DNNL_MEMORY_NONE)) ||
        (s = dnnl_memory_create(&e->c, &c_md, mm->engine, DNNL_MEMORY_NONE)))
        goto done;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) entry_free(e);
    return s;
}

static mm_entry *entry_get(struct cpu_bf16_mm *mm, int M, int N, int K, int trans_a, int trans_b, float alpha,
                           float beta, dnnl_status_t *status) {
    for (int i = 0; i < mm->n; i++) {
        mm_entry *e = &mm->entry[i];
        if (e->M == M && e->N == N && e->K == K && e->trans_a == trans_a && e->trans_b == trans_b &&
            e->alpha == alpha && e->beta == beta)
            return e;
    }
    mm_entry *e;
    if (mm->n < MM_CACHE)
        e = &mm->entry[mm->n++];
    else {
        e = &mm->entry[mm->next];
        mm->next = (mm->next + 1) % MM_CACHE;
        entry_free(e);
    }
    *e = (mm_entry){M, N, K, trans_a, trans_b, alpha, beta, NULL, NULL, NULL, NULL};
    *status = entry_create(mm, e);
    if (*status != dnnl_success) {
        // leave the slot empty but keyed by nothing a call can match
        e->M = -1;
        return NULL;
    }
    return e;
}

// out[M,N] = alpha * op(a) @ op(b) + beta * out (bf16 act buffers, fp32 accumulation)
void cpu_bf16_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                     int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f) memset(out, 0, (size_t)M * N * sizeof(uint16_t));
        return;
    }
    struct cpu_bf16_mm *mm = cpu_of(ctx)->mm;
    dnnl_status_t s = dnnl_success;
    mm_entry *e = entry_get(mm, M, N, K, trans_a, trans_b, alpha, beta, &s);
    if (e) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
        if (!(s = dnnl_memory_set_data_handle(e->a, (void *)a)) &&
            !(s = dnnl_memory_set_data_handle(e->b, (void *)b)) &&
            !(s = dnnl_memory_set_data_handle(e->c, out)) &&
            !(s = dnnl_primitive_execute(e->prim, mm->stream, 3, args)))
            s = dnnl_stream_wait(mm->stream);
    }
    if (s != dnnl_success) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "oneDNN bf16 matmul failed (status %d%s) on [%d x %d] = op(A) [%d x %d] op(B) [%d x %d]",
                 (int)s, s == dnnl_out_of_memory ? ", out of memory" : "", M, N, M, K, K, N);
        cpu_gemm_record_failure(msg);
    }
}
