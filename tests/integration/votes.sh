#!/usr/bin/env bash
# Quorum rules on the wire (see votes.c), against a real qsignd.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_policy_edit '
import copy
p["roles"]["short"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["short"]["quorum"]["request_ttl"] = "2s"'
qs_start
rc=0; "$QS_BIN/qs_votes" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" || rc=$?; [ $rc = 0 ] || fail "vote checks (exit $rc)"
kill -0 "$QSIGND_PID" || fail "qsignd died"
# Every vote in the log re-verifies, also one signed with a key a later
# policy version gave its voter (it counts under that version).
expect_rc 0 qsign -p auditor audit verify
grep -q "approvals and .* rejections re-verified" "$T/out" || fail "audit verify: $(cat "$T/out")"
qs_stop || fail "unclean stop"
echo PASS
