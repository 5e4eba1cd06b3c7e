// Open MPI communicator over host memory, for the CPU backend. MPI's error handler is set to return, so a
// failed call becomes a message naming the rank and the call instead of an abort.
//
// Sums are deterministic: with two ranks a sum is one commutative addition, so MPI's own Allreduce gives
// every rank the same bits; with more, the ranks pass partial sums along a chain 0 -> 1 -> ... -> N-1, so
// every element is ((r0 + r1) + r2) + ..., what one process accumulating the same micro-batches computes.
#include "train/comm.h"

#ifdef RT_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

typedef struct mpi_impl {
    MPI_Comm world;
    float *chunk; // [CHUNK] a partial sum in flight along the chain
    int we_initialized;
} mpi_impl;

// Elements per message: well under INT_MAX, and large enough to keep the links busy.
#define CHUNK ((size_t)1 << 20)

static int mpi_check(rt_comm *c, int rc, const char *what, rt_error *err) {
    if (rc == MPI_SUCCESS) return 0;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return rt_fail(err, "rank %d of %d: %s failed: %s", c->rank, c->world, what, text);
}

static MPI_Comm comm_of(rt_comm *c) {
    return ((mpi_impl *)c->impl)->world;
}

// Elements in the message at off of n (MPI counts are ints).
static int chunk_len(size_t n, size_t off) {
    return (int)(n - off < CHUNK ? n - off : CHUNK);
}

// ((r0 + r1) + ...) + r(N-1) of every element, left on rank N-1 only.
static int chain_reduce(rt_comm *c, float *buf, size_t n, rt_error *err) {
    mpi_impl *im = c->impl;
    int r = c->rank, last = c->world - 1;
    for (size_t off = 0; off < n; off += CHUNK) {
        int len = chunk_len(n, off);
        float *own = buf + off;
        if (r > 0) {
            if (mpi_check(c, MPI_Recv(im->chunk, len, MPI_FLOAT, r - 1, 0, im->world, MPI_STATUS_IGNORE),
                          "MPI_Recv (gradient sum)", err))
                return -1;
            for (int i = 0; i < len; i++) own[i] = im->chunk[i] + own[i];
        }
        if (r < last &&
            mpi_check(c, MPI_Send(own, len, MPI_FLOAT, r + 1, 0, im->world), "MPI_Send (gradient sum)", err))
            return -1;
    }
    return 0;
}

static int mpi_allreduce_sum(rt_comm *c, rt_ctx *ctx, float *buf, size_t n, rt_error *err) {
    ctx->be->sync(ctx);
    if (c->world == 2) {
        for (size_t off = 0; off < n; off += CHUNK) {
            int len = chunk_len(n, off);
            if (mpi_check(c, MPI_Allreduce(MPI_IN_PLACE, buf + off, len, MPI_FLOAT, MPI_SUM, comm_of(c)),
                          "MPI_Allreduce (gradient sum)", err))
                return -1;
        }
        return 0;
    }
    if (chain_reduce(c, buf, n, err)) return -1;
    for (size_t off = 0; off < n; off += CHUNK) {
        int len = chunk_len(n, off);
        if (mpi_check(c, MPI_Bcast(buf + off, len, MPI_FLOAT, c->world - 1, comm_of(c)),
                      "MPI_Bcast (gradient sum)", err))
            return -1;
    }
    return 0;
}

// Host sums finish inside allreduce_sum: a started one is already complete.
static int mpi_allreduce_wait(rt_comm *c, rt_ctx *ctx, rt_error *err) {
    return 0;
}

static int mpi_reduce_scatter_sum(rt_comm *c, rt_ctx *ctx, float *buf, size_t shard, rt_error *err) {
    ctx->be->sync(ctx);
    size_t n = shard * (size_t)c->world;
    if (c->world == 2) {
        // each rank's shard is one addition of the two ranks' values: exchange the other's shard and add
        mpi_impl *im = c->impl;
        int peer = 1 - c->rank;
        float *mine = buf + shard * (size_t)c->rank, *theirs = buf + shard * (size_t)peer;
        for (size_t off = 0; off < shard; off += CHUNK) {
            int len = chunk_len(shard, off);
            if (mpi_check(c,
                          MPI_Sendrecv(theirs + off, len, MPI_FLOAT, peer, 1, im->chunk, len, MPI_FLOAT, peer,
                                       1, im->world, MPI_STATUS_IGNORE),
                          "MPI_Sendrecv (gradient shards)", err))
                return -1;
            for (int i = 0; i < len; i++) mine[off + i] = mine[off + i] + im->chunk[i];
        }
        return 0;
    }
    if (chain_reduce(c, buf, n, err)) return -1;
    // rank N-1 holds every sum: each other rank receives its shard
    int last = c->world - 1;
    for (int r = 0; r < last; r++) {
        float *s = buf + shard * (size_t)r;
        for (size_t off = 0; off < shard; off += CHUNK) {
            int len = chunk_len(shard, off);
            int rc = MPI_SUCCESS;
            if (c->rank == last)
                rc = MPI_Send(s + off, len, MPI_FLOAT, r, 2, comm_of(c));
            else if (c->rank == r)
                rc = MPI_Recv(s + off, len, MPI_FLOAT, last, 2, comm_of(c), MPI_STATUS_IGNORE);
            if (mpi_check(c, rc, "MPI_Send/Recv (gradient shards)", err)) return -1;
        }
    }
    return 0;
}

static int mpi_allgather(rt_comm *c, rt_ctx *ctx, void *buf, size_t shard_bytes, rt_error *err) {
    ctx->be->sync(ctx);
    // MPI counts are ints: a larger shard travels as units of 64 KiB (arena shards are whole segments)
    size_t unit = shard_bytes > (size_t)INT_MAX ? (size_t)1 << 16 : 1;
    if (shard_bytes % unit || shard_bytes / unit > (size_t)INT_MAX)
        return rt_fail(err, "rank %d: a shard of %zu bytes does not fit one MPI message", c->rank,
                       shard_bytes);
    MPI_Datatype type = MPI_BYTE;
    int rc = MPI_SUCCESS;
    if (unit > 1) {
        rc = MPI_Type_contiguous((int)unit, MPI_BYTE, &type);
        if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&type);
    }
    if (rc == MPI_SUCCESS)
        rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)(shard_bytes / unit), type,
                           comm_of(c));
    if (unit > 1 && type != MPI_BYTE) MPI_Type_free(&type);
    return mpi_check(c, rc, "MPI_Allgather (weight shards)", err);
}

static int mpi_allreduce_host(rt_comm *c, double *values, int n, rt_error *err) {
    double *all = rt_malloc((size_t)n * (size_t)c->world * sizeof(double), "host sums", err);
    if (!all) return -1;
    int rc = mpi_check(c, MPI_Allgather(values, n, MPI_DOUBLE, all, n, MPI_DOUBLE, comm_of(c)),
                       "MPI_Allgather", err);
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int r = 0; r < c->world; r++) s += all[(size_t)r * n + i];
            values[i] = s;
        }
    free(all);
    return rc;
}

static int mpi_max_host(rt_comm *c, int *values, int n, rt_error *err) {
    return mpi_check(c, MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_INT, MPI_MAX, comm_of(c)), "MPI_Allreduce",
                     err);
}

static int mpi_gather_host(rt_comm *c, const void *send, size_t bytes, void *recv, int root, rt_error *err) {
    if (bytes > (size_t)INT_MAX)
        return rt_fail(err, "rank %d: %zu bytes is more than one MPI gather carries", c->rank, bytes);
    return mpi_check(c, MPI_Gather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, root, comm_of(c)),
                     "MPI_Gather", err);
}

static int mpi_broadcast_host(rt_comm *c, void *buf, size_t bytes, int root, rt_error *err) {
    for (size_t off = 0; off < bytes; off += (size_t)INT_MAX) {
        int len = (int)(bytes - off < (size_t)INT_MAX ? bytes - off : (size_t)INT_MAX);
        if (mpi_check(c, MPI_Bcast((char *)buf + off, len, MPI_BYTE, root, comm_of(c)), "MPI_Bcast", err))
            return -1;
    }
    return 0;
}

static int mpi_barrier(rt_comm *c, rt_error *err) {
    return mpi_check(c, MPI_Barrier(comm_of(c)), "MPI_Barrier", err);
}

static void mpi_destroy(rt_comm *c) {
    mpi_impl *im = c->impl;
    if (im) {
        free(im->chunk);
        if (im->world != MPI_COMM_NULL) MPI_Comm_free(&im->world);
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (im->we_initialized && !finalized) MPI_Finalize();
        free(im);
    }
    memset(c, 0, sizeof *c);
}

int rt_comm_mpi_init(rt_comm *c, rt_error *err) {
    memset(c, 0, sizeof *c);
    mpi_impl *im = rt_calloc(1, sizeof *im, "MPI communicator", err);
    if (!im) return -1;
    im->world = MPI_COMM_NULL;
    c->impl = im;
    c->name = "mpi";
    c->allreduce_sum = mpi_allreduce_sum;
    c->allreduce_sum_start = mpi_allreduce_sum;
    c->allreduce_wait = mpi_allreduce_wait;
    c->reduce_scatter_sum = mpi_reduce_scatter_sum;
    c->allgather = mpi_allgather;
    c->allreduce_host = mpi_allreduce_host;
    c->max_host = mpi_max_host;
    c->gather_host = mpi_gather_host;
    c->broadcast_host = mpi_broadcast_host;
    c->barrier = mpi_barrier;
    c->destroy = mpi_destroy;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        // the training threads are OpenMP's inside each rank; only the main thread calls MPI
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(im);
            memset(c, 0, sizeof *c);
            return rt_fail(err, "MPI_Init failed: was this process started by mpirun or srun --mpi=pmix?");
        }
        im->we_initialized = 1;
    }
    // a private copy of the world, whose errors return to us instead of aborting every rank
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &im->world);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(im->world, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(im->world, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(im->world, &c->world);
    MPI_Comm node = MPI_COMM_NULL;
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_split_type(im->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(node, &c->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &c->local_world);
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    if (rc == MPI_SUCCESS) im->chunk = rt_malloc(CHUNK * sizeof(float), "MPI chunk buffer", err);
    if (rc != MPI_SUCCESS || !im->chunk) {
        if (rc != MPI_SUCCESS) mpi_check(c, rc, "setting up the MPI communicator", err);
        mpi_destroy(c);
        return -1;
    }
    return 0;
}

#else // built without MPI

int rt_comm_mpi_init(rt_comm *c, rt_error *err) {
    return rt_fail(err, "this build of retort has no MPI communicator: install libopenmpi-dev and rebuild");
}

#endif
