#!/usr/bin/env bash
# The build farm's path end to end through the qsign CLI against a real
# qsignd and SoftHSM token: info, keys, online signatures (ECDSA blob and
# digest, Ed25519 blob, batches) verified with OpenSSL, documented exit
# codes, and every signature recorded in the state store.
. "$(dirname "$0")/lib.sh"
qs_setup
module=/usr/lib/softhsm/libsofthsm2.so
qsign-token keygen -m "$module" -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" \
	-t ed25519 -l ed-key >/dev/null
qsign-token keygen -m "$module" -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" \
	-t ecdsa-p384 -l p384-key >/dev/null
qsign-token keygen -m "$module" -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" \
	-t rsa2048-pkcs1 -l pkcs1-key >/dev/null
qs_policy_edit '
p["keys"]["ed-key"] = {"uri": "pkcs11:token=qsign-demo;object=ed-key", "algorithm": "ed25519"}
p["roles"]["ed-sign"] = {"keys": ["ed-key"], "payloads": ["blob"], "online": {"requesters": ["ci"]}}
p["keys"]["p384-key"] = {"uri": "pkcs11:token=qsign-demo;object=p384-key", "algorithm": "ecdsa-p384"}
p["roles"]["p384-sign"] = {"keys": ["p384-key"], "payloads": ["blob", "digest"], "online": {"requesters": ["ci"]}}
p["keys"]["pkcs1-key"] = {"uri": "pkcs11:token=qsign-demo;object=pkcs1-key", "algorithm": "rsa2048-pkcs1"}
p["roles"]["pkcs1-sign"] = {"keys": ["pkcs1-key"], "payloads": ["blob"], "online": {"requesters": ["ci"]}}'
qs_start
unhex() { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))'; }

expect_rc 0 qsign -p ci info
grep -q "qsignd-demo" "$T/out" || fail "info: no server identity"
grep -q "ci-sign" "$T/out" || fail "info: ci-sign not listed for ci"
expect_rc 0 qsign -p ci --json info
python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["policy_version"] == 1, d
assert "requester" in d["principal_roles"], d
names = set(r["name"] for r in d["roles"])
assert {"ci-sign", "ed-sign", "release"} <= names, names
assert not names & {"tuf-admin", "pki"}, names  # quorum roles ci neither requests nor approves
' "$T/out" || fail "info --json content"
echo "ok: info"

expect_rc 0 qsign -p ci --json keys
python3 - "$T/out" "$T" <<'PY' || fail "keys --json content"
import json, sys, hashlib, subprocess
d = json.load(open(sys.argv[1]))
keys = {k["name"]: k for k in d["keys"]}
assert {"ci-key", "release-key", "ed-key"} <= set(keys), keys.keys()
for n, k in keys.items():
    open(f"{sys.argv[2]}/{n}.pem", "w").write(k["public_pem"])
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=k["public_pem"].encode(), capture_output=True, check=True).stdout
    assert hashlib.sha256(der).hexdigest() == k["key_id"], (n, "key_id is not SHA-256 of SPKI")
assert keys["ci-key"]["algorithm"] == "ecdsa-p256" and keys["ed-key"]["algorithm"] == "ed25519"
PY
echo "ok: keys (key id = SHA-256 of the SPKI)"

head -c 5000 /dev/urandom >"$T/blob"
expect_rc 0 qsign -p ci sign -r ci-sign -f "$T/blob" -o "$T/blob.sig"
openssl dgst -sha256 -verify "$T/ci-key.pem" -signature "$T/blob.sig" "$T/blob" >/dev/null ||
	fail "ECDSA blob signature does not verify"
echo "ok: ECDSA blob signature verifies with OpenSSL"

dg=$(sha256sum "$T/blob" | cut -c1-64)
expect_rc 0 qsign -p ci sign -r ci-sign -d "$dg" --format hex
unhex <"$T/out" >"$T/dg.sig"
echo "$dg" | unhex >"$T/dg.bin"
openssl pkeyutl -verify -pubin -inkey "$T/ci-key.pem" -in "$T/dg.bin" -sigfile "$T/dg.sig" >/dev/null ||
	fail "ECDSA digest signature does not verify"
expect_rc 0 qsign -p ci --json sign -r ci-sign -d "$dg"
python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert d["digest"] == sys.argv[2] and d["key"] == "ci-key" and d["algorithm"] == "ecdsa-p256", d
' "$T/out" "$dg" || fail "sign --json content"
echo "ok: ECDSA digest signature verifies"

expect_rc 0 qsign -p ci sign -r ed-sign -f "$T/blob" -o "$T/ed.sig"
openssl pkeyutl -verify -pubin -inkey "$T/ed-key.pem" -rawin -in "$T/blob" -sigfile "$T/ed.sig" >/dev/null ||
	fail "Ed25519 signature does not verify"
echo "ok: Ed25519 blob signature verifies (token holds EC and Ed25519 keys)"

# ECDSA P-384: DER over SHA-256 of the blob; openssl and qsign verify it
expect_rc 0 qsign -p ci sign -r p384-sign -f "$T/blob" -o "$T/p384.sig"
openssl dgst -sha256 -verify "$T/p384-key.pem" -signature "$T/p384.sig" "$T/blob" >/dev/null ||
	fail "ECDSA P-384 signature does not verify"
openssl pkey -pubin -in "$T/p384-key.pem" -noout -text | grep -q 'NIST CURVE: P-384' ||
	fail "p384-key is not a P-384 key"
expect_rc 0 qsign -p ci verify -r p384-sign -f "$T/blob" -s "$T/p384.sig"
grep -q "p384-key, ecdsa-p384" "$T/out" || fail "qsign verify: $(cat "$T/out")"
expect_rc 1 qsign -p ci verify -r p384-sign -f "$T/blob" -s "$T/blob.sig"
echo "ok: ECDSA P-384 signature verifies (openssl, qsign verify); a P-256 one does not"

# RSA PKCS#1 v1.5 (the boot stack's scheme): openssl verifies it with that
# padding, qsign verify too (it must not insist on PSS), and not a flipped one.
expect_rc 0 qsign -p ci sign -r pkcs1-sign -f "$T/blob" -o "$T/pkcs1.sig"
openssl dgst -sha256 -verify "$T/pkcs1-key.pem" -signature "$T/pkcs1.sig" "$T/blob" >/dev/null ||
	fail "RSA PKCS#1 v1.5 signature does not verify with openssl"
expect_rc 0 qsign -p ci verify -r pkcs1-sign -f "$T/blob" -s "$T/pkcs1.sig"
grep -q "pkcs1-key, rsa2048-pkcs1" "$T/out" || fail "qsign verify (pkcs1): $(cat "$T/out")"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[2], "wb").write(b)' \
	"$T/pkcs1.sig" "$T/pkcs1.bad"
expect_rc 1 qsign -p ci verify -r pkcs1-sign -f "$T/blob" -s "$T/pkcs1.bad"
echo "ok: RSA PKCS#1 v1.5 signature verifies (openssl, qsign verify); a changed one does not"

# Batch of digests on stdin, one of them malformed for the daemon? No: the
# CLI checks hex locally; the daemon answers each item on its own.
for i in 1 2 3 4 5; do echo "item $i" >"$T/f$i"; sha256sum "$T/f$i" | cut -c1-64; done >"$T/digests"
# batch_verified DIGESTS HASH PEM: sign-batch printed one line per digest of
# DIGESTS (those of $T/f1, f2, ...), in order, each signature over $T/fN
# with HASH verifying with PEM.
batch_verified() {
	local i=0 d s
	[ "$(wc -l <"$T/out")" = "$(wc -l <"$1")" ] || fail "sign-batch $2: $(cat "$T/out")"
	while read -r d s; do
		i=$((i + 1))
		[ "$d" = "$(sed -n "${i}p" "$1")" ] || fail "sign-batch $2: digest order"
		echo "$s" | unhex >"$T/b.sig"
		openssl dgst "-$2" -verify "$3" -signature "$T/b.sig" "$T/f$i" >/dev/null ||
			fail "sign-batch $2 item $i does not verify"
	done <"$T/out"
}
expect_rc 0 qsign -p ci sign-batch -r ci-sign <"$T/digests"
batch_verified "$T/digests" sha256 "$T/ci-key.pem"
expect_rc 0 qsign -p ci --json sign-batch -r ed-sign "$T/f1" "$T/f2"
python3 - "$T/out" "$T" <<'PY' || fail "sign-batch blobs (Ed25519)"
import json, sys, subprocess
d = json.load(open(sys.argv[1]))
items = d if isinstance(d, list) else d["results"]
assert len(items) == 2, items
for n, it in enumerate(items, 1):
    open(f"{sys.argv[2]}/e.sig", "wb").write(bytes.fromhex(it["signature"]))
    subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", f"{sys.argv[2]}/ed-key.pem",
                    "-rawin", "-in", f"{sys.argv[2]}/f{n}", "-sigfile", f"{sys.argv[2]}/e.sig"],
                   check=True, capture_output=True)
PY
echo "ok: sign-batch (digests and Ed25519 blobs) verify"

# SHA-384 and SHA-512 (--hash): a batch of SHA-384 digests with the P-384
# key, a batch of blobs hashed with SHA-512 by the RSA PKCS#1 v1.5 key, one
# Sign of a blob with SHA-384; openssl verifies each with that hash. The
# Ed25519 key signs with SHA-256 only.
for i in 1 2 3; do sha384sum "$T/f$i" | cut -c1-96; done >"$T/digests384"
expect_rc 0 qsign -p ci sign-batch -r p384-sign --hash sha384 <"$T/digests384"
batch_verified "$T/digests384" sha384 "$T/p384-key.pem"
expect_rc 2 qsign -p ci sign-batch -r p384-sign --hash sha384 <"$T/digests"
grep -q "stdin line 1: not a 96-hex-character sha384 digest" "$T/err" ||
	fail "sign-batch --hash sha384 with SHA-256 digests: $(cat "$T/err")"
expect_rc 0 qsign -p ci --json sign-batch -r pkcs1-sign --hash sha512 "$T/f1" "$T/f2"
python3 - "$T/out" "$T" <<'PY' || fail "sign-batch --hash sha512 blobs (PKCS#1 v1.5)"
import hashlib, json, sys, subprocess
items = json.load(open(sys.argv[1]))
assert len(items) == 2, items
for n, it in enumerate(items, 1):
    path = f"{sys.argv[2]}/f{n}"
    assert it["hash"] == "sha512" and it["digest"] == hashlib.sha512(open(path, "rb").read()).hexdigest(), it
    open(f"{sys.argv[2]}/x.sig", "wb").write(bytes.fromhex(it["signature"]))
    subprocess.run(["openssl", "dgst", "-sha512", "-verify", f"{sys.argv[2]}/pkcs1-key.pem",
                    "-signature", f"{sys.argv[2]}/x.sig", path], check=True, capture_output=True)
PY
expect_rc 0 qsign -p ci sign -r p384-sign --hash sha384 -f "$T/f3" -o "$T/s384.sig"
openssl dgst -sha384 -verify "$T/p384-key.pem" -signature "$T/s384.sig" "$T/f3" >/dev/null ||
	fail "sign --hash sha384 does not verify"
expect_rc 1 qsign -p ci sign-batch -r ed-sign --hash sha384 "$T/f1"
grep -q "signs the message itself: no hash sha384" "$T/err" ||
	fail "Ed25519 batch with sha384: $(cat "$T/err")"
expect_rc 2 qsign -p ci sign-batch -r ci-sign --hash md5 <"$T/digests"
grep -q "\-\-hash: sha256, sha384 or sha512" "$T/err" || fail "--hash md5: $(cat "$T/err")"
# The audit log names the batches' hash and holds those digests
expect_rc 0 qsign -p auditor --json audit search --event signature --role p384-sign
python3 - "$T/out" "$T/digests384" <<'PY' || fail "sign-batch sha384 audit: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
es = [e.get("fields", e) for e in (d["entries"] if isinstance(d, dict) else d)]
want = open(sys.argv[2]).read().split()
got = [e["digest"] for e in es if e["hash"] == "sha384"]
assert all(w in got for w in want), (want, got)
PY
echo "ok: sign-batch --hash sha384 (digests, P-384), --hash sha512 (blobs, PKCS#1 v1.5), sign --hash sha384 verify with openssl"

# Documented exit codes.
expect_rc 1 qsign -p ci sign -r no-such-role -d "$dg"
grep -q NOT_FOUND "$T/err" || fail "unknown role: status not printed"
expect_rc 1 qsign -p admin1 sign -r ci-sign -d "$dg"
grep -q PERMISSION_DENIED "$T/err" || fail "role not allowed: status not printed"
expect_rc 1 qsign -p ci -i "$QSIGN_HOME/demo/admin2.key" info
grep -q UNAUTHENTICATED "$T/err" || fail "wrong key: status not printed"
expect_rc 2 qsign -p ci sign -r ci-sign -d nothex
expect_rc 2 qsign -p ci frobnicate
expect_rc 3 qsign -s "ipc://$T/nothing.sock" -p ci info
echo "ok: exit codes 1 (refused), 2 (usage), 3 (unreachable)"

# Every signature is in the state store: 1 blob + 2 digest + 1 ed + 1 P-384
# + 1 PKCS#1 + 5 + 2, and with --hash 3 + 2 + 1.
n=$(sqlite3 "$QSIGN_HOME/state/state.db" "SELECT count(*) FROM signature")
[ "$n" = 19 ] || fail "state store holds $n signatures, expected 19"
n=$(sqlite3 "$QSIGN_HOME/state/state.db" "SELECT count(*) FROM signature WHERE principal='ci' AND role='ed-sign' AND kind='blob'")
[ "$n" = 3 ] || fail "Ed25519 records: $n"
echo "ok: 11 signatures recorded"

# Clean stop, then restart: the stored policy decides, an edited file is
# ignored with a warning, nothing is lost.
qs_stop || fail "qsignd did not exit 0 on SIGTERM"
qs_policy_edit 'p["roles"]["ci-sign"]["online"]["requesters"] = ["registrar"]'
qs_start
grep -q "policy.file_ignored" "$T/qsignd.log" || fail "changed policy file not reported"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$dg"
expect_rc 1 qsign -p registrar sign -r ci-sign -d "$dg"
n=$(sqlite3 "$QSIGN_HOME/state/state.db" "SELECT count(*) FROM signature")
[ "$n" = 20 ] || fail "after restart the store holds $n signatures, expected 20"
echo "ok: restart keeps state; edited policy file ignored"

# kill -9 right after an acknowledged signature: it is in the audit log
# (durable before the reply), and the store's signature index, derived from
# the log, holds it once qsignd is back (caught up before it serves).
expect_rc 0 qsign -p ci sign -r ci-sign -d "$dg"
qs_kill9
qs_start
expect_rc 0 qsign -p ci info
n=$(sqlite3 "$QSIGN_HOME/state/state.db" "SELECT count(*) FROM signature")
[ "$n" = 21 ] || fail "after kill -9 and a restart the store holds $n signatures, expected 21"
echo "ok: kill -9 loses no acknowledged signature"
qs_stop
echo PASS
