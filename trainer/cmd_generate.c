// retort generate CHECKPOINT --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "infer/sample.h"
#include "infer/load.h"
#include "data/tokenizer.h"

static void print_help(void) {
    printf("usage: retort generate CHECKPOINT --prompt TEXT [options]\n\n"
           "Continues BOS + the prompt's bytes and prints the prompt and the continuation (stops at EOS).\n"
           "  --prompt TEXT        text to continue (required)\n"
           "  --max-tokens N       most new tokens (default 64)\n"
           "  --temperature T      0 = greedy; higher = more random (default 0.8)\n"
           "  --top-k K            sample among the K most likely tokens, 0 = all (default 0)\n"
           "  --top-p P            sample among the likeliest tokens holding mass P, 1 = all (default 1)\n"
           "  --seed S             sampling seed (default 1)\n"
           "  --device D           cpu, cuda or auto (default cpu)\n"
           "  --threads N          CPU threads, 0 = all cores (default 0)\n");
}

static void print_token(int32_t id, void *user) {
    char buf[2];
    size_t n = rt_tok_decode(&id, 1, buf);
    fwrite(buf, 1, n, stdout);
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
    double temperature = 0.8, top_p = 1.0;
    for (int i = 1; i < argc;) {
        int got = 0;
        if ((got = rt_arg_value(argc, argv, &i, "--prompt", &prompt, &err))) {
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
    int rc = 1;
    if (rt_load_model(ckpt, &ctx, 1, 0, &m, &cfg, &err) == 0) {
        size_t plen = strlen(prompt);
        int32_t *ids = rt_malloc((plen + 1 + (size_t)max_tokens) * sizeof(int32_t), "token buffer", &err);
        if (ids) {
            ids[0] = RT_TOK_BOS;
            rt_tok_encode(prompt, plen, ids + 1);
            rt_sampling s = {(float)temperature, (int)top_k, (float)top_p};
            rt_rng rng;
            rt_rng_seed(&rng, (uint64_t)seed);
            fwrite(prompt, 1, plen, stdout);
            int64_t n =
                rt_generate(&m, ids, (int64_t)plen + 1, max_tokens, &s, &rng, print_token, NULL, &err);
            fputc('\n', stdout);
            rc = n < 0 ? 1 : 0;
            free(ids);
        }
        rt_model_free(&m);
    }
    if (rc) rt_cli_error("generate", err.msg);
    ctx.be->ctx_free(&ctx);
    return rc;
}
