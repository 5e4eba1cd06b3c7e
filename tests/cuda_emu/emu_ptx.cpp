// The warp-wide PTX instructions of attention_mma.cu, emulated from the PTX ISA's fragment layouts (section
// "Matrix Fragments for mma.m16n8k16 with floating point type" and the ldmatrix description), independently
// of the layouts the kernel's comments state. g = lane >> 2 (group), t = lane & 3 (thread in group); every
// .b32 register holds two bf16, the lower-numbered element in the low half.
#include <stdio.h>

#include "emu_internal.h"
#include "emu_tsan.h"
#include "rt_emu_prelude.h"

namespace rt_emu {

namespace {

float lo_bf16(uint32_t r) {
    uint32_t u = r << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
float hi_bf16(uint32_t r) {
    uint32_t u = r & 0xffff0000u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

struct mma_lane {
    uint32_t a[4], b[2];
    float c[4];
};

void mma_complete(const void *const ins[32], void *const outs[32], unsigned, int) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const mma_lane *in = (const mma_lane *)ins[lane];
        int g = lane >> 2, t = lane & 3;
        // A (16 x 16, row): a0..a7 in four registers; rows g (a0, a1, a4, a5) and g + 8 (a2, a3, a6, a7),
        // columns 2t + (i & 1), plus 8 for a4..a7
        A[g][2 * t] = lo_bf16(in->a[0]), A[g][2 * t + 1] = hi_bf16(in->a[0]);
        A[g + 8][2 * t] = lo_bf16(in->a[1]), A[g + 8][2 * t + 1] = hi_bf16(in->a[1]);
        A[g][2 * t + 8] = lo_bf16(in->a[2]), A[g][2 * t + 9] = hi_bf16(in->a[2]);
        A[g + 8][2 * t + 8] = lo_bf16(in->a[3]), A[g + 8][2 * t + 9] = hi_bf16(in->a[3]);
        // B (16 x 8, col): b0..b3 in two registers; rows 2t + (i & 1), plus 8 for b2, b3; column g
        B[2 * t][g] = lo_bf16(in->b[0]), B[2 * t + 1][g] = hi_bf16(in->b[0]);
        B[2 * t + 8][g] = lo_bf16(in->b[1]), B[2 * t + 9][g] = hi_bf16(in->b[1]);
        // C (16 x 8 fp32): c0, c1 in row g, c2, c3 in row g + 8; columns 2t + (i & 1)
        C[g][2 * t] = in->c[0], C[g][2 * t + 1] = in->c[1];
        C[g + 8][2 * t] = in->c[2], C[g + 8][2 * t + 1] = in->c[3];
    }
    for (int lane = 0; lane < 32; lane++) {
        int g = lane >> 2, t = lane & 3;
        float *d = (float *)outs[lane];
        for (int e = 0; e < 4; e++) {
            int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
            float acc = 0.0f; // products of bf16 are exact in fp32; the sum is accumulated in fp32
            for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
            d[e] = C[row][col] + acc;
        }
    }
}

uint16_t load_b16(const unsigned char *row, int col) {
    uint16_t h;
    memcpy(&h, row + 2 * col, sizeof h);
    return h;
}

// x4: lanes 8i .. 8i + 7 give the addresses of rows 0..7 of matrix i; register i of lane l receives matrix
// i's row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 (with .trans: column l / 4, rows 2 (l % 4) and + 1).
void ldmatrix_complete(const void *const ins[32], void *const outs[32], unsigned, int trans) {
    const unsigned char *rows[32];
    for (int l = 0; l < 32; l++) {
        rows[l] = *(const unsigned char *const *)ins[l];
        if ((uintptr_t)rows[l] % 16 || !in_shared(rows[l], 16))
            collective_fault(
                "ldmatrix row address %p of lane %d is not a 16-byte aligned row of shared memory",
                (const void *)rows[l], l);
    }
    for (int l = 0; l < 32; l++) {
        uint32_t *r = (uint32_t *)outs[l];
        for (int i = 0; i < 4; i++) {
            uint16_t lo, hi;
            if (!trans) {
                const unsigned char *row = rows[8 * i + l / 4];
                lo = load_b16(row, 2 * (l % 4));
                hi = load_b16(row, 2 * (l % 4) + 1);
            } else {
                lo = load_b16(rows[8 * i + 2 * (l % 4)], l / 4);
                hi = load_b16(rows[8 * i + 2 * (l % 4) + 1], l / 4);
            }
            r[i] = (uint32_t)lo | (uint32_t)hi << 16;
        }
    }
}

} // namespace

void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, const char *file,
                       int line) {
    mma_lane in;
    memcpy(in.a, a, sizeof in.a);
    in.b[0] = b0;
    in.b[1] = b1;
    memcpy(in.c, d, sizeof in.c);
    warp_collective("mma.sync.m16n8k16", mma_complete, 0, 0xffffffffu, &in, d, file, line);
}

void ldmatrix_x4(uint32_t (&r)[4], const void *row, bool trans, const char *file, int line) {
    // to TSan each lane reads its own row, before the collective (the completion checks the address)
    if ((uintptr_t)row % 16 == 0 && in_shared(row, 16)) kernel_read(row, 16);
    warp_collective(trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", ldmatrix_complete, trans ? 1 : 0,
                    0xffffffffu, &row, r, file, line);
}

} // namespace rt_emu
