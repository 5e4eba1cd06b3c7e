"""How a real tokenizer travels through retort, against HF tokenizers, llama.cpp and onnxruntime-genai (run
with .venv-hf's python; h5py, llama_cpp and onnxruntime_genai run in tokenizer_wire_helper.py under Debian's
python). Two tokenizers are trained here: a GPT-2-style byte-level BPE (tokenizers' BpeTrainer) and a
Llama-2-style SentencePiece BPE with byte fallback (the sentencepiece trainer, as the legacy tokenizer.json).
For each, and for the BPE one also read from a GGUF file:
- `retort data text --tokenizer` (JSONL text and prompt/completion lines): every document is the start id,
  HF's ids of the text without special tokens, EOS; prompt_len counts the prompt's ids; the dataset records
  the tokenizer and its hash;
- a model trained from scratch with model.tokenizer stores it: `retort tokenize CKPT` gives HF's ids;
- `retort generate --ids`: the text printed is HF's decode of the ids it prints;
- GGUF export: llama.cpp (vocab_only) tokenizes the texts (no special-token text) into HF's ids;
- ONNX export: the folder's tokenizer loads in HF tokenizers and transformers with the same ids and
  specials, and in onnxruntime-genai with HF's ids;
and the refusals: data of another tokenizer, a vocabulary smaller than the tokenizer's, a logit-distillation
teacher with another tokenizer, synthetic tasks with a real tokenizer."""
import json
import os
import subprocess
import sys
import tempfile

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref as R  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
WORK = tempfile.mkdtemp(prefix="rt-tok-wire-")
errors = []
SMALL = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=32",
         "model.max_seq_len=64", "data.seq_len=32", "train.steps=3", "train.warmup_steps=1", "train.batch_size=2",
         "data.val=", "checkpoint.every=0", "run.log_every=1"]


def retort(args, expect=0, what=None):
    p = subprocess.run([RETORT] + args, capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        errors.append(f"{what or ' '.join(args[:2])}: exit {p.returncode}, expected {expect}: {p.stderr[-1200:]}")
    return p


def helper(req):
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, ".pydeps"))  # the helper's packages, not .venv-hf's
    p = subprocess.run([os.environ.get("RT_PYTHON", "/usr/bin/python3"),
                        os.path.join(SRC, "tests", "tokenizer_wire_helper.py")],
                       input=json.dumps(req), capture_output=True, text=True, env=env)
    if p.returncode != 0:
        errors.append(f"helper {req['op']}: {p.stderr[-1500:]}")
        return None
    return json.loads(p.stdout)


def corpus():
    text = []
    for name in ("GPL-3", "Apache-2.0", "MPL-2.0"):
        path = os.path.join("/usr/share/common-licenses", name)
        if os.path.isfile(path):
            text += open(path, encoding="utf-8").read().split("\n")
    return text + R.make_texts([], n=300, seed=3)


def train_bpe(lines):
    tok = Tokenizer(models.BPE())
    R.byte_level_steps(tok, "gpt-2")
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>"],
                                                       show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path = os.path.join(WORK, "bpe.json")
    return path, R.save(tok, path)


def train_spm(lines):
    corpus_path = os.path.join(WORK, "corpus.txt")
    with open(corpus_path, "w", encoding="utf-8") as f:
        f.write("\n".join(x.replace("\r", "") for x in lines))
    prefix = os.path.join(WORK, "spm")
    spm.SentencePieceTrainer.train(input=corpus_path, model_prefix=prefix, model_type="bpe", vocab_size=700,
                                   character_coverage=0.995, byte_fallback=True, split_digits=True,
                                   allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
                                   normalization_rule_name="identity", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    types = [3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 6 if sp.is_byte(i) else 1
             for i in range(len(pieces))]
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = R.spm_tokenizer(vocab, R.spm_merges(vocab, types, [sp.get_score(i) for i in range(len(pieces))]),
                          "<unk>", "<s>", "legacy")
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False)
                            for p, ty in zip(pieces, types) if ty in (2, 3)])
    path = os.path.join(WORK, "spm.json")
    return path, R.save(tok, path)


def bpe_gguf(hf):
    """The BPE tokenizer's keys as llama.cpp's converter writes them, in a vocab-only GGUF."""
    import gguf
    vocab = hf.get_vocab()
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [" ".join(m) for m in json.loads(hf.to_str())["model"]["merges"]]
    path = os.path.join(WORK, "bpe.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t == "<|endoftext|>" else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_eos_token_id(vocab["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def specials_of(hf):
    return [a.content for a in hf.get_added_tokens_decoder().values() if a.special]


def check_data(name, source, hf, texts):
    """data text --tokenizer: documents are start + HF's ids + EOS; prompt/completion counts prompt ids."""
    bos = hf.token_to_id("<s>")
    eos = hf.token_to_id("</s>") if bos is not None else hf.token_to_id("<|endoftext|>")
    start = bos if bos is not None else eos
    lines = os.path.join(WORK, f"{name}-text.jsonl")
    with open(lines, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    out = os.path.join(WORK, f"{name}-text.h5")
    retort(["data", "text", "--in", lines, "--format", "jsonl", "--tokenizer", source, "--out", out],
           what=f"{name}: data text")
    got = helper({"op": "dataset", "path": out})
    if got:
        bad = [t for t, d in zip(texts, got["docs"]) if d != [start] + hf.encode(t, add_special_tokens=False).ids + [eos]]
        if len(got["docs"]) != len(texts) or bad:
            errors.append(f"{name}: data text documents differ from HF's ids for {len(bad)} texts, e.g. {bad[:2]!r}")
        print(f"{name}: data text --tokenizer: {len(texts) - len(bad)}/{len(texts)} documents are HF's ids "
              f"(tokenizer {got['attrs'].get('tokenizer')}, hash {got['attrs'].get('tokenizer_hash')})")
    pairs = [(texts[i], texts[i + 1]) for i in range(0, 40, 2)]
    jl = os.path.join(WORK, f"{name}-pc.jsonl")
    with open(jl, "w", encoding="utf-8") as f:
        for p, c in pairs:
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    pc = os.path.join(WORK, f"{name}-pc.h5")
    retort(["data", "text", "--in", jl, "--format", "jsonl", "--tokenizer", source, "--out", pc],
           what=f"{name}: data text prompt/completion")
    got = helper({"op": "dataset", "path": pc})
    if got:
        for (p, c), d in zip(pairs, got["docs"]):
            want_p, want_c = hf.encode(p, add_special_tokens=False).ids, hf.encode(c, add_special_tokens=False).ids
            if d != [start] + want_p + want_c + [eos]:
                errors.append(f"{name}: prompt/completion document {p!r} / {c!r} is {d}")
                break
        for (p, _), n in zip(pairs, got["prompt_len"]):
            if n != len(hf.encode(p, add_special_tokens=False).ids):
                errors.append(f"{name}: prompt_len {n} for {p!r}, HF has {len(hf.encode(p, add_special_tokens=False).ids)} ids")
                break
    return out


def train(name, source, data, vocab):
    run = os.path.join(WORK, f"run-{name}")
    retort(["train", os.path.join(SRC, "trainer", "configs", "tiny.yaml"), *SMALL, f"model.vocab_size={vocab}",
            f"model.tokenizer={source}", f"data.train={data}", f"run.out_dir={run}"], what=f"{name}: train")
    return os.path.join(run, "ckpt-latest.h5")


def check_checkpoint(name, ckpt, hf, texts):
    bad = []
    for t in [t for t in texts if t][:40]:
        p = retort(["tokenize", ckpt, "--ids", "--text", t], what=f"{name}: tokenize the checkpoint")
        got = [int(x) for x in p.stdout.split()]
        if got != hf.encode(t).ids:
            bad.append((t, got, hf.encode(t).ids))
    if bad:
        errors.append(f"{name}: the checkpoint's tokenizer differs from HF on {len(bad)} texts, e.g. {bad[0]!r}")
    print(f"{name}: the checkpoint's tokenizer gives HF's ids on {40 - len(bad)}/40 texts")


def check_generate(name, ckpt, hf):
    for prompt in ("The license", "Hello world, "):
        p = retort(["generate", ckpt, "--prompt", prompt, "--max-tokens", "16", "--temperature", "0", "--ids"],
                   what=f"{name}: generate")
        out = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
        text, _, ids_line = out.rpartition("\n")
        ids = [int(x) for x in ids_line.split()]
        want = hf.decode(ids, skip_special_tokens=True)
        if text != want or ids[:len(hf.encode(prompt).ids)] != hf.encode(prompt).ids:
            errors.append(f"{name}: generate printed {text!r} for ids {ids}; HF decodes them as {want!r}")
    print(f"{name}: generate decodes its ids as HF does")


def check_gguf(name, ckpt, hf, texts, adds_bos):
    path = os.path.join(WORK, f"{name}.gguf")
    retort(["export", ckpt, "--format", "gguf", "--type", "f32", "--out", path], what=f"{name}: export gguf")
    plain = [t for t in texts if not any(s in t for s in specials_of(hf))]
    got = helper({"op": "llama", "path": path, "texts": plain, "add_bos": adds_bos})
    if not got:
        return
    bad = [(t, g, hf.encode(t).ids) for t, g in zip(plain, got["ids"]) if g != hf.encode(t).ids]
    if bad:
        errors.append(f"{name}: llama.cpp tokenizes {len(bad)}/{len(plain)} texts of the GGUF export otherwise "
                      f"than HF, e.g. {bad[0]!r}")
    print(f"{name}: llama.cpp on the GGUF export gives HF's ids on {len(plain) - len(bad)}/{len(plain)} texts")


def check_onnx(name, ckpt, hf, texts):
    folder = os.path.join(WORK, f"{name}-onnx")
    retort(["export", ckpt, "--format", "onnx", "--out", folder], what=f"{name}: export onnx")
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    bad = [t for t in texts if tok.encode(t).ids != hf.encode(t).ids]
    if bad:
        errors.append(f"{name}: the ONNX folder's tokenizer.json differs from HF on {len(bad)} texts")
    from transformers import AutoTokenizer
    at = AutoTokenizer.from_pretrained(folder)
    want_eos = "</s>" if hf.token_to_id("<s>") is not None else "<|endoftext|>"
    if at.eos_token != want_eos or at("Hello world")["input_ids"] != hf.encode("Hello world").ids:
        errors.append(f"{name}: transformers reads the ONNX folder's tokenizer with eos {at.eos_token!r}, "
                      f"ids {at('Hello world')['input_ids']}")
    some = [t for t in texts if t and not any(s in t for s in specials_of(hf))]
    if hf.token_to_id("<s>") is not None:
        # onnxruntime-genai's own SentencePiece BPE (onnxruntime-extensions 0.18) splits runs of whitespace
        # otherwise than HF (and than llama.cpp): compared on texts without them (docs/tokenizers.md)
        some = [t for t in some if not any(a in t for a in ("  ", " \n", "\n ", "\t ", " \t", "\r\n "))]
    some = some[:30]
    got = helper({"op": "genai", "path": folder, "texts": some})
    if got:
        bad = [(t, g) for t, g in zip(some, got["ids"]) if g != hf.encode(t).ids]
        if bad:
            errors.append(f"{name}: onnxruntime-genai tokenizes {len(bad)}/{len(some)} texts otherwise than HF, "
                          f"e.g. {bad[0]!r} (HF {hf.encode(bad[0][0]).ids})")
    print(f"{name}: the ONNX folder's tokenizer loads in HF tokenizers, transformers and onnxruntime-genai "
          f"with HF's ids")


def check_flow(ckpt, hf, texts):
    """The BPE model's tokenizer through a LoRA fine-tune, merge, synth (as teacher) and logit distillation
    of a student that takes the teacher's tokenizer (model.tokenizer=TEACHER.h5)."""
    tiny = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
    jl = os.path.join(WORK, "flow-pc.jsonl")
    with open(jl, "w", encoding="utf-8") as f:
        for i in range(0, 60, 2):
            f.write(json.dumps({"prompt": texts[20 + i], "completion": texts[21 + i]}) + "\n")
    data = os.path.join(WORK, "flow-pc.h5")
    retort(["data", "text", "--in", jl, "--format", "jsonl", "--tokenizer", ckpt, "--out", data],
           what="data text --tokenizer CKPT")
    run = os.path.join(WORK, "flow-lora")
    retort(["finetune", os.path.join(SRC, "trainer", "configs", "lora.yaml"), f"base={ckpt}", f"data.train={data}",
            "data.val=", "data.seq_len=32", "train.steps=2", "train.batch_size=2", "checkpoint.every=0",
            f"run.out_dir={run}"], what="finetune lora on the BPE model")
    adapter = os.path.join(run, "ckpt-latest.h5")
    merged = os.path.join(WORK, "flow-merged.h5")
    retort(["merge", adapter, "--out", merged], what="merge")
    for label, path in (("LoRA adapter checkpoint", adapter), ("merged checkpoint", merged)):
        bad = [t for t in texts[:30] if t and [int(x) for x in retort(["tokenize", path, "--ids", "--text", t]).stdout.split()]
               != hf.encode(t).ids]
        if bad:
            errors.append(f"the {label}'s tokenizer differs from HF on {len(bad)} texts, e.g. {bad[0]!r}")
    prompts = os.path.join(WORK, "flow-prompts.jsonl")
    with open(prompts, "w", encoding="utf-8") as f:
        for t in ("The license", "Hello world", "You may"):
            f.write(json.dumps({"prompt": t}) + "\n")
    synth = os.path.join(WORK, "flow-synth.h5")
    retort(["synth", tiny, f"synth.teacher={ckpt}", f"synth.prompts={prompts}", "synth.max_tokens=6",
            "synth.topk=4", "synth.topk_temperature=1", "synth.temperature=0", f"synth.out={synth}"],
           what="synth with the BPE teacher")
    got, ds = helper({"op": "dataset", "path": synth}), helper({"op": "dataset", "path": data})
    if got and ds:
        eos = hf.token_to_id("<|endoftext|>")
        starts = [d[:1 + len(hf.encode(p).ids)] for d, p in zip(got["docs"], ("The license", "Hello world", "You may"))]
        want = [[eos] + hf.encode(p).ids for p in ("The license", "Hello world", "You may")]
        if starts != want or any(d[-1] != eos for d in got["docs"]):
            errors.append(f"synth documents start {starts}, expected {want}, and end with EOS")
        if got["attrs"].get("tokenizer_hash") != ds["attrs"].get("tokenizer_hash") or got["attrs"].get("tokenizer") != "bpe":
            errors.append(f"synth records the tokenizer {got['attrs']}, the teacher's is {ds['attrs']}")
    retort(["distill", tiny, *SMALL, "model.vocab_size=768", f"model.tokenizer={ckpt}", f"data.train={synth}",
            "distill.mode=offline_topk", "distill.temperature=1", f"distill.teacher={ckpt}",
            f"run.out_dir={os.path.join(WORK, 'flow-student')}"], what="offline distillation with the teacher's tokenizer")
    print("bpe: the tokenizer survives LoRA, merge, synth (prompts, EOS, recorded hash) and logit distillation")


def check_refusals(bpe_ckpt, bpe_data, spm_source, spm_data, spm_vocab):
    tiny = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
    p = retort(["train", tiny, *SMALL, "model.vocab_size=768", f"model.tokenizer={spm_source}",
                f"data.train={bpe_data}", f"run.out_dir={os.path.join(WORK, 'r1')}"], expect=1,
               what="training on data of another tokenizer")
    if "tokenized with" not in p.stderr or "ids mean different text" not in p.stderr:
        errors.append(f"data of another tokenizer: {p.stderr[-400:]}")
    p = retort(["train", tiny, *SMALL, "model.vocab_size=300", f"model.tokenizer={spm_source}",
                f"data.train={spm_data}", f"run.out_dir={os.path.join(WORK, 'r2')}"], expect=1,
               what="a vocabulary smaller than the tokenizer's")
    if f"model.vocab_size 300 is smaller than the {spm_vocab} ids" not in p.stderr:
        errors.append(f"small vocabulary: {p.stderr[-400:]}")
    p = retort(["train", tiny, *SMALL, f"data.train={os.path.join(WORK, 'add.h5')}",
                "model.vocab_size=768", f"model.tokenizer={spm_source}", f"run.out_dir={os.path.join(WORK, 'r3')}"],
               expect=1, what="a synthetic task with a real tokenizer")
    if "byte-tokenizer ids" not in p.stderr:
        errors.append(f"byte data with a real tokenizer: {p.stderr[-400:]}")
    p = retort(["distill", tiny, *SMALL, "model.vocab_size=768", f"model.tokenizer={spm_source}",
                f"data.train={spm_data}", "distill.mode=online", f"distill.teacher={bpe_ckpt}",
                f"run.out_dir={os.path.join(WORK, 'r4')}"], expect=2, what="distillation across tokenizers")
    if "logit distillation needs the same tokenizer" not in p.stderr or "hash" not in p.stderr:
        errors.append(f"distillation across tokenizers: {p.stderr[-400:]}")
    p = retort(["synth", tiny, f"synth.teacher={bpe_ckpt}", "synth.n_prompts=4",
                f"synth.out={os.path.join(WORK, 's.h5')}"], expect=1, what="synth of a task with a BPE teacher")
    if "byte-level" not in p.stderr:
        errors.append(f"synth task with a BPE teacher: {p.stderr[-400:]}")
    print("refused: data of another tokenizer, a small vocabulary, byte task data, distillation across "
          "tokenizers, synthetic tasks for a BPE teacher")


def main():
    lines = corpus()
    retort(["data", "synth", "--task", "add", "--n", "50", "--out", os.path.join(WORK, "add.h5")])
    bpe_source, bpe = train_bpe(lines)
    spm_source, sp = train_spm(lines)
    bpe_texts = R.make_texts(specials_of(bpe), n=300, seed=11)
    spm_texts = R.make_texts(specials_of(sp), n=300, seed=12)
    datasets = {}
    for name, source, hf, texts, adds_bos in (("bpe", bpe_source, bpe, bpe_texts, False),
                                               ("spm", spm_source, sp, spm_texts, True),
                                               ("bpe-gguf", bpe_gguf(bpe), bpe, bpe_texts, False)):
        data = check_data(name, source, hf, texts)
        datasets[name] = data
        ckpt = train(name, source, data, 768)
        check_checkpoint(name, ckpt, hf, texts)
        if name == "bpe-gguf":
            continue
        check_generate(name, ckpt, hf)
        check_gguf(name, ckpt, hf, texts, adds_bos)
        check_onnx(name, ckpt, hf, texts)
        datasets[name + "-ckpt"] = ckpt
        if name == "bpe":
            check_flow(ckpt, hf, texts)
    check_refusals(datasets["bpe-ckpt"], datasets["bpe"], spm_source, datasets["spm"], sp.get_vocab_size())
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print("OK: tokenizers travel through data, checkpoints, generation and exports as HF has them")


main()
