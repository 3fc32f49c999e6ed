#!/usr/bin/env python3
"""PyTorch's nn.LSTM on the standard configurations of DESIGN.md §4, with the same JSON fields as `lstm bench --json`.

A training step is forward + backward + Adam update of nn.LSTM with a Linear head (H -> I) and MSE against random
targets; inference is the nn.LSTM forward pass under no_grad; streaming times one call of batch 1, one step, with
the state carried. Medians of --repeats after one warm-up.

    /tmp/torchenv/bin/python Scripts/bench_torch.py --json --threads 2 [--peak GFLOPS] [--configs small,charrnn]
"""
import argparse
import json
import statistics
import time

import torch

CONFIGS = {
    "small": dict(input=64, hidden=128, layers=1, batch=32, steps=50, streaming=False),
    "charrnn": dict(input=65, hidden=512, layers=2, batch=64, steps=100, streaming=False),
    "large": dict(input=512, hidden=1024, layers=1, batch=64, steps=100, streaming=False),
    "stream-128": dict(input=65, hidden=128, layers=1, batch=1, steps=1, streaming=True),
    "stream-512x2": dict(input=65, hidden=512, layers=2, batch=1, steps=1, streaming=True),
    "stream-1024": dict(input=65, hidden=1024, layers=1, batch=1, steps=1, streaming=True),
    # Variable lengths uniform in [T/2, T], through pack_padded_sequence(enforce_sorted=False) (see packed()).
    "packed": dict(input=64, hidden=256, layers=1, batch=64, steps=100, streaming=False, packed=True),
    "bidir": dict(input=64, hidden=256, layers=1, batch=64, steps=100, streaming=False, bidirectional=True),
    # A few sequences at once (a server's small batch); not in bench_compare.py's default list.
    "batch4": dict(input=65, hidden=512, layers=1, batch=4, steps=100, streaming=False),
}


def bench_lengths(c):
    """lengths[b] = T/2 + (b*7919 mod (T/2 + 1)): the same formula as `lstm bench` (BenchConfiguration.lengths)."""
    T = c["steps"]
    return [T // 2 + (b * 7919) % (T // 2 + 1) for b in range(c["batch"])]


def forward_flops_per_token(c):
    D = 2 if c.get("bidirectional") else 1
    return sum(D * 8 * c["hidden"] * ((c["input"] if l == 0 else D * c["hidden"]) + c["hidden"]) for l in range(c["layers"]))


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def batched(name, c, args):
    torch.manual_seed(1)
    T, B, I, H = c["steps"], c["batch"], c["input"], c["hidden"]
    D = 2 if c.get("bidirectional") else 1
    lstm = torch.nn.LSTM(I, H, num_layers=c["layers"], bidirectional=D == 2)
    head = torch.nn.Linear(D * H, I)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
    x = torch.rand(T, B, I) * 2 - 1
    target = torch.rand(T, B, I) * 2 - 1

    def train():
        opt.zero_grad()
        y, _ = lstm(x)
        loss = torch.nn.functional.mse_loss(head(y), target)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            lstm(x)

    tr = median_time(train, args.repeats)
    inf = median_time(infer, args.repeats)
    tokens = T * B
    f = forward_flops_per_token(c)
    out = {"config": name, "threads": args.threads, "kernel": "pytorch " + torch.__version__,
           "train_ms": tr * 1e3, "train_tokens_per_s": tokens / tr, "train_gflops": 3 * f * tokens / tr / 1e9,
           "infer_ms": inf * 1e3, "infer_tokens_per_s": tokens / inf, "infer_gflops": f * tokens / inf / 1e9}
    if args.peak:
        out.update(peak_gflops=args.peak, train_peak_percent=100 * out["train_gflops"] / args.peak,
                   infer_peak_percent=100 * out["infer_gflops"] / args.peak)
    return out


def packed(name, c, args):
    """nn.LSTM on a PackedSequence (enforce_sorted=False, packing timed as part of each call, as a user's model
    does it); the head and the MSE see the real tokens only (output.data)."""
    torch.manual_seed(1)
    T, B, I, H = c["steps"], c["batch"], c["input"], c["hidden"]
    lengths = torch.tensor(bench_lengths(c))
    lstm = torch.nn.LSTM(I, H, num_layers=c["layers"])
    head = torch.nn.Linear(H, I)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
    x = torch.rand(T, B, I) * 2 - 1
    N = int(lengths.sum())
    target = torch.rand(N, I) * 2 - 1
    pack = torch.nn.utils.rnn.pack_padded_sequence

    def train():
        opt.zero_grad()
        y, _ = lstm(pack(x, lengths, enforce_sorted=False))
        loss = torch.nn.functional.mse_loss(head(y.data), target)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            lstm(pack(x, lengths, enforce_sorted=False))

    tr = median_time(train, args.repeats)
    inf = median_time(infer, args.repeats)
    f = forward_flops_per_token(c)
    out = {"config": name, "threads": args.threads, "kernel": "pytorch " + torch.__version__ + " PackedSequence",
           "train_ms": tr * 1e3, "train_tokens_per_s": N / tr, "train_gflops": 3 * f * N / tr / 1e9,
           "infer_ms": inf * 1e3, "infer_tokens_per_s": N / inf, "infer_gflops": f * N / inf / 1e9,
           "real_tokens": N, "padded_tokens": T * B}
    if args.peak:
        out.update(peak_gflops=args.peak, train_peak_percent=100 * out["train_gflops"] / args.peak,
                   infer_peak_percent=100 * out["infer_gflops"] / args.peak)
    return out


def streaming(name, c, args):
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(c["input"], c["hidden"], num_layers=c["layers"])
    x = torch.rand(1, 1, c["input"])
    state = (torch.zeros(c["layers"], 1, c["hidden"]), torch.zeros(c["layers"], 1, c["hidden"]))
    times = []
    with torch.no_grad():
        for k in range(10 + args.stream_steps):
            t = time.perf_counter()
            _, state = lstm(x, state)
            if k >= 10:
                times.append(time.perf_counter() - t)
    step = statistics.median(times)
    f = forward_flops_per_token(c)
    out = {"config": name, "threads": args.threads, "kernel": "pytorch " + torch.__version__,
           "step_ms": step * 1e3, "tokens_per_s": 1 / step, "gflops": f / step / 1e9}
    if args.peak:
        out.update(peak_gflops=args.peak, peak_percent=100 * out["gflops"] / args.peak)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stream-steps", type=int, default=200)
    parser.add_argument("--peak", type=float, default=None, help="FMA peak in GFLOP/s, for the percentages")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.configs.split(","):
        c = CONFIGS[name]
        kind = streaming if c["streaming"] else packed if c.get("packed") else batched
        result = kind(name, c, args)
        print(json.dumps(result, sort_keys=True) if args.json else result, flush=True)


if __name__ == "__main__":
    main()
