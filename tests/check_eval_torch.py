"""`retort eval` and the answer-only loss against PyTorch: a small model is trained with data.loss_on=answer,
then the losses `retort eval --json` reports (every target, and the answers alone) and its exact-match
accuracy are recomputed by tests/torch_llama.py from the checkpoint's weights, with the answer mask built
here from /prompt_len. Also: loss_on=answer on a dataset without prompts is refused, naming the key.

usage: check_eval_torch.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import json
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import finish, run_retort  # noqa: E402
from torch_llama import Llama  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
failures = []
EOS = 257


def run(args, expect=0):
    return run_retort(failures, args, expect, what="retort " + " ".join(args))


def load_model(ckpt, dims):
    V, C, L, H, KVH, F_, T = dims
    with h5py.File(ckpt, "r") as f:
        tied = "output.weight" not in f["model"]
        m = Llama(V, C, L, H, KVH, F_, T, tied=tied, dtype=torch.float64)
        with torch.no_grad():
            for name, t in m.named().items():
                t.copy_(torch.from_numpy(f["model"][name][()].astype(np.float64)))
    return m


def window_losses(model, tokens, mask, T):
    """Mean loss over consecutive windows of T + 1 ids: every target, and those whose mask is 1."""
    n_windows = (len(tokens) - 1) // T
    tot = ans = 0.0
    n_tot = n_ans = 0
    with torch.no_grad():
        for w0 in range(0, n_windows, 32):
            ws = range(w0, min(n_windows, w0 + 32))
            x = torch.tensor(np.stack([tokens[w * T:w * T + T] for w in ws]), dtype=torch.int64)
            y = torch.tensor(np.stack([tokens[w * T + 1:w * T + T + 1] for w in ws]), dtype=torch.int64)
            keep = torch.tensor(np.stack([mask[w * T + 1:w * T + T + 1] for w in ws]), dtype=torch.bool)
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
            tot += loss.sum().item()
            n_tot += loss.numel()
            ans += loss[keep.reshape(-1)].sum().item()
            n_ans += int(keep.sum())
    return tot / n_tot, n_tot, ans / n_ans, n_ans


def greedy_correct(model, tokens, offsets, plen):
    """Per document: the greedy continuation of BOS + prompt equals the answer followed by EOS."""
    out = []
    with torch.no_grad():
        for d in range(len(plen)):
            doc = tokens[offsets[d]:offsets[d + 1]]
            ids = list(doc[:1 + plen[d]])
            want = list(doc[1 + plen[d]:])
            for _ in range(len(want)):
                nxt = int(model(torch.tensor([ids], dtype=torch.int64))[0, -1].argmax())
                ids.append(nxt)
                if nxt == EOS:
                    break
            out.append(ids[1 + plen[d]:] == want)
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="eval-torch-")
    train_h5, val_h5 = os.path.join(tmp, "train.h5"), os.path.join(tmp, "val.h5")
    run(["data", "synth", "--task", "add", "--n", "3000", "--split", "train", "--seed", "5", "--out", train_h5])
    run(["data", "synth", "--task", "add", "--n", "60", "--split", "val", "--seed", "6", "--out", val_h5])
    dims = (259, 32, 2, 4, 2, 64, 32)
    cfg = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
    out = os.path.join(tmp, "run")
    run(["train", cfg, "model.dim=32", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2",
         "model.ffn_dim=64", "model.max_seq_len=32", "data.seq_len=32", "train.batch_size=8", "train.steps=30",
         "train.warmup_steps=3", "train.eval_every=10", "train.eval_batches=2", "data.loss_on=answer",
         "system.threads=2", f"data.train={train_h5}", f"data.val={val_h5}", f"run.out_dir={out}"])
    ck = os.path.join(out, "ckpt-latest.h5")
    recs = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    train = [r for r in recs if r["type"] == "train"]
    if not train or not train[-1]["loss"] < train[0]["loss"]:
        failures.append(f"answer-only training loss did not fall: {[r['loss'] for r in train]}")

    p = run(["eval", ck, "--data", val_h5, "--json"])
    row = json.loads(p.stdout)["rows"][0] if p.returncode == 0 else {}
    with h5py.File(val_h5, "r") as f:
        tokens, offsets, plen = f["tokens"][()], f["doc_offsets"][()], f["prompt_len"][()]
    mask = np.zeros(len(tokens), dtype=bool)
    for d in range(len(plen)):
        mask[offsets[d] + 1 + plen[d]:offsets[d + 1]] = True  # the answer and EOS
    model = load_model(ck, dims)
    loss, n, ans_loss, n_ans = window_losses(model, tokens, mask, 32)
    for key, ref in (("loss", loss), ("answer_loss", ans_loss)):
        got = row.get(key, float("nan"))
        if not abs(got - ref) <= 1e-4 * abs(ref) + 1e-5:
            failures.append(f"eval {key}: retort {got} vs PyTorch {ref}")
    if row.get("tokens") != n or row.get("answer_tokens") != n_ans:
        failures.append(f"eval token counts: retort {row.get('tokens')}/{row.get('answer_tokens')}, "
                        f"PyTorch {n}/{n_ans}")
    correct = greedy_correct(model, tokens, offsets, plen)
    # float32 against float64 may flip a near-tie argmax; more than one such flip in 60 is a bug
    if abs(row.get("correct", -10) - sum(correct)) > 1 or row.get("total") != len(correct):
        failures.append(f"eval exact-match: retort {row.get('correct')}/{row.get('total')}, "
                        f"PyTorch {sum(correct)}/{len(correct)}")
    print(f"retort: loss {row.get('loss')} answer loss {row.get('answer_loss')} correct {row.get('correct')}; "
          f"PyTorch: {loss:.6f} {ans_loss:.6f} {sum(correct)}")

    # A small model gets few sums right, so exact match is checked on answers PyTorch chose: every document
    # keeps its prompt and gets as its answer the model's own greedy 3 ids, with the last one changed in
    # every third document. retort must count exactly the unchanged ones.
    new_tokens, new_offsets, n_right = [], [0], 0
    with torch.no_grad():
        for d in range(len(plen)):
            ids = list(tokens[offsets[d]:offsets[d] + 1 + plen[d]])
            for _ in range(3):
                ids.append(int(model(torch.tensor([ids], dtype=torch.int64))[0, -1].argmax()))
            if d % 3 == 0:
                ids[-1] = (ids[-1] + 1) % 256
            else:
                n_right += 1
            new_tokens += ids
            new_offsets.append(len(new_tokens))
    chosen = os.path.join(tmp, "chosen.h5")
    with h5py.File(val_h5, "r") as src, h5py.File(chosen, "w") as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        f.attrs["n_tokens"] = np.int64(len(new_tokens))
        f.create_dataset("tokens", data=np.array(new_tokens, dtype=np.int32), chunks=True, fletcher32=True)
        f.create_dataset("doc_offsets", data=np.array(new_offsets, dtype=np.int64), chunks=True, fletcher32=True)
        f.create_dataset("prompt_len", data=plen.astype(np.int32), chunks=True, fletcher32=True)
    p = run(["eval", ck, "--data", chosen, "--json"])
    row = json.loads(p.stdout)["rows"][0] if p.returncode == 0 else {}
    if abs(row.get("correct", -10) - n_right) > 1 or row.get("total") != len(plen):
        failures.append(f"eval exact-match on PyTorch's own answers: retort {row.get('correct')}/{row.get('total')},"
                        f" expected {n_right}/{len(plen)}")
    print(f"exact match on PyTorch's answers: retort {row.get('correct')}/{row.get('total')}, expected {n_right}")

    # an answer-only loss needs prompts
    text = os.path.join(tmp, "plain.txt")
    with open(text, "w") as f:
        f.write("just some text without any prompt and answer split, long enough for a window or two\n" * 4)
    plain = os.path.join(tmp, "plain.h5")
    run(["data", "text", "--in", text, "--format", "whole", "--out", plain])
    p = run(["train", cfg, "data.seq_len=32", "model.max_seq_len=32", "train.steps=1", "train.warmup_steps=0", "data.loss_on=answer",
             f"data.train={plain}", "data.val=", f"run.out_dir={os.path.join(tmp, 'bad')}"], expect=1)
    if "data.loss_on" not in p.stderr or "prompt_len" not in p.stderr or plain not in p.stderr:
        failures.append(f"loss_on=answer without prompts: unclear error: {p.stderr[-800:]}")

    shutil.rmtree(tmp, ignore_errors=True)
    finish(failures, "eval losses, answer-only loss and exact match agree with PyTorch")


if __name__ == "__main__":
    main()
