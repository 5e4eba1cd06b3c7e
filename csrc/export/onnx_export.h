// A retort model as an ONNX folder that onnxruntime and onnxruntime-genai load (docs/export.md, ONNX): a
// decoder from input_ids to logits with a KV cache (past_key_values.N.key/value in, present.N.key/value
// out, the names onnxruntime-genai expects), standard ONNX ops at IR 10 / opset 21 (onnxruntime >= 1.18)
// or IR 11 / opset 23, weights in fp32 or fp16, or int4 through com.microsoft MatMulNBits; then
// genai_config.json and the tokenizer files.
#ifndef RT_ONNX_EXPORT_H
#define RT_ONNX_EXPORT_H

#include <stdint.h>

#include "train/checkpoint.h"
#include "config/config.h"

typedef enum rt_onnx_precision { RT_ONNX_FP32 = 0, RT_ONNX_FP16 = 1, RT_ONNX_INT4 = 2 } rt_onnx_precision;

// "fp32", "fp16", "int4"; -1 when unknown.
int rt_onnx_precision_from_name(const char *name);
const char *rt_onnx_precision_name(int precision);

#define RT_ONNX_INT4_BLOCK 32 // MatMulNBits block_size: onnxruntime-genai's default

typedef struct rt_onnx_export_opts {
    int precision;      // rt_onnx_precision
    int external_data;  // weights in model.onnx.data even when they would fit inline
    int opset;          // 21 (IR 10, onnxruntime >= 1.18) or 23 (IR 11, native RMSNormalization,
                        // RotaryEmbedding and Attention, onnxruntime >= 1.23); 0 means 21
    const char *source; // the checkpoint, recorded in the model's metadata
    // the model's tokenizer (rt_ckpt_tokenizer) and its record; NULL: the byte tokenizer. A real one's
    // tokenizer.json is copied as it is (one that came from a GGUF file is written: tokenizer_json_write.h)
    const struct rt_tokenizer *tok;
    const rt_tok_source *tok_src;
} rt_onnx_export_opts;

typedef struct rt_onnx_export_report {
    int n_nodes, n_initializers;
    uint64_t model_bytes, data_bytes; // model.onnx, model.onnx.data (0 when inline)
    uint64_t folder_bytes;            // every file written
} rt_onnx_export_report;

// Builds the decoder from weights (row-major fp32, GGUF llama names) and writes the folder out_dir. The
// files are written into a fresh sibling folder first and swapped in whole: a reader sees the old export
// or the new one, never a mix. An existing out_dir is replaced only if it holds nothing but such files.
int rt_onnx_export_model(const rt_named_tensor *weights, int n, const rt_config *cfg,
                         const rt_onnx_export_opts *opts, const char *out_dir, rt_onnx_export_report *rep,
                         rt_error *err);

// MatMulNBits' 4-bit form of W [N, K] (row-major), asymmetric per block of RT_ONNX_INT4_BLOCK along K:
// packed [N, k_blocks, 16] (element 2i in the low nibble), scales [N, k_blocks], zero points packed
// [N, (k_blocks + 1) / 2]. The last block of a row is zero-padded when K is not a multiple.
void rt_onnx_quantize_int4(const float *w, int64_t N, int64_t K, uint8_t *packed, float *scales,
                           uint8_t *zero_points);

#endif
