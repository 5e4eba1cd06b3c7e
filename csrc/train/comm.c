// Choosing the communicator, and the agreement every rank reaches at a step boundary.
#define _POSIX_C_SOURCE 200809L
#include "train/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rt_comm_built(const char *name) {
    if (strcmp(name, "single") == 0) return 1;
#ifdef RT_HAVE_MPI
    if (strcmp(name, "mpi") == 0) return 1;
#endif
#ifdef RT_HAVE_NCCL
    if (strcmp(name, "nccl") == 0) return 1;
#endif
    return 0;
}

// mpirun sets OMPI_COMM_WORLD_SIZE in every rank; srun sets SLURM_STEP_NUM_TASKS in every task of a step
// and, with --mpi=pmix, PMIX_RANK. The Slurm batch script itself is a step of one task.
static long env_long(const char *name) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : -1;
}

int rt_comm_launched(void) {
    return env_long("OMPI_COMM_WORLD_SIZE") > 0 || env_long("PMIX_RANK") >= 0 ||
           env_long("SLURM_STEP_NUM_TASKS") > 1;
}

int rt_comm_init(rt_comm *c, const char *dist, const char *device, rt_error *err) {
    memset(c, 0, sizeof *c);
    int cuda = strcmp(device, "cuda") == 0;
    const char *want = dist;
    if (strcmp(dist, "auto") == 0) {
        // nccl needs MPI to start (rank 0's id is broadcast over it), so a launcher is what says "several"
        if (rt_comm_launched())
            want = cuda && rt_comm_built("nccl") ? "nccl" : rt_comm_built("mpi") ? "mpi" : "single";
        else
            want = "single";
        if (strcmp(want, "single") == 0 && rt_comm_launched())
            return rt_fail(
                err, "this process was started by a launcher (mpirun or srun) but retort was built "
                     "without MPI: rebuild with libopenmpi-dev installed (scripts/bootstrap.sh), or run "
                     "one process without a launcher");
    }
    if (!rt_comm_built(want))
        return rt_fail(err, "system.dist %s: this build of retort has no %s communicator (%s)", want, want,
                       strcmp(want, "mpi") == 0 ? "install libopenmpi-dev and rebuild"
                                                : "NCCL comes with the CUDA toolkit; rebuild where nvcc and "
                                                  "nccl.h are found");
    int rc;
    if (strcmp(want, "single") == 0)
        rc = rt_comm_single_init(c, err);
    else if (strcmp(want, "mpi") == 0) {
        if (cuda)
            return rt_fail(err, "system.dist mpi sums host buffers and serves the CPU backend; with "
                                "system.device cuda use system.dist nccl (or auto)");
        rc = rt_comm_mpi_init(c, err);
    } else {
#ifdef RT_HAVE_NCCL
        if (!cuda)
            return rt_fail(err, "system.dist nccl sums GPU buffers: it needs system.device cuda; the CPU "
                                "backend uses system.dist mpi (or auto)");
        rc = rt_comm_nccl_init(c, err);
#else
        rc = -1; // unreachable: rt_comm_built said no above
#endif
    }
    if (rc) return -1;
    // A launcher that started several tasks, each of which sees a world of one: an MPI library that does
    // not speak the launcher's protocol (MPICH under srun --mpi=pmix, Open MPI under --mpi=none). Each task
    // would train its own model without any error.
    long step_tasks = env_long("SLURM_STEP_NUM_TASKS");
    if (step_tasks > 1 && c->world != step_tasks && env_long("OMPI_COMM_WORLD_SIZE") < 0) {
        rt_fail(err,
                "srun started %ld tasks (SLURM_STEP_NUM_TASKS) but this process sees a world of %d rank%s: "
                "the MPI library and srun's --mpi plugin do not match; launch Open MPI with srun --mpi=pmix, "
                "or mpirun inside the allocation",
                step_tasks, c->world, c->world == 1 ? "" : "s");
        c->destroy(c);
        return -1;
    }
    return 0;
}

int rt_comm_agree(rt_comm *c, int failed, int *stop, rt_error *err) {
    // [0]: world - the first failing rank (0 = none), [1]: the signal
    int v[2] = {failed ? c->world - c->rank : 0, stop ? *stop : 0};
    rt_error mine = *err;
    if (c->max_host(c, v, 2, err)) return -1;
    if (stop) *stop = v[1];
    if (v[0] == 0) return 0;
    int first = c->world - v[0];
    char msg[sizeof err->msg];
    memcpy(msg, mine.msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    if (c->broadcast_host(c, msg, sizeof msg, first, err)) return -1;
    if (c->world == 1)
        rt_fail(err, "%s", msg);
    else if (c->rank == first)
        rt_fail(err, "rank %d: %s", first, msg);
    else
        rt_fail(err, "stopping because rank %d failed: %s", first, msg);
    return -1;
}

int rt_comm_threads(const rt_comm *c, int threads, char *why, size_t why_size) {
    if (threads == 0) return rt_cpu_default_threads(c->local_world, why, why_size);
    if (why && why_size) snprintf(why, why_size, "system.threads");
    return threads;
}
