// Flat parameter arenas: every trainable tensor lives at an offset in one allocation per kind (fp32
// master weights, compute copies, micro-batch gradients, the step's fp32 gradient sum, AdamW moments), so
// a collective is one call per arena and the optimizer a few launches. docs/distributed.md, Arenas.
#ifndef RT_ARENA_H
#define RT_ARENA_H

#include <stddef.h>

// Elements per segment: gradient-norm partials are per segment, and ZeRO shards are whole segments, so
// the norm is the same bits whatever the world size or sharding.
#define RT_ARENA_SEGMENT ((size_t)65536)

// How a training model is split over data-parallel ranks.
typedef struct rt_data_parallel {
    int world, rank;
    int zero;       // 1: this rank keeps the AdamW moments of its shard only
    int grad_accum; // micro-batches per optimizer step on this rank
} rt_data_parallel;

// The trainable weights whose gradients the backward pass completes together: the head and final norm,
// then each layer from the last to the first, then the token embedding. Its matrices and its norms are
// two ranges of the arena, [decay_lo, decay_hi) and [norm_lo, norm_hi) (either may be empty).
typedef struct rt_grad_bucket {
    size_t decay_lo, decay_hi, norm_lo, norm_hi;
} rt_grad_bucket;

typedef struct rt_param_arena {
    size_t n;          // elements, world * shard_n: zero padding follows the last tensor
    size_t n_used;     // elements up to the end of the last tensor
    size_t n_decay;    // [0, n_decay) take weight decay (matrices); the rest do not (norms, padding)
    size_t shard_n;    // elements per rank's shard, a whole number of segments
    size_t shard_off;  // this rank's shard starts here
    size_t n_segments; // segments of the whole arena (n / RT_ARENA_SEGMENT)
    float *master;     // [n] fp32 master weights; [shard_n] of this rank's shard when master_sharded
    void *w;           // [n] act compute copies; == master when act is fp32
    void *grad;        // [n] act: the gradient of one micro-batch
    float *acc;        // [n] fp32: the step's gradient over micro-batches and ranks; == grad when act is fp32
                       // and a step is one micro-batch
    float *m, *v;      // AdamW moments: [shard_n] of this rank's shard with zero 1, else [n]
    float *partials;   // [n_segments] squared-norm partials
    int separate_acc;  // acc is its own buffer
    int master_sharded;      // ZeRO-1 with a bf16 compute copy: the fp32 masters are sharded like the moments
    rt_grad_bucket *buckets; // [n_buckets] in the order backward completes them; ranges laid out in it
    int n_buckets;
} rt_param_arena;

#endif
