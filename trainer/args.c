#define _POSIX_C_SOURCE 200809L // pthread_sigmask, sigwait
#include "args.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

// Stop signals are never delivered to a thread that computes. A signal frame pushed onto a thread that is
// inside oneDNN's generated GEMM code corrupted that code's state (heap corruption, segfaults and hangs in
// about one SIGTERM in six during the first GEMMs: tests/check_resume.py's SIGTERM case). So every thread
// blocks them (the mask is set in main before any thread exists, and threads inherit it) and one thread
// waits for them with sigwait and runs the command's handler there, as ordinary code. Until a command
// installs a handler, a stop signal does what it does by default: it ends the process.
static void (*_Atomic stop_handler)(int);

static void stop_signal_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGUSR1);
}

static void *stop_signal_thread(void *arg) {
    (void)arg;
    sigset_t set;
    stop_signal_set(&set);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0) continue;
        void (*handler)(int) = atomic_load(&stop_handler);
        if (handler) {
            handler(sig);
        } else { // the default action: unblock in this thread only and take the signal again
            signal(sig, SIG_DFL);
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
            raise(sig);
        }
    }
    return NULL;
}

int rt_stop_signals_init(rt_error *err) {
    sigset_t set;
    stop_signal_set(&set);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_attr_t attr;
    pthread_t thread;
    if (rc == 0) rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&thread, &attr, stop_signal_thread, NULL);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return rt_fail(err, "cannot start the thread that waits for stop signals: %s", strerror(rc));
    }
    return 0;
}

void rt_catch_stop_signals(void (*handler)(int)) {
    atomic_store(&stop_handler, handler);
}

int rt_arg_value(int argc, char **argv, int *i, const char *name, const char **value, rt_error *err) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        (*i)++;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return rt_fail(err, "option %s needs a value", name);
    *value = argv[*i + 1];
    *i += 2;
    return 1;
}

int rt_arg_int(const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out, rt_error *err) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno == ERANGE)
        return rt_fail(err, "%s: expected an integer, got '%s'", opt, text);
    if (v < lo || v > hi)
        return rt_fail(err, "%s: %lld is out of range [%lld, %lld]", opt, v, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int rt_arg_float(const char *opt, const char *text, double lo, double hi, double *out, rt_error *err) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno == ERANGE || !isfinite(v))
        return rt_fail(err, "%s: expected a number, got '%s'", opt, text);
    if (v < lo || v > hi) return rt_fail(err, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
    *out = v;
    return 0;
}

int rt_arg_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

static int takes_value(const char *arg, const char *const *value_opts) {
    for (int j = 0; value_opts && value_opts[j]; j++)
        if (strcmp(arg, value_opts[j]) == 0) return 1;
    return 0;
}

int rt_config_from_args(int argc, char **argv, const char *const *value_opts, rt_config *cfg,
                        const char **config_path, rt_error *err) {
    *config_path = NULL;
    rt_config_defaults(cfg);
    int path_at = -1;
    // the file first, then the overrides in order, so later ones win
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            if (takes_value(argv[i], value_opts)) i++;
            continue;
        }
        if (!strchr(argv[i], '=') && path_at < 0) {
            path_at = i;
            *config_path = argv[i];
            if (rt_config_load_file(cfg, argv[i], err)) return 2;
        }
    }
    if (path_at < 0)
        return rt_fail(err, "no config file given (usage: retort %s CONFIG.yaml [key=value ...])", argv[0]),
               2;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            if (takes_value(argv[i], value_opts)) i++;
            continue;
        }
        if (i == path_at) continue;
        if (strncmp(argv[i], "base=", 5) == 0) { // the shorthand of finetune.base
            char assign[RT_PATH_MAX + 32];
            if (strlen(argv[i]) >= RT_PATH_MAX)
                return rt_fail(err, "base: the path is longer than %d bytes", RT_PATH_MAX - 1), 2;
            snprintf(assign, sizeof assign, "finetune.%s", argv[i]);
            if (rt_config_apply_override(cfg, assign, err)) return 2;
        } else if (rt_config_apply_override(cfg, argv[i], err)) {
            return 2;
        }
    }
    char note[256];
    if (rt_config_fit_warmup(cfg, note, sizeof note)) fprintf(stderr, "note: %s\n", note);
    if (rt_config_validate(cfg, err)) return rt_fail_wrap(err, "%s", *config_path), 2;
    return 0;
}
