"""A retort checkpoint read with h5py alone: every tensor under the documented GGUF llama name with the
documented shape (derived from the model section of the stored config), nothing else, the optimizer moments
mirroring it, and the root, /state, /config and /tokenizer attributes of docs/checkpoint.md.

usage: check_ckpt_h5py.py CHECKPOINT.h5"""
import sys

import h5py
import numpy as np


def model_section(yaml_text):
    # the stored config is retort's own YAML output: "section:" lines then "  key: value" lines
    section, out = None, {}
    for line in yaml_text.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":")
        elif section == "model" and ":" in line:
            k, v = line.strip().split(":", 1)
            out[k] = v.strip()
    return out


def expected(m):
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
    if m["tie_embeddings"] != "true":
        shapes["output.weight"] = (V, C)
    return shapes


def main():
    path = sys.argv[1]
    errors = []
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        if attrs.get("format") != "retort-checkpoint" or int(attrs.get("version", 0)) != 1 or \
                attrs.get("architecture") != "llama" or not str(attrs.get("producer", "")).startswith("retort"):
            errors.append(f"root attributes: {attrs}")
        yaml_text = f["config"].attrs["yaml"]
        if not isinstance(yaml_text, str):
            errors.append("config yaml is not a string")
        shapes = expected(model_section(yaml_text))
        for group in ("model", "optim/adam_m", "optim/adam_v"):
            names = set(f[group].keys())
            if names != set(shapes):
                errors.append(f"/{group}: missing {sorted(set(shapes) - names)}, unexpected {sorted(names - set(shapes))}")
            for name, shape in shapes.items():
                if name in f[group]:
                    ds = f[group][name]
                    if ds.shape != shape or ds.dtype != np.float32:
                        errors.append(f"/{group}/{name}: {ds.shape} {ds.dtype}, expected {shape} float32")
                    elif not np.isfinite(ds[()]).all():
                        errors.append(f"/{group}/{name}: non-finite values")
        st = dict(f["state"].attrs)
        for k in ("step", "tokens_seen", "data_epoch", "data_index", "world_size"):
            if k not in st or np.ndim(st[k]) != 0:
                errors.append(f"/state lacks scalar {k}")
        if "rng" not in st or np.shape(st["rng"]) != (4,) or st["rng"].dtype != np.uint64:
            errors.append("/state rng is not 4 x uint64")
        tok = dict(f["tokenizer"].attrs)
        if tok.get("type") != "byte" or int(tok.get("bos_id", -1)) != 256 or int(tok.get("eos_id", -1)) != 257 or \
                int(tok.get("pad_id", -1)) != 258:
            errors.append(f"/tokenizer attributes: {tok}")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"{path}: {len(shapes)} tensors with the documented names and shapes")


if __name__ == "__main__":
    main()
