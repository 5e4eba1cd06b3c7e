// The communicator: how the ranks of a data-parallel run agree. The training loop calls it at the same
// points whatever the world size (the gradient sum after the last micro-batch's backward, the loss and
// target counts, the agreement on stop and failure at each step boundary, checkpoints), so one process is
// not a special case. Implementations: one process (comm_single.c), Open MPI over host memory
// (comm_mpi.c), NCCL over device memory (comm_nccl.c). docs/distributed.md describes the whole scheme.
#ifndef RT_COMM_H
#define RT_COMM_H

#include <stddef.h>

#include "backend/backend.h"

typedef struct rt_comm rt_comm;
struct rt_comm {
    const char *name; // "single", "mpi", "nccl"
    int rank;         // this process, 0 .. world - 1
    int world;        // number of ranks
    int local_rank;   // this process among the ranks on its node (which GPU, how many CPU threads)
    int local_world;  // ranks on this node
    void *impl;
    // In-place sum over ranks of n fp32 elements in device memory, on ctx's stream. mpi adds in rank order,
    // ((r0 + r1) + r2) + ..., the order a single process accumulating the same micro-batches uses, so its
    // sums are the same bits for any world size; nccl uses its own (ring) order.
    int (*allreduce_sum)(rt_comm *c, rt_ctx *ctx, float *buf, size_t n, rt_error *err);
    // allreduce_sum of a part of the gradient that backward has completed, started without waiting for it
    // (nccl: on the communicator's own stream, after the work queued on ctx's stream so far, so the sum
    // overlaps the rest of backward; mpi: at once). Every rank starts the same parts in the same order.
    int (*allreduce_sum_start)(rt_comm *c, rt_ctx *ctx, float *buf, size_t n, rt_error *err);
    // Work queued on ctx's stream after this call sees every started sum complete.
    int (*allreduce_wait)(rt_comm *c, rt_ctx *ctx, rt_error *err);
    // buf [world * shard] fp32: afterwards this rank's shard, buf[rank * shard .. (rank + 1) * shard), holds
    // the sum over ranks, the same bits allreduce_sum gives; the rest of buf is unspecified.
    int (*reduce_scatter_sum)(rt_comm *c, rt_ctx *ctx, float *buf, size_t shard, rt_error *err);
    // buf [world * shard_bytes]: every rank's shard (at rank * shard_bytes) to every rank.
    int (*allgather)(rt_comm *c, rt_ctx *ctx, void *buf, size_t shard_bytes, rt_error *err);
    // In-place sum of n host doubles over ranks (losses, target counts), added in rank order; every rank
    // receives the same bits.
    int (*allreduce_host)(rt_comm *c, double *values, int n, rt_error *err);
    // In-place maximum of n host ints over ranks (agreement on stopping and failing).
    int (*max_host)(rt_comm *c, int *values, int n, rt_error *err);
    // Every rank's `bytes` of host memory at send into recv [world * bytes] on root (recv unused elsewhere).
    int (*gather_host)(rt_comm *c, const void *send, size_t bytes, void *recv, int root, rt_error *err);
    // bytes of host memory from root to every rank.
    int (*broadcast_host)(rt_comm *c, void *buf, size_t bytes, int root, rt_error *err);
    // Wait for every rank.
    int (*barrier)(rt_comm *c, rt_error *err);
    void (*destroy)(rt_comm *c);
};

// What system.dist names, and the device the run uses ("cpu" or "cuda", already resolved from "auto").
// auto: nccl when the device is cuda and the world is larger than one, mpi when a launcher (mpirun, srun)
// started this process, single otherwise. Fails, naming the cause, when the choice cannot work: a
// communicator this binary was built without, mpi with device cuda... A process that srun started as one
// of several tasks but that sees a world of one (an MPI library that does not speak srun's --mpi plugin)
// is refused rather than left to train alone.
int rt_comm_init(rt_comm *c, const char *dist, const char *device, rt_error *err);

// A communicator for a run of one process (rank 0 of 1).
int rt_comm_single_init(rt_comm *c, rt_error *err);
// Open MPI, host buffers (the CPU backend). Initializes MPI; destroy finalizes it.
int rt_comm_mpi_init(rt_comm *c, rt_error *err);
// NCCL over device buffers on the backend's stream, bootstrapped over MPI (comm_nccl.c; CUDA builds that
// found nccl.h).
int rt_comm_nccl_init(rt_comm *c, rt_error *err);
// Whether this binary has the communicator ("mpi", "nccl").
int rt_comm_built(const char *name);
// Whether a launcher that MPI can join (mpirun, srun with PMIx) started this process.
int rt_comm_launched(void);

// Agreement at a step boundary: every rank says whether it failed (with its message in *err) and whether
// it was asked to stop (a signal number, 0 = no). Returns 0 when no rank failed, with *stop set to the
// largest signal any rank received; -1 when one did, with err set on every rank to the first failing
// rank's message, prefixed with its rank when the world is larger than one. stop NULL: only failures
// are agreed (this rank has no signal to report, and the agreed one is not wanted).
int rt_comm_agree(rt_comm *c, int failed, int *stop, rt_error *err);

// CPU threads for this rank: `threads` (system.threads) when set; 0 becomes rt_cpu_default_threads for the
// ranks on this node (the CPUs this process may run on, shared among the node's ranks when they are not
// bound, capped by SLURM_CPUS_PER_TASK and OMP_NUM_THREADS), so ranks on one node do not each start a thread
// per core. why (NULL or why_size bytes) gets where the number came from, for the log.
int rt_comm_threads(const rt_comm *c, int threads, char *why, size_t why_size);

#endif
