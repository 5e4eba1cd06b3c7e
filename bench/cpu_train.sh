#!/usr/bin/env bash
# CPU training throughput: retort vs PyTorch on the same model, batch, sequence length and threads, in the
# same run. Prints tokens/s for both, the ratio, both GFLOP/s against the sgemm peak retort measures at start,
# and both peak resident memories; appends the result to bench/results/cpu_train.jsonl.
#
#   bench/cpu_train.sh [STEPS] [THREADS]
# Model: dim 256, 4 layers, 8 heads, ffn 688, byte vocabulary (3.2M parameters), B=8, T=256.
# Debian's OpenBLAS 0.3.21 does not recognise some newer CPUs and falls back to its Haswell (AVX2) kernels;
# set OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines to get the faster sgemm (the script reports which ran).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-30}
threads=${2:-$(nproc)}
./scripts/bootstrap.sh test >/dev/null
./scripts/build.sh >/dev/null
retort=./build/retort
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$retort data synth --task kv --n 20000 --out "$work/train.h5" >/dev/null
dims=(model.dim=256 model.n_layers=4 model.n_heads=8 model.n_kv_heads=8 model.ffn_dim=688 model.max_seq_len=256
      data.seq_len=256 train.batch_size=8 train.grad_accum=1)
# peak resident memory of a child process, in MiB, printed on the last line of stderr
maxrss=(/usr/bin/python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("peak_rss_mib %.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024), file=sys.stderr)
sys.exit(rc)')
"${maxrss[@]}" $retort train trainer/configs/tiny.yaml "${dims[@]}" "train.steps=$steps" train.warmup_steps=2 \
    train.eval_every=0 checkpoint.every=0 run.log_every=1 "system.threads=$threads" "data.train=$work/train.h5" \
    data.val= "run.out_dir=$work/run" >/dev/null 2>"$work/train.log"
retort_mib=$(grep -o "peak_rss_mib [0-9.]*" "$work/train.log" | grep -o "[0-9.]*$")
# skip the first 3 steps (warm-up), average the rest
retort_tps=$(/usr/bin/python3 - "$work/run/metrics.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
recs = recs[3:]
print(sum(r["tokens_per_s"] for r in recs) / len(recs))
PY
)
peak=$(grep -o "matmul peak [0-9.]* GFLOP/s" "$work/train.log" | grep -o "[0-9.]*" | head -1)
flops=$(grep -o "[0-9.]* MFLOP per training token" "$work/train.log" | grep -o "^[0-9.]*")
params=$(grep -o "model: [0-9]* parameters" "$work/train.log" | grep -o "[0-9]*")
torch_json=$(OMP_NUM_THREADS=$threads "${maxrss[@]}" /usr/bin/python3 bench/torch_train.py --steps "$steps" \
    --threads "$threads" 2>"$work/torch.log")
torch_tps=$(echo "$torch_json" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
torch_ver=$(echo "$torch_json" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["torch"])')
torch_mib=$(grep -o "peak_rss_mib [0-9.]*" "$work/torch.log" | grep -o "[0-9.]*$")
coretype=${OPENBLAS_CORETYPE:-auto}
/usr/bin/python3 - "$retort_tps" "$torch_tps" "$peak" "$flops" "$params" "$threads" "$steps" "$coretype" \
    "$retort_mib" "$torch_mib" "$torch_ver" "bench/cpu_train.sh $*" <<'PY'
import datetime, json, os, platform, subprocess, sys
rt, pt, peak, mflop, params, threads, steps, core, rt_mib, pt_mib, torch_ver, command = sys.argv[1:]
rt, pt, peak, mflop = float(rt), float(pt), float(peak), float(mflop)
gflops = rt * mflop / 1e3
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"model: {params} parameters, B=8, T=256, {threads} threads, {steps} steps, OPENBLAS_CORETYPE={core}")
print(f"retort : {rt:10.0f} tok/s   {gflops:6.1f} GFLOP/s = {100 * gflops / peak:4.1f}% of measured sgemm peak {peak:.1f}")
print(f"pytorch: {pt:10.0f} tok/s    {pt * mflop / 1e3:6.1f} GFLOP/s = {100 * pt * mflop / 1e3 / peak:4.1f}% "
      f"(torch {torch_ver})")
print(f"ratio  : {rt / pt:.2f}x")
print(f"peak RSS: retort {float(rt_mib):.0f} MiB, pytorch {float(pt_mib):.0f} MiB")
rec = {"date": datetime.date.today().isoformat(), "commit": commit, "cpu": cpu, "threads": int(threads),
       "openblas_coretype": core, "params": int(params), "B": 8, "T": 256, "steps": int(steps),
       "retort_tokens_per_s": round(rt, 1), "pytorch_tokens_per_s": round(pt, 1), "ratio": round(rt / pt, 3),
       "retort_gflops": round(gflops, 2), "sgemm_peak_gflops": peak, "retort_peak_rss_mib": float(rt_mib),
       "pytorch_peak_rss_mib": float(pt_mib), "torch": torch_ver, "command": command}
os.makedirs(os.path.join("bench", "results"), exist_ok=True)
with open(os.path.join("bench", "results", "cpu_train.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
