"""Makes the source models of check_import_gguf.py (run with .venv-hf/bin/python: transformers 5, torch 2.x):
small random transformers models carrying a real vocabulary (GPT-2's, or Qwen2's for the qwen2 model: llama.cpp's
converter identifies a vocabulary by hashing its tokenization of a probe text and refuses unknown ones, and
transformers 5 loads a qwen2 folder's vocabulary with Qwen2's pre-tokenizer whatever it holds), saved with
save_pretrained, converted to GGUF by llama.cpp's own convert_hf_to_gguf.py, and transformers' fp32 logits on
the test ids from each model reloaded from disk. The vocabularies are rebuilt as tokenizer.json from llama.cpp's
ggml-vocab-*.gguf files once and kept in CACHE_DIR.

usage: import_gguf_models.py LLAMA_CPP_DIR CACHE_DIR WORK_DIR [NAME...]
writes WORK_DIR/{name}.{outtype}.gguf, WORK_DIR/{name}.logits.npy and WORK_DIR/{name}.ids.json"""
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TQDM_DISABLE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers as tf  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

LLAMA_CPP, CACHE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
tf.logging.set_verbosity_error()
torch.set_num_threads(2)
COMMON = dict(intermediate_size=128, num_hidden_layers=2, max_position_embeddings=128,
              rms_norm_eps=1e-5)
# name: (model class, config class, config, vocabulary, GGUF types the converter writes)
MODELS = {
    # untied, its own head_dim (4 x 24 != 64: attention.key_length)
    "llama": (tf.LlamaForCausalLM, tf.LlamaConfig,
              dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                   tie_word_embeddings=False), "gpt-2", ("f32", "q8_0")),
    # tied, q/k/v biases, not permuted by the converter; narrow, as its vocabulary is large
    "qwen2": (tf.Qwen2ForCausalLM, tf.Qwen2Config,
              dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
              "qwen2", ("f32",)),
    # Llama 3.1 RoPE scaling with an original context of 32 (the ids are longer): rope_freqs.weight;
    # head_dim 32 gives 16 frequencies, two of them in the interpolated band
    "llama31": (tf.LlamaForCausalLM, tf.LlamaConfig,
                dict(hidden_size=64, num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                     rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 32}),
                "gpt-2", ("f32",)),
}


def vocabulary(name):
    """The folder of a tokenizer.json rebuilt from llama.cpp's ggml-vocab-{name}.gguf (made once): its normal
    tokens and merges as byte-level BPE, its control and user-defined tokens as special added tokens. The
    pre-tokenizer is GPT-2's; for Qwen2, transformers substitutes Qwen2's own."""
    d = os.path.join(CACHE, name)
    if os.path.exists(os.path.join(d, "tokenizer.json")):
        return d
    r = GGUFReader(os.path.join(LLAMA_CPP, "models", f"ggml-vocab-{name}.gguf"))

    def field(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]
    tokens = [bytes(p).decode("utf-8") for p in field("tokenizer.ggml.tokens")]
    merges = [bytes(p).decode("utf-8") for p in field("tokenizer.ggml.merges")]
    types = [int(p[0]) for p in field("tokenizer.ggml.token_type")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens) if types[i] == 1},
                               merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in range(len(tokens)) if types[i] in (3, 4)])
    eos = "<|endoftext|>"
    t = tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos)
    tmp = d + ".part"
    t.save_pretrained(tmp)
    # transformers 5 would load the GPT-2 vocabulary in a llama folder as it pleases; name its class
    tc = os.path.join(tmp, "tokenizer_config.json")
    with open(tc) as f:
        conf = json.load(f)
    conf["tokenizer_class"] = "GPT2Tokenizer"
    with open(tc, "w") as f:
        json.dump(conf, f)
    os.replace(tmp, d)
    return d


def main():
    only = sys.argv[4:]  # names to make (all by default)
    for seed, (name, (cls, cfg_cls, kw, vocab_name, outtypes)) in enumerate(MODELS.items()):
        if only and name not in only:
            continue
        tokenizer = tf.AutoTokenizer.from_pretrained(vocabulary(vocab_name))
        vocab = len(tokenizer)
        ids = [int(i) for i in np.random.default_rng(7 + seed).integers(0, vocab, 40)]
        with open(os.path.join(WORK, name + ".ids.json"), "w") as f:
            json.dump(ids, f)
        d = os.path.join(WORK, name + "-hf")
        torch.manual_seed(seed)
        model = cls(cfg_cls(vocab_size=vocab, **COMMON, **kw))
        with torch.no_grad():  # norms and biases random too, so a swapped norm or a lost bias shows
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                elif pname.endswith(".bias"):
                    p.copy_(0.5 * torch.randn_like(p))
        model.save_pretrained(d)
        for f in os.listdir(vocabulary(vocab_name)):
            shutil.copy(os.path.join(vocabulary(vocab_name), f), d)
        ref = cls.from_pretrained(d, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = ref(torch.tensor([ids])).logits[0].numpy()
        np.save(os.path.join(WORK, name + ".logits.npy"), logits)
        for t in outtypes:
            out = os.path.join(WORK, f"{name}.{t}.gguf")
            p = subprocess.run([sys.executable, os.path.join(LLAMA_CPP, "convert_hf_to_gguf.py"), d, "--outtype", t,
                                "--outfile", out], capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"convert_hf_to_gguf.py {name} --outtype {t}: exited {p.returncode}: {p.stderr[-2000:]}")


if __name__ == "__main__":
    main()
