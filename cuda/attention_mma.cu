// Causal grouped-query attention on bf16 tensor cores, FlashAttention-2 style: mma.sync m16n8k16 (bf16 in,
// fp32 accumulate; sm_80+, so A100 and H100), ldmatrix fragment loads, cp.async double buffering. Used by
// attention.cu when the activations are bf16 and D is a multiple of 16 up to 128; the portable fp32-FMA
// kernels there handle the rest. Why: at the target shape (T = 1024, D = 64) attention is ~13% of the
// model's FLOPs, and scalar FMAs from shared memory would make it most of the step time.
//
// Tiling. Every CTA has 4 warps; each warp owns 16 rows of the CTA's tile and keeps their accumulators in
// registers, so the softmax statistics of a row live in the 4 lanes that hold it and no score ever touches
// shared memory.
//   forward: CTA = (b, h, 64 query rows); walks the key tiles (64 keys for D <= 64, else 32) up to the
//            diagonal: S = Q K^T (mma), online softmax in fp32 (exp2 with log2(e) folded into the scale),
//            P rounded to bf16 in registers, O += P V (mma). out = O / l, lse = ln 2 * max + ln l (natural
//            log, as the CPU).
//   backward, with no atomics (bit-identical run to run):
//     delta [B, H, T] = rowsum(dO * O) (scratch);
//     dK/dV: CTA = (b, kv head, 64 keys), walks the group's query heads and their query tiles (64 rows for
//            D <= 64, else 32) on and below the diagonal; per warp (16 keys) S^T = K Q^T, dP^T = V dO^T,
//            P^T = exp(S^T scale - lse), dS^T = P^T (dP^T - delta), dV += P^T dO, dK += dS^T Q;
//     dQ:    CTA = (b, h, 64 query rows), walks the key tiles (64 for D <= 64, else 32) up to the diagonal:
//            S, dP = dO V^T, dS as above, dQ += dS K. S and dP are computed twice: the price of no atomics.
//   Q (and dO in dQ) fragments stay in registers for the whole CTA; K/V (or Q/dO) tiles are double buffered
//   in shared memory with cp.async (16-byte copies, zero-filled past T), one __syncthreads after the wait and
//   one before a buffer is refilled. Heaviest tiles are launched first (grid y reversed in forward and dQ).
//   Tiles are padded to a row stride of D + 8 elements: 16 B of padding shifts each row by one 16-byte bank
//   group, so the 8 row addresses of an ldmatrix hit 8 distinct bank groups (D/8 + 1 is odd).
// Expected occupancy (ptxas of CUDA 13, no spills; CTAs per SM on A100 / H100 from registers and smem):
//   forward D = 64: 128 registers, 45 KB -> 3 / 4 CTAs;  D = 128: 165 registers, 51 KB -> 3 / 3
//   dK/dV   D = 64: 192 registers, 55 KB -> 2 / 2;       D = 128: 252 registers, 69 KB -> 2 / 2
//   dQ      D = 64: 130 registers, 54 KB -> 2 / 3;       D = 128: 228 registers, 68 KB -> 2 / 2
// With 16 rows per warp each ldmatrix'd B fragment feeds one mma (16 FLOP per byte of shared memory read),
// which caps the kernels near 2048 FLOP/clk/SM, about half the H100 bf16 peak; 32 rows per warp (two m16
// tiles sharing each B fragment, at twice the accumulator registers) would be the next step.
//
// Fragments of mma.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix Fragments for mma.m16n8k16 with
// floating point type"), g = lane >> 2, t = lane & 3, each .b32 register holding two bf16, low half first:
//   A 16x16 (M x K, row): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..)
//   B 16x8 (K x N, col):  b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8..2t+9, n g)
//   C/D 16x8 fp32:        c[0], c[1] = (g, 2t), (g, 2t+1); c[2], c[3] = (g+8, 2t), (g+8, 2t+1)
// ldmatrix.x4 (8x8 b16 matrices, lanes 8i..8i+7 give the row addresses of matrix i, register i of lane l
// holds row l/4, columns 2(l%4)..+1; with .trans, rows 2(l%4)..+1 of column l/4):
//   - A operand from a row-major [m][k] tile: matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15),
//     (m 8-15, k 8-15) -> a[0..3] (am_off_a);
//   - B operands of two n-tiles from a row-major [n][k] tile (K for S = Q K^T): matrices (n 0-7, k 0-7),
//     (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) -> {b[0], b[1]} of n-tile 0, then of n-tile 1
//     (am_off_b);
//   - B operands of two n-tiles from a row-major [k][n] tile (V for O += P V), with .trans: the am_off_a
//     addresses give {b[0], b[1]} of n-tile 0 (n 0-7), then of n-tile 1 (n 8-15).
// The C fragments of S over keys 16c..16c+15 (n-tiles 2c, 2c+1) are, element for element, the A fragment
// of P for k = those keys: a = {pack(c0[0], c0[1]), pack(c0[2], c0[3]), pack(c1[0], c1[1]), pack(c1[2],
// c1[3])}, so P goes from the first mma to the second without leaving registers (am_pack_a).
//
// The only inline PTX is in the small wrappers below (am_mma, am_ldsm_x4, am_ldsm_x4_t, am_cp_async16/4,
// commit, wait); defining RT_ATT_MMA_EMULATION leaves them out so that a host emulation (every lane a
// thread, warps exchanging registers) can supply them and check these layouts on a CPU.
//   q, dq [B, T, H, D] (rows ldq elements apart); k, v, dk, dv [B, T, KVH, D] (rows ldkv apart); out, dout
//   [B, T, H, D] contiguous; lse, delta [B, H, T] fp32
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define AM_WARPS      4
#define AM_THREADS    (32 * AM_WARPS)
#define AM_BM         64 // query rows per CTA (forward, dQ) and keys per CTA (dK/dV): 16 per warp
#define AM_MAX_GRID_Y RT_CUDA_MAX_GRID_Y
#define AM_LOG2E      1.4426950408889634f
#define AM_LN2        0.6931471805599453f

// Tile sizes by head dim; see the header comment for why. LD: shared-memory row stride in elements.
template <int D> struct am_cfg {
    static constexpr int LD = D + 8;
    static constexpr int FWD_BN = D <= 64 ? 64 : 32; // keys per step, forward
    static constexpr int KV_BQ = D <= 64 ? 64 : 32;  // query rows per step, dK/dV
    static constexpr int DQ_BN = D <= 64 ? 64 : 32;  // keys per step, dQ
};

typedef struct am_shape {
    int B, T, H, KVH, group; // group = H / KVH
    int ldq, ldkv;           // elements between rows (b, t) of q / dq and of k, v / dk, dv
    float scale;             // 1 / sqrt(D)
    float scale_log2;        // log2(e) / sqrt(D)
} am_shape;

#ifndef RT_ATT_MMA_EMULATION
// d += a b: a the A fragment, (b0, b1) the B fragment, d the fp32 C/D fragment (layouts above).
__device__ __forceinline__ void am_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Four 8x8 matrices; p is this lane's row address (shared memory, 16-byte aligned).
__device__ __forceinline__ void am_ldsm_x4(uint32_t (&r)[4], const bf16 *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
__device__ __forceinline__ void am_ldsm_x4_t(uint32_t (&r)[4], const bf16 *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
}
// Asynchronous global -> shared copies; with valid false nothing is read and the destination is zeroed.
__device__ __forceinline__ void am_cp_async16(void *dst, const void *src, bool valid) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d),
                 "l"(__cvta_generic_to_global(src)), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void am_cp_async4(void *dst, const void *src, bool valid) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d),
                 "l"(__cvta_generic_to_global(src)), "r"(valid ? 4 : 0)
                 : "memory");
}
__device__ __forceinline__ void am_cp_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N> __device__ __forceinline__ void am_cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#endif

// Offsets (elements, row stride ld) of this lane's ldmatrix.x4 row inside a 16 x 16 block: am_off_a for
// an A fragment (or, with .trans, B fragments of two n-tiles from a [k][n] tile), am_off_b for B fragments
// of two n-tiles from an [n][k] tile. See the header comment.
__device__ __forceinline__ int am_off_a(int lane, int ld) {
    return ((lane & 7) + (lane & 8)) * ld + ((lane >> 4) << 3);
}
__device__ __forceinline__ int am_off_b(int lane, int ld) {
    return ((lane & 7) + ((lane >> 4) << 3)) * ld + (lane & 8);
}

__device__ __forceinline__ uint32_t am_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); // .x (lo) is the low half
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}
// The A fragment over k = keys (or queries) 16c..16c+15 from the C fragments of n-tiles 2c and 2c + 1.
__device__ __forceinline__ void am_pack_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = am_pack(c0[0], c0[1]);
    a[1] = am_pack(c0[2], c0[3]);
    a[2] = am_pack(c1[0], c1[1]);
    a[3] = am_pack(c1[2], c1[3]);
}

__device__ __forceinline__ float am_quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float am_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// dst [ROWS, LD] <- rows r0 .. r0 + ROWS - 1 of src (row stride `stride` elements, D wide); rows >= T zeroed.
template <int ROWS, int D>
__device__ __forceinline__ void am_load_rows(bf16 *dst, const bf16 *src, size_t stride, int r0, int T) {
    constexpr int CPR = D / 8, LD = am_cfg<D>::LD; // 16-byte chunks per row
    for (int c = threadIdx.x; c < ROWS * CPR; c += AM_THREADS) {
        const int r = c / CPR, col = (c - r * CPR) * 8;
        const bool ok = r0 + r < T;
        am_cp_async16(dst + r * LD + col, ok ? src + (size_t)(r0 + r) * stride + col : src, ok);
    }
}
// dst [N] <- src[r0 .. r0 + N - 1], zero past T.
template <int N> __device__ __forceinline__ void am_load_vec(float *dst, const float *src, int r0, int T) {
    for (int i = threadIdx.x; i < N; i += AM_THREADS)
        am_cp_async4(dst + i, src + (r0 + i < T ? r0 + i : 0), r0 + i < T);
}

__device__ __forceinline__ void am_store2(bf16 *p, float a, float b) {
    *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(a, b);
}

// ---------------------------------------------------------------------------------------------------
// forward: grid (B * H, query tiles), the last (heaviest) query tile first

template <int D>
__global__ void __launch_bounds__(AM_THREADS)
    am_forward_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, am_shape s) {
    constexpr int LD = am_cfg<D>::LD, BN = am_cfg<D>::FWD_BN, DC = D / 16, NT = BN / 8;
    extern __shared__ __align__(16) unsigned char am_smem[];
    bf16 *Qs = (bf16 *)am_smem, *Ks = Qs + AM_BM * LD, *Vs = Ks + 2 * BN * LD; // [BM][LD], [2][BN][LD] x 2
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t4 = lane & 3;
    const int b = blockIdx.x / s.H, h = blockIdx.x % s.H, kvh = h / s.group;
    const int q0 = ((s.T + AM_BM - 1) / AM_BM - 1 - (int)blockIdx.y) * AM_BM, w0 = q0 + warp * 16;
    const int row0 = w0 + (lane >> 2); // this thread's rows: row0, row0 + 8
    // q's offset as out's (contiguous, rows H D apart) plus the batch's share of the wider q rows: the two
    // share one live offset, which keeps the kernel within its 128 registers at D = 96
    const size_t ostride = (size_t)s.H * D, ooff = (size_t)b * s.T * ostride + (size_t)h * D;
    const size_t qstride = (size_t)s.ldq, kstride = (size_t)s.ldkv;
    const bf16 *qb = q + ooff + (size_t)b * s.T * (qstride - ostride);
    const bf16 *kb = k + (size_t)b * s.T * kstride + (size_t)kvh * D;
    const bf16 *vb = v + (size_t)b * s.T * kstride + (size_t)kvh * D;
    const int kend = s.T < q0 + AM_BM ? s.T : q0 + AM_BM, nkt = (kend + BN - 1) / BN;

    am_load_rows<AM_BM, D>(Qs, qb, qstride, q0, s.T);
    am_load_rows<BN, D>(Ks, kb, kstride, 0, s.T);
    am_load_rows<BN, D>(Vs, vb, kstride, 0, s.T);
    am_cp_commit();
    uint32_t qf[DC][4]; // A fragments of this warp's 16 query rows, k = d
    float o[D / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; // m in log2 units
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

    for (int it = 0; it < nkt; it++) {
        const int k0 = it * BN, st = it & 1;
        if (it + 1 < nkt) { // prefetch the next key tile into the other buffer
            am_load_rows<BN, D>(Ks + (st ^ 1) * BN * LD, kb, kstride, k0 + BN, s.T);
            am_load_rows<BN, D>(Vs + (st ^ 1) * BN * LD, vb, kstride, k0 + BN, s.T);
        }
        am_cp_commit();
        am_cp_wait<1>(); // everything but the prefetch has landed
        __syncthreads();
        if (it == 0) {
#pragma unroll
            for (int kc = 0; kc < DC; kc++)
                am_ldsm_x4(qf[kc], Qs + warp * 16 * LD + kc * 16 + am_off_a(lane, LD));
        }
        const bf16 *Kt = Ks + st * BN * LD, *Vt = Vs + st * BN * LD;
        float sc[NT][4]; // S [16 rows, BN keys]
#pragma unroll
        for (int j = 0; j < NT; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < DC; kc++)
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t f[4];
                am_ldsm_x4(f, Kt + np * 16 * LD + kc * 16 + am_off_b(lane, LD));
                am_mma(sc[2 * np], qf[kc], f[0], f[1]);
                am_mma(sc[2 * np + 1], qf[kc], f[2], f[3]);
            }
        // Online softmax. Key tile 0 comes first and key 0 is visible to every row, so the running max is
        // finite from the first tile on (alpha = exp2(-inf) = 0 then clears nothing but zeros).
        const bool edge = k0 + BN - 1 > w0; // the tile reaches past the diagonal of some row of this warp
        float mx[2] = {m[0], m[1]}, ls[2] = {0.0f, 0.0f}, alpha[2];
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = sc[j][e] * s.scale_log2;
                if (edge && k0 + 8 * j + 2 * t4 + (e & 1) > row0 + 8 * (e >> 1)) x = -INFINITY;
                sc[j][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = am_quad_max(mx[r]);
            alpha[r] = exp2f(m[r] - mx[r]);
            m[r] = mx[r];
        }
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                sc[j][e] = exp2f(sc[j][e] - m[e >> 1]);
                ls[e >> 1] += sc[j][e];
            }
#pragma unroll
        for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + ls[r]; // per-lane partial sums
#pragma unroll
        for (int j = 0; j < D / 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) o[j][e] *= alpha[e >> 1];
#pragma unroll
        for (int kc = 0; kc < NT / 2; kc++) { // O += P V, k = keys 16 kc ..
            uint32_t pa[4];
            am_pack_a(pa, sc[2 * kc], sc[2 * kc + 1]);
#pragma unroll
            for (int np = 0; np < DC; np++) {
                uint32_t f[4];
                am_ldsm_x4_t(f, Vt + kc * 16 * LD + np * 16 + am_off_a(lane, LD));
                am_mma(o[2 * np], pa, f[0], f[1]);
                am_mma(o[2 * np + 1], pa, f[2], f[3]);
            }
        }
        __syncthreads(); // everyone is done with buffer st before the next iteration refills it
    }

    bf16 *ob = out + ooff;
    float *lb = lse + ((size_t)b * s.H + h) * s.T;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const float sum = am_quad_sum(l[r]), inv = 1.0f / sum;
        const int row = row0 + 8 * r;
        if (row < s.T) {
#pragma unroll
            for (int j = 0; j < D / 8; j++)
                am_store2(ob + (size_t)row * ostride + 8 * j + 2 * t4, o[j][2 * r] * inv,
                          o[j][2 * r + 1] * inv);
            if (t4 == 0) lb[row] = m[r] * AM_LN2 + logf(sum);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// backward

// delta[b, h, t] = sum_d dout[b, t, h, d] * out[b, t, h, d], one warp per row of D (even) elements.
__global__ void am_delta_kernel(float *delta, const bf16 *dout, const bf16 *out, int T, int H, int D,
                                size_t rows) {
    const int lane = threadIdx.x & 31;
    for (size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows;
         row += (size_t)gridDim.x * (blockDim.x >> 5)) {
        const bf16 *a = dout + row * D, *o = out + row * D;
        float acc = 0.0f;
        for (int d = 2 * lane; d < D; d += 64) {
            float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(a + d));
            float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(o + d));
            acc += x.x * y.x + x.y * y.y;
        }
        acc = warp_sum(acc);
        if (lane == 0) {
            const size_t bt = row / H, b = bt / T;
            delta[(b * H + row % H) * T + bt % T] = acc;
        }
    }
}

// dK, dV: grid (B * KVH, key tiles of 64), the first (heaviest) key tile first.
template <int D>
__global__ void __launch_bounds__(AM_THREADS)
    am_dkdv_kernel(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                   const float *lse, const float *delta, am_shape s) {
    constexpr int LD = am_cfg<D>::LD, BQ = am_cfg<D>::KV_BQ, DC = D / 16, NT = BQ / 8;
    extern __shared__ __align__(16) unsigned char am_smem[];
    bf16 *Ks = (bf16 *)am_smem, *Vs = Ks + AM_BM * LD;            // [BM][LD] each
    bf16 *Qs = Vs + AM_BM * LD, *dOs = Qs + 2 * BQ * LD;          // [2][BQ][LD] each
    float *Ls = (float *)(dOs + 2 * BQ * LD), *Dls = Ls + 2 * BQ; // [2][BQ] each
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t4 = lane & 3;
    const int b = blockIdx.x / s.KVH, kvh = blockIdx.x % s.KVH, k0 = blockIdx.y * AM_BM;
    const int key0 = k0 + warp * 16 + (lane >> 2); // this thread's keys: key0, key0 + 8
    const size_t qstride = (size_t)s.ldq, kstride = (size_t)s.ldkv, ostride = (size_t)s.H * D;
    const size_t koff = (size_t)b * s.T * kstride + (size_t)kvh * D;
    const int qt_first = k0 / BQ, nq = (s.T + BQ - 1) / BQ - qt_first, n_it = s.group * nq;
    // Iteration i covers query head kvh * group + i / nq, query tile qt_first + i % nq.
    auto issue = [&](int i, int st) {
        const int h = kvh * s.group + i / nq, r0 = (qt_first + i % nq) * BQ;
        const size_t qoff = (size_t)b * s.T * qstride + (size_t)h * D, loff = ((size_t)b * s.H + h) * s.T;
        const size_t ooff = (size_t)b * s.T * ostride + (size_t)h * D;
        am_load_rows<BQ, D>(Qs + st * BQ * LD, q + qoff, qstride, r0, s.T);
        am_load_rows<BQ, D>(dOs + st * BQ * LD, dout + ooff, ostride, r0, s.T);
        am_load_vec<BQ>(Ls + st * BQ, lse + loff, r0, s.T);
        am_load_vec<BQ>(Dls + st * BQ, delta + loff, r0, s.T);
    };
    am_load_rows<AM_BM, D>(Ks, k + koff, kstride, k0, s.T);
    am_load_rows<AM_BM, D>(Vs, v + koff, kstride, k0, s.T);
    issue(0, 0);
    am_cp_commit();
    float dka[D / 8][4], dva[D / 8][4]; // [16 keys, D] each
#pragma unroll
    for (int j = 0; j < D / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[j][e] = dva[j][e] = 0.0f;

    for (int it = 0; it < n_it; it++) {
        const int st = it & 1, q0 = (qt_first + it % nq) * BQ;
        if (it + 1 < n_it) issue(it + 1, st ^ 1);
        am_cp_commit();
        am_cp_wait<1>();
        __syncthreads();
        const bf16 *Qt = Qs + st * BQ * LD, *dOt = dOs + st * BQ * LD;
        const float *Lt = Ls + st * BQ, *Dt = Dls + st * BQ;
        float sc[NT][4], dp[NT][4]; // S^T, dP^T [16 keys, BQ queries]
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[j][e] = dp[j][e] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < DC; kc++) {
            uint32_t ka[4], va[4];
            am_ldsm_x4(ka, Ks + warp * 16 * LD + kc * 16 + am_off_a(lane, LD));
            am_ldsm_x4(va, Vs + warp * 16 * LD + kc * 16 + am_off_a(lane, LD));
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t f[4];
                am_ldsm_x4(f, Qt + np * 16 * LD + kc * 16 + am_off_b(lane, LD));
                am_mma(sc[2 * np], ka, f[0], f[1]);
                am_mma(sc[2 * np + 1], ka, f[2], f[3]);
                am_ldsm_x4(f, dOt + np * 16 * LD + kc * 16 + am_off_b(lane, LD));
                am_mma(dp[2 * np], va, f[0], f[1]);
                am_mma(dp[2 * np + 1], va, f[2], f[3]);
            }
        }
        // Masked: keys after the query, queries past T (their rows are zero, but keep it explicit).
        const bool edge = q0 < k0 + warp * 16 + 15 || q0 + BQ > s.T;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int c = 8 * j + 2 * t4 + (e & 1);
                float p = exp2f(sc[j][e] * s.scale_log2 - Lt[c] * AM_LOG2E);
                if (edge && (key0 + 8 * (e >> 1) > q0 + c || q0 + c >= s.T)) p = 0.0f;
                sc[j][e] = p;
                dp[j][e] = p * (dp[j][e] - Dt[c]);
            }
#pragma unroll
        for (int kc = 0; kc < NT / 2; kc++) { // k = queries 16 kc ..
            uint32_t pa[4], da[4];
            am_pack_a(pa, sc[2 * kc], sc[2 * kc + 1]);
            am_pack_a(da, dp[2 * kc], dp[2 * kc + 1]);
#pragma unroll
            for (int np = 0; np < DC; np++) {
                uint32_t f[4];
                am_ldsm_x4_t(f, dOt + kc * 16 * LD + np * 16 + am_off_a(lane, LD));
                am_mma(dva[2 * np], pa, f[0], f[1]);
                am_mma(dva[2 * np + 1], pa, f[2], f[3]);
                am_ldsm_x4_t(f, Qt + kc * 16 * LD + np * 16 + am_off_a(lane, LD));
                am_mma(dka[2 * np], da, f[0], f[1]);
                am_mma(dka[2 * np + 1], da, f[2], f[3]);
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = key0 + 8 * r;
        if (key < s.T) {
            bf16 *dkrow = dk + koff + (size_t)key * kstride, *dvrow = dv + koff + (size_t)key * kstride;
#pragma unroll
            for (int j = 0; j < D / 8; j++) {
                am_store2(dkrow + 8 * j + 2 * t4, dka[j][2 * r] * s.scale, dka[j][2 * r + 1] * s.scale);
                am_store2(dvrow + 8 * j + 2 * t4, dva[j][2 * r], dva[j][2 * r + 1]);
            }
        }
    }
}

// dQ: grid (B * H, query tiles of 64), the last (heaviest) query tile first.
template <int D>
__global__ void __launch_bounds__(AM_THREADS)
    am_dq_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                 const float *delta, am_shape s) {
    constexpr int LD = am_cfg<D>::LD, BN = am_cfg<D>::DQ_BN, DC = D / 16, NT = BN / 8;
    extern __shared__ __align__(16) unsigned char am_smem[];
    bf16 *Qs = (bf16 *)am_smem, *dOs = Qs + AM_BM * LD;  // [BM][LD] each
    bf16 *Ks = dOs + AM_BM * LD, *Vs = Ks + 2 * BN * LD; // [2][BN][LD] each
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t4 = lane & 3;
    const int b = blockIdx.x / s.H, h = blockIdx.x % s.H, kvh = h / s.group;
    const int q0 = ((s.T + AM_BM - 1) / AM_BM - 1 - (int)blockIdx.y) * AM_BM, w0 = q0 + warp * 16;
    const int row0 = w0 + (lane >> 2); // this thread's rows: row0, row0 + 8
    const size_t qstride = (size_t)s.ldq, kstride = (size_t)s.ldkv, ostride = (size_t)s.H * D;
    const size_t qoff = (size_t)b * s.T * qstride + (size_t)h * D,
                 koff = (size_t)b * s.T * kstride + (size_t)kvh * D,
                 ooff = (size_t)b * s.T * ostride + (size_t)h * D;
    const int kend = s.T < q0 + AM_BM ? s.T : q0 + AM_BM, nkt = (kend + BN - 1) / BN;

    am_load_rows<AM_BM, D>(Qs, q + qoff, qstride, q0, s.T);
    am_load_rows<AM_BM, D>(dOs, dout + ooff, ostride, q0, s.T);
    am_load_rows<BN, D>(Ks, k + koff, kstride, 0, s.T);
    am_load_rows<BN, D>(Vs, v + koff, kstride, 0, s.T);
    am_cp_commit();
    float lr[2], dr[2]; // lse (log2 units) and delta of this thread's rows
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + 8 * r;
        const size_t i = ((size_t)b * s.H + h) * s.T + (row < s.T ? row : 0);
        lr[r] = row < s.T ? lse[i] * AM_LOG2E : 0.0f;
        dr[r] = row < s.T ? delta[i] : 0.0f;
    }
    uint32_t qf[DC][4], of[DC][4]; // A fragments of Q and dO rows, k = d
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

    for (int it = 0; it < nkt; it++) {
        const int k0 = it * BN, st = it & 1;
        if (it + 1 < nkt) {
            am_load_rows<BN, D>(Ks + (st ^ 1) * BN * LD, k + koff, kstride, k0 + BN, s.T);
            am_load_rows<BN, D>(Vs + (st ^ 1) * BN * LD, v + koff, kstride, k0 + BN, s.T);
        }
        am_cp_commit();
        am_cp_wait<1>();
        __syncthreads();
        if (it == 0) {
#pragma unroll
            for (int kc = 0; kc < DC; kc++) {
                am_ldsm_x4(qf[kc], Qs + warp * 16 * LD + kc * 16 + am_off_a(lane, LD));
                am_ldsm_x4(of[kc], dOs + warp * 16 * LD + kc * 16 + am_off_a(lane, LD));
            }
        }
        const bf16 *Kt = Ks + st * BN * LD, *Vt = Vs + st * BN * LD;
        float sc[NT][4], dp[NT][4]; // S, dP [16 rows, BN keys]
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[j][e] = dp[j][e] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < DC; kc++)
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t f[4];
                am_ldsm_x4(f, Kt + np * 16 * LD + kc * 16 + am_off_b(lane, LD));
                am_mma(sc[2 * np], qf[kc], f[0], f[1]);
                am_mma(sc[2 * np + 1], qf[kc], f[2], f[3]);
                am_ldsm_x4(f, Vt + np * 16 * LD + kc * 16 + am_off_b(lane, LD));
                am_mma(dp[2 * np], of[kc], f[0], f[1]);
                am_mma(dp[2 * np + 1], of[kc], f[2], f[3]);
            }
        const bool edge = k0 + BN - 1 > w0;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(sc[j][e] * s.scale_log2 - lr[e >> 1]);
                if (edge && k0 + 8 * j + 2 * t4 + (e & 1) > row0 + 8 * (e >> 1)) p = 0.0f;
                sc[j][e] = p * (dp[j][e] - dr[e >> 1]); // dS
            }
#pragma unroll
        for (int kc = 0; kc < NT / 2; kc++) { // dQ += dS K, k = keys 16 kc ..
            uint32_t da[4];
            am_pack_a(da, sc[2 * kc], sc[2 * kc + 1]);
#pragma unroll
            for (int np = 0; np < DC; np++) {
                uint32_t f[4];
                am_ldsm_x4_t(f, Kt + kc * 16 * LD + np * 16 + am_off_a(lane, LD));
                am_mma(acc[2 * np], da, f[0], f[1]);
                am_mma(acc[2 * np + 1], da, f[2], f[3]);
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + 8 * r;
        if (row < s.T) {
            bf16 *dqrow = dq + qoff + (size_t)row * qstride;
#pragma unroll
            for (int j = 0; j < D / 8; j++)
                am_store2(dqrow + 8 * j + 2 * t4, acc[j][2 * r] * s.scale, acc[j][2 * r + 1] * s.scale);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// launches

// Opts `fn` into `bytes` of dynamic shared memory (once per device; *done is a bit mask of devices).
// 0 when the device cannot give that much: the caller falls back to the portable kernels.
static int am_smem_opt_in(rt_ctx *ctx, const void *fn, size_t bytes, unsigned *done) {
    cuda_state *st = cuda_of(ctx);
    if (bytes <= 48 * 1024) return 1;
    if (bytes > st->prop.sharedMemPerBlockOptin) return 0;
    unsigned bit = st->device >= 0 && st->device < 32 ? 1u << st->device : 0u;
    if (bit && (*done & bit)) return 1;
    if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) != cudaSuccess) {
        cudaGetLastError(); // not sticky: clear it so that the next check does not report it
        return 0;
    }
    *done |= bit;
    return 1;
}

template <int D>
static int am_forward(rt_ctx *ctx, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                      am_shape s) {
    static unsigned done;
    const size_t smem = (size_t)(AM_BM + 4 * am_cfg<D>::FWD_BN) * am_cfg<D>::LD * sizeof(bf16);
    if (!am_smem_opt_in(ctx, (const void *)am_forward_kernel<D>, smem, &done)) return 0;
    dim3 grid((unsigned)(s.B * s.H), (unsigned)((s.T + AM_BM - 1) / AM_BM));
    am_forward_kernel<D><<<grid, AM_THREADS, smem, cuda_of(ctx)->stream>>>(out, lse, q, k, v, s);
    cuda_check_launch(ctx, "attention_forward");
    return 1;
}

template <int D>
static int am_backward(rt_ctx *ctx, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q,
                       const bf16 *k, const bf16 *v, const bf16 *out, const float *lse, am_shape s) {
    static unsigned done_kv, done_q;
    constexpr int LD = am_cfg<D>::LD, BQ = am_cfg<D>::KV_BQ, BN = am_cfg<D>::DQ_BN;
    const size_t smem_kv = (size_t)(2 * AM_BM + 4 * BQ) * LD * sizeof(bf16) + 4 * BQ * sizeof(float);
    const size_t smem_q = (size_t)(2 * AM_BM + 4 * BN) * LD * sizeof(bf16);
    if (!am_smem_opt_in(ctx, (const void *)am_dkdv_kernel<D>, smem_kv, &done_kv) ||
        !am_smem_opt_in(ctx, (const void *)am_dq_kernel<D>, smem_q, &done_q))
        return 0;
    cudaStream_t stream = cuda_of(ctx)->stream;
    const size_t rows = (size_t)s.B * s.T * s.H;
    float *delta = (float *)cuda_scratch(ctx, rows * sizeof(float), "attention_backward");
    if (!delta) return 1; // the failure is recorded
    am_delta_kernel<<<cuda_grid(rows, 8), 256, 0, stream>>>(delta, dout, out, s.T, s.H, D, rows);
    if (cuda_check_launch(ctx, "attention_backward")) return 1;
    const unsigned tiles = (unsigned)((s.T + AM_BM - 1) / AM_BM);
    am_dkdv_kernel<D><<<dim3((unsigned)(s.B * s.KVH), tiles), AM_THREADS, smem_kv, stream>>>(
        dk, dv, dout, q, k, v, lse, delta, s);
    if (cuda_check_launch(ctx, "attention_backward")) return 1;
    am_dq_kernel<D><<<dim3((unsigned)(s.B * s.H), tiles), AM_THREADS, smem_q, stream>>>(dq, dout, q, k, v,
                                                                                        lse, delta, s);
    cuda_check_launch(ctx, "attention_backward");
    return 1;
}

// Whether the tensor-core path takes this call: bf16, D a multiple of 16 up to 128, 16-byte aligned
// bf16 tensors and rows (ldq, ldkv multiples of 8) (fp32 lse/delta need only their natural alignment), a tile
// grid that fits, an sm_80+ device, and RT_ATTENTION_PORTABLE unset (it forces the portable kernels, to
// compare the two paths).
static int am_supported(rt_ctx *ctx, am_shape *s, int B, int T, int H, int KVH, int D, int ldq, int ldkv,
                        const void *const *ptrs, int n_ptrs) {
    static int portable = -1;
    if (portable < 0) portable = getenv("RT_ATTENTION_PORTABLE") != NULL;
    if (portable || ctx->act != RT_BF16 || D < 16 || D > 128 || D % 16 != 0) return 0;
    if (B <= 0 || T <= 0 || H <= 0 || KVH <= 0 || H % KVH != 0 || (size_t)B * H > INT_MAX) return 0;
    if ((T + AM_BM - 1) / AM_BM > AM_MAX_GRID_Y || cuda_of(ctx)->prop.major < 8) return 0;
    if (ldq % 8 != 0 || ldkv % 8 != 0) return 0; // every row 16-byte aligned, for cp.async
    for (int i = 0; i < n_ptrs; i++)
        if ((uintptr_t)ptrs[i] % 16 != 0) return 0;
    *s = am_shape{B, T, H, KVH, H / KVH, ldq, ldkv, 1.0f / sqrtf((float)D), AM_LOG2E / sqrtf((float)D)};
    return 1;
}

// f.template operator()<D>() for D == d, a multiple of 16 up to 128; 0 (not handled) for any other d.
template <int D = 16, typename F> static int am_with_d(int d, F &&f) {
    if constexpr (D > 128)
        return 0;
    else
        return d == D ? f.template operator()<D>() : am_with_d<D + 16>(d, f);
}

int cuda_attention_mma_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k,
                               const void *v, int B, int T, int H, int KVH, int D, int ldq, int ldkv) {
    const void *ptrs[] = {out, q, k, v};
    am_shape s;
    if (cuda_of(ctx)->failed) return 1;
    if (!am_supported(ctx, &s, B, T, H, KVH, D, ldq, ldkv, ptrs, 4)) return 0;
    return am_with_d(D, [&]<int DD>() {
        return am_forward<DD>(ctx, (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, s);
    });
}

int cuda_attention_mma_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                const void *k, const void *v, const void *out, const float *lse, int B, int T,
                                int H, int KVH, int D, int ldq, int ldkv) {
    const void *ptrs[] = {dq, dk, dv, dout, q, k, v, out};
    am_shape s;
    if (cuda_of(ctx)->failed) return 1;
    if (!am_supported(ctx, &s, B, T, H, KVH, D, ldq, ldkv, ptrs, 8)) return 0;
    return am_with_d(D, [&]<int DD>() {
        return am_backward<DD>(ctx, (bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q,
                               (const bf16 *)k, (const bf16 *)v, (const bf16 *)out, lse, s);
    });
}
