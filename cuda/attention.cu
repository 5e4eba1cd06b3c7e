// Causal grouped-query attention, flash style: the T x T scores never leave shared memory.
//
// Every kernel works on square tiles of BT query rows x BT keys, staged in shared memory as fp32 with rows
// padded to D + 1 floats. A tile row is owned by ATT_LANES (8) consecutive lanes: lane l keeps columns
// d = l + 8 i of the row's accumulator in registers and takes the tile's columns c = l + 8 j of the score
// block. So a warp reads, at one d, 8 rows of one tile (one per lane) and 4 rows of the other (broadcast);
// with D even the odd row stride puts those rows in distinct banks. Query tile i only meets key tiles
// 0..i (square tiles) and only the diagonal one needs the causal mask; tiles above it are never touched.
//
// Forward: one block per (b, h, query tile); online softmax over the key tiles (running max and sum per
// row, the accumulator rescaled when the max grows); out = acc / sum, lse = max + log(sum).
// Backward, with no atomics so that results are bit-identical run to run:
//   1. delta [B, H, T] = rowsum(dO * O), into scratch;
//   2. one block per (b, kv head g, key tile) walks the group's query heads and the query tiles on and
//      below the diagonal, rebuilds P = exp(S - lse) and dS = P (dP - delta), dP = dO V^T, accumulates
//      dV = P^T dO and dK = scale dS^T Q in registers, and writes them once;
//   3. one block per (b, h, query tile) walks the key tiles up to the diagonal and accumulates
//      dQ = scale dS K, written once. S and dP are computed twice (in 2 and 3): the price of no atomics.
// Tile size by head dim, keeping dynamic shared memory under 48 KB at the bucket's largest D:
//   forward  (Q, K/V, P):          BT = 32 for D <= 128 (37 KB), 16 for D <= 256 (34 KB)
//   backward (Q, dO, K, V, P, dS): BT = 32 for D <= 64 (41 KB), 16 for D <= 128 (35 KB), 8 up to 256 (33 KB)
// Blocks have 8 * BT threads. Grids: x = batch * heads + head (up to 2^31 - 1), y strides over the tiles
// (a y of 65535 covers T up to half a million in one pass), heaviest tiles scheduled first.
//   q/dq [B, T, H, D] (rows ldq elements apart), k/v/dk/dv [B, T, KVH, D] (rows ldkv apart), out/dout
//   [B, T, H, D] contiguous, lse/delta [B, H, T]
#include <limits.h>
#include <math.h>

#include "cuda_internal.h"

#define ATT_LANES       8                  // lanes per tile row
#define ATT_THREADS(bt) (ATT_LANES * (bt)) // threads per block of BT-row tiles
#define ATT_MAX_GRID_Y  RT_CUDA_MAX_GRID_Y
#define DELTA_WARPS     8 // rows per block of the delta kernel, one warp each

typedef struct att_shape {
    int B, T, H, KVH, D;
    int ldq, ldkv; // elements between rows (b, t) of q / dq and of k, v / dk, dv
    int group;     // H / KVH query heads per kv head
    int nt;        // tiles along T
    float scale;
} att_shape;

// Reductions over the ATT_LANES lanes of one tile row (aligned within the warp); every lane must call.
__device__ __forceinline__ float row_sum(float v) {
    for (int off = ATT_LANES / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}
__device__ __forceinline__ float row_max(float v) {
    for (int off = ATT_LANES / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// tile [BT, D + 1] = rows [t0, t0 + BT) of one head, x pointing at (batch, head, row 0) with rows `stride`
// elements apart. Rows past T are zero: masked products then stay 0 instead of 0 * garbage (maybe NaN).
template <typename E>
__device__ __forceinline__ void load_tile(float *tile, int BT, const E *x, size_t stride, int t0, int T,
                                          int D) {
    int ld = D + 1;
    for (int i = threadIdx.x; i < BT * D; i += blockDim.x) {
        int r = i / D, d = i - r * D, t = t0 + r;
        tile[r * ld + d] = t < T ? to_f32(x[(size_t)t * stride + d]) : 0.0f;
    }
}

template <typename E, int BT, int DM>
__global__ void __launch_bounds__(ATT_THREADS(BT))
    attention_forward_kernel(E *out, float *lse, const E *q, const E *k, const E *v, att_shape s) {
    constexpr int NJ = BT / ATT_LANES, NI = DM / ATT_LANES;
    extern __shared__ float smem[];
    const int D = s.D, ld = D + 1, lp = BT + 1;
    float *Qs = smem, *KVs = Qs + BT * ld, *Ps = KVs + BT * ld; // [BT, ld], [BT, ld], [BT, lp]
    const int b = blockIdx.x / s.H, h = blockIdx.x % s.H, g = h / s.group;
    const int r = threadIdx.x / ATT_LANES, lane = threadIdx.x % ATT_LANES;
    const size_t qstride = (size_t)s.ldq, kstride = (size_t)s.ldkv, ostride = (size_t)s.H * D;
    const E *qb = q + (size_t)b * s.T * qstride + (size_t)h * D;
    const E *kb = k + (size_t)b * s.T * kstride + (size_t)g * D;
    const E *vb = v + (size_t)b * s.T * kstride + (size_t)g * D;
    for (int y = blockIdx.y; y < s.nt; y += gridDim.y) {
        const int qt = s.nt - 1 - y, q0 = qt * BT, tq = q0 + r; // the last tiles have the most keys: first
        __syncthreads();                                        // the previous tile is done with Qs
        load_tile(Qs, BT, qb, qstride, q0, s.T, D);
        float m = -INFINITY, lsum = 0.0f, acc[NI];
#pragma unroll
        for (int i = 0; i < NI; i++) acc[i] = 0.0f;
        for (int kt = 0; kt <= qt; kt++) {
            const int k0 = kt * BT;
            __syncthreads(); // the previous key tile is done with KVs (as V)
            load_tile(KVs, BT, kb, kstride, k0, s.T, D);
            __syncthreads();
            float sc[NJ];
#pragma unroll
            for (int j = 0; j < NJ; j++) sc[j] = 0.0f;
            const float *qrow = Qs + r * ld;
#pragma unroll 4
            for (int d = 0; d < D; d++) {
                float x = qrow[d];
#pragma unroll
                for (int j = 0; j < NJ; j++) sc[j] += x * KVs[(lane + j * ATT_LANES) * ld + d];
            }
            float mt = -INFINITY;
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                sc[j] = k0 + lane + j * ATT_LANES <= tq ? sc[j] * s.scale : -INFINITY;
                mt = fmaxf(mt, sc[j]);
            }
            // Key 0 is visible to every row, so m_new is finite from the first tile on; there m = -inf and
            // alpha = 0 clears nothing but zeros.
            const float m_new = fmaxf(m, row_max(mt)), alpha = expf(m - m_new);
            float psum = 0.0f;
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                float p = k0 + lane + j * ATT_LANES <= tq ? expf(sc[j] - m_new) : 0.0f;
                Ps[r * lp + lane + j * ATT_LANES] = p;
                psum += p;
            }
            lsum = lsum * alpha + psum; // per-lane partial sums, combined once after the last tile
            m = m_new;
            __syncthreads(); // everyone is done with K
            load_tile(KVs, BT, vb, kstride, k0, s.T, D);
            __syncthreads();
            const float *prow = Ps + r * lp;
#pragma unroll
            for (int i = 0; i < NI; i++) acc[i] *= alpha;
            for (int c = 0; c < BT; c++) {
                const float p = prow[c], *vrow = KVs + c * ld + lane;
#pragma unroll
                for (int i = 0; i < NI; i++)
                    if (lane + i * ATT_LANES < D) acc[i] += p * vrow[i * ATT_LANES];
            }
        }
        lsum = row_sum(lsum);
        if (tq < s.T) {
            const float inv = 1.0f / lsum;
            E *orow = out + (size_t)tq * ostride + ((size_t)b * s.T * ostride + (size_t)h * D);
#pragma unroll
            for (int i = 0; i < NI; i++) {
                int d = lane + i * ATT_LANES;
                if (d < D) orow[d] = from_f32<E>(acc[i] * inv);
            }
            if (lane == 0) lse[((size_t)b * s.H + h) * s.T + tq] = m + logf(lsum);
        }
    }
}

// delta[b, h, t] = sum_d dout[b, t, h, d] * out[b, t, h, d], one warp per row.
template <typename E>
__global__ void attention_delta_kernel(float *delta, const E *dout, const E *out, att_shape s) {
    const size_t rows = (size_t)s.B * s.T * s.H;
    const int lane = threadIdx.x & 31;
    for (size_t row = (size_t)blockIdx.x * DELTA_WARPS + (threadIdx.x >> 5); row < rows;
         row += (size_t)gridDim.x * DELTA_WARPS) {
        const E *a = dout + row * s.D, *o = out + row * s.D;
        float acc = 0.0f;
        for (int d = lane; d < s.D; d += 32) acc += to_f32(a[d]) * to_f32(o[d]);
        acc = warp_sum(acc);
        if (lane == 0) {
            size_t bt = row / s.H, b = bt / s.T;
            int h = (int)(row % s.H), t = (int)(bt % s.T);
            delta[(b * s.H + h) * s.T + t] = acc;
        }
    }
}

// dK, dV for one key tile of kv head g: thread (c, lane) owns key row c of both accumulators and scores
// the query rows r = lane + 8 j of each query tile against it.
template <typename E, int BT, int DM>
__global__ void __launch_bounds__(ATT_THREADS(BT))
    attention_dkdv_kernel(E *dk, E *dv, const E *dout, const E *q, const E *k, const E *v, const float *lse,
                          const float *delta, att_shape s) {
    constexpr int NJ = BT / ATT_LANES, NI = DM / ATT_LANES;
    extern __shared__ float smem[];
    const int D = s.D, ld = D + 1, lp = BT + 1;
    float *Ks = smem, *Vs = Ks + BT * ld, *Qs = Vs + BT * ld, *dOs = Qs + BT * ld; // [BT, ld] each
    float *Ps = dOs + BT * ld, *dSs = Ps + BT * lp;                                // [BT, lp] each, [r, c]
    const int b = blockIdx.x / s.KVH, g = blockIdx.x % s.KVH;
    const int c = threadIdx.x / ATT_LANES, lane = threadIdx.x % ATT_LANES;
    const size_t qstride = (size_t)s.ldq, kstride = (size_t)s.ldkv, ostride = (size_t)s.H * D;
    const size_t koff = (size_t)b * s.T * kstride + (size_t)g * D;
    for (int kt = blockIdx.y; kt < s.nt; kt += gridDim.y) { // the first tiles have the most queries: first
        const int k0 = kt * BT, tk = k0 + c;
        __syncthreads(); // the previous tile is done with Ks, Vs
        load_tile(Ks, BT, k + koff, kstride, k0, s.T, D);
        load_tile(Vs, BT, v + koff, kstride, k0, s.T, D);
        float dka[NI], dva[NI];
#pragma unroll
        for (int i = 0; i < NI; i++) dka[i] = dva[i] = 0.0f;
        for (int j = 0; j < s.group; j++) {
            const int h = g * s.group + j;
            const size_t qoff = (size_t)b * s.T * qstride + (size_t)h * D;
            const size_t ooff = (size_t)b * s.T * ostride + (size_t)h * D;
            const float *lb = lse + ((size_t)b * s.H + h) * s.T, *db = delta + ((size_t)b * s.H + h) * s.T;
            for (int qt = kt; qt < s.nt; qt++) {
                const int q0 = qt * BT;
                __syncthreads(); // the previous query tile is done with Qs, dOs (and Ks, Vs are loaded)
                load_tile(Qs, BT, q + qoff, qstride, q0, s.T, D);
                load_tile(dOs, BT, dout + ooff, ostride, q0, s.T, D);
                float lr[NJ], dr[NJ], sc[NJ], dp[NJ];
#pragma unroll
                for (int jj = 0; jj < NJ; jj++) {
                    int tq = q0 + lane + jj * ATT_LANES;
                    lr[jj] = tq < s.T ? lb[tq] : 0.0f;
                    dr[jj] = tq < s.T ? db[tq] : 0.0f;
                    sc[jj] = dp[jj] = 0.0f;
                }
                __syncthreads();
                const float *krow = Ks + c * ld, *vrow = Vs + c * ld;
#pragma unroll 4
                for (int d = 0; d < D; d++) {
                    float kd = krow[d], vd = vrow[d];
#pragma unroll
                    for (int jj = 0; jj < NJ; jj++) {
                        int rr = (lane + jj * ATT_LANES) * ld + d;
                        sc[jj] += Qs[rr] * kd;
                        dp[jj] += dOs[rr] * vd;
                    }
                }
#pragma unroll
                for (int jj = 0; jj < NJ; jj++) {
                    int r = lane + jj * ATT_LANES, tq = q0 + r;
                    float p = 0.0f, ds = 0.0f;
                    if (tq < s.T && tk <= tq) {
                        p = expf(sc[jj] * s.scale - lr[jj]);
                        ds = p * (dp[jj] - dr[jj]);
                    }
                    Ps[r * lp + c] = p;
                    dSs[r * lp + c] = ds;
                }
                __syncwarp(); // column c of Ps and dSs is written and read by the lanes of key row c only
                for (int r = 0; r < BT; r++) {
                    const float p = Ps[r * lp + c], ds = dSs[r * lp + c];
                    const float *dorow = dOs + r * ld + lane, *qrow = Qs + r * ld + lane;
#pragma unroll
                    for (int i = 0; i < NI; i++)
                        if (lane + i * ATT_LANES < D) {
                            dva[i] += p * dorow[i * ATT_LANES];
                            dka[i] += ds * qrow[i * ATT_LANES];
                        }
                }
            }
        }
        if (tk < s.T) {
            E *dkrow = dk + koff + (size_t)tk * kstride, *dvrow = dv + koff + (size_t)tk * kstride;
#pragma unroll
            for (int i = 0; i < NI; i++) {
                int d = lane + i * ATT_LANES;
                if (d < D) {
                    dkrow[d] = from_f32<E>(dka[i] * s.scale);
                    dvrow[d] = from_f32<E>(dva[i]);
                }
            }
        }
    }
}

// dQ for one query tile of head h: thread (r, lane) owns query row r and scores keys c = lane + 8 j.
template <typename E, int BT, int DM>
__global__ void __launch_bounds__(ATT_THREADS(BT))
    attention_dq_kernel(E *dq, const E *dout, const E *q, const E *k, const E *v, const float *lse,
                        const float *delta, att_shape s) {
    constexpr int NJ = BT / ATT_LANES, NI = DM / ATT_LANES;
    extern __shared__ float smem[];
    const int D = s.D, ld = D + 1, lp = BT + 1;
    float *Qs = smem, *dOs = Qs + BT * ld, *Ks = dOs + BT * ld, *Vs = Ks + BT * ld; // [BT, ld] each
    float *dSs = Vs + BT * ld;                                                      // [BT, lp]
    const int b = blockIdx.x / s.H, h = blockIdx.x % s.H, g = h / s.group;
    const int r = threadIdx.x / ATT_LANES, lane = threadIdx.x % ATT_LANES;
    const size_t qstride = (size_t)s.ldq, kstride = (size_t)s.ldkv, ostride = (size_t)s.H * D;
    const size_t qoff = (size_t)b * s.T * qstride + (size_t)h * D,
                 koff = (size_t)b * s.T * kstride + (size_t)g * D,
                 ooff = (size_t)b * s.T * ostride + (size_t)h * D;
    const float *lb = lse + ((size_t)b * s.H + h) * s.T, *db = delta + ((size_t)b * s.H + h) * s.T;
    for (int y = blockIdx.y; y < s.nt; y += gridDim.y) {
        const int qt = s.nt - 1 - y, q0 = qt * BT, tq = q0 + r; // the last tiles have the most keys: first
        __syncthreads();                                        // the previous tile is done with Qs, dOs
        load_tile(Qs, BT, q + qoff, qstride, q0, s.T, D);
        load_tile(dOs, BT, dout + ooff, ostride, q0, s.T, D);
        const float lr = tq < s.T ? lb[tq] : 0.0f, dr = tq < s.T ? db[tq] : 0.0f;
        float acc[NI];
#pragma unroll
        for (int i = 0; i < NI; i++) acc[i] = 0.0f;
        for (int kt = 0; kt <= qt; kt++) {
            const int k0 = kt * BT;
            __syncthreads(); // the previous key tile is done with Ks, Vs
            load_tile(Ks, BT, k + koff, kstride, k0, s.T, D);
            load_tile(Vs, BT, v + koff, kstride, k0, s.T, D);
            __syncthreads();
            float sc[NJ], dp[NJ];
#pragma unroll
            for (int j = 0; j < NJ; j++) sc[j] = dp[j] = 0.0f;
            const float *qrow = Qs + r * ld, *dorow = dOs + r * ld;
#pragma unroll 4
            for (int d = 0; d < D; d++) {
                float qd = qrow[d], dod = dorow[d];
#pragma unroll
                for (int j = 0; j < NJ; j++) {
                    int cc = (lane + j * ATT_LANES) * ld + d;
                    sc[j] += qd * Ks[cc];
                    dp[j] += dod * Vs[cc];
                }
            }
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                int cix = lane + j * ATT_LANES;
                float ds = 0.0f;
                if (tq < s.T && k0 + cix <= tq) ds = expf(sc[j] * s.scale - lr) * (dp[j] - dr);
                dSs[r * lp + cix] = ds;
            }
            __syncwarp(); // row r of dSs is written and read by the lanes of query row r only
            const float *dsrow = dSs + r * lp;
            for (int c = 0; c < BT; c++) {
                const float ds = dsrow[c], *krow = Ks + c * ld + lane;
#pragma unroll
                for (int i = 0; i < NI; i++)
                    if (lane + i * ATT_LANES < D) acc[i] += ds * krow[i * ATT_LANES];
            }
        }
        if (tq < s.T) {
            E *dqrow = dq + qoff + (size_t)tq * qstride;
#pragma unroll
            for (int i = 0; i < NI; i++) {
                int d = lane + i * ATT_LANES;
                if (d < D) dqrow[d] = from_f32<E>(acc[i] * s.scale);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// launches

static dim3 att_grid(int heads_total, int nt) {
    return dim3((unsigned)heads_total, (unsigned)(nt < ATT_MAX_GRID_Y ? nt : ATT_MAX_GRID_Y));
}

template <typename E, int BT, int DM>
static void forward_tiles(cudaStream_t stream, E *out, float *lse, const E *q, const E *k, const E *v,
                          att_shape s) {
    s.nt = (s.T + BT - 1) / BT;
    size_t smem = ((size_t)2 * BT * (s.D + 1) + (size_t)BT * (BT + 1)) * sizeof(float);
    dim3 grid = att_grid(s.B * s.H, s.nt);
    attention_forward_kernel<E, BT, DM><<<grid, ATT_THREADS(BT), smem, stream>>>(out, lse, q, k, v, s);
}

template <typename E>
static void forward(cudaStream_t stream, E *out, float *lse, const E *q, const E *k, const E *v,
                    att_shape s) {
    if (s.D <= 64)
        forward_tiles<E, 32, 64>(stream, out, lse, q, k, v, s);
    else if (s.D <= 128)
        forward_tiles<E, 32, 128>(stream, out, lse, q, k, v, s);
    else
        forward_tiles<E, 16, 256>(stream, out, lse, q, k, v, s);
}

template <typename E, int BT, int DM>
static void backward_tiles(rt_ctx *ctx, E *dq, E *dk, E *dv, const E *dout, const E *q, const E *k,
                           const E *v, const float *lse, const float *delta, att_shape s) {
    cudaStream_t stream = cuda_of(ctx)->stream;
    s.nt = (s.T + BT - 1) / BT;
    size_t tiles = (size_t)4 * BT * (s.D + 1) * sizeof(float), scores = (size_t)BT * (BT + 1) * sizeof(float);
    dim3 kv_grid = att_grid(s.B * s.KVH, s.nt), q_grid = att_grid(s.B * s.H, s.nt);
    attention_dkdv_kernel<E, BT, DM>
        <<<kv_grid, ATT_THREADS(BT), tiles + 2 * scores, stream>>>(dk, dv, dout, q, k, v, lse, delta, s);
    if (cuda_check_launch(ctx, "attention_backward")) return;
    attention_dq_kernel<E, BT, DM>
        <<<q_grid, ATT_THREADS(BT), tiles + scores, stream>>>(dq, dout, q, k, v, lse, delta, s);
    cuda_check_launch(ctx, "attention_backward");
}

template <typename E>
static void backward(rt_ctx *ctx, E *dq, E *dk, E *dv, const E *dout, const E *q, const E *k, const E *v,
                     const E *out, const float *lse, float *delta, att_shape s) {
    cudaStream_t stream = cuda_of(ctx)->stream;
    size_t rows = (size_t)s.B * s.T * s.H;
    attention_delta_kernel<E>
        <<<cuda_grid(rows, DELTA_WARPS), 32 * DELTA_WARPS, 0, stream>>>(delta, dout, out, s);
    if (cuda_check_launch(ctx, "attention_backward")) return;
    if (s.D <= 64)
        backward_tiles<E, 32, 64>(ctx, dq, dk, dv, dout, q, k, v, lse, delta, s);
    else if (s.D <= 128)
        backward_tiles<E, 16, 128>(ctx, dq, dk, dv, dout, q, k, v, lse, delta, s);
    else
        backward_tiles<E, 8, 256>(ctx, dq, dk, dv, dout, q, k, v, lse, delta, s);
}

// The shape the kernels handle, or 0 with the context marked failed.
static int att_shape_of(rt_ctx *ctx, const char *op, att_shape *s, int B, int T, int H, int KVH, int D,
                        int ldq, int ldkv) {
    if (D < 1 || D > 256 || KVH < 1 || H % KVH != 0 || (size_t)B * H > INT_MAX || ldq < H * D ||
        ldkv < KVH * D) {
        cuda_record_failure(
            ctx, op,
            "unsupported shape B=%d H=%d KVH=%d D=%d ldq=%d ldkv=%d (needs D <= 256, H %% KVH == "
            "0, rows at least H * D and KVH * D apart)",
            B, H, KVH, D, ldq, ldkv);
        return 0;
    }
    *s = att_shape{B, T, H, KVH, D, ldq, ldkv, H / KVH, 0, 1.0f / sqrtf((float)D)};
    return 1;
}

void cuda_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v,
                            int B, int T, int H, int KVH, int D, int ldq, int ldkv) {
    cuda_state *st = cuda_of(ctx);
    att_shape s;
    if (st->failed || B <= 0 || T <= 0 || H <= 0) return;
    if (!att_shape_of(ctx, "attention_forward", &s, B, T, H, KVH, D, ldq, ldkv)) return;
    if (cuda_attention_mma_forward(ctx, out, lse, q, k, v, B, T, H, KVH, D, ldq, ldkv))
        return; // tensor cores
    cudaStream_t stream = st->stream;
    CUDA_DISPATCH_ACT(ctx, forward<T>(stream, (T *)out, lse, (const T *)q, (const T *)k, (const T *)v, s));
    cuda_check_launch(ctx, "attention_forward");
}

void cuda_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                             const void *k, const void *v, const void *out, const float *lse, int B, int T,
                             int H, int KVH, int D, int ldq, int ldkv) {
    cuda_state *st = cuda_of(ctx);
    att_shape s;
    if (st->failed || B <= 0 || T <= 0 || H <= 0) return;
    if (!att_shape_of(ctx, "attention_backward", &s, B, T, H, KVH, D, ldq, ldkv)) return;
    if (cuda_attention_mma_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KVH, D, ldq, ldkv))
        return;
    float *delta = (float *)cuda_scratch(ctx, (size_t)B * H * T * sizeof(float), "attention_backward");
    if (!delta) return;
    CUDA_DISPATCH_ACT(ctx, backward<T>(ctx, (T *)dq, (T *)dk, (T *)dv, (const T *)dout, (const T *)q,
                                       (const T *)k, (const T *)v, (const T *)out, lse, delta, s));
}
