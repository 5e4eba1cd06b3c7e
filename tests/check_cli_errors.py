"""Bad input to the commands gives a clear error naming the file or option and a non-zero exit, never a crash:
datasets with ids >= vocab, truncated or garbage datasets and checkpoints, missing files, bad options.

usage: check_cli_errors.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import os
import subprocess
import tempfile

import h5py
import numpy as np

from checklib import finish

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
failures = []


def expect_error(args, code, *needles, env=None):
    p = subprocess.run([RETORT] + args, capture_output=True, text=True, env=env)
    # a negative code is a signal: a crash, which is never acceptable
    if p.returncode != code:
        failures.append(f"retort {' '.join(args)}: exit {p.returncode}, expected {code}; stderr: {p.stderr[-800:]}")
        return
    for n in needles:
        if n not in p.stderr:
            failures.append(f"retort {' '.join(args)}: stderr lacks {n!r}: {p.stderr[-800:]}")


def main():
    tmp = tempfile.mkdtemp(prefix="cli-errors-")
    cfg = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
    good = os.path.join(tmp, "good.h5")
    subprocess.run([RETORT, "data", "synth", "--task", "add", "--n", "300", "--out", good], check=True,
                   capture_output=True)
    small = ["model.dim=16", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=16",
             "model.max_seq_len=16", "data.seq_len=16", "train.steps=2", "train.warmup_steps=1",
             "train.batch_size=2", "data.val="]

    # ids >= vocab: a dataset made by hand with h5py, otherwise well-formed
    bad_ids = os.path.join(tmp, "bad_ids.h5")
    with h5py.File(good, "r") as src, h5py.File(bad_ids, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for k in src:
            dst[k] = src[k][()]
        tok = dst["tokens"][()]
        tok[37] = 400
        del dst["tokens"]
        dst["tokens"] = tok
    expect_error(["train", cfg, f"run.out_dir={tmp}/r1", f"data.train={bad_ids}"] + small, 1, "bad_ids.h5", "400")

    # truncated and garbage datasets
    trunc = os.path.join(tmp, "trunc.h5")
    data = open(good, "rb").read()
    open(trunc, "wb").write(data[: len(data) // 3])
    expect_error(["train", cfg, f"run.out_dir={tmp}/r2", f"data.train={trunc}"] + small, 1, "trunc.h5")
    garbage = os.path.join(tmp, "garbage.h5")
    open(garbage, "wb").write(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    expect_error(["train", cfg, f"run.out_dir={tmp}/r3", f"data.train={garbage}"] + small, 1, "garbage.h5")
    expect_error(["train", cfg, f"run.out_dir={tmp}/r4", f"data.train={tmp}/missing.h5"] + small, 1, "missing.h5")
    expect_error(["train", f"{tmp}/missing.yaml"], 2, "missing.yaml")
    expect_error(["train"], 2, "config")
    expect_error(["train", cfg, "--bogus"], 2, "--bogus")
    expect_error(["train", cfg, "--stop-after", "x"], 2, "--stop-after")

    # checkpoints: missing, garbage, truncated
    expect_error(["generate", f"{tmp}/missing-ckpt.h5", "--prompt", "1+1="], 1, "missing-ckpt.h5")
    expect_error(["generate", garbage, "--prompt", "1+1="], 1, "garbage.h5")
    expect_error(["eval", garbage, "--data", good], 1, "garbage.h5")
    expect_error(["generate", garbage], 2, "--prompt")
    expect_error(["generate", garbage, "--prompt", "x", "--max-tokens", "-3"], 2, "--max-tokens")
    expect_error(["generate", garbage, "--prompt", "x", "--temperature", "hot"], 2, "--temperature")
    expect_error(["eval", garbage], 2, "--data")
    expect_error(["eval", garbage, "--task", "no-such-task"], 2, "no-such-task")
    expect_error(["nonsense-command"], 2, "nonsense-command")

    # bf16 on a CPU oneDNN has no bf16 kernels for (capped to AVX2 here, as on an AVX2-only CPU): refused,
    # naming the instruction set
    expect_error(["train", cfg, f"run.out_dir={tmp}/bf16", f"data.train={good}", "system.device=cpu",
                  "system.precision=bf16"] + small, 1, "bf16 needs AVX-512", "AVX2 kernels",
                 env=dict(os.environ, DNNL_MAX_CPU_ISA="AVX2"))

    # system.device=cuda without a usable GPU: a clear error, whichever way this retort was built; auto falls
    # back to the CPU and trains
    ver = subprocess.run([RETORT, "--version"], capture_output=True, text=True).stdout
    if "gpu: yes" not in ver:
        why = "built without CUDA" if "cuda" not in ver.split("backends:")[1].splitlines()[0] else "no usable GPU"
        expect_error(["train", cfg, f"run.out_dir={tmp}/gpu", f"data.train={good}", "system.device=cuda"] + small,
                     1, "system.device is cuda", why)
        p = subprocess.run([RETORT, "train", cfg, f"run.out_dir={tmp}/auto", f"data.train={good}",
                            "system.device=auto"] + small, capture_output=True, text=True)
        if p.returncode != 0 or "backend cpu" not in p.stderr:
            failures.append(f"system.device=auto without a GPU did not train on the CPU: {p.stderr[-800:]}")

    # a real checkpoint cut short: error, no crash
    run = os.path.join(tmp, "ok")
    p = subprocess.run([RETORT, "train", cfg, f"run.out_dir={run}", f"data.train={good}"] + small,
                       capture_output=True, text=True)
    if p.returncode != 0:
        failures.append(f"small training run failed: {p.stderr[-800:]}")
    else:
        ck = os.path.join(run, "ckpt-00000002.h5")
        raw = open(ck, "rb").read()
        for frac in (0.1, 0.5, 0.9):
            cut = os.path.join(tmp, f"cut{int(frac * 10)}.h5")
            open(cut, "wb").write(raw[: int(len(raw) * frac)])
            expect_error(["generate", cut, "--prompt", "1+1="], 1, os.path.basename(cut))
            expect_error(["inspect", cut], 1, os.path.basename(cut))

    # retort tokenize: usage errors exit 2, unreadable tokenizers 1, each naming the source and the problem
    expect_error(["tokenize"], 2, "usage: retort tokenize SOURCE")
    expect_error(["tokenize", good, "--bogus"], 2, "unknown option --bogus")
    expect_error(["tokenize", good], 1, "good.h5", "not a retort checkpoint", "only checkpoints hold a tokenizer")
    expect_error(["tokenize", os.path.join(tmp, "missing.json")], 1, "missing.json", "a tokenizer source is")
    expect_error(["tokenize", tmp], 1, "a folder without tokenizer.json")
    bad_json = os.path.join(tmp, "tokenizer.json")
    open(bad_json, "w").write('{"model": {"type": "BPE", "vocab": {"a": 0}')
    expect_error(["tokenize", bad_json, "--text", "a"], 1, "tokenizer.json", "invalid JSON")
    seed = os.path.join(SRC, "tests", "fuzz", "corpus", "tokenizer_gguf", "llama-bpe.gguf")
    cut = os.path.join(tmp, "cut-vocab.gguf")
    open(cut, "wb").write(open(seed, "rb").read()[:300])
    expect_error(["tokenize", cut, "--text", "a"], 1, "cut-vocab.gguf", "truncated")

    finish(failures, "every bad input gave its error")


if __name__ == "__main__":
    main()
