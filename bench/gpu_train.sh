#!/usr/bin/env bash
# GPU training throughput: retort vs PyTorch (eager + SDPA, and torch.compile) on the same 124M-class Llama
# student on one GPU, in the same run. Prints tokens/s, MFU against a bf16 GEMM peak measured in the run, and
# peak GPU memory for each, and appends a record to bench/results/gpu_train.jsonl.
#
#   bench/gpu_train.sh [STEPS] [BATCH]         (RT_BENCH_RETORT: the retort binary; default build/retort)
# Model: 12 layers, width 768, 12 heads (head dim 64), SwiGLU 2048, vocabulary 32768, tied head, T=1024.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-30}
batch=${2:-16}
retort=${RT_BENCH_RETORT:-$root/build/retort}
python=${RT_PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"; [[ -n "${poll:-}" ]] && kill "$poll" 2>/dev/null' EXIT

if ! "$retort" --version | grep -q "gpu: yes"; then
    echo "gpu_train: $retort has no usable GPU:" >&2
    "$retort" --version >&2
    exit 1
fi
"$retort" data synth --task kv --n 120000 --out "$work/train.h5" >/dev/null
dims=(model.vocab_size=32768 model.dim=768 model.n_layers=12 model.n_heads=12 model.n_kv_heads=12
      model.ffn_dim=2048 model.max_seq_len=1024 data.seq_len=1024 "train.batch_size=$batch" train.grad_accum=1)

# peak memory of a process as nvidia-smi sees it (the whole footprint: context, workspace, caches)
poll_mem() {
    local pid=$1 file=$2 peak=0 used
    while kill -0 "$pid" 2>/dev/null; do
        used=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
               awk -F', ' -v p="$pid" '$1 == p {print $2}')
        [[ -n "$used" && "$used" -gt "$peak" ]] && peak=$used
        echo "$peak" >"$file"
        sleep 0.2
    done
}

"$retort" train trainer/configs/tiny.yaml "${dims[@]}" "train.steps=$((steps + 5))" train.warmup_steps=2 \
    train.eval_every=0 checkpoint.every=0 run.log_every=1 system.device=cuda system.precision=bf16 \
    "data.train=$work/train.h5" data.val= "run.out_dir=$work/run" >/dev/null 2>"$work/train.log" &
rpid=$!
poll_mem "$rpid" "$work/retort_mem" &
poll=$!
wait "$rpid" || { cat "$work/train.log" >&2; exit 1; }
wait "$poll" 2>/dev/null || true
retort_tps=$("$python" - "$work/run/metrics.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l][5:]  # skip warm-up steps
print(sum(r["tokens_per_s"] for r in recs) / len(recs))
PY
)
flops=$(grep -o "[0-9.]* MFLOP per training token" "$work/train.log" | grep -o "^[0-9.]*")
params=$(grep -o "model: [0-9]* parameters" "$work/train.log" | grep -o "[0-9]*")
retort_peak=$(grep -o "matmul peak [0-9.]* GFLOP/s" "$work/train.log" | grep -o "[0-9.]*" | head -1)
memline=$(grep "^memory:" "$work/train.log" || true)

"$python" bench/torch_gpu_train.py --batch "$batch" --steps "$steps" >"$work/torch.jsonl"
"$python" - "$retort_tps" "$flops" "$params" "$retort_peak" "$(cat "$work/retort_mem" 2>/dev/null || echo 0)" \
    "$work/torch.jsonl" "$batch" "$steps" "$memline" "bench/gpu_train.sh $*" <<'PY'
import datetime, json, os, subprocess, sys
rt_tps, mflop, params, rt_peak, rt_mem, torch_file, batch, steps, memline, command = sys.argv[1:]
rt_tps, mflop, rt_peak = float(rt_tps), float(mflop), float(rt_peak) * 1e9
recs = [json.loads(l) for l in open(torch_file)]
peak = recs[0]["bf16_gemm_peak_tflops"] * 1e12
gpu = recs[0]["gpu"]
rt_mfu = rt_tps * mflop * 1e6 / peak
print(f"{gpu}: bf16 GEMM peak {peak / 1e12:.0f} TFLOP/s (PyTorch, 8192^3); retort measured {rt_peak / 1e12:.0f}")
print(f"model: {params} parameters, B={batch}, T=1024, {mflop:.0f} MFLOP per token")
print(f"retort          : {rt_tps:10.0f} tok/s   MFU {100 * rt_mfu:5.1f}%   peak GPU memory {float(rt_mem):7.0f} MiB")
print(f"                  {memline}")
best = None
for r in recs[1:]:
    if "error" in r:
        print(f"pytorch {r['variant']:8s}: failed: {r['error']}")
        continue
    print(f"pytorch {r['variant']:8s}: {r['tokens_per_s']:10.0f} tok/s   MFU {100 * r['mfu']:5.1f}%   "
          f"peak allocated {r['peak_mem_mib']:7.0f} MiB   ratio retort/this {rt_tps / r['tokens_per_s']:.2f}x")
    if best is None or r["tokens_per_s"] > best["tokens_per_s"]:
        best = r
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
rec = {"date": datetime.date.today().isoformat(), "commit": commit, "gpu": gpu, "params": int(params),
       "B": int(batch), "T": 1024, "steps": int(steps), "bf16_gemm_peak_tflops": round(peak / 1e12, 1),
       "retort_tokens_per_s": round(rt_tps), "retort_mfu": round(rt_mfu, 4), "retort_peak_mem_mib": float(rt_mem),
       "pytorch": recs[1:], "ratio_vs_best_pytorch": round(rt_tps / best["tokens_per_s"], 3) if best else None,
       "command": command}
os.makedirs("bench/results", exist_ok=True)
with open("bench/results/gpu_train.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
