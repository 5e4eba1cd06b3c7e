// Evaluation: exact match on task datasets, held-out loss, and agreement with a teacher (evaluate.h).
#include "infer/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "infer/sample.h"

typedef struct doc_ref {
    int32_t prompt_len;
    int64_t doc;
} doc_ref;

static int doc_ref_cmp(const void *pa, const void *pb) {
    const doc_ref *a = pa, *b = pb;
    if (a->prompt_len != b->prompt_len) return a->prompt_len < b->prompt_len ? -1 : 1;
    return a->doc < b->doc ? -1 : a->doc > b->doc;
}

int rt_eval_task(rt_model *m, const rt_dataset *ds, int64_t limit, rt_task_result *res, rt_error *err) {
    memset(res, 0, sizeof *res);
    if (!ds->prompt_len)
        return rt_fail(err, "%s has no /prompt_len: exact-match needs a task dataset (retort data synth)",
                       ds->path);
    int64_t n_docs = (int64_t)ds->n_docs;
    if (limit > 0 && limit < n_docs) n_docs = limit;
    int B = m->B_max, T_cap = m->T_max_batch, V = m->dims.V;
    doc_ref *refs = rt_malloc((size_t)(n_docs > 0 ? n_docs : 1) * sizeof *refs, "task order", err);
    int32_t *ids = rt_malloc((size_t)B * T_cap * sizeof(int32_t), "task batch", err);
    float *row = rt_malloc((size_t)V * sizeof(float), "logits row", err);
    int rc = (refs && ids && row) ? 0 : -1;
    for (int64_t d = 0; d < n_docs && rc == 0; d++) {
        refs[d].prompt_len = ds->prompt_len[d];
        refs[d].doc = d;
    }
    if (rc == 0) qsort(refs, (size_t)n_docs, sizeof *refs, doc_ref_cmp);
    rt_sampling greedy = {0.0f, 0, 1.0f};
    for (int64_t start = 0; start < n_docs && rc == 0;) {
        // a batch of documents with the same prompt length advances in lockstep
        int nb = 0;
        int P = refs[start].prompt_len + 1; // BOS + prompt
        while (nb < B && start + nb < n_docs && refs[start + nb].prompt_len + 1 == P) nb++;
        int max_answer = 0;
        for (int b = 0; b < nb; b++) {
            int64_t d = refs[start + b].doc;
            int answer = (int)(ds->doc_offsets[d + 1] - ds->doc_offsets[d]) - P - 1; // minus EOS
            if (answer > max_answer) max_answer = answer;
        }
        int steps = max_answer + 1;
        if (P + steps > T_cap) {
            rc = rt_fail(err, "%s: document %lld needs %d tokens, more than max_seq_len %d", ds->path,
                         (long long)refs[start].doc, P + steps, T_cap);
            break;
        }
        for (int b = 0; b < nb; b++)
            memcpy(ids + (size_t)b * (P + steps), ds->tokens + ds->doc_offsets[refs[start + b].doc],
                   (size_t)P * sizeof(int32_t));
        // rows are laid out with stride P + steps; the first forward is a prefill of the dense [nb, P]
        // prompts, each later one runs the newest id of every row [nb, 1] against the KV cache
        int32_t *dense = rt_malloc((size_t)nb * P * sizeof(int32_t), "task batch", err);
        if (!dense) {
            rc = -1;
            break;
        }
        for (int b = 0; b < nb; b++)
            memcpy(dense + (size_t)b * P, ids + (size_t)b * (P + steps), (size_t)P * sizeof(int32_t));
        for (int t = P; t < P + steps && rc == 0; t++) {
            int T_new = t == P ? P : 1;
            if (t > P)
                for (int b = 0; b < nb; b++) dense[b] = ids[(size_t)b * (P + steps) + t - 1];
            rc = rt_model_forward_cached(m, dense, nb, T_new, t - T_new, err);
            for (int b = 0; b < nb && rc == 0; b++) {
                rt_model_logits_row(m, b * T_new + T_new - 1, row);
                ids[(size_t)b * (P + steps) + t] = rt_sample_token(row, V, &greedy, NULL, NULL);
            }
        }
        free(dense);
        for (int b = 0; b < nb && rc == 0; b++) {
            int64_t d = refs[start + b].doc;
            const int32_t *want = ds->tokens + ds->doc_offsets[d] + P; // answer then EOS
            int len = (int)(ds->doc_offsets[d + 1] - ds->doc_offsets[d]) - P;
            if (memcmp(ids + (size_t)b * (P + steps) + P, want, (size_t)len * sizeof(int32_t)) == 0)
                res->correct++;
            res->total++;
        }
        start += nb;
    }
    free(refs);
    free(ids);
    free(row);
    if (rc == 0) rc = m->ctx->be->check(m->ctx, err); // a failed GPU op must not pass as an answer
    return rc;
}

int rt_eval_loss(rt_model *m, const rt_dataset *ds, const uint8_t *mask, int B, int T, int64_t max_batches,
                 double *loss, int64_t *n_tokens, rt_error *err) {
    *loss = 0.0;
    *n_tokens = 0;
    if (ds->n_tokens < (size_t)T + 1) {
        // a short dataset is evaluated as one shorter window
        T = (int)ds->n_tokens - 1;
        if (T < 1) return rt_fail(err, "%s has %zu tokens, too few to predict any", ds->path, ds->n_tokens);
    }
    int64_t n_windows = (int64_t)((ds->n_tokens - 1) / (size_t)T);
    int32_t *tok = rt_malloc((size_t)B * T * sizeof(int32_t), "eval batch", err);
    int32_t *tgt = rt_malloc((size_t)B * T * sizeof(int32_t), "eval batch", err);
    if (!tok || !tgt) {
        free(tok);
        free(tgt);
        return -1;
    }
    double sum = 0.0;
    int rc = 0;
    int64_t batches = 0;
    for (int64_t w = 0; w < n_windows && rc == 0; w += B) {
        if (max_batches > 0 && batches >= max_batches) break;
        int nb = (int)(n_windows - w < B ? n_windows - w : B);
        for (int b = 0; b < nb; b++) {
            const int32_t *src = ds->tokens + (size_t)(w + b) * T;
            memcpy(tok + (size_t)b * T, src, (size_t)T * sizeof(int32_t));
            memcpy(tgt + (size_t)b * T, src + 1, (size_t)T * sizeof(int32_t));
            if (!mask) {
                *n_tokens += T;
                continue;
            }
            const uint8_t *counts = mask + (size_t)(w + b) * T + 1; // [T], one per target
            for (int t = 0; t < T; t++) {
                if (counts[t])
                    (*n_tokens)++;
                else
                    tgt[(size_t)b * T + t] = -1;
            }
        }
        rc = rt_model_forward(m, tok, tgt, nb, T, 1.0f, err);
        if (rc == 0) sum += rt_model_loss_sum(m, nb, T);
        batches++;
    }
    free(tok);
    free(tgt);
    if (rc == 0) rc = m->ctx->be->check(m->ctx, err);
    if (rc == 0) *loss = *n_tokens > 0 ? sum / (double)*n_tokens : 0.0;
    return rc;
}

// log-softmax of a row of logits, in double
static void log_softmax_row(const float *x, int V, double *out) {
    double mx = -INFINITY, z = 0.0;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < V; i++) z += exp((double)x[i] - mx);
    double lz = mx + log(z);
    for (int i = 0; i < V; i++) out[i] = (double)x[i] - lz;
}

static int argmax_row(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int rt_eval_vs_teacher(rt_model *student, rt_model *teacher, const rt_dataset *ds, int B, int T,
                       int64_t max_batches, double *kl, double *top1_agree, int64_t *n_positions,
                       rt_error *err) {
    *kl = *top1_agree = 0.0;
    *n_positions = 0;
    int V = student->dims.V;
    if (teacher->dims.V != V)
        return rt_fail(
            err,
            "the teacher's vocabulary (%d) differs from the student's (%d): KL and agreement need the "
            "same one",
            teacher->dims.V, V);
    if (ds->n_tokens < (size_t)T + 1) T = (int)ds->n_tokens - 1;
    if (T < 1) return rt_fail(err, "%s has %zu tokens, too few to predict any", ds->path, ds->n_tokens);
    int64_t n_windows = (int64_t)((ds->n_tokens - 1) / (size_t)T);
    int32_t *tok = rt_malloc((size_t)B * T * sizeof(int32_t), "eval batch", err);
    float *zs = rt_malloc((size_t)V * sizeof(float), "logits row", err),
          *zt = rt_malloc((size_t)V * sizeof(float), "logits row", err);
    double *ls = rt_malloc((size_t)V * sizeof(double), "logits row", err),
           *lt = rt_malloc((size_t)V * sizeof(double), "logits row", err);
    int rc = tok && zs && zt && ls && lt ? 0 : -1;
    double kl_sum = 0.0;
    int64_t agree = 0, batches = 0;
    for (int64_t w = 0; w < n_windows && rc == 0; w += B) {
        if (max_batches > 0 && batches++ >= max_batches) break;
        int nb = (int)(n_windows - w < B ? n_windows - w : B);
        for (int b = 0; b < nb; b++)
            memcpy(tok + (size_t)b * T, ds->tokens + (size_t)(w + b) * T, (size_t)T * sizeof(int32_t));
        rc = rt_model_forward(student, tok, NULL, nb, T, 1.0f, err);
        if (rc == 0) rc = rt_model_forward(teacher, tok, NULL, nb, T, 1.0f, err);
        for (int r = 0; rc == 0 && r < nb * T; r++) {
            rt_model_logits_row(student, r, zs);
            rt_model_logits_row(teacher, r, zt);
            log_softmax_row(zs, V, ls);
            log_softmax_row(zt, V, lt);
            double d = 0.0;
            for (int i = 0; i < V; i++) d += exp(lt[i]) * (lt[i] - ls[i]);
            kl_sum += d;
            agree += argmax_row(zs, V) == argmax_row(zt, V);
            (*n_positions)++;
        }
    }
    if (rc == 0) rc = student->ctx->be->check(student->ctx, err);
    if (rc == 0 && *n_positions > 0) {
        *kl = kl_sum / (double)*n_positions;
        *top1_agree = (double)agree / (double)*n_positions;
    }
    free(tok);
    free(zs);
    free(zt);
    free(ls);
    free(lt);
    return rc;
}
