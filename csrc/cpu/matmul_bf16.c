// bf16 matrix multiply through oneDNN's matmul primitive: bf16 operands, fp32 accumulation, one rounding to
// bf16 on store (or an fp32 result); alpha is the primitive's output scale and beta = 1 a sum post-op (old
// value + product, added in fp32 before the rounding). oneDNN runs it natively on AVX512-BF16 and AMX and
// emulates it on plain AVX-512; below AVX-512 it has no bf16 kernels and the CPU context refuses bf16
// (cpu_backend.c). Creating a primitive costs far more than a small GEMM, so each context keeps the ones it
// made, keyed by their whole descriptor; each primitive has memory objects for every thread of the context,
// whose data pointers change per call, and each thread its own stream and scratchpad (the primitives' own,
// library-managed scratchpad is shared by concurrent runs of one primitive), so the threads of one of our
// parallel regions can run primitives at once; oneDNN then runs each on its calling thread.
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// A model uses a few distinct GEMM shapes per layer type (the same for every layer), and bf16 attention five
// per block of query rows: 128 is plenty, and a full cache replaces its least recently prepared entry.
#define MM_CACHE 128

// The arguments of one execution: src, weights, dst and the scratchpad.
#define MM_ARGS 4

typedef struct mm_entry {
    cpu_bmm key;
    dnnl_primitive_t prim;
    dnnl_memory_t *mem;   // [n_threads][MM_ARGS]: src, weights, dst, scratchpad
    size_t scratch_bytes; // the scratchpad the primitive needs
    uint64_t used;        // the cache's clock when last prepared
} mm_entry;

struct cpu_bf16_mm {
    dnnl_engine_t engine;
    int n_threads;
    dnnl_stream_t *stream; // [n_threads]
    void **scratch;        // [n_threads]: each thread's scratchpad, grown to what its primitives need
    size_t *scratch_bytes; // [n_threads]
    mm_entry entry[MM_CACHE];
    int n;          // entries in use
    uint64_t clock; // counts preparations
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
    st->mm = mm;
    mm->n_threads = st->n_threads;
    mm->stream = calloc((size_t)mm->n_threads, sizeof *mm->stream);
    mm->scratch = calloc((size_t)mm->n_threads, sizeof *mm->scratch);
    mm->scratch_bytes = calloc((size_t)mm->n_threads, sizeof *mm->scratch_bytes);
    if (!mm->stream || !mm->scratch || !mm->scratch_bytes) {
        cpu_bf16_matmul_free(ctx);
        return rt_fail(err, "out of memory creating the CPU bf16 GEMM cache");
    }
    if (dnnl_engine_create(&mm->engine, dnnl_cpu, 0) != dnnl_success) {
        mm->engine = NULL;
        cpu_bf16_matmul_free(ctx);
        return rt_fail(err, "oneDNN: cannot create a CPU engine for bf16 GEMMs");
    }
    for (int t = 0; t < mm->n_threads; t++)
        if (dnnl_stream_create(&mm->stream[t], mm->engine, dnnl_stream_default_flags) != dnnl_success) {
            mm->stream[t] = NULL;
            cpu_bf16_matmul_free(ctx);
            return rt_fail(err, "oneDNN: cannot create a CPU stream for bf16 GEMMs");
        }
    return 0;
}

static void entry_free(struct cpu_bf16_mm *mm, mm_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->mem)
        for (int i = 0; i < MM_ARGS * mm->n_threads; i++)
            if (e->mem[i]) dnnl_memory_destroy(e->mem[i]);
    free(e->mem);
    memset(e, 0, sizeof *e);
}

void cpu_bf16_matmul_free(rt_ctx *ctx) {
    struct cpu_bf16_mm *mm = cpu_of(ctx)->mm;
    if (!mm) return;
    for (int i = 0; i < mm->n; i++) entry_free(mm, &mm->entry[i]);
    if (mm->stream)
        for (int t = 0; t < mm->n_threads; t++)
            if (mm->stream[t]) dnnl_stream_destroy(mm->stream[t]);
    free(mm->stream);
    if (mm->scratch)
        for (int t = 0; t < mm->n_threads; t++) free(mm->scratch[t]);
    free(mm->scratch);
    free(mm->scratch_bytes);
    if (mm->engine) dnnl_engine_destroy(mm->engine);
    free(mm);
    cpu_of(ctx)->mm = NULL;
}

// One operand's memory descriptor [batch dims..., rows, cols] with the given element strides, keeping only
// the batch dims above 1: oneDNN's GEMM-based implementation takes a batch whose other dims are 1 only when
// those dims are left out (with them it falls back to its reference loops).
static dnnl_status_t operand_md(dnnl_memory_desc_t *md, const int64_t batch[3], int64_t rows, int64_t cols,
                                const int64_t stride[5], dnnl_data_type_t type) {
    dnnl_dims_t dims, strides;
    int n = 0;
    for (int i = 0; i < 3; i++)
        if (batch[i] != 1) dims[n] = batch[i], strides[n++] = stride[i];
    dims[n] = rows, strides[n++] = stride[3];
    dims[n] = cols, strides[n++] = stride[4];
    return dnnl_memory_desc_init_by_strides(md, n, dims, type, strides);
}

// The primitive for e->key; a transposed or strided operand is only a matter of strides. Fills e or returns
// a oneDNN status.
static dnnl_status_t entry_create(struct cpu_bf16_mm *mm, mm_entry *e) {
    const cpu_bmm *d = &e->key;
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;
    if ((s = operand_md(&a_md, d->batch, d->M, d->K, d->a_stride, dnnl_bf16)) ||
        (s = operand_md(&b_md, d->batch, d->K, d->N, d->b_stride, dnnl_bf16)) ||
        (s = operand_md(&c_md, d->batch, d->M, d->N, d->c_stride, d->c_f32 ? dnnl_f32 : dnnl_bf16)) ||
        (s = dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md)) ||
        (s = dnnl_primitive_attr_create(&attr)) ||
        (s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)))
        goto done;
    if (d->alpha != 1.0f && (s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &d->alpha))) goto done;
    if (d->beta != 0.0f) {
        if ((s = dnnl_post_ops_create(&ops)) || (s = dnnl_post_ops_append_sum(ops, d->beta)) ||
            (s = dnnl_primitive_attr_set_post_ops(attr, ops)))
            goto done;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &desc, attr, mm->engine, NULL)) ||
        (s = dnnl_primitive_create(&e->prim, pd)))
        goto done;
    const dnnl_memory_desc_t *scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_memory_desc_t no_scratch;
    if (!scratch_md) {
        memset(&no_scratch, 0, sizeof no_scratch); // a zero memory descriptor: an empty scratchpad
        scratch_md = &no_scratch;
    }
    e->scratch_bytes = dnnl_memory_desc_get_size(scratch_md);
    if (!(e->mem = calloc(MM_ARGS * (size_t)mm->n_threads, sizeof *e->mem))) {
        s = dnnl_out_of_memory;
        goto done;
    }
    for (int t = 0; t < mm->n_threads && s == dnnl_success; t++) {
        dnnl_memory_t *m = e->mem + MM_ARGS * t;
        if ((s = dnnl_memory_create(&m[0], &a_md, mm->engine, DNNL_MEMORY_NONE)) ||
            (s = dnnl_memory_create(&m[1], &b_md, mm->engine, DNNL_MEMORY_NONE)) ||
            (s = dnnl_memory_create(&m[2], &c_md, mm->engine, DNNL_MEMORY_NONE)) ||
            (s = dnnl_memory_create(&m[3], scratch_md, mm->engine, DNNL_MEMORY_NONE)))
            break;
    }
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) entry_free(mm, e);
    return s;
}

// Descriptors are built from zeroed structs, so comparing their bytes compares their fields. A full cache
// replaces its least recently used entry, so the few an op prepares before running them stay valid.
static mm_entry *entry_get(struct cpu_bf16_mm *mm, const cpu_bmm *d, dnnl_status_t *status) {
    mm->clock++;
    for (int i = 0; i < mm->n; i++)
        if (mm->entry[i].prim && memcmp(&mm->entry[i].key, d, sizeof *d) == 0) {
            mm->entry[i].used = mm->clock;
            return &mm->entry[i];
        }
    mm_entry *e = NULL;
    for (int i = 0; i < mm->n && !e; i++)
        if (!mm->entry[i].prim) e = &mm->entry[i]; // a slot a failed creation left empty
    if (!e && mm->n < MM_CACHE) e = &mm->entry[mm->n++];
    if (!e) {
        e = &mm->entry[0];
        for (int i = 1; i < mm->n; i++)
            if (mm->entry[i].used < e->used) e = &mm->entry[i];
        entry_free(mm, e);
    }
    memset(e, 0, sizeof *e);
    e->key = *d;
    e->used = mm->clock;
    *status = entry_create(mm, e); // on failure the slot is left empty (prim NULL) and matches nothing
    return *status == dnnl_success ? e : NULL;
}

static void record_failure(const cpu_bmm *d, dnnl_status_t s) {
    char msg[200];
    snprintf(msg, sizeof msg,
             "oneDNN bf16 matmul failed (status %d%s) on %lld x [%lld x %lld] = [%lld x %lld] [%lld x %lld]",
             (int)s, s == dnnl_out_of_memory ? ", out of memory" : "",
             (long long)(d->batch[0] * d->batch[1] * d->batch[2]), (long long)d->M, (long long)d->N,
             (long long)d->M, (long long)d->K, (long long)d->K, (long long)d->N);
    cpu_gemm_record_failure(msg);
}

const struct mm_entry *cpu_bf16_bmm_prepare(rt_ctx *ctx, const cpu_bmm *d) {
    dnnl_status_t s = dnnl_success;
    const mm_entry *e = entry_get(cpu_of(ctx)->mm, d, &s);
    if (!e) record_failure(d, s);
    return e;
}

void cpu_bf16_bmm_run(rt_ctx *ctx, const struct mm_entry *e, void *c, const void *a, const void *b) {
    if (!e) return; // its preparation failed and was recorded
    struct cpu_bf16_mm *mm = cpu_of(ctx)->mm;
    int t = omp_get_thread_num();
    dnnl_memory_t *mem = e->mem + MM_ARGS * t;
    dnnl_exec_arg_t args[MM_ARGS] = {{DNNL_ARG_SRC, mem[0]},
                                     {DNNL_ARG_WEIGHTS, mem[1]},
                                     {DNNL_ARG_DST, mem[2]},
                                     {DNNL_ARG_SCRATCHPAD, mem[3]}};
    dnnl_status_t s = dnnl_success;
    if (e->scratch_bytes > mm->scratch_bytes[t]) { // this thread's scratchpad, grown (once per size)
        void *p = aligned_alloc(64, (e->scratch_bytes + 63) / 64 * 64);
        if (p) {
            free(mm->scratch[t]);
            mm->scratch[t] = p;
            mm->scratch_bytes[t] = e->scratch_bytes;
        } else
            s = dnnl_out_of_memory;
    }
    if (!s && !(s = dnnl_memory_set_data_handle(mem[3], mm->scratch[t])) &&
        !(s = dnnl_memory_set_data_handle(mem[0], (void *)a)) &&
        !(s = dnnl_memory_set_data_handle(mem[1], (void *)b)) &&
        !(s = dnnl_memory_set_data_handle(mem[2], c)) &&
        !(s = dnnl_primitive_execute(e->prim, mm->stream[t], MM_ARGS, args)))
        s = dnnl_stream_wait(mm->stream[t]);
    if (s != dnnl_success) record_failure(&e->key, s);
}

void cpu_bf16_bmm(rt_ctx *ctx, const cpu_bmm *d, void *c, const void *a, const void *b) {
    cpu_bf16_bmm_run(ctx, cpu_bf16_bmm_prepare(ctx, d), c, a, b);
}

// out[M,N] = alpha * op(a) @ op(b) + beta * out (bf16 act buffers, fp32 accumulation)
void cpu_bf16_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                     int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f) memset(out, 0, (size_t)M * N * sizeof(uint16_t));
        return;
    }
    cpu_bmm d;
    memset(&d, 0, sizeof d);
    for (int i = 0; i < 3; i++) d.batch[i] = 1;
    d.M = M, d.N = N, d.K = K;
    d.a_stride[3] = trans_a ? 1 : K, d.a_stride[4] = trans_a ? M : 1;
    d.b_stride[3] = trans_b ? 1 : N, d.b_stride[4] = trans_b ? K : 1;
    d.c_stride[3] = N, d.c_stride[4] = 1;
    d.alpha = alpha, d.beta = beta;
    cpu_bf16_bmm(ctx, &d, out, a, b);
}
