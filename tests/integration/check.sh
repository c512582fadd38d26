#!/usr/bin/env bash
# qsignd --check refuses every invalid config/policy with the exact problem,
# and accepts the demo set-up. One case per refusal; each must name it.
. "$(dirname "$0")/lib.sh"
qs_setup
cfg=$QSIGN_HOME/qsignd.json
pol=$QSIGN_HOME/policy.json
cp "$pol" "$T/policy.good"
cp "$cfg" "$T/config.good"

expect_rc 0 qsignd -c "$cfg" --check
grep -q "OK (policy version 1" "$T/out" || fail "--check does not report OK"
# Under systemd (JOURNAL_STREAM set) log lines carry the syslog priority.
JOURNAL_STREAM=8:1 expect_rc 0 qsignd -c "$cfg" --check
grep -q "^<6>qsignd: info " "$T/err" || fail "no journald priority prefix: $(head -2 "$T/err")"
grep -q "^qsignd\[" "$T/err" && fail "pid prefix under the journal"
[ ! -e "$QSIGN_HOME/state/state.db" ] || fail "--check must not create state"
grep -q "hint: SoftHSM" "$T/err" && fail "a SoftHSM hint when the token is found"

# A SoftHSM token not found: SoftHSM reads another softhsm2.conf. The hint
# names the one it reads and SOFTHSM2_CONF.
mkdir -p "$T/empty-tokens"
echo "directories.tokendir = $T/empty-tokens" >"$T/other-softhsm2.conf"
SOFTHSM2_CONF=$T/other-softhsm2.conf expect_rc 1 qsignd -c "$cfg" --check
grep -q "no initialised token matches the URI" "$T/err" || fail "token not found: $(cat "$T/err")"
grep -q "hint: SoftHSM reads its tokens from the directories.tokendir of $T/other-softhsm2.conf (SOFTHSM2_CONF); set SOFTHSM2_CONF to the softhsm2.conf the token was created with" "$T/err" ||
	fail "no SOFTHSM2_CONF hint: $(cat "$T/err")"
SOFTHSM2_CONF=$T/no-such.conf expect_rc 1 qsignd -c "$cfg" --check
grep -q "hint: SoftHSM reads its tokens from the directories.tokendir of $T/no-such.conf" "$T/err" ||
	fail "no SOFTHSM2_CONF hint for an unreadable conf: $(cat "$T/err")"
echo "ok: a SoftHSM token not found: --check points at SOFTHSM2_CONF"

# bad_policy NAME EXPECTED-MESSAGE PYTHON-EDIT
bad_policy() {
	cp "$T/policy.good" "$pol"
	qs_policy_edit "$3"
	expect_rc 1 qsignd -c "$cfg" --check
	grep -qF -- "$2" "$T/err" || { cat "$T/err" >&2; fail "$1: message lacks '$2'"; }
	echo "ok: $1"
}
bad_policy "unknown principal as requester" 'unknown principal "nobody"' \
	'p["roles"]["ci-sign"]["online"]["requesters"] = ["nobody"]'
bad_policy "unknown key in role" 'unknown key "nokey"' \
	'p["roles"]["ci-sign"]["keys"] = ["nokey"]'
bad_policy "role without keys" "a role needs at least one key" \
	'p["roles"]["ci-sign"]["keys"] = []'
bad_policy "key URI that does not resolve" "keys.ghost" \
	'p["keys"]["ghost"] = {"uri": "pkcs11:token=qsign-demo;object=ghost", "algorithm": "ecdsa-p256"}'
bad_policy "key in a token that is not configured" "no configured token matches" \
	'p["keys"]["ci-key"]["uri"] = "pkcs11:token=elsewhere;object=ci-key"'
bad_policy "algorithm differs from the token" "the policy says ed25519" \
	'p["keys"]["ci-key"]["algorithm"] = "ed25519"; p["roles"]["ci-sign"]["payloads"] = ["blob"]'
bad_policy "ecdsa-p384 named for a P-256 key" \
	"keys.ci-key: the token holds a ecdsa-p256 key, the policy says ecdsa-p384" \
	'p["keys"]["ci-key"]["algorithm"] = "ecdsa-p384"'
bad_policy "unknown key algorithm" "keys.ci-key.algorithm: must be ecdsa-p256, ecdsa-p384, ed25519" \
	'p["keys"]["ci-key"]["algorithm"] = "ecdsa-p521"'
bad_policy "quorum threshold 0" "quorum.threshold: must be an integer >= 1" \
	'p["roles"]["release"]["quorum"]["threshold"] = 0'
bad_policy "quorum threshold missing" "quorum.threshold: missing" \
	'del p["roles"]["release"]["quorum"]["threshold"]'
bad_policy "policy admins threshold missing" "policy_admins.threshold: missing" \
	'del p["policy_admins"]["threshold"]'
bad_policy "threshold above approvers" "exceeds the 3 approvers" \
	'p["roles"]["release"]["quorum"]["threshold"] = 4'
bad_policy "approver without admin role" 'principal "ci" lacks the admin role' \
	'p["roles"]["release"]["quorum"]["approvers"] = ["admin1", "ci"]'
bad_policy "duplicate approver" 'duplicate principal "admin1"' \
	'p["roles"]["release"]["quorum"]["approvers"] = ["admin1", "admin1", "admin2"]'
bad_policy "requester without requester role" 'principal "auditor" lacks the requester role' \
	'p["roles"]["ci-sign"]["online"]["requesters"] = ["auditor"]'
bad_policy "role both online and quorum" 'exactly one of "online" or "quorum"' \
	'p["roles"]["ci-sign"]["quorum"] = p["roles"]["release"]["quorum"]'
bad_policy "unknown field (typo)" 'unknown field "thresold"' \
	'p["policy_admins"]["thresold"] = 2'
bad_policy "policy admins threshold 0" "policy_admins.threshold" \
	'p["policy_admins"]["threshold"] = 0'
bad_policy "principal key not PEM" "principals.ci.public_key" \
	'p["principals"]["ci"]["public_key"] = "not a key"'
bad_policy "two principals share a key" "share one public key" \
	'p["principals"]["ci"]["public_key"] = p["principals"]["registrar"]["public_key"]'
bad_policy "unknown principal role" "must be admin, requester or auditor" \
	'p["principals"]["ci"]["roles"] = ["root"]'
bad_policy "bootstrap version not 1" "bootstrap policy must be version 1" \
	'p["version"] = 2'
bad_policy "Ed25519 key with digest payloads" "signs messages, not digests" \
	'p["keys"]["ci-key"]["algorithm"] = "ed25519"'

# Duplicate names are a JSON duplicate key: refused by the parser.
cp "$T/policy.good" "$pol"
python3 - "$pol" <<'PY'
import sys
path = sys.argv[1]
s = open(path).read()
s = s.replace('"roles": {', '"roles": {\n    "ci-sign": {"keys": ["ci-key"], "payloads": ["blob"], "online": {"requesters": ["ci"]}},', 1)
open(path, "w").write(s)
PY
expect_rc 1 qsignd -c "$cfg" --check
grep -q "duplicate object key" "$T/err" || fail "duplicate role name not refused"
echo "ok: duplicate role name"
cp "$T/policy.good" "$pol"

# bad_config NAME EXPECTED-MESSAGE PYTHON-EDIT (on c)
bad_config() {
	cp "$T/config.good" "$cfg"
	python3 - "$cfg" "$3" <<'PY'
import json, sys
path, expr = sys.argv[1], sys.argv[2]
c = json.load(open(path))
exec(expr)
json.dump(c, open(path, "w"), indent=2)
PY
	expect_rc 1 qsignd -c "$cfg" --check
	grep -qF -- "$2" "$T/err" || { cat "$T/err" >&2; fail "$1: message lacks '$2'"; }
	echo "ok: $1"
}
bad_config "plain tcp on a public address" "only allowed on a loopback" \
	'c["listen"].append("tcp://0.0.0.0:7000"); c["allow_plain_tcp"] = True'
bad_config "plain tcp without opt-in" 'needs "allow_plain_tcp": true' \
	'c["listen"].append("tcp://127.0.0.1:7000")'
bad_config "tls listener without tls block" "needs a \"tls\" block" \
	'c["listen"].append("tls+tcp://127.0.0.1:7001")'
bad_config "unknown config key" 'unknown field "worker"' 'c["worker"] = 3'
bad_config "world-accessible ipc socket" "never world access" 'c["ipc_mode"] = "0666"'
(umask 077; echo 0000 >"$QSIGN_HOME/bad.pin")
bad_config "wrong PIN" "PIN" 'c["tokens"][0]["pin_file"] = "bad.pin"'
bad_config "missing token" "token" 'c["tokens"][0]["uri"] = "pkcs11:token=nope"'
# The log's key signs checkpoints that witnesses verify as P-256 or Ed25519:
# a P-384 key is refused by name
qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" -t ecdsa-p384 \
	-l audit-p384 >/dev/null || fail "keygen audit-p384"
bad_config "ecdsa-p384 audit key" "audit.key: must be ECDSA P-256 or Ed25519" \
	'c["audit"]["key"] = "pkcs11:token=qsign-demo;object=audit-p384"'
cp "$T/config.good" "$cfg"
# TUF signs with ecdsa-sha2-nistp256, ed25519 or rsassa-pss-sha256: a P-384
# key in a TUF role is refused by name
bad_policy "ecdsa-p384 TUF key" "tuf.roles.timestamp.keys[0]: tuf384 must be ecdsa-p256, ed25519 or rsa3072" \
	'p["keys"]["tuf384"] = {"uri": "pkcs11:token=qsign-demo;object=audit-p384", "algorithm": "ecdsa-p384"}; p["tuf"]["roles"]["timestamp"]["keys"] = ["tuf384"]'
cp "$T/policy.good" "$pol"

chmod 644 "$QSIGN_HOME/user.pin"
expect_rc 1 qsignd -c "$cfg" --check
grep -q "readable by group or others" "$T/err" || fail "world-readable PIN file accepted"
chmod 600 "$QSIGN_HOME/user.pin"
echo "ok: world-readable PIN file"

# A state directory of another program, or of a newer schema, is refused.
mkdir -p "$QSIGN_HOME/state"
sqlite3 "$QSIGN_HOME/state/state.db" "CREATE TABLE other(x); PRAGMA application_id = 7;"
expect_rc 1 qsignd -c "$cfg" --check
grep -q "not created by quorum-signer" "$T/err" || fail "foreign state.db accepted"
rm -f "$QSIGN_HOME/state/state.db"*
echo "ok: foreign state.db"
qs_start
qs_stop
sqlite3 "$QSIGN_HOME/state/state.db" "PRAGMA user_version = 99;"
expect_rc 1 qsignd -c "$cfg" --check
grep -q "schema version 99" "$T/err" || fail "newer schema accepted"
echo "ok: newer schema"
echo PASS
