#!/usr/bin/env bash
# Malformed and hostile input against a real qsignd (see abuse.c).
. "$(dirname "$0")/lib.sh"
qs_setup
qs_policy_edit 'p["roles"]["ci-sign"]["online"].update(rate_per_second=5, burst=5)'
# An Ed25519 role: it signs messages, no hash but SHA-256 can be named
qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" -t ed25519 \
	-l abuse-ed >/dev/null || fail "keygen abuse-ed"
qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 \
	-l abuse-256 >/dev/null || fail "keygen abuse-256"
qs_policy_edit '
p["keys"]["abuse-ed"] = {"uri": "pkcs11:token=qsign-demo;object=abuse-ed", "algorithm": "ed25519"}
p["roles"]["ed-sign"] = {"keys": ["abuse-ed"], "payloads": ["blob"], "online": {"requesters": ["ci"]}}
# A role that allows SHA-256 signatures only (its ECDSA key could sign any)
p["keys"]["abuse-256"] = {"uri": "pkcs11:token=qsign-demo;object=abuse-256", "algorithm": "ecdsa-p256"}
p["roles"]["sha256-only"] = {"keys": ["abuse-256"], "payloads": ["digest", "blob"],
                             "online": {"requesters": ["ci"], "hashes": ["sha256"]}}'
qs_start
"$QS_BIN/qs_abuse" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" || fail "abuse checks"
kill -0 "$QSIGND_PID" || fail "qsignd died"
grep -q "auth.refused" "$T/qsignd.log" || fail "refusals are not logged"
# The refusal names the role and what it allows; qsign info shows it
qsign -p ci sign -r sha256-only --hash sha384 --digest "$(printf 'a%.0s' $(seq 96))" >"$T/out" 2>&1 &&
	fail "sha384 through a sha256-only role was signed"
grep -q "role sha256-only allows the hashes sha256: not sha384" "$T/out" ||
	fail "refusal does not say why: $(cat "$T/out")"
printf 'b%.0s' $(seq 96) | sed 's/$/\n/' | qsign -p ci sign-batch -r sha256-only --hash sha384 \
	>"$T/out" 2>&1 && fail "a sha384 batch through a sha256-only role was signed"
grep -q "role sha256-only allows the hashes sha256: not sha384" "$T/out" ||
	fail "batch refusal does not say why: $(cat "$T/out")"
qsign -p ci info >"$T/out" 2>&1 || fail "qsign info: $(cat "$T/out")"
grep -q "sha256-only (online)  keys: abuse-256  payloads: digest, blob  hashes: sha256$" "$T/out" ||
	fail "qsign info does not show the role's hashes: $(cat "$T/out")"
grep -q "ci-sign (online)  keys: ci-key  payloads: digest, blob  hashes: sha256, sha384, sha512$" \
	"$T/out" || fail "qsign info: a role without hashes allows all: $(cat "$T/out")"
qs_stop || fail "qsignd did not exit cleanly on SIGTERM"
echo PASS
