#!/usr/bin/env python3
"""Independent reference for LSTMKit's RandomSource: xoshiro256** seeded by SplitMix64.

Prints the first outputs for a seed (default 0); LayerTests.sameSeedSameWeightsAndStream checks the Swift generator
against them.  Usage: python3 Scripts/xoshiro_reference.py [SEED] [COUNT]
"""
import sys

M = (1 << 64) - 1


def stream(seed, count):
    s = seed

    def splitmix():
        nonlocal s
        s = (s + 0x9E3779B97F4A7C15) & M
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    st = [splitmix() for _ in range(4)]

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M

    for _ in range(count):
        r = (rotl((st[1] * 5) & M, 7) * 9) & M
        t = (st[1] << 17) & M
        st[2] ^= st[0]
        st[3] ^= st[1]
        st[1] ^= st[2]
        st[0] ^= st[3]
        st[2] ^= t
        st[3] = rotl(st[3], 45)
        yield r


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    for value in stream(seed, count):
        print(f"0x{value:016X}")
