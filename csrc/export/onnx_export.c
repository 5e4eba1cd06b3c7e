// The ONNX export folder (onnx_export.h): model.onnx (+ model.onnx.data), genai_config.json and the
// Hugging Face tokenizer files onnxruntime-genai's tokenizer reads, written into a fresh folder and swapped
// in whole.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/onnx_export_internal.h"
#include "data/tokenizer.h"
#include "export/export_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "base/buf.h"
#include "base/files.h"
#include "export/export_folder.h"

static const char *const precision_names[3] = {"fp32", "fp16", "int4"};

int rt_onnx_precision_from_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, precision_names[i]) == 0) return i;
    return -1;
}

const char *rt_onnx_precision_name(int precision) {
    return precision >= 0 && precision < 3 ? precision_names[precision] : "?";
}

void rt_onnx_quantize_int4(const float *w, int64_t N, int64_t K, uint8_t *packed, float *scales,
                           uint8_t *zero_points) {
    const int BS = RT_ONNX_INT4_BLOCK;
    int64_t kb = (K + BS - 1) / BS, zp_row = (kb + 1) / 2;
    memset(zero_points, 0, (size_t)(N * zp_row));
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < kb; b++) {
            const float *x = w + n * K + b * BS;
            int64_t len = K - b * BS < BS ? K - b * BS : BS;
            // the range always holds 0, so zero-padding and exact zeros are representable
            float lo = 0.0f, hi = 0.0f;
            for (int64_t i = 0; i < len; i++) {
                lo = x[i] < lo ? x[i] : lo;
                hi = x[i] > hi ? x[i] : hi;
            }
            float scale = (hi - lo) / 15.0f;
            int zp = scale > 0 ? (int)lrintf(-lo / scale) : 8;
            zp = zp < 0 ? 0 : zp > 15 ? 15 : zp;
            if (scale <= 0) scale = 1.0f; // an all-zero block: every code is the zero point
            uint8_t *out = packed + (n * kb + b) * (BS / 2);
            for (int i = 0; i < BS; i += 2) {
                int q[2];
                for (int j = 0; j < 2; j++) {
                    float v = i + j < len ? x[i + j] : 0.0f;
                    int c = (int)lrintf(v / scale) + zp;
                    q[j] = c < 0 ? 0 : c > 15 ? 15 : c;
                }
                out[i / 2] = (uint8_t)(q[0] | (q[1] << 4));
            }
            scales[n * kb + b] = scale;
            zero_points[n * zp_row + b / 2] |= (uint8_t)(zp << ((b & 1) * 4));
        }
}

// ---------------------------------------------------------------------------------------------------
// text files

static void genai_config_json(rt_buf *b, const rt_config *c, const rt_tokenizer *tok) {
    const int hd = rt_config_head_dim(c);
    int bos = RT_TOK_BOS, eos = RT_TOK_EOS, pad = RT_TOK_PAD;
    if (tok) rt_export_special_ids(tok, &bos, &eos, &pad);
    rt_buf_printf(
        b,
        "{\n  \"model\": {\n    \"type\": \"llama\",\n    \"bos_token_id\": %d,\n    \"eos_token_id\": %d,\n"
        "    \"pad_token_id\": %d,\n    \"context_length\": %d,\n    \"vocab_size\": %d,\n",
        bos, eos, pad, c->model.max_seq_len, c->model.vocab_size);
    rt_buf_printf(
        b, "    \"decoder\": {\n      \"filename\": \"model.onnx\",\n      \"session_options\": {\"log_id\": "
           "\"onnxruntime-genai\", \"provider_options\": []},\n");
    rt_buf_printf(b,
                  "      \"head_size\": %d,\n      \"hidden_size\": %d,\n      \"num_attention_heads\": %d,\n"
                  "      \"num_hidden_layers\": %d,\n      \"num_key_value_heads\": %d,\n",
                  hd, c->model.dim, c->model.n_heads, c->model.n_layers, c->model.n_kv_heads);
    rt_buf_printf(b,
                  "      \"inputs\": {\"input_ids\": \"input_ids\", \"attention_mask\": \"attention_mask\", "
                  "\"position_ids\": \"position_ids\", \"past_key_names\": \"past_key_values.%%d.key\", "
                  "\"past_value_names\": \"past_key_values.%%d.value\"},\n");
    rt_buf_printf(b,
                  "      \"outputs\": {\"logits\": \"logits\", \"present_key_names\": \"present.%%d.key\", "
                  "\"present_value_names\": \"present.%%d.value\"}\n    }\n  },\n");
    // past_present_share_buffer stays false: the graph concatenates past and new keys (no
    // GroupQueryAttention)
    rt_buf_printf(
        b,
        "  \"search\": {\"max_length\": %d, \"min_length\": 0, \"do_sample\": false, \"num_beams\": 1, "
        "\"num_return_sequences\": 1, \"top_k\": 50, \"top_p\": 1.0, \"temperature\": 1.0, ",
        c->model.max_seq_len);
    rt_buf_printf(
        b,
        "\"repetition_penalty\": 1.0, \"length_penalty\": 1.0, \"no_repeat_ngram_size\": 0, "
        "\"diversity_penalty\": 0.0, \"early_stopping\": true, \"past_present_share_buffer\": false}\n}\n");
}

// ---------------------------------------------------------------------------------------------------
// the folder

static const char *const folder_files[] = {
    "model.onnx",     "model.onnx.data",       "genai_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
#define N_FOLDER_FILES ((int)(sizeof folder_files / sizeof *folder_files))

static int write_folder(const rt_named_tensor *weights, int n, const rt_config *cfg,
                        const rt_onnx_export_opts *opts, const char *dir, rt_onnx_export_report *rep,
                        rt_error *err) {
    rt_onnx_graph g;
    rt_onnx_graph_init(&g);
    int opset = opts->opset ? opts->opset : 21;
    rt_onnx_decoder d = {.g = &g,
                         .cfg = cfg,
                         .weights = weights,
                         .n_weights = n,
                         .precision = opts->precision,
                         .opset = opset,
                         .err = err};
    int rc = rt_onnx_build_decoder(&d);
    const rt_tok_source *ts = opts->tok && rt_export_has_real_tokenizer(opts->tok_src) ? opts->tok_src : NULL;
    char tok_meta[96];
    if (ts)
        snprintf(tok_meta, sizeof tok_meta, "%s: tokenizer.json, hash %s", ts->type, ts->hash);
    else
        snprintf(tok_meta, sizeof tok_meta, "bytes: ids 0-255 are the bytes, 256 <s>, 257 </s>, 258 <pad>");
    const char *meta[] = {"retort.source",    opts->source ? opts->source : "",
                          "retort.precision", rt_onnx_precision_name(opts->precision),
                          "retort.tokenizer", tok_meta};
    rt_onnx_model_info info = {.ir_version = opset >= 23 ? 11 : 10,
                               .opset = opset,
                               .ms_opset = opts->precision == RT_ONNX_INT4,
                               .producer_version = RT_VERSION,
                               .doc = "a Llama decoder exported by retort",
                               .meta = meta,
                               .n_meta = 3};
    rt_onnx_write_report wr;
    if (rc == 0)
        rc = rt_onnx_write(&g, &info, dir, "model.onnx", "model.onnx.data",
                           opts->external_data ? RT_ONNX_DATA_EXTERNAL : RT_ONNX_DATA_AUTO, &wr, err);
    if (rc == 0) {
        rep->n_nodes = g.n_nodes;
        rep->n_initializers = g.n_inits;
        rep->model_bytes = wr.model_bytes;
        rep->data_bytes = wr.data_bytes;
        rep->folder_bytes = wr.model_bytes + wr.data_bytes;
    }
    rt_onnx_graph_free(&g);
    if (rc == 0)
        rc = rt_export_tokenizer_folder_files(dir, ts ? opts->tok : NULL, ts, cfg->model.vocab_size,
                                              cfg->model.max_seq_len, &rep->folder_bytes, err);
    rt_buf b = {0};
    genai_config_json(&b, cfg, ts ? opts->tok : NULL);
    if (rc == 0) rc = rt_export_text_file(dir, "genai_config.json", &b, &rep->folder_bytes, err);
    rt_buf_free(&b);
    return rc;
}

typedef struct folder_job {
    const rt_named_tensor *weights;
    int n;
    const rt_config *cfg;
    const rt_onnx_export_opts *opts;
    rt_onnx_export_report *rep;
} folder_job;

static int write_job(const char *dir, void *user, rt_error *err) {
    const folder_job *j = user;
    return write_folder(j->weights, j->n, j->cfg, j->opts, dir, j->rep, err);
}

int rt_onnx_export_model(const rt_named_tensor *weights, int n, const rt_config *cfg,
                         const rt_onnx_export_opts *opts, const char *out_dir, rt_onnx_export_report *rep,
                         rt_error *err) {
    memset(rep, 0, sizeof *rep);
    const rt_config *c = cfg;
    if (opts->opset != 0 && opts->opset != 21 && opts->opset != 23)
        return rt_fail(err, "opset %d: expected 21 or 23", opts->opset);
    if (c->model.n_heads <= 0 || c->model.n_kv_heads <= 0 || c->model.n_heads % c->model.n_kv_heads ||
        (c->model.head_dim == 0 && c->model.dim % c->model.n_heads) || rt_config_head_dim(c) % 2)
        return rt_fail(err, "the model's heads (dim %d, %d heads of %d, %d kv heads) do not split evenly",
                       c->model.dim, c->model.n_heads, rt_config_head_dim(c), c->model.n_kv_heads);
    folder_job job = {weights, n, cfg, opts, rep};
    rt_export_folder f = {"ONNX", folder_files, N_FOLDER_FILES, write_job, &job};
    return rt_export_folder_write(out_dir, &f, err);
}
