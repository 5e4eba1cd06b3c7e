#!/usr/bin/env bash
# Data-parallel training on one CPU machine: the same global batch as (a) 1 rank x 2 threads with
# train.grad_accum=2 and (b) 2 ranks x 1 thread (mpirun -np 2, grad_accum 1), for retort and for PyTorch 2
# (DistributedDataParallel over gloo under torchrun, against 1 process x 2 threads accumulating 2 micro-batches),
# in the same run. Prints tokens/s of each, the 2-rank/1-rank ratio, the time retort's 2 ranks spent in the
# communicator (comm_s in metrics.jsonl) and retort/PyTorch for the 2-rank configuration; appends a record to
# bench/results/dist_cpu.jsonl.
#
#   bench/dist_cpu.sh [STEPS] [BATCH]      (defaults 150 and 64; the first 20 steps are warm-up)
# Model: the embedded tiny.yaml (dim 128, 4 layers, 4 heads, 2 key/value heads, ffn 384, 0.8M parameters),
# T=14 (one addpad problem), BATCH sequences per micro-batch: global batch 2 x BATCH sequences per step.
# PyTorch: $RT_TORCH_PYTHON, else .venv-torch2/bin/python, made here on first use (pip install torch==2.15.0:
# PyPI's wheel carries the CUDA libraries, about 5 GB); RT_BENCH_NO_TORCH=1 skips the PyTorch peer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-150}
batch=${2:-64}
warm=20
./scripts/bootstrap.sh >/dev/null
./scripts/build.sh >/dev/null
retort=${RT_BENCH_RETORT:-./build/retort}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# mpirun as root needs these two; nothing else is set, so mpirun places and binds ranks as it would for a user
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

"$retort" data synth --task addpad --n 40000 --out "$work/train.h5" >/dev/null
common=(data.seq_len=14 "train.batch_size=$batch" "train.steps=$((steps + warm))" train.warmup_steps=10
        train.eval_every=0 checkpoint.every=0 run.log_every=10 "data.train=$work/train.h5" data.val=)
cmd_one=("$retort" train trainer/configs/tiny.yaml "${common[@]}" system.threads=2 train.grad_accum=2)
cmd_two=(mpirun -np 2 "$retort" train trainer/configs/tiny.yaml "${common[@]}" system.threads=1 train.grad_accum=1)
"${cmd_one[@]}" "run.out_dir=$work/one" >/dev/null 2>"$work/one.log"
timeout 600 "${cmd_two[@]}" "run.out_dir=$work/two" >/dev/null 2>"$work/two.log"

torch_py=${RT_TORCH_PYTHON:-$root/.venv-torch2/bin/python}
torch_one="" torch_two="" torch_ver=""
if [[ "${RT_BENCH_NO_TORCH:-0}" != 1 ]]; then
    if [[ -z "${RT_TORCH_PYTHON:-}" && ! -x "$torch_py" ]]; then
        echo "dist_cpu: installing PyTorch 2 into $root/.venv-torch2 (once; about 5 GB)" >&2
        python3 -m venv "$root/.venv-torch2"
        "$torch_py" -m pip install --quiet --disable-pip-version-check torch==2.15.0 numpy
    fi
    peer=(--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 384 --vocab 259 --seq 14 --batch "$batch"
          --steps "$steps" --warmup "$warm")
    torch_one=$(OMP_NUM_THREADS=2 "$torch_py" bench/torch_train.py "${peer[@]}" --threads 2 --accum 2 \
        2>"$work/torch_one.log")
    torch_two=$(OMP_NUM_THREADS=1 timeout 600 "$torch_py" -m torch.distributed.run --standalone --nproc_per_node 2 \
        bench/torch_train.py "${peer[@]}" --threads 1 --accum 1 2>"$work/torch_two.log")
    torch_ver=$("$torch_py" -c 'import torch; print(torch.__version__)')
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

/usr/bin/python3 - "$work" "$warm" "$steps" "$batch" "$torch_one" "$torch_two" "$torch_ver" "$load_start" \
    "$load_end" "bench/dist_cpu.sh${*:+ $*}" "${cmd_one[*]}" "${cmd_two[*]}" <<'PY'
import datetime, json, os, re, subprocess, sys
work, warm, steps, batch, t_one, t_two, torch_ver, load_start, load_end, command, cmd_one, cmd_two = sys.argv[1:]
warm, steps, batch = int(warm), int(steps), int(batch)


def retort_run(name):
    """tokens/s over the train records after the warm-up steps (their tokens over their time), and the time in
    the communicator over the same records"""
    recs = [json.loads(l) for l in open(os.path.join(work, name, "metrics.jsonl"))]
    recs = [r for r in recs if r["type"] == "train"]
    tokens = secs = comm = 0.0
    prev = None
    for r in recs:
        if prev is not None and r["step"] > warm:
            dt = (r["tokens"] - prev["tokens"]) / r["tokens_per_s"]
            tokens += r["tokens"] - prev["tokens"]
            secs += dt
            comm += r.get("comm_s", 0.0)
        prev = r
    return {"tokens_per_s": tokens / secs, "steps_timed": recs[-1]["step"] - warm, "train_s": secs,
            "comm_s": comm, "comm_frac": comm / secs, "final_loss": recs[-1]["loss"]}


one, two = retort_run("one"), retort_run("two")
log = open(os.path.join(work, "one.log")).read()
params = int(re.search(r"model: (\d+) parameters", log).group(1))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
mpi = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
rec = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit, "cpu": cpu,
       "nproc": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end, "mpi": mpi,
       "params": params, "T": 14, "batch_per_micro": batch, "global_batch": 2 * batch, "steps_timed": steps,
       "warmup_steps_skipped": warm,
       "retort_1rank_2threads": one, "retort_2ranks_1thread": two,
       "retort_ratio_2ranks_over_1rank": two["tokens_per_s"] / one["tokens_per_s"],
       "same_final_loss": one["final_loss"] == two["final_loss"],
       "command": command, "retort_cmd_1rank": cmd_one, "retort_cmd_2ranks": cmd_two}
print(f"model: {params} parameters (tiny.yaml), T=14, global batch {2 * batch} sequences per step, "
      f"{steps} timed steps after {warm}; {cpu}, {os.cpu_count()} cores, load {load_start} -> {load_end}")
print(f"retort  1 rank  x 2 threads (grad_accum 2): {one['tokens_per_s']:9.0f} tok/s")
print(f"retort  2 ranks x 1 thread  (mpirun -np 2): {two['tokens_per_s']:9.0f} tok/s   "
      f"communicator {two['comm_s']:.2f} s of {two['train_s']:.2f} s ({100 * two['comm_frac']:.1f}%)")
print(f"retort  2 ranks / 1 rank: {rec['retort_ratio_2ranks_over_1rank']:.2f}x; final loss "
      f"{'identical' if rec['same_final_loss'] else 'differs'} ({one['final_loss']} vs {two['final_loss']})")
if t_one and t_two:
    p1, p2 = json.loads(t_one), json.loads(t_two)
    rec.update({"torch": torch_ver, "pytorch_1proc_2threads_tokens_per_s": p1["tokens_per_s"],
                "pytorch_2proc_ddp_gloo_tokens_per_s": p2["tokens_per_s"],
                "pytorch_ratio_2proc_over_1proc": p2["tokens_per_s"] / p1["tokens_per_s"],
                "retort_over_pytorch_2ranks": two["tokens_per_s"] / p2["tokens_per_s"],
                "retort_over_pytorch_1rank": one["tokens_per_s"] / p1["tokens_per_s"]})
    print(f"pytorch 1 proc  x 2 threads (accum 2)     : {p1['tokens_per_s']:9.0f} tok/s   (torch {torch_ver})")
    print(f"pytorch 2 procs x 1 thread  (DDP, gloo)   : {p2['tokens_per_s']:9.0f} tok/s")
    print(f"pytorch 2 procs / 1 proc: {rec['pytorch_ratio_2proc_over_1proc']:.2f}x")
    print(f"retort / pytorch, 2 ranks: {rec['retort_over_pytorch_2ranks']:.2f}x "
          f"(1 rank x 2 threads: {rec['retort_over_pytorch_1rank']:.2f}x)")
else:
    rec["torch"] = None
    print("pytorch: skipped (no PyTorch 2)")
os.makedirs(os.path.join("bench", "results"), exist_ok=True)
with open(os.path.join("bench", "results", "dist_cpu.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
