// retort export CKPT --format gguf|onnx|hf|peft ...: a checkpoint as a file llama.cpp loads (GGUF), a folder
// onnxruntime and onnxruntime-genai load (ONNX) or one transformers loads (hf). An adapter checkpoint is
// merged into its base first, or written alone: for GGUF with --lora-adapter as a llama.cpp LoRA adapter
// (--lora), and as a PEFT adapter folder (peft).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "train/checkpoint.h"
#include "commands.h"
#include "train/finetune.h"
#include "gguf/ggml_quants.h"
#include "export/gguf_export.h"
#include "export/hf_export.h"
#include "export/peft_export.h"
#include "model/lora.h"
#include "model/model.h"
#include "export/onnx_export.h"
#include "infer/load.h"

static void print_help(void) {
    printf(
        "usage: retort export CHECKPOINT --format gguf --out FILE [--type TYPE] [--lora-adapter]\n"
        "       retort export CHECKPOINT --format onnx --out FOLDER [--precision P] [--opset N] "
        "[--external-data]\n"
        "       retort export CHECKPOINT --format hf --out FOLDER [--dtype f32|bf16]\n"
        "       retort export ADAPTER_CKPT --format peft --out FOLDER [--dtype f32|bf16] [--base-name "
        "NAME]\n\n"
        "gguf: a GGUF v3 file for llama.cpp (and Ollama, LM Studio): llama metadata, the model's tokenizer\n"
        "(bytes or byte-level BPE as gpt2, SentencePiece as llama), the Q/K rows permuted for llama.cpp's "
        "RoPE, tied\n"
        "embeddings as no output.weight. An adapter checkpoint (LoRA / QLoRA) is merged into its base "
        "first.\n"
        "  --format F        gguf or onnx\n"
        "  --type TYPE       f32, f16, bf16, q8_0, q4_0 or q6_k for the matrices (default f16); norms stay\n"
        "                    f32, and a matrix whose rows do not split into the type's blocks (32, or 256\n"
        "                    for q6_k) is written as q8_0, or f16\n"
        "  --lora-adapter    from an adapter checkpoint, write only the adapters as a llama.cpp LoRA GGUF\n"
        "                    (load with llama.cpp --lora FILE next to the base exported alone)\n"
        "  --out FILE        the file written (atomically)\n\n"
        "onnx: a folder for onnxruntime and onnxruntime-genai (Foundry Local): model.onnx, a decoder from\n"
        "input_ids to logits with a KV cache (past_key_values.N.key/value -> present.N.key/value), IR 10 /\n"
        "opset 21 or IR 11 / opset 23, plus genai_config.json and the tokenizer files (tokenizer.json, the\n"
        "model's own for a real tokenizer, tokenizer_config.json, special_tokens_map.json). An existing "
        "folder is replaced whole, and only\n"
        "if it holds nothing but such files.\n"
        "  --precision P     fp32 (default), fp16 (weights, inputs and outputs; norms and softmax in fp32)\n"
        "                    or int4 (com.microsoft MatMulNBits, blocks of 32 with zero points; fp32 I/O)\n"
        "  --opset N         21 (default: IR 10, onnxruntime >= 1.18; RMSNorm, RoPE and attention from "
        "basic\n"
        "                    ops) or 23 (IR 11, onnxruntime >= 1.23: the native RMSNormalization,\n"
        "                    RotaryEmbedding and Attention)\n"
        "  --external-data   weights in model.onnx.data (automatic when the model would pass 2 GiB)\n"
        "  --out FOLDER      the folder written\n\n"
        "hf: a Hugging Face folder transformers loads with from_pretrained: config.json\n"
        "(LlamaForCausalLM), generation_config.json and model.safetensors under transformers' names; a\n"
        "tied head has no lm_head.weight; the tokenizer files AutoTokenizer loads (the model's tokenizer,\n"
        "or retort's byte tokenizer written as a tokenizer.json). Replaced whole, like the ONNX folder.\n"
        "  --dtype D         f32 (default) or bf16 for the weights\n"
        "  --out FOLDER      the folder written\n\n"
        "peft: an adapter checkpoint (LoRA or QLoRA) as a PEFT LoRA adapter: adapter_config.json and\n"
        "adapter_model.safetensors with PEFT's names. Load it with PeftModel.from_pretrained onto the base\n"
        "exported with --format hf. Replaced whole, like the ONNX folder.\n"
        "  --dtype D         f32 (default) or bf16 for the adapter factors\n"
        "  --base-name NAME  base_model_name_or_path in adapter_config.json (default: the base\n"
        "                    checkpoint's path; name the HF export of the base or its Hub id)\n"
        "  --out FOLDER      the folder written\n");
}

typedef struct export_job {
    int onnx, hf, peft;
    int type;         // gguf: rt_ggml_type
    int adapter_only; // gguf: --lora-adapter
    rt_onnx_export_opts onnx_opts;
    rt_hf_export_opts hf_opts;
    const rt_tokenizer *tok; // the checkpoint's
    rt_peft_export_opts peft_opts;
} export_job;

typedef struct export_reports {
    rt_gguf_export_report gguf;
    rt_onnx_export_report onnx;
    rt_hf_export_report hf;
    rt_peft_export_report peft;
} export_reports;

static int export_weights(const export_job *job, const rt_named_tensor *w, int n, const rt_config *cfg,
                          const rt_ckpt *ck, const char *path, const char *out, export_reports *r,
                          rt_error *err) {
    if (job->onnx) return rt_onnx_export_model(w, n, cfg, &job->onnx_opts, out, &r->onnx, err);
    if (job->hf) {
        rt_hf_export_opts o = job->hf_opts;
        o.bos_id = ck->tokenizer.bos_id;
        o.eos_id = ck->tokenizer.eos_id;
        o.pad_id = ck->tokenizer.pad_id;
        o.tok = job->tok;
        o.tok_src = &ck->tokenizer;
        return rt_hf_export_model(w, n, cfg, &o, out, &r->hf, err);
    }
    return rt_gguf_export_model(w, n, cfg, job->tok, job->type, path, out, &r->gguf, err);
}

static int export_ckpt(const char *path, const char *out, const export_job *job_in, rt_error *err) {
    int type = job_in->type, adapter_only = job_in->adapter_only;
    rt_ckpt ck;
    rt_config cfg;
    if (rt_ckpt_read(path, 0, &ck, err)) return 1;
    int rc = rt_ckpt_parse_config(path, ck.config_yaml, &cfg, err);
    rt_tokenizer *tok = NULL; // the exports carry the model's tokenizer
    if (rc == 0) rc = rt_ckpt_tokenizer(&ck, &tok, err);
    export_job j = *job_in, *job = &j;
    j.tok = tok;
    j.onnx_opts.tok = tok;
    j.onnx_opts.tok_src = &ck.tokenizer;
    export_reports r;
    memset(&r, 0, sizeof r);
    rt_gguf_export_report *rep = &r.gguf;
    rt_onnx_export_report *orep = &r.onnx;
    if (rc == 0 && job->peft) {
        rc = rt_peft_export(&ck, &cfg, &job->peft_opts, out, &r.peft, err);
    } else if (rc == 0 && adapter_only) {
        rt_lora_spec spec;
        if (ck.n_lora == 0)
            rc = rt_fail(err, "--lora-adapter needs an adapter checkpoint; %s holds full weights", path);
        if (rc == 0) rc = rt_lora_spec_from_config(&cfg, &spec, err);
        if (rc == 0 && spec.nf4_sites)
            fprintf(stderr,
                    "note: %s was trained on an NF4 base; export the base with the same quantization "
                    "error in mind, or merge (retort merge) for the exact trained weights\n",
                    path);
        if (rc == 0) rc = rt_gguf_export_adapter(ck.lora, ck.n_lora, &cfg, spec.scale, out, rep, err);
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
        if (rc == 0) rc = export_weights(job, merged, n, &merged_cfg, &ck, path, out, &r, err);
        rt_model_free_host_tensors(merged, n);
    } else if (rc == 0) {
        rc = export_weights(job, ck.model, ck.n_model, &cfg, &ck, path, out, &r, err);
    }
    if (rc == 0 && job->onnx) {
        size_t n = strlen(out);
        printf("wrote %s%s: model.onnx (%s, %d nodes, %d initializers, %.2f MiB)", out,
               n && out[n - 1] == '/' ? "" : "/", rt_onnx_precision_name(job->onnx_opts.precision),
               orep->n_nodes, orep->n_initializers, (double)orep->model_bytes / (1 << 20));
        if (orep->data_bytes) printf(", model.onnx.data (%.2f MiB)", (double)orep->data_bytes / (1 << 20));
        printf(", genai_config.json and the tokenizer files\n");
    } else if (rc == 0 && job->peft) {
        printf(
            "wrote %s: adapter_config.json (LoRA r %d, alpha %g%s), adapter_model.safetensors (%d tensors, "
            "%s, %.2f MiB)\n",
            out, cfg.lora.rank, cfg.lora.alpha, cfg.lora.rslora ? ", rsLoRA" : "", r.peft.n_tensors,
            job->peft_opts.bf16 ? "BF16" : "F32", (double)r.peft.bytes / (1 << 20));
        if (r.peft.nf4)
            fprintf(stderr,
                    "note: %s was trained on an NF4 base (QLoRA); PEFT applies the adapters to the "
                    "full-precision base, so its outputs differ slightly from retort's (merge with "
                    "retort merge for the exact trained weights)\n",
                    path);
        if (r.peft.tied_head)
            fprintf(stderr,
                    "note: the head is tied to the embedding and carries an adapter: PEFT loads and runs "
                    "it, but warns, and its merge_and_unload would change the embedding too; for a "
                    "merged model use retort merge and --format hf\n");
    } else if (rc == 0 && job->hf) {
        printf("wrote %s: config.json (%s), generation_config.json, model.safetensors (%d tensors, %s, %.2f "
               "MiB) and the tokenizer files\n",
               out, r.hf.architecture, r.hf.n_tensors, job->hf_opts.bf16 ? "BF16" : "F32",
               (double)r.hf.weights_bytes / (1 << 20));
    } else if (rc == 0) {
        printf("wrote %s: %d tensors, %.2f MiB of tensor data (%s)\n", out, rep->n_tensors,
               (double)rep->bytes / (1 << 20), adapter_only ? "LoRA adapter, f32" : rt_ggml_type_name(type));
        if (rep->n_fallback)
            printf("note: %d matrices could not use %s, e.g. %s\n", rep->n_fallback, rt_ggml_type_name(type),
                   rep->fallback_note);
    }
    rt_tokenizer_free(tok);
    rt_ckpt_free(&ck);
    return rc ? 1 : 0;
}

static int usage_error(const char *argv0, rt_error *err) {
    rt_cli_error(argv0, err->msg);
    return 2;
}

int rt_cmd_export(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *ckpt = NULL, *out = NULL, *format = NULL, *type_name = NULL, *precision = NULL, *opset = NULL,
               *dtype = NULL, *base_name = NULL;
    export_job job;
    memset(&job, 0, sizeof job);
    for (int i = 1; i < argc;) {
        int got = 0;
        if ((got = rt_arg_value(argc, argv, &i, "--out", &out, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--format", &format, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--type", &type_name, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--precision", &precision, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--opset", &opset, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--dtype", &dtype, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--base-name", &base_name, &err))) {
        } else if (strcmp(argv[i], "--lora-adapter") == 0 || strcmp(argv[i], "--external-data") == 0) {
            *(argv[i][2] == 'l' ? &job.adapter_only : &job.onnx_opts.external_data) = 1;
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
        if (got < 0) return usage_error(argv[0], &err);
    }
    if (!ckpt || !out || !out[0] || !format) {
        rt_fail(&err, "usage: retort export CHECKPOINT --format gguf|onnx|hf|peft --out PATH (see --help)");
        return usage_error(argv[0], &err);
    }
    job.onnx = strcmp(format, "onnx") == 0;
    job.hf = strcmp(format, "hf") == 0;
    job.peft = strcmp(format, "peft") == 0;
    if (!job.onnx && !job.hf && !job.peft && strcmp(format, "gguf") != 0) {
        rt_fail(&err, "--format %s: expected gguf, onnx, hf or peft", format);
        return usage_error(argv[0], &err);
    }
    // each option belongs to one format
    const struct {
        const char *name, *format;
        int given;
    } owned[] = {{"--type", "gguf", type_name != NULL},
                 {"--lora-adapter", "gguf", job.adapter_only},
                 {"--precision", "onnx", precision != NULL},
                 {"--opset", "onnx", opset != NULL},
                 {"--external-data", "onnx", job.onnx_opts.external_data},
                 {"--dtype", "hf", dtype != NULL && !job.peft},
                 {"--base-name", "peft", base_name != NULL}};
    for (size_t k = 0; k < sizeof owned / sizeof *owned; k++)
        if (owned[k].given && strcmp(owned[k].format, format) != 0) {
            rt_fail(&err, "%s is for --format %s (see retort export --help)", owned[k].name, owned[k].format);
            return usage_error(argv[0], &err);
        }
    if (job.hf || job.peft) {
        job.hf_opts.bf16 = job.peft_opts.bf16 = dtype && strcmp(dtype, "bf16") == 0;
        job.peft_opts.base_name = base_name;
        if (dtype && !job.hf_opts.bf16 && strcmp(dtype, "f32") != 0) {
            rt_fail(&err, "--dtype %s: expected f32 or bf16", dtype);
            return usage_error(argv[0], &err);
        }
    } else if (job.onnx) {
        job.onnx_opts.precision = rt_onnx_precision_from_name(precision ? precision : "fp32");
        job.onnx_opts.source = ckpt;
        if (job.onnx_opts.precision < 0) {
            rt_fail(&err, "--precision %s: expected fp32, fp16 or int4", precision);
            return usage_error(argv[0], &err);
        }
        job.onnx_opts.opset = !opset                     ? 21
                              : strcmp(opset, "21") == 0 ? 21
                              : strcmp(opset, "23") == 0 ? 23
                                                         : -1;
        if (job.onnx_opts.opset < 0) {
            rt_fail(&err, "--opset %s: expected 21 (onnxruntime >= 1.18) or 23 (>= 1.23)", opset);
            return usage_error(argv[0], &err);
        }
    } else if ((job.type = rt_ggml_type_from_name(type_name ? type_name : "f16")) < 0) {
        rt_fail(&err, "--type %s: expected f32, f16, bf16, q8_0, q4_0 or q6_k", type_name);
        return usage_error(argv[0], &err);
    }
    int rc = export_ckpt(ckpt, out, &job, &err);
    if (rc) rt_cli_error(argv[0], err.msg);
    return rc;
}
