// Writing a tokenizer as a Hugging Face tokenizer.json, for the folder exports of a model whose tokenizer
// came from a GGUF file (a tokenizer.json source is exported as it is). HF tokenizers reading the file gives
// the ids retort gives (docs/tokenizers.md, Writing a tokenizer.json):
//
//   bpe  a BPE model with the vocabulary and the merges in rank order as ["a", "b"] pairs; the normalizer and
//        pre-tokenizer steps retort runs (gpt-2: ByteLevel with its regex; llama-bpe: Split on Llama 3's
//        regex then ByteLevel, ignore_merges; qwen2: NFC, Split on Qwen2's regex, ByteLevel; smollm: Digits
//        then ByteLevel), the ByteLevel decoder
//   spm  the legacy Llama 2 form: a BPE model with byte_fallback and fuse_unk whose merges come from the
//        pieces' scores (every normal piece split into two normal pieces, ranked by the piece's score, as
//        transformers converts a SentencePiece model), the Prepend + Replace normalizer and the Replace,
//        ByteFallback, Fuse, Strip decoder
//
// Control, unknown and user-defined tokens are added tokens (the first two special); what add_special puts
// around a text is a TemplateProcessing post-processor.
#ifndef RT_TOKENIZER_JSON_WRITE_H
#define RT_TOKENIZER_JSON_WRITE_H

#include "base/buf.h"
#include "base/common.h"
#include "tokenizer/tokenizer.h"

// Appends t as tokenizer.json text to out. Fails naming the token or step that has no tokenizer.json form
// (the byte tokenizer, a token that is not UTF-8).
int rt_tokenizer_to_json(const rt_tokenizer *t, rt_buf *out, rt_error *err);

#endif
