#!/usr/bin/env python3
"""Builds the bundled default corpus, Sources/lstm/Resources/default-corpus.txt.

The corpus is text the project owns: LSTMKit's own Swift and C sources, tests and scripts, in sorted path order,
each file preceded by a `// file: PATH` line, and its README last (so the held-out end of the text, what `lstm
train` validates on, is documentation and code like the rest). Should the project ever shrink below MIN_BYTES, a
generated section of arithmetic facts ("317 + 48 = 365", fixed seed) is put first to make up the difference.
Nothing is downloaded. Run from anywhere:  python3 Scripts/make_corpus.py
The output changes only when this script is run again (after the sources changed), never at build or run time.
"""
import os
import random

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Sources", "lstm", "Resources", "default-corpus.txt")
MIN_BYTES = 200_000


def project_files():
    paths = []
    for top in ("Sources", "Tests", "Scripts"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".swift", ".py", ".c", ".h")):
                    paths.append(os.path.relpath(os.path.join(folder, name), ROOT))
    paths.sort()
    if os.path.exists(os.path.join(ROOT, "README.md")):
        paths.append("README.md")
    return paths


def main():
    parts = []
    for path in project_files():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            parts.append(f"// file: {path}\n" + f.read().rstrip("\n") + "\n\n")
    text = "".join(parts)
    rng = random.Random(20261125)
    lines = []
    size = len(text.encode("utf-8"))
    while size < MIN_BYTES:
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice("+-")
        line = f"{a} {op} {b} = {a + b if op == '+' else a - b}\n"
        lines.append(line)
        size += len(line)
    if lines:
        text = "// generated: arithmetic facts\n" + "".join(lines) + "\n" + text
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(text.encode('utf-8'))} bytes, {len(set(text))} distinct characters")


if __name__ == "__main__":
    main()
