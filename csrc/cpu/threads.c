// How many threads the CPU backend runs when system.threads is 0 (docs/cpu_threads.md).
// The CPUs this process may run on come from its affinity mask, which taskset, numactl, cgroup cpusets,
// Slurm's task binding and mpirun's --bind-to all set; the count of online CPUs would oversubscribe a process
// confined to a few of them. Then, in order, each can only lower the count:
//   - ranks on this node: with several, each gets at most the online CPUs divided by the ranks, so unbound
//     ranks split the node and ranks bound to a core or a socket keep what their binding gives them;
//   - SLURM_CPUS_PER_TASK, the CPUs Slurm allocated to this task (the mask can be wider when Slurm does not
//     bind);
//   - OMP_NUM_THREADS, when the user set it (its first value, for nested lists).
// An explicit system.threads is used as given and never reaches this function.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"

// A positive integer from the environment, or 0 when unset, empty or not a number.
static long env_count(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    return end != v && n > 0 ? n : 0;
}

int rt_cpu_default_threads(int local_ranks, char *why, size_t why_size) {
    long online = sysconf(_SC_NPROCESSORS_ONLN), n = 0;
    if (online < 1) online = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    char buf[160];
    if (n < 1) {
        n = online;
        snprintf(buf, sizeof buf, "the %ld online CPUs (the affinity mask could not be read)", online);
    } else if (n < online)
        snprintf(buf, sizeof buf, "this process's affinity mask (%ld of %ld online CPUs)", n, online);
    else
        snprintf(buf, sizeof buf, "all %ld online CPUs", n);
    if (local_ranks > 1 && n > online / local_ranks) {
        n = online / local_ranks > 1 ? online / local_ranks : 1;
        snprintf(buf, sizeof buf, "%ld online CPUs shared by the %d ranks on this node", online, local_ranks);
    }
    long slurm = env_count("SLURM_CPUS_PER_TASK");
    if (slurm && slurm < n) {
        n = slurm;
        snprintf(buf, sizeof buf, "SLURM_CPUS_PER_TASK=%ld", slurm);
    }
    long omp = env_count("OMP_NUM_THREADS");
    if (omp && omp < n) {
        n = omp;
        snprintf(buf, sizeof buf, "OMP_NUM_THREADS=%ld", omp);
    }
    if (n > 4096) n = 4096; // system.threads' own limit
    if (why && why_size) snprintf(why, why_size, "%s", buf);
    return (int)n;
}

// libgomp's idle threads spin GOMP_SPINCOUNT times (300000 by default, about a millisecond) before they
// sleep. On a core that another process also wants, a spinning waiter takes the time slice the thread it
// waits for needs: with one of two cores busy, training ran 2.6x slower than idle with the default and 1.9x
// with 1000 spins, while idle speed did not change (docs/cpu_threads.md). libgomp reads the variable once,
// when it loads, so setting it takes a fresh image of this program.
#define RT_GOMP_SPINCOUNT "1000"

void rt_cpu_wait_policy_exec(char **argv) {
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY")) return; // the user's choice, or done
    if (setenv("GOMP_SPINCOUNT", RT_GOMP_SPINCOUNT, 1)) return;
    execv("/proc/self/exe", argv);
    // no /proc (or exec refused): run on with libgomp's default; the variable stays for child processes
}
