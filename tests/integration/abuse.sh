#!/usr/bin/env bash
# Malformed and hostile input against a real qsignd (see abuse.c).
. "$(dirname "$0")/lib.sh"
qs_setup
qs_policy_edit 'p["roles"]["ci-sign"]["online"].update(rate_per_second=5, burst=5)'
# An Ed25519 role: it signs messages, no hash but SHA-256 can be named
qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" -t ed25519 \
	-l abuse-ed >/dev/null || fail "keygen abuse-ed"
qs_policy_edit '
p["keys"]["abuse-ed"] = {"uri": "pkcs11:token=qsign-demo;object=abuse-ed", "algorithm": "ed25519"}
p["roles"]["ed-sign"] = {"keys": ["abuse-ed"], "payloads": ["blob"], "online": {"requesters": ["ci"]}}'
qs_start
"$QS_BIN/qs_abuse" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" || fail "abuse checks"
kill -0 "$QSIGND_PID" || fail "qsignd died"
grep -q "auth.refused" "$T/qsignd.log" || fail "refusals are not logged"
qs_stop || fail "qsignd did not exit cleanly on SIGTERM"
echo PASS
