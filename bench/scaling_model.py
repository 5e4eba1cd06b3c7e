#!/usr/bin/env python3
"""Data-parallel scaling model for a 124M-parameter GPT-2-small-sized retort model on 1..8 GPUs.

A model, not a measurement: every bandwidth, latency, peak and MFU below is an assumption with its source
(ASSUMPTIONS), and each one is a command-line parameter. For N ranks it computes the gradient bytes of a
step, the ring all-reduce time over NVLink (one node) and over InfiniBand (ranks on separate nodes), the
compute time of a step, and the per-GPU efficiency compute / (compute + exposed communication) for three
ways of reducing the gradients:

  per-tensor  one all-reduce per parameter tensor after the backward pass (what trainer/train_loop.c does
              today), each call paying the latency term;
  flat        one all-reduce of all gradients in one buffer after the backward pass;
  overlap     per-layer buckets reduced on a second stream while the backward pass goes on (simulated: a
              bucket starts when its layer's backward is done and the previous bucket's reduction is).

docs/scaling.md explains the formulas. Standard library only.

usage: python3 bench/scaling_model.py [--json] [--mfu 0.4] [--micro-batch 16] [--grad-accum 1] ...
"""
import argparse
import json
import math
import sys

# Where each default comes from. "spec" = a vendor's data-sheet figure; "typical measured" = what NCCL's
# own benchmark (nccl-tests) reaches, as NVIDIA's NCCL developers state it, not measured by us; "model" = a
# constant of NCCL's own cost model; "assumed" = our choice; "derived" = follows from the FLOP count.
ASSUMPTIONS = {
    "peak_tflops": ("spec", "H100 SXM5 bf16 dense tensor-core peak, 989 TFLOP/s (NVIDIA H100 data sheet: "
                    "1,979 with 2:4 sparsity, half that dense); the same figure as csrc/train/peak.c"),
    "mfu": ("assumed", "model FLOPs utilisation of the compute, 40%, the same for every kernel: our choice, "
            "not a measurement (retort's MFU on an H100 at this size is not measured yet); a higher MFU "
            "shortens the compute and so lowers every efficiency"),
    "nvlink_busbw": ("typical measured", "370 GB/s: NCCL ring all-reduce bus bandwidth on 8x H100 SXM (NVLink 4 "
                     "through NVSwitch), as NCCL's maintainer states it (github.com/NVIDIA/nccl-tests "
                     "issue 212): the line rate is 450 GB/s per direction per GPU (18 links, the 900 GB/s "
                     "bidirectional of the data sheet), about 20% goes to protocol overhead; NVLink SHARP "
                     "(NVLS, the default for all-reduce since NCCL 2.17) reports ~480 GB/s busbw on 8 GPUs; taken as the "
                     "same for 2..8 GPUs (NVSwitch gives every GPU its full NVLink bandwidth)"),
    "ib_busbw": ("typical measured", "46 GB/s per NDR NIC: NDR InfiniBand is 400 Gb/s = 50 GB/s per port and "
                 "direction (spec); NVIDIA's NCCL team quotes 46-48 GB/s per NIC for all_reduce_perf "
                 "(github.com/NVIDIA/nccl-tests issue 290, CX-7 at NDR)"),
    "nvlink_alpha_us": ("model", "3.4 us per ring step over NVLink: NCCL's tuning model, hwLat "
                        "[NVLINK][Ring][Simple] in src/graph/tuning.cc (NCCL 2.x; later releases retuned it)"),
    "ib_alpha_us": ("model", "9.6 us per ring step over the network: NCCL's tuning model, hwLat "
                    "[NET][Ring][Simple]"),
    "call_us": ("model", "8.4 us per collective call: NCCL's tuning model, baseLat[Ring][Simple]"),
    "micro_batch": ("assumed", "16 windows of seq_len tokens per GPU per micro-batch"),
    "backward_share": ("derived", "backward = 2/3 of the compute: 4 of the 6 FLOPs per matmul parameter "
                       "and 8 of the 12 L C T attention FLOPs (docs/training.md, FLOPs per token)"),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the raw record as JSON instead of the tables")
    m = p.add_argument_group("model (GPT-2 small sized, Llama-style)")
    m.add_argument("--dim", type=int, default=768)
    m.add_argument("--layers", type=int, default=12)
    m.add_argument("--heads", type=int, default=12)
    m.add_argument("--kv-heads", type=int, default=12, help="key/value heads (GQA when below --heads)")
    m.add_argument("--ffn", type=int, default=0, help="SwiGLU width; 0 = 8/3 dim rounded up to a multiple of 256")
    m.add_argument("--vocab", type=int, default=50257)
    m.add_argument("--seq-len", type=int, default=1024)
    m.add_argument("--untied", action="store_true", help="a separate output head instead of tied embeddings")
    r = p.add_argument_group("run")
    r.add_argument("--max-gpus", type=int, default=8)
    r.add_argument("--micro-batch", type=int, default=16, help="windows per GPU per micro-batch")
    r.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per optimizer step; the reduction happens once per step")
    r.add_argument("--target", type=float, default=0.95, help="per-GPU efficiency goal")
    h = p.add_argument_group("hardware assumptions (see ASSUMPTIONS in the script for sources)")
    h.add_argument("--peak-tflops", type=float, default=989.0)
    h.add_argument("--mfu", type=float, default=0.40)
    h.add_argument("--nvlink-busbw", type=float, default=370.0, help="GB/s, ring all-reduce bus bandwidth")
    h.add_argument("--ib-busbw", type=float, default=46.0, help="GB/s per NIC")
    h.add_argument("--ib-gpus-per-node", type=int, default=1,
                   help="GPUs (each with its own NIC) per node in the InfiniBand case; ranks spread evenly over the "
                        "fewest nodes")
    h.add_argument("--nvlink-alpha-us", type=float, default=3.4)
    h.add_argument("--ib-alpha-us", type=float, default=9.6)
    h.add_argument("--call-us", type=float, default=8.4)
    a = p.parse_args(argv)
    if a.ffn == 0:
        a.ffn = 256 * math.ceil(8 * a.dim / 3 / 256)
    for name in ("dim", "layers", "heads", "kv_heads", "ffn", "vocab", "seq_len", "max_gpus", "micro_batch",
                 "grad_accum", "ib_gpus_per_node"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.dim % a.heads or a.heads % a.kv_heads:
        p.error("--dim must be a multiple of --heads and --heads a multiple of --kv-heads")
    for name in ("peak_tflops", "mfu", "nvlink_busbw", "ib_busbw"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return a


def model_sizes(a):
    """Parameter counts as retort lays the model out (docs/design.md: no biases, RMSNorm weights only)."""
    C, L, V, F = a.dim, a.layers, a.vocab, a.ffn
    D = C // a.heads
    kv = a.kv_heads * D
    layer_mm = C * C + 2 * C * kv + C * C + 3 * C * F  # q, k, v, o, gate, up, down
    layer = layer_mm + 2 * C  # + attn_norm, ffn_norm
    embd = V * C
    total = embd + L * layer + C + (0 if not a.untied else embd)  # + output_norm (+ output.weight)
    # Matmul parameters (rt_model_train_flops_per_token): every matrix but the lookup, plus the head, which
    # is the embedding table once more when tied.
    n_mm = L * layer_mm + embd
    flops_tok = 6 * n_mm + 12 * L * C * a.seq_len
    # The tensors in the order the backward pass finishes them: the head (untied: its own bucket), the
    # output norm, layers L-1 .. 0, the embedding (tied: the lookup's part comes last, so the whole table
    # waits for the end).
    tensors = [C] + [C * C, C * kv, C * kv, C * C, C * F, C * F, F * C, C, C] * L + [embd]
    if a.untied:
        tensors.append(embd)
    assert sum(tensors) == total
    return {"head_dim": D, "kv_dim": kv, "layer_matmul": layer_mm, "layer": layer, "embedding": embd,
            "total": total, "matmul": n_mm, "flops_per_token": flops_tok, "tensors": len(tensors),
            "tensor_sizes": tensors}


def link(a, kind, n):
    """(bus bandwidth B/s, latency of one ring all-reduce call s, nodes) for n ranks."""
    if n == 1:
        return None
    per_node = 8 if kind == "nvlink" else a.ib_gpus_per_node
    nodes = math.ceil(n / per_node)
    steps = 2 * (n - 1)
    if nodes == 1:
        return a.nvlink_busbw * 1e9, (a.call_us + steps * a.nvlink_alpha_us) * 1e-6, 1
    # Ranks spread evenly over the fewest nodes, one NIC per GPU: the ring's traffic between nodes goes
    # through as many NICs as the emptiest node has GPUs.
    nics = n // nodes
    busbw = min(a.nvlink_busbw, nics * a.ib_busbw) if per_node > 1 else a.ib_busbw
    inter = 2 * (nodes - 1)
    lat = a.call_us + inter * a.ib_alpha_us + (steps - inter) * a.nvlink_alpha_us
    return busbw * 1e9, lat * 1e-6, nodes


def ring_allreduce(nbytes, n, lk):
    """Ring all-reduce: every rank sends and receives 2 (n-1)/n of the buffer, plus the latency term."""
    if n == 1:
        return 0.0
    busbw, lat, _ = lk
    return 2 * (n - 1) / n * nbytes / busbw + lat


def buckets(a, s):
    """(parameters, index of the backward stage after which it is ready) per bucket, in backward order.
    Stage 0 is the head's backward, stage 1 + i is layer L-1-i's, and the last layer's bucket carries the
    output norm; the embedding (tied) is ready after the last stage."""
    L, C = a.layers, a.dim
    out = []
    if a.untied:
        out.append((s["embedding"], 0))
    for i in range(L):
        out.append((s["layer"] + (C if i == 0 else 0), 1 + i))
    out.append((s["embedding"], L))
    return out


def overlap_exposed(a, s, n, lk, bytes_per):
    """Exposed reduction time when per-layer buckets are reduced on a second stream during the last
    micro-batch's backward. Stage times are proportional to their backward FLOPs at the same rate."""
    if n == 1:
        return 0.0, 0.0
    toks = a.micro_batch * a.seq_len
    rate = a.peak_tflops * 1e12 * a.mfu
    C, T = a.dim, a.seq_len
    head = 4 * a.vocab * C * toks / rate
    layer = (4 * s["layer_matmul"] + 8 * C * T) * toks / rate
    ends = [head + k * layer for k in range(a.layers + 1)]  # end of stage k
    bwd_end = ends[-1]
    free = 0.0
    last = 0.0
    for params, stage in buckets(a, s):
        start = max(ends[stage], free)
        last = ring_allreduce(params * bytes_per, n, lk)
        free = start + last
    return max(0.0, free - bwd_end), last


def step(a, s, kind, n, accum):
    toks = a.micro_batch * a.seq_len
    rate = a.peak_tflops * 1e12 * a.mfu
    t_micro = toks * s["flops_per_token"] / rate
    compute = accum * t_micro
    lk = link(a, kind, n)
    row = {"gpus": n, "nodes": lk[2] if lk else 1, "compute_ms": compute * 1e3,
           "busbw_GBps": lk[0] / 1e9 if lk else None, "latency_per_call_us": lk[1] * 1e6 if lk else 0.0}
    for dt, bpe in (("fp32", 4), ("bf16", 2)):
        nbytes = s["total"] * bpe
        flat = ring_allreduce(nbytes, n, lk)
        per_tensor = sum(ring_allreduce(t * bpe, n, lk) for t in s["tensor_sizes"])
        exposed, last = overlap_exposed(a, s, n, lk, bpe)
        row[dt] = {
            "grad_bytes": nbytes,
            "bus_bytes_per_gpu": 2 * (n - 1) / n * nbytes,
            "allreduce_flat_ms": flat * 1e3,
            "allreduce_per_tensor_ms": per_tensor * 1e3,
            "overlap_exposed_ms": exposed * 1e3,
            "overlap_last_bucket_ms": last * 1e3,
            "eff_per_tensor": compute / (compute + per_tensor),
            "eff_flat": compute / (compute + flat),
            "eff_overlap": compute / (compute + exposed),
        }
    return row


STRATEGIES = (("eff_per_tensor", "no overlap, one all-reduce per tensor (retort today)"),
              ("eff_flat", "no overlap, one flat buffer"),
              ("eff_overlap", "overlap, per-layer buckets during backward"))
KINDS = ("nvlink", "ib")


def min_accum(a, s, kind, dt, key):
    """The smallest grad_accum at which every GPU count reaches the target (None: not within 4096). The
    efficiency grows with grad_accum, so doubling then bisecting finds it."""
    def meets(acc):
        return min(step(a, s, kind, n, acc)[dt][key] for n in range(1, a.max_gpus + 1)) >= a.target
    hi = 1
    while not meets(hi):
        hi *= 2
        if hi > 4096:
            return None
    lo = hi // 2  # fails (or 0 when hi is 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if meets(mid) else (mid, hi)
    return hi


def build(a):
    s = model_sizes(a)
    rows = {k: [step(a, s, k, n, a.grad_accum) for n in range(1, a.max_gpus + 1)] for k in KINDS}
    verdicts = []
    for k in KINDS:
        for dt in ("fp32", "bf16"):
            for key, label in STRATEGIES:
                effs = [r[dt][key] for r in rows[k]]
                worst = min(effs)
                at = effs.index(worst) + 1
                acc = min_accum(a, s, k, dt, key)
                verdicts.append({"interconnect": k, "dtype": dt, "strategy": key, "label": label,
                                 "min_eff": worst, "at_gpus": at, "meets": worst >= a.target,
                                 "min_grad_accum_for_target": acc})
    args = {k: v for k, v in vars(a).items() if k != "json"}
    return {"model": {k: v for k, v in s.items() if k != "tensor_sizes"}, "args": args,
            "assumptions": {k: {"kind": v[0], "source": v[1]} for k, v in ASSUMPTIONS.items()},
            "rows": rows, "verdicts": verdicts}


def pct(x):
    return f"{100 * x:6.2f}%"


def report(a, rec):
    s = rec["model"]
    C, L, V, F, T = a.dim, a.layers, a.vocab, a.ffn, a.seq_len
    out = []
    w = out.append
    w(f"Model: dim {C}, {L} layers, {a.heads} heads ({a.kv_heads} kv), head dim {s['head_dim']}, SwiGLU ffn {F}, "
      f"vocab {V}, {'untied' if a.untied else 'tied'} embeddings, seq_len {T}")
    w(f"  per layer: 4 attention matrices {C*C + 2*C*s['kv_dim'] + C*C:,} + 3 SwiGLU matrices {3*C*F:,}"
      f" + 2 norms {2*C:,} = {s['layer']:,}")
    head = f" + {s['embedding']:,}" if a.untied else ""
    w(f"  parameters P = V C + L (2 C^2 + 2 C kvdim + 3 C F + 2 C) + C{' + V C' if a.untied else ''}"
      f" = {s['embedding']:,} + {L} x {s['layer']:,} + {C}{head} = {s['total']:,} ({s['total'] / 1e6:.2f}M),"
      f" in {s['tensors']} tensors")
    w(f"  FLOPs per token = 6 N_mm + 12 L C T = 6 x {s['matmul']:,} + 12 x {L} x {C} x {T}"
      f" = {s['flops_per_token']:,}")
    toks = a.micro_batch * T
    w(f"Step: {a.micro_batch} x {T} = {toks:,} tokens per GPU per micro-batch, grad_accum {a.grad_accum}; "
      f"compute at {a.peak_tflops:g} TFLOP/s x MFU {a.mfu:g} = {a.peak_tflops * a.mfu:g} TFLOP/s")
    w(f"Gradient bytes per step: fp32 {s['total'] * 4:,} B ({s['total'] * 4 / 1e6:.1f} MB), "
      f"bf16 {s['total'] * 2:,} B ({s['total'] * 2 / 1e6:.1f} MB)")
    w("  ZeRO-1 (train.zero=1): reduce-scatter of the gradients + all-gather of the weights moves the same bus"
      " bytes as one all-reduce (fp32 weights; 0.75x with bf16 ones), but the all-gather follows the update")
    w("Ring all-reduce: t = 2 (N-1)/N x bytes / busbw + call + 2 (N-1) x alpha per call")
    w(f"  NVLink: busbw {a.nvlink_busbw:g} GB/s, alpha {a.nvlink_alpha_us:g} us, call {a.call_us:g} us "
      f"(one node, NVSwitch)")
    ib_where = ("one GPU per node, one NDR NIC each" if a.ib_gpus_per_node == 1 else
                f"{a.ib_gpus_per_node} GPUs per node, one NDR NIC per GPU; NVLink inside a node")
    w(f"  InfiniBand: {a.ib_busbw:g} GB/s per NIC, alpha {a.ib_alpha_us:g} us, call {a.call_us:g} us ({ib_where})")
    w("")
    names = {"nvlink": "NVLink (H100 SXM, one node of up to 8 GPUs)", "ib": f"InfiniBand NDR ({ib_where})"}
    for k in KINDS:
        w(f"== {names[k]}")
        w(" N nodes busbw lat/call bus MB/GPU  AR fp32  AR bf16  compute  exposed | per-tensor    flat     flat  overlap  overlap")
        w("        GB/s      us       fp32       ms       ms       ms  fp32 ms |       fp32    fp32     bf16     fp32     bf16")
        for r in rec["rows"][k]:
            f32, b16 = r["fp32"], r["bf16"]
            bw = f"{r['busbw_GBps']:5.0f}" if r["busbw_GBps"] else "    -"
            w(f"{r['gpus']:2d} {r['nodes']:5d} {bw} {r['latency_per_call_us']:8.1f} {f32['bus_bytes_per_gpu'] / 1e6:10.1f}"
              f" {f32['allreduce_flat_ms']:8.3f} {b16['allreduce_flat_ms']:8.3f} {r['compute_ms']:8.2f}"
              f" {f32['overlap_exposed_ms']:8.3f} |    {pct(f32['eff_per_tensor'])} {pct(f32['eff_flat'])}"
              f"  {pct(b16['eff_flat'])}  {pct(f32['eff_overlap'])}  {pct(b16['eff_overlap'])}")
        w("")
    w(f"Verdicts: is per-GPU efficiency >= {100 * a.target:g}% for every N in 1..{a.max_gpus} "
      f"(grad_accum {a.grad_accum})?")
    for v in rec["verdicts"]:
        acc = v["min_grad_accum_for_target"]
        need = ("" if v["meets"] else
                f"; reached from grad_accum {acc}" if acc else "; not reached within grad_accum 4096")
        w(f"  {'YES' if v['meets'] else 'NO '} {v['interconnect']:6s} {v['dtype']} {v['label']:52s}"
          f" worst {pct(v['min_eff'])} at N={v['at_gpus']}{need}")
    return "\n".join(out)


def main(argv):
    a = parse_args(argv)
    rec = build(a)
    if a.json:
        json.dump(rec, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(report(a, rec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
