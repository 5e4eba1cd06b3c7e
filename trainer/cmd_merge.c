// retort merge ADAPTER_CKPT --out FILE [--base CKPT]: fold LoRA adapters into their base's weights and write
// a full checkpoint (W + scale * B A; an NF4 base is dequantized first), loadable by every command.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "train/checkpoint.h"
#include "commands.h"
#include "train/finetune.h"
#include "model/model.h"
#include "infer/load.h"

static void print_help(void) {
    printf("usage: retort merge ADAPTER_CKPT --out FILE [--base CKPT]\n\n"
           "Writes a full checkpoint (weights only) whose every adapted projection is W + (alpha / r) B A.\n"
           "For QLoRA, W is the NF4 round trip of the base weight: what the adapters were trained against.\n"
           "A head adapter on tied embeddings gives a separate output.weight (tie_embeddings false).\n"
           "  --out FILE    the merged checkpoint (written atomically)\n"
           "  --base CKPT   the base, when it is no longer at the path the adapter checkpoint records (its\n"
           "                content hash must still match)\n");
}

static int merge(const char *path, const char *out, const char *base_override, rt_error *err) {
    rt_ckpt ad, base, merged;
    rt_config cfg, base_cfg, merged_cfg;
    char hash[17];
    if (rt_ckpt_read(path, 0, &ad, err)) return 1;
    int rc = 0;
    if (ad.n_lora == 0)
        rc = rt_fail(err, "%s holds full weights, not adapters: there is nothing to merge", path);
    if (rc == 0) rc = rt_ckpt_parse_config(path, ad.config_yaml, &cfg, err);
    const char *base_path = base_override ? base_override : ad.base;
    int have_base = 0;
    if (rc == 0) {
        rc = rt_finetune_read_base(base_path, ad.base_hash, "the base", &base, &base_cfg, hash, err);
        have_base = rc == 0;
    }
    rt_named_tensor *ts = NULL;
    int n = 0;
    if (rc == 0) rc = rt_finetune_merge(&ad, &cfg, &base, &ts, &n, &merged_cfg, err);
    if (rc == 0) {
        memset(&merged, 0, sizeof merged);
        merged.model = ts;
        merged.n_model = n;
        merged.state = ad.state;
        merged.tokenizer = ad.tokenizer;
        snprintf(merged.architecture, sizeof merged.architecture, "%s", ad.architecture);
        merged.config_yaml = rt_config_to_yaml(&merged_cfg);
        if (!merged.config_yaml) rc = rt_fail(err, "out of memory writing the config");
        if (rc == 0) rc = rt_ckpt_write(out, &merged, err);
        free(merged.config_yaml);
        rt_model_free_host_tensors(ts, n);
    }
    if (rc == 0)
        printf("merged %d adapter tensors of %s into %s (base %s)%s\n", ad.n_lora, path, out, base_path,
               merged_cfg.model.tie_embeddings == cfg.model.tie_embeddings ? "" : "; the head is now untied");
    if (have_base) rt_ckpt_free(&base);
    rt_ckpt_free(&ad);
    return rc ? 1 : 0;
}

int rt_cmd_merge(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *ckpt = NULL, *out = NULL, *base = NULL;
    for (int i = 1; i < argc;) {
        int got = 0;
        if ((got = rt_arg_value(argc, argv, &i, "--out", &out, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--base", &base, &err))) {
        } else if (argv[i][0] == '-') {
            rt_fail(&err, "unknown option %s (see retort merge --help)", argv[i]);
            got = -1;
        } else if (!ckpt) {
            ckpt = argv[i++];
        } else {
            rt_fail(&err, "one adapter checkpoint at a time (got %s and %s)", ckpt, argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error(argv[0], err.msg);
            return 2;
        }
    }
    if (!ckpt || !out) {
        rt_cli_error(argv[0], "usage: retort merge ADAPTER_CKPT --out FILE [--base CKPT]");
        return 2;
    }
    int rc = merge(ckpt, out, base, &err);
    if (rc) rt_cli_error(argv[0], err.msg);
    return rc;
}
