#define _POSIX_C_SOURCE 200809L // sigaction
#include "args.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

void rt_catch_stop_signals(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
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
