// Small strict option parsing shared by the commands: "--name value" or "--name=value".
#ifndef RT_ARGS_H
#define RT_ARGS_H

#include <stdint.h>

#include "base/common.h"

// If argv[*i] is option `name`, stores its value (the next argument or the part after '=') in *value,
// advances *i past it and returns 1; returns 0 when argv[*i] is another argument; -1 (err filled) when the
// value is missing.
int rt_arg_value(int argc, char **argv, int *i, const char *name, const char **value, rt_error *err);

// Strict number parsing for option values: the whole string must be a number within [lo, hi].
int rt_arg_int(const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out, rt_error *err);
int rt_arg_float(const char *opt, const char *text, double lo, double hi, double *out, rt_error *err);

struct rt_config;
// Loads the CONFIG.yaml of `retort <cmd> CONFIG.yaml [section.key=value ...] [options]` (the first argument
// that is neither an option nor an assignment), applies the assignments in order and validates. Options
// (arguments starting with '-') are skipped, with the next argument too for those in value_opts (a
// NULL-terminated list, may be NULL); the command parses them itself. Returns 0, or 2 with err filled.
int rt_config_from_args(int argc, char **argv, const char *const *value_opts, struct rt_config *cfg,
                        const char **config_path, rt_error *err);

// The exit code of a run that a signal stopped after saving what it had done (a checkpoint, finished synth
// chunks): not finished, and the same command continues it (`--resume` for training). 75 is sysexits'
// EX_TEMPFAIL, "try again later"; a Slurm batch script requeues the job on it (scripts/slurm/).
#define RT_EXIT_CHECKPOINTED 75

// Blocks SIGINT, SIGTERM and SIGUSR1 in the calling thread and in every thread it starts later, and starts
// the thread that waits for them (args.c says why). Called first in main, before any other thread exists.
int rt_stop_signals_init(rt_error *err);
// handler for SIGINT (Ctrl-C), SIGTERM (Slurm's time limit, scancel, requeue and preemption) and SIGUSR1
// (`sbatch --signal=USR1@SECONDS`, the warning before the limit). It runs on the signal thread, not in a
// signal context, and should only set a flag the command polls.
void rt_catch_stop_signals(void (*handler)(int));

// True when argv holds -h or --help.
int rt_arg_wants_help(int argc, char **argv);

#endif
