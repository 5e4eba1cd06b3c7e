// Knowledge-distillation loss fused with its gradient, one block per row (the contract is in backend.h, the
// formulas in docs/distillation.md). The same passes as the CPU twin (csrc/cpu/distill.c): the maxima, the
// normalisers, the divergence, then the gradient. Per-element math is fp32; per-thread sums and the block
// reductions run in double in a fixed order. Every read of the row's logits happens before a barrier that
// precedes the first write of the gradient, so dlogits may overwrite the logits in place. A sparse row keeps
// its k (<= KD_MAX_K) per-id values in shared memory, each id owned by one thread throughout. The formulas of
// one category are backend/kd_math.h, shared with the CPU twin.
#include "cuda_internal.h"

#define KD_THREADS 512
#define KD_MAX_K   1024

// log(e^a + e^b) for the shared formulas (host and device, as they are)
__host__ __device__ __forceinline__ float kd_logaddexp(float a, float b) {
    return fmaxf(a, b) + log1pf(expf(-fabsf(a - b)));
}
#define RT_KD_LOGADDEXP(a, b) kd_logaddexp(a, b)
#include "backend/kd_math.h"

typedef rt_kd_cfg kd_cfg;

// Block sum in double, fixed order (as block_sum); `shared` holds 32 doubles.
__device__ __forceinline__ double block_sum_d(double v, double *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    double s = lane < n_warps ? shared[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    return s;
}

// y < 0 (ignored) or an impossible row (NaN losses): a zero gradient row.
template <typename T> __device__ void skip_row(float *ce, float *kd, T *dz, int V, float loss, size_t row) {
    if (threadIdx.x == 0) ce[row] = kd[row] = loss;
    if (dz)
        for (int j = threadIdx.x; j < V; j += blockDim.x) dz[j] = from_f32<T>(0.0f);
}

// Dense teacher: logits and teacher_logits [N, V]
template <typename T>
__global__ void kd_dense_kernel(float *ce, float *kd, T *dlogits, const T *logits, const T *teacher,
                                const int32_t *targets, int V, kd_cfg c) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    size_t row = blockIdx.x;
    const T *z = logits + row * (size_t)V, *v = teacher + row * (size_t)V;
    T *dz = dlogits ? dlogits + row * (size_t)V : NULL;
    int y = targets[row];
    if (y < 0 || y >= V) return skip_row(ce, kd, dz, V, y < 0 ? 0.0f : NAN, row);
    float mz = -INFINITY, mv = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x)
        mz = fmaxf(mz, to_f32(z[j])), mv = fmaxf(mv, to_f32(v[j]));
    mz = block_max(mz, shf);
    mv = block_max(mv, shf);
    double s1 = 0.0, su = 0.0, sw = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float e = to_f32(z[j]) - mz;
        s1 += expf(e);
        su += expf(e * c.inv_t);
        sw += expf((to_f32(v[j]) - mv) * c.inv_t);
    }
    float zy = to_f32(z[y]);
    s1 = block_sum_d(s1, shd);
    su = block_sum_d(su, shd);
    sw = block_sum_d(sw, shd);
    float lzu = (float)log(su), lzw = (float)log(sw);
    double sd = 0.0, sg = 0.0; // D, and sum q g
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float lq = (to_f32(z[j]) - mz) * c.inv_t - lzu, lr = (to_f32(v[j]) - mv) * c.inv_t - lzw, d, g;
        float q = expf(lq);
        rt_kd_cat(&c, lr, lq, expf(lr), q, &d, &g);
        sd += d;
        sg += q * g;
    }
    sd = block_sum_d(sd, shd); // its barriers also end every read of other threads' elements
    sg = block_sum_d(sg, shd);
    if (threadIdx.x == 0) ce[row] = (float)(log(s1) + (double)mz - (double)zy), kd[row] = (float)sd;
    if (!dz) return;
    float S = (float)sg, s1f = (float)(c.wce / s1);
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float e = to_f32(z[j]) - mz, lq = e * c.inv_t - lzu, lr = (to_f32(v[j]) - mv) * c.inv_t - lzw, d, g;
        float q = expf(lq), r = expf(lr);
        rt_kd_cat(&c, lr, lq, r, q, &d, &g);
        dz[j] =
            from_f32<T>(s1f * expf(e) + c.wkd * rt_kd_soft_grad(&c, q, r, g, S) - (j == y ? c.wce : 0.0f));
    }
}

// Sparse teacher: topk_ids / topk_lp [N, k], 1 <= k <= KD_MAX_K
template <typename T>
__global__ void kd_sparse_kernel(float *ce, float *kd, T *dlogits, const T *logits, const int32_t *topk_ids,
                                 const float *topk_lp, int k, const int32_t *targets, int V, kd_cfg c,
                                 rt_kd_tail tail, float lp_scale) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    __shared__ float s_a[KD_MAX_K], s_b[KD_MAX_K]; // per id: log q (then scratch), then the gradient value
    size_t row = blockIdx.x;
    const T *z = logits + row * (size_t)V;
    T *dz = dlogits ? dlogits + row * (size_t)V : NULL;
    const int32_t *ids = topk_ids + row * (size_t)k;
    const float *lp = topk_lp + row * (size_t)k;
    int y = targets[row], teacher = ids[0] >= 0, bad = y >= V;
    for (int i = threadIdx.x; teacher && i < k; i += blockDim.x) bad |= ids[i] < 0 || ids[i] >= V;
    bad = __syncthreads_or(bad);
    if (y < 0 || bad) return skip_row(ce, kd, dz, V, y < 0 ? 0.0f : NAN, row);
    float mz = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mz = fmaxf(mz, to_f32(z[j]));
    mz = block_max(mz, shf);
    double s1 = 0.0, su = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float e = to_f32(z[j]) - mz;
        s1 += expf(e);
        su += expf(e * c.inv_t);
    }
    float zy = to_f32(z[y]);
    s1 = block_sum_d(s1, shd);
    su = block_sum_d(su, shd);
    double D = 0.0;
    float a = 0.0f; // the dense part of the soft gradient: -a p_j (bucket)
    if (teacher && tail == RT_KD_TAIL_BUCKET) {
        // q_tail = (Zu - E_S) / Zu with E_S the very terms of Zu that belong to S (see the CPU twin)
        float lzu = (float)log(su);
        double es = 0.0, rs = 0.0;
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            float e = (to_f32(z[ids[i]]) - mz) * c.inv_t;
            es += expf(e);
            rs += exp((double)lp[i]);
            s_a[i] = e - lzu;
        }
        es = block_sum_d(es, shd);
        rs = block_sum_d(rs, shd);
        double qraw = (su - es) / su, qt = qraw > 0.0 ? qraw : 0.0, rt = 1.0 - rs > 0.0 ? 1.0 - rs : 0.0;
        double dt, gt, ds = 0.0, as = 0.0;
        rt_kd_bucket_tail(&c, rt, qt, &dt, &gt);
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            float r = expf(lp[i]), q = expf(s_a[i]), d, g;
            rt_kd_cat(&c, lp[i], s_a[i], r, q, &d, &g);
            s_b[i] = c.div == RT_KD_FORWARD_KL ? -r : q * g; // p_c g_c
            ds += d;
            as += s_b[i];
        }
        ds = block_sum_d(ds, shd);
        as = block_sum_d(as, shd);
        D = ds + dt;
        double B = as + gt * qraw; // g_tail + A, as on the CPU
        a = (float)(c.wkd * (B - gt));
        for (int i = threadIdx.x; i < k; i += blockDim.x) s_b[i] = c.wkd * (s_b[i] - (float)B * expf(s_a[i]));
    } else if (teacher) {
        // renorm: student softmax(u) and teacher softmax(l * T_capture / T), both over the k ids
        float mq = -INFINITY, mr = -INFINITY;
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            s_a[i] = (to_f32(z[ids[i]]) - mz) * c.inv_t;
            s_b[i] = lp[i] * lp_scale;
            mq = fmaxf(mq, s_a[i]);
            mr = fmaxf(mr, s_b[i]);
        }
        mq = block_max(mq, shf);
        mr = block_max(mr, shf);
        double zq = 0.0, zr = 0.0;
        for (int i = threadIdx.x; i < k; i += blockDim.x) zq += expf(s_a[i] - mq), zr += expf(s_b[i] - mr);
        zq = block_sum_d(zq, shd);
        zr = block_sum_d(zr, shd);
        float lzq = (float)log(zq) + mq, lzr = (float)log(zr) + mr;
        double ds = 0.0, ss = 0.0;
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            s_a[i] -= lzq;
            s_b[i] -= lzr;
            float r = expf(s_b[i]), q = expf(s_a[i]), d, g;
            rt_kd_cat(&c, s_b[i], s_a[i], r, q, &d, &g);
            ds += d;
            ss += q * g;
        }
        D = block_sum_d(ds, shd);
        float S = (float)block_sum_d(ss, shd);
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
            float r = expf(s_b[i]), q = expf(s_a[i]), d, g;
            rt_kd_cat(&c, s_b[i], s_a[i], r, q, &d, &g);
            s_b[i] = c.wkd * rt_kd_soft_grad(&c, q, r, g, S);
        }
    }
    if (threadIdx.x == 0) ce[row] = (float)(log(s1) + (double)mz - (double)zy), kd[row] = (float)D;
    if (!dz) return;
    float s1f = (float)(c.wce / s1), suf = (float)(a / su);
    for (int i = threadIdx.x; teacher && i < k; i += blockDim.x)
        s_b[i] += s1f * expf(to_f32(z[ids[i]]) - mz) - (ids[i] == y ? c.wce : 0.0f);
    __syncthreads(); // every read of the logits is done: the gradient may overwrite them
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float e = to_f32(z[j]) - mz;
        dz[j] = from_f32<T>(s1f * expf(e) - suf * expf(e * c.inv_t) - (j == y ? c.wce : 0.0f));
    }
    __syncthreads(); // the k ids get their own values over the dense ones
    for (int i = threadIdx.x; teacher && i < k; i += blockDim.x) dz[ids[i]] = from_f32<T>(s_b[i]);
}

void cuda_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                       const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs, int k,
                       const int32_t *targets, int N, int V, const rt_kd_params *p, float grad_scale) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0) return;
    if (!teacher_logits && (k < 1 || k > KD_MAX_K)) {
        cuda_record_failure(ctx, "distill_loss", "top-k size %d outside [1, %d]", k, KD_MAX_K);
        return;
    }
    kd_cfg c = rt_kd_cfg_of(p, grad_scale);
    if (teacher_logits)
        CUDA_DISPATCH_ACT(
            ctx, kd_dense_kernel<T><<<(unsigned)N, KD_THREADS, 0, st->stream>>>(
                     ce, kd, (T *)dlogits, (const T *)logits, (const T *)teacher_logits, targets, V, c));
    else
        CUDA_DISPATCH_ACT(ctx, kd_sparse_kernel<T><<<(unsigned)N, KD_THREADS, 0, st->stream>>>(
                                   ce, kd, (T *)dlogits, (const T *)logits, topk_ids, topk_logprobs, k,
                                   targets, V, c, p->tail, p->topk_temperature / p->temperature));
    cuda_check_launch(ctx, "distill_loss");
}
