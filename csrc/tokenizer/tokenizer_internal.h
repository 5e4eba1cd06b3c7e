// What a loaded tokenizer holds, shared by the loaders (tokenizer_json.c, tokenizer_gguf.c), the
// vocabulary tables (vocab.c), the models (bpe.c), encoding (encode.c) and decoding (decode.c).
#ifndef RT_TOKENIZER_INTERNAL_H
#define RT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

// How the model turns one pre-tokenized piece into ids.
typedef enum {
    RT_ALGO_BYTES,     // every byte is its id
    RT_ALGO_BPE_RANK,  // HF tokenizers' BPE: merge the adjacent pair of lowest merge rank first
    RT_ALGO_SPM_SCORE, // llama.cpp's SentencePiece: merge the adjacent pair whose merged piece scores highest
} rt_tok_algo;

// Normalizer steps (HF normalizers, applied in order).
typedef enum { RT_NORM_NFC, RT_NORM_PREPEND, RT_NORM_REPLACE } rt_tok_norm_kind;
typedef struct rt_tok_norm {
    rt_tok_norm_kind kind;
    char *pattern; // Replace: the literal text replaced
    size_t pattern_len;
    char *content; // Replace: what replaces it; Prepend: what is prepended
    size_t content_len;
} rt_tok_norm;

// Metaspace's prepend_scheme.
enum { RT_PREPEND_ALWAYS, RT_PREPEND_FIRST, RT_PREPEND_NEVER };

// Pre-tokenizer steps (HF pre_tokenizers, applied in order, each on every piece the one before made).
typedef enum { RT_PRE_BYTE_LEVEL, RT_PRE_SPLIT, RT_PRE_METASPACE } rt_tok_pre_kind;
typedef struct rt_tok_pre {
    rt_tok_pre_kind kind;
    rt_pretok_kind split;     // SPLIT: the hand-written splitter
    int add_prefix_space;     // BYTE_LEVEL: a space before a piece that does not start with one
    int use_regex;            // BYTE_LEVEL: split with the GPT-2 pattern first
    char replacement[5];      // METASPACE: the character standing for a space (UTF-8)
    size_t replacement_len;   //
    int prepend_scheme;       // METASPACE: RT_PREPEND_*
    int split_on_replacement; // METASPACE: split before every replacement character
} rt_tok_pre;

// Decoder steps (HF decoders): each maps the list of token texts to a new list.
typedef enum {
    RT_DEC_BYTE_LEVEL,
    RT_DEC_REPLACE,
    RT_DEC_BYTE_FALLBACK,
    RT_DEC_FUSE,
    RT_DEC_STRIP,
    RT_DEC_METASPACE
} rt_tok_dec_kind;
typedef struct rt_tok_dec {
    rt_tok_dec_kind kind;
    char *pattern, *content; // REPLACE (literal pattern); STRIP: content is the character stripped
    size_t pattern_len, content_len;
    int start, stop;    // STRIP: at most this many characters from the start / the end
    int prepend_scheme; // METASPACE
    char replacement[5];
    size_t replacement_len;
} rt_tok_dec;

// An added token as matched in the text: its content, or for normalized ones the normalized content.
typedef struct rt_tok_added {
    int32_t id;
    char *match;
    size_t match_len;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} rt_tok_added;

// One set of added tokens to match (raw text or normalized text): sorted by first byte, then longest first,
// with where each first byte's run starts, so a position is tried against a few candidates only.
typedef struct rt_tok_matcher {
    rt_tok_added **items;
    size_t n;
    uint32_t first[257];
} rt_tok_matcher;

// Open-addressing hash from token text to id (the model's vocabulary).
typedef struct rt_tok_strmap {
    int32_t *slots; // id, or -1 for an empty slot
    size_t mask;
} rt_tok_strmap;

// Open-addressing hash from a pair of ids to the merge's rank and the merged id.
typedef struct rt_tok_pair_slot {
    uint64_t key; // left << 32 | right; UINT64_MAX when empty
    int32_t rank, merged;
} rt_tok_pair_slot;
typedef struct rt_tok_pairmap {
    rt_tok_pair_slot *slots;
    size_t mask;
} rt_tok_pairmap;

// Per-id flags: in the model's vocabulary (what merges and lookups see); special (left out by
// skip_special when decoding).
enum { RT_TOKF_MODEL = 1, RT_TOKF_SPECIAL = 2 };

struct rt_tokenizer {
    rt_tok_algo algo;
    const char *kind;       // "bytes", "bpe", "spm"
    const char *ggml_model; // "gpt2", "llama" or NULL
    char pre_name[32];
    char *origin;

    // every id's text, NUL-terminated, in one buffer
    int32_t n_vocab;
    char *text;
    size_t text_len, text_cap;
    size_t *tok_off; // SIZE_MAX for an id no token holds
    uint32_t *tok_len;
    uint8_t *tok_type;
    uint8_t *flags; // RT_TOKF_* of each id
    float *scores;  // NULL unless the source had scores
    rt_tok_strmap vocab;

    // BPE merges in rank order (2 ids each) and their lookup
    size_t n_merges, cap_merges;
    int32_t *merges;
    rt_tok_pairmap merge_map;
    int ignore_merges, byte_fallback, fuse_unk;
    int32_t byte_token[256]; // id of <0xXX> (byte fallback), -1 when missing

    // added tokens and the two sets they are matched in
    rt_tok_added *added;
    size_t n_added, cap_added;
    rt_tok_matcher match_raw, match_normalized;

    rt_tok_norm *norm;
    int n_norm;
    rt_tok_pre *pre;
    int n_pre;
    rt_tok_dec *dec;
    int n_dec;

    // what add_special puts around the text (the post-processor's template)
    int32_t prefix[8], suffix[8];
    int n_prefix, n_suffix;
    int32_t bos, eos, pad, unk;
};

// ---- vocab.c
rt_tokenizer *rt_tok_new(const char *origin, rt_error *err);
// Sizes the per-id tables for n ids, all empty (UNUSED) until rt_tok_set_token.
int rt_tok_alloc_ids(rt_tokenizer *t, int32_t n, rt_error *err);
// Stores the text of id (which must be < n_vocab and not yet set).
int rt_tok_set_token(rt_tokenizer *t, int32_t id, const char *s, size_t len, int type, int flags,
                     rt_error *err);
const char *rt_tok_text(const rt_tokenizer *t, int32_t id, size_t *len);
// Builds the text -> id hash over the model's tokens. On two tokens with the same text, dup_policy 0 fails
// naming both, 1 keeps the later id (llama.cpp's behaviour for GGUF).
int rt_tok_index_vocab(rt_tokenizer *t, int dup_policy, rt_error *err);
// The model token with this text, or -1.
int32_t rt_tok_lookup(const rt_tokenizer *t, const char *s, size_t len);
// The hash the tables use for a text (FNV-1a with a final mix, so the low bits are well spread).
uint64_t rt_tok_hash_bytes(const char *s, size_t len);
// Adds the merge of rank n_merges: left + right (their texts) into the token of the concatenated text.
// Fails naming the rank and the missing token.
int rt_tok_add_merge(rt_tokenizer *t, const char *left, size_t left_len, const char *right, size_t right_len,
                     rt_error *err);
// Builds the pair -> (rank, merged) hash; a pair listed twice keeps its last rank (as HF tokenizers does).
int rt_tok_index_merges(rt_tokenizer *t, rt_error *err);
// The merge of (left, right), or NULL.
const rt_tok_pair_slot *rt_tok_find_merge(const rt_tokenizer *t, int32_t left, int32_t right);
// Fills byte_token[] from the <0xXX> tokens of the model vocabulary.
void rt_tok_find_byte_tokens(rt_tokenizer *t);
// Adds an added token (content copied) and builds nothing yet; rt_tok_index_added builds the matchers once
// the normalizer is known (normalized tokens are matched by their normalized text).
int rt_tok_add_added(rt_tokenizer *t, int32_t id, const char *content, size_t len, int special, int lstrip,
                     int rstrip, int single_word, int normalized, rt_error *err);
int rt_tok_index_added(rt_tokenizer *t, rt_error *err);
// Appends steps (they own their strings).
int rt_tok_push_norm(rt_tokenizer *t, rt_tok_norm step, rt_error *err);
int rt_tok_push_pre(rt_tokenizer *t, rt_tok_pre step, rt_error *err);
int rt_tok_push_dec(rt_tokenizer *t, rt_tok_dec step, rt_error *err);
// GPT-2's byte alphabet: the UTF-8 of byte b, and the byte a code point stands for (-1 if none).
int rt_tok_byte_char(int b, char out[4]);
int rt_tok_char_byte(uint32_t cp);
// A copy of s[0 .. len) with a NUL after it, NULL on allocation failure (err filled).
char *rt_tok_strndup(const char *s, size_t len, rt_error *err);

// ---- json_steps.c
struct rt_json;
// Reads tokenizer.json's normalizer, pre_tokenizer, post_processor and decoder into t's steps.
int rt_tok_json_steps(rt_tokenizer *t, const struct rt_json *root, rt_error *err);

// ---- tokenizer_json.c
// Takes BOS/EOS/PAD from a Hugging Face tokenizer_config.json (bos_token, eos_token, pad_token).
int rt_tok_apply_config_file(rt_tokenizer *t, const char *path, rt_error *err);

// ---- encode.c
// Applies the normalizer steps to in[0 .. len): *out is a new malloc'd string.
int rt_tok_normalize(const rt_tokenizer *t, const char *in, size_t len, char **out, size_t *out_len,
                     rt_error *err);

// ---- bpe.c
// Appends the ids of one pre-tokenized piece under the model's algorithm.
int rt_tok_model_encode(const rt_tokenizer *t, const char *piece, size_t len, rt_tok_ids *out, rt_error *err);
int rt_tok_ids_push(rt_tok_ids *ids, int32_t id, rt_error *err);

#endif
