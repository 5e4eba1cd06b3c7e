"""The references check_tokenizer_wire.py needs that live outside .venv-hf, run with Debian's python and
.pydeps (RT_PYTHON, PYTHONPATH): h5py for datasets, llama.cpp (llama_cpp) and onnxruntime-genai for exports.
Reads a JSON request on stdin, writes a JSON answer on stdout:
  {"op": "dataset", "path": P}                             -> documents' ids and the tokenizer attributes
  {"op": "llama", "path": GGUF, "texts": [...], "add_bos": B} -> llama.cpp's ids of each text
  {"op": "genai", "path": FOLDER, "texts": [...]}            -> onnxruntime-genai's ids and decodes"""
import json
import sys


def dataset(req):
    import h5py
    with h5py.File(req["path"], "r") as f:
        tokens = f["tokens"][:].tolist()
        off = f["doc_offsets"][:].tolist()
        prompt_len = f["prompt_len"][:].tolist() if "prompt_len" in f else None
        attrs = {k: (v.decode() if isinstance(v, bytes) else v if isinstance(v, str) else int(v))
                 for k, v in f.attrs.items() if k in ("tokenizer", "tokenizer_hash", "vocab_size")}
    return {"docs": [tokens[off[i]:off[i + 1]] for i in range(len(off) - 1)], "attrs": attrs,
            "prompt_len": prompt_len}


def llama(req):
    from llama_cpp import Llama
    m = Llama(model_path=req["path"], vocab_only=True, verbose=False)
    return {"ids": [m.tokenize(t.encode("utf-8"), add_bos=req["add_bos"], special=False) for t in req["texts"]],
            "n_vocab": m.n_vocab()}


def genai(req):
    import onnxruntime_genai as og
    model = og.Model(og.Config(req["path"]))
    tok = og.Tokenizer(model)
    tok.update_options(add_special_tokens="true")  # onnxruntime-genai adds no BOS unless asked
    ids = [[int(x) for x in tok.encode(t)] for t in req["texts"]]
    return {"ids": ids, "decoded": [tok.decode(i) for i in ids]}


req = json.load(sys.stdin)
json.dump({"dataset": dataset, "llama": llama, "genai": genai}[req["op"]](req), sys.stdout)
