// Tokenizers: text to token ids and back, for the models retort trains from scratch (its byte tokenizer)
// and for real pretrained ones, read from a Hugging Face tokenizer.json or from a GGUF file's
// tokenizer.ggml.* keys (docs/tokenizers.md):
//
//   bytes  ids 0..255 are the bytes, 256 BOS, 257 EOS, 258 PAD (retort's own tokenizer)
//   bpe    byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): merges by rank over GPT-2's byte alphabet
//   spm    SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral v0.1): from tokenizer.json
//          by merge rank as HF tokenizers does, from a GGUF by piece score as llama.cpp does
//
// Encoding follows HF tokenizers: added tokens are split out of the raw text first (special or not), then
// the normalizer, the pre-tokenizer, the model, and BOS/EOS from the post-processor when add_special is set.
// A tokenizer is immutable after loading, so one can encode from several threads at once.
#ifndef RT_TOKENIZER_TOKENIZER_H
#define RT_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/common.h"

struct rt_gguf_file;
typedef struct rt_tokenizer rt_tokenizer;

// Token types as GGUF's tokenizer.ggml.token_type has them (llama.cpp's llama_token_type).
enum {
    RT_TOKEN_UNDEFINED = 0,
    RT_TOKEN_NORMAL = 1,
    RT_TOKEN_UNKNOWN = 2,
    RT_TOKEN_CONTROL = 3,      // special added tokens (BOS, EOS, <|im_start|>...)
    RT_TOKEN_USER_DEFINED = 4, // added tokens that are not special
    RT_TOKEN_UNUSED = 5,       // ids no token holds
    RT_TOKEN_BYTE = 6,         // <0xXX> byte-fallback tokens
};

// ---- loading: each returns 0 with *out set, or -1 with err naming the source, key and token index

// tokenizer.json text (json[0 .. len)); origin names it in messages (a path, or "tokenizer.json").
int rt_tokenizer_from_json(const char *json, size_t len, const char *origin, rt_tokenizer **out,
                           rt_error *err);
// The tokenizer.ggml.* keys of a GGUF file read by rt_gguf_read (gguf/gguf.h).
int rt_tokenizer_from_gguf(const struct rt_gguf_file *f, const char *origin, rt_tokenizer **out,
                           rt_error *err);
// A tokenizer.json file, a Hugging Face model folder holding tokenizer.json (its tokenizer_config.json, when
// present, names BOS/EOS/PAD), a GGUF file, or a retort checkpoint (the tokenizer it stores); told apart by
// content, not by name (tokenizer_source.h).
int rt_tokenizer_load(const char *source, rt_tokenizer **out, rt_error *err);
// retort's byte tokenizer (data/tokenizer.h): the same ids as rt_tok_encode, BOS 256, EOS 257, PAD 258.
int rt_tokenizer_bytes(rt_tokenizer **out, rt_error *err);
void rt_tokenizer_free(rt_tokenizer *t);

// ---- encoding and decoding

// A growable list of ids; zero-initialize it, reuse it by setting n = 0.
typedef struct rt_tok_ids {
    int32_t *ids;
    size_t n, cap;
} rt_tok_ids;
void rt_tok_ids_free(rt_tok_ids *ids);

// Appends the ids of text[0 .. len) to out. add_special adds what the post-processor adds (BOS for Llama,
// nothing for GPT-2 and Qwen2), as HF's encode(text, add_special_tokens=True). Fails only on allocation.
int rt_tokenizer_encode(const rt_tokenizer *t, const char *text, size_t len, int add_special, rt_tok_ids *out,
                        rt_error *err);
// Appends the text of ids to out as the tokenizer's decoder makes it (HF's decode; bytes are kept as they
// are, where HF would turn a broken UTF-8 sequence into U+FFFD). skip_special leaves special tokens out.
// An id outside the vocabulary is an error naming it.
int rt_tokenizer_decode(const rt_tokenizer *t, const int32_t *ids, size_t n, int skip_special, rt_buf *out,
                        rt_error *err);
// Appends the text one token stands for on its own (what llama.cpp's token_to_piece gives: "Ġthe" is " the",
// "▁the" is " the", <0x0A> is "\n", special tokens their content). -1 for an id outside the vocabulary.
int rt_tokenizer_piece(const rt_tokenizer *t, int32_t id, rt_buf *out, rt_error *err);

// ---- what the tokenizer is (for checks, exports and messages)

// "bytes", "bpe" (byte-level BPE) or "spm" (SentencePiece-style BPE with byte fallback).
const char *rt_tokenizer_kind(const rt_tokenizer *t);
// The source it was loaded from (origin), for messages.
const char *rt_tokenizer_origin(const rt_tokenizer *t);
// Number of ids (the largest id + 1, added tokens included).
int32_t rt_tokenizer_vocab_size(const rt_tokenizer *t);
// Special ids, -1 when the tokenizer has none.
int32_t rt_tokenizer_bos(const rt_tokenizer *t);
int32_t rt_tokenizer_eos(const rt_tokenizer *t);
int32_t rt_tokenizer_pad(const rt_tokenizer *t);
int32_t rt_tokenizer_unk(const rt_tokenizer *t);
// Whether encoding with add_special adds BOS first / EOS last.
int rt_tokenizer_adds_bos(const rt_tokenizer *t);
int rt_tokenizer_adds_eos(const rt_tokenizer *t);

// For a GGUF exporter: the stored text of a token (GPT-2 alphabet for bpe, "▁" for spaces in spm), NULL
// for an id outside the vocabulary; its RT_TOKEN_* type; its score (spm from GGUF; 0 otherwise, and
// rt_tokenizer_has_scores says whether there are any).
const char *rt_tokenizer_token(const rt_tokenizer *t, int32_t id, size_t *len);
int rt_tokenizer_token_type(const rt_tokenizer *t, int32_t id);
float rt_tokenizer_score(const rt_tokenizer *t, int32_t id);
int rt_tokenizer_has_scores(const rt_tokenizer *t);
// Merges in rank order as token ids (the merged token is the concatenation of the two).
size_t rt_tokenizer_n_merges(const rt_tokenizer *t);
void rt_tokenizer_merge(const rt_tokenizer *t, size_t rank, int32_t *left, int32_t *right);
// GGUF's tokenizer.ggml.model ("gpt2" or "llama"; NULL for bytes) and tokenizer.ggml.pre ("gpt-2",
// "llama-bpe", "qwen2", "smollm", "default").
const char *rt_tokenizer_ggml_model(const rt_tokenizer *t);
const char *rt_tokenizer_pre(const rt_tokenizer *t);

#endif
