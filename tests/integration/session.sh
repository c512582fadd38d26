#!/usr/bin/env bash
# A session is bound to the key it authenticated with: a client keeps one
# connection open and signs; a quorum policy change replaces its key; its
# next call on that connection is refused (UNAUTHENTICATED), the connection
# is closed and nothing is signed. A principal that lost a role gets
# PERMISSION_DENIED and its connection is closed too. The new key works.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_start
sock="ipc://$QSIGN_HOME/qsignd.sock"

coproc CI { "$QS_BIN/qs_reauth" "$sock" "$QSIGN_HOME" ci sign UNAUTHENTICATED 2>&1; }
read -r -t 20 line <&"${CI[0]}" || fail "ci did not sign on its connection"
[ "$line" = ready ] || fail "ci: $line"
ci_in=${CI[1]} ci_out=${CI[0]} ci_pid=$CI_PID
coproc AU { "$QS_BIN/qs_reauth" "$sock" "$QSIGN_HOME" auditor checkpoint PERMISSION_DENIED 2>&1; }
read -r -t 20 line <&"${AU[0]}" || fail "auditor did not read the checkpoint"
[ "$line" = ready ] || fail "auditor: $line"

# Version 2: ci gets a new key, auditor loses its auditor role.
expect_rc 0 qsign keygen -o "$T/ci-new.key"
expect_rc 0 qsign -p admin1 policy show
python3 - "$T/out" "$T/v2.json" "$T/ci-new.key" <<'PY'
import json, subprocess, sys
p = json.load(open(sys.argv[1]))
pub = subprocess.run(["openssl", "pkey", "-in", sys.argv[3], "-pubout"], check=True,
                     capture_output=True, text=True).stdout
p["version"] = 2
p["principals"]["ci"]["public_key"] = pub
p["principals"]["auditor"]["roles"] = ["requester"]
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
expect_rc 0 qsign -p admin1 policy propose "$T/v2.json" -m "replace ci's stolen key"
pid=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$pid"
expect_rc 0 qsign -p admin3 approve "$pid"
grep -q "policy.applied version=2" "$T/qsignd.log" || fail "policy v2 not applied"
db=$QSIGN_HOME/state/state.db
nsig() { sqlite3 "$db" "SELECT count(*) FROM signature WHERE principal='ci'"; }
signed_before=$(nsig)
[ "$signed_before" -ge 1 ] || fail "ci's first signature is not recorded"

# client_result FD: the client's lines up to "ok" (its verdict) or its end.
client_result() {
	local said=""
	line=""
	while read -r -t 30 line <&"$1"; do
		[ "$line" = ok ] && return 0
		said="$said $line"
	done
	line=$said
	return 1
}
echo go >&"$ci_in"
client_result "$ci_out" ||
	fail "ci's old-key connection was not refused with UNAUTHENTICATED:$line"
[ "$(nsig)" = "$signed_before" ] || fail "something was signed after the key change"
grep -q 'auth.session_ended .*principal=ci .*reason="key replaced"' "$T/qsignd.log" ||
	fail "no session end logged for ci"
for _ in $(seq 1 40); do
	grep -q 'conn.closed .*reason="session ended"' "$T/qsignd.log" && break
	sleep 0.05
done
grep -q 'conn.closed .*reason="session ended"' "$T/qsignd.log" || fail "connection not closed"
echo done >&"$ci_in"
wait "$ci_pid" || fail "ci client exit status"
echo "ok: a replaced key ends the session on its next call; nothing signed"

echo go >&"${AU[1]}"
client_result "${AU[0]}" || fail "auditor without its role was not refused:$line"
echo done >&"${AU[1]}"
grep -q 'auth.session_ended .*principal=auditor .*reason="lost role(s) auditor"' \
	"$T/qsignd.log" || fail "no session end logged for the auditor's lost role"
echo "ok: a lost role is PERMISSION_DENIED and ends the session"

# The old key cannot come back on a new connection; the new key signs.
dg=$(echo one | sha256sum | cut -c1-64)
expect_rc 1 qsign -p ci sign -r ci-sign -d "$dg"
grep -q UNAUTHENTICATED "$T/err" || fail "old key on a new connection: $(cat "$T/err")"
expect_rc 0 qsign -p ci -i "$T/ci-new.key" sign -r ci-sign -d "$dg"
echo "ok: the new key signs"
qs_stop || fail "unclean stop"
echo PASS
