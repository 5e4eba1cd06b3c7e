// NCCL communicator: sums and gathers of GPU buffers on the backend's stream, for data-parallel training on
// several GPUs. docs/nccl.md describes it for users.
//
// - NCCL is loaded at run time (dlopen), not linked: libnccl.so.2 is about 200 MB, has no static library
//   and is missing from the loader path of many machines (PyTorch's wheel keeps it in site-packages), and a
//   CUDA build of retort must start and train on one GPU or the CPU without it. Only system.dist nccl
//   loads it.
// - Bootstrap over MPI: an inner mpi communicator (comm_mpi.c) gives rank, world and local rank and serves
//   every host function and the barrier; rank 0's ncclUniqueId travels over it.
// - A rank's GPU is its local rank.
// - The bucket sums that overlap backward (allreduce_sum_start) run on a stream of the communicator's own,
//   ordered after the compute stream's work with an event; allreduce_wait waits for them on the host.
// - Nothing waits forever: the communicator is non-blocking, and each call is followed by a wait that polls
//   NCCL's state and the stream with a limit (RT_COMM_TIMEOUT seconds, default 600). An error or the limit
//   aborts the communicator (ncclCommAbort) and fails with the rank, the call and the cause. Setup steps
//   that can fail on some ranks only are agreed over MPI first, so no rank enters ncclCommInitRank while
//   another has given up.
#include "train/comm.h"

#ifdef RT_HAVE_NCCL

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nccl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/common.h"

#ifndef RT_NCCL_LIBDIR
#define RT_NCCL_LIBDIR "/usr/local/cuda/lib64"
#endif
#define DEFAULT_TIMEOUT_S 600.0

// The NCCL functions used, resolved from the library once per process.
typedef struct nccl_api {
    ncclResult_t (*GetVersion)(int *version);
    ncclResult_t (*GetUniqueId)(ncclUniqueId *id);
    ncclResult_t (*CommInitRankConfig)(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                       ncclConfig_t *config);
    ncclResult_t (*CommFinalize)(ncclComm_t comm);
    ncclResult_t (*CommDestroy)(ncclComm_t comm);
    ncclResult_t (*CommAbort)(ncclComm_t comm);
    ncclResult_t (*CommGetAsyncError)(ncclComm_t comm, ncclResult_t *state);
    const char *(*GetErrorString)(ncclResult_t result);
    const char *(*GetLastError)(ncclComm_t comm);
    ncclResult_t (*AllReduce)(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                              ncclComm_t comm, cudaStream_t stream);
    ncclResult_t (*ReduceScatter)(const void *send, void *recv, size_t recv_count, ncclDataType_t type,
                                  ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
    ncclResult_t (*AllGather)(const void *send, void *recv, size_t send_count, ncclDataType_t type,
                              ncclComm_t comm, cudaStream_t stream);
} nccl_api;

static nccl_api api;
static void *api_lib; // never closed: NCCL's helper threads and atexit handlers live in it

typedef struct nccl_impl {
    rt_comm inner; // the mpi communicator: ranks, host functions, barrier
    ncclComm_t comm;
    int device;
    // the bucket sums started during backward run here, so the compute stream goes on with backward
    cudaStream_t sum_stream;
    cudaEvent_t backward_done; // recorded on the compute stream, waited for by sum_stream
    int sums_pending;
    double timeout_s;
    int aborted; // after an abort every device collective fails at once, naming the first cause
    char aborted_why[RT_ERROR_MAX / 2];
} nccl_impl;

static nccl_impl *impl_of(rt_comm *c) {
    return (nccl_impl *)c->impl;
}

// ---------------------------------------------------------------------------------------------------
// loading the library

// Each field of nccl_api holds the function "nccl" + the field's name.
#define SYM(f)                                                                                               \
    { "nccl" #f, offsetof(nccl_api, f) }

// The candidates in order: RT_NCCL_LIBRARY alone when set (the user's choice is not second-guessed), else
// the loader path, then the CUDA toolkit's lib folder this binary was built against.
static int load_library(rt_error *err) {
    if (api_lib) return 0;
    const char *env = getenv("RT_NCCL_LIBRARY");
    char fallback[512];
    snprintf(fallback, sizeof fallback, "%s/libnccl.so.2", RT_NCCL_LIBDIR);
    const char *tries[2] = {env && *env ? env : "libnccl.so.2", env && *env ? NULL : fallback};
    char tried[RT_ERROR_MAX / 2] = "";
    size_t used = 0;
    void *lib = NULL;
    for (int i = 0; i < 2 && tries[i] && !lib; i++) {
        lib = dlopen(tries[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib && used < sizeof tried) {
            const char *why = dlerror();
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s (%.160s)", used ? "; " : "",
                                     tries[i], why ? why : "not found");
        }
    }
    if (!lib)
        return rt_fail(err,
                       "cannot load NCCL: tried %s. Install NCCL (the libnccl2 package, or "
                       "pip's nvidia-nccl wheel) and point RT_NCCL_LIBRARY at its libnccl.so.2",
                       tried);
    static const struct {
        const char *name;
        size_t offset;
    } syms[] = {SYM(GetVersion),   SYM(GetUniqueId), SYM(CommInitRankConfig), SYM(CommFinalize),
                SYM(CommDestroy),  SYM(CommAbort),   SYM(CommGetAsyncError),  SYM(GetErrorString),
                SYM(GetLastError), SYM(AllReduce),   SYM(ReduceScatter),      SYM(AllGather)};
    nccl_api got;
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *f = dlsym(lib, syms[i].name);
        if (!f) {
            dlclose(lib);
            // ncclCommInitRankConfig (non-blocking communicators) and ncclGetLastError came with 2.14
            return rt_fail(err, "the NCCL library has no %s: NCCL 2.14 or newer is needed", syms[i].name);
        }
        // a data pointer to a function pointer of the same size (POSIX guarantees it for dlsym)
        memcpy((char *)&got + syms[i].offset, &f, sizeof f);
    }
    int version = 0;
    if (got.GetVersion(&version) != ncclSuccess || version < 21400) {
        dlclose(lib);
        return rt_fail(err, "NCCL %d.%d is too old: 2.14 or newer is needed", version / 10000,
                       version / 100 % 100);
    }
    api = got;
    api_lib = lib;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// failing, aborting and waiting

// "ncclUnhandledCudaError (...NCCL's last message...)"
static void nccl_cause(ncclResult_t r, ncclComm_t comm, char *out, size_t size) {
    const char *last = api.GetLastError ? api.GetLastError(comm) : NULL;
    snprintf(out, size, "%s%s%.300s%s", api.GetErrorString(r), last && *last ? " (" : "", last ? last : "",
             last && *last ? ")" : "");
}

static void abort_comm(nccl_impl *im) {
    if (im->comm) api.CommAbort(im->comm);
    im->comm = NULL;
}

// Aborts the communicator and fails naming the rank, the call and the cause.
static int fail_abort(rt_comm *c, const char *what, rt_error *err, const char *fmt, ...) RT_PRINTF(4, 5);
static int fail_abort(rt_comm *c, const char *what, rt_error *err, const char *fmt, ...) {
    nccl_impl *im = impl_of(c);
    abort_comm(im);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->aborted_why, sizeof im->aborted_why, fmt, ap);
    va_end(ap);
    im->aborted = 1;
    return rt_fail(err, "rank %d of %d (GPU %d): NCCL %s failed: %s; the NCCL communicator was aborted",
                   c->rank, c->world, im->device, what, im->aborted_why);
}

static void pause_briefly(void) {
    struct timespec ts = {0, 50 * 1000}; // 50 us: well below a step, and the core is free for the others
    nanosleep(&ts, NULL);
}

// Waits until NCCL is no longer in progress on this communicator (a non-blocking call returned) and, with a
// stream, until every op enqueued on it has run. Errors and the time limit abort.
static int wait_done(rt_comm *c, cudaStream_t stream, const char *what, rt_error *err) {
    nccl_impl *im = impl_of(c);
    double t0 = rt_now();
    int not_ready = 0;
    for (long i = 0;; i++) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t q = api.CommGetAsyncError(im->comm, &state);
        if (q != ncclSuccess) state = q;
        if (state != ncclSuccess && state != ncclInProgress) {
            char cause[RT_ERROR_MAX / 2];
            nccl_cause(state, im->comm, cause, sizeof cause);
            return fail_abort(c, what, err, "%s", cause);
        }
        if (state == ncclSuccess) {
            if (!stream) return 0;
            cudaError_t e = cudaStreamQuery(stream);
            if (e == cudaSuccess) {
                // cudaErrorNotReady is not an error: keep it from being taken for a failed kernel later
                if (not_ready && cudaPeekAtLastError() == cudaErrorNotReady) cudaGetLastError();
                return 0;
            }
            if (e != cudaErrorNotReady)
                return fail_abort(c, what, err, "CUDA error on the stream: %s", cudaGetErrorString(e));
            not_ready = 1;
        }
        if (rt_now() - t0 > im->timeout_s)
            return fail_abort(c, what, err,
                              "not finished after %.0f s (RT_COMM_TIMEOUT): another rank stopped, crashed or "
                              "is stuck",
                              im->timeout_s);
        if (i > 1000) pause_briefly(); // a short collective finishes within the first polls
    }
}

// The stream to enqueue on, or a failure when the communicator was aborted or ctx has no stream.
static int stream_for(rt_comm *c, rt_ctx *ctx, const char *what, cudaStream_t *stream, rt_error *err) {
    nccl_impl *im = impl_of(c);
    if (im->aborted || !im->comm)
        return rt_fail(err, "rank %d: NCCL %s: the NCCL communicator was aborted earlier: %s", c->rank, what,
                       im->aborted_why);
    void *s = ctx->be->stream ? ctx->be->stream(ctx) : NULL;
    if (!s)
        return rt_fail(err, "rank %d: NCCL %s needs a CUDA context; the %s backend has no stream", c->rank,
                       what, ctx->be->name);
    *stream = (cudaStream_t)s;
    return 0;
}

// After a collective was called: its return, then the wait for it.
static int finish(rt_comm *c, ncclResult_t r, cudaStream_t stream, const char *what, rt_error *err) {
    if (r != ncclSuccess && r != ncclInProgress) {
        char cause[RT_ERROR_MAX / 2];
        nccl_cause(r, impl_of(c)->comm, cause, sizeof cause);
        return fail_abort(c, what, err, "%s", cause);
    }
    return wait_done(c, stream, what, err);
}

// ---------------------------------------------------------------------------------------------------
// the table

static int nccl_allreduce_sum(rt_comm *c, rt_ctx *ctx, float *buf, size_t n, rt_error *err) {
    const char *what = "all-reduce (gradient sum)";
    cudaStream_t s;
    if (stream_for(c, ctx, what, &s, err)) return -1;
    if (n == 0) return 0;
    return finish(c, api.AllReduce(buf, buf, n, ncclFloat, ncclSum, impl_of(c)->comm, s), s, what, err);
}

static int nccl_reduce_scatter_sum(rt_comm *c, rt_ctx *ctx, float *buf, size_t shard, rt_error *err) {
    const char *what = "reduce-scatter (gradient shards)";
    cudaStream_t s;
    if (stream_for(c, ctx, what, &s, err)) return -1;
    if (shard == 0) return 0;
    // NCCL's in-place form: this rank's shard of the input is the output
    float *mine = buf + shard * (size_t)c->rank;
    return finish(c, api.ReduceScatter(buf, mine, shard, ncclFloat, ncclSum, impl_of(c)->comm, s), s, what,
                  err);
}

static int nccl_allgather(rt_comm *c, rt_ctx *ctx, void *buf, size_t shard_bytes, rt_error *err) {
    const char *what = "all-gather (weight shards)";
    cudaStream_t s;
    if (stream_for(c, ctx, what, &s, err)) return -1;
    if (shard_bytes == 0) return 0;
    const char *mine = (const char *)buf + shard_bytes * (size_t)c->rank; // in place, as above
    return finish(c, api.AllGather(mine, buf, shard_bytes, ncclChar, impl_of(c)->comm, s), s, what, err);
}

// Started after what is queued on ctx's stream so far, on the communicator's own stream; waits only for
// NCCL to take the call (a non-blocking communicator may still be enqueuing), not for the sum.
static int nccl_allreduce_sum_start(rt_comm *c, rt_ctx *ctx, float *buf, size_t n, rt_error *err) {
    const char *what = "all-reduce (gradient bucket)";
    nccl_impl *im = impl_of(c);
    cudaStream_t s;
    if (stream_for(c, ctx, what, &s, err)) return -1;
    if (n == 0) return 0;
    cudaError_t e = cudaEventRecord(im->backward_done, s);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(im->sum_stream, im->backward_done, 0);
    if (e != cudaSuccess)
        return fail_abort(c, what, err, "ordering after backward: %s", cudaGetErrorString(e));
    im->sums_pending = 1;
    return finish(c, api.AllReduce(buf, buf, n, ncclFloat, ncclSum, im->comm, im->sum_stream), NULL, what,
                  err);
}

// The host waits (under the time limit) for the started sums, so work queued on ctx's stream afterwards
// sees them complete, and a peer that never joins is an error here rather than a hang in a later sync.
static int nccl_allreduce_wait(rt_comm *c, rt_ctx *ctx, rt_error *err) {
    const char *what = "all-reduce (gradient buckets)";
    nccl_impl *im = impl_of(c);
    cudaStream_t s;
    if (stream_for(c, ctx, what, &s, err)) return -1;
    if (!im->sums_pending) return 0;
    im->sums_pending = 0;
    return wait_done(c, im->sum_stream, what, err);
}

// Host values and the barrier go over MPI.
static int nccl_allreduce_host(rt_comm *c, double *values, int n, rt_error *err) {
    rt_comm *in = &impl_of(c)->inner;
    return in->allreduce_host(in, values, n, err);
}

static int nccl_max_host(rt_comm *c, int *values, int n, rt_error *err) {
    rt_comm *in = &impl_of(c)->inner;
    return in->max_host(in, values, n, err);
}

static int nccl_gather_host(rt_comm *c, const void *send, size_t bytes, void *recv, int root, rt_error *err) {
    rt_comm *in = &impl_of(c)->inner;
    return in->gather_host(in, send, bytes, recv, root, err);
}

static int nccl_broadcast_host(rt_comm *c, void *buf, size_t bytes, int root, rt_error *err) {
    rt_comm *in = &impl_of(c)->inner;
    return in->broadcast_host(in, buf, bytes, root, err);
}

static int nccl_barrier(rt_comm *c, rt_error *err) {
    rt_comm *in = &impl_of(c)->inner;
    return in->barrier(in, err);
}

// Finalize (every rank's pending work flushed) then destroy; a failure or the time limit aborts instead,
// since ncclCommDestroy alone would wait for a rank that is gone.
static void nccl_destroy(rt_comm *c) {
    nccl_impl *im = impl_of(c);
    if (im) {
        if (im->comm) {
            rt_error ignored;
            ncclResult_t r = api.CommFinalize(im->comm);
            if (r != ncclSuccess && r != ncclInProgress)
                abort_comm(im);
            else if (wait_done(c, NULL, "finalize", &ignored) == 0)
                api.CommDestroy(im->comm);
            im->comm = NULL; // wait_done aborted it when it failed
        }
        if (im->sum_stream) cudaStreamDestroy(im->sum_stream);
        if (im->backward_done) cudaEventDestroy(im->backward_done);
        if (im->inner.destroy) im->inner.destroy(&im->inner);
        free(im);
    }
    memset(c, 0, sizeof *c);
}

// ---------------------------------------------------------------------------------------------------
// setup

static int read_timeout(double *out, rt_error *err) {
    const char *v = getenv("RT_COMM_TIMEOUT");
    *out = DEFAULT_TIMEOUT_S;
    if (!v || !*v) return 0;
    char *end = NULL;
    double t = strtod(v, &end);
    if (end == v || *end || !(t > 0) || t > 1e9)
        return rt_fail(err, "RT_COMM_TIMEOUT=%s: expected the seconds a collective may take, a number > 0",
                       v);
    *out = t;
    return 0;
}

// This rank's GPU (its local rank) exists and is selected.
static int select_gpu(rt_comm *c, rt_error *err) {
    // the backend's own test first, so the reason is worded as `retort --version` words it
    rt_error why;
    if (!rt_cuda_available(&why)) return rt_fail(err, "no usable GPU: %s", why.msg);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return rt_fail(err, "no usable GPU: %s (cudaGetDeviceCount)", cudaGetErrorString(e));
    }
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (c->local_rank >= n)
        return rt_fail(err,
                       "no usable GPU: this is local rank %d on its node, so it takes GPU %d, but this node "
                       "shows %d GPU%s (CUDA_VISIBLE_DEVICES=%s); start at most one rank per GPU",
                       c->local_rank, c->local_rank, n, n == 1 ? "" : "s", visible ? visible : "unset");
    e = cudaSetDevice(c->local_rank);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return rt_fail(err, "cannot select GPU %d: %s", c->local_rank, cudaGetErrorString(e));
    }
    nccl_impl *im = impl_of(c);
    e = cudaStreamCreateWithFlags(&im->sum_stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&im->backward_done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return rt_fail(err, "cannot create a CUDA stream on GPU %d: %s", c->local_rank,
                       cudaGetErrorString(e));
    }
    return 0;
}

// What may fail on some ranks only, before any rank enters NCCL's collective setup: the time limit, the
// library, the GPU and (rank 0) the unique id.
static int local_setup(rt_comm *c, ncclUniqueId *id, rt_error *err) {
    nccl_impl *im = impl_of(c);
    if (read_timeout(&im->timeout_s, err) || load_library(err) || select_gpu(c, err)) return -1;
    im->device = c->local_rank;
    if (c->rank == 0) {
        ncclResult_t r = api.GetUniqueId(id);
        if (r != ncclSuccess) {
            char cause[RT_ERROR_MAX / 2];
            nccl_cause(r, NULL, cause, sizeof cause);
            return rt_fail(err, "ncclGetUniqueId failed: %s (NCCL_SOCKET_IFNAME names the network interface)",
                           cause);
        }
    }
    return 0;
}

// Every rank learns whether any failed. A failed rank keeps its own message; the others report the first
// failed rank's. Returns -1 when one did.
static int agree(rt_comm *c, int failed, rt_error *err) {
    rt_comm *in = &impl_of(c)->inner;
    int v = failed ? c->world - c->rank : 0;
    rt_error mine = *err;
    if (in->max_host(in, &v, 1, err)) return -1;
    if (v == 0) return 0;
    int first = c->world - v;
    char msg[RT_ERROR_MAX];
    memcpy(msg, mine.msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    if (in->broadcast_host(in, msg, sizeof msg, first, err)) return -1;
    if (failed)
        rt_fail(err, "rank %d of %d (local rank %d): system.dist nccl: %s", c->rank, c->world, c->local_rank,
                mine.msg);
    else
        rt_fail(err, "rank %d of %d: system.dist nccl: stopping because rank %d failed: %s", c->rank,
                c->world, first, msg);
    return -1;
}

static int create_comm(rt_comm *c, ncclUniqueId id, rt_error *err) {
    nccl_impl *im = impl_of(c);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; // so that a rank that never arrives is a timeout, not a hang
    ncclResult_t r = api.CommInitRankConfig(&im->comm, c->world, id, c->rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        char cause[RT_ERROR_MAX / 2];
        nccl_cause(r, im->comm, cause, sizeof cause);
        abort_comm(im);
        return rt_fail(err, "ncclCommInitRankConfig on GPU %d failed: %s", im->device, cause);
    }
    if (!im->comm)
        return rt_fail(err, "ncclCommInitRankConfig on GPU %d returned no communicator", im->device);
    if (wait_done(c, NULL, "communicator setup", err))
        return rt_fail(err, "NCCL communicator setup on GPU %d failed: %s", im->device, im->aborted_why);
    return 0;
}

int rt_comm_nccl_init(rt_comm *c, rt_error *err) {
    memset(c, 0, sizeof *c);
    nccl_impl *im = rt_calloc(1, sizeof *im, "NCCL communicator", err);
    if (!im) return -1;
    if (rt_comm_mpi_init(&im->inner, err)) {
        free(im);
        return rt_fail_wrap(err, "system.dist nccl starts over MPI");
    }
    c->name = "nccl";
    c->rank = im->inner.rank;
    c->world = im->inner.world;
    c->local_rank = im->inner.local_rank;
    c->local_world = im->inner.local_world;
    c->impl = im;
    c->allreduce_sum = nccl_allreduce_sum;
    c->allreduce_sum_start = nccl_allreduce_sum_start;
    c->allreduce_wait = nccl_allreduce_wait;
    c->reduce_scatter_sum = nccl_reduce_scatter_sum;
    c->allgather = nccl_allgather;
    c->allreduce_host = nccl_allreduce_host;
    c->max_host = nccl_max_host;
    c->gather_host = nccl_gather_host;
    c->broadcast_host = nccl_broadcast_host;
    c->barrier = nccl_barrier;
    c->destroy = nccl_destroy;
    im->device = -1;
    im->timeout_s = DEFAULT_TIMEOUT_S;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int rc = agree(c, local_setup(c, &id, err) != 0, err);
    if (rc == 0) rc = im->inner.broadcast_host(&im->inner, &id, sizeof id, 0, err);
    if (rc == 0) rc = agree(c, create_comm(c, id, err) != 0, err);
    if (rc) {
        abort_comm(im); // some rank failed: finalizing would wait for it
        nccl_destroy(c);
        return -1;
    }
    return 0;
}

#endif // RT_HAVE_NCCL
