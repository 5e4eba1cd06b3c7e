"""The tokenizer's Unicode layer against the real references (run with .venv-hf's python; argv[1] is
unicode_harness):
- rt_unicode_flags of every code point against the two regex engines HF tokenizers' world uses: Oniguruma
  (inside tokenizers' Split(Regex)) and the regex module, for \\p{L} \\p{N} \\p{P} \\p{S} \\p{M} \\p{Z}
  \\p{C} and \\s; and the numeric class against tokenizers' Digits (Rust's char::is_numeric).
  Our tables are Unicode 15.0 (Debian's unicode-data); the references may be newer. A difference is
  tolerated only for a code point that Unicode 15.0 leaves unassigned (DerivedAge.txt, same package) and
  that we therefore call \\p{C}; the counts are printed.
- rt_unicode_nfc against the Unicode conformance file NormalizationTest.txt (every line) and against
  tokenizers' normalizers.NFC() on the random texts below.
- The splitters against tokenizers itself: Split(Regex(P), "isolated") for the GPT-2, Llama 3 and Qwen2
  patterns (and GPT-2's pattern without its final |\\s+), ByteLevel(use_regex=True), Digits(individual_digits
  =True), and SmolLM's Sequence[Digits, ByteLevel], on thousands of texts mixing scripts, emoji, combining
  marks, digits of several scripts, whitespace runs and contractions (seed fixed).
- rt_pretok_kind_from_regex on the patterns as tokenizer.json files escape them."""
import bz2
import json
import os
import random
import subprocess
import sys
import tempfile

import regex
from tokenizers import Regex, normalizers, pre_tokenizers

HARNESS = sys.argv[1]
UCD = "/usr/share/unicode"
failures = []

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
GPT2_SHORT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
FLAG = {"L": 1, "N": 2, "P": 4, "S": 8, "M": 16, "Z": 32, "C": 64}
WHITESPACE = 128


def harness(args, data=None):
    p = subprocess.run([HARNESS] + args, input=data, capture_output=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"FAIL: unicode_harness {' '.join(args)} exited {p.returncode}: {p.stderr.decode()[-2000:]}")
    return p.stdout


def records(texts):
    out = bytearray()
    for t in texts:
        b = t.encode("utf-8")
        out += b"%d\n" % len(b) + b
    return bytes(out)


def assigned_in_ucd():
    """Code points assigned in the Unicode version of our tables (DerivedAge.txt lists every assigned one)."""
    cps = set()
    for line in open(os.path.join(UCD, "DerivedAge.txt"), encoding="utf-8"):
        line = line.split("#")[0].strip()
        if line:
            lo, _, hi = line.split(";")[0].strip().partition("..")
            cps.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return cps


# ---- every code point's flags ----

def check_flags(assigned):
    ours = harness(["flags"])
    if len(ours) != 0x110000:
        failures.append(f"flags: {len(ours)} bytes, expected {0x110000}")
        return
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]  # Python/Rust strings hold no surrogates
    text = "".join(map(chr, cps))

    def onig_members(pattern):  # the characters Oniguruma matches: all but those "removed" leaves
        kept = set()
        for _, (a, b) in pre_tokenizers.Split(Regex(pattern), "removed").pre_tokenize_str(text):
            kept.update(cps[a:b])
        return set(cps) - kept

    def compare(what, ref, bit):
        mine = {cps[i] for i in range(len(cps)) if ours[cps[i]] & bit}
        tolerated = 0
        for c in sorted(mine ^ ref):
            if c not in assigned and ours[c] == FLAG["C"]:
                tolerated += 1  # newer than our tables: unassigned for us, assigned for the reference
                continue
            failures.append(f"flags {what}: U+{c:04X} ours {ours[c]:#x}, reference {'has' if c in ref else 'lacks'} it")
            if len(failures) > 40:
                return tolerated
        return tolerated

    notes = []
    for cls, bit in list(FLAG.items()) + [("s", WHITESPACE)]:
        pattern = r"\s" if cls == "s" else r"\p{%s}" % cls
        onig = onig_members(pattern.replace("}", "}+") if cls != "s" else r"\s+")
        t1 = compare(f"{pattern} (tokenizers/Oniguruma)", onig, bit)
        rx = regex.compile(pattern)
        mod = {cps[m.start()] for m in rx.finditer(text)}
        t2 = compare(f"{pattern} (regex module)", mod, bit)
        notes.append(f"{pattern} {t1}/{t2}")
    # Digits on "x" + c + "x" + c ...: a numeric c is a piece of its own, any other merges with the x's
    interleaved = "".join("x" + chr(c) for c in cps)
    rust_numeric = {ord(piece) for piece, _ in
                    pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str(interleaved) if piece != "x"
                    and len(piece) == 1}
    t3 = compare("Digits (Rust char::is_numeric)", rust_numeric, FLAG["N"])
    print("flags: differences tolerated as newer than our Unicode tables (Oniguruma/regex module): "
          + ", ".join(notes) + f"; Digits {t3}")


# ---- NFC ----

def check_nfc_conformance():
    path = os.path.join(UCD, "NormalizationTest.txt.bz2")
    rows = []
    for line in bz2.open(path, "rt", encoding="utf-8"):
        line = line.split("#")[0].strip()
        if not line or line.startswith("@"):
            continue
        cols = ["".join(chr(int(x, 16)) for x in f.split()) for f in line.split(";")[:5]]
        rows.append(cols)
    flat = [c for r in rows for c in r]
    out = nfc_many(flat)
    bad = 0
    for i, (c1, c2, c3, c4, c5) in enumerate(rows):
        got = out[5 * i: 5 * i + 5]
        # NFC(c1) = NFC(c2) = NFC(c3) = c2; NFC(c4) = NFC(c5) = c4
        if got[:3] != [c2] * 3 or got[3:] != [c4] * 2:
            bad += 1
            if bad <= 5:
                failures.append(f"NormalizationTest: {[hex(ord(c)) for c in c1]} -> "
                                f"{[[hex(ord(c)) for c in g] for g in got]}, expected c2 {[hex(ord(c)) for c in c2]}")
    print(f"NFC: {len(rows)} NormalizationTest.txt lines, {bad} wrong")


# tokenizers' NFC (the unicode-normalization-alignments crate) has older combining classes than Unicode 15.0
# for these three marks: U+1DF6 (ccc 232 since Unicode 10) and U+1E4EC, U+1E4ED (Nag Mundari, Unicode 15.0,
# ccc 232). After U+0301 (230) the standard reorders them; NormalizationTest.txt above holds us to that.
NFC_OLDER_IN_TOKENIZERS = {0x1DF6, 0x1E4EC, 0x1E4ED}


def check_nfc_every_code_point(assigned):
    """NFC of every code point followed by U+0301 (its decomposition, ordering and composition with a mark)
    against tokenizers; code points newer than our tables and the three above may differ."""
    nfc = normalizers.NFC()
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [chr(c) + "\u0301" for c in cps]
    ours = nfc_many(texts)
    bad = 0
    for c, text, got in zip(cps, texts, ours):
        want = nfc.normalize_str(text)
        if got != want and c in assigned and c not in NFC_OLDER_IN_TOKENIZERS:
            bad += 1
            if bad <= 5:
                failures.append(f"NFC of U+{c:04X} U+0301: ours {[hex(ord(x)) for x in got]}, tokenizers "
                                f"{[hex(ord(x)) for x in want]}")
    print(f"NFC vs tokenizers: every code point + U+0301, {bad} differ")


def nfc_many(texts):
    raw = harness(["nfc"], records(texts))
    out, pos = [], 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        n = int(raw[pos:nl])
        out.append(raw[nl + 1: nl + 1 + n].decode("utf-8"))
        pos = nl + 1 + n
    if len(out) != len(texts):
        failures.append(f"nfc: {len(out)} results for {len(texts)} texts")
    return out


# ---- random texts ----

FRAGMENTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "accents": "éèêëàâäçñøåæœßÉÈÀÇÑÖÜÿıİſǅǈ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΩάέήίόύώϊΐ",
    "cjk": "中文字日本語漢字한국어가나다ひらがなカタカナー々〆",
    "arabic": "العربيةمرحبابكمفيعالمٱلْكِتَابُ",
    "hebrew": "שלוםעבריתבְּרֵאשִׁית",
    "devanagari": "नमस्तेहिन्दीक़ख़ग़ज़",
    "khmer": "ភាសាខ្មែរសួស្តី",
    "thai": "ภาษาไทยสวัสดีครับ",
    "marks": "\u0301\u0300\u0323\u0307\u0308\u0327\u030a\u0345\u05b0\u064b\u093c\u20dd\u0e31\u17c6\u0f71\u0f72",
    "decomposed": ["e\u0301", "A\u030a", "a\u0307\u0323", "q\u0307\u0323", "\u1100\u1161\u11a8", "\uac00\u11a8",
                   "\u212b", "\u2126", "\u0958", "\u1e9b\u0323", "\u0931", "o\u0308\u0304", "\u0fb3\u0f71\u0f80",
                   "\u09c7\u09be", "\u0b47\u0b3e", "\u1025\u102e", "\u1100", "\u1161", "\u11a8", "\u0f73"],
    "digits": "0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳０１２３４５６７８９१२३४๑๒๓½²³ⅧⅫ①⑩",
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇯🇵", "✨", "🤷🏻‍♀️", "©️", "🧑🏿‍💻"],
    "space": [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u2028", "\u3000", "\u200b", "\u2009", "\x0b",
              "\x0c", "\u0085", "\u1680", " \n ", "\n\n", "   \t ", " \r\n", "\n \n", "\t\n", "\u200e", "\u180e",
              "\x1c", "\ufeff"],
    "contractions": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'rE", "'M", "'LL",
                     "'lL", "'D", "'ſ", "'ß", "'ﬅ", "'ﬆ", "'ẗ", "'K", "'", "''", "’s", "'x", "'1", "' s"],
    "punct": list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "—", "«»", "¿", "、。", "！", "€", "©", "→", "±"],
    "code": ["def f(x):\n    return x+1\n", "if (a && b) { i++; }", "#include <stdio.h>", "x = [1, 2, 3]",
             "  // TODO: fix\n", "\tfoo_bar = baz->qux;", "<div class=\"a\">", "0x1F600", "3.14159", "1,000,000",
             "2024-01-01T12:00:00Z", "http://example.com/a?b=c&d=e"],
    "words": ["Hello", "world", "don't", "I'm", "we'll", "they've", "café", "naïve", "Ünïcödé", "über", "IT'S",
              "WE'RE", "l'homme", "ǅemal"],
}


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 14)):
        kind = rng.choice(list(FRAGMENTS))
        pool = FRAGMENTS[kind]
        if isinstance(pool, str):
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        else:
            parts.append(rng.choice(pool))
        if rng.random() < 0.3:
            parts.append(" ")
    return "".join(parts)


def spans_to_pieces(line, text_bytes):
    pieces = []
    for item in line.split():
        off, length = map(int, item.split(":"))
        pieces.append(text_bytes[off: off + length].decode("utf-8"))
    return pieces


def check_split(name, args, ref, texts):
    lines = harness(["split"] + args, records(texts)).decode().split("\n")[:-1]
    if len(lines) != len(texts):
        failures.append(f"{name}: {len(lines)} results for {len(texts)} texts")
        return
    bad = 0
    for text, line in zip(texts, lines):
        ours = spans_to_pieces(line, text.encode("utf-8"))
        theirs = [text[a:b] for _, (a, b) in ref.pre_tokenize_str(text)]  # offsets: ByteLevel maps the pieces
        if ours != theirs:
            bad += 1
            if bad <= 5:
                failures.append(f"{name}: {text!r}\n  ours {ours}\n  HF   {theirs}")
    print(f"{name}: {len(texts)} texts, {bad} differ")


def check_kind_from_regex():
    # tokenizer.json escapes each backslash; what the loader compares is the decoded string
    for pattern, want in [(GPT2, 0), (GPT2_SHORT, 0), (LLAMA3, 1), (QWEN2, 2), (r"\p{N}", -1), (LLAMA3 + "|x", -1),
                          (LLAMA3.replace("(?i:", "(?:"), -1)]:
        decoded = json.loads(json.dumps({"Regex": pattern}))["Regex"]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(decoded)
        got = int(harness(["kind", f.name]).decode())
        os.unlink(f.name)
        if got != want:
            failures.append(f"rt_pretok_kind_from_regex({pattern!r}) = {got}, expected {want}")


def main():
    rng = random.Random(1234)
    texts = [random_text(rng) for _ in range(4000)]
    texts += ["", " ", "  ", "\n", " a", "a ", "   a", "\n\n  a", "  \n  ", "'s", "'sx", "'ſx", "''s", "a\r\n\r\nb",
              "x  \t\n y", "1234567", "١٢٣٤", "  !!abc", " !abc", "!\n\nx", "\t\tfoo", "a\u3000\u3000b"]
    split = lambda p: pre_tokenizers.Split(Regex(p), "isolated")  # noqa: E731
    check_split("GPT-2 Split", ["gpt2"], split(GPT2), texts)
    check_split("GPT-2 Split without |\\s+", ["gpt2"], split(GPT2_SHORT), texts)
    check_split("ByteLevel(use_regex)", ["gpt2"], pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
                texts)
    check_split("Llama 3 Split", ["llama3"], split(LLAMA3), texts)
    check_split("Qwen2 Split", ["qwen2"], split(QWEN2), texts)
    check_split("Digits", ["digits"], pre_tokenizers.Digits(individual_digits=True), texts)
    check_split("SmolLM Sequence[Digits, ByteLevel]", ["digits", "gpt2"],
                pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), texts)
    nfc = normalizers.NFC()
    ours = nfc_many(texts)
    bad = 0
    for text, got in zip(texts, ours):
        want = nfc.normalize_str(text)
        if got != want:
            bad += 1
            if bad <= 5:
                failures.append(f"NFC: {text!r}: ours {got!r}, tokenizers {want!r}")
    print(f"NFC vs tokenizers: {len(texts)} texts, {bad} differ")
    # the texts joined into long ones: NFC works in segments of about 1,000 code points, cut only where no
    # mark can reorder and nothing can compose across
    joined = ["".join(texts[i: i + 400]) for i in range(0, len(texts), 400)]
    for text, got in zip(joined, nfc_many(joined)):
        if got != nfc.normalize_str(text):
            failures.append(f"NFC of a joined text of {len(text)} characters differs from tokenizers")
    check_nfc_conformance()
    assigned = assigned_in_ucd()
    check_nfc_every_code_point(assigned)
    check_kind_from_regex()
    check_flags(assigned)
    for f in failures[:40]:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
