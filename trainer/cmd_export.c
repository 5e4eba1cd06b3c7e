// retort export CKPT --format gguf [--type T] --out FILE [--lora-adapter]: a checkpoint as a file llama.cpp
// loads. An adapter checkpoint is merged into its base first, or with --lora-adapter written alone as a
// llama.cpp LoRA adapter (--lora).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "commands.h"
#include "finetune.h"
#include "ggml_quants.h"
#include "gguf_export.h"
#include "lora.h"
#include "model.h"
#include "runtime.h"

static void print_help(void) {
    printf(
        "usage: retort export CHECKPOINT --format gguf --out FILE [--type TYPE] [--lora-adapter]\n\n"
        "Writes the model as a GGUF v3 file for llama.cpp (and Ollama, LM Studio): llama metadata, the byte\n"
        "vocabulary as a gpt2 tokenizer with empty merges, the Q/K rows permuted for llama.cpp's RoPE, tied\n"
        "embeddings as no output.weight. An adapter checkpoint (LoRA / QLoRA) is merged into its base "
        "first.\n"
        "  --format gguf     the format (gguf)\n"
        "  --type TYPE       f32, f16, bf16, q8_0, q4_0 or q6_k for the matrices (default f16); norms stay\n"
        "                    f32, and a matrix whose rows do not split into the type's blocks (32, or 256\n"
        "                    for q6_k) is written as q8_0, or f16\n"
        "  --lora-adapter    from an adapter checkpoint, write only the adapters as a llama.cpp LoRA GGUF\n"
        "                    (load with llama.cpp --lora FILE next to the base exported alone)\n"
        "  --out FILE        the file written (atomically)\n");
}

static int export_gguf(const char *path, const char *out, int type, int adapter_only, rt_error *err) {
    rt_ckpt ck;
    rt_config cfg;
    if (rt_ckpt_read(path, 0, &ck, err)) return 1;
    int rc = rt_runtime_parse_ckpt_config(path, ck.config_yaml, &cfg, err);
    rt_gguf_export_report rep;
    memset(&rep, 0, sizeof rep);
    if (rc == 0 && adapter_only) {
        rt_lora_spec spec;
        if (ck.n_lora == 0)
            rc = rt_fail(err, "--lora-adapter needs an adapter checkpoint; %s holds full weights", path);
        if (rc == 0) rc = rt_lora_spec_from_config(&cfg, &spec, err);
        if (rc == 0 && spec.nf4_sites)
            fprintf(stderr,
                    "note: %s was trained on an NF4 base; export the base with the same quantization "
                    "error in mind, or merge (retort merge) for the exact trained weights\n",
                    path);
        if (rc == 0) rc = rt_gguf_export_adapter(ck.lora, ck.n_lora, &cfg, spec.scale, out, &rep, err);
    } else if (rc == 0 && ck.n_lora > 0) { // adapters: merged into the base first
        rt_ckpt base;
        rt_config base_cfg, merged_cfg;
        char hash[17];
        rt_named_tensor *merged = NULL;
        int n = 0;
        rc = rt_finetune_read_base(ck.base, ck.base_hash, "the base", &base, &base_cfg, hash, err);
        if (rc == 0) {
            rc = rt_finetune_merge(&ck, &cfg, &base, &merged, &n, &merged_cfg, err);
            rt_ckpt_free(&base);
        }
        if (rc == 0) rc = rt_gguf_export_model(merged, n, &merged_cfg, type, path, out, &rep, err);
        rt_model_free_host_tensors(merged, n);
    } else if (rc == 0) {
        rc = rt_gguf_export_model(ck.model, ck.n_model, &cfg, type, path, out, &rep, err);
    }
    if (rc == 0) {
        printf("wrote %s: %d tensors, %.2f MiB of tensor data (%s)\n", out, rep.n_tensors,
               (double)rep.bytes / (1 << 20), adapter_only ? "LoRA adapter, f32" : rt_ggml_type_name(type));
        if (rep.n_fallback)
            printf("note: %d matrices could not use %s, e.g. %s\n", rep.n_fallback, rt_ggml_type_name(type),
                   rep.fallback_note);
    }
    rt_ckpt_free(&ck);
    return rc ? 1 : 0;
}

int rt_cmd_export(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *ckpt = NULL, *out = NULL, *format = NULL, *type_name = "f16";
    int adapter_only = 0;
    for (int i = 1; i < argc;) {
        int got = 0;
        if ((got = rt_arg_value(argc, argv, &i, "--out", &out, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--format", &format, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--type", &type_name, &err))) {
        } else if (strcmp(argv[i], "--lora-adapter") == 0) {
            adapter_only = 1;
            i++;
            got = 1;
        } else if (argv[i][0] == '-') {
            rt_fail(&err, "unknown option %s (see retort export --help)", argv[i]);
            got = -1;
        } else if (!ckpt) {
            ckpt = argv[i++];
        } else {
            rt_fail(&err, "one checkpoint at a time (got %s and %s)", ckpt, argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error(argv[0], err.msg);
            return 2;
        }
    }
    if (!ckpt || !out || !format) {
        rt_cli_error(argv[0], "usage: retort export CHECKPOINT --format gguf --out FILE [--type TYPE]");
        return 2;
    }
    if (strcmp(format, "gguf") != 0) {
        rt_fail(&err, "--format %s: expected gguf", format);
        rt_cli_error(argv[0], err.msg);
        return 2;
    }
    int type = rt_ggml_type_from_name(type_name);
    if (type < 0) {
        rt_fail(&err, "--type %s: expected f32, f16, bf16, q8_0, q4_0 or q6_k", type_name);
        rt_cli_error(argv[0], err.msg);
        return 2;
    }
    int rc = export_gguf(ckpt, out, type, adapter_only, &err);
    if (rc) rt_cli_error(argv[0], err.msg);
    return rc;
}
