"""A retort checkpoint read with h5py alone (no retort code): every tensor under the documented GGUF llama
name with the documented shape (derived from the model section of the stored config), float32, nothing else;
the optimizer moments mirroring it; every dataset chunked (at most 1 MiB a chunk) with a Fletcher-32
checksum; and the root (with strings_crc32), /state, /config and /tokenizer attributes of docs/checkpoint.md.

usage: check_ckpt_h5py.py CHECKPOINT.h5 [--weights-only]
  --weights-only  the file may lack /optim (an exported or weights-only checkpoint)"""
import sys
import zlib

import h5py
import numpy as np


def model_section(yaml_text):
    """The "key: value" lines under "model:". The stored config is retort's own YAML output (sections at
    column 0, keys indented), but tolerate comments and quotes."""
    section, out = None, {}
    for raw in yaml_text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "\t")):
            section = line.rstrip(":").strip()
        elif section == "model" and ":" in line:
            k, v = line.strip().split(":", 1)
            out[k.strip()] = v.strip().strip("\"'")
    return out


def expected(m):
    need = ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "tie_embeddings")
    missing = [k for k in need if k not in m]
    if missing:
        raise SystemExit(f"the stored config's model section lacks {missing}: {m}")
    V, C, L = int(m["vocab_size"]), int(m["dim"]), int(m["n_layers"])
    H, KVH, F = int(m["n_heads"]), int(m["n_kv_heads"]), int(m["ffn_dim"])
    D = C // H
    shapes = {"token_embd.weight": (V, C), "output_norm.weight": (C,)}
    for l in range(L):
        shapes.update({f"blk.{l}.attn_norm.weight": (C,), f"blk.{l}.attn_q.weight": (H * D, C),
                       f"blk.{l}.attn_k.weight": (KVH * D, C), f"blk.{l}.attn_v.weight": (KVH * D, C),
                       f"blk.{l}.attn_output.weight": (C, H * D), f"blk.{l}.ffn_norm.weight": (C,),
                       f"blk.{l}.ffn_gate.weight": (F, C), f"blk.{l}.ffn_up.weight": (F, C),
                       f"blk.{l}.ffn_down.weight": (C, F)})
    if m["tie_embeddings"].lower() not in ("true", "yes", "on", "1"):
        shapes["output.weight"] = (V, C)
    return shapes, V


def check_storage(ds, errors):
    if ds.size == 0:
        return
    if not ds.chunks or not ds.fletcher32:
        errors.append(f"{ds.name}: not chunked with a Fletcher-32 checksum (chunks {ds.chunks})")
    elif int(np.prod(ds.chunks)) * ds.dtype.itemsize > 1 << 20 or \
            any(c > s for c, s in zip(ds.chunks, ds.shape)):
        errors.append(f"{ds.name}: chunk {ds.chunks} exceeds 1 MiB or the shape {ds.shape}")


def check_group(f, group, shapes, errors):
    if group not in f:
        errors.append(f"/{group} is missing")
        return
    names = set(f[group].keys())
    if names != set(shapes):
        errors.append(f"/{group}: missing {sorted(set(shapes) - names)}, "
                      f"unexpected {sorted(names - set(shapes))}")
    for name, shape in shapes.items():
        if name not in f[group]:
            continue
        ds = f[group][name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != shape or ds.dtype != np.float32:
            errors.append(f"/{group}/{name}: {getattr(ds, 'shape', None)} {getattr(ds, 'dtype', None)}, "
                          f"expected {shape} float32")
            continue
        check_storage(ds, errors)
        if not np.isfinite(ds[()]).all():
            errors.append(f"/{group}/{name}: non-finite values")


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit(__doc__)
    path, weights_only = sys.argv[1], "--weights-only" in sys.argv[2:]
    errors = []
    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
        if a.get("format") != "retort-checkpoint" or a.get("version") != 1 or \
                a.get("architecture") != "llama" or not str(a.get("producer")).startswith("retort "):
            errors.append(f"root attributes: {a}")
        if set(f.keys()) - {"model", "optim", "state", "config", "tokenizer"}:
            errors.append(f"unexpected top-level objects: {sorted(f.keys())}")
        yaml_text = f["config"].attrs["yaml"]
        if not isinstance(yaml_text, str):
            raise SystemExit(f"/config yaml is {type(yaml_text)}, expected str")
        strings = [a.get("format"), a.get("architecture"), a.get("producer"), yaml_text,
                   f["tokenizer"].attrs.get("type")]
        crc = a.get("strings_crc32")
        if crc is None or not all(isinstance(s, str) for s in strings) or \
                int(crc) != zlib.crc32(b"".join(s.encode("utf-8") + b"\0" for s in strings)):
            errors.append(f"strings_crc32 {crc} does not match the string attributes")
        shapes, V = expected(model_section(yaml_text))
        check_group(f, "model", shapes, errors)
        if "optim" in f or not weights_only:
            for g in ("optim/adam_m", "optim/adam_v"):
                check_group(f, g, shapes, errors)
        st = dict(f["state"].attrs)
        for k in ("step", "tokens_seen", "data_epoch", "data_index", "world_size"):
            lo = 1 if k == "world_size" else 0
            if k not in st or np.shape(st[k]) != () or st[k].dtype != np.int64 or st[k] < lo:
                errors.append(f"/state {k}: {st.get(k)!r}, expected a non-negative int64 scalar")
        if "rng" not in st or np.shape(st["rng"]) != (4,) or st["rng"].dtype != np.uint64:
            errors.append(f"/state rng: {st.get('rng')!r}, expected 4 x uint64")
        tok = dict(f["tokenizer"].attrs)
        ids = [int(tok.get(k, -1)) for k in ("vocab_size", "bos_id", "eos_id", "pad_id")]
        if tok.get("type") != "byte" or ids != [V, 256, 257, 258]:
            errors.append(f"/tokenizer attributes: {tok}")
    if errors:
        print(f"{path}:\n  " + "\n  ".join(errors))
        sys.exit(1)
    print(f"{path}: {len(shapes)} tensors with the documented names, shapes and storage")


if __name__ == "__main__":
    main()
