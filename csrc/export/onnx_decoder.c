// The decoder graph (onnx_export.h), in standard ONNX ops but for int4's MatMulNBits: at opset 21 RMSNorm,
// RoPE and attention are built from basic ops; at opset 23 they are the native RMSNormalization,
// RotaryEmbedding and Attention (onnxruntime >= 1.23). Shapes: B batch,
// S new tokens, P cached tokens, T = P + S, C model width, H / KVH query / key-value heads of hd, G = H /
// KVH query heads per key-value head, F the SwiGLU width, V the vocabulary. Norms, masking and softmax
// run in fp32 whatever the weights' precision.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/ggml_quants.h"
#include "export/onnx_export_internal.h"
#include "model/rope_scaling.h"

#define N_IN(...)                                                                                            \
    (const char *const[]){__VA_ARGS__}, (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))
#define ATTRS(...)                                                                                           \
    (const rt_onnx_attr[]){__VA_ARGS__},                                                                     \
        (int)(sizeof((const rt_onnx_attr[]){__VA_ARGS__}) / sizeof(rt_onnx_attr))
#define NO_ATTRS NULL, 0

static rt_onnx_attr attr_i(const char *name, int64_t v) {
    return (rt_onnx_attr){.name = name, .type = RT_ONNX_ATTR_INT, .i = v};
}
static rt_onnx_attr attr_f(const char *name, float v) {
    return (rt_onnx_attr){.name = name, .type = RT_ONNX_ATTR_FLOAT, .f = v};
}
static rt_onnx_attr attr_ints(const char *name, const int64_t *v, int n) {
    return (rt_onnx_attr){.name = name, .type = RT_ONNX_ATTR_INTS, .ints = v, .n_ints = n};
}

// One node with one output named after it.
static const char *op(rt_onnx_graph *g, const char *type, const char *name, const char *const *in, int n_in,
                      const rt_onnx_attr *at, int n_at) {
    rt_onnx_node(g, type, NULL, name, in, n_in, &name, 1, at, n_at);
    return name;
}

static const char *cast(rt_onnx_graph *g, const char *x, int to, const char *name) {
    return op(g, "Cast", name, N_IN(x), ATTRS(attr_i("to", to)));
}

// RMSNorm in the form onnxruntime fuses into SimplifiedLayerNormalization: Pow, ReduceMean, Add, Sqrt,
// Div, Mul. x [B, S, C] in the io type; the weight is fp32.
static const char *rmsnorm(rt_onnx_decoder *d, const char *x, const char *weight, const char *prefix) {
    rt_onnx_graph *g = d->g;
    const char *xf =
        d->io == RT_ONNX_FLOAT ? x : cast(g, x, RT_ONNX_FLOAT, rt_onnx_name(g, "%s/x_f32", prefix));
    if (d->opset >= 23) {
        const char *y = op(g, "RMSNormalization", rt_onnx_name(g, "%s/out", prefix), N_IN(xf, weight),
                           ATTRS(attr_i("axis", -1), attr_f("epsilon", (float)d->cfg->model.norm_eps)));
        return d->io == RT_ONNX_FLOAT ? y : cast(g, y, d->io, rt_onnx_name(g, "%s/out_io", prefix));
    }
    const char *sq = op(g, "Pow", rt_onnx_name(g, "%s/pow", prefix), N_IN(xf, "const.two"), NO_ATTRS);
    const char *mean = op(g, "ReduceMean", rt_onnx_name(g, "%s/mean", prefix), N_IN(sq, "const.axis_last"),
                          ATTRS(attr_i("keepdims", 1)));
    const char *var = op(g, "Add", rt_onnx_name(g, "%s/add_eps", prefix), N_IN(mean, "const.eps"), NO_ATTRS);
    const char *rms = op(g, "Sqrt", rt_onnx_name(g, "%s/sqrt", prefix), N_IN(var), NO_ATTRS);
    const char *xn = op(g, "Div", rt_onnx_name(g, "%s/div", prefix), N_IN(xf, rms), NO_ATTRS);
    const char *y = op(g, "Mul", rt_onnx_name(g, "%s/out", prefix), N_IN(xn, weight), NO_ATTRS);
    return d->io == RT_ONNX_FLOAT ? y : cast(g, y, d->io, rt_onnx_name(g, "%s/out_io", prefix));
}

// The weight of `name` [N, K] as the graph's form: transposed [K, N] in the io type for MatMul, or int4
// blocks for MatMulNBits.
static int add_linear_weight(rt_onnx_decoder *d, const rt_named_tensor *t, const char *as) {
    rt_onnx_graph *g = d->g;
    int64_t N = t->shape[0], K = t->shape[1];
    if (d->precision != RT_ONNX_INT4) {
        rt_onnx_init_matrix(g, rt_onnx_name(g, "%s.T", as), d->io, t->data, N, K, 1);
        return 0;
    }
    int64_t kb = (K + RT_ONNX_INT4_BLOCK - 1) / RT_ONNX_INT4_BLOCK;
    size_t packed_n = (size_t)N * (size_t)kb * (RT_ONNX_INT4_BLOCK / 2),
           zp_n = (size_t)N * (size_t)((kb + 1) / 2);
    uint8_t *packed = rt_malloc(packed_n, t->name, d->err), *zp = rt_malloc(zp_n, t->name, d->err);
    float *scales = rt_malloc((size_t)N * (size_t)kb * sizeof(float), t->name, d->err);
    if (!packed || !zp || !scales) {
        free(packed);
        free(zp);
        free(scales);
        return -1;
    }
    rt_onnx_quantize_int4(t->data, N, K, packed, scales, zp);
    int64_t pd[3] = {N, kb, RT_ONNX_INT4_BLOCK / 2}, sd[2] = {N, kb}, zd[2] = {N, (kb + 1) / 2};
    rt_onnx_init_bytes(g, rt_onnx_name(g, "%s.q4", as), RT_ONNX_UINT8, pd, 3, packed, packed_n);
    rt_onnx_init_bytes(g, rt_onnx_name(g, "%s.scales", as), RT_ONNX_FLOAT, sd, 2, scales,
                       (size_t)N * (size_t)kb * sizeof(float));
    rt_onnx_init_bytes(g, rt_onnx_name(g, "%s.zero_points", as), RT_ONNX_UINT8, zd, 2, zp, zp_n);
    return 0;
}

// y = x W^T for the weight added as `as` [N, K]: x [B, S, K] -> [B, S, N].
static const char *linear(rt_onnx_decoder *d, const char *x, const char *as, int64_t N, int64_t K,
                          const char *out) {
    rt_onnx_graph *g = d->g;
    if (d->precision != RT_ONNX_INT4)
        return op(g, "MatMul", out, N_IN(x, rt_onnx_name(g, "%s.T", as)), NO_ATTRS);
    const char *in[4] = {x, rt_onnx_name(g, "%s.q4", as), rt_onnx_name(g, "%s.scales", as),
                         rt_onnx_name(g, "%s.zero_points", as)};
    rt_onnx_attr at[5] = {attr_i("K", K), attr_i("N", N), attr_i("bits", 4),
                          attr_i("block_size", RT_ONNX_INT4_BLOCK), attr_i("accuracy_level", 0)};
    rt_onnx_node(g, "MatMulNBits", "com.microsoft", out, in, 4, &out, 1, at, 5);
    return out;
}

// [B, S, heads * hd] -> [B, heads, S, hd]
static const char *split_heads(rt_onnx_decoder *d, const char *x, const char *shape, const char *prefix) {
    rt_onnx_graph *g = d->g;
    static const int64_t perm[4] = {0, 2, 1, 3};
    const char *r = op(g, "Reshape", rt_onnx_name(g, "%s/reshape", prefix), N_IN(x, shape), NO_ATTRS);
    return op(g, "Transpose", rt_onnx_name(g, "%s/heads", prefix), N_IN(r),
              ATTRS(attr_ints("perm", perm, 4)));
}

// Rotate-half RoPE: x cos + rotate_half(x) sin, rotate_half(x) = (-x2, x1). x [B, heads, S, hd].
static const char *rope(rt_onnx_decoder *d, const char *x, const char *prefix) {
    rt_onnx_graph *g = d->g;
    if (d->opset >= 23) // interleaved 0: the halves (i, i + hd/2), retort's convention
        return op(g, "RotaryEmbedding", rt_onnx_name(g, "%s/out", prefix),
                  N_IN(x, "rope.cos_cache", "rope.sin_cache", "position_ids"),
                  ATTRS(attr_i("interleaved", 0)));
    const char *half[2] = {rt_onnx_name(g, "%s/x1", prefix), rt_onnx_name(g, "%s/x2", prefix)};
    rt_onnx_node(g, "Split", NULL, rt_onnx_name(g, "%s/split", prefix), N_IN(x), half, 2,
                 ATTRS(attr_i("axis", -1), attr_i("num_outputs", 2)));
    const char *neg = op(g, "Neg", rt_onnx_name(g, "%s/neg_x2", prefix), N_IN(half[1]), NO_ATTRS);
    const char *rot = op(g, "Concat", rt_onnx_name(g, "%s/rotate_half", prefix), N_IN(neg, half[0]),
                         ATTRS(attr_i("axis", -1)));
    const char *a = op(g, "Mul", rt_onnx_name(g, "%s/x_cos", prefix), N_IN(x, "rope/cos"), NO_ATTRS);
    const char *b = op(g, "Mul", rt_onnx_name(g, "%s/rot_sin", prefix), N_IN(rot, "rope/sin"), NO_ATTRS);
    return op(g, "Add", rt_onnx_name(g, "%s/out", prefix), N_IN(a, b), NO_ATTRS);
}

// The inputs' shared values: RoPE cos/sin at position_ids [B, 1, S, hd] ("rope/cos", "rope/sin") and the
// attention mask [B, 1, G*S, T] ("mask/allowed": causal over cache slots and not padding).
static void shared_values(rt_onnx_decoder *d) {
    rt_onnx_graph *g = d->g;
    for (int k = 0; k < 2 && d->opset < 23; k++) {
        const char *cache = k ? "rope.sin_cache" : "rope.cos_cache";
        const char *at = op(g, "Gather", k ? "rope/sin_at" : "rope/cos_at", N_IN(cache, "position_ids"),
                            ATTRS(attr_i("axis", 0)));
        op(g, "Unsqueeze", k ? "rope/sin" : "rope/cos", N_IN(at, "const.axis_1"), NO_ATTRS);
    }
    op(g, "Shape", "mask/am_shape", N_IN("attention_mask"), NO_ATTRS);
    op(g, "Gather", "mask/total", N_IN("mask/am_shape", "const.one_scalar"), ATTRS(attr_i("axis", 0)));
    op(g, "Shape", "mask/ids_shape", N_IN("input_ids"), NO_ATTRS);
    op(g, "Gather", "mask/seq", N_IN("mask/ids_shape", "const.one_scalar"), ATTRS(attr_i("axis", 0)));
    op(g, "Sub", "mask/past", N_IN("mask/total", "mask/seq"), NO_ATTRS);
    op(g, "Range", "mask/key_slot", N_IN("const.zero_scalar", "mask/total", "const.one_scalar"), NO_ATTRS);
    op(g, "Range", "mask/query_slot", N_IN("mask/past", "mask/total", "const.one_scalar"), NO_ATTRS);
    op(g, "Unsqueeze", "mask/key_row", N_IN("mask/key_slot", "const.axis_0"), NO_ATTRS);     // [1, T]
    op(g, "Unsqueeze", "mask/query_col", N_IN("mask/query_slot", "const.axis_1"), NO_ATTRS); // [S, 1]
    op(g, "LessOrEqual", "mask/causal", N_IN("mask/key_row", "mask/query_col"), NO_ATTRS);   // [S, T]
    cast(g, "attention_mask", RT_ONNX_BOOL, "mask/present");
    op(g, "Unsqueeze", "mask/present_4d", N_IN("mask/present", "const.axes_1_2"), NO_ATTRS); // [B, 1, 1, T]
    const char *allowed = op(g, "And", "mask/allowed_s", N_IN("mask/causal", "mask/present_4d"), NO_ATTRS);
    if (d->opset >=
        23) { // Attention's additive mask [B, 1, S, T] in the io type: 0, or the lowest finite value
        op(g, "Where", "mask/bias", N_IN(allowed, "const.zero_io", "const.masked_io"), NO_ATTRS);
        return;
    }
    if (d->G > 1) // rows g*S + s of the grouped scores are query s of head g: the mask repeats G times
        op(g, "Tile", "mask/allowed", N_IN(allowed, "const.tile_groups"), NO_ATTRS);
    else
        op(g, "Identity", "mask/allowed", N_IN(allowed), NO_ATTRS);
}

// A scalar in the io type.
static void const_io(rt_onnx_decoder *d, const char *name, float v) {
    if (d->io != RT_ONNX_FLOAT16) {
        rt_onnx_const_f32(d->g, name, &v, 1, 1);
        return;
    }
    uint16_t *h = malloc(2);
    if (h) *h = rt_fp32_to_fp16(v);
    rt_onnx_init_bytes(d->g, name, RT_ONNX_FLOAT16, NULL, 0, h, 2);
}

static void constants(rt_onnx_decoder *d) {
    rt_onnx_graph *g = d->g;
    const rt_config *c = d->cfg;
    int64_t one = 1, zero = 0, last = -1, ax1 = 1, ax12[2] = {1, 2}, ax0 = 0;
    rt_onnx_const_i64(g, "const.one_scalar", &one, 1, 1);
    rt_onnx_const_i64(g, "const.zero_scalar", &zero, 1, 1);
    rt_onnx_const_i64(g, "const.axis_0", &ax0, 1, 0);
    rt_onnx_const_i64(g, "const.axis_1", &ax1, 1, 0);
    rt_onnx_const_i64(g, "const.axes_1_2", ax12, 2, 0);
    int64_t q_shape[4] = {0, 0, d->H, d->hd}, kv_shape[4] = {0, 0, d->KVH, d->hd};
    int64_t merged[3] = {0, 0, (int64_t)d->H * d->hd};
    rt_onnx_const_i64(g, "shape.q_heads", q_shape, 4, 0);
    rt_onnx_const_i64(g, "shape.kv_heads", kv_shape, 4, 0);
    rt_onnx_const_i64(g, "shape.merged", merged, 3, 0);
    if (d->opset >= 23) {
        // a finite "minus infinity" the scores can be added to without overflowing in the io type
        const_io(d, "const.zero_io", 0.0f);
        const_io(d, "const.masked_io", d->io == RT_ONNX_FLOAT16 ? -32768.0f : -1.0e30f);
        return;
    }
    rt_onnx_const_i64(g, "const.axis_last", &last, 1, 0);
    int64_t tile[4] = {1, 1, d->G, 1};
    if (d->G > 1) rt_onnx_const_i64(g, "const.tile_groups", tile, 4, 0);
    int64_t grouped[4] = {0, d->KVH, -1, d->hd}, ungrouped[4] = {0, d->H, -1, d->hd};
    rt_onnx_const_i64(g, "shape.grouped", grouped, 4, 0);
    rt_onnx_const_i64(g, "shape.ungrouped", ungrouped, 4, 0);
    float two = 2.0f, eps = (float)c->model.norm_eps, lowest = -3.4028234663852886e38f;
    rt_onnx_const_f32(g, "const.two", &two, 1, 1);
    rt_onnx_const_f32(g, "const.eps", &eps, 1, 1);
    rt_onnx_const_f32(g, "const.masked", &lowest, 1, 1);
    const_io(d, "const.attn_scale", (float)(1.0 / sqrt((double)d->hd)));
}

// cos and sin caches in the io type, the angle of pair (i, i + hd/2) at position t being t times its inverse
// frequency theta^(-2i/hd) after model.rope_scaling (model/rope_scaling.h), in double as the model's own
// tables are: [T_max, hd] with each half of a row repeated for the opset-21 graph, [T_max, hd/2] for
// RotaryEmbedding.
static int rope_caches(rt_onnx_decoder *d) {
    rt_onnx_graph *g = d->g;
    int T = d->cfg->model.max_seq_len, half = d->hd / 2, hd = d->opset >= 23 ? half : d->hd;
    size_t n = (size_t)T * (size_t)hd, elem = d->io == RT_ONNX_FLOAT16 ? 2 : 4;
    rt_rope_scaling scaling = rt_rope_scaling_from_config(d->cfg);
    for (int k = 0; k < 2; k++) {
        void *buf = rt_malloc(n * elem, "the RoPE caches", d->err);
        if (!buf) return -1;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < hd; i++) {
                double freq = rt_rope_inv_freq(d->cfg->model.rope_theta, i % half, d->hd, &scaling);
                float v = (float)(k ? sin((double)t * freq) : cos((double)t * freq));
                size_t at = (size_t)t * hd + (size_t)i;
                if (elem == 2)
                    ((uint16_t *)buf)[at] = rt_fp32_to_fp16(v);
                else
                    ((float *)buf)[at] = v;
            }
        int64_t dims[2] = {T, hd};
        rt_onnx_init_bytes(g, k ? "rope.sin_cache" : "rope.cos_cache", d->io, dims, 2, buf, n * elem);
    }
    return 0;
}

static const rt_named_tensor *weight(rt_onnx_decoder *d, const char *name, int64_t rows, int64_t cols) {
    const rt_named_tensor *t = rt_named_tensor_find(d->weights, d->n_weights, name);
    if (!t) {
        rt_fail(d->err, "the checkpoint has no tensor %s", name);
        return NULL;
    }
    int ok = cols ? t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols
                  : t->ndim == 1 && t->shape[0] == rows;
    if (!ok) {
        char got[64], want[64];
        if (t->ndim == 2)
            snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
        else
            snprintf(got, sizeof got, "%d dims, [%lld, ...]", t->ndim, (long long)t->shape[0]);
        if (cols)
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)cols);
        else
            snprintf(want, sizeof want, "[%lld]", (long long)rows);
        rt_fail(d->err, "%s has shape %s, expected %s from the checkpoint's model config", name, got, want);
        return NULL;
    }
    d->n_used++;
    return t;
}

static int norm_weight(rt_onnx_decoder *d, const char *name, int64_t C) {
    const rt_named_tensor *t = weight(d, name, C, 0);
    if (!t) return -1;
    float *copy = rt_malloc((size_t)C * sizeof(float), name, d->err);
    if (!copy) return -1;
    memcpy(copy, t->data, (size_t)C * sizeof(float));
    int64_t dims[1] = {C};
    rt_onnx_init_bytes(d->g, name, RT_ONNX_FLOAT, dims, 1, copy, (size_t)C * sizeof(float));
    return 0;
}

// Attention from basic ops: present = past ++ new, then the queries grouped by their key-value head,
// [B, KVH, G*S, hd] against keys [B, KVH, hd, T] (no copy of K or V per query head), masked, softmax in
// fp32. q [B, H, S, hd], k and v [B, KVH, S, hd]; returns [B, H, S, hd].
static const char *attention21(rt_onnx_decoder *d, int l, const char *q, const char *k, const char *v,
                               const char *pk, const char *pv) {
    rt_onnx_graph *g = d->g;
    static const int64_t to_scores[4] = {0, 1, 3, 2};
#define V(suffix) rt_onnx_name(g, "blk.%d/" suffix, l)
    op(g, "Concat", pk, N_IN(rt_onnx_name(g, "past_key_values.%d.key", l), k), ATTRS(attr_i("axis", 2)));
    op(g, "Concat", pv, N_IN(rt_onnx_name(g, "past_key_values.%d.value", l), v), ATTRS(attr_i("axis", 2)));
    const char *qs = op(g, "Mul", V("attn/q_scaled"), N_IN(q, "const.attn_scale"), NO_ATTRS);
    const char *qg = op(g, "Reshape", V("attn/q_grouped"), N_IN(qs, "shape.grouped"), NO_ATTRS);
    const char *kt = op(g, "Transpose", V("attn/k_t"), N_IN(pk), ATTRS(attr_ints("perm", to_scores, 4)));
    const char *sc = op(g, "MatMul", V("attn/scores"), N_IN(qg, kt), NO_ATTRS); // [B, KVH, G*S, T]
    if (d->io != RT_ONNX_FLOAT) sc = cast(g, sc, RT_ONNX_FLOAT, V("attn/scores_f32"));
    sc = op(g, "Where", V("attn/scores_masked"), N_IN("mask/allowed", sc, "const.masked"), NO_ATTRS);
    const char *p = op(g, "Softmax", V("attn/probs"), N_IN(sc), ATTRS(attr_i("axis", -1)));
    if (d->io != RT_ONNX_FLOAT) p = cast(g, p, d->io, V("attn/probs_io"));
    const char *o = op(g, "MatMul", V("attn/context"), N_IN(p, pv), NO_ATTRS); // [B, KVH, G*S, hd]
    return op(g, "Reshape", V("attn/context_heads"), N_IN(o, "shape.ungrouped"), NO_ATTRS);
#undef V
}

// Attention-23 with its own KV cache inputs and outputs, grouped-query heads and the additive mask
// [B, 1, S, T]; softmax in fp32. Same shapes as attention21.
static const char *attention23(rt_onnx_decoder *d, int l, const char *q, const char *k, const char *v,
                               const char *pk, const char *pv) {
    rt_onnx_graph *g = d->g;
    const char *in[6] = {q,
                         k,
                         v,
                         "mask/bias",
                         rt_onnx_name(g, "past_key_values.%d.key", l),
                         rt_onnx_name(g, "past_key_values.%d.value", l)};
    const char *y = rt_onnx_name(g, "blk.%d/attn/context_heads", l), *out[3] = {y, pk, pv};
    rt_onnx_node(g, "Attention", NULL, rt_onnx_name(g, "blk.%d/attn/attention", l), in, 6, out, 3,
                 ATTRS(attr_i("is_causal", 0), attr_f("scale", (float)(1.0 / sqrt((double)d->hd))),
                       attr_i("softmax_precision", RT_ONNX_FLOAT)));
    return y;
}

// y + bias for the q/k/v projection `part` of layer l with model.attn_bias (y itself without): the bias
// [1, n] in the io type, broadcast over [B, S, n]. NULL when the checkpoint lacks the bias.
static const char *add_bias(rt_onnx_decoder *d, int l, const char *part, const char *y, int64_t n) {
    if (!d->cfg->model.attn_bias) return y;
    rt_onnx_graph *g = d->g;
    const char *name = rt_onnx_name(g, "blk.%d.%s.bias", l, part);
    const rt_named_tensor *t = weight(d, name, n, 0);
    if (!t) return NULL;
    rt_onnx_init_matrix(g, name, d->io, t->data, 1, n, 0);
    return op(g, "Add", rt_onnx_name(g, "blk.%d/attn/%s_bias", l, part), N_IN(y, name), NO_ATTRS);
}

static const char *block(rt_onnx_decoder *d, int l, const char *x) {
    rt_onnx_graph *g = d->g;
    const rt_config *c = d->cfg;
    int64_t C = c->model.dim, F = c->model.ffn_dim, QD = (int64_t)d->H * d->hd, KD = (int64_t)d->KVH * d->hd;
    static const int64_t perm[4] = {0, 2, 1, 3};
    char w[64];
    static const char *const names[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                         "ffn_gate", "ffn_up", "ffn_down"};
    const int64_t rows[7] = {QD, KD, KD, C, F, F, C}, cols[7] = {C, C, C, QD, C, C, F};
    for (int k = 0; k < 7; k++) {
        snprintf(w, sizeof w, "blk.%d.%s.weight", l, names[k]);
        const rt_named_tensor *t = weight(d, w, rows[k], cols[k]);
        if (!t || add_linear_weight(d, t, w)) return NULL;
    }
    for (int k = 0; k < 2; k++) {
        snprintf(w, sizeof w, "blk.%d.%s.weight", l, k ? "ffn_norm" : "attn_norm");
        if (norm_weight(d, w, C)) return NULL;
    }
#define W(part)   rt_onnx_name(g, "blk.%d." part ".weight", l)
#define V(suffix) rt_onnx_name(g, "blk.%d/" suffix, l)
    const char *h = rmsnorm(d, x, W("attn_norm"), V("attn_norm"));
    const char *q = add_bias(d, l, "attn_q", linear(d, h, W("attn_q"), QD, C, V("attn/q")), QD);
    const char *k = add_bias(d, l, "attn_k", linear(d, h, W("attn_k"), KD, C, V("attn/k")), KD);
    const char *v = add_bias(d, l, "attn_v", linear(d, h, W("attn_v"), KD, C, V("attn/v")), KD);
    if (!q || !k || !v) return NULL;
    q = rope(d, split_heads(d, q, "shape.q_heads", V("attn/q")), V("attn/q_rope"));  // [B, H, S, hd]
    k = rope(d, split_heads(d, k, "shape.kv_heads", V("attn/k")), V("attn/k_rope")); // [B, KVH, S, hd]
    v = split_heads(d, v, "shape.kv_heads", V("attn/v"));                            // [B, KVH, S, hd]
    const char *pk = rt_onnx_name(g, "present.%d.key", l), *pv = rt_onnx_name(g, "present.%d.value", l);
    const char *o = d->opset >= 23 ? attention23(d, l, q, k, v, pk, pv) : attention21(d, l, q, k, v, pk, pv);
    o = op(g, "Transpose", V("attn/context_t"), N_IN(o), ATTRS(attr_ints("perm", perm, 4)));
    o = op(g, "Reshape", V("attn/context_merged"), N_IN(o, "shape.merged"), NO_ATTRS); // [B, S, H*hd]
    o = linear(d, o, W("attn_output"), C, QD, V("attn/out"));
    const char *x2 = op(g, "Add", V("attn_residual"), N_IN(x, o), NO_ATTRS);
    h = rmsnorm(d, x2, W("ffn_norm"), V("ffn_norm"));
    const char *gate = linear(d, h, W("ffn_gate"), F, C, V("ffn/gate"));
    const char *up = linear(d, h, W("ffn_up"), F, C, V("ffn/up"));
    const char *sig = op(g, "Sigmoid", V("ffn/sigmoid"), N_IN(gate), NO_ATTRS);
    const char *silu = op(g, "Mul", V("ffn/silu"), N_IN(gate, sig), NO_ATTRS);
    const char *act = op(g, "Mul", V("ffn/swiglu"), N_IN(silu, up), NO_ATTRS);
    const char *down = linear(d, act, W("ffn_down"), C, F, V("ffn/down"));
    return op(g, "Add", V("ffn_residual"), N_IN(x2, down), NO_ATTRS);
#undef W
#undef V
}

static void io_values(rt_onnx_decoder *d) {
    rt_onnx_graph *g = d->g;
    const rt_onnx_dim bs = {.param = "batch_size"}, seq = {.param = "sequence_length"},
                      total = {.param = "total_sequence_length"}, past = {.param = "past_sequence_length"},
                      kvh = {.value = d->KVH}, hd = {.value = d->hd},
                      vocab = {.value = d->cfg->model.vocab_size};
    rt_onnx_input(g, "input_ids", RT_ONNX_INT64, (rt_onnx_dim[]){bs, seq}, 2);
    rt_onnx_input(g, "attention_mask", RT_ONNX_INT64, (rt_onnx_dim[]){bs, total}, 2);
    rt_onnx_input(g, "position_ids", RT_ONNX_INT64, (rt_onnx_dim[]){bs, seq}, 2);
    for (int l = 0; l < d->L; l++)
        for (int k = 0; k < 2; k++)
            rt_onnx_input(g, rt_onnx_name(g, "past_key_values.%d.%s", l, k ? "value" : "key"), d->io,
                          (rt_onnx_dim[]){bs, kvh, past, hd}, 4);
    rt_onnx_output(g, "logits", d->io, (rt_onnx_dim[]){bs, seq, vocab}, 3);
    for (int l = 0; l < d->L; l++)
        for (int k = 0; k < 2; k++)
            rt_onnx_output(g, rt_onnx_name(g, "present.%d.%s", l, k ? "value" : "key"), d->io,
                           (rt_onnx_dim[]){bs, kvh, total, hd}, 4);
}

int rt_onnx_build_decoder(rt_onnx_decoder *d) {
    rt_onnx_graph *g = d->g;
    const rt_config *c = d->cfg;
    int64_t V = c->model.vocab_size, C = c->model.dim;
    d->H = c->model.n_heads;
    d->KVH = c->model.n_kv_heads;
    d->G = d->H / d->KVH;
    d->hd = rt_config_head_dim(c);
    d->L = c->model.n_layers;
    d->io = d->precision == RT_ONNX_FP16 ? RT_ONNX_FLOAT16 : RT_ONNX_FLOAT;
    io_values(d);
    constants(d);
    if (rope_caches(d)) return -1;
    // the embedding: in the io type, or fp16 for int4 (a lookup table, not a matmul) cast to fp32
    const rt_named_tensor *emb = weight(d, "token_embd.weight", V, C);
    if (!emb) return -1;
    int emb_type = d->precision == RT_ONNX_FP32 ? RT_ONNX_FLOAT : RT_ONNX_FLOAT16;
    rt_onnx_init_matrix(g, "token_embd.weight", emb_type, emb->data, V, C, 0);
    const char *x =
        op(g, "Gather", "embed", N_IN("token_embd.weight", "input_ids"), ATTRS(attr_i("axis", 0)));
    if (emb_type != d->io) x = cast(g, x, d->io, "embed_io");
    shared_values(d);
    for (int l = 0; l < d->L && x; l++) x = block(d, l, x);
    if (!x || norm_weight(d, "output_norm.weight", C)) return -1;
    x = rmsnorm(d, x, "output_norm.weight", "output_norm");
    const rt_named_tensor *head = rt_named_tensor_find(d->weights, d->n_weights, "output.weight");
    if (!head && !c->model.tie_embeddings)
        return rt_fail(d->err, "the checkpoint has no tensor output.weight");
    if (head && !(head = weight(d, "output.weight", V, C))) return -1;
    if (!head && d->precision != RT_ONNX_INT4) { // tied: the embedding transposed once, at session start
        static const int64_t t[2] = {1, 0};
        op(g, "Transpose", "output.weight.T", N_IN("token_embd.weight"), ATTRS(attr_ints("perm", t, 2)));
        if (emb_type != d->io) cast(g, "output.weight.T", d->io, "output.weight.T_io");
        op(g, "MatMul", "logits", N_IN(x, emb_type != d->io ? "output.weight.T_io" : "output.weight.T"),
           NO_ATTRS);
    } else {
        rt_named_tensor tied;
        if (!head) { // int4 with tied embeddings: the head is its own quantized copy
            tied = *emb;
            snprintf(tied.name, sizeof tied.name, "output.weight");
            head = &tied;
        }
        if (add_linear_weight(d, head, "output.weight")) return -1;
        linear(d, x, "output.weight", V, C, "logits");
    }
    if (g->oom) return rt_fail(d->err, "out of memory while building the ONNX graph");
    if (d->n_used != d->n_weights) // nothing is dropped silently
        return rt_fail(d->err, "the checkpoint holds %d tensors that are not part of a llama model",
                       d->n_weights - d->n_used);
    return 0;
}
