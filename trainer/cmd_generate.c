// retort generate CHECKPOINT --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "infer/sample.h"
#include "infer/load.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"

static void print_help(void) {
    printf("usage: retort generate CHECKPOINT --prompt TEXT [options]\n\n"
           "Encodes the prompt with the checkpoint's tokenizer (BOS first when the tokenizer adds one), "
           "continues\n"
           "it and prints the prompt and the decoded continuation (stops at EOS).\n"
           "  --prompt TEXT        text to continue (required)\n"
           "  --max-tokens N       most new tokens (default 64)\n"
           "  --temperature T      0 = greedy; higher = more random (default 0.8)\n"
           "  --top-k K            sample among the K most likely tokens, 0 = all (default 0)\n"
           "  --top-p P            sample among the likeliest tokens holding mass P, 1 = all (default 1)\n"
           "  --seed S             sampling seed (default 1)\n"
           "  --device D           cpu, cuda or auto (default cpu)\n"
           "  --threads N          CPU threads, 0 = all cores (default 0)\n"
           "  --ids                also print every id (prompt and continuation) on a last line\n");
}

// Streams the continuation: the text of all ids decoded so far, less what is already printed (decoding the
// whole sequence keeps multi-byte characters and SentencePiece's spaces as the tokenizer decodes them). Ids
// the tokenizer does not have (the model's vocabulary may be larger) stand for no text.
typedef struct stream {
    const rt_tokenizer *tok;
    int32_t *ids; // the sequence's ids that the tokenizer has (prompt first)
    int64_t n;
    size_t printed; // bytes of the decoded sequence already out (the prompt's at the start)
    rt_buf text;
    int failed;
} stream;

static void print_token(int32_t id, void *user) {
    stream *s = user;
    if (id < 0 || id >= rt_tokenizer_vocab_size(s->tok)) return;
    s->ids[s->n++] = id;
    s->text.len = 0;
    rt_error err;
    if (s->failed || rt_tokenizer_decode(s->tok, s->ids, (size_t)s->n, 1, &s->text, &err) || s->text.oom) {
        s->failed = 1;
        return;
    }
    if (s->text.len > s->printed) fwrite(s->text.data + s->printed, 1, s->text.len - s->printed, stdout);
    if (s->text.len > s->printed) s->printed = s->text.len;
    fflush(stdout);
}

int rt_cmd_generate(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *ckpt = NULL, *prompt = NULL, *device = "cpu", *v = NULL;
    int64_t max_tokens = 64, top_k = 0, seed = 1, threads = 0;
    int print_ids = 0;
    double temperature = 0.8, top_p = 1.0;
    for (int i = 1; i < argc;) {
        int got = 0;
        if (strcmp(argv[i], "--ids") == 0) {
            print_ids = 1;
            i++;
        } else if ((got = rt_arg_value(argc, argv, &i, "--prompt", &prompt, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--device", &device, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--max-tokens", &v, &err))) {
            if (got > 0 && rt_arg_int("--max-tokens", v, 1, 1 << 20, &max_tokens, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--temperature", &v, &err))) {
            if (got > 0 && rt_arg_float("--temperature", v, 0.0, 100.0, &temperature, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--top-k", &v, &err))) {
            if (got > 0 && rt_arg_int("--top-k", v, 0, 1 << 30, &top_k, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--top-p", &v, &err))) {
            if (got > 0 && rt_arg_float("--top-p", v, 1e-6, 1.0, &top_p, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--seed", &v, &err))) {
            if (got > 0 && rt_arg_int("--seed", v, INT64_MIN, INT64_MAX, &seed, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--threads", &v, &err))) {
            if (got > 0 && rt_arg_int("--threads", v, 0, 4096, &threads, &err)) got = -1;
        } else if (argv[i][0] == '-') {
            rt_fail(&err, "unknown option %s (see retort generate --help)", argv[i]);
            got = -1;
        } else if (!ckpt) {
            ckpt = argv[i++];
        } else {
            rt_fail(&err, "unexpected argument %s: one checkpoint at a time", argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error("generate", err.msg);
            return 2;
        }
    }
    if (!ckpt || !prompt) {
        rt_cli_error("generate", !ckpt
                                     ? "no checkpoint given (usage: retort generate CHECKPOINT --prompt TEXT)"
                                     : "--prompt is required");
        return 2;
    }
    rt_ctx ctx;
    if (rt_ctx_init_device(&ctx, device, "fp32", (int)threads, 0, &err)) {
        rt_cli_error("generate", err.msg);
        return 1;
    }
    rt_model m;
    rt_config cfg;
    rt_tokenizer *tok = NULL;
    int rc = 1;
    // the checkpoint first: a missing file is a missing checkpoint, not a missing tokenizer source
    FILE *probe = fopen(ckpt, "rb");
    if (!probe) {
        rt_fail(&err, "checkpoint %s: %s", ckpt, strerror(errno));
    } else {
        fclose(probe);
    }
    if (probe && rt_tokenizer_load(ckpt, &tok, &err) == 0 &&
        rt_load_model(ckpt, &ctx, 1, 0, &m, &cfg, &err) == 0) {
        rt_tok_ids prompt_ids = {0};
        int32_t *ids = NULL;
        int32_t start, end;
        int ok = rt_tokenizer_encode(tok, prompt, strlen(prompt), 1, &prompt_ids, &err) == 0;
        if (ok)
            ids = rt_malloc((prompt_ids.n + (size_t)max_tokens + 1) * sizeof(int32_t), "token buffer", &err);
        // an empty prompt of a tokenizer without BOS: the model continues the id its documents start with
        if (ids && prompt_ids.n == 0 && rt_dataset_doc_ids(tok, &start, &end, &err) != 0) {
            free(ids);
            ids = NULL;
        } else if (ids && prompt_ids.n == 0) {
            ids[0] = start;
        }
        size_t n_prompt = prompt_ids.n ? prompt_ids.n : 1;
        if (ids) {
            if (prompt_ids.n) memcpy(ids, prompt_ids.ids, prompt_ids.n * sizeof(int32_t));
            rt_sampling s = {(float)temperature, (int)top_k, (float)top_p};
            rt_rng rng;
            rt_rng_seed(&rng, (uint64_t)seed);
            stream out = {tok,
                          rt_malloc((n_prompt + (size_t)max_tokens) * sizeof(int32_t), "ids", &err),
                          (int64_t)n_prompt,
                          0,
                          {0},
                          0};
            if (out.ids) memcpy(out.ids, ids, n_prompt * sizeof(int32_t));
            rc = !out.ids || rt_tokenizer_decode(tok, ids, n_prompt, 1, &out.text, &err) ? 1 : 0;
            out.printed = out.text.len;
            fwrite(prompt, 1, strlen(prompt), stdout);
            int64_t n = rc ? -1
                           : rt_generate(&m, ids, (int64_t)n_prompt, max_tokens, rt_tokenizer_eos(tok), &s,
                                         &rng, print_token, &out, &err);
            fputc('\n', stdout);
            if (out.failed) n = -1, rt_fail(&err, "cannot decode the generated ids");
            if (n >= 0 && print_ids) {
                for (int64_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
                fputc('\n', stdout);
            }
            rc = n < 0 ? 1 : 0;
            rt_buf_free(&out.text);
            free(out.ids);
            free(ids);
        }
        rt_tok_ids_free(&prompt_ids);
        rt_model_free(&m);
    }
    rt_tokenizer_free(tok);
    if (rc) rt_cli_error("generate", err.msg);
    ctx.be->ctx_free(&ctx);
    return rc;
}
