#!/usr/bin/env python3
"""Reference trajectories of torch.optim for LSTMKit's optimizer tests.

Runs each optimizer configuration for a few steps in float64 on fixed parameters and gradients and writes the
parameters after every step to Tests/LSTMKitTests/Fixtures/optimizers.json. The inputs are generated from a fixed
seed with Python's own `random` module, so the file is regenerated exactly by

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python Scripts/make_optimizer_reference.py

PyTorch is only needed to regenerate the file, never by `swift test`.
"""
import json
import os
import random

import torch

STEPS = 4
rng = random.Random(1234)
shapes = [(3, 4), (5,)]
initial = [[rng.uniform(-1, 1) for _ in range(int(torch.Size(s).numel()))] for s in shapes]
gradients = [[[rng.uniform(-1, 1) for _ in range(int(torch.Size(s).numel()))] for s in shapes] for _ in range(STEPS)]

# name, constructor, LSTMKit configuration (as the Swift test decodes it), learning rate
CASES = [
    ("sgd", lambda p, lr: torch.optim.SGD(p, lr=lr), {"kind": "sgd"}, 0.1),
    ("sgd_momentum", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, dampening=0.1, weight_decay=0.01),
     {"kind": "sgd", "momentum": 0.9, "dampening": 0.1, "weightDecay": 0.01}, 0.1),
    ("sgd_nesterov", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.8, nesterov=True),
     {"kind": "sgd", "momentum": 0.8, "nesterov": True}, 0.05),
    ("adam", lambda p, lr: torch.optim.Adam(p, lr=lr), {"kind": "adam"}, 0.01),
    ("adam_l2", lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     {"kind": "adam", "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6, "weightDecay": 0.1}, 0.01),
    ("adamw", lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.05),
     {"kind": "adamw", "weightDecay": 0.05}, 0.01),
    ("rmsprop", lambda p, lr: torch.optim.RMSprop(p, lr=lr), {"kind": "rmsprop"}, 0.01),
    ("rmsprop_centered_momentum",
     lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
     {"kind": "rmsprop", "alpha": 0.9, "momentum": 0.5, "centered": True, "weightDecay": 0.01}, 0.01),
    ("adagrad", lambda p, lr: torch.optim.Adagrad(p, lr=lr), {"kind": "adagrad"}, 0.1),
    ("adagrad_decay",
     lambda p, lr: torch.optim.Adagrad(p, lr=lr, lr_decay=0.1, weight_decay=0.01, initial_accumulator_value=0.2),
     {"kind": "adagrad", "learningRateDecay": 0.1, "weightDecay": 0.01, "initialAccumulator": 0.2}, 0.1),
]

cases = []
for name, make, config, lr in CASES:
    params = [torch.tensor(v, dtype=torch.float64).reshape(s).requires_grad_() for v, s in zip(initial, shapes)]
    opt = make(params, lr)
    trajectory = []
    for step in range(STEPS):
        for p, g, s in zip(params, gradients[step], shapes):
            p.grad = torch.tensor(g, dtype=torch.float64).reshape(s)
        opt.step()
        trajectory.append([x for p in params for x in p.detach().reshape(-1).tolist()])
    cases.append({"name": name, "configuration": config, "learningRate": lr, "parameters": trajectory})

# clip_grad_norm_ on the first gradients, with a bound below and one above the norm.
clips = []
for max_norm in (0.5, 100.0):
    grads = [torch.tensor(g, dtype=torch.float64).reshape(s) for g, s in zip(gradients[0], shapes)]
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    clips.append({"maxNorm": max_norm, "totalNorm": float(total),
                  "clipped": [x for p in params for x in p.grad.reshape(-1).tolist()]})

out = {
    "generator": "Scripts/make_optimizer_reference.py",
    "torch": torch.__version__,
    "initial": [x for v in initial for x in v],
    "gradients": [[x for v in step for x in v] for step in gradients],
    "cases": cases,
    "clipNorm": clips,
}
path = os.path.join(os.path.dirname(__file__), "..", "Tests", "LSTMKitTests", "Fixtures", "optimizers.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote", os.path.normpath(path))
