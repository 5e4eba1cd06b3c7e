"""`retort import hf` and `retort export --format hf` against transformers: small random models saved here by
transformers' save_pretrained (Llama F32, Llama BF16, a tied head without lm_head.weight, sharded with
model.safetensors.index.json, a config.json rewritten in the transformers 4.x style, Llama 3.1's llama3 RoPE
scaling run past its original context, linear scaling, head_dim 24 != 64 / 4, Qwen2 with q/k/v biases (also
tied, sharded and BF16), Mistral) are imported, and retort's logits on the same ids must be within 1e-4 of
transformers' fp32 forward of the model reloaded from disk, and retort's greedy continuation (rt_generate
with the KV cache) must equal transformers' generate. Exported back, transformers must load the folder with
no missing or unexpected weights, every weight equal to the original's and the same logits. The imported
checkpoint must work with retort generate, eval, finetune and export.
retort's byte tokenizer exported as a tokenizer.json gives AutoTokenizer retort's ids.
(check_import_hf_tokenizer.py checks models with real tokenizers.) Refusals, each with its exit code and a
message naming the key or tensor: yarn RoPE scaling, an I8 tensor, a missing tensor, a wrong shape, an
unknown tensor, mlp_bias, a gelu activation, a Mistral or Qwen2 sliding window shorter than the context.

usage: check_import_hf.py HARNESS   (run with .venv-hf/bin/python: transformers 5 and torch 2.x, see
scripts/bootstrap.sh test; RETORT_BIN and RT_SOURCE_DIR from ctest)"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' progress bars
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as tf  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import check_close, finish, run_retort  # noqa: E402
import tokenizer_ref as R  # noqa: E402

HARNESS = sys.argv[1]
SRC = os.environ["RT_SOURCE_DIR"]
failures = []
tf.logging.set_verbosity_error()
torch.set_num_threads(2)

V, CTX = 300, 96
DIMS = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=CTX,
            initializer_range=0.2)  # 10x transformers' default: logits of ~7, so RoPE scaling moves them by ~6
                                    # and greedy continuations do not collapse into one repeated id
IDS = [256, 5, 77, 290, 13, 13, 140, 9, 258, 31, 200, 64, 1, 299, 42, 17, 88, 123, 7, 250]
N_NEW = 12


def run(args, expect=0, what=None):
    return run_retort(failures, args, expect, what)


def make(d, cls, cfg_cls, seed, save_dtype=None, **kw):
    """A random model of cls saved to d by save_pretrained; norms randomised too, so a swapped norm shows."""
    sharded = kw.pop("_sharded", False)
    edit = kw.pop("_edit", None)
    torch.manual_seed(seed)
    model = cls(cfg_cls(**{**DIMS, **kw}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):  # transformers starts them at 0
                p.copy_(0.5 * torch.randn_like(p))
        if edit:
            edit(model)
    if save_dtype is not None:
        model = model.to(save_dtype)
    model.save_pretrained(d, **({"max_shard_size": "100KB"} if sharded else {}))
    return d


def reference(d):
    """transformers' logits and greedy continuation of IDS, from the model reloaded from disk in fp32."""
    model = tf.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    x = torch.tensor([IDS])
    with torch.no_grad():
        logits = model(x).logits[0].numpy()
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=N_NEW,
                             eos_token_id=257, pad_token_id=258)[0, len(IDS):].tolist()
    if 257 in out:  # retort generate stops after EOS, as transformers does with eos_token_id
        out = out[:out.index(257) + 1]
    return logits, out


def harness(ckpt, work):
    out = os.path.join(work, "harness-" + os.path.basename(ckpt))
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([HARNESS, ckpt, out, str(N_NEW)] + [str(i) for i in IDS], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        failures.append(f"harness on {ckpt}: exited {p.returncode}: {p.stderr[-800:]}")
        return None, None
    logits = np.fromfile(os.path.join(out, "logits.bin"), dtype=np.float32).reshape(len(IDS), -1)
    greedy = [int(t) for t in open(os.path.join(out, "greedy.txt")).read().split()]
    return logits, greedy


def check_import(name, d, work, extra=(), expect_note=None):
    """Import d; retort's logits and greedy ids against transformers'. Returns the checkpoint path."""
    ckpt = os.path.join(work, name + ".h5")
    p = run(["import", "hf", d, "--out", ckpt, *extra], what=f"{name}: import")
    if p.returncode != 0:
        return None
    if expect_note and expect_note not in p.stderr:
        failures.append(f"{name}: expected a note containing {expect_note!r} on stderr, got {p.stderr!r}")
    ref_logits, ref_greedy = reference(d)
    logits, greedy = harness(ckpt, work)
    if logits is None:
        return None
    check_close(failures, f"{name}: logits", logits, ref_logits, 1e-4, 0)
    if greedy != ref_greedy:
        failures.append(f"{name}: greedy ids {greedy} != transformers' {ref_greedy}")
    print(f"{name}: max |logits - transformers| = {np.abs(logits - ref_logits).max():.2e}, "
          f"greedy {greedy}")
    return ckpt


def rewrite_config(src, dst, edit):
    """A copy of folder src with config.json passed through edit(dict)."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, "config.json")
    cfg = json.load(open(path))
    edit(cfg)
    json.dump(cfg, open(path, "w"), indent=2)
    return dst


def rewrite_weights(src, dst, edit):
    """A copy of the one-file folder src with model.safetensors passed through edit(dict of tensors)."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, "model.safetensors")
    t = load_file(path)
    edit(t)
    save_file(t, path, metadata={"format": "pt"})
    return dst


def to_4x(cfg, legacy_type=False):
    """transformers 4.x's keys: top-level rope_theta, rope_scaling (null without scaling; with `type` for
    rope_type before 4.43), torch_dtype."""
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = rp if rp["rope_type"] != "default" else None
    if legacy_type and cfg["rope_scaling"]:
        rp["type"] = rp.pop("rope_type")
    cfg["torch_dtype"] = cfg.pop("dtype")


def refuse(what, d, work, words, extra=()):
    p = run(["import", "hf", d, "--out", os.path.join(work, "refused.h5"), *extra], expect=1, what=what)
    if p.returncode == 1 and not all(w in p.stderr for w in words):
        failures.append(f"{what}: the message should name {words}: {p.stderr.strip()}")
    if os.path.exists(os.path.join(work, "refused.h5")):
        failures.append(f"{what}: a refused import left a checkpoint behind")


def check_ckpt_works(ckpt, work):
    """generate, eval, finetune (LoRA) and export accept an imported checkpoint (ids < 259 from the byte
    tokenizer fit the vocabulary)."""
    # the continuation's ids above 255 print as nothing and the bytes need not be UTF-8: read bytes
    p = subprocess.run([os.environ["RETORT_BIN"], "generate", ckpt, "--prompt", "ab", "--max-tokens", "4",
                        "--temperature", "0"], capture_output=True, timeout=120)
    if p.returncode != 0 or not p.stdout.startswith(b"ab"):
        failures.append(f"generate: exited {p.returncode}: {p.stderr[-500:]!r}")
    data = os.path.join(work, "add2.h5")
    run(["data", "synth", "--task", "add2", "--n", "64", "--seed", "3", "--out", data], what="data synth")
    p = run(["eval", ckpt, "--data", data, "--json"], what="eval")
    if p.returncode == 0 and "loss" not in p.stdout:
        failures.append(f"eval printed no loss: {p.stdout[:300]}")
    cfg = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
    run(["finetune", cfg, f"base={ckpt}", f"data.train={data}", "data.val=", "data.seq_len=16", "train.steps=2",
         "train.warmup_steps=1", "train.batch_size=2", "train.eval_every=0", "finetune.method=lora",
         "system.threads=2", f"run.out_dir={work}/ft"], what="finetune lora")
    run(["export", ckpt, "--format", "gguf", "--type", "f32", "--out", os.path.join(work, "m.gguf")],
        what="export gguf")


def retort_ids(source, text):
    p = subprocess.run([os.environ["RETORT_BIN"], "tokenize", source, "--ids"], input=text.encode(),
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        failures.append(f"retort tokenize {source}: exited {p.returncode}: {p.stderr[-400:]!r}")
        return None
    return [int(x) for x in p.stdout.split()]


class LogCapture:
    """transformers' log records while loading (missing, unexpected or newly initialised weights warn)."""
    def __enter__(self):
        import logging
        self.records = []
        self.handler = logging.Handler()
        self.handler.emit = lambda r: self.records.append(r.getMessage())
        tf.logging.set_verbosity_warning()
        tf.logging.get_logger().addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        tf.logging.get_logger().removeHandler(self.handler)
        tf.logging.set_verbosity_error()


def check_export(name, ckpt, src, work, dtype="f32"):
    """retort export --format hf of an imported checkpoint: transformers loads it without missing or unexpected
    keys, every weight equals the source folder's (max |delta| 0), the header is laid out as the safetensors
    package writes it, and the logits equal the source model's (the config carries theta, eps, tying)."""
    out = os.path.join(work, "export-" + name)
    if run(["export", ckpt, "--format", "hf", "--dtype", dtype, "--out", out], what=f"{name}: export hf").returncode:
        return
    with LogCapture() as log:
        model, info = tf.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad or any("newly initialized" in r or "not used" in r or "missing" in r.lower() for r in log.records):
        failures.append(f"{name}: transformers loaded the export with {bad} / {log.records}")
    source = tf.AutoModelForCausalLM.from_pretrained(src)
    want, got = source.state_dict(), model.state_dict()
    if set(want) != set(got):
        failures.append(f"{name}: exported parameters {sorted(set(got) ^ set(want))} differ from the source's")
    else:
        worst = max(float((got[k].float() - want[k].float()).abs().max()) for k in want)
        if worst != 0 or any(got[k].dtype != want[k].dtype for k in want):
            failures.append(f"{name}: exported weights differ from the source's by {worst} (dtypes "
                            f"{ {str(got[k].dtype) for k in got} } vs { {str(want[k].dtype) for k in want} })")
    x = torch.tensor([IDS])
    with torch.no_grad():
        a, b = model.float()(x).logits, source.float()(x).logits
    if not torch.equal(a, b):
        failures.append(f"{name}: the export's logits differ from the source's by {float((a - b).abs().max())}")
    raw = open(os.path.join(out, "model.safetensors"), "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    names = [k for k in header if k != "__metadata__"]
    spans = [header[k]["data_offsets"] for k in names]
    if (n % 8 or raw[8:8 + n].rstrip(b" ") != raw[8:8 + n].rstrip() or list(header)[0] != "__metadata__"
            or header["__metadata__"] != {"format": "pt"} or names != sorted(names)
            or spans[0][0] != 0 or any(spans[i][1] != spans[i + 1][0] for i in range(len(spans) - 1))
            or spans[-1][1] != len(raw) - 8 - n):
        failures.append(f"{name}: model.safetensors is not laid out as the safetensors package writes files "
                        f"(header {n} bytes, first keys {list(header)[:3]})")
    tied = "lm_head.weight" not in names
    if tied != json.load(open(os.path.join(out, "config.json")))["tie_word_embeddings"]:
        failures.append(f"{name}: tie_word_embeddings does not match the presence of lm_head.weight")
    if os.path.exists(os.path.join(src, "tokenizer.json")):
        return
    # retort's byte tokenizer written as a tokenizer.json: AutoTokenizer gives retort's ids. transformers 5
    # forces its Qwen2Tokenizer (NFC) on any qwen2 folder, whatever tokenizer_class says: the file as written
    # is read with the generic class there (docs/export.md)
    qwen2 = json.load(open(os.path.join(out, "config.json")))["model_type"] == "qwen2"
    exported = (tf.PreTrainedTokenizerFast if qwen2 else tf.AutoTokenizer).from_pretrained(out)
    texts = R.make_texts(["<s>", "</s>", "<pad>"], n=60, seed=3)
    bad = [t for t in texts if exported(t)["input_ids"] != retort_ids(ckpt, t)]
    for t in bad[:3]:
        failures.append(f"{name}: the byte tokenizer's export gives {exported(t)['input_ids']} for {t!r}; "
                        f"retort tokenize gives {retort_ids(ckpt, t)}")
    print(f"{name}: export --format hf --dtype {dtype} reloads in transformers with identical weights and logits; "
          f"AutoTokenizer of its byte tokenizer.json gives retort's ids on {len(texts) - len(bad)}/{len(texts)} texts")


def main():
    work = tempfile.mkdtemp(prefix="rt_import_hf_")
    L, M = tf.LlamaForCausalLM, tf.LlamaConfig
    llama = make(f"{work}/hf-llama", L, M, 1, rope_theta=500000.0)
    ckpt = check_import("llama-f32", llama, work)
    if ckpt:
        check_export("llama-f32", ckpt, llama, work)
    bf16 = make(f"{work}/hf-bf16", L, M, 2, save_dtype=torch.bfloat16, rms_norm_eps=1e-5)
    ckpt_bf16 = check_import("llama-bf16", bf16, work)
    if ckpt_bf16:
        check_export("llama-bf16", ckpt_bf16, bf16, work, dtype="bf16")
    tied = make(f"{work}/hf-tied", L, M, 3, tie_word_embeddings=True)
    if os.path.exists(os.path.join(tied, "model.safetensors")) and "lm_head.weight" in load_file(
            os.path.join(tied, "model.safetensors")):
        failures.append("tied: transformers wrote lm_head.weight; the test expects it absent")
    ckpt_tied = check_import("llama-tied", tied, work)
    if ckpt_tied:
        check_export("llama-tied", ckpt_tied, tied, work)
    sharded = make(f"{work}/hf-sharded", L, M, 4, _sharded=True)
    if not os.path.exists(os.path.join(sharded, "model.safetensors.index.json")):
        failures.append("sharded: transformers wrote no model.safetensors.index.json")
    check_import("llama-sharded", sharded, work)
    old = rewrite_config(llama, f"{work}/hf-4x", to_4x)
    check_import("llama-4x-config", old, work)
    Q = (tf.Qwen2ForCausalLM, tf.Qwen2Config)
    qwen = make(f"{work}/hf-qwen2", *Q, 7, rope_theta=1000000.0)
    ckpt_qwen = check_import("qwen2-biases", qwen, work)
    if ckpt_qwen:
        check_export("qwen2-biases", ckpt_qwen, qwen, work)
    qwen_tied = make(f"{work}/hf-qwen2-tied", *Q, 8, tie_word_embeddings=True, _sharded=True,
                     save_dtype=torch.bfloat16)
    check_import("qwen2-tied-sharded-bf16", qwen_tied, work)
    llama3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 16}  # 20 ids + 12 new pass 16
    l31 = make(f"{work}/hf-llama31", L, M, 9, rope_parameters=llama3, tie_word_embeddings=True)
    ckpt_l31 = check_import("llama3-scaling", l31, work)
    if ckpt_l31:
        check_export("llama3-scaling", ckpt_l31, l31, work)
    check_import("llama3-scaling-4x", rewrite_config(l31, f"{work}/hf-llama31-4x", to_4x), work)
    lin = make(f"{work}/hf-linear", L, M, 10, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0,
                                                                 "factor": 2.0})
    check_import("linear-scaling", lin, work)
    check_import("linear-scaling-legacy", rewrite_config(lin, f"{work}/hf-linear-4x",
                                                         lambda c: to_4x(c, legacy_type=True)), work)
    hd = make(f"{work}/hf-head-dim", L, M, 11, head_dim=24)
    ckpt_hd = check_import("head-dim-24", hd, work)
    if ckpt_hd:
        check_export("head-dim-24", ckpt_hd, hd, work)
    mistral = make(f"{work}/hf-mistral", tf.MistralForCausalLM, tf.MistralConfig, 5, sliding_window=4096)
    check_import("mistral", mistral, work, expect_note="sliding_window 4096")
    if ckpt:
        check_ckpt_works(ckpt, work)
        busy = os.path.join(work, "busy")
        os.makedirs(busy)
        open(os.path.join(busy, "notes.txt"), "w").write("mine")
        p = run(["export", ckpt, "--format", "hf", "--out", busy], expect=1, what="export into a folder of others")
        if "notes.txt" not in p.stderr or not os.path.exists(os.path.join(busy, "notes.txt")):
            failures.append(f"export into a folder holding other files: {p.stderr.strip()}")
        run(["export", ckpt, "--format", "hf", "--dtype", "f16", "--out", busy], expect=2, what="--dtype f16")

    # refusals
    def yarn(c):
        c["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "yarn", "factor": 4.0,
                                "original_max_position_embeddings": 32}
    refuse("yarn", rewrite_config(llama, f"{work}/r-yarn", yarn), work, ["config.json", "rope_type", "yarn"])
    refuse("mlp_bias", rewrite_config(llama, f"{work}/r-mlpb", lambda c: c.update(mlp_bias=True)), work,
           ["config.json", "mlp_bias"])
    refuse("gelu", rewrite_config(llama, f"{work}/r-gelu", lambda c: c.update(hidden_act="gelu")), work,
           ["config.json", "hidden_act", "gelu"])
    refuse("window", make(f"{work}/r-window", tf.MistralForCausalLM, tf.MistralConfig, 6, sliding_window=32),
           work, ["config.json", "sliding_window 32", "--max-seq-len"])
    check_import("mistral-window-fits", f"{work}/r-window", work, extra=["--max-seq-len", "32"])
    refuse("qwen2 window", make(f"{work}/r-qwen-window", *Q, 12, use_sliding_window=True, sliding_window=32,
                                max_window_layers=1), work, ["config.json", "sliding_window 32"])
    refuse("longer context", llama, work, ["--max-seq-len 200", "max_position_embeddings 96"],
           extra=["--max-seq-len", "200"])
    up = "model.layers.0.mlp.up_proj.weight"
    refuse("I8", rewrite_weights(llama, f"{work}/r-i8", lambda t: t.update({up: t[up].to(torch.int8)})), work,
           [up, "I8"])
    k1 = "model.layers.1.self_attn.k_proj.weight"
    refuse("missing", rewrite_weights(llama, f"{work}/r-missing", lambda t: t.pop(k1)), work, [k1, "missing"])
    down = "model.layers.1.mlp.down_proj.weight"
    refuse("shape", rewrite_weights(llama, f"{work}/r-shape", lambda t: t.update({down: t[down].T.contiguous()})),
           work, [down, "[128, 64]", "[64, 128]"])
    qn = "model.layers.0.self_attn.q_norm.weight"
    refuse("unknown", rewrite_weights(llama, f"{work}/r-extra", lambda t: t.update({qn: torch.ones(16)})), work,
           [qn, "not part of"])
    inv = "model.layers.0.self_attn.rotary_emb.inv_freq"
    harmless = rewrite_weights(llama, f"{work}/hf-invfreq", lambda t: t.update({inv: torch.ones(8)}))
    check_import("llama-inv-freq", harmless, work, expect_note="RoPE inverse-frequency")
    finish(failures, "import hf: Llama (F32, BF16, tied, sharded, 4.x config, llama3 and linear RoPE scaling, "
           "head_dim 24), Qwen2 with biases and Mistral match transformers' logits and greedy ids; exports reload "
           "in transformers with identical weights and logits; refusals name their key or tensor", work)


if __name__ == "__main__":
    main()
