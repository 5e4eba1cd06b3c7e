"""`retort synth` on several ranks (mpirun) against the same job in one process:
- 2 and 3 ranks write a file byte-identical to the 1-rank file, with 61 chunks (neither 2 nor 3 divides
  them, and the last chunk is short); rank 0 reports the same global counts; other ranks print nothing;
- a 2-rank run stopped by SIGTERM to rank 1 alone (rank 0 never sees the signal) stops on every rank with
  exit 75, keeps its finished chunks, and the same command continues it to the 1-rank file's bytes, on 2
  ranks and (a copy of its part folder) on 3;
- failures on one rank end every rank with exit 1, naming the failing rank and the cause: an unreadable
  prompts file on rank 1 only, a rank whose settings differ from rank 0's, and a chunk rank 0 cannot write
  in the middle of the run. A collective that one rank skipped would hang: every mpirun has a timeout.

Exits 77 (ctest: skipped) when mpirun is missing or retort was built without MPI.

usage: check_synth_ranks.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from checklib import MPI_ENV, add2_teacher, finish, run_retort

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
SKIP = 77
failures = []
DIMS = ["model.dim=32", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=64",
        "model.max_seq_len=32", "data.seq_len=32"]
# 1450 prompts in chunks of 16: 91 chunks (2 and 3 ranks get uneven shares), the last one of 10 prompts
N_PROMPTS, CHUNK = 1450, 16
N_CHUNKS = (N_PROMPTS + CHUNK - 1) // CHUNK
# each rank runs retort under sh, which prints the rank's own exit status and exits 0: mpirun reports one
# status, and on a non-zero one kills the ranks still running, before they could print theirs
WRAP = ["sh", "-c", '"$0" "$@"; echo "@exit $OMPI_COMM_WORLD_RANK $?"', RETORT]
TAG = re.compile(r"^\[\d+,(\d+)\]<(stdout|stderr)>:(.*)$")


class Ranks:
    """One mpirun: per rank, the exit status and the lines it printed."""

    def __init__(self, out):
        self.exit, self.lines = {}, {}
        for line in out.splitlines():
            m = TAG.match(line)
            if not m:
                continue
            rank, text = int(m.group(1)), m.group(3)
            if text.startswith("@exit "):
                self.exit[rank] = int(text.split()[2])
            else:
                self.lines.setdefault(rank, []).append(text)

    def text(self, rank):
        return "\n".join(self.lines.get(rank, []))


def mpirun_cmd(*apps):
    """mpirun for apps [(ranks, retort args)]: several apps make an MPMD run (ranks numbered in order)."""
    cmd = ["mpirun", "--tag-output"]
    for i, (n, args) in enumerate(apps):
        cmd += ([":"] if i else []) + ["-np", str(n)] + WRAP + list(args)
    return cmd


def start(*apps):
    return subprocess.Popen(mpirun_cmd(*apps), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **MPI_ENV}, start_new_session=True)


def finish_run(proc, what, timeout=90):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpirun and its ranks: this check started the group
        out, _ = proc.communicate()
        failures.append(f"{what}: still running after {timeout} s (a rank waits in a collective the others "
                        f"left?): {out[-1500:]}")
        return None
    return Ranks(out)


def mpirun(what, *apps):
    return finish_run(start(*apps), what)


def sha(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def summary(text):
    """The summary's counts, with the output's name and the seconds left out."""
    m = re.search(r"^wrote \S+: (.*), [0-9.]+ s \((.*)\)$", text, re.M)
    return (m.group(1), m.group(2)) if m else None


def expect_ok(r, what, world, ref_path, out, ref_summary):
    if r is None:
        return
    if any(r.exit.get(k) != 0 for k in range(world)):
        failures.append(f"{what}: ranks exited {r.exit}: {r.text(0)[-800:]} {r.text(1)[-800:]}")
        return
    if sha(out) != sha(ref_path):
        failures.append(f"{what}: {out} is not byte for byte the 1-rank file")
    if summary(r.text(0)) != ref_summary:
        failures.append(f"{what}: rank 0's summary {summary(r.text(0))} differs from 1 rank's {ref_summary}")
    if f"synth: prompts {N_PROMPTS}/{N_PROMPTS} | chunk {N_CHUNKS}/{N_CHUNKS}" not in r.text(0):
        failures.append(f"{what}: rank 0's progress did not end at every prompt and chunk: {r.text(0)[-500:]}")
    for k in range(1, world):
        if r.lines.get(k):
            failures.append(f"{what}: rank {k} printed {r.lines[k][:3]}; only rank 0 reports")
    if os.path.exists(out + ".part"):
        failures.append(f"{what}: the part folder was left after the merge")


def expect_failed(r, what, world, failing, cause):
    """Every rank exits 1; the failing rank says 'rank K: cause', the others that rank K failed."""
    if r is None:
        return
    if any(r.exit.get(k) != 1 for k in range(world)):
        failures.append(f"{what}: expected exit 1 on every rank, got {r.exit}")
    for k in range(world):
        want = f"rank {failing}: " if k == failing else f"stopping because rank {failing} failed: "
        text = r.text(k)
        if want not in text or not re.search(cause, text):
            failures.append(f"{what}: rank {k} does not say '{want}' with /{cause}/: {text[-600:]}")


def rank_pid(out, rank):
    """The pid of the retort process of `rank` writing `out` (these are this check's own processes)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if argv[0] != RETORT.encode() or f"synth.out={out}".encode() not in argv:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"OMPI_COMM_WORLD_RANK={rank}".encode() in f.read().split(b"\0"):
                    return int(pid)
        except OSError:
            continue
    return None


def main():
    if shutil.which("mpirun") is None:
        print("mpirun not found (scripts/bootstrap.sh installs Open MPI): skipped")
        sys.exit(SKIP)
    tmp = tempfile.mkdtemp(prefix="synth-ranks-")
    probe = mpirun("the MPI probe", (1, ["synth", CFG, "system.dist=mpi", f"synth.out={tmp}/probe.h5",
                                         f"synth.teacher={tmp}/none.h5"]))
    if probe is not None and "no mpi communicator" in probe.text(0):
        print("retort was built without MPI: skipped")
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(SKIP)

    ck, _ = add2_teacher(failures, tmp, CFG, DIMS, 3)
    job = [CFG, f"synth.teacher={ck}", "synth.task=add2", "system.threads=1", f"synth.n_prompts={N_PROMPTS}",
           "synth.samples=8", "synth.temperature=0.9", "synth.top_p=0.9", "synth.top_k=20", "synth.topk=4",
           f"synth.chunk={CHUNK}", "synth.batch_size=8"]
    ref = os.path.join(tmp, "one.h5")
    p = run_retort(failures, ["synth", *job, f"synth.out={ref}"], timeout=120)
    ref_summary = summary(p.stdout)
    if ref_summary is None or not os.path.exists(ref):
        finish(failures, "", tmp)

    for world in (2, 3):
        out = os.path.join(tmp, f"ranks{world}.h5")
        t0 = time.time()
        r = mpirun(f"{world} ranks", (world, ["synth", *job, f"synth.out={out}"]))
        print(f"{world} ranks: {time.time() - t0:.1f} s")
        expect_ok(r, f"{world} ranks", world, ref, out, ref_summary)

    # SIGTERM to rank 1 alone once a chunk is on disk; rank 0 learns of it in the round's agreement
    out = os.path.join(tmp, "stopped.h5")
    part = out + ".part"
    proc = start((2, ["synth", *job, f"synth.out={out}"]))
    deadline, pid = time.time() + 60, None
    while time.time() < deadline and proc.poll() is None:
        pid = pid or rank_pid(out, 1)
        if pid and os.path.exists(os.path.join(part, "chunk-00000000.h5")):
            os.kill(pid, signal.SIGTERM)
            break
        time.sleep(0.005)
    r = finish_run(proc, "2 ranks, SIGTERM to rank 1")
    left = sorted(f for f in os.listdir(part) if f.startswith("chunk-")) if os.path.isdir(part) else []
    if r is not None:
        if any(r.exit.get(k) != 75 for k in (0, 1)):
            failures.append(f"SIGTERM to rank 1: ranks exited {r.exit}, expected 75 on both "
                            f"(pid {pid}): {r.text(0)[-600:]} {r.text(1)[-600:]}")
        if "stopped by signal 15" not in r.text(0) or r.lines.get(1):
            failures.append(f"SIGTERM to rank 1: rank 0 should report the stop and rank 1 print nothing: "
                            f"{r.text(0)[-400:]} | {r.text(1)[-400:]}")
    if os.path.exists(out) or not left or len(left) >= N_CHUNKS:
        failures.append(f"SIGTERM to rank 1 did not leave an incomplete run: final file {os.path.exists(out)}, "
                        f"{len(left)} of {N_CHUNKS} chunks in the part folder")
    print(f"2 ranks stopped with {len(left)} of {N_CHUNKS} chunks on disk")
    manifest = open(os.path.join(part, "manifest.txt")).read() if os.path.isdir(part) else ""
    # the part folder records no world size: a copy of it is continued by 3 ranks
    out3 = os.path.join(tmp, "stopped3.h5")
    if os.path.isdir(part):
        shutil.copytree(part, out3 + ".part")
    for world, target in ((2, out), (3, out3)):
        r = mpirun(f"{world} ranks resuming", (world, ["synth", *job, f"synth.out={target}"]))
        if r is not None and f"{N_CHUNKS - len(left)} chunks made, {len(left)} reused" not in r.text(0):
            failures.append(f"{world} ranks resuming did not reuse the {len(left)} chunks on disk: "
                            f"{r.text(0)[-400:]}")
        if r is not None and sha(target) != sha(ref):
            failures.append(f"resumed by {world} ranks, the file is not byte for byte the 1-rank file (exit "
                            f"{r.exit})")

    # failures on one rank: every rank exits 1, naming the rank
    bad = os.path.join(tmp, "err.h5")
    r = mpirun("prompts unreadable on rank 1", (1, ["synth", *job, f"synth.out={bad}"]),
               (1, ["synth", *job, f"synth.prompts={tmp}/missing.jsonl", f"synth.out={bad}"]))
    expect_failed(r, "prompts unreadable on rank 1", 2, 1, r"synth\.prompts: .*missing\.jsonl")
    r = mpirun("another temperature on rank 2", (2, ["synth", *job, f"synth.out={bad}"]),
               (1, ["synth", *job, "synth.temperature=0.5", f"synth.out={bad}"]))
    expect_failed(r, "another temperature on rank 2", 3, 2,
                  r"differs from rank 0's \('temperature: 0\.5' here, 'temperature: 0\.9\d*' on rank 0\)")
    # a chunk rank 0 cannot write in the middle of the run: a folder where chunk 7 goes (rank 1 makes it)
    wbad = os.path.join(tmp, "unwritable.h5")
    os.makedirs(os.path.join(wbad + ".part", "chunk-00000007.h5"))
    with open(os.path.join(wbad + ".part", "manifest.txt"), "w") as f:
        f.write(manifest)
    r = mpirun("chunk 7 unwritable on rank 0", (2, ["synth", *job, f"synth.out={wbad}"]))
    expect_failed(r, "chunk 7 unwritable on rank 0", 2, 0, r"chunk-00000007\.h5")
    made = sorted(f for f in os.listdir(wbad + ".part") if f.startswith("chunk-") and f != "chunk-00000007.h5")
    if r is not None and not 0 < len(made) < N_CHUNKS - 1:
        failures.append(f"the write failure did not stop the run midway: {len(made)} other chunks on disk")
    finish(failures, "synth on 2 and 3 ranks: the 1-rank file byte for byte, resumed too; failures stop "
                     "every rank, naming the rank", tmp)


if __name__ == "__main__":
    main()
