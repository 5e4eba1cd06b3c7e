// Chunks of `retort synth`: their files, the merge into the output, and the transfer of a chunk made on
// another rank to rank 0 (synth_chunks.h).
#define _POSIX_C_SOURCE 200809L
#include "distill/synth_chunks.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "data/dataset.h"

void synth_chunk_free(synth_chunk *o) {
    free(o->tokens);
    free(o->offsets);
    free(o->prompt_len);
    free(o->topk_ids);
    free(o->topk_lp);
    memset(o, 0, sizeof *o);
}

void synth_chunk_path(char *out, size_t cap, const char *dir, int64_t index) {
    snprintf(out, cap, "%s/chunk-%08lld.h5", dir, (long long)index);
}

int synth_chunk_write(const char *path, const synth_chunk *o, const rt_config *c, const rt_synth_prompts *p,
                      const char *source, const char *teacher_path, const char *teacher_hash, int V,
                      rt_error *err) {
    int k = c->synth.topk;
    rt_dataset_topk topk = {k, c->synth.topk_temperature, o->n_rows, o->topk_ids, o->topk_lp};
    rt_dataset_spec spec = {.tokens = o->tokens,
                            .n_tokens = o->n_tokens,
                            .doc_offsets = o->offsets,
                            .n_docs = o->n_docs,
                            .prompt_len = o->prompt_len,
                            .vocab_size = V,
                            .tokenizer = p->tok_type,
                            .tokenizer_hash = p->tok_hash,
                            .task = p->task,
                            .split = p->split,
                            .seed = c->run.seed,
                            .source = source,
                            .teacher = teacher_path,
                            .teacher_hash = teacher_hash,
                            .teacher_vocab_size = V,
                            .topk = k > 0 ? &topk : NULL};
    return rt_dataset_write(path, &spec, err);
}

// Grows o's arrays to hold need_tok tokens, need_docs documents and need_rows top-k rows.
static int grow(synth_chunk *o, size_t *cap_tok, size_t *cap_docs, size_t *cap_rows, size_t need_tok,
                size_t need_docs, size_t need_rows, int k, rt_error *err) {
    if (need_tok > *cap_tok) {
        *cap_tok = need_tok * 2;
        int32_t *t = realloc(o->tokens, *cap_tok * sizeof(int32_t));
        if (!t) return rt_fail(err, "out of memory merging synth chunks");
        o->tokens = t;
    }
    if (need_docs + 1 > *cap_docs) {
        *cap_docs = (need_docs + 1) * 2;
        int64_t *off = realloc(o->offsets, *cap_docs * sizeof(int64_t));
        if (off) o->offsets = off;
        int32_t *pl = realloc(o->prompt_len, *cap_docs * sizeof(int32_t));
        if (pl) o->prompt_len = pl;
        if (!off || !pl) return rt_fail(err, "out of memory merging synth chunks");
    }
    if (k > 0 && need_rows > *cap_rows) {
        *cap_rows = need_rows * 2;
        int32_t *ti = realloc(o->topk_ids, *cap_rows * k * sizeof(int32_t));
        if (ti) o->topk_ids = ti;
        float *tl = realloc(o->topk_lp, *cap_rows * k * sizeof(float));
        if (tl) o->topk_lp = tl;
        if (!ti || !tl) return rt_fail(err, "out of memory merging synth chunks");
    }
    return 0;
}

int synth_merge_chunks(const rt_config *c, const char *dir, int64_t n_chunks, const rt_synth_prompts *prompts,
                       const char *teacher_path, const char *teacher_hash, int V, rt_error *err) {
    synth_chunk o;
    memset(&o, 0, sizeof o);
    size_t cap_tok = 0, cap_docs = 0, cap_rows = 0;
    int k = c->synth.topk, rc = 0;
    for (int64_t ci = 0; ci < n_chunks && rc == 0; ci++) {
        char path[RT_PATH_MAX + 64];
        synth_chunk_path(path, sizeof path, dir, ci);
        rt_dataset d;
        if (rt_dataset_load(&d, path, 0, err)) {
            rc = rt_fail_wrap(err, "merging synth chunks");
            break;
        }
        size_t need_tok = o.n_tokens + d.n_tokens, need_docs = o.n_docs + d.n_docs,
               need_rows = o.n_rows + d.topk.n_rows;
        rc = grow(&o, &cap_tok, &cap_docs, &cap_rows, need_tok, need_docs, need_rows, k, err);
        if (rc == 0 && (d.topk.k != k || (k > 0 && d.topk.n_rows != rt_dataset_answer_count(&d))))
            rc = rt_fail(err, "%s: top-k %d, expected %d: the chunk is not from this run", path, d.topk.k, k);
        if (rc == 0) {
            if (o.n_docs == 0) o.offsets[0] = 0;
            memcpy(o.tokens + o.n_tokens, d.tokens, d.n_tokens * sizeof(int32_t));
            memcpy(o.prompt_len + o.n_docs, d.prompt_len, d.n_docs * sizeof(int32_t));
            for (size_t i = 0; i < d.n_docs; i++)
                o.offsets[o.n_docs + i + 1] = (int64_t)o.n_tokens + d.doc_offsets[i + 1];
            if (k > 0) {
                memcpy(o.topk_ids + o.n_rows * k, d.topk.ids, d.topk.n_rows * k * sizeof(int32_t));
                memcpy(o.topk_lp + o.n_rows * k, d.topk.logprobs, d.topk.n_rows * k * sizeof(float));
            }
            o.n_tokens = need_tok;
            o.n_docs = need_docs;
            o.n_rows = need_rows;
        }
        rt_dataset_free(&d);
    }
    if (rc == 0) {
        char source[1400];
        snprintf(
            source, sizeof source,
            "retort synth: %s; temperature %g, top_p %g, top_k %d, max_tokens %d, %d sample(s) per prompt%s",
            prompts->source, c->synth.temperature, c->synth.top_p, c->synth.top_k, c->synth.max_tokens,
            c->synth.samples, k > 0 ? "; teacher top-k log-probs kept" : "");
        rc = synth_chunk_write(c->synth.out, &o, c, prompts, source, teacher_path, teacher_hash, V, err);
    }
    synth_chunk_free(&o);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// the transfer to rank 0
//
// A chunk travels as one block: a header of int64 (index, n_tokens, n_docs, n_rows, the counts), the
// offsets (int64), then tokens, prompt_len, top-k ids (int32) and top-k log-probs (float). Every rank's
// block is padded to the largest of the round, because a gather moves the same number of bytes from each.

enum { HEADER = 11 };

static size_t block_bytes(size_t n_tokens, size_t n_docs, size_t n_rows, int k) {
    return HEADER * sizeof(int64_t) + (n_docs + 1) * sizeof(int64_t) +
           (n_tokens + n_docs + 2 * n_rows * (size_t)k) * sizeof(int32_t);
}

static void put(unsigned char *buf, size_t *at, const void *src, size_t bytes) {
    if (bytes) memcpy(buf + *at, src, bytes);
    *at += bytes;
}

static void pack(const synth_chunk *o, int k, unsigned char *buf) {
    const synth_counts *n = &o->counts;
    int64_t h[HEADER] = {o->index,           (int64_t)o->n_tokens, (int64_t)o->n_docs,
                         (int64_t)o->n_rows, n->sequences,         n->answer_tokens,
                         n->hit_max_tokens,  n->stopped,           n->correct,
                         n->scored,          n->forward_tokens};
    size_t at = 0, rows = o->n_rows * (size_t)k;
    put(buf, &at, h, sizeof h);
    put(buf, &at, o->offsets, (o->n_docs + 1) * sizeof(int64_t));
    put(buf, &at, o->tokens, o->n_tokens * sizeof(int32_t));
    put(buf, &at, o->prompt_len, o->n_docs * sizeof(int32_t));
    put(buf, &at, o->topk_ids, rows * sizeof(int32_t));
    put(buf, &at, o->topk_lp, rows * sizeof(float));
}

// A view of the block at buf (slot bytes, 8-aligned) as a chunk; index -1 when the block holds none.
static int unpack(unsigned char *buf, size_t slot, int k, int from, synth_chunk *o, rt_error *err) {
    memset(o, 0, sizeof *o);
    int64_t h[HEADER];
    memcpy(h, buf, sizeof h);
    o->index = h[0];
    if (o->index < 0) return 0;
    if (h[1] < 0 || h[2] < 0 || h[3] < 0 ||
        block_bytes((size_t)h[1], (size_t)h[2], (size_t)h[3], k) > slot) // a peer's bug, never input
        return rt_fail(err, "the block of chunk %lld from rank %d does not fit its %zu bytes",
                       (long long)h[0], from, slot);
    o->n_tokens = (size_t)h[1];
    o->n_docs = (size_t)h[2];
    o->n_rows = (size_t)h[3];
    o->counts = (synth_counts){h[4], h[5], h[6], h[7], h[8], h[9], h[10]};
    size_t at = sizeof h, rows = o->n_rows * (size_t)k;
    o->offsets = (int64_t *)(void *)(buf + at);
    at += (o->n_docs + 1) * sizeof(int64_t);
    o->tokens = (int32_t *)(void *)(buf + at);
    at += o->n_tokens * sizeof(int32_t);
    o->prompt_len = (int32_t *)(void *)(buf + at);
    at += o->n_docs * sizeof(int32_t);
    o->topk_ids = k > 0 ? (int32_t *)(void *)(buf + at) : NULL;
    at += rows * sizeof(int32_t);
    o->topk_lp = k > 0 ? (float *)(void *)(buf + at) : NULL;
    return 0;
}

int synth_chunks_to_root(rt_comm *comm, const synth_chunk *mine, int k, int *failed, synth_chunk *got,
                         void **storage, rt_error *err) {
    *storage = NULL;
    if (comm->world == 1) { // nothing to move: rank 0 made it
        if (mine)
            got[0] = *mine;
        else
            got[0] = (synth_chunk){.index = -1};
        return 0;
    }
    size_t bytes = HEADER * sizeof(int64_t);
    if (mine) {
        size_t need = block_bytes(mine->n_tokens, mine->n_docs, mine->n_rows, k);
        if (need > (size_t)INT_MAX - 7) { // one MPI message counts its bytes in an int
            rt_fail(err,
                    "chunk %lld holds %zu bytes, more than one transfer to rank 0 carries (2 GiB): lower "
                    "synth.chunk",
                    (long long)mine->index, need);
            *failed = 1;
            mine = NULL;
        } else {
            bytes = need;
        }
    }
    int slot_i = (int)((bytes + 7) / 8 * 8); // 8-aligned, so every rank's block starts aligned for int64
    if (comm->max_host(comm, &slot_i, 1, err)) return -1;
    size_t slot = (size_t)slot_i;
    unsigned char *send = calloc(1, slot);
    unsigned char *recv = comm->rank == 0 ? malloc(slot * (size_t)comm->world) : NULL;
    // a rank that cannot hold the blocks must not leave the others waiting in the gather
    int no_memory = !send || (comm->rank == 0 && !recv);
    rt_error mem_err = *err;
    if (no_memory) rt_fail(&mem_err, "out of memory for the %zu-byte blocks of synth chunks", slot);
    if (rt_comm_agree(comm, no_memory, NULL, &mem_err)) {
        free(send);
        free(recv);
        *err = mem_err;
        return -1;
    }
    if (mine)
        pack(mine, k, send);
    else
        memcpy(send, &(int64_t){-1}, sizeof(int64_t));
    int rc = comm->gather_host(comm, send, slot, recv, 0, err);
    free(send);
    if (rc) {
        free(recv);
        return -1;
    }
    // a block that does not parse fails rank 0 in the agreement that follows, like a failed write
    for (int r = 0; comm->rank == 0 && r < comm->world; r++) {
        rt_error bad;
        if (unpack(recv + (size_t)r * slot, slot, k, r, &got[r], &bad)) {
            if (!*failed) *err = bad;
            *failed = 1;
            got[r].index = -1;
        }
    }
    *storage = recv;
    return 0;
}
