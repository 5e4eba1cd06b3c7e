#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<harness>/ (committed; rerun after
changing a harness's input format). A few small valid inputs each: the configs retort ships, override lines,
JSONL prompts and texts, GGUF files written by the gguf package (llama.cpp's Python writer, independent of
ours), safetensors files written by the safetensors package (plus one with an unpadded header, as MLX
writes them), and edit programs for the HDF5 harnesses (fuzz_h5edit.h: the empty program reads the unedited valid
base file). Run with Debian's python3 and PYTHONPATH=.pydeps (scripts/bootstrap.sh test installs gguf
and safetensors)."""
import os
import random
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, os.path.join(root, ".pydeps"))
import gguf  # noqa: E402
import ml_dtypes  # noqa: E402
from safetensors.numpy import save as st_save  # noqa: E402


def put(harness, name, data):
    d = os.path.join(here, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def config():
    cfg_dir = os.path.join(root, "trainer", "configs")
    for name in sorted(os.listdir(cfg_dir)):
        if name.endswith(".yaml"):
            with open(os.path.join(cfg_dir, name), "rb") as f:
                put("config", "yaml-" + name, b"\0" + f.read())  # byte 0 even: YAML text
    put("config", "yaml-flow", b"\0{model: {dim: 64, n_heads: 2}, train: {lr: 1e-3, steps: 20}}\n")
    put("config", "yaml-anchor", b"\0train: &t {lr: 1e-3}\nrun: {seed: 1, out_dir: 'a\\u00e9'}\n")
    put("config", "overrides",  # byte 1 odd: override lines
        b"\1train.steps=20\nmodel.dim=64\nmodel.n_heads=2\nsynth.stop=a\\|b|c\nrun.out_dir=runs/x\n"
        b"model.tie_embeddings=false\ntrain.lr=1e-3\nsystem.device=cpu\n")
    put("config", "overrides-null", b"\1data.val=\nlora.targets=q,v\ndistill.mode=online\n")


def jsonl():
    put("jsonl", "prompts", b'{"prompt": "12+34="}\n{"prompt": "7+8=", "id": 3}\n\n{"prompt": "x"}\n')
    put("jsonl", "escapes",
        b'{"prompt": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\n\\t\\/", "meta": {"a": [1, 2.5e3, true, null]}}\r\n')
    put("jsonl", "one", b'{"prompt":""}')


def text_import():
    put("text_import", "lines", b"\0first line\nsecond line\r\n\n  \nthird\n")
    put("text_import", "blank", b"\1para one\nstill one\n\npara two\r\n\r\n\r\npara three")
    put("text_import", "whole", b"\2the whole file\nis one document\n")
    put("text_import", "jsonl-text", b'\3{"text": "a document"}\n{"text": "caf\\u00e9", "id": 1}\n')
    put("text_import", "jsonl-prompt",
        b'\3{"prompt": "1+1=", "completion": "2"}\n\n{"prompt": "", "completion": "x"}\n')


def pretokenize():
    texts = {"mixed": "Hello world's 12345 caf\u00e9 \u4e2d\u6587 \U0001F468\u200d\U0001F469 \r\n\t  x",
             "marks": "e\u0301 q\u0307\u0323 \u1100\u1161\u11a8 \u212b \u0958 \u0661\u0662\uff13",
             "contractions": "IT'S we'RE they'Ve 'ſx ''s\n\n  !!abc"}
    for name, text in texts.items():
        put("pretokenize", name, text.encode("utf-8"))
    put("pretokenize", "invalid", b"a\xff\xc3 \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82 9")


LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")


def byte_alphabet():
    """GPT-2's bytes_to_unicode, in byte order."""
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    out, n = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


def tokenizer_files():
    """Small tokenizer.json files of every form retort reads, and vocabulary GGUFs (gpt2 and llama)."""
    import json
    alpha = byte_alphabet()
    pairs = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("1", "2")]
    vocab = {c: i for i, c in enumerate(alpha)}
    for a, b in pairs:
        vocab[a + b] = len(vocab)
    added = [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": i == 2, "rstrip": i == 2,
              "normalized": i == 3, "special": i < 3}
             for i, c in enumerate(["<|begin_of_text|>", "<|end_of_text|>", "<mask>", "caf\u00e9"])]
    split = {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    single = [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    template = {"type": "TemplateProcessing", "single": single, "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [len(vocab)],
                                                         "tokens": ["<|begin_of_text|>"]}}}

    def bpe(merges, **kw):
        return dict({"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": False, "vocab": vocab, "merges": merges}, **kw)

    def doc(name, model, pre, normalizer=None, post=None, decoder=None, tokens=added):
        d = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": tokens, "normalizer": normalizer,
             "pre_tokenizer": pre, "post_processor": post, "decoder": decoder or dict(byte_level, use_regex=True), "model": model}
        put("tokenizer_json", name, json.dumps(d, ensure_ascii=False).encode("utf-8"))

    doc("llama3.json", bpe([a + " " + b for a, b in pairs], ignore_merges=True),
        {"type": "Sequence", "pretokenizers": [split, byte_level]},
        post={"type": "Sequence", "processors": [dict(byte_level, type="ByteLevel"), template]})
    doc("qwen2.json", bpe([[a, b] for a, b in pairs]),
        {"type": "Sequence", "pretokenizers": [dict(split, pattern={"Regex": QWEN2}), byte_level]},
        normalizer={"type": "NFC"})
    doc("gpt2.json", bpe([[a, b] for a, b in pairs]), dict(byte_level, use_regex=True))
    doc("smollm.json", bpe([[a, b] for a, b in pairs]),
        {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                               dict(byte_level, use_regex=True)]})

    meta = "\u2581"
    spm_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        spm_vocab["<0x%02X>" % b] = len(spm_vocab)
    for c in [meta] + list("abcdehilnorstw"):
        spm_vocab[c] = len(spm_vocab)
    spm_pairs = [(meta, "t"), ("h", "e"), (meta + "t", "he"), ("i", "n")]
    for a, b in spm_pairs:
        spm_vocab[a + b] = len(spm_vocab)
    spm_added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                  "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    spm_model = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                 "ignore_merges": False, "vocab": spm_vocab, "merges": [[a, b] for a, b in spm_pairs]}
    single = [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    spm_template = {"type": "TemplateProcessing", "single": single,
                    "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    legacy_decoder = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": meta}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    doc("spm-legacy.json", spm_model, None, post=spm_template, decoder=legacy_decoder, tokens=spm_added,
        normalizer={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": meta},
                                                         {"type": "Replace", "pattern": {"String": " "},
                                                          "content": meta}]})
    doc("spm-metaspace.json", spm_model,
        {"type": "Metaspace", "replacement": meta, "prepend_scheme": "first", "split": False}, post=spm_template,
        decoder={"type": "Metaspace", "replacement": meta, "prepend_scheme": "first", "split": False},
        tokens=spm_added)

    tmp = os.path.join(here, "corpus", ".tmp.gguf")

    def write(name, model, pre, tokens, types, merges=None, scores=None):
        w = gguf.GGUFWriter(tmp, "llama")
        w.add_tokenizer_model(model)
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        if merges:
            w.add_token_merges(merges)
        if scores:
            w.add_token_scores(scores)
        w.add_bos_token_id(1 if model == "llama" else len(tokens) - 2)
        w.add_eos_token_id(2 if model == "llama" else len(tokens) - 1)
        w.add_add_bos_token(True)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(tmp, "rb") as f:
            put("tokenizer_gguf", name, f.read())
        os.remove(tmp)

    bpe_tokens = list(vocab) + ["<|begin_of_text|>", "<|end_of_text|>"]
    bpe_types = [1] * len(vocab) + [3, 3]
    for pre in ("llama-bpe", "qwen2", "gpt-2", "smollm"):
        write(pre + ".gguf", "gpt2", pre, bpe_tokens, bpe_types, merges=[a + " " + b for a, b in pairs])
    spm_tokens = list(spm_vocab)
    spm_types = [2, 3, 3] + [6] * 256 + [1] * (len(spm_tokens) - 259)
    spm_scores = [0.0] * 259 + [-float(i) for i in range(len(spm_tokens) - 259)]
    write("llama-spm.gguf", "llama", "default", spm_tokens, spm_types, scores=spm_scores)


def gguf_files():
    tmp = os.path.join(here, "corpus", ".tmp.gguf")
    rng = np.random.default_rng(1)

    def write(name, fill):
        w = gguf.GGUFWriter(tmp, "llama")
        fill(w)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(tmp, "rb") as f:
            put("gguf", name, f.read())
        os.remove(tmp)

    def small(w):
        w.add_context_length(16)
        w.add_embedding_length(4)
        w.add_block_count(1)
        w.add_head_count(2)
        w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        w.add_bool("general.flag", True)
        w.add_int64("general.i64", -5)
        w.add_float64("general.f64", 0.25)
        w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
        w.add_array("tokenizer.ggml.token_type", [1, 2, 3])
        w.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
        w.add_tensor("token_embd.weight", rng.standard_normal((3, 4)).astype(np.float32))
        w.add_tensor("output_norm.weight", np.ones(4, dtype=np.float16))

    def quant(w):
        w.add_uint32("general.alignment", 64)
        w.add_string("general.name", "q")
        x = rng.standard_normal((2, 32)).astype(np.float32)
        w.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                     raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_0),
                     raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        w.add_tensor("blk.0.ffn_down.weight", gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16),
                     raw_dtype=gguf.GGMLQuantizationType.BF16)

    write("small.gguf", small)
    write("quant.gguf", quant)
    write("empty.gguf", lambda w: None)


def gguf_import_files():
    """Whole small models for fuzz_gguf_import: llama (q/k permuted, f32 / q8_0 / q4_0 / f16 / bf16 / q4_k / q6_k
    tensors, llama3 rope_freqs.weight, untied) and qwen2 (tied, q/k/v biases, own head dim, linear scaling)."""
    tmp = os.path.join(here, "corpus", ".tmp.gguf")
    rng = np.random.default_rng(2)
    Q = gguf.GGMLQuantizationType

    def model(name, arch, C, H, KVH, HD, F, V, types, tied, bias, extra, rope=None):
        w = gguf.GGUFWriter(tmp, arch)
        w.add_context_length(32)
        w.add_embedding_length(C)
        w.add_block_count(1)
        w.add_feed_forward_length(F)
        w.add_head_count(H)
        w.add_head_count_kv(KVH)
        if HD * H != C:
            w.add_key_length(HD)
            w.add_value_length(HD)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        extra(w)
        w.add_tokenizer_model("gpt2")
        w.add_array("tokenizer.ggml.tokens", ["t%d" % i for i in range(V)])
        w.add_uint32("tokenizer.ggml.bos_token_id", 1)
        k = iter(range(100))

        def mat(tname, rows, cols):
            t = types[next(k) % len(types)]
            if cols % gguf.GGML_QUANT_SIZES[t][0]:  # rows that do not split into the type's blocks
                t = Q.F32
            x = rng.standard_normal((rows, cols)).astype(np.float32)
            if t in (Q.Q4_K, Q.Q6_K):  # no quantizer in gguf-py: random blocks with small fp16 scales
                size = 144 if t == Q.Q4_K else 210
                b = rng.integers(0, 256, (rows, cols // 256, size), dtype=np.uint8)
                scale = rng.uniform(0, 0.02, (rows, cols // 256, 2)).astype(np.float16).view(np.uint8)
                if t == Q.Q4_K:
                    b[..., 0:4] = scale
                else:
                    b[..., 208:210] = scale[..., :2]
                w.add_tensor(tname, b.reshape(rows, -1), raw_dtype=t)
            elif t == Q.F32:
                w.add_tensor(tname, x)
            else:
                w.add_tensor(tname, gguf.quants.quantize(x, t), raw_dtype=t)
        mat("token_embd.weight", V, C)
        w.add_tensor("blk.0.attn_norm.weight", np.ones(C, np.float32))
        for t, rows in (("q", H * HD), ("k", KVH * HD), ("v", KVH * HD)):
            mat(f"blk.0.attn_{t}.weight", rows, C)
            if bias:
                w.add_tensor(f"blk.0.attn_{t}.bias", rng.standard_normal(rows).astype(np.float32))
        mat("blk.0.attn_output.weight", C, H * HD)
        w.add_tensor("blk.0.ffn_norm.weight", np.ones(C, np.float32))
        mat("blk.0.ffn_gate.weight", F, C)
        mat("blk.0.ffn_up.weight", F, C)
        mat("blk.0.ffn_down.weight", C, F)
        w.add_tensor("output_norm.weight", np.ones(C, np.float32))
        if not tied:
            mat("output.weight", V, C)
        if rope is not None:
            w.add_tensor("rope_freqs.weight", rope)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(tmp, "rb") as f:
            put("gguf_import", name, f.read())
        os.remove(tmp)

    def llama3(hd, theta, factor, low, high, n):  # llama.cpp's converter's rope_freqs.weight
        wavelen = 2 * np.pi * theta ** (np.arange(0, hd, 2) / hd)
        smooth = (n / wavelen - low) / (high - low)
        mid = 1 / ((1 - smooth) / factor + smooth)
        return np.where(wavelen < n / high, 1.0, np.where(wavelen > n / low, factor, mid)).astype(np.float32)
    # the vocabulary is 259 (retort's smallest); the embedding takes the first type listed
    model("llama-f32-q8-q4.gguf", "llama", 32, 4, 2, 8, 32, 259, [Q.Q4_0, Q.Q8_0, Q.F32, Q.F16, Q.BF16], False,
          False, lambda w: None)
    model("llama-k-quants.gguf", "llama", 256, 1, 1, 4, 4, 259, [Q.Q4_K, Q.Q6_K], True, False, lambda w: None)
    model("llama3-rope.gguf", "llama", 32, 2, 2, 16, 32, 259, [Q.Q4_0, Q.F32], True, False, lambda w: None,
          llama3(16, 10000.0, 4.0, 1.0, 4.0, 64))
    model("qwen2-bias.gguf", "qwen2", 32, 4, 1, 16, 32, 259, [Q.Q4_0, Q.Q8_0, Q.F32], True, True,
          lambda w: (w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR), w.add_rope_scaling_factor(2.0)))


def safetensors_files():
    r = np.random.default_rng(15)
    f32 = r.standard_normal((3, 4)).astype(np.float32)
    put("safetensors", "f32-f16-bf16.safetensors",
        st_save({"w": f32, "h": f32.astype(np.float16), "b": f32.astype(ml_dtypes.bfloat16),
                 "s": np.array(1.5, dtype=np.float32), "e": np.zeros((0, 2), dtype=np.float32)},
                metadata={"format": "pt"}))
    put("safetensors", "other-dtypes.safetensors",
        st_save({"i": np.arange(3, dtype=np.int64), "u": np.arange(2, dtype=np.uint8), "d": np.ones(2)}))
    put("safetensors", "empty.safetensors", st_save({}))
    # the first file with a compact header of odd length (MLX does not pad to 8)
    data = st_save({"w": f32, "h": f32.astype(np.float16)}, metadata={"k": "v"})
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].rstrip(b" ")
    if len(header) % 2 == 0:
        header = header.replace(b'"v"', b'"vv"')
    put("safetensors", "unpadded.safetensors", len(header).to_bytes(8, "little") + header + data[8 + n:])


def hf_configs():
    """config.json as transformers 5 writes it (Llama, Mistral, Qwen2 with its window keys), the 4.x form
    (top-level rope_theta, rope_scaling, torch_dtype) with Llama 3.1's llama3 scaling, and linear scaling."""
    import json
    dims = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu",
            "rms_norm_eps": 1e-06, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
    v5 = {"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "dtype": "float32"}
    seeds = {
        "llama-5x": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
                     "mlp_bias": False, "max_position_embeddings": 2048, **dims, **v5},
        "mistral-5x": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "sliding_window": 4096,
                       "max_position_embeddings": 4096, **dims, **v5},
        "qwen2-5x": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "use_sliding_window": True,
                     "sliding_window": 32, "max_window_layers": 1, "layer_types": ["full_attention",
                     "sliding_attention"], "max_position_embeddings": 32, **dims, **v5, "eos_token_id": [2, 3]},
        "llama31-4x": {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 131072, **dims,
                       "rope_theta": 500000.0, "torch_dtype": "bfloat16", "tie_word_embeddings": True,
                       "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
        "linear-legacy": {"architectures": ["LlamaForCausalLM"], **dims, "rope_theta": 10000,
                          "rope_scaling": {"type": "linear", "factor": 2.0}},
    }
    for name, cfg in seeds.items():
        put("hf_config", name + ".json", json.dumps(cfg, indent=2).encode())


def peft_configs():
    """adapter_config.json as PEFT 0.18 writes it (every key), retort's export (the keys every PEFT since 0.9
    knows), target_modules as "all-linear" and as a regular expression, and rank/alpha patterns that agree."""
    import json
    peft_018 = {"alora_invocation_tokens": None, "alpha_pattern": {}, "arrow_config": None, "auto_mapping": None,
                "base_model_name_or_path": "hf-llama", "bias": "none", "corda_config": None,
                "ensure_weight_tying": False, "eva_config": None, "exclude_modules": None, "fan_in_fan_out": False,
                "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
                "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": 16,
                "lora_bias": False, "lora_dropout": 0.05, "megatron_config": None, "megatron_core": "megatron.core",
                "modules_to_save": None, "peft_type": "LORA", "peft_version": "0.18.1", "qalora_group_size": 16,
                "r": 8, "rank_pattern": {}, "revision": None,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "target_parameters": None, "task_type": "CAUSAL_LM", "trainable_token_indices": None,
                "use_dora": False, "use_qalora": False, "use_rslora": False}
    retort = {"alpha_pattern": {}, "base_model_name_or_path": "/models/base.h5", "bias": "none",
              "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
              "layers_to_transform": None, "lora_alpha": 2.5, "lora_dropout": 0.0, "modules_to_save": None,
              "peft_type": "LORA", "r": 2, "rank_pattern": {}, "revision": None,
              "target_modules": ["q_proj", "v_proj", "lm_head"], "task_type": "CAUSAL_LM", "use_dora": False,
              "use_rslora": True}
    seeds = {
        "peft-0.18": peft_018,
        "retort-export": retort,
        "all-linear": {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "all-linear"},
        "regex": {"peft_type": "LORA", "task_type": None, "r": 4, "target_modules": r".*\.(q_proj|v_proj)$",
                  "layers_to_transform": [0, 1]},
        "patterns": {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["model.layers.0.mlp.up_proj"],
                     "rank_pattern": {"up_proj": 4}, "alpha_pattern": {"up_proj": 8.0}},
    }
    for name, cfg in seeds.items():
        put("peft_config", name + ".json", json.dumps(cfg, indent=2, sort_keys=True).encode())


def edit_programs(harness, n_bases):
    # [base, option, edits...]; the empty edit list reads the base file as our writer made it
    for b in range(n_bases):
        put(harness, "base%d" % b, bytes([b, 1]))
    r = random.Random(harness)
    for i in range(6):
        put(harness, "edits%d" % i, bytes([i % n_bases, i]) + bytes(r.randrange(256) for _ in range(48)))


if __name__ == "__main__":
    # regress-* files (inputs that once crashed a reader) are kept as they are
    config()
    jsonl()
    text_import()
    pretokenize()
    tokenizer_files()
    gguf_files()
    gguf_import_files()
    safetensors_files()
    hf_configs()
    peft_configs()
    edit_programs("dataset", 4)
    edit_programs("checkpoint", 3)
