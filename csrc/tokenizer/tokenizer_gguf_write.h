// Writing a tokenizer as a GGUF file's tokenizer.ggml.* keys, so llama.cpp tokenizes as retort does
// (tokenizer_gguf_write.c says how each kind is written).
#ifndef RT_TOKENIZER_GGUF_WRITE_H
#define RT_TOKENIZER_GGUF_WRITE_H

#include "base/common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

// Adds t's keys to w, with a token list of model_vocab entries (the model's embedding rows; ids past the
// tokenizer's are padding). The byte tokenizer writes what retort's GGUF exports always held.
int rt_tokenizer_to_gguf(const rt_tokenizer *t, int model_vocab, rt_gguf_writer *w, rt_error *err);

#endif
