#!/usr/bin/env python3
"""The main job (`lstm train` on the bundled corpus, default settings) as a PyTorch user would write it, and the
two timed against each other on this machine.

Same model (Embedding 144×64 → 2×nn.LSTM(256) → Linear), same data (the bundled corpus, the last 5 % held out,
32 contiguous streams read in windows of 64 with the state carried, truncated BPTT), Adam 2e-3, global-norm clip 5,
validation over the held-out text every 100 steps (cut into up to 32 rows, as LSTMKit does). PyTorch's CPU LSTM
is oneDNN's.

    ~/torchenv/bin/python Scripts/torch_main_job.py --compare --steps 300 --rounds 3 --threads 2
    ~/torchenv/bin/python Scripts/torch_main_job.py --steps 300          # the PyTorch loop alone

Reports characters per second of training (steps × 32 × 64 / seconds): for each, the whole process's wall time
(start-up, reading the corpus and validation included) and, for PyTorch, its training loop alone too; rounds
alternate the two, and the medians are printed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.join(ROOT, "Sources", "lstm", "Resources", "default-corpus.txt")
B, T, E, H, L = 32, 64, 64, 256, 2


def torch_run(steps, threads, eval_every):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    text = open(CORPUS, encoding="utf-8").read()
    held = int(round(len(text) * 0.05))
    train_text, val_text = text[:-held], text[-held:]
    vocab = sorted(set(text) | {"\ufffd"})
    index = {c: i for i, c in enumerate(vocab)}
    train = torch.tensor([index[c] for c in train_text])
    val = torch.tensor([index[c] for c in val_text])
    V = len(vocab)

    class CharModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, num_layers=L)
            self.head = torch.nn.Linear(H, V)

        def forward(self, x, state):
            y, state = self.lstm(self.embedding(x), state)
            return self.head(y), state

    model = CharModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    stream = len(train) // B
    streams = train[: stream * B].view(B, stream).t()            # (stream, B)
    rows = max(1, min(B, len(val) // (T + 1)))
    vlen = len(val) // rows
    vstreams = val[: vlen * rows].view(rows, vlen).t()
    windows = (stream - 1) // T

    def validate():
        model.eval()
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for p in range(0, vlen - 1, T):
                n = min(T, vlen - 1 - p)
                logits, state = model(vstreams[p:p + n], state)
                total += loss_fn(logits.reshape(-1, V), vstreams[p + 1:p + 1 + n].reshape(-1)).item() * n * rows
                count += n * rows
        model.train()
        return total / count

    started = time.time()
    state = None
    for step in range(steps):
        p = (step % windows) * T
        if p == 0:
            state = None
        x, y = streams[p:p + T], streams[p + 1:p + T + 1]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = loss_fn(logits.reshape(-1, V), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val_loss = validate()
    loop = time.time() - started
    return {"loop_seconds": loop, "val_loss": val_loss, "train_loss": loss.item(), "parameters": sum(p.numel() for p in model.parameters())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.compare:
        r = torch_run(args.steps, args.threads, args.eval_every)
        print(json.dumps(r) if args.json else f"PyTorch: {args.steps} steps in {r['loop_seconds']:.1f} s of training loop, "
              f"{args.steps * B * T / r['loop_seconds']:.0f} characters/s; validation {r['val_loss']:.4f} nats")
        return
    subprocess.run(["swift", "build", "-c", "release", "--product", "lstm"], cwd=ROOT, check=True, capture_output=True)
    lstm = os.path.join(ROOT, ".build", "release", "lstm")
    folder = "/tmp/lstmkit-main-job"
    os.makedirs(folder, exist_ok=True)
    ours, theirs, theirs_loop = [], [], []
    chars = args.steps * B * T
    for k in range(args.rounds):
        started = time.time()
        subprocess.run([lstm, "train", "--steps", str(args.steps), "--eval-every", str(args.eval_every), "--threads",
                        str(args.threads), "--force", "--checkpoint", os.path.join(folder, "m.safetensors")],
                       check=True, capture_output=True)
        ours.append(time.time() - started)
        started = time.time()
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--json", "--steps", str(args.steps),
                              "--threads", str(args.threads), "--eval-every", str(args.eval_every)],
                             check=True, capture_output=True, text=True).stdout
        theirs.append(time.time() - started)
        r = json.loads(out.strip().splitlines()[-1])
        theirs_loop.append(r["loop_seconds"])
        print(f"round {k + 1}: LSTMKit {ours[-1]:.2f} s, PyTorch {theirs[-1]:.2f} s (loop {theirs_loop[-1]:.2f} s, "
              f"validation {r['val_loss']:.4f})", flush=True)
    a, b, c = statistics.median(ours), statistics.median(theirs), statistics.median(theirs_loop)
    print(f"main job, {args.steps} steps × {B} × {T} characters, {args.threads} threads, medians of {args.rounds}:")
    print(f"  LSTMKit  lstm train (whole process)      {chars / a:8.0f} characters/s")
    print(f"  PyTorch  the same loop (whole process)   {chars / b:8.0f} characters/s   (loop alone {chars / c:.0f})")
    print(f"  ratio LSTMKit / PyTorch: {b / a:.2f}× (whole process), {c / a:.2f}× against PyTorch's loop alone")


if __name__ == "__main__":
    main()
