// retort import hf DIR|gguf FILE --out CKPT [--max-seq-len N]: a pretrained model from another format as an
// ordinary checkpoint that train, finetune, distill, eval, generate and export take.
// retort import peft DIR --base CKPT --out ADAPTER_CKPT: a PEFT LoRA adapter as an adapter checkpoint of
// that base, for eval, generate, merge, export and continued fine-tuning.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "gguf/ggml_quants.h"
#include "import/gguf_import.h"
#include "import/hf_import.h"
#include "import/peft_import.h"
#include "model/lora.h"

static void print_help(void) {
    printf(
        "usage: retort import hf DIR --out CKPT.h5 [--max-seq-len N] [--no-tokenizer]\n"
        "       retort import gguf FILE.gguf --out CKPT.h5 [--max-seq-len N]\n"
        "       retort import peft DIR --base CKPT.h5 --out ADAPTER.h5\n\n"
        "hf: a Hugging Face model folder (config.json and model.safetensors, or the shards that\n"
        "model.safetensors.index.json lists) of a LlamaForCausalLM, MistralForCausalLM or\n"
        "Qwen2ForCausalLM (SmolLM and TinyLlama are Llama). Weights in F32, F16 or BF16 become fp32.\n"
        "gguf: a llama.cpp model file of architecture llama or qwen2 (Llama 2/3.x, SmolLM, TinyLlama,\n"
        "Mistral, Qwen2/2.5). Tensors in f32, f16, bf16, q8_0, q4_0, q4_k or q6_k become fp32 (quantized\n"
        "ones as llama.cpp dequantizes them); the q/k rows that llama.cpp's converter permutes for llama\n"
        "files are put back; Llama 3.1's RoPE scaling (rope_freqs.weight) and linear scaling are kept.\n"
        "The checkpoint's config holds the model's keys and every other key's default, at step 0.\n"
        "  --out CKPT.h5      the checkpoint written (atomically)\n"
        "  --max-seq-len N    a context shorter than the model's (less memory for generation; needed\n"
        "                     when a sliding window is shorter than the context)\n"
        "  --no-tokenizer     hf: store the weights without the folder's tokenizer.json\n"
        "The checkpoint stores the model's tokenizer (docs/tokenizers.md): hf the folder's tokenizer.json\n"
        "with tokenizer_config.json's special tokens (one retort cannot read is refused unless\n"
        "--no-tokenizer is given), gguf the file's tokenizer.* keys when retort reads them. Without one\n"
        "(no tokenizer.json, --no-tokenizer) it records the byte tokenizer: give such a model token ids.\n\n"
        "peft: a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) trained on\n"
        "the model whose retort checkpoint --base names (`retort import hf` of it). The adapter\n"
        "checkpoint records that base's path and content hash, like the ones `retort finetune` writes:\n"
        "eval, generate, merge and export read it, and finetune.adapter=ADAPTER.h5 continues training\n"
        "it. Plain LoRA on q/k/v/o/gate/up/down_proj and lm_head, one rank and alpha, every layer;\n"
        "DoRA, fan_in_fan_out, biases, modules_to_save and per-module ranks are refused.\n"
        "  --base CKPT.h5     the base checkpoint\n"
        "  --out ADAPTER.h5   the adapter checkpoint written (atomically)\n");
}

// "q4_k 1.2M + f32 0.1M" elements by type.
static void type_summary(const rt_gguf_import_report *r, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = '\0';
    for (int t = 0; t < (int)(sizeof r->n_by_type / sizeof r->n_by_type[0]) && k < cap; t++)
        if (r->n_by_type[t])
            k += (size_t)snprintf(buf + k, cap - k, "%s%s %.3gM", k ? " + " : "", rt_ggml_type_name(t),
                                  (double)r->n_by_type[t] / 1e6);
}

static int import_gguf(const char *path, const char *out, int max_seq_len) {
    rt_error err = {{0}};
    rt_gguf_import_opts opts = {max_seq_len};
    rt_gguf_import_report rep;
    if (rt_gguf_import(path, out, &opts, &rep, &err)) {
        rt_cli_error("import", err.msg);
        return 1;
    }
    char types[256];
    type_summary(&rep, types, sizeof types);
    printf("imported %s (%s, context %d%s%s%s) into %s: %d tensors, %zu parameters, %s -> fp32\n", path,
           rep.arch, max_seq_len ? max_seq_len : rep.context_length, rep.tied ? ", tied head" : "",
           rep.unpermuted ? ", q/k rows permuted back" : "", rep.rope_freqs ? ", llama3 RoPE scaling" : "",
           out, rep.n_tensors, rep.n_params, types);
    if (rep.tokenizer_stored) printf("the checkpoint stores the file's %s tokenizer\n", rep.tokenizer);
    return 0;
}

static const char *dtype_summary(const rt_hf_import_report *r, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s%s%s", r->n_f32 ? "F32" : "", r->n_f32 && (r->n_f16 || r->n_bf16) ? "+" : "",
             r->n_f16 ? "F16" : "", r->n_f16 && r->n_bf16 ? "+" : "", r->n_bf16 ? "BF16" : "");
    return buf;
}

static int import_hf(const char *dir, const char *out, int max_seq_len, int no_tokenizer) {
    rt_error err = {{0}};
    rt_hf_import_opts opts = {max_seq_len, no_tokenizer};
    rt_hf_import_report rep;
    if (rt_hf_import(dir, out, &opts, &rep, &err)) {
        rt_cli_error("import", err.msg);
        return 1;
    }
    const rt_hf_config *hf = &rep.hf;
    if (rep.head_missing)
        fprintf(stderr, "note: %s has no lm_head.weight: the head is tied to the embedding\n", dir);
    if (rep.head_ignored)
        fprintf(stderr, "note: tie_word_embeddings is true: lm_head.weight in %s is not used\n", dir);
    if (rep.window_ignored)
        fprintf(stderr,
                "note: sliding_window %d is not shorter than the context, so the window never applies: "
                "ignored\n",
                rep.window_ignored);
    if (rep.n_ignored)
        fprintf(stderr, "note: skipped %d RoPE inverse-frequency tensors (retort computes them)\n",
                rep.n_ignored);
    char dtypes[32];
    printf("imported %s (%s: %d layers, dim %d, %d/%d heads, ffn %d, vocab %d, context %d%s) into %s: %d "
           "tensors, %zu parameters, %s -> fp32\n",
           dir, hf->architecture, hf->n_layers, hf->hidden_size, hf->n_heads, hf->n_kv_heads,
           hf->intermediate_size, hf->vocab_size, max_seq_len ? max_seq_len : hf->max_position_embeddings,
           rep.tied ? ", tied head" : "", out, rep.n_tensors, rep.n_params,
           dtype_summary(&rep, dtypes, sizeof dtypes));
    if (rep.tokenizer == RT_HF_TOK_STORED)
        printf("the checkpoint stores the folder's tokenizer (%s, %d ids)\n", rep.tok_type, rep.tok_vocab);
    else
        fprintf(stderr,
                "note: %s: the checkpoint records retort's byte tokenizer, not the model's: give it token "
                "ids (retort tokenize with the model's tokenizer makes them)\n",
                rep.tokenizer == RT_HF_TOK_SKIPPED ? "--no-tokenizer" : "the folder has no tokenizer.json");
    return 0;
}

static int import_peft(const char *dir, const char *base, const char *out) {
    rt_error err = {{0}};
    rt_peft_import_report rep;
    if (rt_peft_import(dir, base, out, &rep, &err)) {
        rt_cli_error("import", err.msg);
        return 1;
    }
    char targets[RT_LORA_TARGETS_MAX];
    rt_lora_targets_text(rep.targets, targets, sizeof targets);
    printf(
        "imported %s (LoRA r %d, alpha %g%s, targets %s, %d layers) into %s: %d tensors; base %s (hash %s)\n",
        dir, rep.peft.rank, rep.peft.alpha, rep.peft.rslora ? ", rsLoRA" : "", targets, rep.n_layers, out,
        rep.n_tensors, rep.base, rep.base_hash);
    return 0;
}

int rt_cmd_import(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *source = NULL, *path = NULL, *out = NULL, *v = NULL, *base = NULL;
    int64_t max_seq_len = 0;
    int no_tokenizer = 0;
    for (int i = 1; i < argc;) {
        int got = 0;
        if (strcmp(argv[i], "--no-tokenizer") == 0) {
            no_tokenizer = 1;
            i++;
        } else if ((got = rt_arg_value(argc, argv, &i, "--out", &out, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--base", &base, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--max-seq-len", &v, &err))) {
            if (got > 0 && rt_arg_int("--max-seq-len", v, 2, 1 << 20, &max_seq_len, &err)) got = -1;
        } else if (argv[i][0] == '-') {
            rt_fail(&err, "unknown option %s (see retort import --help)", argv[i]);
            got = -1;
        } else if (!source) {
            source = argv[i++];
        } else if (!path) {
            path = argv[i++];
        } else {
            rt_fail(&err, "unexpected argument %s: one model at a time", argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error("import", err.msg);
            return 2;
        }
    }
    if (!source || !path || !out || !out[0]) {
        rt_cli_error("import",
                     "usage: retort import hf DIR | gguf FILE | peft DIR --out CKPT.h5 (see --help)");
        return 2;
    }
    int peft = strcmp(source, "peft") == 0;
    if (peft != (base != NULL) || (peft && max_seq_len)) {
        rt_cli_error("import", peft ? (base ? "--max-seq-len is for import hf and gguf"
                                            : "import peft needs --base CKPT.h5: the checkpoint of the model "
                                              "the adapter was trained on")
                                    : "--base is for import peft");
        return 2;
    }
    if (no_tokenizer && strcmp(source, "hf") != 0) {
        rt_cli_error("import", "--no-tokenizer is for import hf");
        return 2;
    }
    if (peft) return import_peft(path, base, out);
    if (strcmp(source, "hf") == 0) return import_hf(path, out, (int)max_seq_len, no_tokenizer);
    if (strcmp(source, "gguf") == 0) return import_gguf(path, out, (int)max_seq_len);
    rt_fail(&err,
            "import %s: expected hf (a Hugging Face model folder), gguf (a llama.cpp file) or peft (a PEFT "
            "adapter folder)",
            source);
    rt_cli_error("import", err.msg);
    return 2;
}
