#!/usr/bin/env bash
# Where a CPU training step's time goes: `perf record` (cycles, every thread) on retort training
# bench/cpu_train.sh's model, grouped into oneDNN's generated kernels (the GEMMs), retort's ops (by function,
# OpenMP outlined bodies folded into their op), the OpenMP runtime, the rest of oneDNN, the kernel and
# everything else. Prints the table and appends a record to bench/results/cpu_profile.jsonl.
#
#   bench/cpu_profile.sh [PRECISION] [STEPS] [THREADS]     fp32 (default) or bf16; 40 steps; all CPUs
# The samples cover the whole run, so start-up (data, weight init) and the final checkpoint write are in
# them too: with 40 steps they are a few percent, under "kernel" and "other". Needs perf (Debian: linux-perf)
# and a kernel that lets this user sample (perf_event_paranoid <= 1, or root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
precision=${1:-fp32}
steps=${2:-40}
threads=${3:-$(nproc)}
if ! command -v perf >/dev/null 2>&1; then
    echo "cpu_profile: perf is not installed (Debian: apt-get install linux-perf)" >&2
    exit 1
fi
./scripts/build.sh >/dev/null
retort=./build/retort
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$retort data synth --task kv --n 20000 --out "$work/train.h5" >/dev/null
perf record -q -o "$work/perf.data" -- $retort train trainer/configs/tiny.yaml model.dim=256 model.n_layers=4 \
    model.n_heads=8 model.n_kv_heads=8 model.ffn_dim=688 model.max_seq_len=256 data.seq_len=256 \
    train.batch_size=8 train.grad_accum=1 "train.steps=$steps" train.warmup_steps=2 train.eval_every=0 \
    checkpoint.every=0 run.log_every=1 "system.threads=$threads" "system.precision=$precision" \
    "data.train=$work/train.h5" data.val= "run.out_dir=$work/run" >/dev/null 2>"$work/train.log"
# shares by library, then retort's own functions (as shares of all samples)
perf report -q -i "$work/perf.data" --no-children --sort dso --stdio >"$work/dso.txt" 2>/dev/null
perf report -q -i "$work/perf.data" --no-children --dsos retort --sort sym --stdio --percentage absolute \
    >"$work/retort.txt" 2>/dev/null

/usr/bin/python3 - "$work/dso.txt" "$work/retort.txt" "$work/train.log" "$precision" "$steps" "$threads" \
    "bench/cpu_profile.sh $*" <<'PY'
import collections, datetime, json, os, platform, re, subprocess, sys
dso_report, retort_report, log, precision, steps, threads, command = sys.argv[1:]
groups = collections.Counter()
for line in open(dso_report):
    m = re.match(r"\s*([0-9.]+)%\s+(.*\S)", line)
    if not m:
        continue
    share, dso = float(m.group(1)), m.group(2)
    if dso.startswith("[JIT]"):
        key = "oneDNN generated kernels (GEMMs)"
    elif dso == "retort":
        continue  # by function below
    elif dso.startswith("libgomp"):
        key = "OpenMP runtime (libgomp)"
    elif dso.startswith("libdnnl"):
        key = "oneDNN library (not generated code)"
    elif dso.startswith("[kernel"):
        key = "kernel"
    else:
        key = "other libraries"
    groups[key] += share
retort_total = 0.0
for line in open(retort_report):
    m = re.match(r"\s*([0-9.]+)%\s+\[.\]\s+(\S+)", line)
    if m:
        share = float(m.group(1))
        groups["retort " + re.sub(r"\._omp_fn\.\d+$", "", m.group(2))] += share
        retort_total += share
tps = re.findall(r"([0-9]+) tok/s", open(log).read())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"{cpu}; bench/cpu_train.sh's model, {precision}, {steps} steps, {threads} threads"
      + (f", last step {tps[-1]} tok/s" if tps else ""))
top = {}
for key, share in groups.most_common():
    if share < 0.3 and key.startswith("retort "):
        continue
    top[key] = round(share, 2)
    print(f"{share:6.2f}%  {key}")
print(f"{retort_total:6.2f}%  all of retort's own code")
rec = {"date": datetime.date.today().isoformat(), "commit": commit, "cpu": cpu, "precision": precision,
       "steps": int(steps), "threads": int(threads), "command": command, "retort_total": round(retort_total, 2),
       "shares": top}
os.makedirs(os.path.join("bench", "results"), exist_ok=True)
with open(os.path.join("bench", "results", "cpu_profile.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
