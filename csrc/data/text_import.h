// Text and JSONL files as token datasets (`retort data text`).
#ifndef RT_TEXT_IMPORT_H
#define RT_TEXT_IMPORT_H

#include "base/common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_source.h"

// Turns a text file into a dataset. format: "lines" (one document per non-empty line), "blank" (documents
// separated by blank lines), "whole" (the file is one document) or "jsonl" (one JSON object per line with
// "text", or "prompt" and "completion", which sets prompt_len, counted in ids). tok encodes the text (src
// is its record: the dataset stores its type and hash); added tokens' text inside the documents becomes
// their ids, as HF tokenizers does. Errors name the file and line.
int rt_data_text_write(const char *in_path, const char *format, const char *out_path, int vocab_size,
                       const rt_tokenizer *tok, const rt_tok_source *src, rt_error *err);

#endif
