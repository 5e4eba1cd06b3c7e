// Progress reporting: one JSON object per line in <run dir>/metrics.jsonl, and a live status line on
// stderr (rewritten in place on a terminal, one line per report otherwise, e.g. in a Slurm log).
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/common.h"

typedef struct rt_metrics {
    int fd;          // metrics.jsonl, opened for appending; -1 when closed
    char path[2048]; // its path, for messages
    int write_errno; // the first failed record's errno (0: none); records after it are not written
    int tty;         // stderr is a terminal
    int line_open;   // a status line is on screen without its newline
    int quiet;       // a rank other than 0 of a data-parallel run: writes and prints nothing
} rt_metrics;

// Opens <dir>/metrics.jsonl for appending (a resumed run continues the same file).
int rt_metrics_open(rt_metrics *mt, const char *dir, rt_error *err);
// The metrics of a rank that does not report (every rank but 0): every call does nothing.
void rt_metrics_open_quiet(rt_metrics *mt);
void rt_metrics_close(rt_metrics *mt);
// Fails, naming the file and the cause, once a record could not be written (a full disk): the training loop
// checks after each report so a run does not go on without its metrics.
int rt_metrics_check(const rt_metrics *mt, rt_error *err);

typedef struct rt_train_report {
    int64_t step, total_steps;
    double loss, lr, grad_norm;
    int64_t tokens_seen;
    double tokens_per_s;
    double flops_per_s;      // model FLOPs per second achieved (tokens/s x FLOPs per token)
    double mfu;              // flops_per_s / peak_flops, < 0 when no peak is known
    double peak_flops;       // the stated peak MFU is against, FLOP/s
    const char *peak_source; // where that peak comes from: "spec H100 SXM", "config", "measured"
    double gemm_flops;       // the GEMM measured at start, FLOP/s (0: not measured), reported beside MFU
    double elapsed_s;        // wall time of this process's training so far
    double eta_s;
    int has_kd;       // distillation: the loss's parts, each a mean over the counted targets
    double ce, kd;    // cross-entropy on the data, divergence from the teacher
    int64_t skipped;  // non-finite steps skipped so far by this process (train.skip_nonfinite)
    int world;        // data-parallel ranks; tokens_per_s and flops_per_s are over all of them
    double comm_s;    // world > 1: wall time rank 0 spent in the communicator since the last report
    double comm_frac; // that time over the steps' wall time in the same window
} rt_train_report;

void rt_metrics_train(rt_metrics *mt, const rt_train_report *r);
// A step skipped because its loss or gradient norm was not finite: a "skip" record and a note.
void rt_metrics_skip(rt_metrics *mt, int64_t step, double loss, double grad_norm, int64_t in_a_row,
                     int64_t skipped);
void rt_metrics_eval(rt_metrics *mt, int64_t step, double val_loss, int64_t val_tokens);
// A "run" record where a process starts (or resumes) training: the step it starts from, the world size and,
// under Slurm, the job (SLURM_JOB_ID, SLURM_ARRAY_JOB_ID and SLURM_ARRAY_TASK_ID) and how often Slurm has
// requeued it (SLURM_RESTART_COUNT), so the reruns of a requeued job can be told apart.
void rt_metrics_run(rt_metrics *mt, int64_t step, int world);
// A free-form message that must not be overwritten by the status line.
void rt_metrics_note(rt_metrics *mt, const char *fmt, ...) RT_PRINTF(2, 3);
// Formats FLOP/s as "61.23 GFLOP/s" or "989 TFLOP/s".
void rt_format_rate(char *out, size_t cap, double flops);
// Formats seconds as "1h02m", "3m07s", "12s".
void rt_format_duration(char *out, size_t cap, double seconds);

#endif
