"""The batch scripts of scripts/slurm/ on a real one-node Slurm (tests/slurm/cluster-up.sh starts it in the
test's work folder, cluster-down.sh stops it at the end, also after a failure). Jobs run Open MPI ranks of
the build's retort on the CPU, one thread each, and are compared with a single process run directly (not
through Slurm) with grad_accum 2, which gives the same bits (docs/distributed.md):

- train.sbatch on 2 tasks completes, restart count 0, and equals the direct run: every step's loss, every
  tensor of the final checkpoint (weights and AdamW moments), its step, data position and RNG;
- preemption: `scancel -b --signal=USR1` mid-run reaches the batch shell, whose trap passes it to srun; the
  ranks checkpoint and exit 75, the script requeues the job, the rerun (Restarts=1, a run record with
  slurm_restart_count 1 at the checkpoint's step) resumes, and the end is bit-identical to the direct run;
- an outside `scontrol requeue` (SIGTERM to the steps) ends the same way;
- the same job submitted again over the finished run directory (RUN_DIR=) exits 0 with "nothing to do",
  is not requeued, and leaves the checkpoint as it was;
- sweep.sbatch as an array of three LoRA ranks: three tasks complete, three run directories, each
  checkpoint's adapters of its own rank;
- distill.sbatch (synth then distill in one job) and finetune.sbatch complete on a tiny config.

With --time-limit (ctest label slow; runs only with RT_SLOW=1, it takes about 105 s): a job with --time=2
and --signal=B:USR1@30 gets the warning before its limit, checkpoints, requeues itself and resumes from
the checkpoint.

Skips (exit 77) when the cluster cannot start here: not root, packages missing (scripts/bootstrap.sh test),
another Slurm running."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import MPI_ENV, all_tensors, finish, run_retort, train_losses  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
CLUSTER = os.path.join(SRC, "tests", "slurm")
T = 32
MODEL = ["model.dim=48", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=96",
         f"model.max_seq_len={T}", f"data.seq_len={T}"]
COMMON = ["train.batch_size=8", "train.warmup_steps=2", "train.eval_every=0", "data.val=", "system.threads=1",
          "checkpoint.every=0", "train.lr=5e-3"]
# about 2.5 s on 2 ranks here: long enough to stop a job mid-run once its first steps are logged
STEPS = 1000
LOG = 10
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE")
failures = []


class Cluster:
    """The one-node cluster in DIR and the jobs this check submitted (cancelled before the daemons stop,
    since a job step's slurmstepd outlives slurmd)."""

    def __init__(self, work):
        self.dir = os.path.join(work, "cluster")
        self.jobs_dir = os.path.join(work, "jobs")
        os.makedirs(self.jobs_dir)
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.submitted = []

    def env(self, extra=None):
        """The submitting environment, which sbatch hands to the job (--export=ALL): Open MPI as root on
        loopback, this cluster, the build's retort; no SLURM_* of an outer job."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        e.update(MPI_ENV)
        # Open MPI busy-polls while a rank waits unless told the cores are oversubscribed (mpirun
        # --oversubscribe does tell it; srun's direct launch cannot): on this 2-core machine, with the direct
        # run or anything else beside a 2-rank job, spinning made the job 4x slower
        e["OMPI_MCA_mpi_yield_when_idle"] = "1"
        e.update({"SLURM_CONF": self.conf, "RETORT": RETORT})
        e.update(extra or {})
        return e

    def up(self):
        p = subprocess.run(["bash", os.path.join(CLUSTER, "cluster-up.sh"), self.dir], capture_output=True,
                           text=True, timeout=120)
        return p.returncode, p.stderr

    def down(self):
        if self.submitted:
            subprocess.run(["scancel", *self.submitted], env=self.env(), capture_output=True, timeout=30)
            t0 = time.time()
            while time.time() - t0 < 30 and any(self.state(j) not in (*FINAL, None) for j in self.submitted):
                time.sleep(0.5)
        subprocess.run(["bash", os.path.join(CLUSTER, "cluster-down.sh"), self.dir], timeout=120)

    def sbatch(self, script, args, opts=(), env=None):
        """Submits scripts/slurm/SCRIPT from the repository root (where the script finds run-step.sh), the
        job working in jobs/; returns the job id or None."""
        p = subprocess.run(["sbatch", "--parsable", f"--chdir={self.jobs_dir}", *opts,
                            os.path.join("scripts", "slurm", script), *args], cwd=SRC, env=self.env(env),
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            failures.append(f"sbatch {script}: exit {p.returncode}: {p.stderr.strip()}")
            return None
        job = p.stdout.strip().split(";")[0]
        self.submitted.append(job)
        return job

    def snapshot(self):
        """`scontrol show job -o`: one {key: value} per job or array task the controller knows."""
        p = subprocess.run(["scontrol", "show", "job", "-o"], env=self.env(), capture_output=True, text=True,
                           timeout=30)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in p.stdout.splitlines() if "JobId=" in line]

    def info(self, job, snap=None):
        """The job's entries (an array job: one per task); [] when unknown."""
        return [t for t in (snap if snap is not None else self.snapshot())
                if t.get("ArrayJobId", t.get("JobId")) == job]

    def state(self, job, snap=None):
        """One state for the job: an array's tasks' states joined with ',', None when unknown."""
        states = sorted({t.get("JobState") for t in self.info(job, snap)})
        return ",".join(states) if states else None

    def run(self, cmd):
        return subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=30)

    def log(self, name):
        try:
            return open(os.path.join(self.jobs_dir, name)).read()
        except OSError:
            return ""


def same_bits(what, run_dir, ref_dir):
    """A job's run directory against the direct run: the loss of every step the direct run logged (a
    stopped job also logs its stop step) and the final checkpoint (every tensor, the step, tokens, data
    position and RNG; not world_size, which differs by design)."""
    try:
        got, ref = train_losses(run_dir), train_losses(ref_dir)
        tg, sg = all_tensors(os.path.join(run_dir, "ckpt-latest.h5"))
        tr, sr = all_tensors(os.path.join(ref_dir, "ckpt-latest.h5"))
    except (OSError, KeyError, ValueError) as e:
        failures.append(f"{what}: {e}")
        return
    if not ref or not set(ref) <= set(got):
        failures.append(f"{what}: steps the direct run logged are missing: {sorted(set(ref) - set(got))[:5]}")
        return
    bad = [s for s in sorted(ref) if got[s] != ref[s]]
    if bad:
        failures.append(f"{what}: loss at step {bad[0]}: {got[bad[0]]!r}, direct run {ref[bad[0]]!r}")
    if sorted(tg) != sorted(tr) or len(tg) < 4:
        failures.append(f"{what}: the checkpoints hold different tensors: {sorted(set(tg) ^ set(tr))[:6]}")
        return
    for name in sorted(tr):
        if not np.array_equal(tg[name], tr[name]):
            failures.append(f"{what}: {name} differs (max |diff| {np.max(np.abs(tg[name] - tr[name])):.3g})")
            return
    for key in ("step", "tokens_seen", "data_epoch", "data_index", "rng"):
        if sg.get(key) != sr.get(key):
            failures.append(f"{what}: checkpoint state {key} {sg.get(key)}, direct run {sr.get(key)}")


def run_records(run_dir):
    """The run records of metrics.jsonl (one per start of the command); a line still being written ends
    the list."""
    out = []
    try:
        for line in open(os.path.join(run_dir, "metrics.jsonl")):
            if '"type":"run"' in line:
                out.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return out


def last_step(run_dir):
    try:
        return max(train_losses(run_dir), default=0)
    except (OSError, ValueError):
        return 0  # not written yet, or a line being written


def wait_all(cl, jobs, limit, on_tick=None):
    """Waits until every job is in a final state (on_tick() runs every round); False on the time limit."""
    t0 = time.time()
    while time.time() - t0 < limit:
        snap = cl.snapshot()
        if on_tick:
            on_tick(snap)
        if all(cl.state(j, snap) in FINAL for j in jobs if j):
            return True
        time.sleep(0.2)
    return False


def timeline(cl, jobs, t0):
    """Each job's (or array task's) submit, eligible, start and end times, in seconds from t0."""
    def rel(stamp):
        try:
            return f"{time.mktime(time.strptime(stamp, '%Y-%m-%dT%H:%M:%S')) - t0:5.0f}"
        except (TypeError, ValueError):
            return "    -"
    for job in jobs:
        for t in cl.info(job):
            print(f"  job {t.get('JobId')} {t.get('JobName'):8} {t.get('ArrayTaskId', ''):2} "
                  f"{t.get('JobState'):9} restarts {t.get('Restarts')}: submit {rel(t.get('SubmitTime'))} eligible "
                  f"{rel(t.get('EligibleTime'))} start {rel(t.get('StartTime'))} end {rel(t.get('EndTime'))} s")


def resumed_once(cl, what, job, run_dir, ref_dir, stopped_at):
    """A job stopped once mid-run: completed with Restarts=1, two run records (the second at the
    checkpoint's step, with slurm_restart_count 1), a checkpoint from the stop, and the direct run's bits."""
    info = (cl.info(job) or [{}])[0]
    if info.get("JobState") != "COMPLETED" or info.get("Restarts") != "1":
        failures.append(f"{what}: job {job} ended {info.get('JobState')} after {info.get('Restarts')} "
                        f"restarts, expected COMPLETED after 1")
    runs = run_records(run_dir)
    if len(runs) != 2 or runs[0].get("slurm_restart_count", 0) != 0 or runs[1].get("slurm_restart_count") != 1:
        failures.append(f"{what}: expected two run records, restart counts 0 and 1: {runs}")
    elif not stopped_at < runs[1]["step"] < STEPS or str(runs[1].get("slurm_job_id")) != job:
        failures.append(f"{what}: the rerun should resume job {job} after step {stopped_at} and before "
                        f"{STEPS}: {runs[1]}")
    elif not os.path.exists(os.path.join(run_dir, f"ckpt-{runs[1]['step']:08d}.h5")):
        failures.append(f"{what}: no checkpoint of the stop step {runs[1]['step']}")
    same_bits(what, run_dir, ref_dir)


def fast(cl, work):
    data = os.path.join(work, "add2.h5")
    run_retort(failures, ["data", "synth", "--task", "add2", "--n", "2000", "--seed", "7", "--out", data])
    train = [CFG, *MODEL, *COMMON, f"data.train={data}", f"run.log_every={LOG}", f"train.steps={STEPS}"]
    # a small teacher, the base of the fine-tuning jobs and the teacher of the distillation job
    teacher_dir = os.path.join(work, "teacher")
    run_retort(failures, ["train", CFG, *MODEL, *COMMON, f"data.train={data}", "train.steps=60",
                          "run.log_every=20", f"run.out_dir={teacher_dir}"], what="teacher")
    teacher = os.path.join(teacher_dir, "ckpt-latest.h5")
    ref_dir = os.path.join(work, "direct")
    t0 = time.time()
    direct = subprocess.Popen([RETORT, "train", *train, "train.grad_accum=2", f"run.out_dir={ref_dir}"],
                              env=cl.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def run_dir(job, name="train"):
        return os.path.join(cl.jobs_dir, "runs", f"{name}-{job}")

    whole = cl.sbatch("train.sbatch", train, ["--ntasks=2"])
    usr1 = cl.sbatch("train.sbatch", train, ["--ntasks=2"])
    requeue = cl.sbatch("train.sbatch", train, ["--ntasks=2"])
    sweep = cl.sbatch("sweep.sbatch", [CFG, f"base={teacher}", *COMMON, f"data.train={data}", "train.steps=6",
                                       "run.log_every=1", "data.loss_on=answer"], ["--array=0-2"],
                      {"SWEEP_COMMAND": "finetune", "SWEEP_KEY": "lora.rank", "SWEEP_VALUES": "2 4 8"})
    student = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
               f"model.max_seq_len={T}", f"data.seq_len={T}", *COMMON, "train.steps=8", "run.log_every=1",
               "data.loss_on=answer"]
    distill = cl.sbatch("distill.sbatch", [CFG, *student, f"synth.teacher={teacher}", "synth.task=add2",
                                           "synth.n_prompts=200", "synth.topk=6", "synth.max_tokens=4",
                                           "distill.mode=offline_topk"], ["--ntasks=2"])
    finetune = cl.sbatch("finetune.sbatch", [CFG, f"base={teacher}", *COMMON, f"data.train={data}",
                                             "train.steps=8", "run.log_every=1", "data.loss_on=answer",
                                             "lora.dropout=0.1"], ["--ntasks=2"])
    jobs = [whole, usr1, requeue, sweep, distill, finetune]
    if None in jobs:
        return
    # the stops: once a few steps are logged (and only once)
    stops = {usr1: (["scancel", "-b", "--signal=USR1", usr1], "USR1 to the batch shell"),
             requeue: (["scontrol", "requeue", requeue], "scontrol requeue")}
    stopped = {}
    again = []

    def tick(snap):
        for job, (cmd, what) in stops.items():
            if job in stopped or cl.state(job, snap) != "RUNNING":
                continue
            step = last_step(run_dir(job))
            if step >= LOG:
                p = cl.run(cmd)
                stopped[job] = (step, time.time())
                if p.returncode != 0:
                    failures.append(f"{what}: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
        # the finished run submitted again: nothing to do
        if not again and cl.state(whole, snap) == "COMPLETED":
            again.append(cl.sbatch("train.sbatch", train, ["--ntasks=2"], {"RUN_DIR": run_dir(whole)}))
            jobs.append(again[0])

    if not wait_all(cl, jobs, 240, tick):
        failures.append(f"jobs not finished in 240 s: " + ", ".join(f"{j} {cl.state(j)}" for j in jobs))
    try:
        _, err = direct.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        direct.kill()
        direct.communicate()
        failures.append("the direct run did not finish")
        return
    if direct.returncode != 0:
        failures.append(f"the direct run exited {direct.returncode}: {err[-800:]}")
        return
    print(f"all jobs ended {time.time() - t0:.1f} s after the first submission")
    timeline(cl, jobs, t0)
    for job, (cmd, what) in stops.items():
        if job not in stopped:
            failures.append(f"{what}: job {job} was never seen running with 3 steps logged")

    # train on 2 tasks, uninterrupted
    info = (cl.info(whole) or [{}])[0]
    if info.get("JobState") != "COMPLETED" or info.get("Restarts") != "0" or info.get("ExitCode") != "0:0":
        failures.append(f"train.sbatch: job {whole}: {info.get('JobState')}, {info.get('Restarts')} restarts, "
                        f"exit {info.get('ExitCode')}; expected COMPLETED, 0, 0:0")
    same_bits("train.sbatch on 2 tasks vs 1 process x grad_accum 2", run_dir(whole), ref_dir)

    # the two stops
    if usr1 in stopped:
        resumed_once(cl, "USR1 to the batch shell", usr1, run_dir(usr1), ref_dir, stopped[usr1][0])
        log = cl.log(f"train-{usr1}.out")
        for want in ("USR1 after", "stopped by signal 10", "requeueing job", "resuming from"):
            if want not in log:
                failures.append(f"USR1 to the batch shell: the job log has no '{want}'")
    if requeue in stopped:
        resumed_once(cl, "scontrol requeue", requeue, run_dir(requeue), ref_dir, stopped[requeue][0])
        if "stopped by signal 15" not in cl.log(f"train-{requeue}.out"):
            failures.append("scontrol requeue: the job log has no 'stopped by signal 15'")

    # the finished run again
    if again and again[0]:
        info = (cl.info(again[0]) or [{}])[0]
        log = cl.log(f"train-{again[0]}.out")
        if info.get("JobState") != "COMPLETED" or info.get("Restarts") != "0" or "nothing to do" not in log:
            failures.append(f"a finished run submitted again: {info.get('JobState')}, {info.get('Restarts')} "
                            f"restarts, 'nothing to do' {'in' if 'nothing to do' in log else 'not in'} its log")
        if os.path.exists(run_dir(again[0])):
            failures.append("a finished run submitted again with RUN_DIR made its own run directory")
        same_bits("the finished run after its second job", run_dir(whole), ref_dir)

    # the sweep: one run directory per array task, each with adapters of its rank
    tasks = cl.info(sweep)
    if sorted(t.get("ArrayTaskId") for t in tasks) != ["0", "1", "2"] or \
            any(t.get("JobState") != "COMPLETED" for t in tasks):
        failures.append(f"sweep.sbatch: tasks {[(t.get('ArrayTaskId'), t.get('JobState')) for t in tasks]}")
    sweep_root = os.path.join(cl.jobs_dir, "runs", f"sweep-{sweep}")
    dirs = sorted(os.listdir(sweep_root)) if os.path.isdir(sweep_root) else []
    if dirs != ["lora.rank-2", "lora.rank-4", "lora.rank-8"]:
        failures.append(f"sweep.sbatch: run directories {dirs}")
    for d in dirs:
        try:
            tensors, state = all_tensors(os.path.join(sweep_root, d, "ckpt-latest.h5"))
        except (OSError, KeyError) as e:
            failures.append(f"sweep.sbatch {d}: {e}")
            continue
        ranks = {v.shape[0] for k, v in tensors.items() if k.startswith("lora/") and k.endswith(".lora_a")}
        if ranks != {int(d.split("-")[1])} or state.get("step") != 6:
            failures.append(f"sweep.sbatch {d}: adapter ranks {ranks}, step {state.get('step')}")

    # distillation in two steps, fine-tuning
    for job, name, steps in ((distill, "distill", 8), (finetune, "finetune", 8)):
        info = (cl.info(job) or [{}])[0]
        if info.get("JobState") != "COMPLETED":
            failures.append(f"{name}.sbatch: job {job} {info.get('JobState')}: "
                            f"{cl.log(f'{name}-{job}.out')[-800:]}")
            continue
        d = run_dir(job, name)
        if last_step(d) != steps or run_records(d)[0].get("world") != 2:
            failures.append(f"{name}.sbatch: last step {last_step(d)}, run records {run_records(d)}")
    if not os.path.exists(os.path.join(run_dir(distill, "distill"), "synth.h5")):
        failures.append("distill.sbatch: stage 1 wrote no synth.h5 in the run directory")


def time_limit(cl, work):
    """--time=2 --signal=B:USR1@30: the warning comes 30-60 s before the limit (the controller's 30 s tick),
    the run checkpoints and requeues itself, and the rerun resumes from the checkpoint."""
    data = os.path.join(work, "add2.h5")
    run_retort(failures, ["data", "synth", "--task", "add2", "--n", "2000", "--seed", "7", "--out", data])
    job = cl.sbatch("train.sbatch", [CFG, *MODEL, *COMMON, f"data.train={data}", "run.log_every=100",
                                     "train.steps=100000000"], ["--ntasks=2", "--time=2", "--signal=B:USR1@30"])
    if job is None:
        return
    t0 = time.time()
    run_dir = os.path.join(cl.jobs_dir, "runs", f"train-{job}")
    while time.time() - t0 < 200:
        info = (cl.info(job) or [{}])[0]
        runs = run_records(run_dir)
        # the rerun is under way once it has logged a step past the one it resumed from
        if len(runs) == 2 and last_step(run_dir) > runs[1]["step"]:
            break
        if info.get("JobState") in FINAL:
            break
        time.sleep(0.5)
    log = cl.log(f"train-{job}.out")
    m = re.search(r"USR1 after (\d+) s", log)
    print(f"job {job}: {m.group(0) if m else 'no USR1'} (time limit 120 s); {time.time() - t0:.0f} s in all")
    if not m or not 30 <= int(m.group(1)) < 120:
        failures.append(f"time limit: USR1 should reach the batch shell 30 s or more into the job and before "
                        f"its 120 s limit: {m.group(0) if m else 'it never did'}")
    runs = run_records(run_dir)
    if len(runs) != 2 or runs[1].get("slurm_restart_count") != 1 or not runs[1].get("step"):
        failures.append(f"time limit: expected a rerun resumed after a checkpoint: {runs}; log {log[-1500:]}")
    elif not os.path.exists(os.path.join(run_dir, f"ckpt-{runs[1]['step']:08d}.h5")):
        failures.append(f"time limit: no checkpoint of step {runs[1]['step']}")
    if "TIMEOUT" in str(cl.state(job)):
        failures.append("time limit: the job reached its limit instead of requeueing itself")


def main():
    slow = "--time-limit" in sys.argv[1:]
    if slow and os.environ.get("RT_SLOW") != "1":
        print("the time-limit job takes about 105 s: skipped (RT_SLOW=1 runs it)")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="slurm-")
    os.chmod(work, 0o755)  # the controller runs as user slurm and keeps its state in here
    cl = Cluster(work)
    t0 = time.time()
    rc, err = cl.up()
    if rc != 0:  # cluster-up.sh stopped whatever it had started
        print(f"no Slurm cluster here (tests/slurm/cluster-up.sh exited {rc}): {err.strip()[-1500:]}\nskipped")
        sys.exit(77)
    print(f"cluster up in {time.time() - t0:.1f} s")
    try:
        (time_limit if slow else fast)(cl, work)
    finally:
        t1 = time.time()
        cl.down()
        print(f"cluster down in {time.time() - t1:.1f} s; {time.time() - t0:.0f} s in all")
    finish(failures, "Slurm: a real time-limit warning checkpoints, requeues and resumes" if slow else
           "Slurm: train.sbatch on 2 tasks equals 1 process bit for bit, also after a USR1 or an outside "
           "requeue mid-run; a finished run is not redone; the sweep array, distill and finetune jobs complete",
           work)


if __name__ == "__main__":
    main()
