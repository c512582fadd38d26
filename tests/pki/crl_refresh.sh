#!/usr/bin/env bash
# CRLs, and the signed list of enabled device CAs, are re-signed by the
# daemon itself before their nextUpdate / expires (no `qsign ca crl`
# needed), each refresh audited. Time is moved by editing the
# stored CRL's nextUpdate while the daemon is stopped.
. "$QS_SRC/tests/integration/lib.sh"
qs_setup
python3 - "$QSIGN_HOME/qsignd.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["maintenance_s"] = 1
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
qs_start
expect_rc 0 qsign -p admin1 ca create -m "root for the CRL refresh test"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$id"
expect_rc 0 qsign -p admin3 approve "$id"
db=$QSIGN_HOME/state/state.db
n0=$(sqlite3 "$db" "SELECT count(*) FROM doc WHERE ns='pki.crl'")
[ "$n0" -ge 1 ] || fail "no CRL after ca create"
l0=$(sqlite3 "$db" "SELECT count(*) FROM doc WHERE ns='pki.calist'")
[ "$l0" -ge 1 ] || fail "no list of enabled device CAs after ca create"
qs_stop
# The latest CRL now "expires" in a minute: well inside the refresh margin.
sqlite3 "$db" "UPDATE doc SET data = json_set(CAST(data AS TEXT), '\$.next_update', strftime('%s','now') + 60)
	WHERE ns='pki.crl' AND version = (SELECT max(version) FROM doc WHERE ns='pki.crl')"
sqlite3 "$db" "UPDATE doc SET data = json_set(CAST(data AS TEXT), '\$.expires', strftime('%s','now') + 60)
	WHERE ns='pki.calist' AND version = (SELECT max(version) FROM doc WHERE ns='pki.calist')"
qs_start
n=$n0
for _ in $(seq 1 100); do
	n=$(sqlite3 "$db" "SELECT count(*) FROM doc WHERE ns='pki.crl'")
	[ "$n" -gt "$n0" ] && break
	sleep 0.1
done
[ "$n" -gt "$n0" ] || fail "CRL not re-signed before its nextUpdate ($n0 -> $n)"
l=$l0
for _ in $(seq 1 100); do
	l=$(sqlite3 "$db" "SELECT count(*) FROM doc WHERE ns='pki.calist'")
	[ "$l" -gt "$l0" ] && break
	sleep 0.1
done
[ "$l" -gt "$l0" ] || fail "the list of enabled device CAs not re-signed before it expires ($l0 -> $l)"
expect_rc 0 qsign -p auditor audit tail -n 20
grep -q "pki.crl" "$T/out" || fail "refresh not audited"
grep -q "pki.ca_list" "$T/out" || fail "list refresh not audited"
expect_rc 0 qsign -p admin1 ca crl -o "$T"
openssl crl -in "$T"/*.crl.pem -noout -nextupdate >/dev/null || fail "CRL unreadable"
echo "ok: CRL and list of enabled device CAs re-signed by the maintenance timer, audited"
qs_stop
echo PASS
