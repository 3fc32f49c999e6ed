#!/usr/bin/env python3
"""Runs `lstm bench --json` and Scripts/bench_torch.py in the same session and prints the ratio table.

    /work/torchenv/bin/python Scripts/bench_compare.py [--threads 2] [--repeats N] [--configs ...] [--isa avx2]

`--isa avx2` caps both libraries at AVX2 on an AVX-512 machine (LSTMKIT_KERNEL=avx2 for LSTMKit,
ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2 for PyTorch's oneDNN and MKL): the comparison a user of an
AVX2-only CPU sees, measured on this one.

Ratios are LSTMKit / PyTorch in tokens per second (above 1: LSTMKit is faster); for streaming, PyTorch's time per
step over LSTMKit's. The table holds each side's median over the rounds; below it, each round's own ratio (its two
sides ran one after the other), which shows how far the machine moved the table's ratio during the run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def run_json(command):
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {r["config"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per side and round (default: 41 for small, whose runs take ~2 ms, so that a "
                             "few ms of interference do not decide its median; 5 for the others)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="small,charrnn,large,stream-128,stream-512x2,stream-1024,packed,bidir")
    parser.add_argument("--isa", choices=["best", "avx2"], default="best",
                        help="avx2: cap both libraries at AVX2 (see above); best: each its own best code")
    args = parser.parse_args()
    if args.isa == "avx2":
        os.environ.update(LSTMKIT_KERNEL="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    subprocess.run(["swift", "build", "-c", "release", "--product", "lstm"], cwd=ROOT, check=True, capture_output=True)
    rounds = {"ours": [], "theirs": []}
    peak = None
    for _ in range(args.rounds):
        for name in args.configs.split(","):
            repeats = args.repeats or (41 if name == "small" else 5)
            a = run_json([os.path.join(ROOT, ".build", "release", "lstm"), "bench", "--json", "--threads",
                          str(args.threads), "--repeats", str(repeats), "--configs", name])
            peak = peak or a[name]["peak_gflops"]
            b = run_json([sys.executable, os.path.join(ROOT, "Scripts", "bench_torch.py"), "--json", "--threads",
                          str(args.threads), "--repeats", str(repeats), "--configs", name, "--peak", str(peak)])
            rounds["ours"].append(a)
            rounds["theirs"].append(b)

    def median_record(side, name):
        records = [r[name] for r in rounds[side] if name in r]
        merged = dict(records[0])
        for key, value in records[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = statistics.median(r[key] for r in records)
        return merged

    ours = {name: median_record("ours", name) for name in args.configs.split(",")}
    theirs = {name: median_record("theirs", name) for name in args.configs.split(",")}
    runs = f"{args.repeats}" if args.repeats else "41 (small) or 5"
    capped = ", both capped at AVX2" if args.isa == "avx2" else ""
    print(f"threads {args.threads}{capped}, FMA peak {peak:.0f} GFLOP/s (measured), medians of {runs} runs, "
          f"median of {args.rounds} interleaved rounds")
    print("| config | LSTMKit train tok/s | PyTorch train tok/s | ratio | LSTMKit infer tok/s | PyTorch infer tok/s | ratio | LSTMKit GFLOP/s (train, % peak) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        a, b = ours[name], theirs[name]
        if "step_ms" in a:
            print(f"| {name} | stream step {a['step_ms']:.4f} ms | {b['step_ms']:.4f} ms | {b['step_ms'] / a['step_ms']:.1f}× | | | | {a['gflops']:.1f} ({a['peak_percent']:.1f} %) |")
        else:
            print(f"| {name} | {a['train_tokens_per_s']:.0f} | {b['train_tokens_per_s']:.0f} | {a['train_tokens_per_s'] / b['train_tokens_per_s']:.2f}× "
                  f"| {a['infer_tokens_per_s']:.0f} | {b['infer_tokens_per_s']:.0f} | {a['infer_tokens_per_s'] / b['infer_tokens_per_s']:.2f}× "
                  f"| {a['train_gflops']:.1f} ({a['train_peak_percent']:.1f} %) |")
    # Each round ran both libraries one after the other, so a slow minute of the machine hits a round's two sides
    # alike more often than it hits the rounds alike: the ratio of each round shows how far the table's can move.
    print()
    print("Ratio in each round (LSTMKit, then PyTorch, per configuration):")
    for name in args.configs.split(","):
        pairs = [(a[name], b[name]) for a, b in zip(rounds["ours"], rounds["theirs"]) if name in a and name in b]
        if "step_ms" in pairs[0][0]:
            cells = [f"{b['step_ms'] / a['step_ms']:.1f}×" for a, b in pairs]
            print(f"- {name}: step {', '.join(cells)}")
        else:
            train = [f"{a['train_tokens_per_s'] / b['train_tokens_per_s']:.2f}×" for a, b in pairs]
            infer = [f"{a['infer_tokens_per_s'] / b['infer_tokens_per_s']:.2f}×" for a, b in pairs]
            print(f"- {name}: train {', '.join(train)}; inference {', '.join(infer)}")


if __name__ == "__main__":
    main()
