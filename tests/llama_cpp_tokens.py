"""llama.cpp's tokenizer and greedy decoding on a GGUF file, for checks run with .venv-hf's python (llama_cpp
lives in .pydeps, for Debian's python: check_import_hf.py runs this script with RT_PYTHON).

usage: llama_cpp_tokens.py MODEL.gguf N_NEW < {"texts": [...], "prompts": [...]}
prints {"tokens": [ids of each text, BOS as the file says], "greedy": [prompt ids + greedy ids, stopping after
EOS], "text": [each prompt's continuation as llama.cpp detokenizes it, as bytes in latin-1]}. llama.cpp runs
with flash attention off and an f32 KV cache (its closest match to fp32 references, as check_llama_cpp.py)."""
import json
import sys

import numpy as np
from llama_cpp import Llama


def main():
    path, n_new = sys.argv[1], int(sys.argv[2])
    req = json.load(sys.stdin)
    llm = Llama(model_path=path, n_ctx=256, logits_all=True, verbose=False, n_threads=2, seed=1,
                flash_attn=False, type_k=0, type_v=0)
    # special=True: added tokens written in a text are tokens, as in HF tokenizers and retort
    tokens = [llm.tokenize(t.encode(), add_bos=True, special=True) for t in req["texts"]]
    greedy, texts = [], []
    for prompt in req["prompts"]:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        out = list(ids)
        for _ in range(n_new):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            out.append(nxt)
            if nxt == llm.token_eos():
                break
            llm.eval([nxt])
        greedy.append(out)
        texts.append(llm.detokenize(out[len(ids):], prev_tokens=ids).decode("latin-1"))
    json.dump({"tokens": tokens, "greedy": greedy, "text": texts}, sys.stdout)


main()
