#!/usr/bin/env bash
# Quorum requests signed with SHA-384 (SubmitRequest.hash): an RSA PKCS#1
# v1.5 role whose quorum.hashes lists sha384, a blob and a digest request
# approved by two admins, each signature verified by openssl over SHA-384;
# the approvals cover the hash (show, audit, audit verify); a hash the role
# does not list, or a mismatching digest, is refused and nothing is made.
. "$(dirname "$0")/lib.sh"
qs_setup
qsign-token keygen -m /usr/lib/softhsm/libsofthsm2.so -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t rsa2048-pkcs1 -l fw-key >/dev/null
qs_policy_edit '
import copy
p["keys"]["fw-key"] = {"uri": "pkcs11:token=qsign-demo;object=fw-key", "algorithm": "rsa2048-pkcs1"}
p["roles"]["firmware"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["firmware"]["keys"] = ["fw-key"]
p["roles"]["firmware"]["payloads"] = ["digest", "blob"]
p["roles"]["firmware"]["quorum"]["hashes"] = ["sha256", "sha384"]'
qs_start
expect_rc 0 qsign -p ci keys --json
python3 -c 'import json,sys; print([k for k in json.load(open(sys.argv[1]))["keys"] if k["name"]=="fw-key"][0]["public_pem"], end="")' \
	"$T/out" >"$T/fw.pem"

# --- a blob, SHA-384
head -c 5000 /dev/urandom >"$T/image"
expect_rc 0 qsign -p ci request submit -r firmware -f "$T/image" --hash sha384 -m "image"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 request show "$id"
grep -q "^signature hash: sha384" "$T/out" || fail "show does not name the hash: $(cat "$T/out")"
expect_rc 0 qsign -p admin1 --json request show "$id"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["hash"] == "sha384", d' "$T/out" ||
	fail "show --json: $(cat "$T/out")"
expect_rc 0 qsign -p admin1 approve "$id"
expect_rc 0 qsign -p admin2 approve "$id"
expect_rc 0 qsign -p ci request fetch "$id" -o "$T/sig"
openssl dgst -sha384 -verify "$T/fw.pem" -signature "$T/sig" "$T/image" >/dev/null ||
	fail "the SHA-384 quorum signature does not verify"
openssl dgst -sha256 -verify "$T/fw.pem" -signature "$T/sig" "$T/image" >/dev/null 2>&1 &&
	fail "the signature verifies over SHA-256"
echo "ok: blob request with --hash sha384, 2 approvals, RSA PKCS#1 signature verifies (openssl -sha384)"

# --- a digest, SHA-384: the payload is the 48-byte digest
openssl dgst -sha384 -binary "$T/image" >"$T/image.sha384"
dg=$(xxd -p -c 100 "$T/image.sha384")
expect_rc 2 qsign -p ci request submit -r firmware -d "$dg"
grep -q "needs a sha256 digest: exactly 64 hex" "$T/err" || fail "96 hex as sha256: $(cat "$T/err")"
expect_rc 0 qsign -p ci request submit -r firmware -d "$dg" --hash sha384 -m "digest"
id2=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$id2"
expect_rc 0 qsign -p admin3 approve "$id2"
expect_rc 0 qsign -p ci request fetch "$id2" -o "$T/sig2"
openssl pkeyutl -verify -pubin -inkey "$T/fw.pem" -in "$T/image.sha384" -sigfile "$T/sig2" \
	-pkeyopt digest:sha384 >/dev/null || fail "the SHA-384 digest signature does not verify"
openssl dgst -sha384 -verify "$T/fw.pem" -signature "$T/sig2" "$T/image" >/dev/null ||
	fail "the digest request's signature is not over SHA-384 of the image"
echo "ok: digest request with --hash sha384 verifies (openssl pkeyutl digest:sha384)"

# --- refused, nothing recorded: a hash the role does not list, a hash on a
# role without quorum.hashes (sha256 only), a digest of another length
expect_rc 0 qsign -p admin1 request list --role firmware --json
before=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["requests"] if isinstance(d, dict) else d))' "$T/out")
expect_rc 1 qsign -p ci request submit -r firmware -f "$T/image" --hash sha512
grep -q "role firmware allows the hashes sha256, sha384: not sha512" "$T/err" || fail "sha512: $(cat "$T/err")"
expect_rc 1 qsign -p ci request submit -r release -f "$T/image" --hash sha384
grep -q "role release allows the hashes sha256: not sha384" "$T/err" || fail "release sha384: $(cat "$T/err")"
expect_rc 2 qsign -p ci request submit -r firmware -f "$T/image" --hash md5
grep -q "sha256, sha384 or sha512" "$T/err" || fail "md5: $(cat "$T/err")"
openssl dgst -sha256 -binary "$T/image" >"$T/image.sha256"
expect_rc 1 qsign -p ci request submit -r firmware -f "$T/image.sha256" -k digest --hash sha384
grep -q "a digest payload is a 48-byte sha384 digest, got 32 bytes" "$T/err" || fail "32-byte sha384: $(cat "$T/err")"
expect_rc 0 qsign -p admin1 request list --role firmware --json
after=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["requests"] if isinstance(d, dict) else d))' "$T/out")
[ "$before" = "$after" ] || fail "a refused submission was recorded ($before -> $after)"
echo "ok: sha512 (not listed), sha384 on a sha256-only role, md5, a short digest: refused, nothing recorded"

# --- the audit log names the hash; audit verify re-verifies the SHA-384 votes
expect_rc 0 qsign -p auditor --json audit search --event request.submitted
python3 - "$T/out" "$id" "$id2" <<'PY' || fail "audit: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
es = [e.get("fields", e) for e in (d["entries"] if isinstance(d, dict) else d)]
h = {e["id"]: e["hash"] for e in es}
assert h[sys.argv[2]] == "sha384" and h[sys.argv[3]] == "sha384", h
PY
expect_rc 0 qsign -p auditor --json audit search --event request.signed
python3 - "$T/out" "$id" <<'PY' || fail "audit request.signed: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
es = [e.get("fields", e) for e in (d["entries"] if isinstance(d, dict) else d)]
assert [e["hash"] for e in es if e["id"] == sys.argv[2]] == ["sha384"], es
PY
expect_rc 0 qsign -p auditor audit verify
echo "ok: request.submitted and request.signed name sha384; audit verify passes"
