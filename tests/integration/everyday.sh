#!/usr/bin/env bash
# The everyday commands against a real qsignd and SoftHSM token: one way to
# submit and wait for every quorum request (request submit, policy propose,
# tuf, ca), keys NAME and verify (checked against OpenSSL), the suggestions
# mistakes get, request list, metrics --json, help and completion from the
# command table.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_start
approve2() {
	qsign -p admin2 approve "$1" >/dev/null && qsign -p admin3 approve "$1" >/dev/null
}
# wait_for_id FILE: the id a background `... --wait` printed first (up to
# 60 s: a sanitizer build on a busy machine connects slowly).
wait_for_id() {
	for _ in $(seq 1 1200); do
		[ -s "$1" ] && { head -1 "$1"; return 0; }
		sleep 0.05
	done
	fail "no request id in $1"
}

# --- one way to wait: the same form for every submitting command
head -c 3000 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "release 5.0"
id=$(cat "$T/out")
[ ${#id} = 32 ] || fail "submit: not an id on stdout: $id"
grep -q "^qsign: request $id submitted (role release, kind blob): 0/2 approvals" "$T/err" ||
	fail "submit: progress line: $(cat "$T/err")"
grep -q "^qsign: next: approvers review it with \`qsign request show $id\` and vote with \`qsign approve $id\`; \`qsign request wait $id\` follows it; then \`qsign request fetch $id -o FILE\` writes the signature" "$T/err" ||
	fail "submit: next step: $(cat "$T/err")"
echo "ok: request submit prints the id and the next step"

qsign -p ci request submit -r release -f "$T/payload" -m "release 5.1" --wait \
	>"$T/w.out" 2>"$T/w.err" &
wpid=$!
id=$(wait_for_id "$T/w.out")
approve2 "$id"
rc=0; wait "$wpid" || rc=$?
[ "$rc" = 0 ] || fail "submit --wait exit $rc: $(cat "$T/w.err")"
[ "$(cat "$T/w.out")" = "$id" ] || fail "submit --wait: stdout is the id only"
[ "$(grep -c "0/2 approvals" "$T/w.err")" = 1 ] || fail "submit --wait: progress shown twice: $(cat "$T/w.err")"
grep -q "^approved: signed" "$T/w.err" || fail "submit --wait: not signed: $(cat "$T/w.err")"
dg=$(sha256sum "$T/payload" | cut -c1-64)
grep -q "^qsign: done: payload sha256 $dg signed by release-key (ecdsa-p256); \`qsign request fetch $id -o FILE\` writes the signature" "$T/w.err" ||
	fail "submit --wait: what was signed: $(cat "$T/w.err")"
echo "ok: request submit --wait follows it and says what was signed"

# --json --wait: one document, the ended request with its result.
qsign -p ci --json request submit -r release -d "$dg" --wait=60 >"$T/w.out" 2>"$T/w.err" &
wpid=$!
for _ in $(seq 1 1200); do grep -q "submitted\|approvals" "$T/w.err" 2>/dev/null && break; sleep 0.05; done
expect_rc 0 qsign -p admin1 --json request list --state pending
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"][0]["id"])' "$T/out")
approve2 "$id"
wait "$wpid" || fail "submit --json --wait: $(cat "$T/w.err")"
python3 - "$T/w.out" "$id" "$dg" <<'PY' || fail "submit --json --wait document: $(cat "$T/w.out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["id"] == sys.argv[2] and d["state"] == "signed", d
assert "request fetch" in d["next"], d
assert d["result"]["what"] == "digest " + sys.argv[3] + " signed by release-key (ecdsa-p256)", d["result"]
PY
echo "ok: --json --wait prints the ended request with its result"

# --wait that times out: exit 3, as request wait.
expect_rc 3 qsign -p ci request submit -r release -d "$dg" --wait=1
grep -q "still pending after 1 s" "$T/err" || fail "--wait=1: $(cat "$T/err")"
expect_rc 2 qsign -p ci request submit -r release -d "$dg" --wait=soon
grep -q -- "--wait=SECONDS needs whole seconds" "$T/err" || fail "--wait=soon: $(cat "$T/err")"
echo "ok: --wait=SECONDS bounds the wait (exit 3); a bad value is a usage error"

# A rejected request: --wait exits 1 and says how it ended.
qsign -p ci request submit -r release -d "$dg" --wait >"$T/w.out" 2>"$T/w.err" &
wpid=$!
id=$(wait_for_id "$T/w.out")
qsign -p admin1 reject "$id" -m no >/dev/null
qsign -p admin2 reject "$id" -m no >/dev/null
rc=0; wait "$wpid" || rc=$?
[ "$rc" = 1 ] || fail "rejected --wait exit $rc"
grep -q "request $id ended rejected" "$T/w.err" || fail "rejected --wait: $(cat "$T/w.err")"
echo "ok: --wait on a rejected request exits 1"

# The same form and --wait for the other submitting commands.
# submit_wait WHO ARGS...: run a submitting command with --wait in the
# background, approve it with admin2 and admin3, check its exit and its
# id-then-next-step form; $T/w.err holds what it said.
submit_wait() {
	local who=$1 wpid rc=0 id
	shift
	: >"$T/w.out"
	qsign -p "$who" "$@" --wait >"$T/w.out" 2>"$T/w.err" &
	wpid=$!
	id=$(wait_for_id "$T/w.out")
	approve2 "$id"
	wait "$wpid" || rc=$?
	[ "$rc" = 0 ] || fail "$* --wait: exit $rc: $(cat "$T/w.err")"
	grep -q "^qsign: request $id submitted (role [a-z0-9-]*, kind [a-z.-]*): 0/2 approvals" "$T/w.err" ||
		fail "$*: no submitted line: $(cat "$T/w.err")"
	grep -q "^qsign: next: approvers review it with \`qsign request show $id\` and vote with \`qsign approve $id\`; " "$T/w.err" ||
		fail "$*: no next step: $(cat "$T/w.err")"
	SUBMITTED=$id
}
expect_rc 0 qsign -p admin1 policy show
python3 - "$T/out" "$T/v2.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["version"] = 2; p["comment"] = "version 2"
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
submit_wait admin1 policy propose "$T/v2.json" -m v2
grep -q "^qsign: done: policy version 2 is in force; \`qsign policy show\` prints it" "$T/w.err" ||
	fail "policy propose --wait: $(cat "$T/w.err")"
echo "ok: policy propose --wait: applied, version 2 in force"

submit_wait admin1 tuf init -m "first root"
tufdir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tuf"]["repositories"]["ci"])' "$T/v2.json")
grep -q "^qsign: done: root version 1 (CI) and 1 (production) published; on the server in $tufdir/metadata and " "$T/w.err" ||
	fail "tuf init --wait: $(cat "$T/w.err")"
[ -f "$tufdir/metadata/1.root.json" ] || fail "tuf init: no 1.root.json where it said"
echo "ok: tuf init --wait: says which root versions were published and where"

echo 'firmware 5' >"$T/fw.bin"
expect_rc 0 qsign -p ci tuf push-targets "$T/fw.bin"
submit_wait ci tuf promote -m "release 5" fw.bin
grep -q "^qsign: done: production targets version 2 published; on the server in .*/tuf/prod/metadata" "$T/w.err" ||
	fail "tuf promote --wait: $(cat "$T/w.err")"
echo "ok: tuf promote --wait: production targets published"

submit_wait admin1 ca create -m "factory root"
grep -q "^qsign: done: certificate .*CN=Factory-CA.*, serial [0-9A-F]*; \`qsign ca fetch $SUBMITTED -o FILE\` writes it" "$T/w.err" ||
	fail "ca create --wait: $(cat "$T/w.err")"
echo "ok: ca create --wait: names the certificate and how to fetch it"

expect_rc 0 qsign -p admin1 --json ca add-device-ca --online line-1
python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
assert len(d["id"]) == 32 and d["state"] == "pending" and "ca fetch" in d["next"], d' "$T/out" ||
	fail "ca --json: the REQUEST with next: $(cat "$T/out")"
echo "ok: ca --json prints the request and the next step"

# --- keys NAME [--pem]; verify, against OpenSSL's verdict
expect_rc 0 qsign -p ci keys ci-key --pem
cp "$T/out" "$T/ci-key.pem"
openssl pkey -pubin -in "$T/ci-key.pem" -noout 2>/dev/null || fail "keys --pem: not a PEM public key"
expect_rc 0 qsign -p ci --json keys
python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
k=[k for k in d["keys"] if k["name"]=="ci-key"][0]
assert k["public_pem"] == open(sys.argv[2]).read(), "keys --pem differs from the listed key"' "$T/out" "$T/ci-key.pem" ||
	fail "keys --pem is not the key keys --json lists"
expect_rc 0 qsign -p ci keys ci-key
[ "$(head -1 "$T/out")" = ci-key ] && ! grep -q "^release-key" "$T/out" || fail "keys NAME: $(cat "$T/out")"
expect_rc 0 qsign -p ci --json keys release-key
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [k["name"] for k in d["keys"]] == ["release-key"], d' "$T/out" ||
	fail "keys NAME --json"
expect_rc 1 qsign -p ci keys no-such-key
grep -q "no key no-such-key in the policy; the keys are:" "$T/err" && grep -q "ci-key" "$T/err" ||
	fail "keys unknown NAME: $(cat "$T/err")"
expect_rc 2 qsign -p ci keys --pem
grep -q -- "--pem needs the key's NAME" "$T/err" || fail "keys --pem without NAME: $(cat "$T/err")"
echo "ok: keys NAME, --pem (the key --json lists), unknown NAME lists the keys"

echo 'firmware 1.2.3' >"$T/fw.bin"
expect_rc 0 qsign -p ci sign -r ci-sign -f "$T/fw.bin" -o "$T/fw.sig"
openssl dgst -sha256 -verify "$T/ci-key.pem" -signature "$T/fw.sig" "$T/fw.bin" >/dev/null ||
	fail "OpenSSL does not verify the signature"
expect_rc 0 qsign -p ci verify -r ci-sign -f "$T/fw.bin" -s "$T/fw.sig"
grep -q "^Verified OK (key ci-key, ecdsa-p256, key id [0-9a-f]\{64\})" "$T/out" || fail "verify: $(cat "$T/out")"
expect_rc 0 qsign -p auditor verify -k ci-key -f "$T/fw.bin" -s "$T/fw.sig"
# the same signature in hex and base64, and over the digest
for fmt in hex base64; do
	expect_rc 0 qsign -p ci sign -r ci-sign -f "$T/fw.bin" -o "$T/fw.$fmt" --format "$fmt"
	expect_rc 0 qsign -p ci verify -k ci-key -f "$T/fw.bin" -s "$T/fw.$fmt"
done
expect_rc 0 qsign -p ci verify -k ci-key -d "$(sha256sum "$T/fw.bin" | cut -c1-64)" -s "$T/fw.sig"
expect_rc 0 qsign -p ci --json verify -r ci-sign -f "$T/fw.bin" -s "$T/fw.sig"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified"] is True and d["key"] == "ci-key", d' "$T/out" ||
	fail "verify --json"
echo "ok: verify: what OpenSSL verifies (DER, hex, base64, file or digest)"

# Attacker's side: another file, a flipped signature byte, the wrong key.
echo 'firmware 6.6.6' >"$T/evil.bin"
expect_rc 1 qsign -p ci verify -r ci-sign -f "$T/evil.bin" -s "$T/fw.sig"
grep -q "^Verification FAILURE" "$T/out" || fail "verify of another file: $(cat "$T/out")"
! openssl dgst -sha256 -verify "$T/ci-key.pem" -signature "$T/fw.sig" "$T/evil.bin" >/dev/null 2>&1 ||
	fail "OpenSSL verifies another file?"
python3 -c '
import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[-3]^=1; open(sys.argv[2],"wb").write(b)' "$T/fw.sig" "$T/bad.sig"
expect_rc 1 qsign -p ci verify -r ci-sign -f "$T/fw.bin" -s "$T/bad.sig"
expect_rc 1 qsign -p ci verify -k release-key -f "$T/fw.bin" -s "$T/fw.sig"
expect_rc 1 qsign -p ci --json verify -k release-key -f "$T/fw.bin" -s "$T/fw.sig"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified"] is False, d' "$T/out" ||
	fail "verify --json of a bad signature"
expect_rc 2 qsign -p ci verify -r ci-sign -f "$T/fw.bin" -s "$T/none.sig"
expect_rc 2 qsign -p ci verify -r ci-sign -f "$T/fw.bin"
grep -q "verify needs -s SIG" "$T/err" || fail "verify without -s: $(cat "$T/err")"
echo "ok: verify refuses another file, a modified signature and the wrong key (exit 1)"

# --- mistakes get suggestions
expect_rc 2 qsign -p ci sing -r ci-sign -f "$T/fw.bin"
grep -q "unknown command sing: did you mean sign?" "$T/err" || fail "unknown command: $(cat "$T/err")"
expect_rc 2 qsign -p ci request lst
grep -q "unknown request subcommand lst: did you mean list?" "$T/err" || fail "unknown subcommand: $(cat "$T/err")"
expect_rc 2 qsign ca revoke-dev
grep -q "did you mean revoke-device?" "$T/err" || fail "prefix: $(cat "$T/err")"
expect_rc 2 qsign help tuf promot
grep -q "did you mean promote?" "$T/err" || fail "help suggestion: $(cat "$T/err")"
expect_rc 2 qsign zzzzzz
grep -q "unknown command zzzzzz (see qsign --help)" "$T/err" && ! grep -q "did you mean" "$T/err" ||
	fail "no suggestion for nonsense: $(cat "$T/err")"
for cmd in "sign -r ci-sign" "request submit -r release" "verify -r ci-sign -s $T/fw.sig"; do
	# shellcheck disable=SC2086
	expect_rc 2 qsign -p ci $cmd
	grep -q "needs -f FILE or -d HEX" "$T/err" || fail "$cmd without -f: $(cat "$T/err")"
done
expect_rc 2 qsign -p ci sign -r ci-sign -f "$T/fw.bin" -d "$dg"
grep -q "sign takes -f FILE or -d HEX, not both" "$T/err" || fail "both -f and -d: $(cat "$T/err")"
expect_rc 1 qsign -p ci sign -r ci-sgn -f "$T/fw.bin"
grep -q 'no role "ci-sgn"' "$T/err" && grep -q "^qsign: your roles: .*ci-sign" "$T/err" ||
	fail "unknown role: $(cat "$T/err")"
expect_rc 1 qsign -p ci request show 0123456789abcdef0123456789abcdef
grep -q "\`qsign request list\` shows the requests you may see" "$T/err" || fail "unknown request: $(cat "$T/err")"
expect_rc 1 qsign -p ci request wait 0123456789abcdef0123456789abcdef
grep -q "qsign request list" "$T/err" || fail "unknown request (wait): $(cat "$T/err")"
expect_rc 2 qsign -p bob info
grep -q "unknown principal bob: no key .*/demo/bob.key" "$T/err" &&
	grep -q "principals with a key in .*/demo: .*admin1.*ci" "$T/err" || fail "unknown principal: $(cat "$T/err")"
grep -q "auth.*principal=bob" "$T/qsignd.log" && fail "unknown principal: something was sent"
echo "ok: suggestions: closest command and subcommand, missing -f, your roles, request list, unknown principal (2)"

# --- request list: header, message column, "no requests"
expect_rc 0 qsign -p admin1 request list --state cancelled
[ "$(cat "$T/out")" = "no requests" ] || fail "empty list: $(cat "$T/out")"
expect_rc 0 qsign -p ci request submit -r release -d "$dg" -m "$(printf 'a long message about release 7.0, with enough words to be cut short')"
lid=$(cat "$T/out")
expect_rc 0 qsign -p admin1 request list --state pending
head -1 "$T/out" | grep -q "^ID  *STATE  *ROLE  *KIND  *SUBMITTER  *APPROVALS  *EXPIRES  *MESSAGE$" ||
	fail "list header: $(head -1 "$T/out")"
grep -q "^$lid  *pending  *release  *digest  *ci  *0/2  *20[0-9-]*T[0-9:]*Z  *a long message about release 7.0, with enough wo\.\.\.$" "$T/out" ||
	fail "list row: $(cat "$T/out")"
echo "ok: request list: header, message column (cut), no requests"

# --- metrics --json: structured
expect_rc 0 qsign -p auditor metrics
cp "$T/out" "$T/metrics.txt"
expect_rc 0 qsign -p auditor --json metrics
python3 - "$T/out" "$T/metrics.txt" <<'PY' || fail "metrics --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ready"] is True and "text" not in d, d.keys()
m = d["metrics"]
fam = m["qsign_signatures_total"]
assert fam["type"] == "counter" and fam["help"], fam
s = [x for x in fam["samples"] if x["labels"].get("role") == "ci-sign"]
assert s and s[0]["value"] >= 3, fam
# every sample of the earlier text is in the JSON (later calls add some)
names = {x["name"] for f in m.values() for x in f["samples"]}
lost = [l for l in open(sys.argv[2]) if l.strip() and not l.startswith("#")
        and l.split("{")[0].split(" ")[0] not in names]
assert not lost, lost
assert any(x["labels"] for f in m.values() for x in f["samples"]), "no labels"
PY
echo "ok: metrics --json: families with type, help and labelled samples"
