// retort distill CONFIG [key=value ...] [--resume] [--stop-after N]: stage 2 of distillation, the student
// learns from a teacher through the same training loop, checkpoints and resume as `retort train`.
#include <stdio.h>

#include "commands.h"
#include "config/config.h"
#include "train_run.h"

static void print_help(void) {
    printf(
        "usage: retort distill CONFIG.yaml [section.key=value ...] [--resume] [--stop-after STEP]\n\n"
        "Trains the student the model section describes on data.train (usually made by `retort synth`) with\n"
        "  loss = (1 - alpha) * CE(data) + alpha * T^2 * D(teacher || student)   (docs/distillation.md)\n"
        "distill.mode sequence: CE on the teacher's answers (any teacher, any vocabulary); offline_topk: D\n"
        "against the teacher's top-k log-probs stored in the dataset; online: the teacher (distill.teacher)\n"
        "runs forward on every batch and D uses its whole distribution. The teacher is frozen: it gets no\n"
        "gradients and no optimizer state. Options as for `retort train`:\n"
        "  --resume          continue from the newest complete checkpoint in run.out_dir\n"
        "  --stop-after N    save a checkpoint and stop after step N\n"
        "A stop signal (SIGINT, SIGTERM, SIGUSR1) saves a checkpoint and exits 75, as for `retort train`.\n\n"
        "Keys of the distill section (every other section as in `retort train --help`):\n\n");
    rt_config_print_help(stdout, "distill");
}

int rt_cmd_distill(int argc, char **argv) {
    return rt_train_main(argc, argv, RT_RUN_DISTILL, print_help);
}
