// retort synth CONFIG [key=value ...]: stage 1 of distillation, the teacher answers prompts
// (distill/synth.h).
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "tokenizer/tokenizer_source.h"
#include "config/config.h"
#include "infer/load.h"
#include "distill/synth.h"
#include "base/files.h"
#include "train/comm.h"

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) {
    stop_signal = sig;
}

static void print_help(void) {
    printf(
        "usage: retort synth CONFIG.yaml [section.key=value ...]\n\n"
        "A teacher checkpoint answers prompts (a JSONL file, or a synthetic task's problems) and the "
        "answers\n"
        "become a dataset for `retort distill`: BOS, prompt, answer, EOS per document with /prompt_len, and\n"
        "with synth.topk > 0 the teacher's top-k log-probabilities at every answer position. Work is saved\n"
        "in chunks under <synth.out>.part/: an interrupted run (Ctrl-C, SIGTERM, SIGUSR1: exit 75 after the\n"
        "round's chunks; or a crash) continues where it stopped when started again with the same settings. "
        "Under mpirun (or srun --mpi=pmix) the ranks\n"
        "share the chunks and rank 0 writes the file one process would, byte for byte.\n\n"
        "Keys of the synth section (run.seed seeds the sampling, system.* picks the device):\n\n");
    rt_config_print_help(stdout, "synth");
}

int rt_cmd_synth(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    static rt_config cfg; // large (paths); static keeps it off the stack
    rt_error err = {{0}};
    const char *config_path;
    int rc = rt_config_from_args(argc, argv, NULL, &cfg, &config_path, &err);
    for (int i = 1; rc == 0 && i < argc; i++)
        if (argv[i][0] == '-') {
            rt_fail(&err, "unknown option %s (see retort synth --help)", argv[i]);
            rc = 2;
        }
    if (rc) {
        rt_cli_error("synth", err.msg);
        return rc;
    }
    // under mpirun or srun every rank runs this command; alone it is the single communicator. Finished
    // chunks travel in host memory, so the mpi communicator serves synth on any device.
    rt_comm comm;
    const char *dist = strcmp(cfg.system.dist, "nccl") == 0 ? "mpi" : cfg.system.dist;
    if (rt_comm_init(&comm, dist, "cpu", &err)) {
        rt_cli_error("synth", err.msg);
        return 1;
    }
    // set-up on every rank; a failure on any is agreed on, so no rank waits for one that gave up
    rt_synth_prompts prompts;
    memset(&prompts, 0, sizeof prompts);
    char hash[17];
    rt_ctx ctx;
    rt_model teacher;
    rt_config teacher_cfg;
    int ctx_ok = 0, teacher_ok = 0, failed = 0;
    // the teacher's tokenizer encodes the prompts and decodes the answers; the output records it
    rt_tok_source tok_src;
    rt_tokenizer *tok = NULL;
    if (rt_tok_source_load(cfg.synth.teacher, &tok_src, &tok, &err)) {
        rt_fail_wrap(&err, "synth.teacher");
        failed = 1;
    }
    if (!failed &&
        (cfg.synth.prompts[0]
             ? rt_synth_prompts_from_jsonl(cfg.synth.prompts, tok, tok_src.type, tok_src.hash, &prompts, &err)
             : rt_synth_prompts_from_task(&cfg, tok, tok_src.type, tok_src.hash, &prompts, &err)))
        failed = 1;
    if (!failed && rt_file_hash(cfg.synth.teacher, hash, &err)) {
        rt_fail_wrap(&err, "synth.teacher");
        failed = 1;
    }
    // ranks of a node spread over its GPUs; synth sums nothing on them, so several may share one
    int gpus = rt_cuda_device_count();
    if (!failed && rt_ctx_init_device(&ctx, cfg.system.device, cfg.system.precision,
                                      rt_comm_threads(&comm, cfg.system.threads, NULL, 0),
                                      gpus > 0 ? comm.local_rank % gpus : 0, &err))
        failed = 1;
    ctx_ok = !failed;
    if (!failed &&
        rt_load_model(cfg.synth.teacher, &ctx, cfg.synth.batch_size, 0, &teacher, &teacher_cfg, &err)) {
        rt_fail_wrap(&err, "synth.teacher");
        failed = 1;
    }
    teacher_ok = !failed;
    rc = rt_comm_agree(&comm, failed, NULL, &err) ? 1 : 0;
    if (rc == 0) {
        char ranks[48] = "";
        if (comm.world > 1)
            snprintf(ranks, sizeof ranks, " | %d ranks (%s) share the chunks", comm.world, comm.name);
        if (comm.rank == 0)
            fprintf(stderr, "teacher: %s (%zu parameters, hash %s) on %s | %zu prompts x %d sample(s)%s%s\n",
                    cfg.synth.teacher, rt_model_param_count(&teacher), hash, ctx.be->name, prompts.n,
                    cfg.synth.samples, cfg.synth.topk ? ", keeping top-k log-probs" : "", ranks);
        rt_catch_stop_signals(on_signal);
        rt_synth_stats st;
        int r =
            rt_synth_run(&cfg, &comm, &teacher, cfg.synth.teacher, hash, &prompts, &stop_signal, &st, &err);
        if (r == 0 && comm.rank == 0) {
            printf("wrote %s: %lld answers, %lld answer tokens, %lld cut at max_tokens, %lld ended by a stop "
                   "string, %.1f s (%lld chunks made, %lld reused)\n",
                   cfg.synth.out, (long long)st.sequences, (long long)st.answer_tokens,
                   (long long)st.hit_max_tokens, (long long)st.stopped, st.seconds, (long long)st.chunks_done,
                   (long long)st.chunks_reused);
            if (st.scored)
                printf("teacher exact match on these prompts: %.2f%% (%lld/%lld)\n",
                       100.0 * st.correct / st.scored, (long long)st.correct, (long long)st.scored);
        } else if (r == 1) {
            if (comm.rank == 0)
                fprintf(stderr,
                        "stopped by signal %d: finished chunks are kept in %s.part; exit %d; the same "
                        "command continues\n",
                        st.stop_signal, cfg.synth.out, RT_EXIT_CHECKPOINTED);
            rc = RT_EXIT_CHECKPOINTED;
        } else if (r < 0) {
            rc = 1;
        }
    }
    if (rc == 1) rt_cli_error("synth", err.msg);
    if (teacher_ok) rt_model_free(&teacher);
    if (ctx_ok) ctx.be->ctx_free(&ctx);
    rt_synth_prompts_free(&prompts);
    rt_tokenizer_free(tok);
    rt_tok_source_free(&tok_src);
    comm.destroy(&comm);
    return rc;
}
