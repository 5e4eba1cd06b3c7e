"""Data-parallel training on Open MPI ranks (mpirun), against single-process runs of the same global batch:

- bit for bit: `mpirun -np 2` with grad_accum 1 equals 1 rank with grad_accum 2 (losses in metrics.jsonl, every
  weight and both AdamW moments of the final checkpoint, its step and token count) for train, distill
  (offline_topk and online) and finetune (LoRA with dropout, QLoRA); -np 3 equals grad_accum 3 (the mpi
  communicator adds in rank order); train.zero=1 equals train.zero=0;
- resume: 2 ranks stopped and resumed on 2 ranks equal the uninterrupted run bit for bit; a 2-rank checkpoint
  resumed on 1 rank (grad_accum 2) and a 1-rank one resumed on 2 ranks run and match within 1e-6;
- agreement: SIGUSR1 to one rank stops both at the same step with one checkpoint and exit 75, and --resume
  finishes the run;
  SIGKILL of one rank makes mpirun and the other rank end, non-zero, within 60 s;
- srun that started several tasks which each see a world of one is refused;
- the 2-rank train records report the time in the communicator (comm_s, comm_frac) within the window's time.

Every rank uses one thread, as does the single process it is compared with: the CPU kernels split row
reductions over threads, so equal bits need equal thread counts (docs/distributed.md)."""
import glob
import json
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import MPI_ENV, add2_teacher, all_tensors, finish, run_retort, train_losses  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
T = 32
MODEL = ["model.dim=48", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=96",
         f"model.max_seq_len={T}", f"data.seq_len={T}"]
COMMON = ["train.batch_size=8", "train.warmup_steps=2", "train.eval_every=0", "data.val=", "run.log_every=1",
          "system.threads=1", "checkpoint.every=0", "train.lr=5e-3"]
failures = []


def env():
    e = dict(os.environ)
    e.update(MPI_ENV)
    return e


def mpirun(n, args, what, expect=0, timeout=120):
    """retort ARGS on n ranks; an unexpected exit or a hang (timeout) is a failure."""
    try:
        p = subprocess.run(["mpirun", "-np", str(n), RETORT, *args], capture_output=True, text=True, env=env(),
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        failures.append(f"{what}: mpirun -np {n} did not finish in {timeout} s")
        return None
    if expect is not None and p.returncode != expect:
        failures.append(f"{what}: mpirun -np {n} exited {p.returncode}, expected {expect}: {p.stderr[-1500:]}")
    return p


def latest(run_dir):
    return os.path.join(run_dir, "ckpt-latest.h5")


def same_run(what, a, b, exact=True):
    """Two run directories: losses and the final checkpoint's tensors and state, equal bits or within 1e-6."""
    la, lb = train_losses(a), train_losses(b)
    if not la or sorted(la) != sorted(lb):
        failures.append(f"{what}: logged steps differ: {sorted(la)[:5]}... vs {sorted(lb)[:5]}...")
        return
    for s in sorted(la):
        if (la[s] != lb[s]) if exact else abs(la[s] - lb[s]) > 1e-6 * abs(la[s]):
            failures.append(f"{what}: loss at step {s}: {la[s]!r} vs {lb[s]!r}")
            return
    try:
        ta, sa = all_tensors(latest(a))
        tb, sb = all_tensors(latest(b))
    except (OSError, KeyError) as e:
        failures.append(f"{what}: checkpoint: {e}")
        return
    if sorted(ta) != sorted(tb) or len(ta) < 4:
        failures.append(f"{what}: the checkpoints hold different (or too few) tensors: {sorted(ta)[:6]}")
        return
    for name in sorted(ta):
        x, y = ta[name], tb[name]
        ok = np.array_equal(x, y) if exact else np.allclose(x, y, rtol=1e-5, atol=1e-6)
        if not ok:
            failures.append(f"{what}: {name} differs (max |diff| {np.max(np.abs(x - y)):.3g})")
            return
    for key in ("step", "tokens_seen"):
        if sa.get(key) != sb.get(key):
            failures.append(f"{what}: state {key} {sa.get(key)} vs {sb.get(key)}")


def ranks_vs_accum(what, cmd, args, n, tmp, extra=()):
    """cmd on 1 rank with grad_accum n against n ranks with grad_accum 1."""
    one, many = os.path.join(tmp, f"{what}-1"), os.path.join(tmp, f"{what}-{n}")
    run_retort(failures, [cmd, CFG, *args, *extra, f"train.grad_accum={n}", f"run.out_dir={one}"], what=what)
    mpirun(n, [cmd, CFG, *args, *extra, "train.grad_accum=1", f"run.out_dir={many}"], what)
    same_run(f"{what}: {n} ranks vs 1 rank x grad_accum {n}", one, many)
    return one, many


def comm_records(what, one, many):
    """The 2-rank run's train records carry the time spent in the communicator (comm_s), more than zero and no
    more than the window's wall time (the difference of elapsed_s), and comm_frac = comm_s over the steps'
    time (tokens over tokens/s); a 1-rank run's records carry neither."""
    recs = [json.loads(line) for line in open(os.path.join(many, "metrics.jsonl"))]
    recs = [r for r in recs if r["type"] == "train"]
    prev_elapsed, prev_tokens = 0.0, 0
    for r in recs:
        if "comm_s" not in r or "comm_frac" not in r:
            failures.append(f"{what}: step {r['step']}: no comm_s/comm_frac in {r}")
            return
        window, steps_s = r["elapsed_s"] - prev_elapsed, (r["tokens"] - prev_tokens) / r["tokens_per_s"]
        if not 0 < r["comm_s"] <= window + 1e-4:
            failures.append(f"{what}: step {r['step']}: comm_s {r['comm_s']} outside (0, {window:.6g}] s")
        if abs(r["comm_frac"] - r["comm_s"] / steps_s) > 1e-4 * (1 + r["comm_frac"]):
            failures.append(f"{what}: step {r['step']}: comm_frac {r['comm_frac']}, expected comm_s over the steps' "
                            f"time {r['comm_s'] / steps_s:.6g}")
        prev_elapsed, prev_tokens = r["elapsed_s"], r["tokens"]
    for line in open(os.path.join(one, "metrics.jsonl")):
        if "comm_s" in line:
            failures.append(f"{what}: a 1-rank record has comm_s: {line.strip()}")
            return


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def wait_for_step(run_dir, step, limit=60):
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            if max(train_losses(run_dir), default=0) >= step:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return False


def signal_one_rank(tmp, data, sig, what):
    """Starts 2 ranks on a long run, sends sig to one rank's process once step 3 is logged; returns (the
    CompletedProcess-like (returncode, stderr) or None on a hang, seconds from the signal to the end)."""
    out = os.path.join(tmp, what)
    p = subprocess.Popen(["mpirun", "-np", "2", RETORT, "train", CFG, *MODEL, *COMMON, f"data.train={data}",
                          "train.steps=100000", f"run.out_dir={out}"], env=env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        if not wait_for_step(out, 3):
            failures.append(f"{what}: no training step logged")
            p.kill()
            p.communicate()
            return None, 0, out
        kids = children(p.pid)
        if len(kids) != 2:
            failures.append(f"{what}: expected 2 rank processes under mpirun, found {kids}")
        os.kill(kids[-1], sig)
        t0 = time.time()
        _, err = p.communicate(timeout=90)
        return (p.returncode, err), time.time() - t0, out
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        failures.append(f"{what}: the ranks did not end within 90 s of the signal")
        return None, 0, out


def main():
    if subprocess.run(["which", "mpirun"], capture_output=True).returncode != 0:
        print("mpirun not found (scripts/bootstrap.sh installs openmpi-bin): skipped")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="dist-")
    data = os.path.join(tmp, "add2.h5")
    run_retort(failures, ["data", "synth", "--task", "add2", "--n", "2000", "--seed", "7", "--out", data])
    train = [*MODEL, *COMMON, f"data.train={data}", "train.steps=12"]

    # train: 2 and 3 ranks, ZeRO-1
    one2, many2 = ranks_vs_accum("train", "train", train, 2, tmp)
    comm_records("comm time", one2, many2)
    one3, _ = ranks_vs_accum("train3", "train", train, 3, tmp)
    z3 = os.path.join(tmp, "zero3")
    mpirun(3, ["train", CFG, *train, "train.zero=1", f"run.out_dir={z3}"], "zero=1 on 3 ranks")
    same_run("train.zero=1 on 3 ranks vs 1 rank x grad_accum 3", one3, z3)
    z2 = os.path.join(tmp, "zero2")
    mpirun(2, ["train", CFG, *train, "train.zero=1", f"run.out_dir={z2}"], "zero=1 on 2 ranks")
    same_run("train.zero=1 vs train.zero=0 on 2 ranks", many2, z2)

    # resume: 2 -> 2 bit for bit, 2 -> 1 and 1 -> 2 within tolerance
    r22 = os.path.join(tmp, "resume22")
    mpirun(2, ["train", CFG, *train, "checkpoint.every=6", f"run.out_dir={r22}", "--stop-after", "6"], "2 -> 2 part 1")
    mpirun(2, ["train", CFG, *train, "checkpoint.every=6", f"run.out_dir={r22}", "--resume"], "2 -> 2 resume")
    same_run("resumed 2 -> 2 vs uninterrupted 2 ranks", many2, r22)
    r21 = os.path.join(tmp, "resume21")
    mpirun(2, ["train", CFG, *train, "checkpoint.every=6", f"run.out_dir={r21}", "--stop-after", "6"], "2 -> 1 part 1")
    p = run_retort(failures, ["train", CFG, *train, "train.grad_accum=2", "checkpoint.every=6", f"run.out_dir={r21}",
                              "--resume"], what="2 -> 1 resume")
    if "written by 2 ranks" not in p.stderr:
        failures.append(f"2 -> 1 resume: no note about the world size: {p.stderr[-600:]}")
    same_run("resumed 2 -> 1 (grad_accum 2) vs uninterrupted 2 ranks", many2, r21, exact=False)
    r12 = os.path.join(tmp, "resume12")
    run_retort(failures, ["train", CFG, *train, "train.grad_accum=2", "checkpoint.every=6", f"run.out_dir={r12}",
                          "--stop-after", "6"], what="1 -> 2 part 1")
    mpirun(2, ["train", CFG, *train, "checkpoint.every=6", f"run.out_dir={r12}", "--resume"], "1 -> 2 resume")
    same_run("resumed 1 -> 2 vs uninterrupted 1 rank x grad_accum 2", one2, r12, exact=False)

    # distillation, offline top-k and online
    tck, _ = add2_teacher(failures, tmp, CFG, MODEL, 5)
    synth = os.path.join(tmp, "synth.h5")
    run_retort(failures, ["synth", CFG, f"synth.teacher={tck}", "synth.task=add2", "synth.n_prompts=200",
                          "synth.topk=6", "synth.max_tokens=4", "system.threads=2", f"synth.out={synth}"],
               what="synth")
    student = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
               f"model.max_seq_len={T}", f"data.seq_len={T}", *COMMON, f"data.train={synth}", "train.steps=8",
               "data.loss_on=answer"]
    ranks_vs_accum("distill_topk", "distill", student, 2, tmp, ["distill.mode=offline_topk"])
    ranks_vs_accum("distill_online", "distill", student, 2, tmp, ["distill.mode=online", f"distill.teacher={tck}"])

    # fine-tuning: LoRA with dropout (masks per global micro-batch), QLoRA
    ft = [*COMMON, f"base={tck}", f"data.train={data}", "train.steps=8", "data.loss_on=answer"]
    ranks_vs_accum("lora", "finetune", ft, 2, tmp, ["lora.dropout=0.2"])
    ranks_vs_accum("qlora", "finetune", ft, 2, tmp, ["finetune.method=qlora", "lora.targets=all"])

    # a stop signal on one rank (USR1, Slurm's warning before the time limit): both stop at the same step,
    # one checkpoint, exit 75, then --resume finishes
    res, _, out = signal_one_rank(tmp, data, signal.SIGUSR1, "sigusr1")
    if res is not None:
        rc, err = res
        if rc != 75:
            failures.append(f"sigusr1: mpirun exited {rc} after a stop signal (expected 75 from the ranks)")
        if f"stopped by signal {int(signal.SIGUSR1)}" not in err:
            failures.append(f"sigusr1: no 'stopped by signal {int(signal.SIGUSR1)}' note: {err[-800:]}")
        runs = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if '"run"' in line]
        if not runs or runs[0].get("world") != 2 or runs[0].get("step") != 0:
            failures.append(f"sigusr1: the run record should say world 2 from step 0: {runs[:1]}")
        ckpts = glob.glob(os.path.join(out, "ckpt-0*.h5"))
        last = max(train_losses(out), default=0)
        if len(ckpts) != 1:
            failures.append(f"sigusr1: expected one checkpoint, found {ckpts}")
        else:
            _, st = all_tensors(ckpts[0])
            if st.get("step") != last:
                failures.append(f"sigusr1: checkpoint at step {st.get('step')}, last logged step {last}")
        mpirun(2, ["train", CFG, *MODEL, *COMMON, f"data.train={data}", f"train.steps={last + 3}",
                   f"run.out_dir={out}", "--resume"], "resume after the signal")
        if max(train_losses(out), default=0) != last + 3:
            failures.append(f"sigusr1: the resumed run did not reach step {last + 3}")

    # SIGKILL of one rank: the other does not wait forever
    res, secs, _ = signal_one_rank(tmp, data, signal.SIGKILL, "sigkill")
    if res is not None:
        rc, err = res
        if rc == 0:
            failures.append("sigkill: mpirun exited 0 after a rank was killed")
        if secs > 60:
            failures.append(f"sigkill: the job took {secs:.0f} s to end after a rank was killed")

    # srun started 2 tasks that each see a world of one (an MPI that does not speak srun's plugin)
    e = env()
    e["SLURM_STEP_NUM_TASKS"] = "2"
    p = subprocess.run([RETORT, "train", CFG, *train, f"run.out_dir={tmp}/slurm"], capture_output=True, text=True,
                       env=e, timeout=60)
    if p.returncode == 0 or "SLURM_STEP_NUM_TASKS" not in p.stderr:
        failures.append(f"srun world mismatch: exit {p.returncode}, expected a refusal: {p.stderr[-600:]}")
    finish(failures, "data-parallel training on 2 and 3 MPI ranks equals one rank bit for bit; signals and "
           "failures are agreed", tmp)


if __name__ == "__main__":
    main()
