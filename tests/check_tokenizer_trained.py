"""retort's tokenizers on vocabularies trained here (run with .venv-hf's python; argv[1] is tokenizer_harness):
tokenizers' BpeTrainer in the Llama 3, Qwen2 (NFC), GPT-2 and SmolLM (Digits + ByteLevel) styles and the
real sentencepiece trainer (Llama 2 style, byte fallback) written as the legacy Llama 2 tokenizer.json and
in Metaspace form, all on Debian's licence texts. Each is compared with HF tokenizers on 1,200 varied texts
(ids with and without special tokens, decode of HF's ids):
- as tokenizer.json (GPT-2 also with ByteLevel's add_prefix_space), then with extra added tokens that exercise lstrip/rstrip, single_word and normalized
  matching (and an added token in the middle of the vocabulary's ids);
- as a GGUF file written by the gguf package (tokenizer.ggml.* keys as convert_hf_to_gguf.py writes them),
  which retort reads with llama.cpp's algorithms (SentencePiece by score), and the tokenizer.json retort writes
  from that GGUF (tokenizer_json_write.c), read by HF tokenizers, against retort on the GGUF."""
import glob
import os
import sys
import tempfile
import zlib

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref as R  # noqa: E402

HARNESS = R.Harness(sys.argv[1])
errors = []
WORK = tempfile.mkdtemp(prefix="rt-tok-trained-")
SPECIALS = {"llama-bpe": ["<|begin_of_text|>", "<|end_of_text|>"],
            "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            "gpt-2": ["<|endoftext|>"], "smollm": ["<|endoftext|>", "<|im_start|>"]}
EXTRA = [AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False),
         AddedToken("[SEP]", single_word=True, special=False, normalized=False),
         AddedToken("café", special=False, normalized=True),
         AddedToken("hello", special=False, normalized=True, single_word=True)]
EXTRA_TEXTS = ["a <mask> b", "x  <mask>\n\ny", "<mask><mask>", "[SEP]", "a [SEP] b", "a[SEP]b", "_[SEP]",
               "cafe\u0301 café", "Hello hello hellohello", " hello", "\u00e9[SEP]\u00e9"]


def corpus():
    files = sorted(glob.glob("/usr/share/common-licenses/*"))
    text = []
    size = 0
    for f in files:
        if os.path.isfile(f) and size < 800_000:
            t = open(f, encoding="utf-8", errors="replace").read()
            text.append(t)
            size += len(t)
    text += R.make_texts([], n=600, seed=7)  # other scripts, emoji, digits, code
    return text


def train_byte_level(style, lines):
    tok = Tokenizer(models.BPE(ignore_merges=style == "llama-bpe"))
    specials = SPECIALS[style]
    R.byte_level_steps(tok, style, specials[0] if style == "llama-bpe" else None, 0)
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    if style == "llama-bpe":  # the template now that the BOS id is known
        R.byte_level_steps(tok, style, specials[0], tok.token_to_id(specials[0]))
    return tok


def train_spm(lines):
    path = os.path.join(WORK, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(x.replace("\r", "") for x in lines))
    prefix = os.path.join(WORK, "spm")
    spm.SentencePieceTrainer.train(input=path, model_prefix=prefix, model_type="bpe", vocab_size=1500,
                                   character_coverage=0.995,
                                   byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
                                   remove_extra_whitespaces=False, normalization_rule_name="identity",
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    types = [3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 6 if sp.is_byte(i) else 1
             for i in range(len(pieces))]
    scores = [sp.get_score(i) for i in range(len(pieces))]
    return pieces, types, scores


def write_gguf(path, model, pre, tokens, types, merges=None, scores=None, bos=None, eos=None, unk=None,
               add_bos=False):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    if scores is not None:
        w.add_token_scores(scores)
    for setter, value in ((w.add_bos_token_id, bos), (w.add_eos_token_id, eos), (w.add_unk_token_id, unk)):
        if value is not None:
            setter(value)
    w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check(label, source, hf, texts):
    counts = R.compare(label, HARNESS, source, hf, texts, errors)
    print(f"{label}: HF ids equal on {counts[False]}/{len(texts)} texts (no specials), {counts[True]} (specials), "
          f"decode {counts['decode']}" +
          (f"; {counts['nfc_divergent']} texts where HF's NFC is not Unicode's" if counts["nfc_divergent"] else ""))


def byte_level_gguf(style, tok):
    """GGUF keys as convert_hf_to_gguf.py writes a byte-level BPE vocabulary."""
    vocab = tok.get_vocab()
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    specials = {a.content for a in tok.get_added_tokens_decoder().values() if a.special}
    types = [3 if t in specials else 1 for t in tokens]
    import json
    merges = [" ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    path = os.path.join(WORK, f"{style}.gguf")
    bos = tok.token_to_id(SPECIALS[style][0])
    write_gguf(path, "gpt2", style, tokens, types, merges=merges, bos=bos, eos=bos, add_bos=style == "llama-bpe")
    return path


def check_written_json(label, gguf_path, texts):
    """The tokenizer.json retort writes from the GGUF (tokenizer_json_write.c), read by HF tokenizers, gives
    retort's ids on the GGUF."""
    path = gguf_path + ".written.json"
    open(path, "wb").write(HARNESS.run(["json", gguf_path], b""))
    check(f"{label} tokenizer.json written from the GGUF", gguf_path, Tokenizer.from_file(path), texts)


STYLES = ("llama-bpe", "qwen2", "gpt-2", "smollm")


def main():
    lines = corpus()
    if len(sys.argv) > 2:  # a quick look at one style
        global STYLES
        STYLES = sys.argv[2:]
    for style in STYLES:
        tok = train_byte_level(style, lines)
        texts = R.make_texts(SPECIALS[style] + ["<s>"], seed=zlib.crc32(style.encode())) + EXTRA_TEXTS
        path = os.path.join(WORK, f"{style}.json")
        tok = R.save(tok, path, merges_as_strings=style == "qwen2")
        check(f"trained {style} tokenizer.json", path, tok, texts)
        gguf_path = byte_level_gguf(style, tok)
        check(f"trained {style} GGUF", gguf_path, tok, texts)
        check_written_json(f"trained {style}", gguf_path, texts)
        if style == "gpt-2":  # ByteLevel's prefix space (RoBERTa, Phi): one before every piece lacking it
            prefixed = Tokenizer.from_str(tok.to_str())
            prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
            path = os.path.join(WORK, "gpt-2-prefix.json")
            check("trained gpt-2 tokenizer.json with add_prefix_space", path, R.save(prefixed, path), texts)
        tok.add_tokens(EXTRA)
        path = os.path.join(WORK, f"{style}-extra.json")
        tok = R.save(tok, path)
        check(f"trained {style} tokenizer.json with extra added tokens", path, tok, texts)

    pieces, types, scores = train_spm(lines)
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = R.spm_merges(vocab, types, scores)
    texts = R.make_texts(["<s>", "</s>", "<unk>"], seed=99) + EXTRA_TEXTS
    ref = None
    for form in ("legacy", "metaspace-first-nosplit", "metaspace-always-split", "metaspace-never-split"):
        tok = R.spm_tokenizer(vocab, merges, "<unk>", "<s>", form)
        tok.add_special_tokens([AddedToken(p, special=True, normalized=False)
                                for p, ty in zip(pieces, types) if ty in (2, 3)])
        path = os.path.join(WORK, f"spm-{form}.json")
        tok = R.save(tok, path)
        check(f"trained SentencePiece tokenizer.json ({form})", path, tok, texts)
        if form == "legacy":
            ref = tok
            tok.add_tokens(EXTRA)
            path = os.path.join(WORK, "spm-legacy-extra.json")
            check("trained SentencePiece legacy with extra added tokens", path, R.save(tok, path), texts)
            ref = R.spm_tokenizer(vocab, merges, "<unk>", "<s>", form)
            ref.add_special_tokens([AddedToken(p, special=True, normalized=False)
                                    for p, ty in zip(pieces, types) if ty in (2, 3)])
    gguf_path = os.path.join(WORK, "spm.gguf")
    write_gguf(gguf_path, "llama", "default", pieces, types, scores=scores, bos=vocab["<s>"], eos=vocab["</s>"],
               unk=vocab["<unk>"], add_bos=True)
    check("trained SentencePiece GGUF (llama.cpp's algorithm) against the legacy tokenizer.json", gguf_path, ref,
          texts)
    check_written_json("trained SentencePiece", gguf_path, texts)

    if errors:
        print("\n".join(errors))
        sys.exit(f"FAIL: {len(errors)} problems")
    print("ok")


main()
