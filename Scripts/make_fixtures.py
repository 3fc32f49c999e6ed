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

Variant fixtures torch_variant_<name>.safetensors (VARIANTS below: bidirectional, proj_size, packed variable-length
input, and combinations), the same ℓ and the same keys without the optimizer steps. With D = 2 if bidirectional else
1, Hout = proj_size if proj_size else H, and the layouts of nn.LSTM (state index = layer * D + direction):
  weights           as above plus weight_hr_l<k> (proj_size) and the *_reverse names (bidirectional)
  inputs            input.x (T, B, I) time-major, input.h0 (L*D, B, Hout), input.c0 (L*D, B, H);
                    packed fixtures only: input.lengths (B,), F64 with integral values, unsorted, in [1, T]
  upstream grads    upstream.output (T, B, D*Hout), upstream.h_n (L*D, B, Hout), upstream.c_n (L*D, B, H)
  expected values   expected.output (T, B, D*Hout), expected.h_n, expected.c_n
  expected grads    grad.<weight name>, grad.x, grad.h0, grad.c0
  metadata          config: JSON of layers, input, hidden, proj (0 if none), bidirectional, batch, steps, lengths
                    (list, or null if not packed), generator, torch
Packed fixtures: row b of input.x is a sequence of input.lengths[b] steps; the padded positions t >= lengths[b] hold
random values too and must be ignored. The model runs on pack_padded_sequence(x, lengths, enforce_sorted=False) and
expected.output is pad_packed_sequence(..., total_length=T)[0], so it is exactly 0 at padded positions; ℓ still
takes upstream.output there (random everywhere), which contributes nothing. grad.x is exactly 0 at padded positions.
expected.h_n / expected.c_n and h0 / c0 are in the original (unsorted) batch order: h_n[:, b] is the state after
row b's own last step (step lengths[b]-1 forward, step 0 for the reverse direction). Each run checks this against
row-by-row unpacked runs, and checks every grad.* tensor at a few entries against central differences of ℓ.

Also writes, in float32 as a PyTorch user would:
  torch_lstm_state_dict.safetensors   safetensors.torch.save_file(nn.LSTM(...).state_dict()) (round-trip test)
  torch_charmodel.safetensors         a character model (embedding / lstm / head) with its vocabulary in metadata,
                                      plus probe.tokens and probe.logits for a fixed input, so LSTMKit can show it
                                      runs a PyTorch-trained character model with the same numbers.

Regenerate (same torch version gives the same bytes):
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch safetensors
    /tmp/torchenv/bin/python Scripts/make_fixtures.py
ATen's CPU kernels are pinned to AVX2 (ATEN_CPU_CAPABILITY, set below unless already set): the AVX-512 sigmoid
rounds some values differently in the last bit on the strided gate slices, so on an AVX-512 machine the default
would change torch_lstm_l3 by ~1 ulp. Matrix products go through MKL, which picks its own kernels for the CPU.
"""
import json
import os

os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")  # before torch is imported; see the docstring
import torch

torch.set_num_threads(1)  # reductions in a fixed order, so the bytes are reproducible
from safetensors.torch import save_file
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LSTMKitTests", "Fixtures")
GENERATOR = "Scripts/make_fixtures.py"

CONFIGS = [
    dict(name="l1", layers=1, input=5, hidden=4, batch=3, steps=6),
    dict(name="l2", layers=2, input=7, hidden=6, batch=2, steps=5),
    dict(name="l3", layers=3, input=3, hidden=8, batch=4, steps=4),
]

# Sizes chosen so that I, H, Hout and the layer-1 input D*Hout differ where the variant allows it.
LENGTHS = [3, 5, 1, 4]  # unsorted; one full-length row (T = 5) and one of length 1
VARIANTS = [
    dict(name="bi_l2", layers=2, input=5, hidden=3, proj=0, bidirectional=True, batch=3, steps=5, lengths=None),
    dict(name="proj_l2", layers=2, input=5, hidden=6, proj=4, bidirectional=False, batch=3, steps=5, lengths=None),
    dict(name="bi_proj_l2", layers=2, input=5, hidden=3, proj=2, bidirectional=True, batch=3, steps=5, lengths=None),
    dict(name="packed_l2", layers=2, input=5, hidden=4, proj=0, bidirectional=False, batch=4, steps=5,
         lengths=LENGTHS),
    dict(name="packed_bi_proj_l2", layers=2, input=5, hidden=3, proj=2, bidirectional=True, batch=4, steps=5,
         lengths=LENGTHS),
    dict(name="packed_bi_l1", layers=1, input=3, hidden=4, proj=0, bidirectional=True, batch=4, steps=5,
         lengths=LENGTHS),
]


def make_lstm(c):
    return torch.nn.LSTM(c["input"], c["hidden"], num_layers=c["layers"], bidirectional=c.get("bidirectional", False),
                         proj_size=c.get("proj", 0)).double()


def random_case(c, seed):
    """The model and the weights, inputs and upstream gradients of config c, drawn from seed in a fixed order."""
    torch.manual_seed(seed)
    L, I, H, B, T = c["layers"], c["input"], c["hidden"], c["batch"], c["steps"]
    D = 2 if c.get("bidirectional", False) else 1
    Hout = c.get("proj", 0) or H
    lstm = make_lstm(c)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = 0.5 * torch.randn(L * D, B, Hout, dtype=torch.float64)
    c0 = 0.5 * torch.randn(L * D, B, H, dtype=torch.float64)
    r_y = torch.randn(T, B, D * Hout, dtype=torch.float64)
    r_h = torch.randn(L * D, B, Hout, dtype=torch.float64)
    r_c = torch.randn(L * D, B, H, dtype=torch.float64)
    tensors = {k: v.detach().clone() for k, v in lstm.state_dict().items()}
    tensors.update({"input.x": x, "input.h0": h0, "input.c0": c0,
                    "upstream.output": r_y, "upstream.h_n": r_h, "upstream.c_n": r_c})
    return lstm, tensors


def run(model, x, h0, c0, lengths=None):
    """y (T, B, D*Hout) padded with zeros, h_n, c_n; packed through pack_padded_sequence when lengths is given."""
    if lengths is None:
        return model(x, (h0, c0))
    packed = pack_padded_sequence(x, torch.tensor(lengths, dtype=torch.int64), enforce_sorted=False)
    y, (hn, cn) = model(packed, (h0, c0))
    return pad_packed_sequence(y, total_length=x.shape[0])[0], (hn, cn)


def loss_of(model, tensors, x, h0, c0, lengths=None):
    """ℓ = Σ R_y⊙y + Σ R_h⊙h_n + Σ R_c⊙c_n with the upstream gradients R of tensors, and y, h_n, c_n."""
    y, (hn, cn) = run(model, x, h0, c0, lengths)
    loss = ((tensors["upstream.output"] * y).sum() + (tensors["upstream.h_n"] * hn).sum()
            + (tensors["upstream.c_n"] * cn).sum())
    return loss, y, hn, cn


def add_expected_and_grads(model, tensors, lengths=None):
    """Adds expected.output / h_n / c_n and grad.x / h0 / c0 / <parameter name> of ℓ to tensors."""
    xg, h0g, c0g = (tensors[k].clone().requires_grad_() for k in ("input.x", "input.h0", "input.c0"))
    loss, y, hn, cn = loss_of(model, tensors, xg, h0g, c0g, lengths)
    loss.backward()
    tensors.update({"expected.output": y.detach(), "expected.h_n": hn.detach(), "expected.c_n": cn.detach(),
                    "grad.x": xg.grad, "grad.h0": h0g.grad, "grad.c0": c0g.grad})
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone()


def save(tensors, file_name, config):
    # One metadata key: safetensors writes the metadata map in hash order, so several keys would not be reproducible.
    meta = {"config": json.dumps(dict(config, generator=GENERATOR, torch=torch.__version__), sort_keys=True)}
    path = os.path.join(OUT, file_name)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
    return path


def lstm_fixture(c, seed):
    L, I, H, B, T = c["layers"], c["input"], c["hidden"], c["batch"], c["steps"]
    lstm, tensors = random_case(c, seed)
    add_expected_and_grads(lstm, tensors)

    x, h0, c0 = tensors["input.x"], tensors["input.h0"], tensors["input.c0"]
    for opt_name, make in (("adam", lambda ps: torch.optim.Adam(ps, lr=1e-2)),
                           ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))):
        model = make_lstm(c)
        model.load_state_dict({k: v for k, v in tensors.items() if "." not in k})
        opt = make(list(model.parameters()))
        for _ in range(3):
            opt.zero_grad()
            loss_of(model, tensors, x, h0, c0)[0].backward()
            opt.step()
        for name, p in model.named_parameters():
            tensors[f"{opt_name}.step3.{name}"] = p.detach().clone()

    save(tensors, f"torch_lstm_{c['name']}.safetensors",
         {"layers": L, "input": I, "hidden": H, "batch": B, "steps": T,
          "adam": {"lr": 1e-2}, "sgd": {"lr": 0.1, "momentum": 0.9}})


def variant_fixture(c, seed):
    lstm, tensors = random_case(c, seed)
    lengths = c["lengths"]
    if lengths is not None:
        assert len(lengths) == c["batch"] and all(1 <= n <= c["steps"] for n in lengths)
        tensors["input.lengths"] = torch.tensor(lengths, dtype=torch.float64)
    add_expected_and_grads(lstm, tensors, lengths)
    for b, n in enumerate(lengths or []):  # padded positions: output exactly 0, and they get no gradient
        assert not tensors["expected.output"][n:, b].any() and not tensors["grad.x"][n:, b].any(), (c["name"], b)
    config = {k: c[k] for k in ("layers", "input", "hidden", "proj", "bidirectional", "batch", "steps", "lengths")}
    path = save(tensors, f"torch_variant_{c['name']}.safetensors", config)
    return path, self_check(c, lstm, tensors)


def self_check(c, lstm, tensors, eps=1e-6):
    """Run-time check (nothing written): the expected values row by row, grad.* against central differences."""
    x, h0, c0 = tensors["input.x"], tensors["input.h0"], tensors["input.c0"]
    lengths = c["lengths"]
    with torch.no_grad():
        # Row b alone, unpacked and cut to its length: the same output and final state, in the original batch order.
        for b, n in enumerate(lengths or [c["steps"]] * c["batch"]):
            y, (hn, cn) = lstm(x[:n, b:b + 1], (h0[:, b:b + 1].contiguous(), c0[:, b:b + 1].contiguous()))
            for got, want in ((y[:, 0], tensors["expected.output"][:n, b]), (hn[:, 0], tensors["expected.h_n"][:, b]),
                              (cn[:, 0], tensors["expected.c_n"][:, b])):
                assert torch.allclose(got, want, rtol=0, atol=1e-13), (c["name"], b, (got - want).abs().max())

        # Central differences of ℓ at 3 entries of each grad.* tensor (and a padded entry of x, whose gradient is 0).
        gen = torch.Generator().manual_seed(1)
        params = dict(lstm.named_parameters())
        inputs = {"x": x.clone(), "h0": h0.clone(), "c0": c0.clone()}
        worst = 0.0
        for key in sorted(k for k in tensors if k.startswith("grad.")):
            name = key[len("grad."):]
            target = params[name] if name in params else inputs[name]
            flat = target.view(-1)
            picks = torch.randint(flat.numel(), (3,), generator=gen).tolist()
            if name == "x" and lengths is not None:
                b = min(range(len(lengths)), key=lambda i: lengths[i])
                picks.append(((lengths[b] * c["batch"]) + b) * c["input"])  # x[lengths[b], b, 0]: padded
            for i in picks:
                keep = flat[i].item()
                flat[i] = keep + eps
                up = loss_of(lstm, tensors, inputs["x"], inputs["h0"], inputs["c0"], lengths)[0].item()
                flat[i] = keep - eps
                down = loss_of(lstm, tensors, inputs["x"], inputs["h0"], inputs["c0"], lengths)[0].item()
                flat[i] = keep
                numeric, analytic = (up - down) / (2 * eps), tensors[key].view(-1)[i].item()
                err = abs(numeric - analytic) / (1 + abs(analytic))
                assert err < 1e-7, (c["name"], key, i, numeric, analytic)
                worst = max(worst, err)
    return worst


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

    for k, c in enumerate(VARIANTS):
        path, worst = variant_fixture(c, seed=200 + k)
        print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes; self-check passed "
              f"(worst central-difference error {worst:.1e})")
    print("wrote fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
