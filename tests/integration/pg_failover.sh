#!/usr/bin/env bash
# The PostgreSQL primary dies under load and its synchronous standby is
# promoted (what Patroni or an operator does): qsignd, given both hosts in
# its conninfo (target_session_attrs=read-write), fails closed while there
# is no primary (UNAVAILABLE, no signature released), finds the promoted
# standby by itself (no restart), and nothing it acknowledged is lost: every
# signature a client was given, and a quorum request with its votes.
. "$(dirname "$0")/lib.sh"
. "$QS_SRC/ops/pg.sh"
pg_start P || fail "cannot start the primary"
pg_start_standby S P || fail "cannot start the synchronous standby"
qs_setup
qs_use_pg "$QSIGN_HOME/qsignd.json" "host=$PG_P_SOCK,$PG_S_SOCK port=5432 user=postgres dbname=qsign connect_timeout=2"
qs_start
dg() { head -c 32 /dev/urandom | sha256sum | cut -c1-64; }

# A quorum request with one vote, acknowledged before the primary dies.
head -c 300 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "across the failover"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id"

load() { # sign until told to stop; record what was acknowledged
	local d
	: >"$T/acked"
	while [ ! -f "$T/stop" ]; do
		d=$(dg)
		if qsign -p ci sign -r ci-sign -d "$d" --format hex >/dev/null 2>&1; then
			echo "$d" >>"$T/acked"
		fi
	done
}
load &
lp=$!
sleep 2
[ -s "$T/acked" ] || fail "no signature before the primary died"
pg_kill9 P
# No primary: a write fails closed, nothing released.
d=$(dg)
expect_rc 1 qsign -p ci sign -r ci-sign -d "$d" --format hex
grep -qi unavailable "$T/err" || fail "not UNAVAILABLE without a primary: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "a signature was released without a primary"
t0=$(date +%s%N)
pg_promote S || fail "promotion failed"
ok=0
for _ in $(seq 1 100); do
	if qsign -p ci sign -r ci-sign -d "$d" --format hex >"$T/out" 2>"$T/err"; then ok=1; break; fi
	sleep 0.1
done
[ "$ok" = 1 ] || fail "qsignd did not find the promoted standby: $(cat "$T/err")"
echo "first signature $((($(date +%s%N) - t0) / 1000000)) ms after the promotion began"
sleep 1
touch "$T/stop"
wait "$lp"
pg_psql S "SELECT encode(digest, 'hex') FROM qsign.signature" | sort >"$T/stored"
sort -u "$T/acked" | comm -23 - "$T/stored" >"$T/lost"
[ ! -s "$T/lost" ] || fail "acknowledged signatures lost in the failover: $(wc -l <"$T/lost") of $(wc -l <"$T/acked")"
echo "ok: $(wc -l <"$T/acked") acknowledged signatures, all on the promoted standby"
expect_rc 0 qsign -p admin2 approve "$id"
[ "$(pg_psql S "SELECT state FROM qsign.request WHERE id = '$id'")" = 3 ] || fail "the request did not complete after the failover"
[ "$(pg_psql S "SELECT count(*) FROM qsign.vote WHERE request = '$id'")" = 2 ] || fail "votes: $(pg_psql S "SELECT approver FROM qsign.vote WHERE request = '$id'")"
echo "ok: the vote acknowledged before the failover counted after it"
kill -0 "$QSIGND_PID" || fail "qsignd died"
grep -q "qsignd: ready" "$T/qsignd.log" && [ "$(grep -c "qsignd: ready" "$T/qsignd.log")" = 1 ] || fail "qsignd restarted"
echo PASS
