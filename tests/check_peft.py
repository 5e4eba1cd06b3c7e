"""`retort export --format peft` and `retort import peft` against PEFT itself, on small random models saved here by
transformers (a Llama, a tied Llama and a Qwen2 with q/k/v biases) and imported with `retort import hf`.

Export: adapters `retort finetune` trained (all seven projections; then q, v and the head with another rank,
alpha, rsLoRA and dropout; QLoRA; the head of a tied model) are exported, PeftModel.from_pretrained loads them
onto the HF base without missing or unexpected keys (or, for the tied head only, PEFT's warning about tied
targets), adapter_config.json says what retort trained, and PEFT's logits equal retort's logits of the
adapter checkpoint (1e-4, fp32); merge_and_unload's weights equal `retort merge` exported with --format hf
(1e-5).

Import: adapters made by get_peft_model with random non-zero factors (several configs, the Qwen2 base, BF16
factors) and saved by save_pretrained are imported onto the base's checkpoint; retort's logits equal PEFT's,
`retort merge` equals merge_and_unload, exporting the import gives back PEFT's file's tensors exactly, and
`retort finetune finetune.adapter=...` continues from it: its first loss (a dataset of one window, so every
batch is that window) equals PEFT's loss on that window, and the steps run.

Refusals, each by its message: DoRA, fan_in_fan_out, another peft_type, trained biases, modules_to_save,
per-module ranks, an embedding target, a layer subset, a base of another shape, target_modules without
factors, a pickle-only folder, --format peft of a full checkpoint, finetune.adapter with another base or
with full fine-tuning.

usage: check_peft.py HARNESS   (HARNESS: ckpt_logits_harness; run with .venv-hf/bin/python; RETORT_BIN and
RT_SOURCE_DIR from ctest)"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as tf  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import check_close, finish, run_retort, train_losses  # noqa: E402

HARNESS = sys.argv[1]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
failures = []
tf.logging.set_verbosity_error()
torch.set_num_threads(2)

V = 300
DIMS = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.1)
IDS = [256, 5, 77, 290, 13, 13, 140, 9, 258, 31, 200, 64, 1, 299, 42, 17]
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ONE_WINDOW = "hello peft, this is one window.\n"  # retort data text --format whole: BOS, the bytes, EOS
SEQ = len(ONE_WINDOW.encode()) + 1  # BOS + bytes + EOS = SEQ + 1 ids: exactly one training window


def run(args, expect=0, what=None):
    return run_retort(failures, args, expect, what, timeout=300)


def make_hf(d, cls, cfg_cls, seed, **kw):
    torch.manual_seed(seed)
    model = cls(cfg_cls(**{**DIMS, **kw}))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
    model.save_pretrained(d)
    return d


def load_hf(d):
    return tf.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()


def retort_logits(ckpt, work):
    out = os.path.join(work, "harness-" + os.path.basename(ckpt))
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([HARNESS, ckpt, out, "0"] + [str(i) for i in IDS], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        failures.append(f"harness on {ckpt}: exited {p.returncode}: {p.stderr[-800:]}")
        return None
    return np.fromfile(os.path.join(out, "logits.bin"), dtype=np.float32).reshape(len(IDS), -1)


def peft_load(hf_dir, adapter_dir):
    """PeftModel.from_pretrained on the HF base, with every warning PEFT or transformers raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(load_hf(hf_dir), adapter_dir).eval()
    return model, [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning,
                                                                                  FutureWarning))]


def torch_logits(model):
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].float().numpy()


def compare_merge(what, peft_model, adapter_ckpt, work):
    """merge_and_unload's weights against `retort merge` exported with --format hf."""
    merged = os.path.join(work, f"merged-{what}.h5")
    hf_out = os.path.join(work, f"merged-{what}-hf")
    if run(["merge", adapter_ckpt, "--out", merged], what=f"{what}: merge").returncode:
        return
    if run(["export", merged, "--format", "hf", "--out", hf_out], what=f"{what}: export merged").returncode:
        return
    got = load_file(os.path.join(hf_out, "model.safetensors"))
    want = {k: v.float() for k, v in peft_model.merge_and_unload().state_dict().items()}
    if "lm_head.weight" not in got and "lm_head.weight" in want:  # a tied head: one tensor
        want.pop("lm_head.weight")
    if set(got) != set(want):
        failures.append(f"{what}: retort merge's tensors {sorted(set(got) ^ set(want))} differ from PEFT's")
        return
    worst = max(float((got[k] - want[k]).abs().max()) for k in want)
    if not worst <= 1e-5:
        failures.append(f"{what}: retort merge differs from merge_and_unload by {worst}")
    print(f"{what}: retort merge == PEFT merge_and_unload (max |delta| {worst:.1e})")


def finetune(name, base, data, work, *extra, steps=3):
    out = os.path.join(work, "ft-" + name)
    run(["finetune", CFG, f"base={base}", f"data.train={data}", "data.val=", f"data.seq_len={SEQ}",
         f"train.steps={steps}", "train.warmup_steps=1", "train.batch_size=2", "train.eval_every=0",
         "train.lr=2e-2", "run.log_every=1", "system.threads=2", "data.loss_on=all", f"run.out_dir={out}",
         *extra], what=f"finetune {name}")
    return out


def check_export(name, adapter_ckpt, hf_dir, work, want_cfg, tied_warning=False, exact=True):
    """export --format peft; PEFT loads it onto hf_dir; its config, logits (and merge) match retort's."""
    out = os.path.join(work, "peft-" + name)
    p = run(["export", adapter_ckpt, "--format", "peft", "--out", out, "--base-name", hf_dir],
            what=f"{name}: export peft")
    if p.returncode:
        return None
    cfg = json.load(open(os.path.join(out, "adapter_config.json")))
    for k, v in want_cfg.items():
        got = sorted(cfg[k]) if k == "target_modules" else cfg[k]
        if got != v:
            failures.append(f"{name}: adapter_config.json {k} = {got!r}, expected {v!r}")
    if cfg["base_model_name_or_path"] != hf_dir:
        failures.append(f"{name}: base_model_name_or_path {cfg['base_model_name_or_path']!r}")
    model, warned = peft_load(hf_dir, out)
    tied = [w for w in warned if "tie_word_embeddings" in w]
    other = [w for w in warned if "tie_word_embeddings" not in w]
    if other or bool(tied) != tied_warning:
        failures.append(f"{name}: PEFT warned {warned} while loading the export")
    ref = torch_logits(model)
    got = retort_logits(adapter_ckpt, work)
    base = torch_logits(load_hf(hf_dir))
    if got is not None and exact:
        check_close(failures, f"{name}: retort's logits vs PEFT's", got, ref, 1e-4, 0)
        moved = float(np.abs(ref - base).max())
        if moved < 1e-2:  # else the adapters did nothing and the check proves little
            failures.append(f"{name}: the adapters move the logits by only {moved}")
        print(f"{name}: PEFT loads the export; max |logits - PEFT| = {np.abs(got - ref).max():.1e} "
              f"(adapters move them by {moved:.2f})")
    return model


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def peft_adapter(d, base_dir, seed, bf16=False, **lora):
    """get_peft_model with random factors (init_lora_weights=False) saved by save_pretrained into d."""
    torch.manual_seed(seed)
    base = load_hf(base_dir)
    if bf16:
        base = base.to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # autocast_adapter_dtype=False keeps BF16 factors BF16 (PEFT upcasts them to F32 by default)
        model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **lora),
                               autocast_adapter_dtype=False)
        model.save_pretrained(d)
    return d


def check_import(name, adapter_dir, hf_dir, base_ckpt, work, bf16=False):
    """retort import peft: logits, merge and the round trip back to PEFT's tensors."""
    ckpt = os.path.join(work, f"imported-{name}.h5")
    if run(["import", "peft", adapter_dir, "--base", base_ckpt, "--out", ckpt], what=f"{name}: import").returncode:
        return None, None
    model, warned = peft_load(hf_dir, adapter_dir)
    ref = torch_logits(model)
    got = retort_logits(ckpt, work)
    if got is not None:
        check_close(failures, f"{name}: imported logits vs PEFT's", got, ref, 1e-4, 0)
        moved = float(np.abs(ref - torch_logits(load_hf(hf_dir))).max())
        if moved < 1e-2:
            failures.append(f"{name}: the adapters move the logits by only {moved}")
        print(f"{name}: imported; max |logits - PEFT| = {np.abs(got - ref).max():.1e} (adapters move them by "
              f"{moved:.2f}, max |logit| {np.abs(ref).max():.1f})")
    back = os.path.join(work, f"reexport-{name}")
    if run(["export", ckpt, "--format", "peft", "--out", back] + (["--dtype", "bf16"] if bf16 else []),
           what=f"{name}: export the import").returncode == 0:
        a = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
        a = {k: v for k, v in a.items() if ".lora_" in k}  # not lm_head.base_layer.weight
        b = load_file(os.path.join(back, "adapter_model.safetensors"))
        if set(a) != set(b) or any(a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k]) for k in a):
            failures.append(f"{name}: import + export does not give back PEFT's tensors exactly")
        if bf16 and any(v.dtype != torch.bfloat16 for v in a.values()):
            failures.append(f"{name}: PEFT saved {set(v.dtype for v in a.values())}, not BF16 factors")
    return ckpt, model


def check_continue(name, ckpt, model, base_ckpt, window_data, work):
    """finetune.adapter: step 1's loss is the imported model's loss on the one window; the steps run."""
    ids = torch.tensor([[256] + list(ONE_WINDOW.encode()) + [257]])
    with torch.no_grad():
        logits = model(ids[:, :-1]).logits[0].float()
        want = float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]))
    out = finetune("continue-" + name, base_ckpt, window_data, work, f"finetune.adapter={ckpt}",
                   "lora.rank=2", steps=3)
    if not os.path.exists(os.path.join(out, "metrics.jsonl")):
        return
    losses = train_losses(out)
    if sorted(losses) != [1, 2, 3]:
        failures.append(f"{name}: continued fine-tuning logged steps {sorted(losses)}")
        return
    if abs(losses[1] - want) > 1e-4:
        failures.append(f"{name}: continued fine-tuning starts at loss {losses[1]}, PEFT's is {want}")
    if not losses[3] < losses[1]:
        failures.append(f"{name}: continued fine-tuning does not lower the loss: {losses}")
    print(f"{name}: finetune.adapter starts at loss {losses[1]:.6f} (PEFT {want:.6f}), then {losses[3]:.4f}")


def edit_config(src, dst, edit):
    shutil.copytree(src, dst)
    path = os.path.join(dst, "adapter_config.json")
    cfg = json.load(open(path))
    edit(cfg)
    json.dump(cfg, open(path, "w"), indent=2)
    return dst


def refuse(what, args, code, words):
    p = run(args, expect=code, what=what)
    if p.returncode == code and not all(w in p.stderr for w in words):
        failures.append(f"{what}: the message should name {words}: {p.stderr.strip()}")


def main():
    work = tempfile.mkdtemp(prefix="rt_peft_")
    L, M = tf.LlamaForCausalLM, tf.LlamaConfig
    hf = make_hf(f"{work}/hf-llama", L, M, 1)
    base = os.path.join(work, "base.h5")
    run(["import", "hf", hf, "--out", base], what="import hf")
    text = os.path.join(work, "train.txt")
    write_text(text, "".join(f"the {i} peft test line number {i * 7 % 13}\n" for i in range(40)))
    data = os.path.join(work, "train.h5")
    run(["data", "text", "--in", text, "--out", data], what="data text")
    write_text(os.path.join(work, "one.txt"), ONE_WINDOW)
    window = os.path.join(work, "one.h5")
    run(["data", "text", "--in", os.path.join(work, "one.txt"), "--out", window, "--format", "whole"],
        what="data text (one window)")

    # export: all seven projections
    ft = finetune("all7", base, data, work, "lora.rank=4", "lora.alpha=8")
    ad = os.path.join(ft, "ckpt-latest.h5")
    model = check_export("all7", ad, hf, work, {"r": 4, "lora_alpha": 8, "use_rslora": False, "lora_dropout": 0.0,
                                               "target_modules": sorted(ALL7), "peft_type": "LORA",
                                               "task_type": "CAUSAL_LM", "bias": "none", "use_dora": False,
                                               "fan_in_fan_out": False, "inference_mode": True})
    if model is not None:
        compare_merge("all7", model, ad, work)
    # a subset with the head, another rank and alpha, rsLoRA and dropout
    ft = finetune("qv-head", base, data, work, "lora.rank=2", "lora.alpha=5", "lora.rslora=true",
                  "lora.dropout=0.1", "lora.targets=q,v,head")
    ad2 = os.path.join(ft, "ckpt-latest.h5")
    model = check_export("qv-head", ad2, hf, work, {"r": 2, "lora_alpha": 5, "use_rslora": True,
                                                    "lora_dropout": 0.1,
                                                    "target_modules": ["lm_head", "q_proj", "v_proj"]})
    if model is not None:
        compare_merge("qv-head", model, ad2, work)
    # QLoRA: the same files (PEFT applies them to the full-precision base: only the note and loading checked)
    ft = finetune("qlora", base, data, work, "finetune.method=qlora", "lora.rank=4", steps=2)
    p = run(["export", os.path.join(ft, "ckpt-latest.h5"), "--format", "peft", "--out", f"{work}/peft-qlora"],
            what="qlora: export peft")
    if p.returncode == 0 and "NF4" not in p.stderr:
        failures.append(f"qlora: export peft should note the NF4 base: {p.stderr!r}")
    if p.returncode == 0:
        _, warned = peft_load(hf, f"{work}/peft-qlora")
        if warned:
            failures.append(f"qlora: PEFT warned {warned}")
    # a tied model's head: PEFT warns about the tied target, and runs it as retort does
    tied = make_hf(f"{work}/hf-tied", L, M, 2, tie_word_embeddings=True)
    tied_base = os.path.join(work, "tied.h5")
    run(["import", "hf", tied, "--out", tied_base], what="import hf tied")
    ft = finetune("tied-head", tied_base, data, work, "lora.targets=q,head", "lora.rank=4")
    check_export("tied-head", os.path.join(ft, "ckpt-latest.h5"), tied, work,
                 {"target_modules": ["lm_head", "q_proj"]}, tied_warning=True)

    # import
    d = peft_adapter(f"{work}/peft-in-all7", hf, 11, r=4, lora_alpha=16, target_modules=ALL7)
    ckpt, model = check_import("in-all7", d, hf, base, work)
    if ckpt:
        compare_merge("in-all7", model, ckpt, work)
        model, _ = peft_load(hf, d)
        check_continue("in-all7", ckpt, model, base, window, work)
    d = peft_adapter(f"{work}/peft-in-head", hf, 12, r=3, lora_alpha=7, use_rslora=True,
                     target_modules=["q_proj", "down_proj", "lm_head"], lora_dropout=0.05)
    ckpt, model = check_import("in-rslora-head", d, hf, base, work)
    if ckpt:
        compare_merge("in-rslora-head", model, ckpt, work)
    d = peft_adapter(f"{work}/peft-in-bf16", hf, 13, bf16=True, r=2, lora_alpha=4, target_modules="all-linear")
    check_import("in-bf16-all-linear", d, hf, base, work, bf16=True)
    d = peft_adapter(f"{work}/peft-in-tied", tied, 14, r=2, lora_alpha=4, target_modules=["v_proj", "lm_head"])
    check_import("in-tied-head", d, tied, tied_base, work)
    Q = (tf.Qwen2ForCausalLM, tf.Qwen2Config)
    qwen = make_hf(f"{work}/hf-qwen2", *Q, 3)
    qwen_base = os.path.join(work, "qwen2.h5")
    if run(["import", "hf", qwen, "--out", qwen_base], what="import hf qwen2").returncode == 0:
        d = peft_adapter(f"{work}/peft-in-qwen2", qwen, 15, r=4, lora_alpha=8, target_modules=ALL7)
        ckpt, model = check_import("in-qwen2", d, qwen, qwen_base, work)
        if ckpt:
            compare_merge("in-qwen2", model, ckpt, work)
            ft = finetune("qwen2", qwen_base, data, work, f"finetune.adapter={ckpt}")
            check_export("qwen2-continued", os.path.join(ft, "ckpt-latest.h5"), qwen, work,
                         {"r": 4, "lora_alpha": 8, "target_modules": sorted(ALL7)})

    # refusals
    good = f"{work}/peft-in-all7"
    out = os.path.join(work, "refused.h5")

    def refused_import(what, d, words, base_ckpt=base):
        refuse(what, ["import", "peft", d, "--base", base_ckpt, "--out", out], 1, words)
        if os.path.exists(out):
            failures.append(f"{what}: a refused import left a checkpoint behind")

    for key, value, words in [("use_dora", True, ["use_dora", "DoRA"]),
                              ("fan_in_fan_out", True, ["fan_in_fan_out"]),
                              ("peft_type", "IA3", ["peft_type", "LORA", "IA3"]),
                              ("bias", "all", ["bias", "\"all\""]),
                              ("modules_to_save", ["lm_head"], ["modules_to_save"]),
                              ("rank_pattern", {"q_proj": 8}, ["rank_pattern", "q_proj", "one rank"]),
                              ("target_modules", ["q_proj", "embed_tokens"], ["target_modules", "embed_tokens"]),
                              ("target_modules", ALL7 + ["lm_head"], ["lm_head", "no factors"]),
                              ("task_type", "SEQ_CLS", ["task_type", "SEQ_CLS"]),
                              ("lora_dropout", 0.95, ["lora.dropout", "0.95"])]:
        refused_import(f"{key} {value}", edit_config(good, f"{work}/r-{key}-{len(str(value))}",
                                                     lambda c: c.update({key: value})), words)
    d = peft_adapter(f"{work}/peft-layer0", hf, 16, r=2, target_modules=["q_proj"], layers_to_transform=[0])
    refused_import("layers_to_transform", d, ["q_proj", "1 of the base's 2 layers"])
    other = make_hf(f"{work}/hf-other", L, M, 4, intermediate_size=80)
    other_base = os.path.join(work, "other.h5")
    run(["import", "hf", other, "--out", other_base], what="import hf other")
    refused_import("another base", good, ["mlp.down_proj.lora_A.weight", "[4, 96]", "[4, 80]"],
                   base_ckpt=other_base)
    pickle = f"{work}/r-pickle"
    os.makedirs(pickle)
    shutil.copy(os.path.join(good, "adapter_config.json"), pickle)
    torch.save({}, os.path.join(pickle, "adapter_model.bin"))
    refused_import("pickle", pickle, ["adapter_model.bin", "safetensors"])
    extra = f"{work}/r-magnitude"
    shutil.copytree(good, extra)
    t = load_file(os.path.join(extra, "adapter_model.safetensors"))
    mag = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"
    t[mag] = torch.ones(64)
    save_file(t, os.path.join(extra, "adapter_model.safetensors"), metadata={"format": "pt"})
    refused_import("a DoRA magnitude", extra, [mag, "not a LoRA factor"])
    refuse("export peft of a full checkpoint", ["export", base, "--format", "peft", "--out", f"{work}/r-full"], 1,
           ["--format peft", "adapter checkpoint"])
    refuse("import peft without --base", ["import", "peft", good, "--out", out], 2, ["--base"])
    imported = os.path.join(work, "imported-in-all7.h5")
    if os.path.exists(imported):
        cmd = ["finetune", CFG, f"data.train={data}", "data.val=", f"data.seq_len={SEQ}", "train.steps=1",
               "system.threads=2", f"finetune.adapter={imported}"]
        refuse("finetune.adapter on another base", cmd + [f"base={tied_base}", f"run.out_dir={work}/r-ft1"], 1,
               ["finetune.adapter", "hash"])
        refuse("finetune.adapter with full", cmd + [f"base={base}", "finetune.method=full",
                                                    f"run.out_dir={work}/r-ft2"], 1, ["finetune.adapter", "lora"])
    finish(failures, "peft: retort's LoRA/QLoRA adapters export as PEFT adapters that PEFT loads with retort's "
           "logits and merge; PEFT adapters import with PEFT's logits and merge, round-trip exactly and continue "
           "fine-tuning from PEFT's loss; refusals name their cause", work)


main()
