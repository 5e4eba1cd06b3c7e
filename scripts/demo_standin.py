#!/usr/bin/env python3
"""Makes the stand-in for a real pretrained model that scripts/demo.sh's last part imports: a Hugging Face
folder written by transformers' save_pretrained, shaped like SmolLM-135M (LlamaForCausalLM, tied embeddings,
a byte-level BPE tokenizer with SmolLM's pre-tokenizer: single digits, then GPT-2's split) but small enough to
make here in seconds. Nothing can be downloaded on the machines retort is tested on, so the model is trained
here, with PyTorch, on a few hundred short facts ("the capital of france is paris."), so that it answers
something a reader can check when it acts as the teacher.

    demo_standin.py OUT_DIR         writes OUT_DIR/model (the HF folder), OUT_DIR/prompts.jsonl (the prompts the
                                    teacher answers), OUT_DIR/quiz.jsonl (prompt/answer pairs in a new format
                                    that LoRA teaches) and OUT_DIR/facts.txt (the training text)
Runs with .venv-hf's python (torch 2, transformers 5, tokenizers).
"""
import json
import os
import random
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CAPITALS = {
    "france": "paris", "italy": "rome", "spain": "madrid", "germany": "berlin", "japan": "tokyo",
    "egypt": "cairo", "peru": "lima", "kenya": "nairobi", "norway": "oslo", "poland": "warsaw",
    "greece": "athens", "canada": "ottawa", "chile": "santiago", "cuba": "havana", "india": "new delhi",
    "china": "beijing", "russia": "moscow", "portugal": "lisbon", "austria": "vienna", "ireland": "dublin",
    "sweden": "stockholm", "finland": "helsinki", "denmark": "copenhagen", "turkey": "ankara",
    "iran": "tehran", "iraq": "baghdad", "ghana": "accra", "nepal": "kathmandu", "mexico": "mexico city",
    "brazil": "brasilia", "argentina": "buenos aires", "hungary": "budapest", "belgium": "brussels",
}
SOUNDS = {"dog": "barks", "cat": "meows", "cow": "moos", "duck": "quacks", "lion": "roars", "owl": "hoots",
          "horse": "neighs", "sheep": "bleats", "pig": "oinks", "snake": "hisses", "bee": "buzzes"}
COLORS = {"sky": "blue", "grass": "green", "snow": "white", "coal": "black", "blood": "red", "sun": "yellow",
          "orange": "orange", "night": "dark", "milk": "white", "rust": "brown"}


def facts():
    out = [(f"the capital of {c} is", f" {v}.") for c, v in CAPITALS.items()]
    out += [(f"the {a} says it", f" {s}.") for a, s in SOUNDS.items()]
    out += [(f"the color of {t} is", f" {c}.") for t, c in COLORS.items()]
    out += [(f"{a} plus {b} is", f" {a + b}.") for a in range(10) for b in range(10)]
    return out


def train_tokenizer(text_lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # SmolLM's first three ids
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(text_lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    random.seed(0)
    torch.set_num_threads(2)
    transformers.utils.logging.disable_progress_bar()
    pairs = facts()
    lines = [p + a for p, a in pairs]
    with open(os.path.join(out, "facts.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    tokenizer = train_tokenizer(lines)
    eos = tokenizer.eos_token_id
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, rope_theta=10000.0, bos_token_id=eos, eos_token_id=eos,
                      pad_token_id=eos)
    model = LlamaForCausalLM(cfg)
    seqs = [tokenizer(line)["input_ids"] + [eos] for line in lines]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), eos)
    labels = torch.full((len(seqs), width), -100)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, :len(s)] = torch.tensor(s)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    steps = 600
    for step in range(steps):
        batch = torch.randint(0, len(seqs), (64,))
        loss = model(input_ids=ids[batch], labels=labels[batch]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = 3e-3 * (1 - step / steps) + 1e-4
    print(f"demo_standin: trained {sum(p.numel() for p in model.parameters())} parameters for {steps} steps, "
          f"last loss {loss.item():.3f}", file=sys.stderr)
    model.save_pretrained(os.path.join(out, "model"))
    tokenizer.save_pretrained(os.path.join(out, "model"))
    with open(os.path.join(out, "prompts.jsonl"), "w") as f:
        for p, _ in pairs:
            f.write(json.dumps({"prompt": p}) + "\n")
    # the format LoRA teaches: a question with its answer, for the capitals and sounds
    quiz = [(f"q: what is the capital of {c}? a:", f" {v}") for c, v in CAPITALS.items()]
    quiz += [(f"q: what does the {a} do? a:", f" it {s}") for a, s in SOUNDS.items()]
    with open(os.path.join(out, "quiz.jsonl"), "w") as f:
        for p, a in quiz:
            f.write(json.dumps({"prompt": p, "completion": a}) + "\n")


if __name__ == "__main__":
    main()
