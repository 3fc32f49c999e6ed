#!/usr/bin/env python3
"""PyTorch parity fixtures for LSTMKit (Tests/LSTMKitTests/Fixtures/torch_*.safetensors).

For each configuration below, builds a torch.nn.LSTM in float64 from a fixed seed, runs it on random input with a
nonzero (h0, c0), takes ℓ = Σ R_y⊙y + Σ R_h⊙h_n + Σ R_c⊙c_n for random upstream gradients R, and writes to one
safetensors file:
  weights           weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...   (state_dict names)
  inputs            input.x (T, B, I), input.h0, input.c0 (L, B, H)
  upstream grads    upstream.output (T, B, H), upstream.h_n, upstream.c_n (L, B, H)
  expected values   expected.output, expected.h_n, expected.c_n
  expected grads    grad.<weight name>, grad.x, grad.h0, grad.c0
  optimizer steps   adam.step3.<weight name>, sgd.step3.<weight name>: the weights after 3 steps of
                    torch.optim.Adam(lr=1e-2) / SGD(lr=0.1, momentum=0.9), each step on the same ℓ
  metadata          config: JSON of the sizes and optimizer settings
All tensors are F64, so the Swift tests can check Double to ~1e-12 and Float to 1e-5.

Also writes, in float32 as a PyTorch user would:
  torch_lstm_state_dict.safetensors   safetensors.torch.save_file(nn.LSTM(...).state_dict()) (round-trip test)
  torch_charmodel.safetensors         a character model (embedding / lstm / head) with its vocabulary in metadata,
                                      plus probe.tokens and probe.logits for a fixed input, so LSTMKit can show it
                                      runs a PyTorch-trained character model with the same numbers.

Regenerate (same torch version gives the same bytes):
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch safetensors
    /tmp/torchenv/bin/python Scripts/make_fixtures.py
"""
import json
import os

import torch

torch.set_num_threads(1)  # reductions in a fixed order, so the bytes are reproducible
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LSTMKitTests", "Fixtures")

CONFIGS = [
    dict(name="l1", layers=1, input=5, hidden=4, batch=3, steps=6),
    dict(name="l2", layers=2, input=7, hidden=6, batch=2, steps=5),
    dict(name="l3", layers=3, input=3, hidden=8, batch=4, steps=4),
]


def lstm_fixture(c, seed):
    torch.manual_seed(seed)
    L, I, H, B, T = c["layers"], c["input"], c["hidden"], c["batch"], c["steps"]
    lstm = torch.nn.LSTM(I, H, num_layers=L).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = 0.5 * torch.randn(L, B, H, dtype=torch.float64)
    c0 = 0.5 * torch.randn(L, B, H, dtype=torch.float64)
    r_y = torch.randn(T, B, H, dtype=torch.float64)
    r_h = torch.randn(L, B, H, dtype=torch.float64)
    r_c = torch.randn(L, B, H, dtype=torch.float64)
    tensors = {k: v.detach().clone() for k, v in lstm.state_dict().items()}
    tensors.update({"input.x": x, "input.h0": h0, "input.c0": c0,
                    "upstream.output": r_y, "upstream.h_n": r_h, "upstream.c_n": r_c})

    def loss_of(model, x, h0, c0):
        y, (hn, cn) = model(x, (h0, c0))
        return (r_y * y).sum() + (r_h * hn).sum() + (r_c * cn).sum(), y, hn, cn

    xg, h0g, c0g = x.clone().requires_grad_(), h0.clone().requires_grad_(), c0.clone().requires_grad_()
    loss, y, hn, cn = loss_of(lstm, xg, h0g, c0g)
    loss.backward()
    tensors.update({"expected.output": y.detach(), "expected.h_n": hn.detach(), "expected.c_n": cn.detach(),
                    "grad.x": xg.grad, "grad.h0": h0g.grad, "grad.c0": c0g.grad})
    for name, p in lstm.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone()

    for opt_name, make in (("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2)),
                           ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))):
        model = torch.nn.LSTM(I, H, num_layers=L).double()
        model.load_state_dict({k: v for k, v in tensors.items() if "." not in k})
        opt = make(list(model.parameters()))
        for _ in range(3):
            opt.zero_grad()
            loss_of(model, x, h0, c0)[0].backward()
            opt.step()
        for name, p in model.named_parameters():
            tensors[f"{opt_name}.step3.{name}"] = p.detach().clone()

    # One metadata key: safetensors writes the metadata map in hash order, so several keys would not be reproducible.
    meta = {"config": json.dumps({"layers": L, "input": I, "hidden": H, "batch": B, "steps": T,
                                  "adam": {"lr": 1e-2}, "sgd": {"lr": 0.1, "momentum": 0.9},
                                  "generator": "Scripts/make_fixtures.py", "torch": torch.__version__}, sort_keys=True)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, f"torch_lstm_{c['name']}.safetensors"),
              metadata=meta)


class CharModel(torch.nn.Module):
    def __init__(self, vocab, emb, hidden, layers):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, emb)
        self.lstm = torch.nn.LSTM(emb, hidden, num_layers=layers)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, tokens):  # tokens (T, B)
        y, _ = self.lstm(self.embedding(tokens))
        return self.head(y)


def main():
    os.makedirs(OUT, exist_ok=True)
    for k, c in enumerate(CONFIGS):
        lstm_fixture(c, seed=100 + k)

    torch.manual_seed(7)
    plain = torch.nn.LSTM(6, 5, num_layers=2)
    save_file(plain.state_dict(), os.path.join(OUT, "torch_lstm_state_dict.safetensors"))

    torch.manual_seed(8)
    text = "hello, world! the lstm remembers.\n"
    vocab = sorted(set(text))
    model = CharModel(len(vocab), 6, 10, 2)
    tokens = torch.tensor([[vocab.index(ch)] for ch in "the lstm"], dtype=torch.long)  # (T, 1)
    with torch.no_grad():
        logits = model(tokens).reshape(-1, len(vocab))
    tensors = dict(model.state_dict())
    tensors["probe.tokens"] = tokens.reshape(-1).to(torch.int64)
    tensors["probe.logits"] = logits
    save_file(tensors, os.path.join(OUT, "torch_charmodel.safetensors"),
              metadata={"vocabulary": json.dumps([ord(ch) for ch in vocab])})
    print("wrote fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
