#!/usr/bin/env bash
# Quorum rules on the wire (see votes.c), against a real qsignd.
. "$(dirname "$0")/lib.sh"
qs_setup
# One key, one purpose: each added role signs with a key of its own.
qsign-token keygen -m /usr/lib/softhsm/libsofthsm2.so -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 -l short-key >/dev/null
# extra-key: for the role "ci-extra" that votes.c adds by a policy change.
qsign-token keygen -m /usr/lib/softhsm/libsofthsm2.so -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 -l extra-key >/dev/null
# hash-key: role "hashed", whose requests may sign with SHA-384.
qsign-token keygen -m /usr/lib/softhsm/libsofthsm2.so -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 -l hash-key >/dev/null
qs_policy_edit '
import copy
p["keys"]["short-key"] = {"uri": "pkcs11:token=qsign-demo;object=short-key", "algorithm": "ecdsa-p256"}
p["keys"]["extra-key"] = {"uri": "pkcs11:token=qsign-demo;object=extra-key", "algorithm": "ecdsa-p256"}
p["roles"]["short"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["short"]["keys"] = ["short-key"]
p["roles"]["short"]["quorum"]["request_ttl"] = "2s"
p["keys"]["hash-key"] = {"uri": "pkcs11:token=qsign-demo;object=hash-key", "algorithm": "ecdsa-p256"}
p["roles"]["hashed"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["hashed"]["keys"] = ["hash-key"]
p["roles"]["hashed"]["quorum"]["hashes"] = ["sha256", "sha384"]'
qs_start
rc=0; "$QS_BIN/qs_votes" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" || rc=$?; [ $rc = 0 ] || fail "vote checks (exit $rc)"
kill -0 "$QSIGND_PID" || fail "qsignd died"
# Every vote in the log re-verifies, also one signed with a key a later
# policy version gave its voter (it counts under that version).
expect_rc 0 qsign -p auditor audit verify
grep -q "approvals and .* rejections re-verified" "$T/out" || fail "audit verify: $(cat "$T/out")"
qs_stop || fail "unclean stop"
echo PASS
