"""system.dist nccl through the CLI: the GPU communicator, started by mpirun.

Without a usable GPU (every CI machine), what runs is the host side, which must never hang:
- `mpirun -np 2 retort train ... system.device=cuda system.dist=nccl`: both ranks exit 1 well within the
  time limit, each naming its own rank and the cause, which must be the reason `retort --version` gives
  for having no GPU (CUDA's own words, read independently of the run);
- system.dist=auto with device cuda under mpirun picks nccl and fails the same way;
- one rank that cannot load NCCL (RT_NCCL_LIBRARY pointing nowhere) and one without a GPU: each reports its
  own cause, naming what it tried, and neither waits for the other;
- one process without mpirun (MPI starts as a world of one): the same error for rank 0 of 1; a bad
  RT_COMM_TIMEOUT is named; dist=nccl with device cpu is refused before MPI starts.

With a GPU (scripts/gpu/run.sh; never in CI here), the runs must work instead: a world-1 nccl run
(mpirun -np 1, bf16) gives the same losses and checkpoint, bit for bit, as system.dist=single, since a sum
over one rank is the identity; with two GPUs or more, mpirun -np 2 (fp32, the bucket sums overlapping
backward) follows one GPU with train.grad_accum=2 (the same windows: the batcher gives rank r the r-th block
of each draw) within a tolerance, since NCCL's ring adds in its own order.

Exits 77 (ctest: skipped) when this retort has no nccl communicator (built without CUDA or MPI) or mpirun is
missing.

usage: check_nccl.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import checklib
from checklib import check_close, ckpt_tensors, finish, run_retort, train_losses

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
TINY = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
SKIP = 77
# A failing rank is done in a second or two; a hang is what this limit catches.
RUN_LIMIT = 120
# Open MPI as root, more ranks than cores, loopback only (tests/ rules for every mpirun)
MPI_ENV = {**checklib.MPI_ENV, "NCCL_SOCKET_IFNAME": "lo"}
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def env_with(extra=None):
    env = dict(os.environ, **MPI_ENV)
    env.update(extra or {})
    return env


def mpirun_ranks(mpirun, np, args, rank_env=None, what=""):
    """retort ARGS in np ranks under mpirun. Each rank runs inside a shell that prints its exit status, so
    one rank's failure does not make mpirun kill the others: what each rank does is seen. rank_env {rank:
    {name: value}} sets variables in one rank only. Returns {rank: (exit status, its stderr lines)}, or None
    (a failure) when the ranks did not end within RUN_LIMIT."""
    exports = ""
    for r, kv in (rank_env or {}).items():
        exports += "".join(f'[ "$OMPI_COMM_WORLD_RANK" = {r} ] && export {k}="{v}"; ' for k, v in kv.items())
    wrapper = exports + '"$0" "$@"; echo "rank $OMPI_COMM_WORLD_RANK exit $?"'
    cmd = [mpirun, "-np", str(np), "--tag-output", "sh", "-c", wrapper, RETORT] + args
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_with(),
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=RUN_LIMIT)
    except subprocess.TimeoutExpired:
        # mpirun puts each rank in a process group of its own: SIGTERM lets it end them, SIGKILL is the last word
        p.terminate()
        try:
            out, _ = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
        failures.append(f"{what}: the ranks did not end within {RUN_LIMIT} s (a hang): {out[-2000:]}")
        return None
    ranks = {r: [None, []] for r in range(np)}
    for line in out.splitlines():
        m = re.match(r"^\[\d+,(\d+)\]<(stdout|stderr)>:(.*)$", line)
        if not m:
            continue
        r, stream, text = int(m.group(1)), m.group(2), m.group(3)
        e = re.match(r"^rank (\d+) exit (\d+)$", text)
        if stream == "stdout" and e and int(e.group(1)) == r:
            ranks[r][0] = int(e.group(2))
        elif stream == "stderr":
            ranks[r][1].append(text)
    print(f"{what}: {time.time() - t0:.1f} s, exits {[ranks[r][0] for r in range(np)]}")
    return ranks


def expect_rank_errors(ranks, np, what, causes):
    """Every rank exited 1 (an error, not a signal) and its error line names its rank and causes[rank]."""
    if ranks is None:
        return
    for r in range(np):
        rc, lines = ranks[r]
        errors = [ln for ln in lines if "error:" in ln]
        check(rc == 1, f"{what}: rank {r} exited {rc}, expected 1: {lines[-5:]}")
        if not errors:
            failures.append(f"{what}: rank {r} printed no error: {lines[-5:]}")
            continue
        msg = errors[-1]
        check(f"rank {r} of {np}" in msg, f"{what}: rank {r}'s error does not name it: {msg}")
        for cause in causes[r]:
            check(cause in msg, f"{what}: rank {r}'s error does not say '{cause}': {msg}")


def no_gpu_checks(mpirun, tmp, args, gpu_reason):
    # gpu_reason: `retort --version`'s words for having no GPU, e.g. "CUDA driver version is insufficient ..."
    nccl_cuda = args + ["system.device=cuda", "system.dist=nccl"]
    ranks = mpirun_ranks(mpirun, 2, ["train"] + nccl_cuda + [f"run.out_dir={tmp}/r2"], what="nccl, 2 ranks")
    expect_rank_errors(ranks, 2, "nccl, 2 ranks", {r: ["no usable GPU", gpu_reason] for r in range(2)})
    check(not os.path.exists(f"{tmp}/r2"), "nccl, 2 ranks: the failed run left a run directory")

    auto = args + ["system.device=cuda", "system.dist=auto", f"run.out_dir={tmp}/r3"]
    ranks = mpirun_ranks(mpirun, 2, ["train"] + auto, what="auto with device cuda, 2 ranks")
    expect_rank_errors(ranks, 2, "auto with device cuda, 2 ranks",
                       {r: ["system.dist nccl", "no usable GPU", gpu_reason] for r in range(2)})

    missing = os.path.join(tmp, "nowhere", "libnccl.so.2")
    ranks = mpirun_ranks(mpirun, 2, ["train"] + nccl_cuda + [f"run.out_dir={tmp}/r4"],
                         rank_env={1: {"RT_NCCL_LIBRARY": missing}}, what="rank 1 without NCCL")
    expect_rank_errors(ranks, 2, "rank 1 without NCCL",
                       {0: ["no usable GPU", gpu_reason], 1: ["cannot load NCCL", missing]})

    # one process, no launcher: MPI starts as a world of one
    p = run_retort(failures, ["train"] + nccl_cuda + [f"run.out_dir={tmp}/r5"], expect=1, what="nccl, world 1",
                   timeout=RUN_LIMIT)
    for part in ("rank 0 of 1", "no usable GPU", gpu_reason):
        check(part in p.stderr, f"nccl, world 1: the error does not say '{part}': {p.stderr[-600:]}")
    env = dict(os.environ, RT_COMM_TIMEOUT="soon")
    p = subprocess.run([RETORT, "train"] + nccl_cuda + [f"run.out_dir={tmp}/r6"], capture_output=True, text=True,
                       timeout=RUN_LIMIT, env=env)
    check(p.returncode == 1 and "RT_COMM_TIMEOUT=soon" in p.stderr,
          f"RT_COMM_TIMEOUT=soon: exit {p.returncode}, expected 1 naming the variable: {p.stderr[-600:]}")
    p = run_retort(failures, ["train"] + args + ["system.device=cpu", "system.dist=nccl", f"run.out_dir={tmp}/r7"],
                   expect=1, what="nccl with device cpu", timeout=RUN_LIMIT)
    check("system.dist nccl sums GPU buffers: it needs system.device cuda" in p.stderr,
          f"nccl with device cpu: not refused for the device: {p.stderr[-600:]}")


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
        return max(1, sum(1 for ln in out.splitlines() if ln.startswith("GPU ")))
    except (OSError, subprocess.TimeoutExpired):
        return 1


def single_and_nccl(mpirun, tmp, gpu, np, single_args, tag):
    """A system.dist single run with single_args and an np-rank nccl run of the same config, in tmp/TAG-single
    and tmp/TAG-nccl. Returns both runs' {step: loss}, or None after a failed run."""
    ref, got = f"{tmp}/{tag}-single", f"{tmp}/{tag}-nccl"
    p = run_retort(failures, ["train"] + gpu + single_args + ["system.dist=single", f"run.out_dir={ref}"],
                   what=f"{tag}: system.dist single", timeout=600)
    q = subprocess.run([mpirun, "-np", str(np), RETORT, "train"] + gpu + ["system.dist=nccl", f"run.out_dir={got}"],
                       capture_output=True, text=True, timeout=600, env=env_with())
    if q.returncode != 0:
        failures.append(f"{tag}: mpirun -np {np} system.dist nccl exited {q.returncode}: {q.stderr[-2000:]}")
    if p.returncode != 0 or q.returncode != 0:
        return None
    return train_losses(ref), train_losses(got)


def gpu_checks(mpirun, tmp, args):
    gpu = args + ["system.device=cuda", "train.steps=8", "checkpoint.every=8"]
    # bf16, as GPU runs train; gradients are summed in fp32 either way
    runs = single_and_nccl(mpirun, tmp, gpu + ["system.precision=bf16"], 1, [], "world1")
    if runs:
        a, b = runs
        check(a == b and len(a) == 8, f"nccl world 1: losses differ from system.dist single: {b} vs {a}")
        ta, _ = ckpt_tensors(f"{tmp}/world1-single/ckpt-latest.h5")
        tb, _ = ckpt_tensors(f"{tmp}/world1-nccl/ckpt-latest.h5")
        for name in ta:
            check(name in tb and ta[name].tobytes() == tb[name].tobytes(),
                  f"nccl world 1: {name} differs from system.dist single")
        print(f"nccl world 1: {len(b)} losses and {len(ta)} tensors against system.dist single")
    if gpu_count() < 2:
        print("one GPU: the 2-rank comparison needs two")
        return
    # fp32, so that only the order of the sums differs: the bucket sums overlap backward on their own stream
    runs = single_and_nccl(mpirun, tmp, gpu + ["system.precision=fp32"], 2, ["train.grad_accum=2"], "ranks2")
    if runs:
        a, b = runs
        check(sorted(a) == sorted(b), f"nccl 2 ranks: steps {sorted(b)} vs {sorted(a)}")
        steps = sorted(set(a) & set(b))
        check_close(failures, "nccl 2 ranks vs 1 GPU x grad_accum 2: losses", [b[s] for s in steps],
                    [a[s] for s in steps], atol=1e-4, rtol=1e-3)
        print(f"nccl 2 ranks: {len(steps)} losses against 1 GPU x grad_accum 2")


def main():
    ver = subprocess.run([RETORT, "--version"], capture_output=True, text=True).stdout
    comms = next((ln for ln in ver.splitlines() if ln.startswith("communicators:")), "")
    if "nccl" not in comms:
        print(f"skipped: this retort has no nccl communicator ({comms or 'no communicators line'})")
        sys.exit(SKIP)
    mpirun = shutil.which("mpirun")
    if not mpirun:
        print("skipped: no mpirun (Open MPI) on this machine to start the ranks")
        sys.exit(SKIP)
    tmp = tempfile.mkdtemp(prefix="nccl-")
    train_h5 = os.path.join(tmp, "train.h5")
    run_retort(failures, ["data", "synth", "--task", "addpad", "--n", "600", "--seed", "5", "--out", train_h5])
    args = [TINY, "model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
            "train.batch_size=8", "train.warmup_steps=2", "train.eval_every=0", "run.log_every=1",
            "system.threads=1", f"data.train={train_h5}", "data.val="]
    gpu_line = next((ln for ln in ver.splitlines() if ln.startswith("gpu:")), "")
    if gpu_line == "gpu: yes":
        gpu_checks(mpirun, tmp, args)
    else:
        # "gpu: no (REASON (no NVIDIA driver or GPU visible to this process))": CUDA's words are REASON
        m = re.match(r"^gpu: no \((.*?)(?: \(.*\))?\)$", gpu_line)
        reason = m.group(1) if m else ""
        check(reason != "", f"retort --version gives no reason for having no GPU: '{gpu_line}'")
        no_gpu_checks(mpirun, tmp, args, reason)
    finish(failures, "nccl: passed", tmp)


if __name__ == "__main__":
    main()
