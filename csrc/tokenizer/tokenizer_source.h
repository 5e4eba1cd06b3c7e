// A tokenizer as retort's files carry it (docs/tokenizers.md, How a tokenizer travels): the bytes it was
// loaded from, their format and content hash, and its special ids. A checkpoint stores one in /tokenizer
// (docs/checkpoint.md), a dataset records its type and hash, and the tokenizer itself is rebuilt from the
// bytes whenever it is needed, so a model always tokenizes with exactly the file it was trained with.
//
//   type "byte"  retort's byte tokenizer: no bytes, no hash (vocab_size is the model's, as checkpoints have
//                always stored it)
//   type "bpe"   format "tokenizer.json" (the file's text as is) or "gguf" (a vocab-only GGUF holding the
//   type "spm"   source file's tokenizer.* keys copied verbatim); vocab_size is the tokenizer's
#ifndef RT_TOKENIZER_SOURCE_H
#define RT_TOKENIZER_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/h5util.h"
#include "tokenizer/tokenizer.h"

#define RT_TOK_FORMAT_JSON "tokenizer.json"
#define RT_TOK_FORMAT_GGUF "gguf"
#define RT_TOK_SOURCE_MAX  ((size_t)1 << 30) // the largest source retort stores (real ones are < 20 MB)

// The first five fields are what checkpoints always stored (rt_tokenizer_info is this struct), in that order.
typedef struct rt_tok_source {
    char type[16];              // "byte", "bpe" or "spm"
    int vocab_size;             // ids (byte: the model's vocab_size)
    int bos_id, eos_id, pad_id; // -1: none (byte: 256, 257, 258)
    char format[16];            // "" (byte), RT_TOK_FORMAT_JSON or RT_TOK_FORMAT_GGUF
    char hash[17];              // rt_bytes_hash of bytes ("" for byte)
    uint8_t *bytes;             // the source (owned by whoever filled it; NULL for byte)
    size_t len;
} rt_tok_source;

// The byte tokenizer's record for a model of vocab_size ids.
void rt_tok_source_byte(rt_tok_source *s, int vocab_size);
// Reads a tokenizer source: "" is the byte tokenizer (vocab_size 0 until the caller sets the model's); else
// a tokenizer.json, a Hugging Face folder (tokenizer.json; tokenizer_config.json's BOS/EOS/PAD are kept as
// the special ids), a GGUF file or a retort checkpoint (its stored tokenizer). The tokenizer is built to
// check it; tok (may be NULL) receives it.
int rt_tok_source_load(const char *source, rt_tok_source *out, rt_tokenizer **tok, rt_error *err);
// Builds the tokenizer a record stands for; origin names it in messages.
int rt_tok_source_open(const rt_tok_source *s, const char *origin, rt_tokenizer **out, rt_error *err);
int rt_tok_source_copy(rt_tok_source *dst, const rt_tok_source *src, rt_error *err);
void rt_tok_source_free(rt_tok_source *s);
// Whether two records tokenize alike: the same type and, for real tokenizers, the same hash.
int rt_tok_source_same(const rt_tok_source *a, const rt_tok_source *b);
int rt_tok_same(const char *type_a, const char *hash_a, const char *type_b, const char *hash_b);
// "byte" or "bpe tokenizer.json 0123456789abcdef", for messages.
const char *rt_tok_describe(const char *type, const char *hash, char buf[64]);
// A model of model_vocab ids can use the tokenizer: every id of it is a row of the embedding.
int rt_tok_source_check_vocab(const rt_tok_source *s, int model_vocab, const char *what, rt_error *err);

// The /tokenizer group of a checkpoint: attributes type, vocab_size, bos_id, eos_id, pad_id, and for real
// tokenizers format, hash and the uint8 dataset "source" (chunked, Fletcher-32). path names the file.
int rt_tok_source_h5_write(hid_t group, const rt_tok_source *s, rt_error *err);
int rt_tok_source_h5_read(hid_t group, const char *path, rt_tok_source *out, rt_error *err);
// The stored tokenizer of a retort checkpoint file.
int rt_tok_source_from_checkpoint(const char *path, rt_tok_source *out, rt_error *err);

#endif
