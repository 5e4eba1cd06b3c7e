"""retort's GGUF files in llama.cpp itself (llama-cpp-python, installed by scripts/bootstrap.sh into .pydeps):
- every type loads; the byte tokenizer gives token id == byte value after BOS for UTF-8 texts (spaces, tabs,
  newlines, accents, an emoji), and detokenizes them back;
- llama.cpp's logits for the prompt match the model's forward (tests/torch_llama.py on the checkpoint's
  weights in float64, the reference retort's forward is checked against in model_torch) within each type's
  noise (llama.cpp keeps its KV cache in F16);
- llama.cpp's greedy continuation equals `retort generate --temperature 0` (f32, f16, q8_0);
- the LoRA adapter GGUF applied with llama.cpp's lora_path gives the merged model's logits.

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


def reference_logits(ckpt, tokens, tied):
    with h5py.File(ckpt, "r") as f:
        m = TorchLlama(259, C, 2, H, KVH, FF, T, tied=tied, dtype=torch.float64)
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
    passed = "llama.cpp: every type loads, tokenizes, matches the logits and greedy text; the LoRA adapter applies"
    finish(failures, passed, work=work)


if __name__ == "__main__":
    main()
