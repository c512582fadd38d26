#!/usr/bin/env bash
# Clients pin the server: qsign learns the daemon's identity key on first
# use (no question asked off a terminal) and remembers it per URL in
# $XDG_CONFIG_HOME/qsign/known_servers; a second daemon that claims the
# same identity at the same address, but holds another key, is refused
# before anything is signed for it (no approval, no login); a configured
# key (--server-key) pins without the file.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
qs_setup
qs_start
known=$XDG_CONFIG_HOME/qsign/known_servers
url=ipc://$QSIGN_HOME/qsignd.sock
fp=$(sed -n 's/.* identity server=qsignd-demo .* fingerprint=\(SHA256:[^ ]*\).*/\1/p' "$T/qsignd.log")
[ -n "$fp" ] || fail "qsignd does not log its identity key's fingerprint"

# ------------------------------------------------------------ first use
[ ! -e "$known" ] || fail "known_servers exists before the first use"
expect_rc 0 qsign -p ci info
grep -q "first connection to $url (qsignd-demo): remembered its key $fp in $known" "$T/err" ||
	fail "no first-use notice: $(cat "$T/err")"
grep -q "server key:      $fp" "$T/out" || fail "info does not show the key: $(cat "$T/out")"
[ "$(cat "$known")" = "$url $fp qsignd-demo" ] || fail "known_servers: $(cat "$known")"
[ "$(stat -c %a "$known")" = 600 ] || fail "known_servers mode $(stat -c %a "$known")"
expect_rc 0 qsign -p ci info
[ ! -s "$T/err" ] || fail "notice on second use: $(cat "$T/err")"
expect_rc 0 qsign -p ci --json info
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["server_key"] == sys.argv[2]' "$T/out" "$fp" ||
	fail "info --json server_key"
head -c 300 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "pinned"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id"
echo "ok: first use remembered $fp; the key survives restarts:"
qs_stop
qs_start
expect_rc 0 qsign -p ci info

# ------------------------------------------------------------ an impostor
# Same principals, same identity, same address; its own token and keys.
qs_stop
H2=$T/impostor
mkdir -p "$H2/demo"
cp "$QSIGN_HOME"/demo/* "$H2/demo/"
cp "$QSIGN_HOME/policy.json" "$H2/policy.json"
QSIGN_HOME=$H2 QS_BIN="$QS_BIN" "$QS_SRC/ops/run" --setup-only --no-build >"$T/setup2.log" 2>&1 ||
	{ cat "$T/setup2.log" >&2; fail "impostor set-up"; }
python3 - "$H2/qsignd.json" "$url" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["listen"] = [sys.argv[2]]
assert c["identity"] == "qsignd-demo"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
SOFTHSM2_CONF=$H2/softhsm2.conf qs_start "$H2/qsignd.json"
fp2=$(sed -n 's/.* identity server=qsignd-demo .* fingerprint=\(SHA256:[^ ]*\).*/\1/p' "$T/qsignd.log")
[ -n "$fp2" ] && [ "$fp2" != "$fp" ] || fail "impostor key $fp2"
for cmd in "approve $id" "reject $id -m no" "info" "--accept-new info"; do
	# shellcheck disable=SC2086
	expect_rc 1 qsign -p admin1 $cmd
	grep -q "SERVER KEY CHANGED: the server at $url (identity qsignd-demo) proves key $fp2, but $known line 1 remembers $fp" "$T/err" ||
		fail "$cmd: not refused as a changed key: $(cat "$T/err")"
	grep -q "Check with qsignd's operator" "$T/err" || fail "$cmd: no advice: $(cat "$T/err")"
done
! grep -q "auth.ok\|request.vote" "$T/qsignd.log" || fail "the impostor got a login or a vote"
[ "$(wc -l <"$known")" = 1 ] || fail "known_servers changed: $(cat "$known")"
# A configured key: the impostor's own key passes, the real one does not.
expect_rc 1 qsign -p admin1 --server-key "$fp" info
grep -q "not the configured server key $fp" "$T/err" || fail "--server-key mismatch: $(cat "$T/err")"
expect_rc 2 qsign -p admin1 --server-key "SHA256:nope" info
echo "ok: the impostor ($fp2) is refused: approve, reject, info, --accept-new; nothing reached it"
qs_stop

# ------------------------------------------------------------ the real one again
qs_start
expect_rc 0 qsign -p admin2 approve "$id"
grep -q "approved: signed" "$T/out" || fail "approval after the impostor: $(cat "$T/out")"
expect_rc 0 env QSIGN_SERVER_KEY="$fp" XDG_CONFIG_HOME="$T/nowhere" qsign -p ci info
[ ! -e "$T/nowhere" ] || fail "a configured key wrote a known_servers file"
qs_stop
echo "PASS pinning ($(($(date +%s) - t0)) s)"
