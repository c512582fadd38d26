#!/usr/bin/env bash
# Coverage-guided fuzzing of every target with clang's libFuzzer (+ ASan,
# UBSan) for SECONDS each (default 30). Findings land in build-fuzz/crashes.
#   tests/fuzz/run-libfuzzer.sh [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-30}
b=$top/build-fuzz
CC=clang cmake -S "$top" -B "$b" -DCMAKE_BUILD_TYPE=Debug -DQS_SANITIZE=ON -DQS_LIBFUZZER=ON >/dev/null
cmake --build "$b" -j "$(nproc)" --target fuzz_wire fuzz_policy fuzz_note fuzz_merkle fuzz_payload >/dev/null
mkdir -p "$b/crashes"
for t in wire policy note merkle payload; do
	work=$b/corpus-$t
	mkdir -p "$work"
	cp -n "$top/tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
	echo "== fuzz_$t for ${secs}s"
	"$b/bin/fuzz_$t" -max_total_time="$secs" -artifact_prefix="$b/crashes/$t-" \
		-print_final_stats=1 "$work" 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY" || true
done
if ls "$b/crashes/"* >/dev/null 2>&1; then
	echo "FINDINGS in $b/crashes" >&2
	exit 1
fi
echo "no findings"
