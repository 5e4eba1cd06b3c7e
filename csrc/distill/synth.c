// `retort synth`: a teacher answers prompts in batches; chunks of finished prompts are written to
// <out>.part/ and merged into <out> at the end (synth.h has the resume contract).
#define _POSIX_C_SOURCE 200809L
#include "distill/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "infer/sample.h"
#include "base/rng.h"
#include "base/files.h"
#include "distill/synth_chunks.h"

// One sequence being generated: a (prompt, sample) pair.
typedef struct seq {
    int64_t prompt;
    int sample;
    rt_rng rng;
    int done;
    int n_ans;         // answer ids kept (EOS not counted)
    int32_t *ans;      // [cap] generated ids
    int32_t *topk_ids; // [cap + 1, k]: row j is the teacher's distribution over answer id j
    float *topk_lp;
    int hit_max, stopped;
} seq;

typedef struct stop_list {
    char **s;
    size_t *len;
    int n;
} stop_list;

// "a|b\|c" -> {"a", "b|c"}; empty pieces are dropped.
static int parse_stops(const char *spec, stop_list *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(spec);
    out->s = rt_calloc(n / 1 + 1, sizeof *out->s, "stop strings", err);
    out->len = rt_calloc(n / 1 + 1, sizeof *out->len, "stop strings", err);
    char *cur = rt_malloc(n + 1, "stop strings", err);
    if (!out->s || !out->len || !cur) {
        free(cur);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && spec[i] == '\\' && i + 1 < n && spec[i + 1] == '|') {
            cur[k++] = '|';
            i++;
        } else if (i == n || spec[i] == '|') {
            if (k > 0) {
                cur[k] = '\0';
                out->s[out->n] = rt_strdup(cur);
                if (!out->s[out->n]) {
                    free(cur);
                    return rt_fail(err, "out of memory");
                }
                out->len[out->n++] = k;
            }
            k = 0;
        } else {
            cur[k++] = spec[i];
        }
    }
    free(cur);
    return 0;
}

static void free_stops(stop_list *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->len);
}

// Byte tokenizer: the length of the stop string the answer (all bytes: control ids end an answer) now ends
// with, or 0.
static size_t ends_with_stop(const int32_t *ans, int n, const stop_list *stops) {
    for (int i = 0; i < stops->n; i++) {
        size_t len = stops->len[i];
        if ((size_t)n < len) continue;
        size_t j = 0;
        while (j < len && ans[(size_t)n - len + j] == (unsigned char)stops->s[i][j]) j++;
        if (j == len) return len;
    }
    return 0;
}

// Other tokenizers: how many of the answer's last ids to drop because its text now ends with a stop string
// (every id whose text overlaps the stop goes; text is scratch), or 0. The answer is decoded whole each time,
// so a stop split across ids and multi-byte characters are found as the tokenizer decodes them.
static int ends_with_stop_text(const rt_tokenizer *tok, const int32_t *ans, int n, const stop_list *stops,
                               rt_buf *text) {
    rt_error err;
    text->len = 0;
    if (stops->n == 0 || rt_tokenizer_decode(tok, ans, (size_t)n, 0, text, &err) || text->oom) return 0;
    for (int i = 0; i < stops->n; i++) {
        size_t len = stops->len[i];
        if (text->len < len || memcmp(text->data + text->len - len, stops->s[i], len) != 0) continue;
        size_t keep = text->len - len; // the answer's text before the stop
        int drop = 1;
        for (; drop < n; drop++) { // the fewest last ids whose removal leaves no more than that text
            text->len = 0;
            if (rt_tokenizer_decode(tok, ans, (size_t)(n - drop), 0, text, &err) || text->oom) return drop;
            if (text->len <= keep) break;
        }
        return drop;
    }
    return 0;
}

typedef struct job {
    const rt_config *cfg;
    rt_model *m;
    const rt_synth_prompts *prompts;
    stop_list stops;
    int k;              // top-k kept, 0 = none
    int cap;            // most answer ids of any sequence (before the teacher's context runs out)
    float *row, *probs; // [V] scratch
    rt_sampling sampling;
    const rt_tokenizer *tok; // the teacher's (prompts->tok); byte: today's byte rules
    int byte;
    int32_t n_tok_ids, eos;
    rt_buf text;   // scratch for stop strings
    double tokens; // forward-pass tokens, for the rate
} job;

// Generates every sequence of one batch in lockstep: all have the same prompt length P.
static int generate_batch(job *J, seq **batch, int nb, int P, rt_error *err) {
    rt_model *m = J->m;
    int V = m->dims.V, T_max = m->T_max_batch;
    int answer_cap = J->cfg->synth.max_tokens < T_max - P ? J->cfg->synth.max_tokens : T_max - P;
    if (answer_cap < 1)
        return rt_fail(
            err,
            "prompt %lld has %d ids (BOS included), leaving no room to answer within the teacher's "
            "max_seq_len %d",
            (long long)batch[0]->prompt, P - 1, T_max);
    // with top-k kept, a sequence cut at answer_cap still needs the distribution at its EOS position
    int steps = answer_cap + (J->k > 0 ? 1 : 0);
    if (P + steps - 1 > T_max) steps = T_max - P + 1;
    // step 0 is a prefill of the prompts [nb, P]; each later step runs every row's newest id [nb, 1] against
    // the KV cache. Finished sequences keep riding along (their rows are independent of the others').
    int32_t *dense = rt_malloc((size_t)nb * (size_t)P * sizeof(int32_t), "synth batch", err);
    if (!dense) return -1;
    int rc = 0;
    for (int step = 0; step < steps && rc == 0; step++) {
        int T_new = step == 0 ? P : 1, running = 0;
        for (int b = 0; b < nb; b++) {
            if (step == 0)
                memcpy(dense + (size_t)b * P, J->prompts->ids[batch[b]->prompt], (size_t)P * sizeof(int32_t));
            else
                dense[b] = batch[b]->ans[step - 1];
            running += !batch[b]->done;
        }
        if (running == 0) break;
        rc = rt_model_forward_cached(m, dense, nb, T_new, P + step - T_new, err);
        J->tokens += (double)nb * T_new;
        for (int b = 0; b < nb && rc == 0; b++) {
            seq *s = batch[b];
            if (s->done) continue;
            rt_model_logits_row(m, b * T_new + T_new - 1, J->row);
            if (J->k > 0)
                rt_topk_logprobs(J->row, V, J->k, (float)J->cfg->synth.topk_temperature,
                                 s->topk_ids + (size_t)step * J->k, s->topk_lp + (size_t)step * J->k);
            if (step == answer_cap) { // the extra step: the EOS position's distribution of a cut answer
                s->done = 1;
                continue;
            }
            int32_t id = rt_sample_token(J->row, V, &J->sampling, &s->rng, J->probs);
            // any non-byte id (BOS, PAD, an unused id) ends a byte answer too; for other tokenizers EOS and
            // ids the tokenizer does not have (the model's vocabulary may be larger)
            if (J->byte ? id >= 256 : id >= J->n_tok_ids) id = J->eos;
            if (id == J->eos) {
                s->n_ans = step;
                s->done = 1;
                continue;
            }
            s->ans[step] = id;
            s->n_ans = step + 1;
            size_t stop_len = !J->byte
                                  ? (size_t)ends_with_stop_text(J->tok, s->ans, s->n_ans, &J->stops, &J->text)
                              : id < 256 ? ends_with_stop(s->ans, s->n_ans, &J->stops)
                                         : 0;
            if (stop_len) { // the answer ends before the stop string; its EOS row is the stop's first
                s->n_ans -= (int)stop_len;
                s->stopped = 1;
                s->done = 1;
            } else if (s->n_ans == answer_cap) {
                s->hit_max = 1;
                if (J->k == 0) s->done = 1;
            }
        }
    }
    for (int b = 0; b < nb; b++) batch[b]->done = 1;
    free(dense);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// chunks

static const int32_t *g_lens; // qsort comparator context (qsort_r is not C11)
static int cmp_seq_len(const void *a, const void *b) {
    const seq *x = *(seq *const *)a, *y = *(seq *const *)b;
    int32_t lx = g_lens[x->prompt], ly = g_lens[y->prompt];
    if (lx != ly) return lx < ly ? -1 : 1;
    if (x->prompt != y->prompt) return x->prompt < y->prompt ? -1 : 1;
    return x->sample - y->sample;
}

// Generates chunk `index`, prompts [lo, hi), into o (whose arrays the caller frees); with *interrupted set
// (a signal between two batches) o stays empty.
static int make_chunk(job *J, int64_t index, int64_t lo, int64_t hi, volatile sig_atomic_t *stop_flag,
                      int *interrupted, synth_chunk *o, rt_error *err) {
    const rt_config *c = J->cfg;
    int samples = c->synth.samples, k = J->k, cap = J->cap;
    size_t n_seq = (size_t)(hi - lo) * (size_t)samples;
    seq *seqs = rt_calloc(n_seq, sizeof *seqs, "synth sequences", err);
    seq **order = rt_calloc(n_seq, sizeof *order, "synth sequences", err);
    int rc = seqs && order ? 0 : -1;
    for (size_t i = 0; i < n_seq && rc == 0; i++) {
        seq *s = &seqs[i];
        s->prompt = lo + (int64_t)(i / (size_t)samples);
        s->sample = (int)(i % (size_t)samples);
        rt_rng_seed(&s->rng,
                    rt_seed_mix((uint64_t)c->run.seed, (uint64_t)s->prompt * 1024u + (uint64_t)s->sample));
        // zeroed: a finished sequence still rides along in its batch, and its unused ids must be valid
        s->ans = rt_calloc((size_t)(cap + 1), sizeof(int32_t), "synth answer", err);
        if (k > 0) {
            s->topk_ids = rt_malloc((size_t)(cap + 1) * k * sizeof(int32_t), "synth top-k", err);
            s->topk_lp = rt_malloc((size_t)(cap + 1) * k * sizeof(float), "synth top-k", err);
        }
        if (!s->ans || (k > 0 && (!s->topk_ids || !s->topk_lp))) rc = -1;
        order[i] = s;
    }
    if (rc == 0) {
        g_lens = J->prompts->len;
        qsort(order, n_seq, sizeof *order, cmp_seq_len);
    }
    int B = J->m->B_max;
    double tokens0 = J->tokens;
    for (size_t start = 0; start < n_seq && rc == 0;) {
        if (stop_flag && *stop_flag) {
            *interrupted = 1;
            break;
        }
        int P = J->prompts->len[order[start]->prompt], nb = 0;
        while (nb < B && start + (size_t)nb < n_seq && J->prompts->len[order[start + nb]->prompt] == P) nb++;
        rc = generate_batch(J, order + start, nb, P, err);
        start += (size_t)nb;
    }
    // assemble the chunk in (prompt, sample) order
    memset(o, 0, sizeof *o);
    o->index = index;
    synth_counts *st = &o->counts;
    if (rc == 0 && !*interrupted) {
        size_t n_tok = 0, n_rows = 0;
        for (size_t i = 0; i < n_seq; i++) {
            n_tok += (size_t)J->prompts->len[seqs[i].prompt] + (size_t)seqs[i].n_ans + 1;
            n_rows += (size_t)seqs[i].n_ans + 1;
        }
        o->tokens = rt_malloc(n_tok * sizeof(int32_t), "synth chunk", err);
        o->offsets = rt_malloc((n_seq + 1) * sizeof(int64_t), "synth chunk", err);
        o->prompt_len = rt_malloc(n_seq * sizeof(int32_t), "synth chunk", err);
        if (k > 0) {
            o->topk_ids = rt_malloc(n_rows * k * sizeof(int32_t), "synth chunk", err);
            o->topk_lp = rt_malloc(n_rows * k * sizeof(float), "synth chunk", err);
        }
        if (!o->tokens || !o->offsets || !o->prompt_len || (k > 0 && (!o->topk_ids || !o->topk_lp)))
            rc = -1;
        else
            o->offsets[0] = 0;
        for (size_t i = 0; i < n_seq && rc == 0; i++) {
            const seq *s = &seqs[i];
            int P = J->prompts->len[s->prompt];
            memcpy(o->tokens + o->n_tokens, J->prompts->ids[s->prompt], (size_t)P * sizeof(int32_t));
            memcpy(o->tokens + o->n_tokens + P, s->ans, (size_t)s->n_ans * sizeof(int32_t));
            o->n_tokens += (size_t)P + (size_t)s->n_ans;
            o->tokens[o->n_tokens++] = J->eos;
            o->offsets[i + 1] = (int64_t)o->n_tokens;
            o->prompt_len[i] = P - 1;
            if (k > 0) {
                size_t rows = (size_t)s->n_ans + 1;
                memcpy(o->topk_ids + o->n_rows * k, s->topk_ids, rows * k * sizeof(int32_t));
                memcpy(o->topk_lp + o->n_rows * k, s->topk_lp, rows * k * sizeof(float));
                o->n_rows += rows;
            }
            st->sequences++;
            st->answer_tokens += s->n_ans;
            st->hit_max_tokens += s->hit_max;
            st->stopped += s->stopped;
            const char *truth = J->prompts->answers ? J->prompts->answers[s->prompt] : NULL;
            if (truth) {
                size_t tl = strlen(truth);
                int same = (size_t)s->n_ans == tl;
                for (size_t j = 0; same && j < tl; j++) same = s->ans[j] == (unsigned char)truth[j];
                st->correct += same;
                st->scored++;
            }
        }
        o->n_docs = n_seq;
        st->forward_tokens = (int64_t)(J->tokens - tokens0);
    }
    for (size_t i = 0; seqs && i < n_seq; i++) {
        free(seqs[i].ans);
        free(seqs[i].topk_ids);
        free(seqs[i].topk_lp);
    }
    free(seqs);
    free(order);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// the run: manifest, chunks, merge

// Everything that decides the output: a part directory is reused only when it was made with the same.
static char *manifest_text(const rt_config *c, const char *teacher_hash, const rt_synth_prompts *p) {
    char *out = malloc(8192);
    if (!out) return NULL;
    snprintf(out, 8192,
             "retort synth manifest 1\nteacher_hash: %s\nprompts: %s\nn: %zu\nseed: %lld\nsamples: %d\n"
             "temperature: %.17g\ntop_p: %.17g\ntop_k: %d\nmax_tokens: %d\nstop: %s\ntopk: %d\n"
             "topk_temperature: %.17g\nchunk: %d\nbatch_size: %d\n",
             teacher_hash, p->source, p->n, (long long)c->run.seed, c->synth.samples, c->synth.temperature,
             c->synth.top_p, c->synth.top_k, c->synth.max_tokens, c->synth.stop, c->synth.topk,
             c->synth.topk_temperature, c->synth.chunk, c->synth.batch_size);
    return out;
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void remove_part_dir(const char *dir, int64_t n_chunks) {
    char path[RT_PATH_MAX + 64];
    for (int64_t ci = 0; ci < n_chunks; ci++) {
        synth_chunk_path(path, sizeof path, dir, ci);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    unlink(path);
    rmdir(dir);
}

// Prompts of chunk ci.
static int64_t chunk_prompts(const rt_config *c, int64_t n, int64_t ci) {
    int64_t lo = ci * c->synth.chunk;
    return n - lo < c->synth.chunk ? n - lo : c->synth.chunk;
}

// The statistics a reused chunk contributes (what it does not record, cut and stopped answers, is left).
static void count_reused(const rt_dataset *d, const rt_synth_prompts *p, int64_t first_prompt, int samples,
                         rt_synth_stats *st) {
    for (size_t i = 0; i < d->n_docs; i++) {
        int64_t start = d->doc_offsets[i] + 1 + d->prompt_len[i], end = d->doc_offsets[i + 1] - 1; // EOS
        st->sequences++;
        st->answer_tokens += end - start;
        int64_t prompt = first_prompt + (int64_t)i / samples;
        if (!p->answers || prompt >= (int64_t)p->n) continue;
        const char *truth = p->answers[prompt];
        int same = (size_t)(end - start) == strlen(truth);
        for (int64_t j = 0; same && j < end - start; j++)
            same = d->tokens[start + j] == (unsigned char)truth[j];
        st->correct += same;
        st->scored++;
    }
}

// Rank 0: checks the part folder of an interrupted run against this run's manifest, or starts a new one.
static int open_part_dir(const rt_config *c, const char *dir, const char *manifest, rt_error *err) {
    char manifest_path[RT_PATH_MAX + 32];
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.txt", dir);
    if (path_exists(dir)) {
        char *have = NULL;
        size_t len = 0;
        int rc = 0;
        if (rt_read_file(manifest_path, &have, &len, err) || strcmp(have, manifest) != 0)
            rc = rt_fail(
                err,
                "%s holds an interrupted synth run with other settings (teacher, prompts or sampling; "
                "see its manifest.txt): run with those settings to finish it, or delete the folder",
                dir);
        free(have);
        return rc;
    }
    if (path_exists(c->synth.out))
        return rt_fail(err, "synth.out %s already exists: delete it or choose another synth.out",
                       c->synth.out);
    return rt_mkdir_p(dir, err) || rt_write_file_atomic(manifest_path, manifest, strlen(manifest), err) ? -1
                                                                                                        : 0;
}

// Rank 0: marks the chunks an interrupted run left whole in have[] and counts them.
static void scan_chunks(const rt_config *c, const char *dir, int64_t n_chunks,
                        const rt_synth_prompts *prompts, uint8_t *have, rt_synth_stats *st,
                        int64_t *prompts_done) {
    for (int64_t ci = 0; ci < n_chunks; ci++) {
        char path[RT_PATH_MAX + 64];
        synth_chunk_path(path, sizeof path, dir, ci);
        if (!path_exists(path)) continue;
        rt_dataset d; // a chunk is written atomically, so one that loads is whole
        rt_error why;
        if (rt_dataset_load(&d, path, 0, &why)) {
            fprintf(stderr, "warning: %s does not load (%s); making it again\n", path, why.msg);
            continue;
        }
        count_reused(&d, prompts, ci * c->synth.chunk, c->synth.samples, st);
        rt_dataset_free(&d);
        st->chunks_reused++;
        *prompts_done += chunk_prompts(c, (int64_t)prompts->n, ci);
        have[ci] = 1;
    }
}

// What every rank must agree on before generating: the manifest (settings, teacher hash, the prompts' source
// and count) and a hash of the prompts' ids, since two nodes may read different files at one path.
#define JOB_MAX 8448

static void job_text(char *out, const char *manifest, const rt_synth_prompts *p) {
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a over every id, and each prompt's end
    for (size_t i = 0; i < p->n; i++) {
        for (int32_t j = 0; j < p->len[i]; j++) h = (h ^ (uint32_t)p->ids[i][j]) * 0x100000001b3ULL;
        h = (h ^ 0xffffffffu) * 0x100000001b3ULL;
    }
    snprintf(out, JOB_MAX, "%sprompt ids: %016llx\n", manifest ? manifest : "", (unsigned long long)h);
}

// Collective: marks *failed (with the first line that differs) when this rank's job is not rank 0's: a run
// whose ranks disagree on the prompts would not even agree on how many rounds to make. Returns -1 only when
// the broadcast fails.
static int same_job_as_root(rt_comm *comm, const char *mine, int *failed, rt_error *err) {
    char root[JOB_MAX];
    snprintf(root, sizeof root, "%s", mine);
    if (comm->broadcast_host(comm, root, sizeof root, 0, err)) return -1;
    if (*failed || strcmp(root, mine) == 0) return 0;
    size_t i = 0, line = 0;
    for (; mine[i] && mine[i] == root[i]; i++)
        if (mine[i] == '\n') line = i + 1;
    int a = (int)strcspn(mine + line, "\n"), b = (int)strcspn(root + line, "\n");
    *failed = 1;
    rt_fail(err,
            "this rank's job differs from rank 0's ('%.*s' here, '%.*s' on rank 0): every rank must run the "
            "same config, teacher and prompts",
            a, mine + line, b, root + line);
    return 0;
}

// Rank 0: writes the chunks of one round (got[world]) and adds them to the summary.
static void write_round(const job *J, const char *dir, const synth_chunk *got, int world,
                        const char *teacher_path, const char *teacher_hash, rt_synth_stats *st,
                        int64_t *prompts_done, double *tokens, int *failed, rt_error *err) {
    for (int r = 0; r < world; r++) {
        const synth_chunk *o = &got[r];
        if (o->index < 0) continue;
        char path[RT_PATH_MAX + 64];
        synth_chunk_path(path, sizeof path, dir, o->index);
        rt_error why;
        if (synth_chunk_write(path, o, J->cfg, J->prompts, "retort synth chunk", teacher_path, teacher_hash,
                              J->m->dims.V, &why)) {
            if (!*failed) *err = why;
            *failed = 1;
            continue;
        }
        const synth_counts *n = &o->counts;
        st->sequences += n->sequences;
        st->answer_tokens += n->answer_tokens;
        st->hit_max_tokens += n->hit_max_tokens;
        st->stopped += n->stopped;
        st->correct += n->correct;
        st->scored += n->scored;
        *tokens += (double)n->forward_tokens;
        st->chunks_done++;
        *prompts_done += chunk_prompts(J->cfg, (int64_t)J->prompts->n, o->index);
    }
}

// Ranks split the work by whole chunks. A chunk's documents are a function of its prompts alone: they are
// batched within the chunk (sorted by length, so a batch's composition and padding depend only on the
// chunk) and each sequence samples from its own RNG stream (seed, prompt, sample). A finer split (prompts
// or batches dealt to ranks) would change which sequences share a forward pass, and a batched matmul need
// not give a row the same bits in every batch shape (the GPU picks its kernels by shape). So every chunk
// file is the same whichever rank made it, and the merge, which reads them in order, is the file one process
// writes. Rank 0 writes every file; the chunks made elsewhere reach it after each round of `world` chunks,
// and each round ends with an agreement, so a failure or a signal on any rank stops every rank there.
int rt_synth_run(const rt_config *cfg, rt_comm *comm, rt_model *teacher, const char *teacher_path,
                 const char *teacher_hash, const rt_synth_prompts *prompts, volatile sig_atomic_t *stop_flag,
                 rt_synth_stats *st, rt_error *err) {
    memset(st, 0, sizeof *st);
    const rt_config *c = cfg;
    double t0 = rt_now();
    int root = comm->rank == 0, world = comm->world, failed = 0;
    int64_t chunk = c->synth.chunk, n = (int64_t)prompts->n, n_chunks = (n + chunk - 1) / chunk;
    char dir[RT_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s.part", c->synth.out);

    // set-up, whose failure on any rank every rank learns in the agreement below
    job J;
    memset(&J, 0, sizeof J);
    J.cfg = c;
    J.m = teacher;
    J.prompts = prompts;
    J.k = c->synth.topk;
    J.cap = c->synth.max_tokens < teacher->T_max_batch ? c->synth.max_tokens : teacher->T_max_batch;
    J.sampling = (rt_sampling){(float)c->synth.temperature, c->synth.top_k, (float)c->synth.top_p};
    J.tok = prompts->tok;
    J.byte = strcmp(prompts->tok_type, "byte") == 0;
    J.n_tok_ids = rt_tokenizer_vocab_size(prompts->tok);
    J.eos = prompts->eos_id;
    if (c->synth.topk > teacher->dims.V) {
        rt_fail(err, "synth.topk %d exceeds the teacher's vocabulary %d", c->synth.topk, teacher->dims.V);
        failed = 1;
    }
    J.row = rt_malloc((size_t)teacher->dims.V * sizeof(float), "logits row", err);
    J.probs = rt_malloc((size_t)teacher->dims.V * sizeof(float), "logits row", err);
    char *manifest = manifest_text(c, teacher_hash, prompts);
    uint8_t *have = calloc((size_t)n_chunks + 1, 1);
    int64_t *todo = malloc(((size_t)n_chunks + 1) * sizeof *todo);
    synth_chunk *got = calloc((size_t)world, sizeof *got);
    if (!failed && (!J.row || !J.probs || !manifest || !have || !todo || !got)) {
        rt_fail(err, "out of memory setting up synth");
        failed = 1;
    }
    if (!failed && parse_stops(c->synth.stop, &J.stops, err)) failed = 1;
    char job[JOB_MAX];
    job_text(job, manifest, prompts);
    int rc = same_job_as_root(comm, job, &failed, err);
    int64_t prompts_done = 0;
    if (rc == 0 && root && !failed) {
        if (open_part_dir(c, dir, manifest, err))
            failed = 1;
        else
            scan_chunks(c, dir, n_chunks, prompts, have, st, &prompts_done);
    }
    if (rc == 0) rc = rt_comm_agree(comm, failed, NULL, err);
    if (rc == 0) rc = comm->broadcast_host(comm, have, (size_t)n_chunks, 0, err);
    int64_t n_todo = 0;
    for (int64_t ci = 0; rc == 0 && ci < n_chunks; ci++)
        if (!have[ci]) todo[n_todo++] = ci;

    // rounds: rank r makes the (base + r)-th missing chunk; rank 0 writes what every rank made
    double tokens = 0.0, last_report = 0.0;
    for (int64_t base = 0; rc == 0 && base < n_todo; base += world) {
        int64_t i = base + comm->rank;
        synth_chunk mine;
        memset(&mine, 0, sizeof mine);
        int interrupted = 0;
        failed = 0;
        if (i < n_todo) {
            int64_t ci = todo[i], lo = ci * chunk, hi = lo + chunk < n ? lo + chunk : n;
            failed = make_chunk(&J, ci, lo, hi, stop_flag, &interrupted, &mine, err) != 0;
        }
        void *storage = NULL;
        int made = i < n_todo && !failed && !interrupted;
        rc = synth_chunks_to_root(comm, made ? &mine : NULL, J.k, &failed, got, &storage, err);
        if (rc == 0 && root)
            write_round(&J, dir, got, world, teacher_path, teacher_hash, st, &prompts_done, &tokens, &failed,
                        err);
        free(storage);
        synth_chunk_free(&mine);
        int stop = stop_flag ? (int)*stop_flag : 0;
        if (rc == 0) rc = rt_comm_agree(comm, failed, &stop, err);
        double now = rt_now();
        int last = base + world >= n_todo || stop;
        if (rc == 0 && root && (now - last_report > 2.0 || last)) {
            int64_t chunks = st->chunks_done + st->chunks_reused;
            double el = now - t0, rate = (double)st->chunks_done / (double)(n_chunks - st->chunks_reused);
            double eta = rate > 0 && chunks < n_chunks ? el / rate - el : 0.0;
            fprintf(stderr, "synth: prompts %lld/%lld | chunk %lld/%lld | %.0f tok/s | ETA %.0fs\n",
                    (long long)prompts_done, (long long)n, (long long)chunks, (long long)n_chunks,
                    el > 0 ? tokens / el : 0.0, eta);
            last_report = now;
        }
        if (rc == 0 && stop) {
            st->stop_signal = stop;
            break;
        }
    }

    // rank 0 merges once every chunk is on disk (a signal after the last one still lets it finish); the
    // others learn from it whether the run is complete
    int64_t missing = n_chunks - st->chunks_done - st->chunks_reused;
    failed = 0;
    if (rc == 0 && root && missing == 0) {
        if (synth_merge_chunks(c, dir, n_chunks, prompts, teacher_path, teacher_hash, teacher->dims.V, err))
            failed = 1;
        else
            remove_part_dir(dir, n_chunks);
    }
    if (rc == 0) rc = comm->broadcast_host(comm, &missing, sizeof missing, 0, err);
    if (rc == 0) rc = rt_comm_agree(comm, failed, NULL, err);
    free(J.row);
    free(J.probs);
    free_stops(&J.stops);
    rt_buf_free(&J.text);
    free(manifest);
    free(have);
    free(todo);
    free(got);
    st->seconds = rt_now() - t0;
    if (rc) return -1;
    return missing > 0 ? 1 : 0;
}
