// retort train CONFIG [key=value ...] [--resume] [--stop-after N]: pretraining and full fine-tuning through
// the one training loop (train_loop.c).
#include <stdio.h>

#include "commands.h"
#include "config/config.h"
#include "train_run.h"

static void print_help(void) {
    printf(
        "usage: retort train CONFIG.yaml [section.key=value ...] [--resume] [--stop-after STEP]\n\n"
        "Trains the model a config describes. Options:\n"
        "  --resume          continue from the newest complete checkpoint in run.out_dir (damaged ones are\n"
        "                    skipped with a warning; with none, training starts from scratch)\n"
        "  --stop-after N    save a checkpoint and stop after step N (a time-limited job's slice)\n"
        "SIGINT, SIGTERM or SIGUSR1 (Ctrl-C; Slurm's time limit, scancel, requeue or --signal=USR1@N) on "
        "any\n"
        "rank: every rank finishes the current step, a checkpoint is saved, and retort exits 75 "
        "(checkpointed,\n"
        "not finished); the same command with --resume continues, so it can start and continue a run alike.\n"
        "Exit codes: 0 done (or --stop-after reached), 1 failure, 2 usage or config error, 75 "
        "checkpointed.\n\n"
        "Config keys (every one can be overridden as section.key=value):\n\n");
    rt_config_print_help(stdout, NULL);
}

int rt_cmd_train(int argc, char **argv) {
    return rt_train_main(argc, argv, RT_RUN_TRAIN, print_help);
}
