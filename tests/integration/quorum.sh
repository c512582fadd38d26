#!/usr/bin/env bash
# 2-of-3 end to end through the CLI, one admin's key in its own SoftHSM
# token (not a file); kill -9 between approvals and after the final one;
# a crash between "approved" and "signed" is resumed at start; a store
# edited to "approved" without the votes is refused.
. "$(dirname "$0")/lib.sh"
qs_setup
module=/usr/lib/softhsm/libsofthsm2.so
(umask 077; openssl rand -hex 8 >"$T/a3so.pin"; openssl rand -hex 8 >"$T/a3.pin")
qsign-token init --module "$module" --label admin3-token --so-pin-file "$T/a3so.pin" \
	--pin-file "$T/a3.pin" >/dev/null
qsign-token keygen -m "$module" -u "pkcs11:token=admin3-token" -P "file:$T/a3.pin" \
	-t ecdsa-p256 -l admin3 >/dev/null
qsign-token pubkey -m "$module" -u "pkcs11:token=admin3-token;object=admin3" \
	-P "file:$T/a3.pin" -o "$T/admin3.pem"
qs_policy_edit 'p["principals"]["admin3"]["public_key"] = open("'"$T"'/admin3.pem").read()'
a3=(-p admin3 -i "pkcs11:token=admin3-token;object=admin3")
export QSIGN_PIN_FILE=$T/a3.pin
qs_start

head -c 3000 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "release 2.0"
id=$(cat "$T/out")
[ ${#id} = 32 ] || fail "submit did not print a request id: $id"
expect_rc 0 qsign -p admin1 request show "$id"
grep -q "$(sha256sum "$T/payload" | cut -c1-64)" "$T/out" || fail "show lacks the payload digest"
expect_rc 0 qsign -p admin1 approve "$id"
grep -q "1/2" "$T/out" || fail "progress after one approval: $(cat "$T/out")"
expect_rc 1 qsign -p ci request fetch "$id"
echo "ok: one approval, nothing signed"

qs_kill9
qs_start
expect_rc 0 qsign -p admin1 --json request show "$id"
python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
d = d.get("request", d)
assert d["state"] in ("pending", "REQ_PENDING", 1), d["state"]
assert len(d["votes"]) == 1 and d["votes"][0]["approver"] == "admin1", d["votes"]
' "$T/out" || fail "after kill -9 the acknowledged approval is not there"
echo "ok: kill -9 between approvals kept the vote"

expect_rc 0 qsign "${a3[@]}" approve "$id"
qs_kill9
qs_start
expect_rc 0 qsign -p ci request fetch "$id" -o "$T/sig"
expect_rc 0 qsign -p ci keys --json
python3 -c 'import json,sys; print([k for k in json.load(open(sys.argv[1]))["keys"] if k["name"]=="release-key"][0]["public_pem"], end="")' \
	"$T/out" >"$T/release.pem"
openssl dgst -sha256 -verify "$T/release.pem" -signature "$T/sig" "$T/payload" >/dev/null ||
	fail "release signature does not verify"
echo "ok: token-held admin key approved; signed; survives kill -9; verifies with OpenSSL"

# A crash between the two transactions (state APPROVED, no signature yet):
# reproduce that exact on-disk state, then start: the daemon finishes it.
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "resume me"
id2=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id2"
expect_rc 0 qsign -p admin2 approve "$id2"
qs_stop
db=$QSIGN_HOME/state/state.db
sqlite3 "$db" "DELETE FROM request_sig WHERE request='$id2'; UPDATE request SET state=2 WHERE id='$id2';"
qs_start
grep -q "request.resume id=$id2" "$T/qsignd.log" || fail "approved request not resumed"
expect_rc 0 qsign -p ci request fetch "$id2" -o "$T/sig2"
openssl dgst -sha256 -verify "$T/release.pem" -signature "$T/sig2" "$T/payload" >/dev/null ||
	fail "resumed signature does not verify"
echo "ok: approved-but-unsigned request finished at start"

# A request flipped to APPROVED by hand with one vote: refused, not signed.
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "tampered"
id3=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id3"
qs_stop
sqlite3 "$db" "UPDATE request SET state=2 WHERE id='$id3';"
qs_start
expect_rc 1 qsign -p ci request fetch "$id3"
[ "$(sqlite3 "$db" "SELECT state FROM request WHERE id='$id3'")" = 7 ] || fail "tampered request not FAILED"
[ "$(sqlite3 "$db" "SELECT count(*) FROM request_sig WHERE request='$id3'")" = 0 ] ||
	fail "tampered request was signed"
echo "ok: a hand-edited 'approved' without the votes is refused"

# wait: returns 0 once signed, 1 when the request ends otherwise.
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "wait for me"
id4=$(cat "$T/out")
qsign -p ci request wait "$id4" --timeout 30 >"$T/wait.out" 2>&1 &
wpid=$!
sleep 1
expect_rc 0 qsign -p admin2 approve "$id4"
expect_rc 0 qsign "${a3[@]}" approve "$id4"
rc=0; wait "$wpid" || rc=$?
[ "$rc" = 0 ] || { cat "$T/wait.out" >&2; fail "request wait exited $rc"; }
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "to cancel"
id5=$(cat "$T/out")
expect_rc 0 qsign -p ci request cancel "$id5"
expect_rc 1 qsign -p ci request wait "$id5" --timeout 5
expect_rc 1 qsign -p admin1 approve "$id5"
echo "ok: wait / cancel"
qs_stop
echo PASS
