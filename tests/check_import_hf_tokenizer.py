"""`retort import hf`, export and llama.cpp with real tokenizers (run with .venv-hf's python; argv[1] is
ckpt_logits_harness, as check_import_hf.py whose helpers this uses). Models saved with a tokenizer trained here
(Llama 3 style byte-level BPE, Qwen2 style with NFC, the legacy Llama 2 SentencePiece form; the embedding padded
beyond the tokenizer):
- the checkpoint stores the tokenizer: retort tokenize CKPT gives AutoTokenizer's ids and retort generate
  --prompt TEXT transformers' greedy ids and text;
- export --format hf carries it: AutoTokenizer of the export gives the original's ids, the configs name its
  special ids, transformers' greedy text from the export is the original's;
- exported as GGUF, llama.cpp (llama_cpp_tokens.py, Debian's python) gives AutoTokenizer's and retort's ids and
  transformers' greedy ids and text; the GGUF imported back and exported as an HF folder carries the
  tokenizer.json retort writes from the GGUF's keys, with the same checks;
- import peft onto such a base stores its tokenizer in the adapter checkpoint;
- a tokenizer.json retort cannot read is refused unless --no-tokenizer, one larger than the embedding is
  refused, a folder without tokenizer.json imports with a note.

usage: check_import_hf_tokenizer.py HARNESS   (RETORT_BIN, RT_SOURCE_DIR and RT_PYTHON from ctest)"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_import_hf as H  # noqa: E402  (transformers, torch and the model helpers)
import tokenizer_ref as R  # noqa: E402
from check_import_hf import N_NEW, SRC, failures, make, refuse, retort_ids, rewrite_config, run  # noqa: E402
from checklib import finish  # noqa: E402

tf, torch = H.tf, H.torch


# ---- models with a real tokenizer: trained here with tokenizers and sentencepiece, saved next to the weights

TOK_V = 400      # the tokenizer's ids
TOK_MODEL_V = 448  # the embedding's rows: padded beyond the tokenizer, as real HF models often are
TOK_STYLES = {  # style: (model class, config class, special tokens, BOS, EOS)
    "llama3": (tf.LlamaForCausalLM, tf.LlamaConfig, ["<|begin_of_text|>", "<|end_of_text|>"], "<|begin_of_text|>",
               "<|end_of_text|>"),
    "qwen2": (tf.Qwen2ForCausalLM, tf.Qwen2Config, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None,
              "<|endoftext|>"),
    "llama2-spm": (tf.LlamaForCausalLM, tf.LlamaConfig, ["<unk>", "<s>", "</s>"], "<s>", "</s>"),
}
PROMPTS = ["Hello world, the quick brown fox", " Licence: you may copy it.\n", "日本語 and 42 digits",
           "def f(x):\n    return x"]


def tok_corpus(work):
    """Licence texts (the SentencePiece trainer takes these alone: other scripts' characters would not fit
    TOK_V), then varied texts of many scripts."""
    text = []
    for f in sorted(os.listdir("/usr/share/common-licenses"))[:6]:
        path = os.path.join("/usr/share/common-licenses", f)
        if os.path.isfile(path):
            text.append(open(path, encoding="utf-8", errors="replace").read()[:20000])
    return text + R.make_texts([], n=300, seed=5)


def train_tokenizer(style, lines, work):
    """The tokenizers.Tokenizer of a style, TOK_V ids."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    specials = TOK_STYLES[style][2]
    if style == "llama2-spm":
        import sentencepiece as spm
        path = os.path.join(work, "spm-corpus.txt")
        licences = [x for x in lines if len(x) > 1000]
        open(path, "w", encoding="utf-8").write("\n".join(x.replace("\r", "") for x in licences))
        spm.SentencePieceTrainer.train(input=path, model_prefix=os.path.join(work, "spm"), model_type="bpe",
                                       vocab_size=TOK_V, character_coverage=0.995, byte_fallback=True,
                                       split_digits=True, remove_extra_whitespaces=False,
                                       normalization_rule_name="identity", minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(work, "spm.model"))
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        types = [3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 6 if sp.is_byte(i) else 1
                 for i in range(len(pieces))]
        vocab = {p: i for i, p in enumerate(pieces)}
        merges = R.spm_merges(vocab, types, [sp.get_score(i) for i in range(len(pieces))])
        tok = R.spm_tokenizer(vocab, merges, "<unk>", "<s>", "legacy")
        tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
        return tok
    bpe_style = "llama-bpe" if style == "llama3" else "qwen2"
    tok = Tokenizer(models.BPE(ignore_merges=style == "llama3"))
    R.byte_level_steps(tok, bpe_style)
    trainer = trainers.BpeTrainer(vocab_size=TOK_V, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    if style == "llama3":
        R.byte_level_steps(tok, bpe_style, specials[0], tok.token_to_id(specials[0]))
    return tok


def make_with_tokenizer(style, lines, work, seed):
    """A random model of the style saved with its trained tokenizer (tokenizer.json, tokenizer_config.json)."""
    cls, cfg_cls, _, bos, eos = TOK_STYLES[style]

    def quiet_bytes(model):
        """SentencePiece's byte-fallback tokens get a near-zero head, so greedy continuations are pieces:
        HF decodes a run of byte tokens that is not UTF-8 as one U+FFFD per byte, retort keeps the bytes
        (docs/tokenizers.md, Decoding), and that documented difference is not what this test is about."""
        model.lm_head.weight[3:259] *= 0.01
    d = make(f"{work}/hf-tok-{style}", cls, cfg_cls, seed, vocab_size=TOK_MODEL_V,
             _edit=quiet_bytes if style == "llama2-spm" else None)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=train_tokenizer(style, lines, work), bos_token=bos,
                                      eos_token=eos, unk_token="<unk>" if style == "llama2-spm" else None)
    fast.save_pretrained(d)
    return d


def check_tokenize(name, source, hf_tok, texts):
    """retort tokenize SOURCE against the HF tokenizer's ids (add_special_tokens) on texts."""
    bad = 0
    for t in texts:
        if R.nfc_table_divergence(hf_tok.backend_tokenizer, t):
            continue  # tokenizers' NFC tables are older than Unicode's (tokenizer_ref.py)
        want = hf_tok(t)["input_ids"]
        got = retort_ids(source, t)
        if got != want:
            bad += 1
            if bad <= 3:
                failures.append(f"{name}: retort tokenize {t!r}: {got} != HF {want}")
    return len(texts) - bad


def hf_greedy(model, hf_tok, prompt):
    """transformers' greedy continuation of the prompt's ids: (all ids, the text after the prompt's)."""
    x = torch.tensor([hf_tok(prompt)["input_ids"]])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=N_NEW,
                             eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.eos_token_id)[0].tolist()
    full = hf_tok.decode(out, skip_special_tokens=True)
    head = hf_tok.decode(x[0].tolist(), skip_special_tokens=True)
    return out, prompt + full[len(head):]


def retort_greedy(ckpt, prompt):
    p = subprocess.run([os.environ["RETORT_BIN"], "generate", ckpt, "--prompt", prompt, "--max-tokens",
                        str(N_NEW), "--temperature", "0", "--ids"], capture_output=True, timeout=120)
    if p.returncode != 0:
        failures.append(f"retort generate {ckpt}: exited {p.returncode}: {p.stderr[-400:]!r}")
        return None, None
    text, _, ids = p.stdout.rstrip(b"\n").rpartition(b"\n")
    return [int(i) for i in ids.split()], text.decode("utf-8", errors="replace")


def check_tokenizer_model(style, d, work):
    """import hf stores the folder's tokenizer: retort tokenize CKPT gives AutoTokenizer's ids, and retort
    generate --prompt TEXT gives transformers' greedy ids and text."""
    ckpt = os.path.join(work, f"tok-{style}.h5")
    p = run(["import", "hf", d, "--out", ckpt], what=f"{style}: import with tokenizer")
    if p.returncode != 0:
        return None
    kind = "spm" if style == "llama2-spm" else "bpe"
    if f"tokenizer ({kind}, {TOK_V} ids)" not in p.stdout:
        failures.append(f"{style}: import should report the stored tokenizer: {p.stdout!r}")
    hf_tok = tf.AutoTokenizer.from_pretrained(d)
    texts = PROMPTS + R.make_texts(TOK_STYLES[style][2], n=30, seed=len(style))
    same = check_tokenize(f"{style} checkpoint", ckpt, hf_tok, texts)
    model = tf.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    for prompt in PROMPTS:
        want_ids, want_text = hf_greedy(model, hf_tok, prompt)
        got_ids, got_text = retort_greedy(ckpt, prompt)
        if got_ids is not None and (got_ids != want_ids or got_text != want_text):
            failures.append(f"{style}: generate {prompt!r}: retort {got_ids} {got_text!r} != transformers "
                            f"{want_ids} {want_text!r}")
    print(f"{style}: the imported checkpoint tokenizes {same}/{len(texts)} texts as AutoTokenizer; greedy "
          f"text and ids equal transformers' on {len(PROMPTS)} prompts")
    out = os.path.join(work, f"export-tok-{style}")
    if run(["export", ckpt, "--format", "hf", "--out", out], what=f"{style}: export hf").returncode == 0:
        check_exported_tokenizer(style, out, d, hf_tok, texts, model)
    return ckpt


def check_exported_tokenizer(style, out, src, hf_tok, texts, model):
    """HF -> import -> export hf: AutoTokenizer of the export gives the original's ids, the configs name the
    tokenizer's special ids, and transformers' greedy text from the exported folder is the original's."""
    exported = tf.AutoTokenizer.from_pretrained(out)
    bad = [t for t in texts if exported(t)["input_ids"] != hf_tok(t)["input_ids"]]
    for t in bad[:3]:
        failures.append(f"{style} export: AutoTokenizer ids of {t!r}: {exported(t)['input_ids']} != the "
                        f"original's {hf_tok(t)['input_ids']}")
    gen = json.load(open(os.path.join(out, "generation_config.json")))
    cfg = json.load(open(os.path.join(out, "config.json")))
    for key in ("bos_token_id", "eos_token_id"):
        want = getattr(hf_tok, key)
        if cfg.get(key) != want or gen.get(key) != want:
            failures.append(f"{style} export: {key} is {cfg.get(key)} (config.json), {gen.get(key)} "
                            f"(generation_config.json); the tokenizer's is {want}")
    reloaded = tf.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    for prompt in PROMPTS:
        if hf_greedy(reloaded, exported, prompt) != hf_greedy(model, hf_tok, prompt):
            failures.append(f"{style} export: transformers' greedy continuation of {prompt!r} from the export "
                            f"differs from the original's")
    print(f"{style}: export hf carries the tokenizer: AutoTokenizer ids equal the original's on "
          f"{len(texts) - len(bad)}/{len(texts)} texts, greedy text equal on {len(PROMPTS)} prompts")


def check_peft_tokenizer(style, d, ckpt, work):
    """import peft stores the base's tokenizer in the adapter checkpoint (as finetune's adapters do): retort
    tokenize ADAPTER gives the base's ids, and generate reads text with it."""
    from peft import LoraConfig, get_peft_model
    base = tf.AutoModelForCausalLM.from_pretrained(d)
    adapter = os.path.join(work, f"peft-{style}")
    torch.manual_seed(4)
    get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, r=4, lora_alpha=8,
                                    target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    out = os.path.join(work, f"peft-{style}.h5")
    if run(["import", "peft", adapter, "--base", ckpt, "--out", out], what=f"{style}: import peft").returncode:
        return
    hf_tok = tf.AutoTokenizer.from_pretrained(d)
    texts = PROMPTS + R.make_texts(TOK_STYLES[style][2], n=10, seed=11)
    same = check_tokenize(f"{style} PEFT adapter checkpoint", out, hf_tok, texts)
    got_ids, _ = retort_greedy(out, PROMPTS[0])
    if got_ids is not None and got_ids[:len(hf_tok(PROMPTS[0])["input_ids"])] != hf_tok(PROMPTS[0])["input_ids"]:
        failures.append(f"{style}: generate on the PEFT adapter checkpoint encoded the prompt as {got_ids}")
    print(f"{style}: import peft stores the base's tokenizer ({same}/{len(texts)} texts tokenize as AutoTokenizer)")


def check_gguf_round_trip(style, d, ckpt, work):
    """HF -> retort import -> GGUF export: llama.cpp gives the ids of AutoTokenizer (and of retort) on varied texts
    and transformers' greedy ids and text. Then GGUF -> retort import gguf -> export hf: the tokenizer.json retort
    writes from the GGUF's tokenizer gives AutoTokenizer the original's ids and transformers the original's
    greedy text."""
    gguf = os.path.join(work, f"tok-{style}.gguf")
    if run(["export", ckpt, "--format", "gguf", "--type", "f32", "--out", gguf], what=f"{style}: export gguf").returncode:
        return
    hf_tok = tf.AutoTokenizer.from_pretrained(d)
    texts = PROMPTS + R.make_texts([], n=40, seed=21 + len(style))
    if style == "qwen2":  # llama.cpp does not normalize to NFC where HF's Qwen2 tokenizer does (docs/tokenizers.md)
        import unicodedata
        texts = [t for t in texts if unicodedata.normalize("NFC", t) == t]
    req = json.dumps({"texts": texts, "prompts": PROMPTS})
    env = {**os.environ, "PYTHONPATH": os.path.join(SRC, ".pydeps")}
    p = subprocess.run([os.environ["RT_PYTHON"], os.path.join(SRC, "tests", "llama_cpp_tokens.py"), gguf,
                        str(N_NEW)], input=req, capture_output=True, text=True, timeout=300, env=env)
    if p.returncode != 0:
        failures.append(f"{style}: llama.cpp on {gguf}: exited {p.returncode}: {p.stderr[-800:]}")
        return
    got = json.loads(p.stdout)
    bad = [i for i, t in enumerate(texts)
           if got["tokens"][i] != hf_tok(t)["input_ids"] or retort_ids(ckpt, t) != got["tokens"][i]]
    for i in bad[:3]:
        failures.append(f"{style} GGUF: llama.cpp tokenizes {texts[i]!r} as {got['tokens'][i]}; AutoTokenizer "
                        f"{hf_tok(texts[i])['input_ids']}, retort {retort_ids(ckpt, texts[i])}")
    model = tf.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    for k, prompt in enumerate(PROMPTS):
        want_ids, want_text = hf_greedy(model, hf_tok, prompt)
        text = prompt + got["text"][k].encode("latin-1").decode("utf-8", errors="replace")
        if got["greedy"][k] != want_ids or text != want_text:
            failures.append(f"{style} GGUF: llama.cpp's greedy {got['greedy'][k]} {text!r} != transformers' "
                            f"{want_ids} {want_text!r}")
    print(f"{style}: GGUF export: llama.cpp tokenizes {len(texts) - len(bad)}/{len(texts)} texts as AutoTokenizer "
          f"and retort; greedy ids and text equal transformers' on {len(PROMPTS)} prompts")
    back = os.path.join(work, f"tok-{style}-from-gguf.h5")
    p = run(["import", "gguf", gguf, "--out", back], what=f"{style}: import gguf")
    if p.returncode == 0 and "stores the file's" not in p.stdout:
        failures.append(f"{style}: import gguf did not store the tokenizer: {p.stdout!r} {p.stderr!r}")
    out = os.path.join(work, f"export-tok-{style}-from-gguf")
    if p.returncode == 0 and run(["export", back, "--format", "hf", "--out", out],
                                 what=f"{style}: export hf of the GGUF import").returncode == 0:
        check_exported_tokenizer(f"{style} via GGUF", out, d, hf_tok, texts, model)


def check_tokenizer_refusals(d, work):
    """A tokenizer.json retort cannot read is refused unless --no-tokenizer; one with more ids than the
    embedding is refused; a folder without tokenizer.json imports with a note."""
    odd = f"{work}/r-tok-wordpiece"
    shutil.copytree(d, odd)
    path = os.path.join(odd, "tokenizer.json")
    j = json.load(open(path))
    j["model"] = {"type": "WordPiece", "unk_token": "<unk>", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": {"<unk>": 0, "a": 1}}
    json.dump(j, open(path, "w"))
    refuse("WordPiece tokenizer", odd, work, ["tokenizer.json", "WordPiece", "--no-tokenizer"])
    p = run(["import", "hf", odd, "--out", os.path.join(work, "no-tok.h5"), "--no-tokenizer"],
            what="--no-tokenizer")
    if p.returncode == 0 and "--no-tokenizer" not in p.stderr:
        failures.append(f"--no-tokenizer: expected a note, got {p.stderr!r}")
    small = rewrite_config(d, f"{work}/r-tok-small", lambda c: c.update(vocab_size=TOK_V - 10))
    os.remove(os.path.join(small, "model.safetensors"))
    model = tf.AutoModelForCausalLM.from_pretrained(d)
    model.resize_token_embeddings(TOK_V - 10)
    model.save_pretrained(small)
    refuse("tokenizer larger than the embedding", small, work, ["tokenizer.json", f"{TOK_V} ids",
                                                                  f"vocab_size is {TOK_V - 10}"])
    bare = f"{work}/hf-no-tok"
    shutil.copytree(d, bare)
    for f in os.listdir(bare):
        if f.startswith("tokenizer") or f == "special_tokens_map.json":
            os.remove(os.path.join(bare, f))
    p = run(["import", "hf", bare, "--out", os.path.join(work, "bare.h5")], what="no tokenizer.json")
    if p.returncode == 0 and "no tokenizer.json" not in p.stderr:
        failures.append(f"a folder without tokenizer.json: expected a note, got {p.stderr!r}")
    print("tokenizer refusals and notes: ok")


def main():
    work = tempfile.mkdtemp(prefix="rt_import_hf_tok_")
    lines = tok_corpus(work)
    tok_models = {style: make_with_tokenizer(style, lines, work, 20 + i) for i, style in enumerate(TOK_STYLES)}
    tok_ckpts = {style: check_tokenizer_model(style, d, work) for style, d in tok_models.items()}
    for style, ck in tok_ckpts.items():
        if ck:
            check_gguf_round_trip(style, tok_models[style], ck, work)
    if tok_ckpts["llama2-spm"]:
        check_peft_tokenizer("llama2-spm", tok_models["llama2-spm"], tok_ckpts["llama2-spm"], work)
    check_tokenizer_refusals(tok_models["llama3"], work)
    finish(failures, "import hf with real tokenizers (Llama 3, Qwen2, Llama 2 SentencePiece): retort tokenize and "
           "generate equal AutoTokenizer and transformers; export hf, GGUF -> llama.cpp and GGUF -> import -> "
           "export hf carry the tokenizer; import peft stores it; refusals and notes", work)


main()
