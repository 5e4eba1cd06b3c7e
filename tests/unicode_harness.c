// What check_pretokenize.py compares against HF tokenizers and the regex module:
//   unicode_harness flags          rt_unicode_flags of U+0000..U+10FFFF, one byte each, on stdout
//   unicode_harness split KIND...  reads records "<bytes>\n<text>" from stdin until EOF and prints, per
//                                  record, one line of "offset:length" pieces (rt_pretok_split_seq with the
//                                  KINDs in order: gpt2, llama3, qwen2, digits)
//   unicode_harness nfc            reads the same records and writes a record of each one's NFC
//   unicode_harness kind FILE      prints rt_pretok_kind_from_regex of FILE's contents
// A harness is a test program: it stops at the first problem with a message and exit 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

static rt_pretok_kind kind_named(const char *name) {
    for (int k = 0; k < 4; k++)
        if (strcmp(name, rt_pretok_kind_name((rt_pretok_kind)k)) == 0) return (rt_pretok_kind)k;
    rt_harness_die("unknown kind (gpt2, llama3, qwen2, digits)");
}

int main(int argc, char **argv) {
    rt_harness_init("unicode_harness", ".");
    if (argc < 2) rt_harness_die("usage: unicode_harness flags | split KIND... | nfc | kind FILE");
    rt_error err;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    if (strcmp(argv[1], "flags") == 0) {
        for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) putchar((int)rt_unicode_flags(cp));
    } else if (strcmp(argv[1], "split") == 0) {
        rt_pretok_kind kinds[8];
        int n = argc - 2;
        if (n < 1 || n > 8) rt_harness_die("split needs 1 to 8 kinds");
        for (int i = 0; i < n; i++) kinds[i] = kind_named(argv[2 + i]);
        rt_spans spans = {0};
        while (rt_harness_read_record(&buf, &cap, &len)) {
            spans.count = 0;
            if (rt_pretok_split_seq(kinds, n, buf, len, &spans, &err)) rt_harness_die(err.msg);
            for (size_t i = 0; i < spans.count; i++)
                printf(i ? " %zu:%zu" : "%zu:%zu", spans.items[i].offset, spans.items[i].length);
            putchar('\n');
        }
        rt_spans_free(&spans);
    } else if (strcmp(argv[1], "nfc") == 0) {
        while (rt_harness_read_record(&buf, &cap, &len)) {
            char *out;
            size_t out_len;
            if (rt_unicode_nfc(buf, len, &out, &out_len, &err)) rt_harness_die(err.msg);
            printf("%zu\n", out_len);
            fwrite(out, 1, out_len, stdout);
            free(out);
        }
    } else if (strcmp(argv[1], "kind") == 0 && argc == 3) {
        FILE *f = fopen(argv[2], "rb");
        if (!f) rt_harness_die("cannot open the pattern file");
        buf = malloc(65536);
        if (!buf) rt_harness_die("out of memory");
        len = fread(buf, 1, 65535, f);
        fclose(f);
        buf[len] = 0;
        printf("%d\n", rt_pretok_kind_from_regex(buf));
    } else {
        rt_harness_die("usage: unicode_harness flags | split KIND... | nfc | kind FILE");
    }
    free(buf);
    return fflush(stdout) == 0 ? 0 : 1;
}
