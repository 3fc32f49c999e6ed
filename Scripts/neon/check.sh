#!/usr/bin/env bash
# Cross-compiles the C kernels for AArch64 (the NEON path Apple silicon and ARM Linux run) and checks them bit for
# bit against a plain fmaf loop under qemu. Needs (Debian): gcc-aarch64-linux-gnu qemu-user.
#   Scripts/neon/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build/neon
mkdir -p "$out"
aarch64-linux-gnu-gcc -O2 -std=c11 -ffp-contract=off -Wall -Wno-unknown-pragmas -ISources/_LSTMKernels/include Scripts/neon/check_kernels.c \
    Sources/_LSTMKernels/sgemm.c Sources/_LSTMKernels/pointwise.c Sources/_LSTMKernels/peak.c \
    Sources/_LSTMKernels/pool.c -lm -lpthread -o "$out/check_kernels"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/check_kernels"
LSTMKIT_KERNEL=portable qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/check_kernels"
