#define _POSIX_C_SOURCE 200809L
#include "base/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int rt_metrics_open(rt_metrics *mt, const char *dir, rt_error *err) {
    memset(mt, 0, sizeof *mt);
    char path[2048];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    mt->jsonl = fopen(path, "a");
    if (!mt->jsonl) return rt_fail(err, "cannot open %s for appending", path);
    mt->tty = isatty(STDERR_FILENO);
    return 0;
}

static void end_line(rt_metrics *mt) {
    if (mt->line_open) fputc('\n', stderr);
    mt->line_open = 0;
}

void rt_metrics_close(rt_metrics *mt) {
    end_line(mt);
    if (mt->jsonl) fclose(mt->jsonl);
    mt->jsonl = NULL;
}

void rt_format_duration(char *out, size_t cap, double s) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(out, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, cap, "%lds", t);
}

void rt_format_rate(char *out, size_t cap, double flops) {
    if (flops >= 1e12)
        snprintf(out, cap, "%.4g TFLOP/s", flops / 1e12);
    else
        snprintf(out, cap, "%.4g GFLOP/s", flops / 1e9);
}

// JSON has no NaN or Infinity: a diverged loss is written as null.
static void json_num(FILE *f, const char *key, double v) {
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.6g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void rt_metrics_train(rt_metrics *mt, const rt_train_report *r) {
    if (mt->jsonl) {
        fprintf(mt->jsonl, "{\"type\":\"train\",\"step\":%lld", (long long)r->step);
        json_num(mt->jsonl, "loss", r->loss);
        if (r->has_kd) {
            json_num(mt->jsonl, "ce", r->ce);
            json_num(mt->jsonl, "kd", r->kd);
        }
        json_num(mt->jsonl, "lr", r->lr);
        json_num(mt->jsonl, "grad_norm", r->grad_norm);
        fprintf(mt->jsonl, ",\"tokens\":%lld", (long long)r->tokens_seen);
        json_num(mt->jsonl, "tokens_per_s", r->tokens_per_s);
        json_num(mt->jsonl, "flops_per_s", r->flops_per_s);
        if (r->mfu >= 0) {
            json_num(mt->jsonl, "mfu", r->mfu);
            json_num(mt->jsonl, "peak_flops", r->peak_flops);
            // sources are fixed words and table labels: nothing to escape
            fprintf(mt->jsonl, ",\"peak_source\":\"%s\"", r->peak_source ? r->peak_source : "");
        }
        if (r->gemm_flops > 0) json_num(mt->jsonl, "gemm_flops_measured", r->gemm_flops);
        json_num(mt->jsonl, "elapsed_s", r->elapsed_s);
        json_num(mt->jsonl, "time", wall_time());
        fprintf(mt->jsonl, "}\n");
        fflush(mt->jsonl);
    }
    char eta[32], mfu[160], peak[32], gemm[32];
    rt_format_duration(eta, sizeof eta, r->eta_s);
    rt_format_rate(peak, sizeof peak, r->peak_flops);
    rt_format_rate(gemm, sizeof gemm, r->gemm_flops);
    const char *source = r->peak_source ? r->peak_source : "";
    // MFU names its denominator; a spec or configured peak has the measured GEMM beside it
    if (r->mfu < 0)
        snprintf(mfu, sizeof mfu, "n/a");
    else if (strcmp(source, "measured") == 0)
        snprintf(mfu, sizeof mfu, "%.1f%% of measured GEMM %s", 100.0 * r->mfu, peak);
    else if (r->gemm_flops > 0)
        snprintf(mfu, sizeof mfu, "%.1f%% of %s %s (measured GEMM %s)", 100.0 * r->mfu, source, peak, gemm);
    else
        snprintf(mfu, sizeof mfu, "%.1f%% of %s %s", 100.0 * r->mfu, source, peak);
    int width = snprintf(NULL, 0, "%lld", (long long)r->total_steps);
    char parts[64] = "";
    if (r->has_kd) snprintf(parts, sizeof parts, " (ce %.4f kd %.4f)", r->ce, r->kd);
    fprintf(stderr, "%sstep %*lld/%lld | loss %.4f%s | lr %.2e | grad %.3f | %.0f tok/s | MFU %s | ETA %s%s",
            mt->tty ? "\r" : "", width, (long long)r->step, (long long)r->total_steps, r->loss, parts, r->lr,
            r->grad_norm, r->tokens_per_s, mfu, eta, mt->tty ? "\033[K" : "\n");
    mt->line_open = mt->tty;
    fflush(stderr);
}

void rt_metrics_eval(rt_metrics *mt, int64_t step, double val_loss, int64_t val_tokens) {
    if (mt->jsonl) {
        fprintf(mt->jsonl, "{\"type\":\"eval\",\"step\":%lld", (long long)step);
        json_num(mt->jsonl, "val_loss", val_loss);
        json_num(mt->jsonl, "val_ppl", exp(val_loss));
        fprintf(mt->jsonl, ",\"val_tokens\":%lld", (long long)val_tokens);
        json_num(mt->jsonl, "time", wall_time());
        fprintf(mt->jsonl, "}\n");
        fflush(mt->jsonl);
    }
    rt_metrics_note(mt, "eval  step %lld | val loss %.4f | val ppl %.3f", (long long)step, val_loss,
                    exp(val_loss));
}

void rt_metrics_note(rt_metrics *mt, const char *fmt, ...) {
    end_line(mt);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}
