// Training batches from a token dataset: the documents' ids form one stream, cut into windows of T + 1 ids
// (inputs are the first T, targets the last T). Each epoch visits every window once in an order shuffled by
// (seed, epoch), so the data order is a pure function of the seed and the position (epoch, index), which
// checkpoints store. With W ranks, each global draw of W*B windows gives rank r the r-th block of B.
#ifndef RT_BATCHER_H
#define RT_BATCHER_H

#include <stdint.h>

#include "data/dataset.h"

typedef struct rt_batcher {
    const rt_dataset *ds;
    int T;
    int64_t n_windows;
    uint64_t seed;
    int shuffle;   // 0: windows in file order (validation)
    int64_t epoch; // position: epoch and index of the next window in that epoch's order
    int64_t index;
    int64_t *order; // [n_windows], this epoch's permutation
    int rank, world;
    const uint8_t *target_mask; // [ds->n_tokens] or NULL: a target whose mask is 0 becomes -1 (ignored)
} rt_batcher;

// Fails when the dataset holds fewer than T + 1 tokens.
int rt_batcher_init(rt_batcher *b, const rt_dataset *ds, int T, uint64_t seed, int shuffle, int rank,
                    int world, rt_error *err);
void rt_batcher_free(rt_batcher *b);
// Jump to a stored position (a resumed run); rejects positions outside this dataset.
int rt_batcher_seek(rt_batcher *b, int64_t epoch, int64_t index, rt_error *err);
// Only targets at tokens with mask[j] = 1 count (an answer-only loss); the mask is borrowed, NULL = all.
void rt_batcher_set_mask(rt_batcher *b, const uint8_t *mask);
// Next micro-batch for this rank: tokens and targets [B, T]. Returns how many targets count (>= 0).
int64_t rt_batcher_next(rt_batcher *b, int B, int32_t *tokens, int32_t *targets);
// The same, also giving each target's index in the dataset's token stream (positions [B, T]), which is how
// per-position data such as a teacher's top-k rows is found.
int64_t rt_batcher_next_pos(rt_batcher *b, int B, int32_t *tokens, int32_t *targets, int64_t *positions);

#endif
