// Internal to `retort synth` (synth.c): a finished chunk of documents, its file under <out>.part/, the merge
// of every chunk into the output, and how a chunk made on another rank reaches rank 0, which writes every
// file of a multi-rank run.
#ifndef RT_SYNTH_CHUNKS_H
#define RT_SYNTH_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "distill/synth.h"
#include "train/comm.h"

// What a chunk adds to the summary: rt_synth_stats' counts, and the tokens the teacher's forward passes ran.
typedef struct synth_counts {
    int64_t sequences, answer_tokens, hit_max_tokens, stopped, correct, scored, forward_tokens;
} synth_counts;

// The documents of one chunk (prompts [index * synth.chunk, ...)) in (prompt, sample) order, with the top-k
// rows of their answer positions when synth.topk > 0.
typedef struct synth_chunk {
    int64_t index;
    int32_t *tokens;
    int64_t *offsets; // [n_docs + 1]
    int32_t *prompt_len;
    int32_t *topk_ids; // [n_rows, k]
    float *topk_lp;
    size_t n_tokens, n_docs, n_rows;
    synth_counts counts;
} synth_chunk;

void synth_chunk_free(synth_chunk *o);

// <dir>/chunk-<index>.h5
void synth_chunk_path(char *out, size_t cap, const char *dir, int64_t index);

// Writes documents (and their top-k rows) as a dataset naming the teacher.
int synth_chunk_write(const char *path, const synth_chunk *o, const rt_config *c, const rt_synth_prompts *p,
                      const char *source, const char *teacher_path, const char *teacher_hash, int V,
                      rt_error *err);

// Concatenates the chunk files 0 .. n_chunks - 1 of dir, in order, into synth.out.
int synth_merge_chunks(const rt_config *c, const char *dir, int64_t n_chunks, const rt_synth_prompts *prompts,
                       const char *teacher_path, const char *teacher_hash, int V, rt_error *err);

// Collective: every rank passes the chunk it made this round, or NULL (none to make, interrupted, or failed:
// the failure itself travels in the agreement that follows). On rank 0, got[world] receives every rank's
// chunk as views into *storage (free it with free() once written); got[r].index is -1 where rank r sent
// none. k is synth.topk. Returns -1 when the transfer failed, or on every rank when one could not hold the
// blocks; a chunk too large to send, or a block rank 0 cannot read, marks *failed on its rank and is left out
// (the caller's agreement reports it).
int synth_chunks_to_root(rt_comm *comm, const synth_chunk *mine, int k, int *failed, synth_chunk *got,
                         void **storage, rt_error *err);

#endif
