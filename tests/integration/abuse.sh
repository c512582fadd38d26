#!/usr/bin/env bash
# Malformed and hostile input against a real qsignd (see abuse.c).
. "$(dirname "$0")/lib.sh"
qs_setup
qs_policy_edit 'p["roles"]["ci-sign"]["online"].update(rate_per_second=5, burst=5)'
qs_start
"$QS_BIN/qs_abuse" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" || fail "abuse checks"
kill -0 "$QSIGND_PID" || fail "qsignd died"
grep -q "auth.refused" "$T/qsignd.log" || fail "refusals are not logged"
qs_stop || fail "qsignd did not exit cleanly on SIGTERM"
echo PASS
