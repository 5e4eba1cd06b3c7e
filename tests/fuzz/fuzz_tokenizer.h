// What the tokenizer harnesses do with a tokenizer their reader accepted: encode texts of every kind (and the
// fuzz input itself) with and without special tokens, check every id is inside the vocabulary, decode the
// ids and show each token's piece, write it as tokenizer.json and read that back. A reader that accepts must
// hand back a tokenizer that works.
#ifndef RT_FUZZ_TOKENIZER_H
#define RT_FUZZ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

void fz_exercise_tokenizer(rt_tokenizer *t, const uint8_t *data, size_t size);

#endif
