// Stage 2 of distillation: what `retort distill` adds to the training loop. The loss of a micro-batch is
// (1 - alpha) CE + alpha T^2 D(teacher || student) (docs/distillation.md), with the teacher's distribution
// from the dataset's stored top-k (offline_topk) or from the teacher running forward on the same batch
// (online). sequence mode is plain CE on the teacher's text and needs nothing here.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/load.h"
#include "train_run.h"
#include "base/files.h"

// A config that cannot work returns -2 (a usage error, exit 2), with err saying which key and why.
static int setup_offline(train_run *r, rt_error *err) {
    rt_distill_state *d = &r->kd;
    const rt_dataset *ds = &r->train_ds;
    const rt_config *c = &r->cfg;
    if (ds->topk.k == 0)
        return rt_fail(err,
                       "distill.mode offline_topk needs the teacher's top-k log-probs in data.train, and %s "
                       "has none "
                       "(make it with retort synth and synth.topk > 0, or use distill.mode sequence)",
                       ds->path),
               -2;
    if (ds->teacher_vocab_size != c->model.vocab_size)
        return rt_fail(
                   err,
                   "distill.mode offline_topk: the teacher of %s has a vocabulary of %d, the student (model."
                   "vocab_size) %d; logit distillation needs the same vocabulary (distill.mode sequence "
                   "works "
                   "with any teacher)",
                   ds->path, ds->teacher_vocab_size, c->model.vocab_size),
               -2;
    if (d->kd.tail == RT_KD_TAIL_BUCKET && fabs(c->distill.temperature - ds->topk.temperature) > 1e-6)
        return rt_fail(
                   err,
                   "distill.temperature %g differs from the temperature %g the top-k of %s was captured at: "
                   "with distill.topk_tail bucket they must match (the mass outside the top k is only known "
                   "at that temperature); set distill.temperature %g, or distill.topk_tail renorm",
                   c->distill.temperature, ds->topk.temperature, ds->path, ds->topk.temperature),
               -2;
    if (c->distill.teacher[0]) {
        char hash[17];
        if (rt_file_hash(c->distill.teacher, hash, err)) return rt_fail_wrap(err, "distill.teacher");
        if (ds->teacher_hash[0] && strcmp(hash, ds->teacher_hash) != 0)
            return rt_fail(
                       err,
                       "distill.teacher %s (hash %s) is not the teacher that wrote %s (%s, hash %s); clear "
                       "distill.teacher to use the data as it is",
                       c->distill.teacher, hash, ds->path, ds->teacher, ds->teacher_hash),
                   -2;
    }
    if (rt_dataset_answer_rows(ds, &d->answer_rows, err)) return -1;
    d->k = ds->topk.k;
    d->kd.topk_temperature = (float)ds->topk.temperature;
    size_t n = (size_t)c->train.batch_size * (size_t)c->data.seq_len * (size_t)d->k;
    d->topk_ids_host = rt_malloc(n * sizeof(int32_t), "top-k staging", err);
    d->topk_lp_host = rt_malloc(n * sizeof(float), "top-k staging", err);
    if (!d->topk_ids_host || !d->topk_lp_host) return -1;
    d->topk_ids_dev = d->ctx->be->alloc(d->ctx, n * sizeof(int32_t), "teacher top-k", err);
    d->topk_lp_dev =
        d->topk_ids_dev ? d->ctx->be->alloc(d->ctx, n * sizeof(float), "teacher top-k", err) : NULL;
    if (!d->topk_ids_dev || !d->topk_lp_dev) return -1;
    fprintf(stderr, "distill: offline top-%d from %s (teacher %s, captured at temperature %g)\n", d->k,
            ds->path, ds->teacher, ds->topk.temperature);
    return 0;
}

static int setup_online(train_run *r, rt_error *err) {
    rt_distill_state *d = &r->kd;
    const rt_config *c = &r->cfg;
    if (!c->distill.teacher[0])
        return rt_fail(err,
                       "distill.mode online needs distill.teacher: the checkpoint that runs as the teacher"),
               -2;
    rt_config tcfg;
    if (rt_load_model(c->distill.teacher, d->ctx, c->train.batch_size, c->data.seq_len, &d->teacher, &tcfg,
                      err))
        return rt_fail_wrap(err, "distill.teacher");
    d->has_teacher = 1;
    if (d->teacher.dims.V != c->model.vocab_size)
        return rt_fail(
                   err,
                   "distill.teacher %s has a vocabulary of %d, the student (model.vocab_size) %d; logit "
                   "distillation needs the same vocabulary (distill.mode sequence works with any teacher)",
                   c->distill.teacher, d->teacher.dims.V, c->model.vocab_size),
               -2;
    if (d->teacher.T_max_batch < c->data.seq_len)
        return rt_fail(err, "data.seq_len %d exceeds the max_seq_len %d of distill.teacher %s",
                       c->data.seq_len, d->teacher.T_max_batch, c->distill.teacher),
               -2;
    const rt_model_dims *t = &d->teacher.dims;
    double n_t = (double)rt_model_param_count(&d->teacher) - (t->tied ? 0.0 : (double)t->V * t->C); // matmuls
    d->teacher_flops_per_token = 2.0 * n_t + 4.0 * t->L * (double)t->H * t->D * (double)c->data.seq_len;
    fprintf(stderr, "distill: online teacher %s (%zu parameters, frozen)\n", c->distill.teacher,
            rt_model_param_count(&d->teacher));
    return 0;
}

int rt_distill_setup(train_run *r, rt_error *err) {
    rt_distill_state *d = &r->kd;
    const rt_config *c = &r->cfg;
    d->ctx = &r->ctx;
    d->mode = strcmp(c->distill.mode, "online") == 0         ? RT_DISTILL_ONLINE
              : strcmp(c->distill.mode, "offline_topk") == 0 ? RT_DISTILL_OFFLINE_TOPK
                                                             : RT_DISTILL_SEQUENCE;
    d->kd.divergence = strcmp(c->distill.divergence, "jsd") == 0          ? RT_KD_JSD
                       : strcmp(c->distill.divergence, "reverse_kl") == 0 ? RT_KD_REVERSE_KL
                                                                          : RT_KD_FORWARD_KL;
    d->kd.temperature = (float)c->distill.temperature;
    d->kd.alpha = (float)c->distill.alpha;
    d->kd.beta = (float)c->distill.beta;
    d->kd.tail = strcmp(c->distill.topk_tail, "renorm") == 0 ? RT_KD_TAIL_RENORM : RT_KD_TAIL_BUCKET;
    d->kd.topk_temperature = d->kd.temperature;
    if (d->mode == RT_DISTILL_OFFLINE_TOPK) return setup_offline(r, err);
    if (d->mode == RT_DISTILL_ONLINE) return setup_online(r, err);
    if (!r->train_ds.teacher[0])
        fprintf(stderr,
                "note: distill.mode sequence on %s, which retort synth did not make: this is plain "
                "training on its text\n",
                r->train_ds.path);
    else
        fprintf(stderr, "distill: sequence mode, cross-entropy on the answers of teacher %s\n",
                r->train_ds.teacher);
    return 0;
}

int rt_distill_micro(train_run *r, const int32_t *tokens, const int32_t *targets, const int64_t *positions,
                     float grad_scale, rt_error *err) {
    rt_distill_state *d = &r->kd;
    rt_model *m = &r->model;
    int B = r->cfg.train.batch_size, T = r->cfg.data.seq_len, N = B * T;
    if (d->mode == RT_DISTILL_ONLINE) {
        if (rt_model_forward(&d->teacher, tokens, NULL, B, T, 1.0f, err)) return -1;
        return rt_model_distill_loss(m, targets, d->teacher.logits, NULL, NULL, 0, &d->kd, B, T, grad_scale,
                                     err);
    }
    // offline: the stored rows of the positions this batch predicts; rows without one carry only CE
    const rt_dataset_topk *tk = &r->train_ds.topk;
    int k = d->k;
    for (int i = 0; i < N; i++) {
        int64_t row = targets[i] >= 0 ? d->answer_rows[positions[i]] : -1;
        int32_t *ids = d->topk_ids_host + (size_t)i * k;
        float *lp = d->topk_lp_host + (size_t)i * k;
        if (row >= 0) {
            memcpy(ids, tk->ids + (size_t)row * k, (size_t)k * sizeof(int32_t));
            memcpy(lp, tk->logprobs + (size_t)row * k, (size_t)k * sizeof(float));
        } else {
            for (int j = 0; j < k; j++) {
                ids[j] = -1;
                lp[j] = 0.0f;
            }
        }
    }
    d->ctx->be->upload_i32(d->ctx, d->topk_ids_dev, d->topk_ids_host, (size_t)N * k);
    d->ctx->be->upload(d->ctx, d->topk_lp_dev, RT_F32, d->topk_lp_host, (size_t)N * k);
    return rt_model_distill_loss(m, targets, NULL, d->topk_ids_dev, d->topk_lp_dev, k, &d->kd, B, T,
                                 grad_scale, err);
}

void rt_distill_free(train_run *r) {
    rt_distill_state *d = &r->kd;
    if (d->has_teacher) rt_model_free(&d->teacher);
    if (d->topk_ids_dev) d->ctx->be->free(d->ctx, d->topk_ids_dev);
    if (d->topk_lp_dev) d->ctx->be->free(d->ctx, d->topk_lp_dev);
    free(d->answer_rows);
    free(d->topk_ids_host);
    free(d->topk_lp_host);
    memset(d, 0, sizeof *d);
}
