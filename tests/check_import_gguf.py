"""`retort import gguf` against the real writers and readers of GGUF files:
- files written by llama.cpp's own convert_hf_to_gguf.py (from the llama-cpp-python source package, fetched
  once by scripts/fetch_llama_cpp_src.sh) from small random transformers models (tests/import_gguf_models.py,
  run with .venv-hf's python): llama untied with its own head_dim (f32 and q8_0), qwen2 tied with q/k/v
  biases, llama with Llama 3.1 RoPE scaling (rope_freqs.weight). retort's logits on the imported f32 files are
  within 1e-4 of transformers' fp32 forward of the source model; every imported tensor equals gguf-py's
  dequantization of the file (with llama's q/k rows permuted back: a negative control checks that they are not
  the file's rows as stored); the recovered llama3 parameters are the model's;
- a hand-written llama file (the gguf package's GGUFWriter) in f32, f16, bf16, q8_0 and q4_0 (gguf-py's
  quantizers), q4_k_m and q6_k (llama.cpp's own quantizer, llama_model_quantize), and tensors of random q4_k
  and q6_k blocks: every tensor equals gguf-py's dequantization bit for bit, and retort's logits match
  llama.cpp's on the same file (flash attention off, f32 KV cache) within each type's measured noise (llama.cpp
  multiplies quantized weights by quantized activations);
- retort export of an imported checkpoint imports back to the same weights and config;
- refusals, each with exit 1, a message naming the tensor, key or type, and no checkpoint left behind: q5_k and
  iq4_nl tensors, an unknown architecture, a missing tensor, a wrong shape, an extra tensor, a truncated file,
  a rope_freqs.weight that no llama3 scaling gives, --max-seq-len beyond the context.

usage: check_import_gguf.py HARNESS   (Debian's python with .pydeps: gguf, llama_cpp, h5py; RETORT_BIN and
RT_SOURCE_DIR from ctest; .venv-hf/bin/python for transformers)"""
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import h5py
import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import check_close, finish, run_retort  # noqa: E402

HARNESS = sys.argv[1]
SRC = os.environ["RT_SOURCE_DIR"]
VENV_PYTHON = os.path.join(SRC, ".venv-hf", "bin", "python")
failures = []


def run(args, expect=0, what=None):
    return run_retort(failures, args, expect, what)


def harness_logits(ckpt, ids, work):
    """retort's logits for ids: the checkpoint loaded as retort generate loads it (tests/ckpt_logits_harness.c)."""
    out = os.path.join(work, "harness-" + os.path.basename(ckpt))
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([HARNESS, ckpt, out, "1"] + [str(i) for i in ids], capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        failures.append(f"harness on {ckpt}: exited {p.returncode}: {p.stderr[-800:]}")
        return None
    return np.fromfile(os.path.join(out, "logits.bin"), dtype=np.float32).reshape(len(ids), -1)


def cpp_logits(path, ids):
    """llama.cpp's logits for ids: flash attention off and an f32 KV cache, so only the matmuls differ."""
    llm = Llama(model_path=path, n_ctx=64, logits_all=True, flash_attn=False, type_k=llama_cpp.GGML_TYPE_F32,
                type_v=llama_cpp.GGML_TYPE_F32, n_threads=2, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float64)
    llm.close()
    return out


def ckpt_tensors(path):
    with h5py.File(path, "r") as f:
        return {k: f["model"][k][()] for k in f["model"]}, f["config"].attrs["yaml"]


def config_of(yaml_text, section="model"):
    """The key: value lines of one section of a stored config (retort writes it flat, two-space indented)."""
    out, inside = {}, False
    text = yaml_text.decode() if isinstance(yaml_text, bytes) else yaml_text
    for line in text.splitlines():
        if not line.startswith(" "):
            inside = line.rstrip(":") == section
        elif inside:
            k, v = line.strip().split(":", 1)
            out[k] = v.strip().strip('"')
    return out


def unpermute(w, heads):
    """llama.cpp's converter permutation undone (docs/formats.md): within each head, rows (2j, 2j + 1) back to
    (j, j + hd / 2)."""
    hd = w.shape[0] // heads
    return w.reshape(heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_weights(tag, gguf_path, ckpt, llama, heads, kv_heads):
    """Every tensor of the checkpoint is gguf-py's dequantization of the file's, bit for bit, with llama's q/k
    rows permuted back; nothing missing, nothing added. Returns the checkpoint's tensors."""
    mine, yaml_text = ckpt_tensors(ckpt)
    r = GGUFReader(gguf_path)
    names = {t.name for t in r.tensors} - {"rope_freqs.weight"}
    if set(mine) != names:
        failures.append(f"{tag}: checkpoint tensors {sorted(set(mine) ^ names)} differ from the file's")
    for t in r.tensors:
        if t.name not in mine:
            continue
        ref = dequantize(t.data, t.tensor_type).reshape(list(reversed([int(n) for n in t.shape])))
        if llama and ".attn_q." in t.name:
            ref = unpermute(ref, heads)
        if llama and ".attn_k." in t.name:
            ref = unpermute(ref, kv_heads)
        if mine[t.name].shape != ref.shape or not np.array_equal(mine[t.name], ref):
            failures.append(f"{tag}: {t.name} ({t.tensor_type.name}) differs from gguf-py's dequantization")
    return mine, config_of(yaml_text)


def import_ok(src, ckpt, extra=()):
    p = run(["import", "gguf", src, "--out", ckpt, *extra], what=f"import {os.path.basename(src)}")
    return p.returncode == 0


# ---------------------------------------------------------------------------------------------------
# files from llama.cpp's converter

def converter_files(work):
    fetch = subprocess.run([os.path.join(SRC, "scripts", "fetch_llama_cpp_src.sh")], capture_output=True,
                           text=True, timeout=900)
    if fetch.returncode != 0:
        failures.append(f"fetch_llama_cpp_src.sh: exited {fetch.returncode}: {fetch.stderr[-800:]}")
        return False
    llama_cpp_dir = fetch.stdout.strip().splitlines()[-1]
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(llama_cpp_dir))), "tokenizers")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # .pydeps is for Debian's python
    p = subprocess.run([VENV_PYTHON, os.path.join(SRC, "tests", "import_gguf_models.py"), llama_cpp_dir, cache,
                        work], capture_output=True, text=True, env=env, timeout=900)
    if p.returncode != 0:
        failures.append(f"import_gguf_models.py: exited {p.returncode}: {p.stderr[-1500:]}")
        return False
    return True


def check_converted(work):
    ids = {n: json.load(open(os.path.join(work, f"{n}.ids.json"))) for n in ("llama", "qwen2", "llama31")}
    ref = {n: np.load(os.path.join(work, f"{n}.logits.npy")) for n in ids}
    # name, file, llama arch, heads, kv heads: f32 files against transformers
    for name, llama, heads, kvh in (("llama", 1, 4, 2), ("qwen2", 0, 4, 2), ("llama31", 1, 2, 1)):
        src, ckpt = os.path.join(work, f"{name}.f32.gguf"), os.path.join(work, f"{name}.f32.h5")
        if not import_ok(src, ckpt):
            continue
        w, cfg = check_weights(f"{name} f32", src, ckpt, llama, heads, kvh)
        logits = harness_logits(ckpt, ids[name], work)
        if logits is not None:
            check_close(failures, f"{name} f32: logits vs transformers", logits, ref[name], 1e-4, 0)
            print(f"{name} f32: max |retort - transformers| = {np.abs(logits - ref[name]).max():.2e}")
        if name == "llama":  # negative control: the file's q rows as stored are not retort's
            raw = {t.name: np.array(t.data).reshape(list(reversed([int(n) for n in t.shape])))
                   for t in GGUFReader(src).tensors}
            if np.array_equal(raw["blk.0.attn_q.weight"], w["blk.0.attn_q.weight"]) or \
                    np.array_equal(raw["blk.0.attn_k.weight"], w["blk.0.attn_k.weight"]):
                failures.append("llama: q/k rows equal the file's as stored: the permutation was not undone")
            if cfg.get("head_dim") != "24":
                failures.append(f"llama: model.head_dim {cfg.get('head_dim')}, expected 24 (key_length)")
        if name == "qwen2" and (cfg.get("attn_bias") != "true" or cfg.get("tie_embeddings") != "true"):
            failures.append(f"qwen2: attn_bias {cfg.get('attn_bias')}, tie_embeddings {cfg.get('tie_embeddings')}")
        if name == "llama31":
            want = {"rope_scaling": "llama3", "rope_factor": "8", "rope_low_freq_factor": "1",
                    "rope_high_freq_factor": "4", "rope_original_max_seq_len": "32", "norm_eps": "1e-05"}
            got = {k: cfg.get(k) for k in want}
            if got != want:
                failures.append(f"llama31: recovered {got}, the model has {want}")
        check_round_trip(name, ckpt, w, cfg, work)
    # q8_0 from the converter: weights exact, logits against llama.cpp on the same file
    src, ckpt = os.path.join(work, "llama.q8_0.gguf"), os.path.join(work, "llama.q8_0.h5")
    if import_ok(src, ckpt):
        check_weights("llama q8_0", src, ckpt, 1, 4, 2)
        against_llama_cpp("llama q8_0 (converter)", src, ckpt, ids["llama"][:32], 0.05, work)


def check_round_trip(name, ckpt, w, cfg, work):
    """retort export --type f32 of the imported checkpoint imports back to the same weights and model config."""
    out = os.path.join(work, f"{name}.rt.gguf")
    back = os.path.join(work, f"{name}.rt.h5")
    if run(["export", ckpt, "--format", "gguf", "--type", "f32", "--out", out], what=f"{name}: export").returncode:
        return
    if not import_ok(out, back):
        return
    w2, yaml_text = ckpt_tensors(back)
    cfg2 = config_of(yaml_text)
    if set(w2) != set(w) or any(not np.array_equal(w[k], w2[k]) for k in w):
        failures.append(f"{name}: export -> import changed the weights")
    if cfg2 != cfg:
        failures.append(f"{name}: export -> import changed the config: {cfg} -> {cfg2}")


def against_llama_cpp(tag, src, ckpt, ids, rel, work, dequantized=None):
    """retort's logits on the imported checkpoint against llama.cpp's: on the file itself within rel x the
    largest logit (llama.cpp multiplies f16/bf16 weights by f16/bf16 activations and quantized ones by q8
    activations: its own noise), and, given dequantized (an f32 GGUF of gguf-py's dequantization of src), on
    the same weights in f32 within 1e-3 (f32 noise only)."""
    logits = harness_logits(ckpt, ids, work)
    if logits is None:
        return
    ref = cpp_logits(src, ids)
    check_close(failures, f"{tag}: logits vs llama.cpp", logits, ref, rel * np.abs(ref).max(), 0)
    line = (f"{tag}: max |retort - llama.cpp| = {np.abs(logits - ref).max():.2e} (logits up to "
            f"{np.abs(ref).max():.1f}, argmax agreement {np.mean(logits.argmax(1) == ref.argmax(1)):.0%})")
    if dequantized:
        ref = cpp_logits(dequantized, ids)
        check_close(failures, f"{tag}: logits vs llama.cpp on the dequantized weights", logits, ref, 1e-3, 0)
        line += f"; on the dequantized weights in f32 {np.abs(logits - ref).max():.2e}"
    print(line)


# ---------------------------------------------------------------------------------------------------
# hand-written files: K-quants need rows of 256

C, L, H, KVH, F, V, CTX = 256, 2, 4, 2, 512, 320, 64
HD = C // H
IDS = [256] + [int(i) for i in np.random.default_rng(3).integers(0, V, 23)]


def byte_tokens():
    """GPT-2's bytes-to-unicode alphabet (docs/formats.md): token id == byte value."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def model_tensors(seed):
    """A llama model's tensors, [out, in] as GGUF stores them (q/k rows in llama.cpp's order)."""
    rng = np.random.default_rng(seed)

    def m(o, i):
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)

    def norm():
        return (1 + 0.2 * rng.standard_normal(C)).astype(np.float32)
    t = {"token_embd.weight": m(V, C)}
    for layer in range(L):
        b = f"blk.{layer}."
        t.update({b + "attn_norm.weight": norm(), b + "attn_q.weight": 2 * m(H * HD, C),
                  b + "attn_k.weight": 2 * m(KVH * HD, C), b + "attn_v.weight": m(KVH * HD, C),
                  b + "attn_output.weight": m(C, H * HD), b + "ffn_norm.weight": norm(),
                  b + "ffn_gate.weight": m(F, C), b + "ffn_up.weight": m(F, C), b + "ffn_down.weight": m(C, F)})
    t["output_norm.weight"] = norm()
    t["output.weight"] = 4 * m(V, C)
    return t


def write_gguf(path, tensors, arch="llama", encode=None, rope_freqs=None):
    """tensors: name -> fp32 array, or (uint8 blocks, ggml type) for raw bytes; encode(name, array) -> ggml type
    for the fp32 ones (None: f32)."""
    w = GGUFWriter(path, arch)
    w.add_context_length(CTX)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KVH)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    tokens = byte_tokens() + ["<s>", "ab"] + [f"<unused_{i}>" for i in range(258, V)]
    w.add_token_list(tokens)
    w.add_token_types([1] * 256 + [3, 1] + [5] * (V - 258))
    w.add_token_merges(["a b"])  # gpt2 needs the key; gguf-py drops an empty list
    w.add_bos_token_id(256)
    w.add_eos_token_id(256)
    for name, x in tensors.items():
        if isinstance(x, tuple):
            w.add_tensor(name, x[0], raw_dtype=x[1])
            continue
        t = encode(name, x) if encode and x.ndim == 2 else Q.F32
        if t == Q.F32:
            w.add_tensor(name, x)
        else:
            w.add_tensor(name, quantize(x, t), raw_dtype=t)
    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", rope_freqs.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def random_blocks(kind, rows, cols, rng):
    """rows x cols elements of random k-quant blocks whose fp16 scales are small finite numbers."""
    size = {Q.Q4_K: 144, Q.Q6_K: 210, Q.Q5_K: 176, Q.IQ4_NL: 18}[kind]
    per = {Q.IQ4_NL: 32}.get(kind, 256)
    b = rng.integers(0, 256, (rows, cols // per, size), dtype=np.uint8)
    d = lambda n: rng.uniform(0, 0.02, (rows, cols // per, n)).astype(np.float16).view(np.uint8)  # noqa: E731
    if kind in (Q.Q4_K, Q.Q5_K):
        b[..., 0:4] = d(2)
    elif kind == Q.Q6_K:
        b[..., 208:210] = d(1)
    else:
        b[..., 0:2] = d(1)
    return b.reshape(rows, -1), kind


def llama_quantize(src, dst, ftype):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        failures.append(f"llama_model_quantize {os.path.basename(dst)}: returned {rc}")
    return rc == 0


def check_handwritten(work):
    base = model_tensors(11)
    f32 = write_gguf(os.path.join(work, "hw.f32.gguf"), base)
    # the largest logit difference to llama.cpp on the file, relative to the largest logit, by type; measured
    # here (2 layers of random weights, logits up to 17): f32 2e-6, f16 2e-3, bf16 1.1e-2, q8_0, q4_0, q4_k_m and
    # q6_k about 4.5e-2, all from llama.cpp's rounding of the activations (the comparison with llama.cpp on the
    # dequantized weights is within 1e-3 for every type)
    cases = [("f32", f32, 1e-4)]
    for t, rel in ((Q.F16, 1e-2), (Q.BF16, 3e-2), (Q.Q8_0, 0.1), (Q.Q4_0, 0.1)):
        cases.append((t.name.lower(), write_gguf(os.path.join(work, f"hw.{t.name.lower()}.gguf"), base,
                                                 encode=lambda n, x, t=t: t), rel))
    for name, ftype in (("q4_k_m", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M), ("q6_k", llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K)):
        dst = os.path.join(work, f"hw.{name}.gguf")
        if llama_quantize(f32, dst, ftype):
            kinds = {t.tensor_type.name for t in GGUFReader(dst).tensors}
            cases.append((name + " " + "+".join(sorted(kinds)), dst, 0.1))
    for tag, src, rel in cases:
        ckpt = src[:-5] + ".h5"
        if not import_ok(src, ckpt):
            continue
        check_weights(f"hand-written {tag}", src, ckpt, 1, H, KVH)
        deq = None
        if not tag.startswith("f32"):  # the same weights in f32, as gguf-py dequantizes them
            deq = write_gguf(src[:-5] + ".dequantized.gguf",
                             {t.name: dequantize(t.data, t.tensor_type).reshape(
                                 list(reversed([int(n) for n in t.shape]))) for t in GGUFReader(src).tensors})
        against_llama_cpp(f"hand-written {tag}", src, ckpt, IDS, rel, work, deq)
    # random q4_k / q6_k blocks: every bit pattern of scales and codes
    rng = np.random.default_rng(5)
    raw = dict(base)
    for i, name in enumerate(n for n in base if base[n].ndim == 2):
        raw[name] = random_blocks(Q.Q4_K if i % 2 else Q.Q6_K, *base[name].shape, rng)
    src = write_gguf(os.path.join(work, "hw.random-k.gguf"), raw)
    if import_ok(src, src[:-5] + ".h5"):
        check_weights("random q4_k/q6_k blocks", src, src[:-5] + ".h5", 1, H, KVH)
    return base


# ---------------------------------------------------------------------------------------------------
# refusals

def refuse(what, src, work, words, extra=()):
    out = os.path.join(work, "refused.h5")
    p = run(["import", "gguf", src, "--out", out, *extra], expect=1, what=what)
    if p.returncode == 1 and not all(w in p.stderr for w in words):
        failures.append(f"{what}: the message should name {words}: {p.stderr.strip()}")
    if os.path.exists(out):
        failures.append(f"{what}: a refused import left a checkpoint behind")


def check_refusals(base, work):
    rng = np.random.default_rng(9)
    up = "blk.1.ffn_up.weight"

    def variant(tag, tensors, **kw):
        return write_gguf(os.path.join(work, f"r-{tag}.gguf"), tensors, **kw)
    refuse("q5_k", variant("q5k", {**base, up: random_blocks(Q.Q5_K, F, C, rng)}), work, [up, "q5_k"])
    refuse("iq4_nl", variant("iq4", {**base, up: random_blocks(Q.IQ4_NL, F, C, rng)}), work, [up, "iq4_nl"])
    refuse("architecture", variant("arch", base, arch="phi3"), work, ["phi3", "llama and qwen2"])
    refuse("missing", variant("missing", {k: v for k, v in base.items() if k != up}), work, [up, "missing"])
    down = "blk.0.ffn_down.weight"
    refuse("shape", variant("shape", {**base, down: np.ascontiguousarray(base[down].T)}), work,
           [down, f"[{C}, {F}]", f"[{F}, {C}]"])
    extra = "blk.0.attn_output.bias"
    refuse("extra tensor", variant("extra", {**base, extra: np.zeros(C, np.float32)}), work, [extra, "not part of"])
    whole = open(os.path.join(work, "hw.f32.gguf"), "rb").read()
    cut = os.path.join(work, "r-truncated.gguf")
    open(cut, "wb").write(whole[:len(whole) * 2 // 3])
    refuse("truncated", cut, work, ["not within the file"])
    bad = np.array([1.0, 3.0, 1.5] + [8.0] * (HD // 2 - 3), np.float32)  # not monotone
    refuse("rope_freqs", variant("rope", base, rope_freqs=bad), work,
           ["rope_freqs.weight is not a llama3 frequency scaling"])
    refuse("context", os.path.join(work, "hw.f32.gguf"), work, ["--max-seq-len 100", "context_length 64"],
           extra=["--max-seq-len", "100"])
    ckpt = os.path.join(work, "short.h5")
    if import_ok(os.path.join(work, "hw.f32.gguf"), ckpt, ["--max-seq-len", "32"]):
        if config_of(ckpt_tensors(ckpt)[1]).get("max_seq_len") != "32":
            failures.append("--max-seq-len 32 did not set model.max_seq_len")


def main():
    work = tempfile.mkdtemp(prefix="rt_import_gguf_")
    if converter_files(work):
        check_converted(work)
    base = check_handwritten(work)
    check_refusals(base, work)
    finish(failures, "import gguf: llama.cpp-converted llama/qwen2/llama3-scaled files match transformers' "
           "logits; f32 to q4_k files match gguf-py's dequantization and llama.cpp's logits; refusals name "
           "their tensor or key", work)


main()
