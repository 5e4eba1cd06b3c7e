"""retort's tokenizers on real vocabularies (run with .venv-hf's python; argv[1] is tokenizer_harness):
- llama.cpp's vocabulary files for GPT-2, Llama 3 (llama-bpe), Qwen2 and Llama 2 (llama-spm), fetched from
  the llama-cpp-python source package by scripts/fetch_llama_cpp_src.sh (or RT_VOCAB_DIR: a folder with
  the ggml-vocab-*.gguf files and their .inp/.out pairs): retort reading the GGUF gives the ids of
  every .inp text exactly as the .out file has them (HF AutoTokenizer.encode(text, add_special_tokens=False)
  on the real tokenizers made those), through the harness and through `retort tokenize --ids --no-bos`;
- the same vocabularies rebuilt as tokenizer.json with the tokenizers package (merges as ["a","b"] pairs,
  and as "a b" strings for Llama 3; Llama 2 in its legacy Prepend/Replace form and in two Metaspace forms):
  retort gives the .out ids and HF tokenizers' own ids on 1,200 varied texts with and without special
  tokens, and decodes HF's ids to HF's text;
- the tokenizer.json retort writes from each GGUF (tokenizer_json_write.c, what the HF and ONNX exports of a
  GGUF-imported model carry): HF tokenizers reading it gives the .out ids and retort's ids on the GGUF on 1,200
  varied texts, with and without special tokens, and decodes as retort does;
- a Hugging Face folder (tokenizer.json + tokenizer_config.json) loads, with BOS/EOS from the config."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref as R  # noqa: E402

HARNESS = R.Harness(sys.argv[1])
SRC = os.environ.get("RT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
RETORT = os.environ.get("RETORT_BIN")
VOCAB = os.environ.get("RT_VOCAB_DIR")
errors = []


def check_out(label, source, texts, want):
    got = HARNESS.encode(source, texts)
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    for i in bad[:3]:
        errors.append(f"{label}: text {texts[i]!r}\n  .out   {want[i]}\n  retort {got[i]}")
    print(f"{label}: {len(texts) - len(bad)}/{len(texts)} .out ids")
    return bad


def check_cli(label, gguf, texts, want):
    """A few texts through the CLI (stdin and --text), as a user would check a tokenizer."""
    for i in (0, 9, 17, 28, 45):
        p = subprocess.run([RETORT, "tokenize", gguf, "--ids", "--no-bos"], input=texts[i].encode(),
                           capture_output=True, timeout=60)
        got = [int(x) for x in p.stdout.split()]
        if p.returncode != 0 or got != want[i]:
            errors.append(f"{label}: retort tokenize (stdin) on {texts[i]!r}: rc {p.returncode}, {got} != {want[i]}"
                          f" {p.stderr.decode()[-300:]}")
    p = subprocess.run([RETORT, "tokenize", gguf, "--text", texts[10]], capture_output=True, timeout=60)
    lines = p.stdout.decode().strip().split("\n")
    if p.returncode != 0 or not all(" -> '" in line for line in lines):
        errors.append(f"{label}: retort tokenize --text printed {p.stdout[:300]!r} (rc {p.returncode})")


def check_written_json(name, gguf, work, texts, want):
    """The tokenizer.json retort writes from the GGUF, read by HF tokenizers: the .out ids, and retort's own
    ids on the GGUF for varied texts."""
    from tokenizers import Tokenizer
    path = os.path.join(work, f"{name}-written.json")
    open(path, "wb").write(HARNESS.run(["json", gguf], b""))
    tok = Tokenizer.from_file(path)
    got = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    for i in bad[:3]:
        errors.append(f"{name} written tokenizer.json in HF: text {texts[i]!r}\n  .out {want[i]}\n  HF   {got[i]}")
    specials = [a.content for a in tok.get_added_tokens_decoder().values()][:12] + ["<s>", "</s>"]
    counts = R.compare(f"{name} written tokenizer.json", HARNESS, gguf, tok, R.make_texts(specials) + texts, errors)
    print(f"{name} tokenizer.json written by retort: HF gives {len(texts) - len(bad)}/{len(texts)} .out ids and "
          f"retort's ids on {counts[False]} texts (no specials), {counts[True]} (specials), decode {counts['decode']}"
          + (f"; {counts['nfc_divergent']} texts where HF's NFC is not Unicode's" if counts["nfc_divergent"] else ""))


def main():
    global VOCAB
    if not VOCAB:  # the vocabularies in the llama.cpp tree the script unpacks (it prints the tree last)
        fetch = subprocess.run([os.path.join(SRC, "scripts", "fetch_llama_cpp_src.sh")], check=True,
                               capture_output=True, text=True, timeout=900)
        VOCAB = os.path.join(fetch.stdout.strip().splitlines()[-1], "models")
    work = tempfile.mkdtemp(prefix="rt-tok-vocab-")
    for name in R.VOCAB_NAMES:
        gguf = os.path.join(VOCAB, f"ggml-vocab-{name}.gguf")
        texts, want = R.vocab_test_texts(gguf)
        t0 = time.time()
        check_out(f"{name} GGUF", gguf, texts, want)
        check_cli(f"{name} GGUF", gguf, texts, want)
        forms = ["legacy", "metaspace-first-nosplit", "metaspace-always-split"] if name == "llama-spm" else [None]
        for form in forms:
            tok = R.rebuild_from_gguf(name, gguf, form)
            path = os.path.join(work, f"{name}-{form}.json")
            tok = R.save(tok, path, merges_as_strings=name == "llama-bpe")
            label = f"{name} tokenizer.json" + (f" ({form})" if form else "")
            if form in (None, "legacy"):  # the Metaspace forms are not what Llama 2 ships (docs/tokenizers.md)
                check_out(label, path, texts, want)
            specials = [a.content for a in tok.get_added_tokens_decoder().values()][:12] + ["<s>", "</s>"]
            counts = R.compare(label, HARNESS, path, tok, R.make_texts(specials) + texts, errors)
            print(f"{label}: HF ids equal on {counts[False]} texts (no specials), {counts[True]} (specials), "
                  f"decode {counts['decode']}; load {HARNESS.info(path)['load_s']} s" +
                  (f"; {counts['nfc_divergent']} texts where HF's NFC is not Unicode's" if counts["nfc_divergent"] else ""))
        check_written_json(name, gguf, work, texts, want)
        # the same GGUF with add_special: BOS exactly where HF's post-processor adds it
        info = HARNESS.info(gguf)
        with_bos = HARNESS.encode(gguf, texts[9:10], special=True)[0]
        hf_bos = tok.encode(texts[9], add_special_tokens=True).ids
        if with_bos != hf_bos:
            errors.append(f"{name} GGUF add_special: {with_bos} != HF {hf_bos} ({info})")
        print(f"{name}: {time.time() - t0:.1f} s")

    # a Hugging Face folder: tokenizer.json with tokenizer_config.json naming BOS/EOS/PAD
    folder = os.path.join(work, "hf-llama3")
    os.makedirs(folder)
    os.rename(os.path.join(work, "llama-bpe-None.json"), os.path.join(folder, "tokenizer.json"))
    config = os.path.join(folder, "tokenizer_config.json")
    json.dump({"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"},
               "pad_token": "<|reserved_special_token_2|>"}, open(config, "w"))
    info = HARNESS.info(folder)
    if (info["bos"], info["eos"], info["pad"], info["kind"], info["pre"]) != ("128000", "128009", "128004", "bpe",
                                                                               "llama-bpe"):
        errors.append(f"HF folder: {info}")
    json.dump({"eos_token": "<|no such token|>"}, open(config, "w"))
    p = subprocess.run([RETORT, "tokenize", folder, "--text", "x"], capture_output=True, timeout=60)
    if p.returncode != 1 or b"eos_token '<|no such token|>' is not a token" not in p.stderr:
        errors.append(f"HF folder with an unknown eos_token: rc {p.returncode}, {p.stderr[-300:]!r}")
    print(f"Llama 3's tokenizer.json (17 MB, 280,147 merges) loads in {info['load_s']} s")
    if float(info["load_s"]) > 1.5:  # about 0.2 s on an idle 2-core machine; the margin is for a busy one
        errors.append(f"Llama 3's tokenizer.json took {info['load_s']} s to load (limit 1.5 s)")

    if errors:
        print("\n".join(errors))
        sys.exit(f"FAIL: {len(errors)} problems")
    print("ok")


main()
