// Single-process communicator: a sum over one rank is the value itself, and there is nobody to wait for.
#include "train/comm.h"

#include <string.h>

static int single_allreduce_sum(rt_comm *c, rt_ctx *ctx, float *buf, size_t n, rt_error *err) {
    return 0;
}

static int single_allreduce_wait(rt_comm *c, rt_ctx *ctx, rt_error *err) {
    return 0;
}

static int single_reduce_scatter_sum(rt_comm *c, rt_ctx *ctx, float *buf, size_t shard, rt_error *err) {
    return 0;
}

static int single_allgather(rt_comm *c, rt_ctx *ctx, void *buf, size_t shard_bytes, rt_error *err) {
    return 0;
}

static int single_allreduce_host(rt_comm *c, double *values, int n, rt_error *err) {
    return 0;
}

static int single_max_host(rt_comm *c, int *values, int n, rt_error *err) {
    return 0;
}

static int single_gather_host(rt_comm *c, const void *send, size_t bytes, void *recv, int root,
                              rt_error *err) {
    if (bytes) memmove(recv, send, bytes);
    return 0;
}

static int single_broadcast_host(rt_comm *c, void *buf, size_t bytes, int root, rt_error *err) {
    return 0;
}

static int single_barrier(rt_comm *c, rt_error *err) {
    return 0;
}

static void single_destroy(rt_comm *c) {
    memset(c, 0, sizeof *c);
}

int rt_comm_single_init(rt_comm *c, rt_error *err) {
    memset(c, 0, sizeof *c);
    c->name = "single";
    c->rank = 0;
    c->world = 1;
    c->local_rank = 0;
    c->local_world = 1;
    c->allreduce_sum = single_allreduce_sum;
    c->allreduce_sum_start = single_allreduce_sum;
    c->allreduce_wait = single_allreduce_wait;
    c->reduce_scatter_sum = single_reduce_scatter_sum;
    c->allgather = single_allgather;
    c->allreduce_host = single_allreduce_host;
    c->max_host = single_max_host;
    c->gather_host = single_gather_host;
    c->broadcast_host = single_broadcast_host;
    c->barrier = single_barrier;
    c->destroy = single_destroy;
    return 0;
}
