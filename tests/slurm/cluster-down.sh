#!/usr/bin/env bash
# Stops the one-node cluster tests/slurm/cluster-up.sh DIR started: slurmctld and slurmd through
# `scontrol shutdown`, then munged if that script started it. Only those processes, found by the pid files
# in DIR and checked by name before any signal (a pid file can outlive its process). Safe to run twice.
#   tests/slurm/cluster-down.sh DIR
set -uo pipefail
if [[ $# -ne 1 || ! -d "$1" ]]; then
    echo "usage: tests/slurm/cluster-down.sh DIR (the directory cluster-up.sh was given)" >&2
    exit 2
fi
dir=$(cd "$1" && pwd)
export PATH=$PATH:/usr/sbin SLURM_CONF=$dir/slurm.conf
t0=$(date +%s%N)

alive() { # PID NAME: the process is running and is NAME
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]
}
stop() { # PIDFILE NAME: TERM (unless already asked), up to 10 s, then KILL
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    alive "$pid" "$2" || return 0
    [[ "${3:-}" == asked ]] || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        alive "$pid" "$2" || return 0
        sleep 0.1
    done
    echo "cluster-down: $2 (pid $pid) still running after 10 s: KILL" >&2
    kill -KILL "$pid" 2>/dev/null
}

# the controller tells slurmd to stop and stops itself (faster than TERM to each: ~1.5 s)
asked=
if [[ -f "$SLURM_CONF" ]] && alive "$(cat "$dir/slurmctld.pid" 2>/dev/null)" slurmctld; then
    timeout 10 scontrol shutdown >/dev/null 2>&1 && asked=asked
fi
stop "$dir/slurmd.pid" slurmd "$asked"
stop "$dir/slurmctld.pid" slurmctld "$asked"
if [[ -f "$dir/munged.pid" ]]; then
    stop "$dir/munged.pid" munged
    rm -f "$dir/munged.pid"
fi
echo "cluster-down: stopped after $((($(date +%s%N) - t0) / 1000000)) ms" >&2
