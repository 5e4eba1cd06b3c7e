// retort finetune CONFIG [base=CKPT] [key=value ...] [--resume] [--stop-after N]: LoRA, QLoRA or full
// fine-tuning of a base checkpoint through the one training loop (train_loop.c).
#include <stdio.h>

#include "commands.h"
#include "config/config.h"
#include "train_run.h"

static void print_help(void) {
    printf(
        "usage: retort finetune CONFIG.yaml base=CKPT [section.key=value ...] [--resume] [--stop-after "
        "STEP]\n\n"
        "Adapts the base checkpoint (finetune.base, or base=CKPT) to data.train. finetune.method:\n"
        "  lora    adapters W x + (alpha / r) B A x on lora.targets; the base is frozen (no gradients, no\n"
        "          optimizer state); A starts random and B zero, so step 0 computes the base model exactly\n"
        "  qlora   the same, with the frozen block projections stored in NF4 (qlora.layers) and dequantized\n"
        "          block-wise right before each matmul\n"
        "  full    every weight trains, starting from the base's\n"
        "The model section comes from the base. LoRA checkpoints hold the adapters and their optimizer "
        "state\n"
        "with the base's path and content hash; `retort eval` and `retort generate` load them with their\n"
        "base, and `retort merge` folds them into a full checkpoint. Options as for `retort train`:\n"
        "  --resume          continue from the newest complete checkpoint in run.out_dir\n"
        "  --stop-after N    save a checkpoint and stop after step N\n"
        "A stop signal (SIGINT, SIGTERM, SIGUSR1) saves a checkpoint and exits 75, as for `retort train`.\n\n"
        "Keys of the finetune, lora and qlora sections (the others as in `retort train --help`):\n\n");
    rt_config_print_help(stdout, "finetune");
    rt_config_print_help(stdout, "lora");
    rt_config_print_help(stdout, "qlora");
}

int rt_cmd_finetune(int argc, char **argv) {
    return rt_train_main(argc, argv, RT_RUN_FINETUNE, print_help);
}
