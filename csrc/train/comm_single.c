// Single-process communicator: a sum over one rank is the value itself.
#include "train/comm.h"

#include <string.h>

static int single_allreduce_sum(rt_comm *c, rt_ctx *ctx, void *buf, rt_dtype t, size_t n, rt_error *err) {
    return 0;
}

static int single_allreduce_host(rt_comm *c, double *value, rt_error *err) {
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
    c->allreduce_sum = single_allreduce_sum;
    c->allreduce_host = single_allreduce_host;
    c->barrier = single_barrier;
    c->destroy = single_destroy;
    return 0;
}
