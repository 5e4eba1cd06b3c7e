// NF4 quantization on the host (nf4.h). The device side is the backend op nf4_dequantize.
#include "backend/nf4.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float rt_nf4_code[16] = {RT_NF4_CODE_VALUES};

static uint8_t nearest_code(float x) {
    int best = 0;
    float best_d = fabsf(x - rt_nf4_code[0]);
    for (int c = 1; c < 16; c++) {
        float d = fabsf(x - rt_nf4_code[c]);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return (uint8_t)best;
}

void rt_nf4_free(rt_nf4 *q) {
    free(q->codes);
    free(q->absmax);
    free(q->absmax_q);
    free(q->absmax_scale);
    memset(q, 0, sizeof *q);
}

size_t rt_nf4_bytes(const rt_nf4 *q) {
    size_t b = (q->n + 1) / 2;
    if (q->double_quant) return b + q->n_blocks + q->n_scales * sizeof(float);
    return b + q->n_blocks * sizeof(float);
}

// Mean-centre the block absmaxes and store them as int8 with one scale per 256 blocks.
static void quantize_scales(rt_nf4 *q, const float *absmax) {
    double sum = 0.0;
    for (size_t b = 0; b < q->n_blocks; b++) sum += absmax[b];
    q->absmax_offset = (float)(sum / (double)q->n_blocks);
    for (size_t s = 0; s < q->n_scales; s++) {
        size_t lo = s * RT_NF4_SCALE_BLOCK, hi = lo + RT_NF4_SCALE_BLOCK;
        if (hi > q->n_blocks) hi = q->n_blocks;
        float amax = 0.0f;
        for (size_t b = lo; b < hi; b++) {
            float d = fabsf(absmax[b] - q->absmax_offset);
            if (d > amax) amax = d;
        }
        float scale = amax / 127.0f;
        q->absmax_scale[s] = scale;
        for (size_t b = lo; b < hi; b++) {
            float v = scale > 0.0f ? rintf((absmax[b] - q->absmax_offset) / scale) : 0.0f;
            q->absmax_q[b] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
    }
}

int rt_nf4_quantize(const float *w, size_t n, int double_quant, rt_nf4 *out, const char *what,
                    rt_error *err) {
    memset(out, 0, sizeof *out);
    if (n == 0) return rt_fail(err, "%s: cannot quantize an empty tensor", what);
    out->n = n;
    out->n_blocks = (n + RT_NF4_BLOCK - 1) / RT_NF4_BLOCK;
    out->double_quant = double_quant;
    out->n_scales = double_quant ? (out->n_blocks + RT_NF4_SCALE_BLOCK - 1) / RT_NF4_SCALE_BLOCK : 0;
    out->codes = rt_calloc((n + 1) / 2, 1, "NF4 codes", err);
    float *absmax = rt_malloc(out->n_blocks * sizeof(float), "NF4 scales", err);
    if (double_quant) {
        out->absmax_q = rt_malloc(out->n_blocks, "NF4 scales", err);
        out->absmax_scale = rt_malloc(out->n_scales * sizeof(float), "NF4 scales", err);
    }
    if (!out->codes || !absmax || (double_quant && (!out->absmax_q || !out->absmax_scale))) {
        free(absmax);
        rt_nf4_free(out);
        return -1;
    }
    for (size_t b = 0; b < out->n_blocks; b++) {
        size_t lo = b * RT_NF4_BLOCK, hi = lo + RT_NF4_BLOCK < n ? lo + RT_NF4_BLOCK : n;
        float amax = 0.0f;
        for (size_t i = lo; i < hi; i++) {
            if (!isfinite(w[i])) {
                free(absmax);
                rt_nf4_free(out);
                return rt_fail(err, "%s: weight %zu is %g; NF4 needs finite weights", what, i, w[i]);
            }
            if (fabsf(w[i]) > amax) amax = fabsf(w[i]);
        }
        absmax[b] = amax;
        for (size_t i = lo; i < hi; i++) {
            uint8_t c = amax > 0.0f ? nearest_code(w[i] / amax) : 7; // code 7 is 0.0
            out->codes[i / 2] |= (uint8_t)(i % 2 == 0 ? c << 4 : c);
        }
    }
    if (double_quant) {
        quantize_scales(out, absmax);
        free(absmax);
    } else {
        out->absmax = absmax;
    }
    return 0;
}

void rt_nf4_dequantize(const rt_nf4 *q, float *out) {
    for (size_t i = 0; i < q->n; i++) {
        uint8_t byte = q->codes[i / 2];
        int c = i % 2 == 0 ? byte >> 4 : byte & 15;
        float s =
            rt_nf4_block_scale(q->absmax, q->absmax_q, q->absmax_scale, q->absmax_offset, i / RT_NF4_BLOCK);
        out[i] = rt_nf4_code[c] * s;
    }
}
