// libFuzzer harness: `retort data text` (rt_data_text_write) on the input as a text file in one of its
// four formats (the first byte picks lines, blank, whole or jsonl); what it writes must load back as a valid
// dataset with the byte tokenizer's ids.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/text_import.h"
#include "data/tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *formats[] = {"lines", "blank", "whole", "jsonl"};
    const char *fmt = formats[data[0] % 4];
    char in_path[600], out_path[600];
    snprintf(in_path, sizeof in_path, "%s", fz_path("in.txt"));
    snprintf(out_path, sizeof out_path, "%s", fz_path("out.h5"));
    fz_write(in_path, data + 1, size - 1);
    rt_error err;
    static rt_tokenizer *tok;
    static rt_tok_source src;
    if (!tok && rt_tokenizer_bytes(&tok, &err)) abort();
    rt_tok_source_byte(&src, RT_TOK_N_BASE);
    if (rt_data_text_write(in_path, fmt, out_path, RT_TOK_N_BASE, tok, &src, &err) == 0) {
        rt_dataset ds;
        if (rt_dataset_load(&ds, out_path, RT_TOK_N_BASE, &err)) {
            fprintf(stderr, "fuzz_text_import: what it wrote does not load: %s\n", err.msg);
            abort();
        }
        // every document is BOS, bytes, EOS; the bytes are at most the input's
        if (ds.n_tokens > 2 * ds.n_docs + size) abort();
        for (size_t d = 0; d < ds.n_docs; d++)
            if (ds.tokens[ds.doc_offsets[d]] != RT_TOK_BOS ||
                ds.tokens[ds.doc_offsets[d + 1] - 1] != RT_TOK_EOS)
                abort();
        rt_dataset_free(&ds);
    }
    return 0;
}
