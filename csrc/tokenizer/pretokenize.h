// Pre-tokenizers: split text into the pieces a BPE model then encodes one by one. Each splitter is written
// by hand (no regex engine) and gives exactly the pieces HF tokenizers gives for the same pre-tokenizer:
//
//   RT_PRETOK_GPT2    Split(Regex(GPT2), "isolated"), which is also ByteLevel(use_regex=true):
//                     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   RT_PRETOK_LLAMA3  Split(Regex(LLAMA3), "isolated") (Llama 3):
//                     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//                      ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   RT_PRETOK_QWEN2   the LLAMA3 pattern with \p{N} (single numbers) instead of \p{N}{1,3} (Qwen2)
//   RT_PRETOK_DIGITS  Digits(individual_digits=true): every numeric character (Rust's char::is_numeric,
//                     i.e. \p{N}) is a piece of its own, the runs between are pieces (SmolLM applies it
//                     before ByteLevel(use_regex=true), i.e. before RT_PRETOK_GPT2: rt_pretok_split_seq)
//
// "isolated" means the matches and the text between them are all pieces, so the pieces always cover the
// input exactly, in order, with no empty piece. The splitters work on bytes: a byte that is not well-formed
// UTF-8 (see rt_utf8_next) counts as one character that is neither letter, number nor whitespace (like a
// symbol), so any input splits without loss. HF's input is always valid UTF-8.
#ifndef RT_TOKENIZER_PRETOKENIZE_H
#define RT_TOKENIZER_PRETOKENIZE_H

#include <stddef.h>

#include "base/common.h"

typedef enum rt_pretok_kind {
    RT_PRETOK_GPT2 = 0,
    RT_PRETOK_LLAMA3 = 1,
    RT_PRETOK_QWEN2 = 2,
    RT_PRETOK_DIGITS = 3,
} rt_pretok_kind;

// One piece: bytes [offset, offset + length) of the text given to the splitter.
typedef struct rt_span {
    size_t offset;
    size_t length;
} rt_span;

// A growable array of pieces. Zero-initialize it ({0}) before first use; reuse it by setting count = 0.
typedef struct rt_spans {
    rt_span *items;
    size_t count;
    size_t cap;
} rt_spans;

// Appends the pieces of text[0..len) to out (offsets relative to text). An empty text adds nothing.
// Returns 0, or -1 with err filled (allocation failure, or an unknown kind).
int rt_pretok_split(rt_pretok_kind kind, const char *text, size_t len, rt_spans *out, rt_error *err);

// Applies n splitters in sequence, as HF's pre_tokenizers.Sequence does: the first splits the text, each
// next one splits every piece of the one before. Appends the final pieces to out (offsets relative to text).
// n == 0 gives the whole text as one piece (none for an empty text).
int rt_pretok_split_seq(const rt_pretok_kind *kinds, int n, const char *text, size_t len, rt_spans *out,
                        rt_error *err);

// Appends one span to out (used by the splitters; exposed for callers that build piece lists themselves).
int rt_spans_push(rt_spans *out, size_t offset, size_t length, rt_error *err);

// Frees the array and zeroes the struct.
void rt_spans_free(rt_spans *spans);

// The kind whose regex is exactly pattern (the decoded string, as tokenizer.json's Split pre-tokenizer
// holds it in "pattern": {"Regex": ...}); -1 when the pattern is not one of GPT2, LLAMA3, QWEN2.
int rt_pretok_kind_from_regex(const char *pattern);

// The regex of GPT2, LLAMA3 or QWEN2 as tokenizer.json's Split holds it (decoded); NULL for other kinds.
const char *rt_pretok_regex(rt_pretok_kind kind);

// Name of a kind ("gpt2", "llama3", "qwen2", "digits"), "unknown" otherwise.
const char *rt_pretok_kind_name(rt_pretok_kind kind);

#endif
