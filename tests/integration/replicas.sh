#!/usr/bin/env bash
# Two qsignd replicas on one PostgreSQL database, each with its own copy of
# the SoftHSM token directory (the same keys, as an HSM cluster would have):
#  - a signature through either replica is recorded in the shared store;
#  - approvals racing through both replicas execute a request exactly once
#    (one signature, one request.signed), and never leave it stuck PENDING;
#  - kill -9 of one replica under load: the other keeps serving, and every
#    signature a client was given is in the store;
#  - the database killed: writes fail closed (UNAVAILABLE, nothing
#    released); restarted: the replicas reconnect by themselves;
#  - a request another process is executing (its execution claim held)
#    is not executed a second time; when the claim goes with its holder,
#    a replica resumes the request and signs it once;
#  - clients that list both replicas go on through B when A dies: at
#    connect time (qsign -s A -s B, QSIGN_SERVER=A,B) and on a connection
#    opened to A before (the library leaves a server whose connection
#    dropped before it sends anything);
#  - a replica killed while it executes a request (after logging its
#    signature): another replica finds the orphan by itself and releases
#    the signature the dead one logged in the shared audit log;
#  - a policy change applied through A is in force on B at B's next call,
#    without a restart (B's signer helpers take it with its approvals).
. "$(dirname "$0")/lib.sh"
. "$QS_SRC/ops/pg.sh"
pg_start DB || fail "cannot start PostgreSQL"
qs_setup
qs_use_pg "$QSIGN_HOME/qsignd.json" "$PG_DB_CONNINFO"

HA=$QSIGN_HOME
HB=$T/homeB
cp -a "$HA" "$HB"
sed -i "s|$HA|$HB|g" "$HB/softhsm2.conf" "$HB/qsignd.json"
grep -q "$HB/" "$HB/softhsm2.conf" || fail "replica B's token directory is not its own"
SA=ipc://$HA/qsignd.sock
SB=ipc://$HB/qsignd.sock
. "$(dirname "$0")/replicas_lib.sh"
kill9_replica() {
	kill -9 "${PID[$1]}"
	wait "${PID[$1]}" 2>/dev/null || true
	mv "$T/$1.log" "$T/$1.log.$(date +%s%N)"
	PID[$1]=""
}
trap 'stop_replicas; qs_cleanup' EXIT

start_replica A "$HA"
start_replica B "$HB"
psql_q() { pg_psql DB "$1"; }

# --- a signature through each replica lands in the one store
for s in "$SA" "$SB"; do
	dg=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
	expect_rc 0 qsign -s "$s" -p ci sign -r ci-sign -d "$dg" --format hex
	[ "$(psql_q "SELECT count(*) FROM qsign.signature WHERE digest = '\\x$dg'")" = 1 ] ||
		fail "signature through $s not in the shared store"
done
echo "ok: both replicas record signatures in the shared store"

# --- approvals racing through both replicas: executed once
for round in 1 2 3 4 5; do
	head -c 500 /dev/urandom >"$T/payload$round"
	expect_rc 0 qsign -s "$SA" -p ci request submit -r release -f "$T/payload$round" -m "race $round"
	id=$(cat "$T/out")
	# admin1 through A, admin2 through B, at the same moment
	qsign -s "$SA" -p admin1 approve "$id" >"$T/v1" 2>&1 &
	p1=$!
	qsign -s "$SB" -p admin2 approve "$id" >"$T/v2" 2>&1 &
	p2=$!
	wait "$p1" || fail "admin1's approval through A failed: $(cat "$T/v1")"
	wait "$p2" || fail "admin2's approval through B failed: $(cat "$T/v2")"
	st=$(psql_q "SELECT state FROM qsign.request WHERE id = '$id'")
	[ "$st" = 3 ] || fail "round $round: request $id is in state $st, not SIGNED (3)"
	[ "$(psql_q "SELECT count(*) FROM qsign.request_sig WHERE request = '$id'")" = 1 ] ||
		fail "round $round: not exactly one signature"
	n=$(cat "$T"/A.log* "$T"/B.log* | grep "request.signed" | grep -c "id=$id" || true)
	[ "$n" = 1 ] || fail "round $round: $n request.signed events for $id"
	expect_rc 0 qsign -s "$SB" -p ci request fetch "$id" -o "$T/sig$round"
done
echo "ok: 5 rounds of approvals racing through two replicas: each request signed once"

# --- an execution claim held elsewhere: not executed twice; resumed when it goes
head -c 300 /dev/urandom >"$T/claimed"
expect_rc 0 qsign -s "$SA" -p ci request submit -r release -f "$T/claimed" -m "claimed elsewhere"
id=$(cat "$T/out")
# What a replica does while it executes a request: hold its claim (an
# advisory lock in a session of its own), here for at most 20 s.
pg_psql DB "SELECT pg_advisory_lock(1903388466, hashtext('$id')), pg_sleep(20)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 100); do
	[ "$(psql_q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1903388466 AND granted")" = 1 ] && break
	sleep 0.1
done
expect_rc 0 qsign -s "$SA" -p admin1 approve "$id"
expect_rc 0 qsign -s "$SB" -p admin2 approve "$id"
grep -q "request.executing_elsewhere id=$id" "$T/B.log" || fail "B executed a request whose claim another holds"
[ "$(psql_q "SELECT state FROM qsign.request WHERE id = '$id'")" = 2 ] || fail "claimed request left APPROVED"
[ "$(psql_q "SELECT count(*) FROM qsign.request_sig WHERE request = '$id'")" = 0 ] ||
	fail "a signature was made for a request another process was executing"
# The holder dies: its session ends, and the claim with it.
psql_q "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1903388466" >/dev/null
wait "$holder" 2>/dev/null || true
for _ in $(seq 1 150); do
	[ "$(psql_q "SELECT state FROM qsign.request WHERE id = '$id'")" = 3 ] && break
	sleep 0.1
done
[ "$(psql_q "SELECT state FROM qsign.request WHERE id = '$id'")" = 3 ] ||
	fail "the request was not resumed after the claim's holder died"
[ "$(psql_q "SELECT count(*) FROM qsign.request_sig WHERE request = '$id'")" = 1 ] || fail "not exactly one signature"
n=$(cat "$T"/A.log* "$T"/B.log* | grep "request.signed" | grep -c "id=$id" || true)
[ "$n" = 1 ] || fail "$n request.signed events for the resumed request"
echo "ok: a request whose execution claim is held elsewhere is not executed twice; resumed once when the holder died"

# --- kill -9 a replica under load: the other serves; nothing acknowledged lost
load() { # SERVER OUTFILE: sign until told to stop; record acknowledged digests
	local s=$1 out=$2 dg
	: >"$out"
	while [ ! -f "$T/stop-load" ]; do
		dg=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
		if qsign -s "$s" -p ci sign -r ci-sign -d "$dg" --format hex >/dev/null 2>&1; then
			echo "$dg" >>"$out"
		fi
	done
}
load "$SA" "$T/ackA" &
la=$!
load "$SB" "$T/ackB" &
lb=$!
sleep 2
kill9_replica A
sleep 2
touch "$T/stop-load"
wait "$la" "$lb"
[ -s "$T/ackA" ] || fail "no signature through A before the kill"
[ -s "$T/ackB" ] || fail "no signature through B"
dg=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
expect_rc 0 qsign -s "$SB" -p ci sign -r ci-sign -d "$dg" --format hex
psql_q "SELECT encode(digest, 'hex') FROM qsign.signature" | sort >"$T/stored"
sort -u "$T/ackA" "$T/ackB" | comm -23 - "$T/stored" >"$T/lost"
[ ! -s "$T/lost" ] || fail "acknowledged signatures missing from the store: $(wc -l <"$T/lost")"
echo "ok: kill -9 of A under load: B kept serving; all $(cat "$T/ackA" "$T/ackB" | wc -l) acknowledged signatures stored"
start_replica A "$HA"
expect_rc 0 qsign -s "$SA" -p ci sign -r ci-sign -d "$dg" --format hex

# --- the database dies: fail closed; it comes back: replicas reconnect
before=$(psql_q "SELECT count(*) FROM qsign.signature")
pg_kill9 DB
dg=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
expect_rc 1 qsign -s "$SB" -p ci sign -r ci-sign -d "$dg" --format hex
grep -qi "unavailable" "$T/err" || fail "no UNAVAILABLE while the database is down: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "a signature was released while the database was down"
pg_restart DB || fail "PostgreSQL did not restart"
ok=0
for _ in $(seq 1 50); do
	if qsign -s "$SB" -p ci sign -r ci-sign -d "$dg" --format hex >"$T/out" 2>"$T/err"; then ok=1; break; fi
	sleep 0.2
done
[ "$ok" = 1 ] || fail "B did not recover after the database restarted: $(cat "$T/err")"
expect_rc 0 qsign -s "$SA" -p ci sign -r ci-sign -d "$dg" --format hex
after=$(psql_q "SELECT count(*) FROM qsign.signature")
[ "$after" -ge $((before + 2)) ] || fail "signatures after recovery not stored ($before -> $after)"
echo "ok: database down: UNAVAILABLE and nothing released; back: both replicas sign again, no restart"

# --- clients listing both replicas fail over to B when A dies
coproc RA { "$QS_BIN/qs_reauth" "$SA,$SB" "$HA" ci sign ok 2>"$T/reauth.err"; }
read -r -t 30 line <&"${RA[0]}" || true
[ "$line" = ready ] || fail "long-lived client through A did not sign: $(cat "$T/reauth.err")"
kill9_replica A
# The client leaves A before sending once its nng pipe has seen the
# connection close; that event is asynchronous (slow under the sanitizers),
# and a call sent before it is reported as possibly executed and not
# repeated (call_failover in qsclient.c). Give the event time to arrive.
sleep 1
echo go >&"${RA[1]}"
read -r -t 30 line <&"${RA[0]}" || true
[ "$line" = ok ] || fail "long-lived client did not fail over to B: $(cat "$T/reauth.err")"
wait "$RA_PID" 2>/dev/null || true
grep -q "through $SB" "$T/reauth.err" || fail "the call after A's death did not go through B: $(cat "$T/reauth.err")"
dg=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
expect_rc 0 qsign -s "$SA" -s "$SB" -p ci sign -r ci-sign -d "$dg" --format hex
[ "$(psql_q "SELECT count(*) FROM qsign.signature WHERE digest = '\\x$dg'")" = 1 ] || fail "failed-over signature not stored"
expect_rc 0 env QSIGN_SERVER="$SA,$SB" qsign -p ci info
expect_rc 3 qsign -s "$SA" -p ci info
expect_rc 1 qsign -s "$SA,,$SB" -p ci info
grep -q "empty server URL" "$T/err" || fail "an empty URL in the list: $(cat "$T/err")"
start_replica A "$HA"
echo "ok: clients listing both replicas go on through B when A dies (connect time and mid-session)"

# --- A dies while executing a request: B finds the orphan by itself
kill "${PID[A]}"; wait "${PID[A]}" 2>/dev/null || true
mv "$T/A.log" "$T/A.log.stopped"
QS_FAULT=request.after_audit_signed start_replica A "$HA" "$QS_BIN/qsignd-fault"
head -c 300 /dev/urandom >"$T/orphan"
expect_rc 0 qsign -s "$SA" -p ci request submit -r release -f "$T/orphan" -m "orphaned"
orphan=$(cat "$T/out")
expect_rc 0 qsign -s "$SA" -p admin1 approve "$orphan"
qsign -s "$SA" -p admin2 approve "$orphan" >/dev/null 2>&1 || true
for _ in $(seq 1 50); do kill -0 "${PID[A]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${PID[A]}" 2>/dev/null && fail "A did not die at the fault point"
wait "${PID[A]}" 2>/dev/null || true
PID[A]=""
mv "$T/A.log" "$T/A.log.fault"
[ "$(psql_q "SELECT state FROM qsign.request WHERE id = '$orphan'")" = 2 ] || fail "orphan not left APPROVED"
# B never tried to execute it: its sweep (every 10 s) finds it.
for _ in $(seq 1 400); do
	[ "$(psql_q "SELECT state FROM qsign.request WHERE id = '$orphan'")" = 3 ] && break
	sleep 0.1
done
[ "$(psql_q "SELECT state FROM qsign.request WHERE id = '$orphan'")" = 3 ] || fail "orphaned request never signed"
[ "$(psql_q "SELECT count(*) FROM qsign.request_sig WHERE request = '$orphan'")" = 1 ] || fail "orphan: not exactly one signature stored"
echo "ok: a request orphaned by a replica's death is signed by the replicas that remain"
grep -q "request.signed id=$orphan" "$T/B.log" || fail "the orphan was not signed by B"
# The one log in the database holds A's logged signature: B releases it
# instead of signing again.
grep -q "request.released_logged id=$orphan" "$T/B.log" || fail "B signed the orphan again instead of releasing the signature A logged"
start_replica A "$HA"

# --- a policy change through A is in force on B at its next call
expect_rc 0 qsign -s "$SA" -p admin1 policy show
python3 - "$T/out" "$T/v2.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["version"] = 2
p["roles"]["ci-sign"]["online"]["requesters"] = ["registrar"]
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
dg=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
expect_rc 0 qsign -s "$SB" -p ci sign -r ci-sign -d "$dg" --format hex
expect_rc 1 qsign -s "$SB" -p registrar sign -r ci-sign -d "$dg" --format hex
expect_rc 0 qsign -s "$SA" -p admin1 policy propose "$T/v2.json" -m "ci-sign moves to registrar"
pid=$(cat "$T/out")
expect_rc 0 qsign -s "$SA" -p admin2 approve "$pid"
expect_rc 0 qsign -s "$SA" -p admin3 approve "$pid"
grep -q "policy.applied version=2 request=" "$T/A.log" || fail "A did not apply version 2"
grep -q "policy.applied version=2" "$T/B.log" && fail "B applied version 2 before any call"
expect_rc 1 qsign -s "$SB" -p ci sign -r ci-sign -d "$dg" --format hex
grep -qi "denied\|not a requester\|may not" "$T/err" || fail "B's refusal of ci under version 2: $(cat "$T/err")"
grep -q "policy.applied version=2 source=store" "$T/B.log" || fail "B did not log version 2 from the store"
expect_rc 0 qsign -s "$SB" -p registrar sign -r ci-sign -d "$dg" --format hex
grep -q "privsep.policy_refused\|privsep.policy_unproven" "$T/B.log" &&
	fail "B's signer helpers did not take version 2: $(grep privsep.policy "$T/B.log")"
echo "ok: version 2 applied through A is in force on B at its next call (no restart)"


for n in A B; do kill -0 "${PID[$n]}" || fail "replica $n died"; done
echo PASS
