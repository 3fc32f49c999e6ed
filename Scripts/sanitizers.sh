#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer and under ThreadSanitizer (the worker pool and the threaded
# products included), each in its own build folder so the normal .build is left alone.
#
#   Scripts/sanitizers.sh [address] [thread]      (default: both)
#
# Exits non-zero if either run fails or a sanitizer reports anything (reports make the test process fail:
# halt_on_error for ASan, TSAN_OPTIONS=halt_on_error=1 for TSan).
set -euo pipefail
cd "$(dirname "$0")/.."
kinds=("$@")
[[ ${#kinds[@]} -eq 0 ]] && kinds=(address thread)
for kind in "${kinds[@]}"; do
    echo "sanitizers.sh: swift test --sanitize=$kind"
    ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/Scripts/lsan-suppressions.txt":print_suppressions=0 \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        swift test --sanitize="$kind" --scratch-path ".build-$kind"
done
echo "sanitizers.sh: all clean"
