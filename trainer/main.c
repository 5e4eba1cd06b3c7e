// retort: one binary, one verb per job.
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "train/comm.h"
#include "args.h"
#include "commands.h"

#ifndef RT_VERSION
#define RT_VERSION "dev"
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", rt_cmd_train, "train a model from a YAML config (pretraining or full fine-tuning)"},
    {"synth", rt_cmd_synth, "a teacher answers prompts: the dataset a student distills from"},
    {"distill", rt_cmd_distill,
     "train a student from a teacher (its answers, top-k log-probs or live logits)"},
    {"finetune", rt_cmd_finetune, "LoRA, QLoRA (NF4 base) or full fine-tuning of a checkpoint"},
    {"merge", rt_cmd_merge, "fold LoRA adapters into their base: a full checkpoint"},
    {"import", rt_cmd_import, "a Hugging Face folder or a GGUF file (Llama, Mistral, Qwen2) as a checkpoint"},
    {"export", rt_cmd_export, "a checkpoint as GGUF (llama.cpp), ONNX or a Hugging Face folder"},
    {"generate", rt_cmd_generate, "sample text from a checkpoint"},
    {"eval", rt_cmd_eval, "loss, perplexity and task exact-match of checkpoints"},
    {"inspect", rt_cmd_inspect, "show what a checkpoint or dataset holds"},
    {"data", rt_cmd_data, "make datasets: synthetic tasks, or text/JSONL files"},
    {"tokenize", rt_cmd_tokenize, "the token ids of a text under a tokenizer.json, HF folder or GGUF file"},
};

void rt_cli_error(const char *cmd, const char *msg) {
    fprintf(stderr, "retort %s: error: %s\n", cmd, msg);
}

static void usage(FILE *out) {
    fprintf(out, "retort %s: make small language models\n\nusage: retort <command> [options]\n\ncommands:\n",
            RT_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`retort <command> --help` lists each command's options.\n");
}

// The version, the backends and communicators this binary has, and whether a GPU is usable now (scripts
// test for "gpu: yes" and read the communicators line).
static void print_version(void) {
    printf("retort %s\nbackends: cpu%s\n", RT_VERSION, rt_backend_cuda() ? ", cuda" : "");
    printf("cpu gemm: %s\n", rt_cpu_gemm_library());
    printf("communicators: single%s%s\n", rt_comm_built("mpi") ? ", mpi" : "",
           rt_comm_built("nccl") ? ", nccl" : "");
    rt_error why;
    if (!rt_backend_cuda())
        printf("gpu: no (built without CUDA)\n");
    else if (rt_cuda_available(&why))
        printf("gpu: yes\n");
    else
        printf("gpu: no (%s)\n", why.msg);
}

int main(int argc, char **argv) {
    rt_cpu_wait_policy_exec(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        print_version();
        return 0;
    }
    rt_error err;
    if (rt_stop_signals_init(&err)) {
        fprintf(stderr, "retort: error: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "retort: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
