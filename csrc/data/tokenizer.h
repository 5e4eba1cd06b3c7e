// Byte-level tokenizer: ids 0..255 are the bytes, then the control tokens.
#ifndef RT_TOKENIZER_H
#define RT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

#define RT_TOK_BOS    256
#define RT_TOK_EOS    257
#define RT_TOK_PAD    258
#define RT_TOK_N_BASE 259 // smallest vocabulary the byte tokenizer needs

// Encode text bytes to ids (no BOS/EOS added). out must hold len ids. Returns the count.
size_t rt_tok_encode(const char *text, size_t len, int32_t *out);

// Decode ids to bytes; control tokens are skipped. out must hold n bytes + 1. Returns bytes written.
size_t rt_tok_decode(const int32_t *ids, size_t n, char *out);

// Printable name of one token: the byte itself, "\n" escapes, or "<bos>", "<eos>", "<pad>".
const char *rt_tok_piece(int32_t id, char buf[16]);

// GPT-2's byte-to-unicode form of byte b (0..255) as NUL-terminated UTF-8: printable bytes are
// themselves, the other 68 map to U+0100 + n in order. The token text byte-level BPE vocabularies use
// (GGUF's gpt2 tokenizer, Hugging Face tokenizer.json).
void rt_tok_byte_unicode(int b, char out[4]);

#endif
