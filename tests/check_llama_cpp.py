"""retort's GGUF files in llama.cpp itself (llama-cpp-python, installed by scripts/bootstrap.sh into .pydeps):
- every type loads; the byte tokenizer gives token id == byte value after BOS for UTF-8 texts (spaces, tabs,
  newlines, accents, an emoji), and detokenizes them back;
- llama.cpp's logits for the prompt match the model's forward (tests/torch_llama.py on the checkpoint's
  weights in float64, the reference retort's forward is checked against in model_torch) within each type's
  noise (llama.cpp keeps its KV cache in F16);
- llama.cpp's greedy continuation equals `retort generate --temperature 0` (f32, f16, q8_0);
- the LoRA adapter GGUF applied with llama.cpp's lora_path gives the merged model's logits;
- the options of imported architectures, with llama.cpp's flash attention off and an f32 KV cache so the
  logits agree to ~1e-6: q/k/v biases with linear RoPE scaling (written as qwen2, unpermuted), and biases
  with a head_dim apart from dim / n_heads and llama3 RoPE scaling (written as llama with rope_freqs and
  permuted biases), each with a LoRA adapter (q/k B rows permuted for llama only) against its merge.

usage: check_llama_cpp.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import os
import sys
import tempfile

import h5py
import numpy as np
import torch
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import finish, run_retort  # noqa: E402
from torch_llama import Llama as TorchLlama  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
H, KVH, C, FF, T = 4, 2, 64, 128, 64
MODEL = [f"model.dim={C}", "model.n_layers=2", f"model.n_heads={H}", f"model.n_kv_heads={KVH}",
         f"model.ffn_dim={FF}", f"model.max_seq_len={T}"]
COMMON = [f"data.seq_len={T}", "train.batch_size=8", "train.warmup_steps=5", "train.eval_every=0", "data.val=",
          "system.threads=2", "run.log_every=50", "data.loss_on=answer"]
PROMPT = "12+34="
# max |logit difference| allowed, by type: F16 KV-cache noise for f32/f16, quantization error beyond
ATOL = {"f32": 2e-2, "f16": 3e-2, "q8_0": 0.15, "q4_0": 1.0}
failures = []


def run(args, what=None):
    return run_retort(failures, args, 0, what, tail=800)


def reference_logits(ckpt, tokens, tied, **options):
    with h5py.File(ckpt, "r") as f:
        m = TorchLlama(259, C, 2, H, KVH, FF, T, tied=tied, dtype=torch.float64, **options)
        with torch.no_grad():
            for name, t in m.named().items():
                t.copy_(torch.from_numpy(f["model"][name][()].astype(np.float64)))
            return m(torch.tensor([tokens]))[0].numpy()


def llama(path, **kw):
    return Llama(model_path=path, n_ctx=T, logits_all=True, verbose=False, n_threads=2, seed=1, **kw)


def cpp_logits(llm, tokens):
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float64)


def greedy_cpp(llm, tokens, n):
    out = []
    llm.reset()
    for tok in llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0):
        if tok == llm.token_eos() or len(out) == n:
            break
        out.append(tok)
    return bytes(t for t in out if t < 256).decode("latin-1")


# The options of imported architectures: config overrides and the reference model's arguments.
ARCHS = {
    "qwen2": (["model.attn_bias=true", "model.rope_scaling=linear", "model.rope_factor=2"],
              {"bias": True, "rope_scaling": {"type": "linear", "factor": 2.0}}),
    # head dim 12 on 4 heads of a width of 64; with theta 10000 and an original context of 256 the six
    # frequencies fall two in each llama3 regime (kept, blended, divided by the factor)
    "llama": (["model.attn_bias=true", "model.head_dim=12", "model.rope_scaling=llama3", "model.rope_factor=8",
               "model.rope_low_freq_factor=1", "model.rope_high_freq_factor=4",
               "model.rope_original_max_seq_len=256"],
              {"bias": True, "head_dim": 12,
               "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 256}}),
}


def exact_llama(path, **kw):
    """llama.cpp without flash attention and with an f32 KV cache (GGML_TYPE_F32 = 0): fp32 rounding only."""
    return llama(path, flash_attn=False, type_k=0, type_v=0, **kw)


def check_architectures(work, data, tokens):
    for arch, (overrides, options) in ARCHS.items():
        d = os.path.join(work, f"arch_{arch}")
        run(["train", CFG, *MODEL, *COMMON, *overrides, "train.steps=30", "train.lr=1e-2", f"data.train={data}",
             f"run.out_dir={d}"], what=f"train {arch}")
        ckpt = os.path.join(d, "ckpt-latest.h5")
        path = os.path.join(work, f"arch_{arch}.gguf")
        run(["export", ckpt, "--format", "gguf", "--type", "f32", "--out", path], what=f"export {arch}")
        ref = reference_logits(ckpt, tokens, True, **options)
        got = cpp_logits(exact_llama(path), tokens)
        err = np.abs(got - ref).max()
        print(f"{arch}: max |llama.cpp - reference| logit = {err:.2e} (logits up to {np.abs(ref).max():.1f})")
        if not err <= 1e-4:
            failures.append(f"{arch} ({' '.join(overrides)}): llama.cpp logits differ from the reference by "
                            f"{err:.2e}")
        # LoRA on the frozen base with biases: the adapter GGUF in llama.cpp equals the merged checkpoint
        ft = os.path.join(work, f"arch_{arch}_ft")
        run(["finetune", CFG, *COMMON, f"base={ckpt}", f"data.train={data}", "train.steps=10", "train.lr=2e-2",
             "lora.rank=4", f"run.out_dir={ft}"], what=f"finetune {arch}")
        ad, merged = os.path.join(work, f"arch_{arch}_adapter.gguf"), os.path.join(work, f"arch_{arch}_merged.h5")
        run(["export", os.path.join(ft, "ckpt-latest.h5"), "--format", "gguf", "--lora-adapter", "--out", ad],
            what=f"export {arch} adapter")
        run(["merge", os.path.join(ft, "ckpt-latest.h5"), "--out", merged], what=f"merge {arch}")
        merged_ref = reference_logits(merged, tokens, True, **options)
        with_adapter = cpp_logits(exact_llama(path, lora_path=ad), tokens)
        err, moved = np.abs(with_adapter - merged_ref).max(), np.abs(merged_ref - ref).max()
        print(f"{arch} LoRA: |adapter in llama.cpp - merged reference| = {err:.2e}; the adapters move the logits "
              f"by {moved:.3f}")
        if not err <= 1e-4 or not moved > 1e-2:
            failures.append(f"{arch} LoRA: llama.cpp with the adapter differs from the merged checkpoint by "
                            f"{err:.2e} (the adapters move the logits by {moved:.3f})")


def main():
    work = tempfile.mkdtemp(prefix="llamacpp-")
    data = os.path.join(work, "train.h5")
    run(["data", "synth", "--task", "add2", "--n", "4000", "--seed", "2", "--out", data])
    d = os.path.join(work, "model")
    run(["train", CFG, *MODEL, *COMMON, "train.steps=150", "train.lr=1e-2", f"data.train={data}",
         f"run.out_dir={d}"], what="train")
    ckpt = os.path.join(d, "ckpt-latest.h5")
    tokens = [256] + list(PROMPT.encode())
    ref = reference_logits(ckpt, tokens, True)
    retort_text = run(["generate", ckpt, "--prompt", PROMPT, "--max-tokens", "6", "--temperature", "0"]).stdout
    retort_answer = retort_text.split(PROMPT, 1)[-1].strip("\n")
    for t, atol in ATOL.items():
        path = os.path.join(work, f"m_{t}.gguf")
        run(["export", ckpt, "--format", "gguf", "--type", t, "--out", path], what=f"export {t}")
        llm = llama(path)
        # any valid UTF-8 text is BOS + its bytes in both (llama.cpp's tokenizer takes text: bytes that are not
        # UTF-8 become U+FFFD there, so only text is compared)
        for text in (PROMPT, "what is 305 plus 98? ", "a\nb\tc  d", "\u00e9 \u00fc \U0001f600", "ab:123 ?xq="):
            want = [256] + list(text.encode())
            got_tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
            if got_tokens != want or llm.detokenize(got_tokens[1:]) != text.encode():
                failures.append(f"{t}: llama.cpp tokenizes {text!r} as {got_tokens}, retort as {want}")
        got = cpp_logits(llm, tokens)
        err = np.abs(got - ref).max()
        print(f"{t}: max |llama.cpp - reference| logit = {err:.4f} (allowed {atol})")
        if not err <= atol:
            failures.append(f"{t}: llama.cpp logits differ from the model's by {err:.4f} (allowed {atol})")
        if t in ("f32", "f16", "q8_0"):
            answer = greedy_cpp(llm, tokens, 6)
            if answer != retort_answer:
                failures.append(f"{t}: llama.cpp continues {PROMPT!r} with {answer!r}, retort generate with "
                                f"{retort_answer!r}")
        del llm

    # LoRA: the adapter GGUF on the base equals the merged model in llama.cpp
    base_f32 = os.path.join(work, "m_f32.gguf")
    ft = os.path.join(work, "ft")
    run(["finetune", CFG, *COMMON, f"base={ckpt}", f"data.train={data}", "train.steps=20", "train.lr=2e-2",
         "lora.rank=4", f"run.out_dir={ft}"], what="finetune")
    ad = os.path.join(work, "adapter.gguf")
    run(["export", os.path.join(ft, "ckpt-latest.h5"), "--format", "gguf", "--lora-adapter", "--out", ad],
        what="export adapter")
    merged = os.path.join(work, "merged.gguf")
    run(["export", os.path.join(ft, "ckpt-latest.h5"), "--format", "gguf", "--type", "f32", "--out", merged],
        what="export merged")
    with_adapter = cpp_logits(llama(base_f32, lora_path=ad), tokens)
    merged_logits = cpp_logits(llama(merged), tokens)
    base_logits = cpp_logits(llama(base_f32), tokens)
    err = np.abs(with_adapter - merged_logits).max()
    moved = np.abs(merged_logits - base_logits).max()
    print(f"LoRA: |adapter - merged| = {err:.4f}; the adapters move the logits by {moved:.4f}")
    if not err <= 2e-2 or not moved > 10 * max(err, 1e-3):
        failures.append(f"LoRA: llama.cpp with the adapter differs from the merged model by {err:.4f} "
                        f"(the adapters move the logits by {moved:.4f})")
    check_architectures(work, data, tokens)
    passed = ("llama.cpp: every type loads, tokenizes, matches the logits and greedy text; the LoRA adapter "
              "applies; q/k/v biases, head_dim and linear / llama3 RoPE scaling match")
    finish(failures, passed, work=work)


if __name__ == "__main__":
    main()
