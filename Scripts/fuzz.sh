#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/FuzzTargets.swift and runs them.
#
#   Scripts/fuzz.sh [safetensors|corpus|csv|all] [libFuzzer options…]
#   Scripts/fuzz.sh all -max_total_time=20            # what .ci/run does
#   Scripts/fuzz.sh safetensors -runs=1000000         # the documented long run
#
# The seed corpus is Fuzz/Corpus/<target> (committed, read only); new inputs go to .build/fuzz/corpus-<target>,
# crashes to .build/fuzz/artifacts/. Linux only (Swift's -sanitize=fuzzer); exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
shift || true
out=.build/fuzz
mkdir -p "$out/obj" "$out/include" "$out/artifacts"

if [[ "$(uname)" != Linux ]]; then echo "fuzz.sh: libFuzzer via swiftc needs Linux; skipped"; exit 0; fi

binary="$out/lstm-fuzz"
sources=$(find Sources/LSTMKit -name '*.swift' | sort)
newest=$(ls -t $sources Fuzz/FuzzTargets.swift Sources/_LSTM*/*.c Sources/_LSTM*/include/*.h | head -1)
if [[ ! -x "$binary" || "$newest" -nt "$binary" ]]; then
    echo "fuzz.sh: building $binary"
    cat > "$out/include/module.modulemap" <<MAP
module _LSTMKernels {
    header "$PWD/Sources/_LSTMKernels/include/LSTMKernels.h"
    export *
}
module _LSTMMPI {
    header "$PWD/Sources/_LSTMMPI/include/LSTMMPI.h"
    export *
}
MAP
    objects=()
    for c in Sources/_LSTMKernels/*.c Sources/_LSTMMPI/*.c; do
        o="$out/obj/$(basename "$c" .c).o"
        clang -O1 -g -fsanitize=address,fuzzer-no-link -I"$(dirname "$c")/include" -c "$c" -o "$o"
        objects+=("$o")
    done
    swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name LSTMKit -I "$out/include" \
        $sources Fuzz/FuzzTargets.swift "${objects[@]}" -o "$binary"
fi

run() {
    local target=$1; shift
    mkdir -p "$out/corpus-$target"
    echo "fuzz.sh: $target $*"
    LSTM_FUZZ_TARGET=$target "$binary" "$out/corpus-$target" "Fuzz/Corpus/$target" \
        -artifact_prefix="$out/artifacts/$target-" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 "$@"
}

case "$which" in
    all) run safetensors "$@"; run corpus "$@"; run csv "$@" ;;
    safetensors|corpus|csv) run "$which" "$@" ;;
    *) echo "usage: Scripts/fuzz.sh [safetensors|corpus|csv|all] [libFuzzer options…]" >&2; exit 2 ;;
esac
