#!/usr/bin/env bash
# Trains for many steps and samples the process's resident memory (VmRSS) once a second, to show that memory stays
# flat over a long run. Linux (reads /proc).
#
#   Scripts/rss_long_run.sh [steps] [extra lstm train flags…]     (default 10000 steps)
#
# Prints the samples as "seconds rss_kB" and a summary: RSS after the first 10 % of the run, at the end, and the
# maximum.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10000}
shift || true
swift build -c release --product lstm >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.build/release/lstm train --steps "$steps" --hidden 128 --layers 2 --embedding 32 --seq-length 64 --batch 32 \
    --eval-every 500 --log-every 1000 --checkpoint "$work/rss.safetensors" "$@" > "$work/log" &
pid=$!
start=$(date +%s)
: > "$work/rss"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n "$rss" ]] && echo "$(( $(date +%s) - start )) $rss" | tee -a "$work/rss"
    sleep 1
done
wait "$pid"
tail -2 "$work/log"
awk -v steps="$steps" '{ t[NR] = $1; r[NR] = $2; if ($2 > max) max = $2 }
     END { early = int(NR / 10) + 1; printf "steps %d, %d samples over %d s: RSS %d kB at 10 %%, %d kB at the end, max %d kB\n", steps, NR, t[NR], r[early], r[NR], max }' "$work/rss"
