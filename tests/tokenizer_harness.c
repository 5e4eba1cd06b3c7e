// What check_tokenizer_*.py compare against HF tokenizers and llama.cpp's vocabulary tests, one process per
// tokenizer so a big vocabulary loads once:
//   tokenizer_harness encode SOURCE [special]   reads records "<bytes>\n<text>" from stdin until EOF and
//                                               prints each one's ids on a line (special: add_special)
//   tokenizer_harness decode SOURCE [skip]      reads lines of space-separated ids and writes a record of
//                                               each one's decoded text (skip: skip_special)
//   tokenizer_harness info SOURCE               kind, vocab size, bos, eos, pad, unk, adds_bos, adds_eos,
//                                               ggml model, pre, merges, load seconds
//   tokenizer_harness json SOURCE               the tokenizer written as tokenizer.json
//   (tokenizer_json_write.h)
// A harness is a test program: it stops at the first problem with a message and exit 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "harness.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json_write.h"

int main(int argc, char **argv) {
    rt_harness_init("tokenizer_harness", ".");
    if (argc < 3) rt_harness_die("usage: tokenizer_harness encode|decode|info|json SOURCE [special|skip]");
    rt_error err;
    rt_tokenizer *t;
    double t0 = rt_now();
    if (rt_tokenizer_load(argv[2], &t, &err)) rt_harness_die(err.msg);
    double load_s = rt_now() - t0;
    int flag = argc > 3;
    if (strcmp(argv[1], "encode") == 0) {
        char *buf = NULL;
        size_t cap = 0, len;
        rt_tok_ids ids = {0};
        while (rt_harness_read_record(&buf, &cap, &len)) {
            ids.n = 0;
            if (rt_tokenizer_encode(t, buf, len, flag, &ids, &err)) rt_harness_die(err.msg);
            for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.ids[i]);
            putchar('\n');
        }
        rt_tok_ids_free(&ids);
        free(buf);
    } else if (strcmp(argv[1], "decode") == 0) {
        char line[1 << 16];
        rt_tok_ids ids = {0};
        while (fgets(line, sizeof line, stdin)) {
            if (!strchr(line, '\n')) rt_harness_die("an ids line is too long");
            ids.n = 0;
            for (char *p = line, *end; *p && *p != '\n'; p = end) {
                long v = strtol(p, &end, 10);
                if (end == p) rt_harness_die("bad id");
                if (ids.n == ids.cap) {
                    ids.cap = ids.cap ? 2 * ids.cap : 64;
                    ids.ids = realloc(ids.ids, ids.cap * sizeof *ids.ids);
                    if (!ids.ids) rt_harness_die("out of memory");
                }
                ids.ids[ids.n++] = (int32_t)v;
            }
            rt_buf out = {0};
            if (rt_tokenizer_decode(t, ids.ids, ids.n, flag, &out, &err)) rt_harness_die(err.msg);
            printf("%zu\n", out.len);
            if (out.len) fwrite(out.data, 1, out.len, stdout);
            rt_buf_free(&out);
        }
        rt_tok_ids_free(&ids);
    } else if (strcmp(argv[1], "info") == 0) {
        printf("kind %s\nvocab %d\nbos %d\neos %d\npad %d\nunk %d\nadds_bos %d\nadds_eos %d\nggml_model %s\n"
               "pre %s\nmerges %zu\nload_s %.3f\n",
               rt_tokenizer_kind(t), rt_tokenizer_vocab_size(t), rt_tokenizer_bos(t), rt_tokenizer_eos(t),
               rt_tokenizer_pad(t), rt_tokenizer_unk(t), rt_tokenizer_adds_bos(t), rt_tokenizer_adds_eos(t),
               rt_tokenizer_ggml_model(t) ? rt_tokenizer_ggml_model(t) : "-", rt_tokenizer_pre(t),
               rt_tokenizer_n_merges(t), load_s);
    } else if (strcmp(argv[1], "json") == 0) { // the tokenizer written as tokenizer.json
        rt_buf out = {0};
        if (rt_tokenizer_to_json(t, &out, &err)) rt_harness_die(err.msg);
        fwrite(out.data, 1, out.len, stdout);
        rt_buf_free(&out);
    } else {
        rt_harness_die("unknown command (encode, decode, info, json)");
    }
    rt_tokenizer_free(t);
    return 0;
}
