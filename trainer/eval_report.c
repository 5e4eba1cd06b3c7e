// Printing `retort eval` results (eval_report.h).
#include "eval_report.h"

#include <math.h>
#include <stdio.h>

static double accuracy(const eval_row *r) {
    return r->task.total ? (double)r->task.correct / (double)r->task.total : 0.0;
}

static double ratio(double a, double b) {
    return b != 0.0 ? a / b : NAN;
}

// JSON numbers must be finite: NaN (no reference) becomes null.
static void json_num(const char *key, double v) {
    if (isfinite(v))
        printf(",\"%s\":%.6g", key, v);
    else
        printf(",\"%s\":null", key);
}

static void print_json(const eval_row *rows, int n, const rt_dataset *ds, int compare) {
    printf("{\"data\":\"%s\",\"task\":\"%s\",\"rows\":[", ds->path, ds->task);
    for (int i = 0; i < n; i++) {
        const eval_row *r = &rows[i];
        printf("%s{\"checkpoint\":\"%s\",\"params\":%zu,\"file_bytes\":%lld,\"memory_bytes\":%lld",
               i ? "," : "", r->ckpt, r->params, (long long)r->file_bytes, (long long)r->memory_bytes);
        json_num("tokens_per_s", r->tokens_per_s);
        json_num("loss", r->loss);
        json_num("ppl", exp(r->loss));
        printf(",\"tokens\":%lld", (long long)r->tokens);
        if (r->has_task) {
            json_num("answer_loss", r->answer_loss);
            printf(",\"answer_tokens\":%lld,\"correct\":%lld,\"total\":%lld", (long long)r->answer_tokens,
                   (long long)r->task.correct, (long long)r->task.total);
            json_num("accuracy", accuracy(r));
        }
        if (r->has_teacher) {
            json_num("kl_teacher_student", r->kl);
            json_num("top1_agreement", r->top1_agree);
        }
        printf("}");
    }
    printf("]");
    if (compare) {
        const eval_row *t = &rows[0];
        printf(",\"compare\":[");
        for (int i = 1; i < n; i++) {
            const eval_row *s = &rows[i];
            printf("%s{\"teacher\":\"%s\",\"student\":\"%s\"", i > 1 ? "," : "", t->ckpt, s->ckpt);
            json_num("params_fraction", ratio((double)s->params, (double)t->params));
            if (s->has_task) json_num("accuracy_retained", ratio(accuracy(s), accuracy(t)));
            json_num("inference_time_saved", 1.0 - ratio(t->tokens_per_s, s->tokens_per_s));
            json_num("memory_saved", 1.0 - ratio((double)s->memory_bytes, (double)t->memory_bytes));
            json_num("file_size_saved", 1.0 - ratio((double)s->file_bytes, (double)t->file_bytes));
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
}

void rt_eval_print(const eval_row *rows, int n, const rt_dataset *ds, int json, int compare) {
    if (json) {
        print_json(rows, n, ds, compare);
        return;
    }
    int teacher = n > 0 && rows[0].has_teacher;
    printf("data: %s (task %s, split %s%s%s)\n", ds->path, ds->task, ds->split,
           ds->teacher[0] ? ", answers by " : "", ds->teacher);
    printf("%-34s %10s %8s %8s %9s %8s %8s %7s %s%s\n", "checkpoint", "params", "file MiB", "mem MiB",
           "tok/s", "loss", "ppl", ds->prompt_len ? "ans-loss" : "", ds->prompt_len ? "exact-match  " : "",
           teacher ? "KL(t||s) top-1" : "");
    for (int i = 0; i < n; i++) {
        const eval_row *r = &rows[i];
        printf("%-34s %10zu %8.2f %8.1f %9.0f %8.4f %8.3f", r->ckpt, r->params, r->file_bytes / 1048576.0,
               r->memory_bytes / 1048576.0, r->tokens_per_s, r->loss, exp(r->loss));
        if (r->has_task)
            printf(" %7.4f %6.2f%% %5lld/%-5lld", r->answer_loss, 100.0 * accuracy(r),
                   (long long)r->task.correct, (long long)r->task.total);
        if (r->has_teacher) printf(" %8.4f %5.1f%%", r->kl, 100.0 * r->top1_agree);
        printf("\n");
    }
    if (!compare) return;
    const eval_row *t = &rows[0];
    printf("\nagainst the teacher %s:\n", t->ckpt);
    for (int i = 1; i < n; i++) {
        const eval_row *s = &rows[i];
        printf("  %s: %.1f%% of the parameters", s->ckpt,
               100.0 * ratio((double)s->params, (double)t->params));
        if (s->has_task && t->task.correct > 0)
            printf(", accuracy retained %.1f%%", 100.0 * ratio(accuracy(s), accuracy(t)));
        else if (s->has_task)
            printf(", accuracy retained n/a (the teacher gets none right)");
        printf(", inference time saved %.1f%%, memory saved %.1f%%, file %.1f%% smaller\n",
               100.0 * (1.0 - ratio(t->tokens_per_s, s->tokens_per_s)),
               100.0 * (1.0 - ratio((double)s->memory_bytes, (double)t->memory_bytes)),
               100.0 * (1.0 - ratio((double)s->file_bytes, (double)t->file_bytes)));
    }
}
