// The tokenizer files of a folder export (ONNX for onnxruntime-genai, Hugging Face for transformers) when
// the model has a real tokenizer (docs/export.md, Tokenizer): its tokenizer.json as the checkpoint stores it,
// a tokenizer_config.json and a special_tokens_map.json naming its special tokens.
#ifndef RT_EXPORT_TOKENIZER_H
#define RT_EXPORT_TOKENIZER_H

#include <stdint.h>

#include "base/common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_source.h"

// Whether src (may be NULL) is a real tokenizer, whose files rt_export_tokenizer_files writes.
int rt_export_has_real_tokenizer(const rt_tok_source *src);
// Writes tokenizer.json, tokenizer_config.json (model_max_length = max_len) and special_tokens_map.json into
// dir, adding their bytes to *total (may be NULL). A tokenizer that came from a GGUF file gets the
// tokenizer.json tokenizer_json_write.h writes.
int rt_export_tokenizer_files(const char *dir, const rt_tokenizer *tok, const rt_tok_source *src, int max_len,
                              uint64_t *total, rt_error *err);
// The tokenizer files of a folder export: a real tokenizer's (rt_export_tokenizer_files; tok and src
// given), else retort's byte tokenizer (tok NULL or src the byte record) as a tokenizer.json HF tokenizers
// reads with retort's ids, the model's vocab_size ids in all (those past 258 as unused special tokens).
int rt_export_tokenizer_folder_files(const char *dir, const rt_tokenizer *tok, const rt_tok_source *src,
                                     int vocab_size, int max_len, uint64_t *total, rt_error *err);
// The ids a config names for BOS, EOS and PAD where it cannot say "none": a missing BOS or PAD is EOS, as
// HF's generation does (the byte tokenizer: 256, 257, 258).
void rt_export_special_ids(const rt_tokenizer *tok, int *bos, int *eos, int *pad);

#endif
