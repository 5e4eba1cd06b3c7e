#define _POSIX_C_SOURCE 200809L
#include "base/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int rt_metrics_open(rt_metrics *mt, const char *dir, rt_error *err) {
    memset(mt, 0, sizeof *mt);
    mt->fd = -1;
    int len = snprintf(mt->path, sizeof mt->path, "%s/metrics.jsonl", dir);
    if (len < 0 || (size_t)len >= sizeof mt->path)
        return rt_fail(err, "%s/metrics.jsonl: path too long", dir);
    mt->fd = open(mt->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (mt->fd < 0) return rt_fail(err, "cannot open %s for appending: %s", mt->path, strerror(errno));
    mt->tty = isatty(STDERR_FILENO);
    return 0;
}

void rt_metrics_open_quiet(rt_metrics *mt) {
    memset(mt, 0, sizeof *mt);
    mt->fd = -1;
    mt->quiet = 1;
}

int rt_metrics_check(const rt_metrics *mt, rt_error *err) {
    if (!mt->write_errno) return 0;
    return rt_fail(err, "%s: cannot write: %s%s", mt->path, strerror(mt->write_errno),
                   mt->write_errno == ENOSPC ? " (disk full)" : "");
}

// Appends one whole record. A failed or short write (a full disk) is cut back off, so the file never ends
// in half a line, and the first error is kept for rt_metrics_check; later records are not attempted.
static void append_record(rt_metrics *mt, rt_buf *b) {
    if (mt->fd < 0 || mt->write_errno) {
        rt_buf_free(b);
        return;
    }
    if (b->oom) {
        mt->write_errno = ENOMEM;
        rt_buf_free(b);
        return;
    }
    off_t start = lseek(mt->fd, 0, SEEK_END);
    size_t done = 0;
    while (done < b->len) {
        ssize_t n = write(mt->fd, b->data + done, b->len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            mt->write_errno = n < 0 ? errno : ENOSPC;
            // cut the partial line off; should even that fail, the run still stops on the error above
            if (start >= 0) (void)!ftruncate(mt->fd, start);
            break;
        }
        done += (size_t)n;
    }
    rt_buf_free(b);
}

static void end_line(rt_metrics *mt) {
    if (mt->line_open) fputc('\n', stderr);
    mt->line_open = 0;
}

void rt_metrics_close(rt_metrics *mt) {
    end_line(mt);
    if (mt->fd >= 0) close(mt->fd);
    mt->fd = -1;
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
static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Wall-clock seconds since the epoch to the millisecond (%g's 6 digits would round to 1,000 s).
static void json_time(rt_buf *b) {
    rt_buf_printf(b, ",\"time\":%.3f", wall_time());
}

static void json_num(rt_buf *b, const char *key, double v) {
    if (isfinite(v))
        rt_buf_printf(b, ",\"%s\":%.6g", key, v);
    else
        rt_buf_printf(b, ",\"%s\":null", key);
}

void rt_metrics_train(rt_metrics *mt, const rt_train_report *r) {
    if (mt->quiet) return;
    if (mt->fd >= 0) {
        rt_buf rec = {0};
        rt_buf_printf(&rec, "{\"type\":\"train\",\"step\":%lld", (long long)r->step);
        json_num(&rec, "loss", r->loss);
        if (r->has_kd) {
            json_num(&rec, "ce", r->ce);
            json_num(&rec, "kd", r->kd);
        }
        json_num(&rec, "lr", r->lr);
        json_num(&rec, "grad_norm", r->grad_norm);
        rt_buf_printf(&rec, ",\"tokens\":%lld", (long long)r->tokens_seen);
        json_num(&rec, "tokens_per_s", r->tokens_per_s);
        json_num(&rec, "flops_per_s", r->flops_per_s);
        if (r->mfu >= 0) {
            json_num(&rec, "mfu", r->mfu);
            json_num(&rec, "peak_flops", r->peak_flops);
            // sources are fixed words and table labels: nothing to escape
            rt_buf_printf(&rec, ",\"peak_source\":\"%s\"", r->peak_source ? r->peak_source : "");
        }
        if (r->gemm_flops > 0) json_num(&rec, "gemm_flops_measured", r->gemm_flops);
        if (r->skipped > 0) rt_buf_printf(&rec, ",\"skipped\":%lld", (long long)r->skipped);
        if (r->world > 1) {
            rt_buf_printf(&rec, ",\"world\":%d", r->world);
            json_num(&rec, "comm_s", r->comm_s);
            json_num(&rec, "comm_frac", r->comm_frac);
        }
        json_num(&rec, "elapsed_s", r->elapsed_s);
        json_time(&rec);
        rt_buf_printf(&rec, "}\n");
        append_record(mt, &rec);
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
    if (r->skipped > 0) // shown from the first skipped step on
        snprintf(parts + strlen(parts), sizeof parts - strlen(parts), " | skipped %lld",
                 (long long)r->skipped);
    char ranks[32] = "";
    if (r->world > 1)
        snprintf(ranks, sizeof ranks, " on %d ranks (comm %.0f%%)", r->world, 100.0 * r->comm_frac);
    fprintf(stderr,
            "%sstep %*lld/%lld | loss %.4f%s | lr %.2e | grad %.3f | %.0f tok/s%s | MFU %s | ETA %s%s",
            mt->tty ? "\r" : "", width, (long long)r->step, (long long)r->total_steps, r->loss, parts, r->lr,
            r->grad_norm, r->tokens_per_s, ranks, mfu, eta, mt->tty ? "\033[K" : "\n");
    mt->line_open = mt->tty;
    fflush(stderr);
}

void rt_metrics_skip(rt_metrics *mt, int64_t step, double loss, double grad_norm, int64_t in_a_row,
                     int64_t skipped) {
    if (mt->fd >= 0) {
        rt_buf rec = {0};
        rt_buf_printf(&rec, "{\"type\":\"skip\",\"step\":%lld", (long long)step);
        json_num(&rec, "loss", loss);
        json_num(&rec, "grad_norm", grad_norm);
        rt_buf_printf(&rec, ",\"in_a_row\":%lld,\"skipped\":%lld", (long long)in_a_row, (long long)skipped);
        json_time(&rec);
        rt_buf_printf(&rec, "}\n");
        append_record(mt, &rec);
    }
    rt_metrics_note(mt, "step %lld skipped: loss %g, gradient norm %g (%lld in a row, %lld in all)",
                    (long long)step, loss, grad_norm, (long long)in_a_row, (long long)skipped);
}

void rt_metrics_eval(rt_metrics *mt, int64_t step, double val_loss, int64_t val_tokens) {
    if (mt->fd >= 0) {
        rt_buf rec = {0};
        rt_buf_printf(&rec, "{\"type\":\"eval\",\"step\":%lld", (long long)step);
        json_num(&rec, "val_loss", val_loss);
        json_num(&rec, "val_ppl", exp(val_loss));
        rt_buf_printf(&rec, ",\"val_tokens\":%lld", (long long)val_tokens);
        json_time(&rec);
        rt_buf_printf(&rec, "}\n");
        append_record(mt, &rec);
    }
    rt_metrics_note(mt, "eval  step %lld | val loss %.4f | val ppl %.3f", (long long)step, val_loss,
                    exp(val_loss));
}

// A Slurm variable's value when it is a plain number (job ids, counts), else NULL: nothing to escape.
static const char *slurm_number(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v || strlen(v) > 32) return NULL;
    for (const char *c = v; *c; c++)
        if (*c < '0' || *c > '9') return NULL;
    return v;
}

void rt_metrics_run(rt_metrics *mt, int64_t step, int world) {
    static const char *const vars[][2] = {{"SLURM_JOB_ID", "slurm_job_id"},
                                          {"SLURM_ARRAY_JOB_ID", "slurm_array_job_id"},
                                          {"SLURM_ARRAY_TASK_ID", "slurm_array_task_id"},
                                          {"SLURM_RESTART_COUNT", "slurm_restart_count"}};
    if (mt->fd >= 0) {
        rt_buf rec = {0};
        rt_buf_printf(&rec, "{\"type\":\"run\",\"step\":%lld,\"world\":%d", (long long)step, world);
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
            const char *v = slurm_number(vars[i][0]);
            if (v) rt_buf_printf(&rec, ",\"%s\":%s", vars[i][1], v);
        }
        json_time(&rec);
        rt_buf_printf(&rec, "}\n");
        append_record(mt, &rec);
    }
    const char *job = slurm_number("SLURM_JOB_ID"), *restarts = slurm_number("SLURM_RESTART_COUNT");
    if (job) rt_metrics_note(mt, "slurm job %s, restart %s", job, restarts ? restarts : "0");
}

void rt_metrics_note(rt_metrics *mt, const char *fmt, ...) {
    if (mt->quiet) return;
    end_line(mt);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}
