#!/usr/bin/env bash
# Messages that must not mislead or leak: unknown principal and wrong key get
# the same answer (the reason is in the daemon's log only); `audit verify`
# by a caller who may not read the log says that and nothing about the log;
# a start-up error names the audit directory once.
. "$(dirname "$0")/lib.sh"
qs_setup

# The audit directory is a file: the daemon refuses to start and says where.
auditdir=$QSIGN_HOME/state/audit
mkdir -p "$QSIGN_HOME/state"
: >"$auditdir"
expect_rc 1 qsignd -c "$QSIGN_HOME/qsignd.json"
n=$(grep -o -F "$auditdir" "$T/err" | wc -l)
[ "$n" = 1 ] || { cat "$T/err" >&2; fail "start-up error names $auditdir $n times, not once"; }
rm -f "$auditdir"
echo "ok: the start-up error names the audit directory once"

qs_start
expect_rc 1 qsign -p nobody -i "$QSIGN_HOME/demo/ci.key" info
cp "$T/err" "$T/err.unknown"
expect_rc 1 qsign -p admin1 -i "$QSIGN_HOME/demo/ci.key" info
cmp -s "$T/err.unknown" "$T/err" ||
	fail "unknown principal and wrong key answer differently: $(cat "$T/err.unknown") / $(cat "$T/err")"
grep -q UNAUTHENTICATED "$T/err" || fail "not UNAUTHENTICATED: $(cat "$T/err")"
grep -q 'auth.refused .*principal=nobody .*reason="unknown principal"' "$T/qsignd.log" ||
	fail "the daemon's log lacks the reason for nobody"
grep -q 'auth.refused .*principal=admin1 .*reason="signature does not verify' "$T/qsignd.log" ||
	fail "the daemon's log lacks the reason for admin1"
echo "ok: unknown principal and wrong key: one answer; the reasons are in the log"

expect_rc 1 qsign -p ci audit verify --state "$T/ci-audit.json"
grep -q "ci may not read the audit log" "$T/err" || fail "verify refusal: $(cat "$T/err")"
if grep -qi "does not verify\|FAILED\|problem" "$T/err" "$T/out"; then
	cat "$T/err" >&2
	fail "a refused verify reads like a failed verification"
fi
echo "ok: audit verify without permission says only that"
qs_stop || fail "unclean stop"
echo PASS
