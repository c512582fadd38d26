#!/usr/bin/env bash
# libqsign-pkcs11.so against a real qsignd (ipc) with the tools that load
# PKCS#11 modules: OpenSC's pkcs11-tool (slots, objects, each mechanism),
# libp11's OpenSSL engine (pkeyutl, req -x509), and a C program that
# dlopens the module (attributes, templates, CKR_* codes, 8 threads on one
# instance, fork, a signature refused by the rate limit). Every signature
# is verified by openssl; every one is in the audit log under the module's
# principal, and `qsign audit verify` passes. A role the principal may not
# use is not visible; a quorum role only with a wait time, and then C_Sign
# waits for the approvals.
. "$QS_SRC/tests/integration/lib.sh"
. "$QS_SRC/tests/integration/p11lib.sh"

qs_setup
p11_demo_keys
# p11-h384: a role that allows SHA-384 only (its P-256 key could sign any hash)
qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 \
	-l h384-key >/dev/null || fail "keygen h384-key"
# release384: a quorum role of a P-384 key whose requests sign with SHA-384
qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin" -t ecdsa-p384 \
	-l rel384-key >/dev/null || fail "keygen rel384-key"
qs_policy_edit '
import copy
p["keys"]["rel384-key"] = {"uri": "pkcs11:token=qsign-demo;object=rel384-key", "algorithm": "ecdsa-p384"}
p["roles"]["release384"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["release384"]["keys"] = ["rel384-key"]
p["roles"]["release384"]["payloads"] = ["digest", "blob"]
p["roles"]["release384"]["quorum"]["hashes"] = ["sha384"]
p["keys"]["h384-key"] = {"uri": "pkcs11:token=qsign-demo;object=h384-key", "algorithm": "ecdsa-p256"}
p["roles"]["p11-h384"] = {"keys": ["h384-key"], "payloads": ["digest", "blob"],
                          "online": {"requesters": ["ci"], "hashes": ["sha384"]}}'
qs_start

export QSIGN_PRINCIPAL=ci
PT=("${P11_ENV[@]}" pkcs11-tool --module "$P11_MODULE")

# --- slots and objects: one token per usable role, none for the others
expect_rc 0 "${PT[@]}" -L
for role in ci-sign p11-rsa p11-ed p11-slow boot; do
	grep -q "token label *: $role\$" "$T/out" || fail "no token for role $role"
done
grep -q "token label *: p11-hidden" "$T/out" && fail "a role of another principal is visible"
grep -q "token label *: release" "$T/out" && fail "a quorum role is visible without a wait time"
expect_rc 0 "${PT[@]}" -O --token-label p11-rsa
grep -q "Private Key Object; RSA" "$T/out" || fail "no RSA private key object"
grep -q "never extractable" "$T/out" || fail "private key extractable?"
grep -q "Allowed mechanisms: RSA-PKCS-PSS,SHA256-RSA-PKCS-PSS" "$T/out" ||
	fail "PSS key not restricted to PSS: $(cat "$T/out")"
echo "ok: slots and objects"

# keypem KEY OUT: the public key as qsignd lists it. (Not read back with
# pkcs11-tool -r: OpenSC 0.23 reads EC public keys through freed memory,
# which a sanitizer build's preloaded ASan catches; the module's
# CKA_PUBLIC_KEY_INFO / CKA_EC_POINT are checked by p11_client.)
keypem() {
	qsign -p ci keys --json | python3 -c 'import json,sys; print([k for k in json.load(sys.stdin)["keys"] if k["name"]==sys.argv[1]][0]["public_pem"], end="")' "$1" >"$2" ||
		fail "qsign keys: $1"
}
head -c 5000 /dev/urandom >"$T/msg"
openssl dgst -sha256 -binary "$T/msg" >"$T/msg.sha256"

# --- each mechanism through pkcs11-tool, verified by openssl
keypem ci-key "$T/ec.pem"
for mech in ECDSA-SHA256 ECDSA; do
	in=$T/msg
	[ "$mech" = ECDSA ] && in=$T/msg.sha256
	expect_rc 0 "${PT[@]}" --token-label ci-sign --sign -m "$mech" --label ci-key \
		--signature-format openssl -i "$in" -o "$T/sig"
	openssl dgst -sha256 -verify "$T/ec.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
		fail "$mech signature does not verify"
done
keypem pss-key "$T/pss.pem"
for mech in SHA256-RSA-PKCS-PSS RSA-PKCS-PSS; do
	in=$T/msg opts=()
	[ "$mech" = RSA-PKCS-PSS ] && in=$T/msg.sha256 opts=(--hash-algorithm SHA256)
	expect_rc 0 "${PT[@]}" --token-label p11-rsa --sign -m "$mech" "${opts[@]}" \
		--mgf MGF1-SHA256 --salt-len 32 --label pss-key -i "$in" -o "$T/sig"
	openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
		-verify "$T/pss.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
		fail "$mech signature does not verify"
done
keypem db-key "$T/db.pem"
# CKM_RSA_PKCS takes a DigestInfo (as libp11's engine sends it)
{ printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'; cat "$T/msg.sha256"; } >"$T/msg.di"
for mech in SHA256-RSA-PKCS RSA-PKCS; do
	in=$T/msg
	[ "$mech" = RSA-PKCS ] && in=$T/msg.di
	expect_rc 0 "${PT[@]}" --token-label boot --sign -m "$mech" --label db-key -i "$in" -o "$T/sig"
	openssl dgst -sha256 -verify "$T/db.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
		fail "$mech signature does not verify"
done
# A DigestInfo of another hash: refused before anything is sent.
head -c 51 /dev/zero >"$T/bad.di"
expect_rc 1 "${PT[@]}" --token-label boot --sign -m RSA-PKCS --label db-key -i "$T/bad.di" -o "$T/sig"
grep -q "CKR_DATA_INVALID" "$T/err" || fail "bad DigestInfo: $(cat "$T/err")"
# PSS with another salt length: not the scheme of the key, refused.
expect_rc 1 "${PT[@]}" --token-label p11-rsa --sign -m RSA-PKCS-PSS --hash-algorithm SHA256 \
	--mgf MGF1-SHA256 --salt-len 20 --label pss-key -i "$T/msg.sha256" -o "$T/sig"
grep -q "CKR_MECHANISM_PARAM_INVALID" "$T/err" || fail "PSS salt 20: $(cat "$T/err")"
keypem ed-key "$T/ed.pem"
expect_rc 0 "${PT[@]}" --token-label p11-ed --sign -m EDDSA --label ed-key -i "$T/msg" -o "$T/sig"
openssl pkeyutl -verify -pubin -inkey "$T/ed.pem" -rawin -in "$T/msg" -sigfile "$T/sig" \
	>/dev/null || fail "EdDSA signature does not verify"
echo "ok: pkcs11-tool: ECDSA, ECDSA-SHA256, RSA-PKCS-PSS, SHA256-RSA-PKCS-PSS, RSA-PKCS, SHA256-RSA-PKCS, EDDSA"

# --- libp11's OpenSSL engine
expect_rc 0 p11_engine pkeyutl -sign -engine pkcs11 -keyform engine \
	-inkey "pkcs11:token=ci-sign;object=ci-key" -in "$T/msg.sha256" -out "$T/sig"
openssl pkeyutl -verify -pubin -inkey "$T/ec.pem" -in "$T/msg.sha256" -sigfile "$T/sig" \
	>/dev/null || fail "engine pkeyutl signature does not verify"
expect_rc 0 p11_engine req -new -x509 -engine pkcs11 -keyform engine \
	-key "pkcs11:token=ci-sign;object=ci-key" -subj "/CN=ci via qsignd" -days 1 -sha256 \
	-out "$T/ci.crt"
openssl verify -CAfile "$T/ci.crt" "$T/ci.crt" >/dev/null || fail "self-signed certificate does not verify"
openssl x509 -in "$T/ci.crt" -noout -pubkey | cmp -s - "$T/ec.pem" || fail "certificate of another key"
echo "ok: libp11 engine: pkeyutl -sign, req -new -x509"

# --- SHA-384 and SHA-512: each mechanism, the digest's hash named in the
# Sign (SignRequest.hash), verified by openssl with that hash
for h in 384 512; do
	openssl dgst -sha$h -binary "$T/msg" >"$T/msg.sha$h"
	hl=$((h / 8))
	for mech in ECDSA-SHA$h ECDSA; do
		in=$T/msg
		[ "$mech" = ECDSA ] && in=$T/msg.sha$h
		expect_rc 0 "${PT[@]}" --token-label ci-sign --sign -m "$mech" --label ci-key \
			--signature-format openssl -i "$in" -o "$T/sig"
		openssl dgst -sha$h -verify "$T/ec.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
			fail "$mech (SHA-$h) signature does not verify"
		openssl dgst -sha256 -verify "$T/ec.pem" -signature "$T/sig" "$T/msg" >/dev/null 2>&1 &&
			fail "$mech (SHA-$h) signed a SHA-256 digest"
	done
	for mech in SHA$h-RSA-PKCS-PSS RSA-PKCS-PSS; do
		in=$T/msg opts=()
		[ "$mech" = RSA-PKCS-PSS ] && in=$T/msg.sha$h opts=(--hash-algorithm SHA$h)
		expect_rc 0 "${PT[@]}" --token-label p11-rsa --sign -m "$mech" "${opts[@]}" \
			--mgf MGF1-SHA$h --salt-len $hl --label pss-key -i "$in" -o "$T/sig"
		openssl dgst -sha$h -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:$hl \
			-verify "$T/pss.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
			fail "$mech (SHA-$h) signature does not verify"
	done
	case $h in
	384) printf '\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30' ;;
	512) printf '\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40' ;;
	esac >"$T/msg.di$h"
	cat "$T/msg.sha$h" >>"$T/msg.di$h"
	for mech in SHA$h-RSA-PKCS RSA-PKCS; do
		in=$T/msg
		[ "$mech" = RSA-PKCS ] && in=$T/msg.di$h
		expect_rc 0 "${PT[@]}" --token-label boot --sign -m "$mech" --label db-key -i "$in" -o "$T/sig"
		openssl dgst -sha$h -verify "$T/db.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
			fail "$mech (SHA-$h) signature does not verify"
	done
done
# A SHA-384 PSS mechanism with MGF1-SHA-256 or a 32-byte salt, a raw ECDSA
# input of no SHA-2 length, a SHA-384 mechanism's multi-part operation on an
# Ed25519 key: refused before anything is sent
expect_rc 1 "${PT[@]}" --token-label p11-rsa --sign -m SHA384-RSA-PKCS-PSS --mgf MGF1-SHA256 \
	--salt-len 48 --label pss-key -i "$T/msg" -o "$T/sig"
grep -q "CKR_MECHANISM_PARAM_INVALID" "$T/err" || fail "PSS SHA-384/MGF1-SHA256: $(cat "$T/err")"
expect_rc 1 "${PT[@]}" --token-label p11-rsa --sign -m SHA384-RSA-PKCS-PSS --mgf MGF1-SHA384 \
	--salt-len 32 --label pss-key -i "$T/msg" -o "$T/sig"
grep -q "CKR_MECHANISM_PARAM_INVALID" "$T/err" || fail "PSS SHA-384 salt 32: $(cat "$T/err")"
head -c 40 /dev/urandom >"$T/msg.40"
expect_rc 1 "${PT[@]}" --token-label ci-sign --sign -m ECDSA --label ci-key -i "$T/msg.40" -o "$T/sig"
grep -q "CKR_DATA_LEN_RANGE" "$T/err" || fail "ECDSA 40 bytes: $(cat "$T/err")"
expect_rc 1 "${PT[@]}" --token-label p11-ed --sign -m ECDSA-SHA384 --label ed-key -i "$T/msg" -o "$T/sig"
grep -q "CKR_MECHANISM_INVALID" "$T/err" || fail "ECDSA-SHA384 with Ed25519: $(cat "$T/err")"
# libp11's engine with a SHA-384 digest: OpenSSL cuts it to the curve's
# size before CKM_ECDSA (the same ECDSA signature), so the module sees 32
# bytes and names them sha256 (below)
expect_rc 0 p11_engine pkeyutl -sign -engine pkcs11 -keyform engine \
	-inkey "pkcs11:token=ci-sign;object=ci-key" -in "$T/msg.sha384" -out "$T/sig"
openssl dgst -sha384 -verify "$T/ec.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
	fail "engine pkeyutl SHA-384 signature does not verify"
# The audit log names each signature's hash, with the digest of that hash
expect_rc 0 qsign -p auditor --json audit search --event signature
python3 - "$T/out" "$(xxd -p -c 100 "$T/msg.sha384")" "$(xxd -p -c 100 "$T/msg.sha512")" <<'PY' || fail "audit hashes: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
es = d["entries"] if isinstance(d, dict) else d
es = [e.get("fields", e) for e in es]
by = {}
for e in es:
    by.setdefault(e["hash"], []).append(e)
    assert len(e["digest"]) == {"sha256": 64, "sha384": 96, "sha512": 128}[e["hash"]], e
# ECDSA-SHA384/512, ECDSA, 2 PSS, 2 PKCS#1 of each
assert len(by["sha384"]) == 6 and len(by["sha512"]) == 6, {h: len(v) for h, v in by.items()}
assert by["sha256"][-1]["digest"] == sys.argv[2][:64], by["sha256"][-1]  # the engine's
assert {e["digest"] for e in by["sha384"]} == {sys.argv[2]}, by["sha384"]
assert {e["digest"] for e in by["sha512"]} == {sys.argv[3]}, by["sha512"]
assert {e["algorithm"] for e in by["sha384"]} == {"ecdsa-p256", "rsa3072", "rsa2048-pkcs1"}
PY
echo "ok: SHA-384/512: ECDSA-SHA384/512, ECDSA, SHA384/512-RSA-PKCS-PSS, RSA-PKCS-PSS, SHA384/512-RSA-PKCS, RSA-PKCS, engine; audit entries name the hash"

# --- ECDSA P-384 (ecdsa-p384): the objects carry secp384r1's CKA_EC_PARAMS
# and a 97-byte point; ECDSA-SHA384 through pkcs11-tool and a SHA-384
# digest through libp11's engine, verified by openssl with the key's PEM
keypem p384-key "$T/p384.pem"
openssl pkey -pubin -in "$T/p384.pem" -noout -text | grep -q 'NIST CURVE: P-384' ||
	fail "p384-key is not a P-384 key"
expect_rc 0 "${PT[@]}" -O --token-label p11-p384
grep -q "Private Key Object; EC" "$T/out" || fail "no EC private key object: $(cat "$T/out")"
grep -qi "EC_POINT: *04610[0-9a-f]*\|EC_POINT 384 bits" "$T/out" ||
	fail "no 384-bit EC point: $(cat "$T/out")"
grep -qi "EC_PARAMS: *06052b81040022\|secp384r1\|prime384\|1.3.132.0.34" "$T/out" ||
	fail "no secp384r1 EC_PARAMS: $(cat "$T/out")"
expect_rc 0 "${PT[@]}" --token-label p11-p384 --sign -m ECDSA-SHA384 --label p384-key \
	--signature-format openssl -i "$T/msg" -o "$T/sig"
openssl dgst -sha384 -verify "$T/p384.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
	fail "ECDSA-SHA384 with the P-384 key does not verify"
openssl dgst -sha384 -verify "$T/ec.pem" -signature "$T/sig" "$T/msg" >/dev/null 2>&1 &&
	fail "a P-384 signature verifies with the P-256 key"
expect_rc 0 "${PT[@]}" --token-label p11-p384 --sign -m ECDSA-SHA384 --label p384-key \
	-i "$T/msg" -o "$T/sig.raw"
[ "$(stat -c %s "$T/sig.raw")" = 96 ] || fail "P-384 r||s is not 96 bytes"
expect_rc 0 p11_engine pkeyutl -sign -engine pkcs11 -keyform engine \
	-inkey "pkcs11:token=p11-p384;object=p384-key" -in "$T/msg.sha384" -out "$T/sig"
openssl pkeyutl -verify -pubin -inkey "$T/p384.pem" -in "$T/msg.sha384" -sigfile "$T/sig" \
	>/dev/null || fail "engine pkeyutl P-384 signature does not verify"
openssl dgst -sha384 -verify "$T/p384.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
	fail "engine pkeyutl P-384 signature is not over SHA-384 of the message"
expect_rc 0 qsign -p auditor --json audit search --event signature --role p11-p384
python3 - "$T/out" "$(xxd -p -c 100 "$T/msg.sha384")" <<'PY' || fail "P-384 audit: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
es = d["entries"] if isinstance(d, dict) else d
es = [e.get("fields", e) for e in es]
assert len(es) == 3, es
assert {(e["algorithm"], e["hash"], e["digest"]) for e in es} == {("ecdsa-p384", "sha384", sys.argv[2])}, es
PY
echo "ok: ECDSA P-384: secp384r1 objects, ECDSA-SHA384 (pkcs11-tool), engine pkeyutl over SHA-384; audit says ecdsa-p384"

# --- a role that allows SHA-384 only (online.hashes): the token offers the
# mechanisms of that hash and the raw one, C_SignInit refuses the others
# (CKR_MECHANISM_INVALID), a raw ECDSA over a SHA-256 digest is refused by
# qsignd (CKR_FUNCTION_REJECTED, nothing signed); ECDSA-SHA384 signs
keypem h384-key "$T/h384.pem"
expect_rc 0 "${PT[@]}" --token-label p11-h384 --sign -m ECDSA-SHA384 --label h384-key \
	--signature-format openssl -i "$T/msg" -o "$T/sig"
openssl dgst -sha384 -verify "$T/h384.pem" -signature "$T/sig" "$T/msg" >/dev/null ||
	fail "ECDSA-SHA384 on p11-h384 does not verify"
expect_rc 0 "${PT[@]}" -M --token-label p11-h384
grep -q "^  ECDSA-SHA384" "$T/out" && grep -q "^  ECDSA," "$T/out" ||
	fail "p11-h384 does not offer ECDSA-SHA384 and ECDSA: $(cat "$T/out")"
grep -q "ECDSA-SHA256\|ECDSA-SHA512" "$T/out" &&
	fail "p11-h384 offers a mechanism of a hash it does not allow: $(cat "$T/out")"
expect_rc 0 "${PT[@]}" -O --token-label p11-h384
grep -q "Allowed mechanisms: ECDSA,ECDSA-SHA384$" "$T/out" ||
	fail "h384-key's CKA_ALLOWED_MECHANISMS: $(cat "$T/out")"
for mech in ECDSA-SHA256 ECDSA-SHA512; do
	expect_rc 1 "${PT[@]}" --token-label p11-h384 --sign -m "$mech" --label h384-key \
		-i "$T/msg" -o "$T/sig"
	grep -q "CKR_MECHANISM_INVALID" "$T/err" || fail "$mech on p11-h384: $(cat "$T/err")"
done
expect_rc 1 "${PT[@]}" --token-label p11-h384 --sign -m ECDSA --label h384-key \
	-i "$T/msg.sha256" -o "$T/sig"
grep -q "role p11-h384 allows the hashes sha384: not sha256" "$T/err" ||
	fail "raw ECDSA over SHA-256 on p11-h384: $(cat "$T/err")"
expect_rc 0 qsign -p auditor --json audit search --event signature --role p11-h384
hashes=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(*[e.get("fields", e)["hash"] for e in (d["entries"] if isinstance(d, dict) else d)])' "$T/out")
[ "$hashes" = sha384 ] || fail "p11-h384 audit: $(cat "$T/out")"
echo "ok: a sha384-only role: mechanisms of other hashes not offered and refused"

# --- the module's API as applications use it
expect_rc 0 "$QS_BIN/p11_client" "$P11_MODULE" api ci-sign ci-key
expect_rc 0 "$QS_BIN/p11_client" "$P11_MODULE" threads ci-sign ci-key 8 25
cat "$T/out"
expect_rc 0 "$QS_BIN/p11_client" "$P11_MODULE" fork ci-sign ci-key
echo "ok: api, 8 threads, fork"

# --- a refused signature: CKR_FUNCTION_REJECTED, the reason on stderr once,
# and nothing signed (one signature entry for the role, not two)
expect_rc 0 "$QS_BIN/p11_client" "$P11_MODULE" refused p11-slow slow-key
grep -q "refused to sign with role p11-slow" "$T/err" || fail "no reason on stderr: $(cat "$T/err")"
[ "$(grep -c 'refused' "$T/err")" = 1 ] || fail "reason not printed once: $(cat "$T/err")"
echo "ok: refused by the rate limit"

# --- the daemon unreachable: CKR_DEVICE_ERROR at C_Initialize, said once
expect_rc 1 env QSIGN_SERVER="ipc://$T/nobody.sock" "${PT[@]}" -L
grep -q "cannot reach qsignd" "$T/err" || fail "unreachable: $(cat "$T/err")"
# a bad configuration file: C_Initialize fails with one clear line
echo '{"principal": "ci", "colour": "blue"}' >"$T/bad.conf"
expect_rc 1 env QSIGN_PKCS11_CONF="$T/bad.conf" "${PT[@]}" -L
grep -q "bad configuration: .*unknown field \"colour\"" "$T/err" || fail "bad conf: $(cat "$T/err")"
# a configuration file alone (no QSIGN_* variables) works
printf '{"server": "ipc://%s/qsignd.sock", "principal": "ci", "identity": "%s/demo/ci.key"}\n' \
	"$QSIGN_HOME" "$QSIGN_HOME" >"$T/good.conf"
expect_rc 0 env -u QSIGN_PRINCIPAL -u QSIGN_HOME QSIGN_PKCS11_CONF="$T/good.conf" "${PT[@]}" -L
grep -q "token label *: ci-sign" "$T/out" || fail "config file: $(cat "$T/out")"
echo "ok: unreachable daemon, bad and good configuration files"

# --- a quorum role: visible with a wait time; C_Sign waits for the votes
# quorum_sign N [TOKEN KEY MECH INPUT]: pkcs11-tool signs (default: with
# release-key, ECDSA over msg.sha256) in the background (files $T/qN.*);
# sets QID to the request id it printed on stderr.
quorum_sign() {
	(
		export QSIGN_PKCS11_QUORUM_WAIT=60
		rc=0
		"${PT[@]}" --token-label "${2:-release}" --sign -m "${4:-ECDSA}" \
			--label "${3:-release-key}" \
			--signature-format openssl -i "${5:-$T/msg.sha256}" -o "$T/q$1.sig" \
			>"$T/q$1.out" 2>"$T/q$1.err" || rc=$?
		echo "$rc" >"$T/q$1.rc"
	) &
	QPID=$!
	QID=""
	for _ in $(seq 1 300); do
		# (q$1.err may not exist yet: sed fails, which set -e must not see)
		QID=$(sed -n 's/.*request \([^ ]*\) submitted to role release.*/\1/p' "$T/q$1.err" 2>/dev/null || true)
		[ -n "$QID" ] && return 0
		sleep 0.1
	done
	fail "no request id on stderr: $(cat "$T/q$1.err")"
}
quorum_sign 1
expect_rc 0 qsign -p admin1 approve "$QID"
expect_rc 0 qsign -p admin2 approve "$QID"
wait "$QPID"
[ "$(cat "$T/q1.rc")" = 0 ] || fail "quorum C_Sign: $(cat "$T/q1.err")"
keypem release-key "$T/rel.pem"
openssl dgst -sha256 -verify "$T/rel.pem" -signature "$T/q1.sig" "$T/msg" >/dev/null ||
	fail "quorum signature does not verify"
# rejected by two admins: CKR_FUNCTION_REJECTED, no signature. (pkcs11-tool
# tries again multi-part after a failed C_Sign: that second request is
# rejected too; it prints CKR_FUNCTION_REJECTED as 0x200.)
quorum_sign 2
for attempt in 1 2; do
	expect_rc 0 qsign -p admin1 reject "$QID" -m "not this image"
	expect_rc 0 qsign -p admin3 reject "$QID" -m "not this image"
	[ "$attempt" = 2 ] && break
	for _ in $(seq 1 300); do
		next=$(sed -n 's/.*request \([^ ]*\) submitted to role release.*/\1/p' "$T/q2.err" | tail -1)
		[ "$next" != "$QID" ] && break
		kill -0 "$QPID" 2>/dev/null || break
		sleep 0.1
	done
	[ "$next" != "$QID" ] || break
	QID=$next
done
wait "$QPID"
[ "$(cat "$T/q2.rc")" != 0 ] || fail "a rejected request signed"
cat "$T/q2.out" "$T/q2.err" | grep -q "CKR_FUNCTION_REJECTED\|(0x200)" || fail "rejected: $(cat "$T/q2.err")"
grep -q "ended unsigned" "$T/q2.err" || fail "rejected: no reason: $(cat "$T/q2.err")"
echo "ok: quorum role: C_Sign waited for 2 approvals; a rejected request is CKR_FUNCTION_REJECTED"

# --- a quorum role whose requests sign with SHA-384 (quorum.hashes): C_Sign
# with CKM_ECDSA_SHA384 submits a request naming sha384, the approvals
# cover it, and the P-384 signature verifies over SHA-384 of the message;
# a mechanism of a hash the role does not list is refused at C_SignInit
quorum_sign 3 release384 rel384-key ECDSA-SHA384 "$T/msg"
expect_rc 0 qsign -p admin1 request show "$QID"
grep -q "^signature hash: sha384" "$T/out" || fail "request of ECDSA-SHA384: $(cat "$T/out")"
expect_rc 0 qsign -p admin1 approve "$QID"
expect_rc 0 qsign -p admin2 approve "$QID"
wait "$QPID"
[ "$(cat "$T/q3.rc")" = 0 ] || fail "quorum ECDSA-SHA384: $(cat "$T/q3.err")"
keypem rel384-key "$T/rel384.pem"
openssl dgst -sha384 -verify "$T/rel384.pem" -signature "$T/q3.sig" "$T/msg" >/dev/null ||
	fail "quorum ECDSA-SHA384 signature does not verify over SHA-384"
expect_rc 1 env QSIGN_PKCS11_QUORUM_WAIT=60 "${PT[@]}" --token-label release384 --sign \
	-m ECDSA-SHA256 --label rel384-key -i "$T/msg" -o "$T/sig"
grep -q "CKR_MECHANISM_INVALID" "$T/err" || fail "ECDSA-SHA256 on release384: $(cat "$T/err")"
echo "ok: quorum role with quorum.hashes sha384: CKM_ECDSA_SHA384 waited for 2 approvals, verifies (openssl -sha384)"

# --- the audit log: every signature under the module's principal
expect_rc 0 qsign -p auditor audit search --event signature --principal ci
n=$(grep -c " signature " "$T/out" || true)
# 2 ECDSA + 2 PSS + 2 PKCS#1 + 1 EdDSA + 2 engine + api 2 + threads 200 + fork 3
# + refused 1 + quorum 0 (a request.signed entry)
[ "$n" -ge 215 ] || fail "only $n signature entries: $(tail -5 "$T/out")"
expect_rc 0 qsign -p auditor audit search --event signature --role p11-slow
[ "$(grep -c " signature " "$T/out")" = 1 ] || fail "refused signature in the log: $(cat "$T/out")"
expect_rc 0 qsign -p auditor audit verify
echo "ok: $n signatures in the audit log under ci; audit verify passes"
