// retort tokenize SOURCE [--text STR] [--ids] [--no-bos]: the ids of a text under a tokenizer.json, a
// Hugging Face folder or a GGUF file's tokenizer, the way llama.cpp's llama-tokenize shows them, so a user
// can check a tokenizer against the tools they know.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/buf.h"
#include "commands.h"
#include "tokenizer/tokenizer.h"

static void print_help(void) {
    printf(
        "usage: retort tokenize SOURCE [--text STR] [--ids] [--no-bos]\n\n"
        "Tokenizes a text (standard input, all of it, unless --text) and prints one token per line as\n"
        "`ID -> 'PIECE'` (the piece is the text the token stands for, with control characters and broken\n"
        "UTF-8 escaped), or the ids alone.\n\n"
        "SOURCE  a tokenizer.json file, a Hugging Face model folder holding tokenizer.json, or a GGUF file\n"
        "        (told apart by their content)\n\n"
        "options:\n"
        "  --text STR  tokenize STR instead of standard input\n"
        "  --ids       print the ids on one line, separated by spaces\n"
        "  --no-bos    leave out what the tokenizer adds around a text (BOS for Llama; nothing for GPT-2\n"
        "              and Qwen2)\n"
        "  -h, --help  this help\n\n"
        "Added and special tokens written in the text (\"<|begin_of_text|>\") are matched as tokens, as\n"
        "Hugging Face tokenizers does.\n\n"
        "exit status: 0 printed, 1 the tokenizer could not be read, 2 usage error\n");
}

// The piece as printable text: valid UTF-8 as it is, control characters and stray bytes escaped.
static void print_piece(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80                ? 1
                     : c >= 0xc2 && c < 0xe0 ? 2
                     : c >= 0xe0 && c < 0xf0 ? 3
                     : c >= 0xf0 && c < 0xf5 ? 4
                                             : 0;
        size_t k = 1;
        while (len > 1 && k < len && i + k < n && (s[i + k] & 0xc0) == 0x80) k++;
        if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c == '\\') {
            fputs("\\\\", stdout);
        } else if (c < 0x20 || c == 0x7f || len == 0 || k < len) {
            printf("\\x%02x", c);
        } else {
            fwrite(s + i, 1, len, stdout);
            i += len;
            continue;
        }
        i++;
    }
}

static int read_stdin(rt_buf *text, rt_error *err) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) rt_buf_append(text, chunk, n);
    if (ferror(stdin)) return rt_fail(err, "cannot read standard input");
    if (text->oom) return rt_fail(err, "out of memory reading standard input");
    return 0;
}

static int tokenize(const char *source, const char *text_arg, int ids_only, int add_special, rt_error *err) {
    rt_tokenizer *t;
    if (rt_tokenizer_load(source, &t, err)) return 1;
    rt_buf text = {0};
    rt_tok_ids ids = {0};
    int rc = 0;
    if (text_arg)
        rt_buf_append(&text, text_arg, strlen(text_arg));
    else
        rc = read_stdin(&text, err);
    if (rc == 0) rc = rt_tokenizer_encode(t, (const char *)text.data, text.len, add_special, &ids, err);
    for (size_t i = 0; rc == 0 && i < ids.n; i++) {
        if (ids_only) {
            printf(i ? " %d" : "%d", ids.ids[i]);
            continue;
        }
        rt_buf piece = {0};
        rc = rt_tokenizer_piece(t, ids.ids[i], &piece, err);
        if (rc == 0) {
            printf("%6d -> '", ids.ids[i]);
            print_piece(piece.data, piece.len);
            printf("'\n");
        }
        rt_buf_free(&piece);
    }
    if (rc == 0 && ids_only) printf("\n");
    rt_tok_ids_free(&ids);
    rt_buf_free(&text);
    rt_tokenizer_free(t);
    return rc ? 1 : 0;
}

int rt_cmd_tokenize(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *source = NULL, *text = NULL;
    int ids_only = 0, add_special = 1;
    for (int i = 1; i < argc;) {
        int got = 0;
        if ((got = rt_arg_value(argc, argv, &i, "--text", &text, &err))) {
        } else if (strcmp(argv[i], "--ids") == 0) {
            ids_only = 1;
            i++;
        } else if (strcmp(argv[i], "--no-bos") == 0) {
            add_special = 0;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            rt_fail(&err, "unknown option %s (see retort tokenize --help)", argv[i]);
            got = -1;
        } else if (!source) {
            source = argv[i++];
        } else {
            rt_fail(&err, "one tokenizer source at a time (got %s and %s)", source, argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error(argv[0], err.msg);
            return 2;
        }
    }
    if (!source) {
        rt_cli_error(argv[0], "usage: retort tokenize SOURCE [--text STR] [--ids] [--no-bos]");
        return 2;
    }
    int rc = tokenize(source, text, ids_only, add_special, &err);
    if (rc) rt_cli_error(argv[0], err.msg);
    return rc;
}
