"""retort's ONNX export in the real runtimes (onnx, onnxruntime and onnxruntime-genai, installed by
scripts/bootstrap.sh into .pydeps), on three small models: tied embeddings with grouped-query attention, an
untied head with one key-value head per query head and widths that int4 blocks do not divide, and the options
of imported architectures (q/k/v biases, a head dim of 12 on 4 heads of a width of 64, llama3 RoPE scaling).
- every precision at opset 21 (RMSNorm, RoPE and attention from basic ops) and at opset 23 (the native
  RMSNormalization, RotaryEmbedding and Attention) goes through all the checks below;
- fp32 and fp16 models pass onnx's full checker (types and shapes inferred through the graph);
- onnxruntime's logits match the model's forward (tests/torch_llama.py in float64 on the checkpoint's
  weights): fp32 within 1e-4, fp16 within its rounding; int4's MatMulNBits tensors dequantized by the
  operator's documented rule (here, in NumPy) are within half a step of the weights, and the reference run
  on those dequantized weights matches onnxruntime within 1e-4;
- decoding with the KV cache (one token, then two at a time) gives the logits of the whole sequence, and a
  batch right-padded as onnxruntime-genai pads it gives each row's own logits;
- external data: 4096-aligned offsets in model.onnx.data, the same logits as inline;
- onnxruntime-genai loads each folder; its tokenizer turns text into BOS + the UTF-8 bytes (retort's ids)
  and back; its greedy continuation equals `retort generate --temperature 0`;
- an adapter checkpoint exports as its merged model; bad options and unsafe --out folders are refused.

usage: check_onnx.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime_genai as og
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import finish  # noqa: E402
from torch_llama import Llama as TorchLlama  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
T = 64
MODELS = {  # name: (C, H, KVH, FF, tied)
    "gqa": (64, 4, 2, 128, True),
    "untied": (48, 4, 4, 72, False),
    "qwen": (64, 4, 2, 128, True),
}
# name: (config overrides, the reference model's options); with theta 10000 and an original context of 256
# the six frequencies of a head of 12 fall two in each llama3 regime
LLAMA3 = {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 256}
OPTIONS = {
    "qwen": (["model.attn_bias=true", "model.head_dim=12", "model.rope_scaling=llama3", "model.rope_factor=8",
              "model.rope_original_max_seq_len=256"], {"bias": True, "head_dim": 12, "rope_scaling": LLAMA3}),
}
COMMON = [f"data.seq_len={T}", "train.batch_size=8", "train.warmup_steps=5", "train.eval_every=0", "data.val=",
          "system.threads=2", "run.log_every=50", "data.loss_on=answer"]
PROMPT = "12+34="
TEXTS = (PROMPT, "what is 305 plus 98? ", "a\nb\tc  d", "\u00e9 \u00fc \U0001f600", " lead and trail ")
# max |logit difference| from the float64 reference, by precision (int4 against its own dequantized weights)
ATOL = {"fp32": 1e-4, "fp16": 3e-2, "int4": 1e-4}
failures = []


def run(args, what=None, expect_fail=False):
    p = subprocess.run([RETORT] + args, capture_output=True, text=True)
    if (p.returncode != 0) != expect_fail:
        failures.append(f"{what or ' '.join(args[:2])}: exited {p.returncode}: {p.stderr[-800:]}")
    return p


def fail(msg):
    failures.append(msg)


def reference_logits(weights, dims, tokens, options):
    C, H, KVH, FF, tied = dims
    m = TorchLlama(259, C, 2, H, KVH, FF, T, tied=tied, dtype=torch.float64, **options)
    with torch.no_grad():
        for name, t in m.named().items():
            t.copy_(torch.from_numpy(weights[name].astype(np.float64)))
        return m(torch.tensor(tokens)).numpy()


def ckpt_weights(path):
    with h5py.File(path, "r") as f:
        return {k: f["model"][k][()] for k in f["model"]}


class Session:
    def __init__(self, folder, dims, options):
        self.s = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
        self.dims = dims
        self.hd = options.get("head_dim") or dims[0] // dims[1]
        self.dtype = np.float16 if self.s.get_inputs()[3].type == "tensor(float16)" else np.float32

    def empty_past(self, batch):
        C, H, KVH = self.dims[:3]
        return [np.zeros((batch, KVH, 0, self.hd), self.dtype) for _ in range(4)]

    def run(self, ids, mask, pos, past):
        feed = {"input_ids": np.array(ids, np.int64), "attention_mask": np.array(mask, np.int64),
                "position_ids": np.array(pos, np.int64)}
        for l in range(2):
            feed[f"past_key_values.{l}.key"], feed[f"past_key_values.{l}.value"] = past[2 * l], past[2 * l + 1]
        out = self.s.run(None, feed)
        return out[0].astype(np.float64), out[1:]

    def full(self, tokens):
        n = len(tokens)
        return self.run([tokens], [[1] * n], [list(range(n))], self.empty_past(1))[0][0]


def dequantized_int4(folder):
    """The weights the int4 model computes with, from its MatMulNBits tensors by the operator's rule:
    element 2i of a block in the low nibble, 2i+1 in the high; (q - zero_point) * scale."""
    m = onnx.load(os.path.join(folder, "model.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    out, steps = {}, {}
    for node in m.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        at = {a.name: a.i for a in node.attribute}
        K, N, bits, bs = at["K"], at["N"], at["bits"], at["block_size"]
        q, scales, zp = (inits[node.input[i]] for i in (1, 2, 3))
        kb = -(-K // bs)
        if bits != 4 or q.shape != (N, kb, bs // 2) or scales.size != N * kb:
            fail(f"{node.name}: MatMulNBits tensors of shapes {q.shape}, {scales.shape} for K={K} N={N}")
            continue
        codes = np.stack([q & 15, q >> 4], axis=-1).reshape(N, kb * bs).astype(np.float64)
        zps = np.stack([zp & 15, zp >> 4], axis=-1).reshape(N, -1)[:, :kb].astype(np.float64)
        scale = scales.reshape(N, kb).astype(np.float64)
        w = (codes.reshape(N, kb, bs) - zps[:, :, None]) * scale[:, :, None]
        name = node.input[1][: -len(".q4")]
        out[name] = w.reshape(N, kb * bs)[:, :K]
        steps[name] = np.repeat(scale, bs, axis=1)[:, :K]
    return out, steps, inits


def check_int4(folder, weights, dims, tokens, options):
    deq, steps, inits = dequantized_int4(folder)
    want = [k for k, v in weights.items() if v.ndim == 2 and k != "token_embd.weight"]
    if dims[4]:
        want.append("output.weight")  # tied: the head is quantized on its own
    for name in want:
        w = weights["token_embd.weight" if name == "output.weight" and dims[4] else name].astype(np.float64)
        if name not in deq:
            fail(f"int4: no MatMulNBits for {name}")
            continue
        err = np.abs(deq[name] - w) / steps[name]
        if not err.max() <= 0.5 + 1e-3:
            fail(f"int4: {name} dequantizes {err.max():.3f} steps from the weight (rounding allows 0.5)")
    emb = inits["token_embd.weight"]
    if emb.dtype != np.float16 or np.abs(emb - weights["token_embd.weight"]).max() > 1e-3 * np.abs(emb).max():
        fail("int4: the embedding table is not the checkpoint's in fp16")
    emb = emb.astype(np.float64)
    ref_w = dict(weights)
    ref_w.update(deq)
    ref_w["token_embd.weight"] = emb
    dims = dims[:4] + (False,)  # a tied head is quantized apart from the fp16 embedding: untied here
    return reference_logits(ref_w, dims, [tokens], options)[0]


def check_cache_and_batch(sess, tokens, full, tag):
    n = len(tokens)
    # prefill 3, then one token at a time, then the rest two at a time
    logits, past = sess.run([tokens[:3]], [[1] * 3], [[0, 1, 2]], sess.empty_past(1))
    rows = [logits[0]]
    at = 3
    while at < n:
        step = 1 if at < 6 else 2
        chunk = tokens[at : at + step]
        logits, past = sess.run([chunk], [[1] * (at + len(chunk))], [list(range(at, at + len(chunk)))], past)
        rows.append(logits[0])
        at += len(chunk)
    cached = np.concatenate(rows)
    tol = 1e-5 if sess.dtype == np.float32 else 2e-2
    err = np.abs(cached - full).max()
    if not err <= tol:
        fail(f"{tag}: KV-cache decoding differs from the whole sequence by {err:.2e} (allowed {tol})")
    # a batch padded on the right as onnxruntime-genai pads prompts: mask 0 and position 0 at the pads
    short = tokens[:4]
    ids = [tokens, short + [258] * (n - 4)]
    mask = [[1] * n, [1] * 4 + [0] * (n - 4)]
    pos = [list(range(n)), list(range(4)) + [0] * (n - 4)]
    logits, past = sess.run(ids, mask, pos, sess.empty_past(2))
    alone = sess.full(short)
    err = max(np.abs(logits[0] - full).max(), np.abs(logits[1][:4] - alone).max())
    # then one more token for both rows, after the padding
    nxt = [[tokens[1]], [tokens[1]]]
    step, _ = sess.run(nxt, [m + [1] for m in mask], [[n], [4]], past)
    err = max(err, np.abs(step[0, 0] - sess.full(tokens + [tokens[1]])[-1]).max(),
              np.abs(step[1, 0] - sess.full(short + [tokens[1]])[-1]).max())
    if not err <= tol:
        fail(f"{tag}: a right-padded batch differs from its rows run alone by {err:.2e} (allowed {tol})")
    # padded on the left, the pads' queries have nothing to attend to: they must not turn into NaN that
    # reaches the real tokens through the cache
    ids = [short + tokens[4:], [258] * (n - 4) + short]
    mask = [[1] * n, [0] * (n - 4) + [1] * 4]
    pos = [list(range(n)), [0] * (n - 4) + list(range(4))]
    logits, past = sess.run(ids, mask, pos, sess.empty_past(2))
    step, _ = sess.run(nxt, [m + [1] for m in mask], [[n], [4]], past)
    err = max(np.abs(logits[1][n - 4:] - alone).max(),
              np.abs(step[1, 0] - sess.full(short + [tokens[1]])[-1]).max())
    if not err <= tol:
        fail(f"{tag}: a left-padded row differs from the row run alone by {err:.2e} (allowed {tol})")


def check_genai(folder, tokens, retort_answer, tag):
    model = og.Model(folder)
    tok = og.Tokenizer(model)
    tok.update_options(add_special_tokens="true")  # onnxruntime-genai adds no BOS unless asked
    for text in TEXTS:
        ids = [int(i) for i in tok.encode(text)]
        if ids != [256] + list(text.encode()) or tok.decode(ids) != text:
            fail(f"{tag}: onnxruntime-genai tokenizes {text!r} as {ids} -> {tok.decode(ids)!r}")
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(tokens) + 6, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(tok.encode(PROMPT))
    while not gen.is_done():
        gen.generate_next_token()
    seq = [int(i) for i in gen.get_sequence(0)]
    answer = bytes(t for t in seq[len(tokens) :] if t < 256).decode("latin-1")
    if answer != retort_answer:
        fail(f"{tag}: onnxruntime-genai continues {PROMPT!r} with {answer!r}, retort generate with "
             f"{retort_answer!r}")
    return answer


def check_external(folder, inline_full, sess_dims, tokens, tag, options):
    data = os.path.join(folder, "model.onnx.data")
    if not os.path.exists(data):
        fail(f"{tag}: --external-data wrote no model.onnx.data")
        return
    m = onnx.load(os.path.join(folder, "model.onnx"), load_external_data=False)
    n_ext = 0
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            kv = {e.key: e.value for e in t.external_data}
            n_ext += 1
            if kv.get("location") != "model.onnx.data" or int(kv["offset"]) % 4096:
                fail(f"{tag}: {t.name} is at {kv} (expected model.onnx.data at a multiple of 4096)")
            if int(kv["offset"]) + int(kv["length"]) > os.path.getsize(data):
                fail(f"{tag}: {t.name} runs past the end of model.onnx.data")
    if n_ext < 10:
        fail(f"{tag}: only {n_ext} tensors in model.onnx.data")
    err = np.abs(Session(folder, sess_dims, options).full(tokens) - inline_full).max()
    if err != 0:
        fail(f"{tag}: logits with external data differ from inline by {err:.2e}")
    onnx.checker.check_model(os.path.join(folder, "model.onnx"), full_check=True)


def check_refusals(work, ckpt):
    out = os.path.join(work, "o_bad")
    for args, words in (
        (["--precision", "int3"], "--precision int3"),
        (["--type", "q4_0"], "--type is for --format gguf"),
        (["--precision", "fp16", "--format", "gguf"], None),
    ):
        fmt = [] if "--format" in args else ["--format", "onnx"]
        p = run(["export", ckpt, *fmt, *args, "--out", out], what=f"export {args}", expect_fail=True)
        if p.returncode != 2 or (words and words not in p.stderr):
            fail(f"export {args}: exit {p.returncode}, stderr {p.stderr.strip()!r}")
    # a folder holding other files is not replaced, nor is a file
    keep = os.path.join(work, "keep")
    os.makedirs(keep)
    with open(os.path.join(keep, "notes.txt"), "w") as f:
        f.write("mine")
    p = run(["export", ckpt, "--format", "onnx", "--out", keep], what="export into a used folder", expect_fail=True)
    if "notes.txt" not in p.stderr or os.listdir(keep) != ["notes.txt"]:
        fail(f"export into a folder with other files: {p.stderr.strip()!r}, folder now {os.listdir(keep)}")
    p = run(["export", ckpt, "--format", "onnx", "--out", os.path.join(keep, "notes.txt")],
            what="export onto a file", expect_fail=True)
    if "not a folder" not in p.stderr:
        fail(f"export onto a file: {p.stderr.strip()!r}")
    # a link to an export folder is not replaced (that would move the link and empty its target)
    real = os.path.join(work, "gqa_fp32_o21")
    link = os.path.join(work, "link_to_export")
    os.symlink(real, link)
    p = run(["export", ckpt, "--format", "onnx", "--out", link], what="export onto a link", expect_fail=True)
    if "symbolic link" not in p.stderr or not os.path.exists(os.path.join(real, "model.onnx")):
        fail(f"export onto a link: {p.stderr.strip()!r}")
    leftovers = [f for f in os.listdir(work) if ".tmp." in f or ".old." in f]
    if leftovers:
        fail(f"export left {leftovers} behind")


def train(work, name, data):
    C, H, KVH, FF, tied = MODELS[name]
    d = os.path.join(work, name)
    run(["train", CFG, f"model.dim={C}", "model.n_layers=2", f"model.n_heads={H}", f"model.n_kv_heads={KVH}",
         f"model.ffn_dim={FF}", f"model.max_seq_len={T}", f"model.tie_embeddings={str(tied).lower()}", *COMMON,
         *OPTIONS.get(name, ([], {}))[0], "train.steps=150", "train.lr=1e-2", f"data.train={data}",
         f"run.out_dir={d}"], what=f"train {name}")
    return os.path.join(d, "ckpt-latest.h5")


def main():
    work = tempfile.mkdtemp(prefix="onnx-")
    data = os.path.join(work, "train.h5")
    run(["data", "synth", "--task", "add2", "--n", "4000", "--seed", "2", "--out", data])
    tokens = [256] + list(PROMPT.encode())
    for name, dims in MODELS.items():
        ckpt = train(work, name, data)
        weights = ckpt_weights(ckpt)
        options = OPTIONS.get(name, ([], {}))[1]
        ref = reference_logits(weights, dims, [tokens], options)[0]
        retort_text = run(["generate", ckpt, "--prompt", PROMPT, "--max-tokens", "6", "--temperature", "0"]).stdout
        retort_answer = retort_text.split(PROMPT, 1)[-1].strip("\n")
        for prec, opset in [(p, o) for p in ("fp32", "fp16", "int4") for o in (21, 23)]:
            tag = f"{name} {prec} opset {opset}"
            folder = os.path.join(work, f"{name}_{prec}_o{opset}")
            run(["export", ckpt, "--format", "onnx", "--precision", prec, "--opset", str(opset), "--out", folder],
                what=f"export {tag}")
            ops = {n.op_type for n in onnx.load(os.path.join(folder, "model.onnx")).graph.node}
            native = {"RMSNormalization", "RotaryEmbedding", "Attention"}
            if (opset == 23) != native.issubset(ops) or (opset == 21 and ops & native):
                fail(f"{tag}: the graph's ops {sorted(ops)} are not opset {opset}'s")
            if prec != "int4":
                onnx.checker.check_model(os.path.join(folder, "model.onnx"), full_check=True)
            sess = Session(folder, dims, options)
            full = sess.full(tokens)
            want = check_int4(folder, weights, dims, tokens, options) if prec == "int4" else ref
            err = np.abs(full - want).max()
            print(f"{tag}: max |onnxruntime - reference| logit = {err:.2e} (allowed {ATOL[prec]}); "
                  f"{'vs the unquantized model ' + format(np.abs(full - ref).max(), '.3f') if prec == 'int4' else ''}")
            if not err <= ATOL[prec]:
                fail(f"{tag}: onnxruntime's logits differ from the reference by {err:.2e} (allowed {ATOL[prec]})")
            check_cache_and_batch(sess, tokens + list(b"46"), sess.full(tokens + list(b"46")), tag)
            if prec != "int4":
                check_genai(folder, tokens, retort_answer, tag)
            else:  # int4 is another model: genai's greedy text must equal onnxruntime's own greedy decoding
                seq = list(tokens)
                for _ in range(6):
                    seq.append(int(np.argmax(sess.full(seq)[-1])))
                    if seq[-1] == 257:
                        seq.pop()
                        break
                check_genai(folder, tokens, bytes(t for t in seq[len(tokens):] if t < 256).decode("latin-1"), tag)
            if prec == "fp32" and opset == 21 and name != "qwen":
                ext = os.path.join(work, f"{name}_ext")
                run(["export", ckpt, "--format", "onnx", "--external-data", "--out", ext], what=f"export {tag} ext")
                check_external(ext, full, dims, tokens, f"{name} external data", options)
                # exporting again over an export replaces it whole
                run(["export", ckpt, "--format", "onnx", "--out", ext], what=f"re-export {tag}")
                if os.path.exists(os.path.join(ext, "model.onnx.data")):
                    fail(f"{name}: re-exporting inline left the old model.onnx.data behind")
        if name == "gqa":
            check_refusals(work, ckpt)
            # an adapter checkpoint exports as the merged model
            ft = os.path.join(work, "ft")
            run(["finetune", CFG, *COMMON, f"base={ckpt}", f"data.train={data}", "train.steps=20",
                 "train.lr=2e-2", "lora.rank=4", f"run.out_dir={ft}"], what="finetune")
            merged = os.path.join(work, "merged.h5")
            run(["merge", os.path.join(ft, "ckpt-latest.h5"), "--out", merged], what="merge")
            run(["export", os.path.join(ft, "ckpt-latest.h5"), "--format", "onnx", "--out",
                 os.path.join(work, "ft_onnx")], what="export adapter checkpoint")
            got = Session(os.path.join(work, "ft_onnx"), dims, options).full(tokens)
            want = reference_logits(ckpt_weights(merged), dims, [tokens], options)[0]
            err, moved = np.abs(got - want).max(), np.abs(want - ref).max()
            print(f"LoRA: |onnx of the adapter checkpoint - merged reference| = {err:.2e}; adapters move {moved:.3f}")
            if not err <= 1e-4 or not moved > 1e-2:
                fail(f"LoRA: the exported adapter checkpoint differs from the merged model by {err:.2e} "
                     f"(the adapters move the logits by {moved:.3f})")
    passed = ("onnx: fp32/fp16/int4 pass the checker and match the reference in onnxruntime, with and without the KV "
              "cache and padding; external data loads; onnxruntime-genai tokenizes and generates as retort does")
    finish(failures, passed, work=work)


if __name__ == "__main__":
    main()
