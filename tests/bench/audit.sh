#!/usr/bin/env bash
# Auditor at scale: time `qsign audit verify --offline` on an N-entry export
# (default 1,000,000) and report inclusion proof size/time at N.
#   tests/bench/audit.sh [N]
set -euo pipefail
bin=${QS_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
n=${1:-1000000}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$bin/audit_bench" "$n" "$T/export"
start=$(date +%s.%N)
"$bin/qsign" audit verify --offline "$T/export" --state "$T/state.json" >"$T/out" 2>&1 ||
	{ cat "$T/out" >&2; echo "FAIL: verify" >&2; exit 1; }
end=$(date +%s.%N)
secs=$(python3 -c "print(f'{$end - $start:.2f}')")
echo "qsign audit verify --offline: $n entries in ${secs} s ($(head -c 120 "$T/out"))"
grep -q "$n entries" "$T/out" || { echo "FAIL: verify did not cover $n entries" >&2; exit 1; }
