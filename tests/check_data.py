"""`retort data` checked from the outside with h5py: synthetic task documents decode to prompts whose
answers Python recomputes independently, train and val never share a prompt, the same arguments give the
same bytes; `data text` ids equal the UTF-8 bytes; malformed datasets made with h5py fail to load with a
message naming the problem, never a crash.

usage: check_data.py   (RETORT_BIN from ctest)"""
import json
import os
import re
import tempfile

import h5py
import numpy as np

from checklib import finish, run_retort

RETORT = os.environ["RETORT_BIN"]
BOS, EOS = 256, 257
failures = []


def retort(*args, expect=0):
    return run_retort(failures, args, expect, what="retort " + " ".join(args), tail=600)


def docs(path):
    with h5py.File(path, "r") as f:
        tok, off = f["tokens"][()], f["doc_offsets"][()]
        pl = f["prompt_len"][()] if "prompt_len" in f else None
        attrs = dict(f.attrs)
    out = []
    for d in range(len(off) - 1):
        ids = tok[off[d]:off[d + 1]]
        out.append((ids, None if pl is None else int(pl[d])))
    return out, attrs


def answer_of(task, prompt):
    if task == "kv":
        pairs = dict(re.findall(r"([a-z]{2}):(\d{3}) ", prompt))
        q = re.fullmatch(r"(?:[a-z]{2}:\d{3} ){3,6}\?([a-z]{2})=", prompt)
        assert q, prompt
        return pairs[q.group(1)]
    if task == "plus":  # the fine-tuning task: the add task's problems in words, "what is 305 plus 98? " -> 403
        m = re.fullmatch(r"what is (\d+) plus (\d+)\? ", prompt)
        assert m, prompt
        a, b = m.group(1), m.group(2)
        assert str(int(a)) == a and str(int(b)) == b and int(a) < 1000 and int(b) < 1000, prompt
        return str(int(a) + int(b))
    m = re.fullmatch(r"(\d+)([+*])(\d+)=", prompt)
    assert m, prompt
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    if task in ("add", "add2"):
        assert op == "+"
    limit = 100 if task == "add2" or op == "*" else 1000
    assert a < limit and b < limit, prompt
    return str(a + b if op == "+" else a * b)


def check_synth(tmp):
    for task in ("arithmetic", "add", "add2", "plus", "kv"):
        prompts = {}
        for split, n in (("train", 3000), ("val", 400)):
            path = os.path.join(tmp, f"{task}-{split}.h5")
            retort("data", "synth", "--task", task, "--n", str(n), "--split", split, "--seed", "5", "--out", path)
            ds, attrs = docs(path)
            if (attrs["format"], attrs["task"], attrs["split"], int(attrs["n_docs"]), int(attrs["vocab_size"])) != \
                    ("retort-dataset", task, split, n, 259):
                failures.append(f"{task}/{split}: attributes {attrs}")
            prompts[split] = set()
            for ids, pl in ds:
                if ids[0] != BOS or ids[-1] != EOS or pl is None or (ids[1:-1] >= 256).any():
                    failures.append(f"{task}/{split}: malformed document {ids.tolist()}")
                    break
                prompt = bytes(ids[1:1 + pl].astype(np.uint8)).decode()
                ans = bytes(ids[1 + pl:-1].astype(np.uint8)).decode()
                if answer_of(task, prompt) != ans:
                    failures.append(f"{task}/{split}: {prompt!r} has answer {ans!r}")
                    break
                prompts[split].add(prompt)
        if task == "plus":  # like add: each operand has 1, 2 or 3 digits, every length present
            lengths = {len(x) for q in prompts["train"] for x in re.findall(r"\d+", q)}
            if lengths != {1, 2, 3}:
                failures.append(f"plus: operand lengths {sorted(lengths)}, expected 1, 2 and 3 digits")
        shared = prompts["train"] & prompts["val"]
        if shared:
            failures.append(f"{task}: train and val share {len(shared)} prompts, e.g. {sorted(shared)[:3]}")
    # determinism: same arguments, same ids; another seed, other ids
    a, b, c = (os.path.join(tmp, x) for x in ("d1.h5", "d2.h5", "d3.h5"))
    retort("data", "synth", "--task", "kv", "--n", "500", "--seed", "9", "--out", a)
    retort("data", "synth", "--task", "kv", "--n", "500", "--seed", "9", "--out", b)
    retort("data", "synth", "--task", "kv", "--n", "500", "--seed", "10", "--out", c)
    ta, tb, tc = (h5py.File(x, "r")["tokens"][()] for x in (a, b, c))
    if not np.array_equal(ta, tb) or np.array_equal(ta[:200], tc[:200]):
        failures.append("synth is not a deterministic function of its seed")


def check_text(tmp):
    jl = os.path.join(tmp, "in.jsonl")
    rows = [{"text": "héllo \"wörld\"\n\ttab"}, {"text": "emoji \U0001F600 and \\ backslash", "id": 7, "meta": {"a": [1, 2.5e3, None, True]}}]
    with open(jl, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")  # json.dumps escapes non-ASCII as \\uXXXX, surrogate pairs included
        f.write("\n")  # blank lines are skipped
    out = os.path.join(tmp, "text.h5")
    retort("data", "text", "--in", jl, "--format", "jsonl", "--out", out)
    ds, attrs = docs(out)
    got = [bytes(ids[1:-1].astype(np.uint8)) for ids, _ in ds]
    want = [r["text"].encode("utf-8") for r in rows]
    if got != want:
        failures.append(f"data text jsonl: {got} != {want}")
    pc = os.path.join(tmp, "pc.jsonl")
    with open(pc, "w") as f:
        f.write(json.dumps({"prompt": "Q: 2+2?\nA:", "completion": " 4"}) + "\n")
    out = os.path.join(tmp, "pc.h5")
    retort("data", "text", "--in", pc, "--format", "jsonl", "--out", out)
    ds, _ = docs(out)
    if ds[0][1] != len("Q: 2+2?\nA:") or bytes(ds[0][0][1:-1].astype(np.uint8)) != b"Q: 2+2?\nA: 4":
        failures.append(f"prompt/completion: {ds}")
    lines = os.path.join(tmp, "in.txt")
    open(lines, "wb").write(b"first line\r\n\nsecond \xff line\nthird\n\n\nfourth para\n")
    for fmt, want in (("lines", [b"first line", b"second \xff line", b"third", b"fourth para"]),
                      ("blank", [b"first line", b"second \xff line\nthird", b"fourth para"]),
                      ("whole", [open(lines, "rb").read()])):
        out = os.path.join(tmp, f"{fmt}.h5")
        retort("data", "text", "--in", lines, "--format", fmt, "--out", out)
        got = [bytes(ids[1:-1].astype(np.uint8)) for ids, _ in docs(out)[0]]
        if got != want:
            failures.append(f"data text --format {fmt}: {got} != {want}")
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"text": "ok"}\n{"text": "ok"}\n{"text": "unterminated}\n')
    p = retort("data", "text", "--in", bad, "--format", "jsonl", "--out", os.path.join(tmp, "x.h5"), expect=1)
    if "bad.jsonl:3:" not in p.stderr:
        failures.append(f"bad JSON line 3 not named: {p.stderr}")
    with open(bad, "w") as f:
        f.write('{"text": 5}\n')
    p = retort("data", "text", "--in", bad, "--format", "jsonl", "--out", os.path.join(tmp, "x.h5"), expect=1)
    if "bad.jsonl:1:" not in p.stderr or "string" not in p.stderr:
        failures.append(f"non-string text not reported: {p.stderr}")
    with open(bad, "w") as f:  # a key that a C string would cut to "text"
        f.write('{"text": "ok"}\n{"text\\u0000x": "ignored key?"}\n')
    p = retort("data", "text", "--in", bad, "--format", "jsonl", "--out", os.path.join(tmp, "x.h5"), expect=1)
    if "bad.jsonl:2:" not in p.stderr or "NUL" not in p.stderr:
        failures.append(f"a key with \\u0000 not refused: {p.stderr}")
    retort("data", "text", "--in", os.path.join(tmp, "missing.txt"), "--out", os.path.join(tmp, "x.h5"), expect=1)
    retort("data", "synth", "--task", "nope", "--n", "5", "--out", os.path.join(tmp, "x.h5"), expect=2)
    retort("data", "synth", "--task", "add", "--n", "ten", "--out", os.path.join(tmp, "x.h5"), expect=2)
    retort("data", "synth", "--task", "add", "--n", "0", "--out", os.path.join(tmp, "x.h5"), expect=2)
    retort("data", "synth", "--task", "add", "--n", "5", "--split", "test", "--out", os.path.join(tmp, "x.h5"), expect=2)
    retort("data", "frobnicate", expect=2)


def check_bad_datasets(tmp):
    good = os.path.join(tmp, "good.h5")
    retort("data", "synth", "--task", "add", "--n", "50", "--out", good)

    def variant(name, edit, needle):
        path = os.path.join(tmp, name + ".h5")
        with h5py.File(good, "r") as src, h5py.File(path, "w") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            data = {k: src[k][()] for k in src}
            edit(data, dst.attrs)
            for k, v in data.items():
                if v is not None:
                    dst[k] = v
        p = retort("inspect", path, expect=1)
        if needle not in p.stderr or name not in p.stderr:
            failures.append(f"{name}: stderr lacks {needle!r} or the file name: {p.stderr}")

    def setitem(d, k, i, v):
        d[k] = d[k].copy()
        d[k][i] = v

    variant("id-too-large", lambda d, a: setitem(d, "tokens", 5, 300), "outside the dataset's vocabulary")
    variant("id-negative", lambda d, a: setitem(d, "tokens", 5, -1), "token 5")
    variant("offsets-decrease", lambda d, a: setitem(d, "doc_offsets", 3, 1), "decrease")
    variant("offsets-short", lambda d, a: setitem(d, "doc_offsets", -1, d["doc_offsets"][-1] - 1), "doc_offsets end")
    variant("prompt-too-long", lambda d, a: setitem(d, "prompt_len", 2, 1000), "prompt_len[2]")
    variant("no-tokens", lambda d, a: d.update(tokens=None), "tokens is missing")
    variant("wrong-format", lambda d, a: a.__setitem__("format", "something-else"), "unknown format attribute")
    variant("float-tokens", lambda d, a: d.update(tokens=d["tokens"].astype(np.float32)), "expected integer")
    variant("2d-tokens", lambda d, a: d.update(tokens=d["tokens"][: (len(d["tokens"]) // 2) * 2].reshape(2, -1)), "rank 2")
    raw = open(good, "rb").read()
    for frac in (0.05, 0.3, 0.6, 0.95):
        cut = os.path.join(tmp, f"cut{int(frac * 100)}.h5")
        open(cut, "wb").write(raw[: int(len(raw) * frac)])
        p = retort("inspect", cut, expect=1)
        if os.path.basename(cut) not in p.stderr:
            failures.append(f"truncated dataset error does not name the file: {p.stderr}")


def check_padded_tasks(tmp):
    """addpad and askpad (the demo's tasks): 3-digit zero-padded operands, the 4-digit zero-padded sum that
    Python recomputes, a fixed document length (14 and 23 ids), operands of every width 1-3 before padding,
    and train and val disjoint."""
    forms = {"addpad": (r"(\d{3})\+(\d{3})=", 14), "askpad": (r"what is (\d{3})\+(\d{3})\? ", 23)}
    for task, (pattern, length) in forms.items():
        prompts = {}
        for split, n in (("train", 3000), ("val", 400)):
            path = os.path.join(tmp, f"{task}-{split}.h5")
            retort("data", "synth", "--task", task, "--n", str(n), "--split", split, "--seed", "5", "--out", path)
            ds, attrs = docs(path)
            if (attrs["task"], attrs["split"], int(attrs["n_docs"])) != (task, split, n):
                failures.append(f"{task}/{split}: attributes {attrs}")
            prompts[split], widths = set(), set()
            for ids, pl in ds:
                if len(ids) != length or ids[0] != BOS or ids[-1] != EOS or pl is None:
                    failures.append(f"{task}/{split}: document of {len(ids)} ids, expected {length}: {ids.tolist()}")
                    break
                prompt = bytes(ids[1:1 + pl].astype(np.uint8)).decode()
                ans = bytes(ids[1 + pl:-1].astype(np.uint8)).decode()
                m = re.fullmatch(pattern, prompt)
                if not m or ans != "%04d" % (int(m.group(1)) + int(m.group(2))):
                    failures.append(f"{task}/{split}: {prompt!r} has answer {ans!r}")
                    break
                widths.update(len(str(int(x))) for x in m.groups())
                prompts[split].add(prompt)
            if widths != {1, 2, 3}:
                failures.append(f"{task}/{split}: operand widths {sorted(widths)}, expected 1, 2 and 3 digits")
        shared = prompts["train"] & prompts["val"]
        if shared:
            failures.append(f"{task}: train and val share {len(shared)} prompts, e.g. {sorted(shared)[:3]}")


def main():
    tmp = tempfile.mkdtemp(prefix="data-")
    check_synth(tmp)
    check_text(tmp)
    check_bad_datasets(tmp)
    check_padded_tasks(tmp)
    finish(failures, "data synth, data text and dataset validation checks passed")


if __name__ == "__main__":
    main()
