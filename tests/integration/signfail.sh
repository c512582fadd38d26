#!/usr/bin/env bash
# A Sign's audit entry is committed while the token signs. When the token
# then fails, the client gets an error and no signature, and the log says
# so: the "signature" entry is followed by a "signature.failed" entry naming
# its seq. Two failures, made behind the daemon's back by another process:
#   - ci-key deleted from the token: refused (no such key);
#   - ci-key then re-created under the same label and CKA_ID: refused, the
#     token holds another key than the one qsignd published and logs (its
#     public key differs), until qsignd is restarted, which adopts it.
# The log verifies and the daemon keeps serving throughout. Run with the
# tokens in signer helpers (default) and in process ("signers": 0).
. "$(dirname "$0")/lib.sh"
qs_setup
dg() { printf '%s' "$1" | sha256sum | cut -c1-64; }
cp "$QSIGN_HOME/qsignd.json" "$QSIGN_HOME/split.json"
python3 - "$QSIGN_HOME/qsignd.json" "$QSIGN_HOME/inproc.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["signers"] = 0
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
delete_key() { # both halves, as a key ceremony gone wrong would
	for type in privkey pubkey; do
		pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label qsign-demo --login \
			--pin "$(cat "$QSIGN_HOME/user.pin")" --delete-object --type "$type" --label ci-key \
			>/dev/null 2>&1 || fail "pkcs11-tool could not delete the $type of ci-key"
	done
}
check_failed() { # mode digest: one signature entry, followed by its signature.failed
	python3 - "$T/exp-$1/entries.jsonl" "$2" <<'PY' || fail "$1: no signature.failed entry for the failed signing"
import json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
d = sys.argv[2]
sig = [e for e in es if e["event"] == "signature" and e["digest"] == d]
assert len(sig) == 1, f"signature entries for {d}: {sig}"
failed = [e for e in es if e["event"] == "signature.failed" and e["entry"] == sig[0]["seq"]]
assert len(failed) == 1, f"signature.failed for seq {sig[0]['seq']}: {failed}"
f = failed[0]
assert f["seq"] > sig[0]["seq"] and f["digest"] == d and f["principal"] == "ci" and f["reason"], f
print(f"ok: entry {sig[0]['seq']} (signature) is followed by {f['seq']} (signature.failed: {f['reason'][:90]})")
PY
}
refused() { # mode digest what: the Sign fails, nothing is printed, the log says why
	expect_rc 1 qsign -p ci sign -r ci-sign -d "$2" --format hex
	[ ! -s "$T/out" ] || fail "$1: a signature was printed ($3): $(cat "$T/out")"
	grep -q "$4" "$T/err" || fail "$1 ($3): unexpected error: $(cat "$T/err")"
	kill -0 "$QSIGND_PID" || fail "$1: qsignd died"
	rm -rf "$T/exp-$1"
	expect_rc 0 qsign -p auditor audit export -o "$T/exp-$1"
	check_failed "$1" "$2"
	expect_rc 0 qsign -p auditor audit verify --state "$T/$1.state"
}
for mode in split inproc; do
	qs_start "$QSIGN_HOME/$mode.json"
	expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg "$mode ok")" --format hex
	id=$(qsign-token list -u pkcs11:token=qsign-demo -P "file:$QSIGN_HOME/user.pin" | awk '$2 == "ci-key" {print $3}')
	[ -n "$id" ] || fail "no CKA_ID for ci-key"

	delete_key
	refused "$mode" "$(dg "$mode lost key")" "key deleted" "no private key"

	# Same label, same CKA_ID, another key pair.
	qsign-token keygen -u pkcs11:token=qsign-demo -P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 \
		-l ci-key --id "$id" >/dev/null || fail "keygen of the replacement"
	refused "$mode" "$(dg "$mode replaced key")" "key replaced" "another key"
	echo "ok ($mode): a deleted and a replaced key are refused, each failure logged"

	# A restart adopts the new key: ListKeys publishes it and it verifies.
	qs_stop || fail "$mode: unclean stop"
	qs_start "$QSIGN_HOME/$mode.json"
	printf '%s' "$mode after restart" >"$T/blob"
	expect_rc 0 qsign -p ci sign -r ci-sign -f "$T/blob" -o "$T/blob.sig"
	qsign -p ci keys --json | python3 -c 'import json,sys; print([k for k in json.load(sys.stdin)["keys"] if k["name"]=="ci-key"][0]["public_pem"], end="")' >"$T/ci.pem"
	openssl dgst -sha256 -verify "$T/ci.pem" -signature "$T/blob.sig" "$T/blob" >/dev/null ||
		fail "$mode: the signature after the restart does not verify with the published key"
	qs_stop || fail "$mode: unclean stop"
	echo "ok ($mode): after a restart the new key signs and is the one published"
done
echo PASS
