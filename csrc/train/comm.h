// The communicator: how ranks of a data-parallel run agree. The training loop calls it at the same points
// whatever the world size (after each optimizer step's backward, for the loss, at checkpoints), so one
// process is not a special case. Implementations: single process (comm_single.c); MPI and NCCL come with
// multi-rank training.
#ifndef RT_COMM_H
#define RT_COMM_H

#include <stddef.h>

#include "backend/backend.h"

typedef struct rt_comm rt_comm;
struct rt_comm {
    const char *name; // "single", "mpi", "nccl"
    int rank;         // this process, 0 .. world - 1
    int world;        // number of ranks
    void *impl;
    // In-place sum over ranks of n elements of dtype t in device memory on ctx's stream.
    int (*allreduce_sum)(rt_comm *c, rt_ctx *ctx, void *buf, rt_dtype t, size_t n, rt_error *err);
    // Sum of one host double over ranks (losses, token counts); every rank receives the result.
    int (*allreduce_host)(rt_comm *c, double *value, rt_error *err);
    // Wait for every rank (checkpoint writes).
    int (*barrier)(rt_comm *c, rt_error *err);
    void (*destroy)(rt_comm *c);
};

// A communicator for a run of one process (rank 0 of 1).
int rt_comm_single_init(rt_comm *c, rt_error *err);

#endif
