"""The CPU thread count retort picks when system.threads is 0, and the training log line that says where it came
from (docs/cpu_threads.md), against what the operating system and the launchers actually give:

- no limits: the CPUs of this test's own affinity mask (os.sched_getaffinity);
- under the real `taskset -c 0`: one thread, from the affinity mask;
- SLURM_CPUS_PER_TASK=1 and OMP_NUM_THREADS=1: one thread, naming the variable;
- an explicit system.threads wins over OMP_NUM_THREADS;
- two Open MPI ranks on this node, unbound (tests/checklib.py MPI_ENV) and with mpirun's default binding: each
  rank takes at most the online CPUs divided by 2, never all of them;
- the running process's environment (/proc/PID/environ) holds GOMP_SPINCOUNT=1000, which retort sets for
  libgomp by executing itself again, and keeps the user's OMP_WAIT_POLICY without adding it.

Skips (exit 77) when this process may run on only one CPU (every count would be 1)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import MPI_ENV, finish  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
CFG = os.path.join(os.environ["RT_SOURCE_DIR"], "trainer", "configs", "tiny.yaml")
LINE = re.compile(r"^threads: (\d+), from (.*)$", re.M)

failures = []
mask = len(os.sched_getaffinity(0))
online = os.sysconf("SC_NPROCESSORS_ONLN")
if mask < 2 or not shutil.which("taskset"):
    print(f"skipped: this process may run on {mask} CPU(s), or taskset is missing")
    sys.exit(77)
work = tempfile.mkdtemp(prefix="rt_threads_")
data = os.path.join(work, "train.h5")
subprocess.run([RETORT, "data", "synth", "--task", "addpad", "--n", "200", "--out", data], check=True,
               capture_output=True)
# the environment of every run: none of the variables under test unless the case sets them
BASE_ENV = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
run_no = 0


def train(what, prefix=(), env=None, extra=()):
    """One training step with the given launcher prefix and environment; (threads, source) from the log."""
    global run_no
    run_no += 1
    out = os.path.join(work, f"run{run_no}")
    args = list(prefix) + [RETORT, "train", CFG, "train.steps=1", "train.batch_size=4", "train.eval_every=0",
                           "checkpoint.every=0", f"data.train={data}", "data.val=", f"run.out_dir={out}"]
    p = subprocess.run(args + list(extra), env={**BASE_ENV, **(env or {})}, capture_output=True, text=True,
                       timeout=120)
    m = LINE.search(p.stderr)
    if p.returncode != 0 or not m:
        failures.append(f"{what}: exit {p.returncode}, no 'threads:' line: {p.stderr[-1500:]}")
        return None, None
    return int(m.group(1)), m.group(2)


def expect(what, got, want_n, source_has):
    n, source = got
    if n is None:
        return
    if n != want_n or source_has not in source:
        failures.append(f"{what}: {n} threads from '{source}', expected {want_n} from '{source_has}...'")


expect("no limits", train("no limits"), mask, "online CPUs" if mask == online else "affinity mask")
expect("taskset -c 0", train("taskset -c 0", ["taskset", "-c", "0"]), 1, "affinity mask (1 of")
expect("SLURM_CPUS_PER_TASK=1", train("slurm", env={"SLURM_CPUS_PER_TASK": "1"}), 1, "SLURM_CPUS_PER_TASK=1")
expect("OMP_NUM_THREADS=1", train("omp", env={"OMP_NUM_THREADS": "1"}), 1, "OMP_NUM_THREADS=1")
expect("system.threads=3 over OMP_NUM_THREADS=1",
       train("explicit", env={"OMP_NUM_THREADS": "1"}, extra=["system.threads=3"]), 3, "system.threads")

# two ranks on this node: rank 0 writes the log. Unbound, they split the online CPUs; bound by mpirun's
# default (a core each for two ranks), each keeps its binding, which is at most half the node.
mpirun = shutil.which("mpirun")
if mpirun:
    launch = [mpirun, "-np", "2"]
    unbound = train("mpirun unbound", launch + ["--timeout", "100"], env=MPI_ENV)
    expect("mpirun -np 2, unbound", unbound, max(1, min(mask, online // 2)), "shared by the 2 ranks")
    bound_env = {k: v for k, v in MPI_ENV.items() if "binding" not in k and "oversubscribe" not in k}
    n, source = train("mpirun bound", launch + ["--timeout", "100"], env=bound_env)
    if n is not None and not 1 <= n <= max(1, online // 2):
        failures.append(f"mpirun -np 2 with its default binding: {n} threads from '{source}', expected at most "
                        f"{max(1, online // 2)}")
else:
    print("note: no mpirun; the rank cases were not run")



def running_environ(env):
    """GOMP_SPINCOUNT and OMP_WAIT_POLICY in the environment of a running `retort train`, read once it logs."""
    out = os.path.join(work, f"environ{len(env)}")
    p = subprocess.Popen([RETORT, "train", CFG, "train.steps=100000", "train.eval_every=0", "checkpoint.every=0",
                          f"data.train={data}", "data.val=", f"run.out_dir={out}"],
                         env={**BASE_ENV, **env}, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        p.stderr.readline()  # the first line comes from the program after its exec
        with open(f"/proc/{p.pid}/environ", "rb") as f:
            pairs = [kv.decode(errors="replace").split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv]
        got = {k: v for k, v in pairs if k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    finally:
        p.kill()
        p.wait()
    return got


got = running_environ({})
if got != {"GOMP_SPINCOUNT": "1000"}:
    failures.append(f"retort's own environment: {got}, expected GOMP_SPINCOUNT=1000 only")
got = running_environ({"OMP_WAIT_POLICY": "passive"})
if got != {"OMP_WAIT_POLICY": "passive"}:
    failures.append(f"retort's environment under OMP_WAIT_POLICY=passive: {got}, expected it unchanged")

finish(failures, "threads: affinity mask, taskset, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS, system.threads and "
       "ranks per node give the expected counts; GOMP_SPINCOUNT set unless the user chose a wait policy", work)
