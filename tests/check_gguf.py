"""`retort export --format gguf` checked by the `gguf` package (llama.cpp's gguf-py, the reference reader):
- every type (f32, f16, bf16, q8_0, q4_0, q6_k) of a tied and an untied model: every llama key with the
  exact value type llama.cpp demands, the gpt2 byte vocabulary (token id == byte, GPT-2 byte-to-unicode
  strings, control tokens), every tensor with its GGUF shape, no output.weight when tied, and the
  dequantized values (gguf.quants) against the checkpoint after the Q/K row permutation of
  convert_hf_to_gguf.py, within each type's error; q8_0 and q4_0 bytes equal gguf-py's own quantizer;
- a LoRA adapter GGUF (general.type adapter, alpha with llama.cpp's alpha / rank = retort's scale, the
  B rows of q and k permuted) and an adapter checkpoint exported merged (equal to `retort merge`);
- the options of imported architectures: q/k/v biases with linear RoPE scaling as qwen2 (rope.scaling keys,
  nothing permuted), and biases with head_dim 12 != 64 / 4 and llama3 scaling as llama (attention.key_length
  and value_length, q/k weights and biases permuted, rope_freqs.weight equal to the factors llama.cpp's
  convert_hf_to_gguf.py computes, written here in NumPy from its definition);
- `retort inspect` reads every file, and damaged files (truncated, mutated bytes, impossible counts and
  offsets) are refused with an error, never a crash.

usage: check_gguf.py   (RETORT_BIN, RT_SOURCE_DIR from ctest; gguf from .pydeps, see scripts/bootstrap.sh)"""
import os
import random
import subprocess
import tempfile

import h5py
import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize, quantize
from gguf.constants import GGMLQuantizationType as QT

from checklib import finish, run_retort

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
H, KVH, C, FF = 4, 2, 64, 256
MODEL = [f"model.dim={C}", "model.n_layers=2", f"model.n_heads={H}", f"model.n_kv_heads={KVH}",
         f"model.ffn_dim={FF}", "model.max_seq_len=32"]
COMMON = ["data.seq_len=32", "train.batch_size=4", "train.warmup_steps=2", "train.eval_every=0", "data.val=",
          "system.threads=2", "run.log_every=5"]
TYPES = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0, "q6_k": QT.Q6_K}
failures = []


def run(args, expect=0, what=None):
    return run_retort(failures, args, expect, what, timeout=120, tail=800)


def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: rotate-half rows to llama.cpp's adjacent pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(r, key):
    f = r.fields.get(key)
    if f is None:
        failures.append(f"missing key {key}")
    return f


def scalar(r, key, vtype):
    f = field(r, key)
    if f is None:
        return None
    if f.types != [vtype]:
        failures.append(f"{key}: type {f.types}, llama.cpp needs {vtype}")
    v = f.parts[f.data[0]]
    return bytes(v).decode() if vtype == GGUFValueType.STRING else v[0]


def weights(ckpt):
    with h5py.File(ckpt, "r") as f:
        return {k: f["model"][k][()] for k in f["model"]}


def expected(w):
    """The checkpoint's tensors as GGUF stores them (Q/K permuted)."""
    out = {}
    for k, v in w.items():
        if k.endswith("attn_q.weight"):
            v = permute(v, H)
        elif k.endswith("attn_k.weight"):
            v = permute(v, KVH)
        out[k] = v
    return out


def check_model_file(path, w, type_name, tied, tag):
    r = GGUFReader(path)
    for key, want in (("general.architecture", "llama"), ("tokenizer.ggml.model", "gpt2"),
                      ("tokenizer.ggml.pre", "default")):
        if scalar(r, key, GGUFValueType.STRING) != want:
            failures.append(f"{tag}: {key} is not {want}")
    for key, want in (("llama.context_length", 32), ("llama.embedding_length", C), ("llama.block_count", 2),
                      ("llama.feed_forward_length", FF), ("llama.attention.head_count", H),
                      ("llama.attention.head_count_kv", KVH), ("llama.rope.dimension_count", C // H),
                      ("tokenizer.ggml.bos_token_id", 256), ("tokenizer.ggml.eos_token_id", 257)):
        if scalar(r, key, GGUFValueType.UINT32) != want:
            failures.append(f"{tag}: {key} != {want}")
    for key, want in (("llama.attention.layer_norm_rms_epsilon", 1e-5), ("llama.rope.freq_base", 10000.0)):
        v = scalar(r, key, GGUFValueType.FLOAT32)
        if v is None or abs(v - want) > 1e-6 * want:
            failures.append(f"{tag}: {key} = {v}")
    toks = field(r, "tokenizer.ggml.tokens")
    merges = field(r, "tokenizer.ggml.merges")
    ttype = field(r, "tokenizer.ggml.token_type")
    if toks is not None:
        strs = [bytes(toks.parts[i]).decode() for i in toks.data]
        if len(strs) != 259 or len(set(strs)) != 259:
            failures.append(f"{tag}: {len(strs)} tokens, {len(set(strs))} distinct (expected 259 unique)")
        elif strs[ord("a")] != "a" or strs[32] != "\u0120" or strs[10] != "\u010a" or strs[256] != "<s>":
            failures.append(f"{tag}: byte tokens are not GPT-2's byte-to-unicode: {strs[10]!r} {strs[32]!r}")
    if merges is not None and (merges.types[:1] != [GGUFValueType.ARRAY] or len(merges.data) != 0):
        failures.append(f"{tag}: tokenizer.ggml.merges must be an empty array")
    if ttype is not None and [int(ttype.parts[i][0]) for i in ttype.data][255:259] != [1, 3, 3, 3]:
        failures.append(f"{tag}: token types of bytes and control tokens are wrong")
    want = expected(w)
    names = [t.name for t in r.tensors]
    if tied and "output.weight" in names:
        failures.append(f"{tag}: a tied model must not have output.weight")
    if set(names) != set(want):
        failures.append(f"{tag}: tensors {sorted(set(names) ^ set(want))} differ from the checkpoint's")
    for t in r.tensors:
        ref = want.get(t.name)
        if ref is None:
            continue
        if list(t.shape) != list(reversed(ref.shape)):
            failures.append(f"{tag}: {t.name} ne {list(t.shape)}, expected {list(reversed(ref.shape))}")
            continue
        got = dequantize(t.data, t.tensor_type).reshape(ref.shape)
        qt = t.tensor_type
        if ref.ndim == 1 and qt != QT.F32:
            failures.append(f"{tag}: norm {t.name} is {qt.name}, expected F32")
        if ref.ndim == 2 and qt != TYPES[type_name] and not (type_name == "q6_k" and ref.shape[1] % 256):
            failures.append(f"{tag}: {t.name} is {qt.name}, expected {type_name}")
        block = {QT.Q8_0: 32, QT.Q4_0: 32, QT.Q6_K: 16}.get(qt, 1)
        bmax = np.abs(ref.reshape(-1, block)).max(axis=1, keepdims=True) if block > 1 else np.abs(ref).reshape(-1, 1)
        rel = {QT.F32: 0.0, QT.F16: 1e-3, QT.BF16: 8e-3, QT.Q8_0: 1 / 120, QT.Q4_0: 1 / 7, QT.Q6_K: 1 / 24}[qt]
        err = np.abs(got - ref).reshape(bmax.shape[0], -1)
        if not (err <= rel * bmax + 1e-7).all():
            failures.append(f"{tag}: {t.name} ({qt.name}) off by {err.max():.3g} (bound {rel:.3g} x block max)")
        if qt == QT.Q6_K:  # the weighted scale search: less error where the weights are large
            plain = q6_k_plain(ref)
            w = ref.astype(np.float64) ** 2
            ours_err, plain_err = (w * (got - ref) ** 2).sum(), (w * (plain - ref) ** 2).sum()
            print(f"{tag}: {t.name} Q6_K weighted error {ours_err:.3e}, plain max-based scales {plain_err:.3e}")
            if not ours_err < 0.97 * plain_err:
                failures.append(f"{tag}: {t.name}: Q6_K's weighted error {ours_err:.3e} is not below the plain "
                                f"max-based scales' {plain_err:.3e}")
        if qt in (QT.Q8_0, QT.Q4_0):
            ours = np.asarray(t.data).reshape(-1)
            theirs = quantize(ref.astype(np.float32), qt).reshape(-1)
            bb = 34 if qt == QT.Q8_0 else 18
            same = (ours.reshape(-1, bb) == theirs.reshape(-1, bb)).all(axis=1).mean()
            if same < (1.0 if qt == QT.Q8_0 else 0.999):
                failures.append(f"{tag}: {t.name}: only {100 * same:.2f}% of {qt.name} blocks equal gguf-py's")
    return os.path.getsize(path)


def q6_k_plain(x):
    """Q6_K with the plain scale choice (each sub-block's scale from its largest value alone), dequantized:
    the baseline retort's weighted least-squares scale search must beat."""
    sub = x.astype(np.float32).reshape(-1, 16, 16)  # [super-blocks, sub-blocks, 16]
    idx = np.abs(sub).argmax(axis=2)
    mx = np.take_along_axis(sub, idx[..., None], axis=2)[..., 0]
    scales = mx / -32.0
    big = np.take_along_axis(scales, np.abs(scales).argmax(axis=1)[:, None], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(big != 0, -128.0 / big, 0.0)
        d = np.where(big != 0, 1.0 / iscale, 0.0).astype(np.float16).astype(np.float32)
        sc = np.clip(np.rint(iscale * scales), -128, 127)
        ds = d * sc
        q = np.where(ds[..., None] != 0, np.clip(np.rint(sub / ds[..., None]), -32, 31), 0)
    return (q * ds[..., None]).reshape(x.shape)


def llama3_rope_factors(D, theta, factor, low, high, old):
    """convert_hf_to_gguf.py's rope_freqs for Llama 3.1: per frequency 1, factor, or the smooth blend."""
    out = []
    for f in 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D):
        wavelen = 2 * np.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out)


def check_architectures(work, data):
    cases = {  # arch expected: overrides, head dim
        "qwen2": (["model.attn_bias=true", "model.rope_scaling=linear", "model.rope_factor=2"], C // H),
        "llama": (["model.attn_bias=true", "model.head_dim=12", "model.rope_scaling=llama3", "model.rope_factor=8",
                   "model.rope_high_freq_factor=4", "model.rope_original_max_seq_len=256"], 12),
    }
    for arch, (overrides, hd) in cases.items():
        d = os.path.join(work, f"arch_{arch}")
        run(["train", CFG, *MODEL, *COMMON, *overrides, "train.steps=2", f"data.train={data}", f"run.out_dir={d}"],
            what=f"train {arch}")
        out = os.path.join(work, f"arch_{arch}.gguf")
        if run(["export", os.path.join(d, "ckpt-latest.h5"), "--format", "gguf", "--type", "f32", "--out", out],
               what=f"export {arch}").returncode:
            continue
        r = GGUFReader(out)
        tag = f"{arch} ({' '.join(overrides)})"
        if scalar(r, "general.architecture", GGUFValueType.STRING) != arch:
            failures.append(f"{tag}: general.architecture is not {arch}")
            continue
        for key in ("attention.key_length", "attention.value_length", "rope.dimension_count"):
            if scalar(r, f"{arch}.{key}", GGUFValueType.UINT32) != hd:
                failures.append(f"{tag}: {arch}.{key} != {hd}")
        tensors = {t.name: dequantize(t.data, t.tensor_type).reshape(list(reversed(list(t.shape))))
                   for t in r.tensors}
        if arch == "qwen2":
            if scalar(r, "qwen2.rope.scaling.type", GGUFValueType.STRING) != "linear" or \
                    scalar(r, "qwen2.rope.scaling.factor", GGUFValueType.FLOAT32) != 2.0:
                failures.append(f"{tag}: rope.scaling.type / factor are not linear / 2")
            if "rope_freqs.weight" in tensors:
                failures.append(f"{tag}: rope_freqs.weight without llama3 scaling")
        else:
            want = llama3_rope_factors(hd, 10000.0, 8.0, 1.0, 4.0, 256)
            got = tensors.get("rope_freqs.weight")
            if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-6):
                failures.append(f"{tag}: rope_freqs.weight {got} != convert_hf_to_gguf's {want}")
            if not (want == 1).any() or not (want == 8).any() or not ((want > 1) & (want < 8)).any():
                failures.append(f"{tag}: the case does not reach all three llama3 regimes: {want}")
            if "llama.rope.scaling.type" in r.fields:
                failures.append(f"{tag}: rope.scaling.type written for llama3 (llama.cpp reads rope_freqs)")
        w = weights(os.path.join(d, "ckpt-latest.h5"))
        for name, v in w.items():
            heads = H if ".attn_q." in name else KVH if ".attn_k." in name else 0
            ref = permute(v, heads) if heads and arch == "llama" else v
            if name not in tensors or tensors[name].shape != ref.shape or not np.array_equal(tensors[name], ref):
                failures.append(f"{tag}: {name} is not the checkpoint's{' permuted' if heads and arch == 'llama' else ''}")
        if not any(n.endswith("attn_q.bias") for n in tensors):
            failures.append(f"{tag}: no biases in the file")


def check_damaged(path, work):
    data = open(path, "rb").read()
    rng = random.Random(5)
    cases = [("truncated at %d" % n, data[:n]) for n in (0, 3, 4, 20, 24, 100, len(data) // 2, len(data) - 1)]
    for off, val, what in ((8, b"\xff" * 8, "huge tensor count"), (16, b"\xff" * 8, "huge key count"),
                           (24, b"\xff\xff\xff\xff\xff\xff\xff\x7f", "huge key length"), (4, b"\x09\x00\x00\x00", "version 9")):
        cases.append((what, data[:off] + val + data[off + len(val):]))
    for i in range(150):
        b = bytearray(data[:rng.randrange(1, len(data) + 1)] if rng.random() < 0.3 else data)
        for _ in range(rng.randrange(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        cases.append((f"mutation {i}", bytes(b)))
    bad = os.path.join(work, "bad.gguf")
    refused = 0
    for what, blob in cases:
        open(bad, "wb").write(blob)
        p = subprocess.run([RETORT, "inspect", bad], capture_output=True, text=True, errors="replace", timeout=60)
        if p.returncode not in (0, 1) or (p.returncode == 1 and "error" not in p.stderr):
            failures.append(f"damaged file ({what}): exit {p.returncode}: {p.stderr[-300:]}")
        refused += p.returncode == 1
    if refused < 12:
        failures.append(f"only {refused} damaged files refused")


def main():
    work = tempfile.mkdtemp(prefix="gguf-")
    data = os.path.join(work, "train.h5")
    run(["data", "synth", "--task", "add2", "--n", "500", "--seed", "2", "--out", data])
    sizes = {}
    for tied in (1, 0):
        d = os.path.join(work, f"model{tied}")
        run(["train", CFG, *MODEL, *COMMON, f"model.tie_embeddings={'true' if tied else 'false'}", "train.steps=6",
             f"data.train={data}", f"run.out_dir={d}"], what="train")
        ckpt = os.path.join(d, "ckpt-latest.h5")
        w = weights(ckpt)
        for t in TYPES:
            out = os.path.join(work, f"m{tied}_{t}.gguf")
            p = run(["export", ckpt, "--format", "gguf", "--type", t, "--out", out], what=f"export {t}")
            if p.returncode == 0:
                sizes[(tied, t)] = check_model_file(out, w, t, tied, f"tied={tied} {t}")
                run(["inspect", out], what=f"inspect {t}")
    if sizes and not sizes[(0, "q4_0")] < sizes[(0, "f16")] < sizes[(0, "f32")]:
        failures.append(f"file sizes do not shrink with the type: {sizes}")

    # LoRA: the adapter GGUF, and the adapter checkpoint exported merged
    base = os.path.join(work, "model0", "ckpt-latest.h5")
    ft = os.path.join(work, "ft")
    run(["finetune", CFG, *COMMON, f"base={base}", f"data.train={data}", "train.steps=4", "train.lr=1e-2",
         "lora.rank=4", "lora.alpha=8", f"run.out_dir={ft}"], what="finetune")
    ad_ckpt = os.path.join(ft, "ckpt-latest.h5")
    ad = os.path.join(work, "adapter.gguf")
    run(["export", ad_ckpt, "--format", "gguf", "--lora-adapter", "--out", ad], what="export adapter")
    if os.path.exists(ad):
        r = GGUFReader(ad)
        if scalar(r, "general.type", GGUFValueType.STRING) != "adapter" or \
                scalar(r, "adapter.type", GGUFValueType.STRING) != "lora":
            failures.append("adapter GGUF: general.type / adapter.type wrong")
        alpha = scalar(r, "adapter.lora.alpha", GGUFValueType.FLOAT32)
        if alpha is None or abs(alpha / 4 - 2.0) > 1e-6:  # llama.cpp: scale = alpha / rank; retort: 8 / 4
            failures.append(f"adapter GGUF: alpha {alpha} does not give scale 2 at rank 4")
        with h5py.File(ad_ckpt, "r") as f:
            lora = {k: f["lora"][k][()] for k in f["lora"]}
        got = {t.name: dequantize(t.data, t.tensor_type).reshape(list(reversed(list(t.shape)))) for t in r.tensors}
        if set(got) != set(lora):
            failures.append(f"adapter GGUF: tensors differ: {sorted(set(got) ^ set(lora))[:4]}")
        for k, v in lora.items():
            ref = permute(v, H) if k.endswith("attn_q.weight.lora_b") else \
                permute(v, KVH) if k.endswith("attn_k.weight.lora_b") else v
            if k in got and not np.array_equal(got[k], ref):
                failures.append(f"adapter GGUF: {k} differs from the checkpoint's (permuted for q/k B)")
    merged = os.path.join(work, "merged.h5")
    run(["merge", ad_ckpt, "--out", merged], what="merge")
    mg = os.path.join(work, "merged_f32.gguf")
    run(["export", ad_ckpt, "--format", "gguf", "--type", "f32", "--out", mg], what="export merged")
    if os.path.exists(mg) and os.path.exists(merged):
        check_model_file(mg, weights(merged), "f32", 0, "adapter checkpoint merged")

    check_architectures(work, data)

    # refusals and damaged files
    run(["export", base, "--format", "safetensors", "--out", os.path.join(work, "x")], expect=2, what="unknown format")
    run(["export", base, "--format", "gguf", "--type", "q3_k", "--out", os.path.join(work, "x")], expect=2,
        what="unknown type")
    run(["export", base, "--format", "gguf", "--lora-adapter", "--out", os.path.join(work, "x")], expect=1,
        what="--lora-adapter on a full checkpoint")
    if os.path.exists(os.path.join(work, "m0_f32.gguf")):
        check_damaged(os.path.join(work, "m0_f32.gguf"), work)

    passed = f"GGUF: {len(TYPES)} types x tied/untied, the LoRA adapter and the merged export read back by gguf-py"
    finish(failures, passed, work=work, limit=40)


if __name__ == "__main__":
    main()
