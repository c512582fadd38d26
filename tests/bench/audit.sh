#!/usr/bin/env bash
# Auditor at scale: time `qsign audit verify --offline` on an N-entry export
# (default 1,000,000) and report inclusion proof size/time at N. With VOTES,
# that many of the entries are approvals whose signatures the verifier
# checks (in parallel: clients/qsc_audit.h).
#   tests/bench/audit.sh [N] [VOTES]
set -euo pipefail
bin=${QS_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
n=${1:-1000000}
votes=${2:-0}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$bin/audit_bench" "$n" "$T/export" "$votes"
# GNU time (package `time`) adds CPU time and RSS when installed.
timer=()
echo "no CPU time and RSS (install the package time)" >"$T/time"
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f '%U s user, %S s sys, %M KB max RSS' -o "$T/time")
start=$(date +%s.%N)
"${timer[@]}" "$bin/qsign" audit verify --offline "$T/export" --state "$T/state.json" >"$T/out" 2>&1 ||
	{ cat "$T/out" >&2; echo "FAIL: verify" >&2; exit 1; }
end=$(date +%s.%N)
secs=$(python3 -c "print(f'{$end - $start:.2f}')")
echo "qsign audit verify --offline: $n entries, $votes approvals in ${secs} s ($(cat "$T/time"); load average $(cut -d' ' -f1-3 /proc/loadavg))"
head -c 300 "$T/out"
grep -q "$n entries" "$T/out" || { echo "FAIL: verify did not cover $n entries" >&2; exit 1; }
if [ "$votes" -gt 0 ]; then
	grep -q "$votes approvals re-verified" "$T/out" ||
		{ echo "FAIL: verify did not re-verify $votes approvals" >&2; exit 1; }
fi
