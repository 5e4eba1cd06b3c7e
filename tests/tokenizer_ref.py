"""Shared pieces of the tokenizer checks (run with .venv-hf's python): the varied test texts, tokenizer.json
files rebuilt from llama.cpp's real vocabularies or trained here with tokenizers and sentencepiece, and the
C harness (tests/tokenizer_harness.c) that encodes many texts in one process."""
import glob
import json
import os
import random
import subprocess
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
META = "\u2581"
VOCAB_NAMES = ["gpt-2", "llama-bpe", "qwen2", "llama-spm"]


def fail(msg):
    sys.exit("FAIL: " + msg)


# ---- texts

WORDS = ["Hello", "world", "the", "quick", "brown", "fox", "don't", "it's", "WE'RE", "I'M", "they'll", "you'd",
         "Привет", "мир", "Ελληνικά", "日本語のテキスト", "中文字符", "한국어", "עברית", "العربية", "हिन्दी",
         "ภาษาไทย", "ខ្មែរ", "Ünïcödé", "naïve", "café", "Straße", "ﬁne", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "x²", "½", "Ⅻ",
         "e\u0301", "a\u0308\u0323", "\u1100\u1161\u11a8", "Å", "\u212b", "ḱ̂", "👍", "👩‍👩‍👧", "🇫🇷", "👋🏽",
         "❤️", "🚀!", "😀😃", "(", ")", "{", "}", "[", "]", ";", "::", "->", "=>", "!=", "==", "...", "—",
         "«", "»", "“quoted”", "'single'", "`code`", "#", "@user", "$100", "3.14159", "1,000,000", "42",
         "2024-12-31", "0x1F", "١٢٣", "１２３", "٣", "\u00a0", "\u3000", "snake_case", "camelCase",
         "https://example.com/a?b=c", "e-mail@example.org"]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\t\t", "\u00a0", "\u2009", "\u3000", "\r"]
CODE = ["def f(x):\n    return x * 2\n", "int main(void) {\n\treturn 0;\n}\n", "for i in range(10): print(i)",
        "if (a && b || !c) { x += 1; }", "SELECT * FROM t WHERE id = 42;", "<div class=\"a\">text</div>",
        "    indented\n        more\n", "x = [1, 2, 3]  # comment", "λx.x y", "a\r\nb\r\n\r\nc"]


def make_texts(specials, n=1200, seed=1234):
    """n texts with a fixed seed: words of many scripts, emoji, whitespace runs, CRLF, digits, code,
    combining marks, and the given special tokens' text (whole and broken) inside the text."""
    rng = random.Random(seed)
    texts = ["", " ", "  ", "\n", " \n", "Hello world", " Hello world", "Hello", "  Hello", "e\u0301",
             "\u00e9", "3333333", "'s 't 'RE 've", "\r\n\r\n", "\t\n",
             "\U0001f5bc\u20e1\u08cf"]  # marks whose canonical order tokenizers' NFC does not know
    pieces = WORDS + CODE + [str(rng.randrange(10 ** k)) for k in range(1, 12)]
    specials = list(specials)
    while len(texts) < n:
        parts = []
        for _ in range(rng.randrange(1, 14)):
            r = rng.random()
            if r < 0.55:
                parts.append(rng.choice(pieces))
            elif r < 0.85:
                parts.append(rng.choice(SPACES))
            elif r < 0.93 and specials:
                s = rng.choice(specials)
                parts.append(s if rng.random() < 0.7 else s[: max(1, len(s) // 2)])
            else:
                parts.append("".join(chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0x2fff),
                                                    rng.randrange(0x1f300, 0x1faff)]))
                                     for _ in range(rng.randrange(1, 6))))
        text = "".join(parts)
        if rng.random() < 0.3:
            text = rng.choice(SPACES) + text
        if rng.random() < 0.2:
            text = text + rng.choice(SPACES)
        texts.append(text)
    return texts


def vocab_test_texts(path):
    """The texts of a llama.cpp ggml-vocab-*.gguf.inp file and the ids of its .out file."""
    inp = open(path + ".inp", encoding="utf-8").read()
    texts = inp.split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    outs = open(path + ".out", encoding="utf-8").read().split("\n")
    ids = [[int(x) for x in line.split()] for line in outs[:len(texts)]]
    if len(texts) != 46 or len(ids) != 46:
        fail(f"{path}: expected 46 texts and 46 id lines, found {len(texts)} and {len(ids)}")
    return texts, ids


# ---- the C side

class Harness:
    def __init__(self, path):
        self.path = path

    def run(self, args, data):
        p = subprocess.run([self.path] + args, input=data, capture_output=True, timeout=600)
        if p.returncode != 0:
            fail(f"tokenizer_harness {' '.join(args)}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
        return p.stdout

    def encode(self, source, texts, special=False):
        data = b"".join(b"%d\n" % len(t.encode()) + t.encode() for t in texts)
        out = self.run(["encode", source] + (["special"] if special else []), data).decode().split("\n")
        return [[int(x) for x in line.split()] for line in out[:len(texts)]]

    def decode(self, source, id_lists, skip=False):
        data = "".join(" ".join(map(str, ids)) + "\n" for ids in id_lists).encode()
        out = self.run(["decode", source] + (["skip"] if skip else []), data)
        texts, at = [], 0
        for _ in id_lists:
            nl = out.index(b"\n", at)
            n = int(out[at:nl])
            texts.append(out[nl + 1:nl + 1 + n])
            at = nl + 1 + n
        return texts

    def info(self, source):
        out = self.run(["info", source], b"").decode()
        return dict(line.split(" ", 1) for line in out.strip().split("\n"))


def nfc_table_divergence(hf, text):
    """True when HF's NFC of text is not Unicode's: tokenizers' NFC (the unicode-normalization-alignments
    crate) has the combining classes of an old Unicode version, where ~100 marks added since are class 0,
    so it leaves them unordered. retort's NFC (tokenizer/unicode.c) follows Unicode 15.0 there."""
    import unicodedata
    return (hf.normalizer is not None and "NFC" in repr(hf.normalizer)
            and normalizers.NFC().normalize_str(text) != unicodedata.normalize("NFC", text))


def compare(name, harness, source, hf, texts, errors, check_decode=True):
    """retort's ids against HF's encode(text, add_special_tokens=False/True) and its decode; returns counts.
    Texts on which HF's NFC departs from Unicode's (nfc_table_divergence) are counted apart, not failed."""
    counts = {"nfc_divergent": 0}
    for special in (False, True):
        want = [hf.encode(t, add_special_tokens=special).ids for t in texts]
        got = harness.encode(source, texts, special)
        bad = [i for i in range(len(texts)) if want[i] != got[i]]
        divergent = [i for i in bad if nfc_table_divergence(hf, texts[i])]
        counts["nfc_divergent"] = len(divergent)
        counts[special] = len(texts) - len(bad)
        bad = [i for i in bad if i not in divergent]
        for i in bad[:3]:
            errors.append(f"{name} add_special={special} text {texts[i]!r}:\n  HF     {want[i]}\n  retort {got[i]}")
        if len(bad) > 3:
            errors.append(f"{name} add_special={special}: {len(bad)} of {len(texts)} texts differ")
        if special or not check_decode:
            continue
        decoded = harness.decode(source, want)
        hf_decoded = [hf.decode(ids, skip_special_tokens=False) for ids in want]
        bad = [i for i in range(len(texts)) if decoded[i].decode("utf-8", errors="replace") != hf_decoded[i]]
        counts["decode"] = len(texts) - len(bad)
        for i in bad[:3]:
            errors.append(f"{name} decode of {texts[i]!r}:\n  HF     {hf_decoded[i]!r}\n  retort {decoded[i]!r}")
    return counts


# ---- tokenizer.json rebuilt from a llama.cpp vocabulary GGUF (what convert_hf_to_gguf.py read from HF)

def read_gguf_kv(path):
    """The key-value section of a GGUF file as {key: value} (arrays as lists). A small reader of its own:
    the gguf package's GGUFReader takes ~20 s on Llama 3's 280k merges, this one ~0.3 s."""
    import struct
    data = open(path, "rb").read()
    if data[:4] != b"GGUF":
        fail(f"{path}: not a GGUF file")
    _, _, n_kv = struct.unpack_from("<IQQ", data, 4)
    at = 24
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def string(at):
        (n,) = struct.unpack_from("<Q", data, at)
        return data[at + 8:at + 8 + n].decode("utf-8"), at + 8 + n

    def value(vtype, at):
        if vtype == 8:
            return string(at)
        if vtype == 9:
            etype, n = struct.unpack_from("<IQ", data, at)
            at += 12
            if etype == 8:
                out = []
                for _ in range(n):
                    s, at = string(at)
                    out.append(s)
                return out, at
            fmt = scalar[etype]
            size = struct.calcsize(fmt)
            return list(struct.unpack_from("<%d%s" % (n, fmt), data, at)), at + n * size
        fmt = scalar[vtype]
        return struct.unpack_from("<" + fmt, data, at)[0], at + struct.calcsize(fmt)

    kv = {}
    for _ in range(n_kv):
        key, at = string(at)
        (vtype,) = struct.unpack_from("<I", data, at)
        kv[key], at = value(vtype, at + 4)
    return kv


def gguf_vocab(path):
    kv = read_gguf_kv(path)
    return {"tokens": kv["tokenizer.ggml.tokens"], "types": kv.get("tokenizer.ggml.token_type", []),
            "scores": kv.get("tokenizer.ggml.scores", []), "merges": kv.get("tokenizer.ggml.merges", []),
            "bos": kv.get("tokenizer.ggml.bos_token_id"), "unk": kv.get("tokenizer.ggml.unknown_token_id")}


def spm_merges(vocab, types, scores):
    """BPE merges from SentencePiece scores (transformers' SentencePieceExtractor): every normal piece split
    into two normal pieces, ranked by the merged piece's score."""
    merges = []
    for piece, pid in vocab.items():
        if types[pid] != 1:
            continue
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece))
                 if types[vocab.get(piece[:k], 0)] == 1 and types[vocab.get(piece[k:], 0)] == 1
                 and piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges += [(a, b, scores[pid]) for a, b in local]
    merges.sort(key=lambda m: m[2], reverse=True)
    return [(a, b) for a, b, _ in merges]


def spm_tokenizer(vocab, merges, unk, bos, form):
    """A SentencePiece-style BPE tokenizer.json: the legacy Llama 2 form or the Metaspace form."""
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    if form == "legacy":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend(META), normalizers.Replace(" ", META)])
        tok.decoder = decoders.Sequence([decoders.Replace(META, " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    else:  # e.g. "metaspace-first-nosplit"
        _, scheme, split = form.split("-")
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme=scheme, split=split == "split")
        tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme=scheme, split=split == "split")
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    return tok


def byte_level_steps(tok, style, bos=None, bos_id=None):
    if style == "gpt-2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif style == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        if style == "qwen2":
            tok.normalizer = normalizers.NFC()
        pattern = LLAMA3 if style == "llama-bpe" else QWEN2
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), "isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    if bos is not None:
        tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False),
                                                  processors.TemplateProcessing(single=f"{bos} $A",
                                                                                special_tokens=[(bos, bos_id)])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)


def rebuild_from_gguf(name, path, form=None):
    """The tokenizer.json of a real vocabulary, rebuilt from its llama.cpp GGUF (models.md: these reproduce
    the .out ids of HF's own tokenizers)."""
    v = gguf_vocab(path)
    vocab = {t: i for i, t in enumerate(v["tokens"])}
    specials = [AddedToken(t, special=True, normalized=False) for t, ty in zip(v["tokens"], v["types"])
                if ty in (3, 4)]
    if name == "llama-spm":
        merges = spm_merges(vocab, v["types"], v["scores"])
        tok = spm_tokenizer(vocab, merges, v["tokens"][v["unk"]], v["tokens"][v["bos"]], form or "legacy")
        tok.add_special_tokens([AddedToken(v["tokens"][v["unk"]], special=True, normalized=False)] + specials)
        return tok
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=name == "llama-bpe"))
    bos = v["tokens"][v["bos"]] if name == "llama-bpe" else None
    byte_level_steps(tok, name, bos, v["bos"])
    tok.add_special_tokens(specials)
    return tok


def save(tok, path, merges_as_strings=False):
    """Writes tokenizer.json; merges_as_strings rewrites them in the "a b" form files from before
    tokenizers 0.20 carry (the real Llama 3 and Qwen2 files)."""
    tok.save(path)
    if merges_as_strings:
        d = json.load(open(path, encoding="utf-8"))
        d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
        json.dump(d, open(path, "w", encoding="utf-8"), ensure_ascii=False)
        tok = Tokenizer.from_file(path)  # the reference then reads the same file
    return tok
