#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine, for tests/check_slurm.py and for trying scripts/slurm/ by
# hand: Debian 12's slurm-wlm 22.05 (packages slurmctld slurmd slurm-client munge) on a machine without
# systemd, so the daemons are started directly, as root.
#
#   tests/slurm/cluster-up.sh DIR      then: export SLURM_CONF=DIR/slurm.conf (also written to DIR/env)
#   tests/slurm/cluster-down.sh DIR    stops what this script started, and nothing else
#
# Everything the cluster owns lives in DIR (slurm.conf, the controller's state, slurmd's spool, logs, pid
# files), so /etc/slurm is never written: a machine that already has a slurm.conf keeps it untouched, and
# the clients (sbatch, squeue, scontrol, srun inside the jobs) find this cluster through SLURM_CONF. DIR
# must be reachable by the `slurm` user (the controller drops to it).
#
# munged: an already running one is used as it is (and left running); otherwise one is started as user
# munge with the packaged key and stopped again by cluster-down.sh.
#
# Exit status: 0 up (node idle); 77 it cannot run here (not root, packages missing, another Slurm already
# running; the reason on stderr); 1 a daemon did not come up (its log's end on stderr; whatever had started
# is stopped again).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ $# -ne 1 ]]; then
    echo "usage: tests/slurm/cluster-up.sh DIR" >&2
    exit 2
fi
cannot() {
    echo "cluster-up: $*" >&2
    exit 77
}
[[ $(id -u) -eq 0 ]] || cannot "needs root (it starts munged, slurmctld and slurmd)"
export PATH=$PATH:/usr/sbin # the daemons, for a root shell whose PATH lacks it
for c in munged munge unmunge slurmctld slurmd scontrol sinfo sbatch srun runuser; do
    command -v "$c" >/dev/null ||
        cannot "$c not found: install slurmctld slurmd slurm-client munge (scripts/bootstrap.sh test)"
done
id slurm >/dev/null 2>&1 || cannot "no user slurm (the slurmctld package creates it)"
# two controllers on one machine would fight over ports 6817/6818: leave a running one alone
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    cannot "a slurmctld or slurmd is already running on this machine; this script starts its own cluster"
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)
runuser -u slurm -- test -x "$dir" || cannot "user slurm cannot reach $dir (chmod 0755 it and its parents)"

t0=$(date +%s%N)
lap() { echo "cluster-up: $1 after $((($(date +%s%N) - t0) / 1000000)) ms" >&2; }
fail() { # a daemon did not come up: show why, stop what was started, exit 1
    echo "cluster-up: $1" >&2
    [[ -n "${2:-}" && -f "$2" ]] && tail -n 20 "$2" >&2
    "$here/cluster-down.sh" "$dir" || true
    exit 1
}

# munge: the credentials slurmctld, slurmd and srun sign each other's messages with
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "cluster-up: using the munged already running" >&2
else
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    [[ -s /run/munge/munged.pid ]] && cp /run/munge/munged.pid "$dir/munged.pid" # ours: cluster-down stops it
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || fail "munged did not answer" /var/log/munge/munged.log
    lap "munged up (pid $(cat "$dir/munged.pid"))"
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {m = int($2 / 1024 * 0.9); print (m > 0 ? m : 1)}' /proc/meminfo) # MiB
install -d -o slurm -g slurm -m 0755 "$dir/state" "$dir/log"
install -d -m 0755 "$dir/spool"
cat >"$dir/slurm.conf" <<CONF
# A one-node test cluster written by retort's tests/slurm/cluster-up.sh; cluster-down.sh stops it.
ClusterName=retort-test
# loopback only, whatever the host name resolves to
SlurmctldHost=${host}(127.0.0.1)
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again after cred_expire seconds (default 120): 10 keeps the requeue tests short
AuthInfo=cred_expire=10
# the scheduler looks at pending jobs every 2 s (defaults 30 and 60 s)
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no cgroups: processes are tracked through /proc, tasks are not bound to cores
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# srun --mpi=pmix is asked for by the job (Debian's Open MPI speaks PMIx only)
MpiDefault=none
# no accounting daemon (sacct does not work; scontrol show job does, for MinJobAge seconds after the end)
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
# seconds between SIGTERM and SIGKILL when a job ends early (time limit, scancel, requeue)
KillWait=10
InactiveLimit=0
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
CONF
echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"
export SLURM_CONF=$dir/slurm.conf

slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start" # daemonizes; -c: no saved jobs
for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.2
done
scontrol ping 2>/dev/null | grep -q UP || fail "slurmctld did not answer scontrol ping" "$dir/log/slurmctld.log"
lap "slurmctld up (pid $(cat "$dir/slurmctld.pid"))"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start" "$dir/log/slurmd.log" # daemonizes
for _ in $(seq 150); do
    sinfo -h -N -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
    sleep 0.2
done
sinfo -h -N -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' || fail "the node is not up" "$dir/log/slurmd.log"
lap "slurmd up (pid $(cat "$dir/slurmd.pid")), node $(sinfo -h -N -o '%N %t')"
