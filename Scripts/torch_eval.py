#!/usr/bin/env python3
"""Loads an LSTMKit character-model checkpoint into PyTorch and evaluates it like `lstm eval --json`.

Shows the Swift → PyTorch direction: the checkpoint's model tensors load into a plain PyTorch module with
`load_state_dict(strict=True)` (optimizer and training-state tensors are left out), and the cross-entropy on a text
matches `lstm eval` to float32 rounding.

    /tmp/torchenv/bin/python Scripts/torch_eval.py charmodel.best.safetensors some.txt
"""
import json
import math
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


class CharModel(torch.nn.Module):
    def __init__(self, vocab, emb, hidden, layers):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, emb)
        self.lstm = torch.nn.LSTM(emb, hidden, num_layers=layers)
        self.head = torch.nn.Linear(hidden, vocab)


def main(checkpoint, text_path):
    with safe_open(checkpoint, "pt") as f:
        meta = f.metadata()
    vocab = [chr(c) for c in json.loads(meta["vocabulary"])]
    state = {k: v for k, v in load_file(checkpoint).items() if k.split(".")[0] in ("embedding", "lstm", "head")}
    V, E = state["embedding.weight"].shape
    H = state["lstm.weight_hh_l0"].shape[1]
    L = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
    model = CharModel(V, E, H, L)
    model.load_state_dict(state, strict=True)
    text = open(text_path, encoding="utf-8").read()
    ids = torch.tensor([vocab.index(ch) for ch in text], dtype=torch.long)
    with torch.no_grad():
        y, _ = model.lstm(model.embedding(ids[:-1]).unsqueeze(1))
        logits = model.head(y.squeeze(1))
        ce = torch.nn.functional.cross_entropy(logits.double(), ids[1:]).item()
    print(json.dumps({"bits_per_character": ce / math.log(2), "cross_entropy": ce, "perplexity": math.exp(ce)}, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
