"""The safetensors reader (csrc/import/safetensors.c) against files the safetensors package writes:
- F32 and F16 (numpy) and BF16 (ml_dtypes) tensors of several shapes (scalar, empty, 1-4 dims), F16 with
  subnormals, infinities, NaN and -0; retort's fp32 equals numpy's / ml_dtypes' conversion bit for bit, and
  names, dtypes and shapes equal what safetensors' own safe_open reports;
- metadata read back by key; a key that is absent is absent;
- the same file rewritten with a header not padded to 8 bytes (as MLX writes), which safetensors still loads;
- a sharded folder with model.safetensors.index.json as transformers writes it, read as one model;
- refusals: an I64 tensor is listed but its float read is refused naming the tensor and dtype; an index whose
  shard escapes the folder ("../"), or that puts a tensor in a shard that does not hold it; a shard holding a
  tensor the index does not list.

usage: check_safetensors.py HARNESS   (safetensors and ml_dtypes from .pydeps, see scripts/bootstrap.sh)"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from checklib import finish

HARNESS = sys.argv[1]
failures = []
rng = np.random.default_rng(15)


def harness(path, out, keys=(), expect=0, what=""):
    """Runs the harness; returns ({name: (dtype, shape, values or refusal message)}, {key: value}, stderr)."""
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([HARNESS, path, out, *keys], capture_output=True, text=True, timeout=120)
    if p.returncode != expect:
        failures.append(f"{what}: harness exited {p.returncode}, expected {expect}: {p.stderr[-800:]}")
        return {}, {}, p.stderr
    if expect != 0:
        return {}, {}, p.stderr
    tensors, meta, index = {}, {}, {}
    for line in open(os.path.join(out, "meta.txt"), encoding="utf-8"):
        line = line.rstrip("\n")
        kind, rest = line.split(" ", 1)
        if kind == "tensor":
            i, dtype, ndim, rest = rest.split(" ", 3)
            parts = rest.split(" ", int(ndim))
            shape = tuple(int(d) for d in parts[:int(ndim)])
            index[i] = parts[int(ndim)]
            tensors[index[i]] = [dtype, shape, None]
        elif kind == "read":
            name = index[rest]
            vals = np.fromfile(os.path.join(out, f"t{rest}.bin"), dtype=np.float32)
            tensors[name][2] = vals.reshape(tensors[name][1])
        elif kind == "refused":
            i, msg = rest.split(" ", 1)
            tensors[index[i]][2] = msg
        elif kind == "meta":
            k, v = rest.split("\t", 1)
            meta[k] = v
    return tensors, meta, p.stderr


def same_bits(what, got, ref):
    """got (fp32 from retort) equals ref converted to fp32, bit for bit (NaN payloads included)."""
    ref = np.asarray(ref).astype(np.float32)
    if not isinstance(got, np.ndarray):
        failures.append(f"{what}: not read: {got}")
    elif got.shape != ref.shape:
        failures.append(f"{what}: shape {got.shape} != {ref.shape}")
    elif not np.array_equal(got.view(np.uint32), ref.view(np.uint32)):
        bad = np.flatnonzero(got.view(np.uint32).ravel() != ref.view(np.uint32).ravel())
        failures.append(f"{what}: {bad.size} values differ, first at {bad[0]}: {got.ravel()[bad[0]]!r} vs "
                        f"{ref.ravel()[bad[0]]!r}")


def check_against_package(what, path, tensors, got):
    """Names, dtypes, shapes as safetensors' safe_open reports them, and every value bit for bit."""
    with safe_open(path, framework="np") as f:
        keys = sorted(f.keys())
        if keys != sorted(got):
            failures.append(f"{what}: tensors {sorted(got)} != safetensors' {keys}")
        for k in keys:
            sl = f.get_slice(k)
            if k in got and (got[k][0], list(got[k][1])) != (sl.get_dtype(), list(sl.get_shape())):
                failures.append(f"{what}: {k}: {got[k][:2]} != safetensors' {sl.get_dtype()} {sl.get_shape()}")
    for k, ref in tensors.items():
        if k in got:
            same_bits(f"{what}: {k}", got[k][2], ref)


def rewrite_unpadded(src, dst):
    """The same tensors with a compact header whose length is not a multiple of 8."""
    data = open(src, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    text = json.dumps(header, separators=(",", ":")).encode()
    while len(text) % 8 == 0 or len(text) % 2 == 0:  # odd: every tensor starts unaligned
        header.setdefault("__metadata__", {})["pad"] = header.get("__metadata__", {}).get("pad", "") + "x"
        text = json.dumps(header, separators=(",", ":")).encode()
    open(dst, "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
    return len(text)


special16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.1e-5, 5.96e-8, -5.96e-8, 3.0e-6, np.inf, -np.inf,
                      np.nan, 1 / 3], dtype=np.float16)
subnormals16 = np.arange(0, 1024, dtype=np.uint16).view(np.float16)  # every positive subnormal and zero
bf_src = np.concatenate([rng.standard_normal(300).astype(np.float32) * 7,
                         np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3e38], dtype=np.float32)])
with tempfile.TemporaryDirectory(prefix="rt_st_") as tmp:
    tensors = {
        "model.embed_tokens.weight": rng.standard_normal((17, 8)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float16),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 5), dtype=np.float32),
        "f16.special": special16,
        "f16.subnormal": subnormals16.reshape(32, 32),
        "bf16.values": bf_src.astype(ml_dtypes.bfloat16),
        "four.dims": rng.standard_normal((2, 3, 1, 4)).astype(np.float16),
    }
    meta = {"format": "pt", "note": "ünïcode ✓"}
    path = os.path.join(tmp, "model.safetensors")
    save_file(tensors, path, metadata=meta)
    got, gmeta, _ = harness(path, os.path.join(tmp, "out1"), ["format", "note", "missing"], what="padded file")
    check_against_package("padded file", path, tensors, got)
    if gmeta != {"format": "pt", "note": "ünïcode ✓"}:
        failures.append(f"metadata: {gmeta} != {meta} (and 'missing' absent)")

    # unpadded header: the package must still accept it (so it is a valid file), and so must we
    unpadded = os.path.join(tmp, "unpadded.safetensors")
    n = rewrite_unpadded(path, unpadded)
    got, _, _ = harness(unpadded, os.path.join(tmp, "out2"), what=f"unpadded header ({n} bytes)")
    with safe_open(unpadded, framework="np") as f:  # the package accepts it: a valid file
        for k in ("model.embed_tokens.weight", "f16.special"):
            same_bits(f"unpadded header: safetensors' own {k}", f.get_tensor(k).astype(np.float32), tensors[k])
    for k, v in tensors.items():
        if k in got:
            same_bits(f"unpadded header ({n} bytes): {k}", got[k][2], v)
    if set(got) != set(tensors):
        failures.append(f"unpadded header: tensors {sorted(got)} != {sorted(tensors)}")

    # a sharded folder as transformers' save_pretrained writes it
    shard_dir = os.path.join(tmp, "sharded")
    os.makedirs(shard_dir)
    names = sorted(tensors)
    shards = [names[:3], names[3:6], names[6:]]
    weight_map = {}
    for s, part in enumerate(shards):
        fname = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: tensors[k] for k in part}, os.path.join(shard_dir, fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    index = {"metadata": {"total_size": sum(v.nbytes for v in tensors.values())}, "weight_map": weight_map}
    json.dump(index, open(os.path.join(shard_dir, "model.safetensors.index.json"), "w"), indent=2)
    got, gmeta, _ = harness(shard_dir, os.path.join(tmp, "out3"), ["format"], what="sharded folder")
    if set(got) != set(tensors):
        failures.append(f"sharded folder: tensors {sorted(got)} != {sorted(tensors)}")
    for k, v in tensors.items():
        if k in got:
            same_bits(f"sharded folder: {k}", got[k][2], v)
            if got[k][1] != v.shape:
                failures.append(f"sharded folder: {k}: shape {got[k][1]} != {v.shape}")
    if gmeta.get("format") != "pt":
        failures.append(f"sharded folder: metadata {gmeta}")

    # refusals of a bad index: a shard outside the folder, a tensor in the wrong shard, an unlisted tensor
    def bad_index(tag, wm, needle):
        d = os.path.join(tmp, tag)
        os.makedirs(d)
        for s, part in enumerate(shards):
            fname = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file({k: tensors[k] for k in part}, os.path.join(d, fname))
        json.dump({"weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
        _, _, err = harness(d, os.path.join(tmp, tag + "_out"), expect=1, what=f"index {tag}")
        if needle not in err:
            failures.append(f"index {tag}: message {err.strip()!r} lacks {needle!r}")

    escape = dict(weight_map)
    escape[names[0]] = "../model.safetensors"
    bad_index("escape", escape, "expected a file name inside the index's folder")
    wrong = dict(weight_map)
    wrong[names[0]] = wrong[names[-1]]
    bad_index("wrong_shard", wrong, f"puts tensor '{names[0]}' in")
    missing = dict(weight_map)
    del missing[names[1]]
    bad_index("unlisted", missing, f"holds tensor '{names[1]}' that the weight_map does not list")

    # dtypes retort lists but does not read as floats
    other = {"ids": np.arange(6, dtype=np.int64).reshape(2, 3), "w": np.ones(4, dtype=np.float32),
             "d": np.zeros(3, dtype=np.float64)}
    opath = os.path.join(tmp, "other.safetensors")
    save_file(other, opath)
    got, _, _ = harness(opath, os.path.join(tmp, "out4"), what="other dtypes")
    for k, dt in (("ids", "I64"), ("d", "F64")):
        if k not in got:
            failures.append(f"other dtypes: {k} not listed")
            continue
        msg = got[k][2]
        if got[k][0] != dt or not isinstance(msg, str) or f"'{k}'" not in msg or dt not in msg or opath not in msg:
            failures.append(f"other dtypes: {k}: expected a refusal naming the file, '{k}' and {dt}, got {got[k]}")
    if "w" in got:
        same_bits("other dtypes: w", got["w"][2], other["w"])

finish(failures, "safetensors: package-written F32/F16/BF16 files, unpadded header, shards and refusals read right")
