"""A corpus of English prose from this machine's Debian package documentation, for the language-model
distillation benchmark (bench/distill_text.sh): every README, NEWS, FAQ, TODO, AUTHORS and THANKS file
under /usr/share/doc (gzipped or not) that is valid UTF-8 text of at least 500 bytes, deduplicated by
content, each cut at 20000 characters, split by document (1 in 20 held out, chosen by a seeded shuffle
of the content hashes) into train.jsonl and val.jsonl, one {"text": ...} object per line.

usage: data/doc_corpus.py OUT_DIR"""
import gzip
import hashlib
import json
import os
import random
import sys

PREFIXES = ("README", "NEWS", "FAQ", "TODO", "AUTHORS", "THANKS")


def documents(root="/usr/share/doc"):
    docs = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.startswith(PREFIXES):
                continue
            p = os.path.join(d, f)
            try:
                data = gzip.open(p).read() if f.endswith(".gz") else open(p, "rb").read()
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError, EOFError):
                continue
            if len(data) >= 500 and "\0" not in text:
                docs[hashlib.sha1(data).hexdigest()] = text
    return [docs[h] for h in sorted(docs)]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    docs = documents()
    random.Random(1).shuffle(docs)
    n_val = max(20, len(docs) // 20)
    for name, part in (("train", docs[n_val:]), ("val", docs[:n_val])):
        with open(os.path.join(out, name + ".jsonl"), "w") as f:
            for text in part:
                f.write(json.dumps({"text": text[:20000]}) + "\n")
        print(f"{name}: {len(part)} documents, {sum(min(len(t), 20000) for t in part) / 1e6:.2f} M characters")


if __name__ == "__main__":
    main()
