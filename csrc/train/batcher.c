#include "train/batcher.h"

#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

static void make_order(rt_batcher *b) {
    for (int64_t i = 0; i < b->n_windows; i++) b->order[i] = i;
    if (!b->shuffle) return;
    rt_rng r;
    rt_rng_seed(&r, rt_seed_mix(b->seed, (uint64_t)b->epoch + 0x5eedULL));
    for (int64_t i = b->n_windows - 1; i > 0; i--) { // Fisher-Yates
        int64_t j = (int64_t)rt_rng_below(&r, (uint64_t)i + 1);
        int64_t t = b->order[i];
        b->order[i] = b->order[j];
        b->order[j] = t;
    }
}

int rt_batcher_init(rt_batcher *b, const rt_dataset *ds, int T, uint64_t seed, int shuffle, int rank,
                    int world, rt_error *err) {
    memset(b, 0, sizeof *b);
    if (T <= 0 || ds->n_tokens < (size_t)T + 1)
        return rt_fail(err, "%s: %zu tokens cannot fill one sequence of seq_len %d (+1 for the targets)",
                       ds->path, ds->n_tokens, T);
    b->ds = ds;
    b->T = T;
    b->n_windows = (int64_t)((ds->n_tokens - 1) / (size_t)T);
    b->seed = seed;
    b->shuffle = shuffle;
    b->rank = rank;
    b->world = world;
    b->order = rt_malloc((size_t)b->n_windows * sizeof(int64_t), "data order", err);
    if (!b->order) return -1;
    make_order(b);
    return 0;
}

void rt_batcher_free(rt_batcher *b) {
    free(b->order);
    memset(b, 0, sizeof *b);
}

int rt_batcher_seek(rt_batcher *b, int64_t epoch, int64_t index, rt_error *err) {
    if (epoch < 0 || index < 0 || index > b->n_windows)
        return rt_fail(err, "data position epoch %lld index %lld is outside %s (%lld windows of %d tokens)",
                       (long long)epoch, (long long)index, b->ds->path, (long long)b->n_windows, b->T);
    b->epoch = epoch;
    b->index = index;
    make_order(b);
    return 0;
}

static int64_t next_window(rt_batcher *b) {
    if (b->index >= b->n_windows) {
        b->epoch++;
        b->index = 0;
        make_order(b);
    }
    return b->order[b->index++];
}

void rt_batcher_set_mask(rt_batcher *b, const uint8_t *mask) {
    b->target_mask = mask;
}

int64_t rt_batcher_next(rt_batcher *b, int B, int32_t *tokens, int32_t *targets) {
    return rt_batcher_next_pos(b, B, tokens, targets, NULL);
}

int64_t rt_batcher_next_pos(rt_batcher *b, int B, int32_t *tokens, int32_t *targets, int64_t *positions) {
    int T = b->T;
    int64_t counted = 0;
    for (int i = 0; i < B * b->world; i++) {
        int64_t w = next_window(b);
        if (i / B != b->rank) continue;
        size_t start = (size_t)w * (size_t)T;
        const int32_t *src = b->ds->tokens + start; // [T + 1]
        int row = i % B;
        int32_t *tgt = targets + (size_t)row * T;
        memcpy(tokens + (size_t)row * T, src, (size_t)T * sizeof(int32_t));
        memcpy(tgt, src + 1, (size_t)T * sizeof(int32_t));
        for (int t = 0; positions && t < T; t++)
            positions[(size_t)row * T + t] = (int64_t)(start + 1 + (size_t)t);
        if (!b->target_mask) {
            counted += T;
            continue;
        }
        const uint8_t *mask = b->target_mask + start + 1; // the mask of each target token
        for (int t = 0; t < T; t++) {
            if (mask[t])
                counted++;
            else
                tgt[t] = -1;
        }
    }
    return counted;
}
