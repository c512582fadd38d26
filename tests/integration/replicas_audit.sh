#!/usr/bin/env bash
# One audit log for every replica: three qsignd replicas on one PostgreSQL
# database append to the log kept there (signer/audit/tlog.c, store mode).
#  - signatures and votes through different replicas land in ONE log:
#    `qsign audit verify` against A, then B, then C with one state file
#    (each a consistency proof from the checkpoint seen before);
#  - a mixed load through all three, one of them SIGKILLed mid-load and
#    restarted: still one consistent log, every acknowledged signature
#    has exactly one entry, the database holds exactly the checkpoint's
#    entries;
#  - PostgreSQL refuses the log's COMMIT: signing fails closed
#    (UNAVAILABLE, nothing released, no entry); allowed again: it resumes
#    and the log is still consistent with what auditors saw;
#  - from the attacker's side: an entry changed in the database is caught
#    by `audit verify` and a replica refuses to start on it; a head row set
#    back (rollback) is refused by a running replica.
. "$(dirname "$0")/lib.sh"
. "$QS_SRC/ops/pg.sh"
pg_start DB || fail "cannot start PostgreSQL"
qs_setup; echo "($SECONDS s) set up"
qs_use_pg "$QSIGN_HOME/qsignd.json" "$PG_DB_CONNINFO"

declare -A HOME_ PID SRV
HOME_[A]=$QSIGN_HOME
for n in B C; do
	HOME_[$n]=$T/home$n
	cp -a "$QSIGN_HOME" "${HOME_[$n]}"
	sed -i "s|$QSIGN_HOME|${HOME_[$n]}|g" "${HOME_[$n]}/softhsm2.conf" "${HOME_[$n]}/qsignd.json"
done
for n in A B C; do SRV[$n]=ipc://${HOME_[$n]}/qsignd.sock; done

. "$(dirname "$0")/replicas_lib.sh"
LOADERS=()
stop_loaders() {
	touch "$T/stop-load" 2>/dev/null || true
	for p in "${LOADERS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap 'stop_loaders; stop_replicas; qs_cleanup' EXIT
psql_q() { pg_psql DB "$1"; }
digest() { head -c 32 /dev/urandom | sha256sum | cut -c1-64; }
verify_at() { # NAME: verify the log through replica NAME, against the state so far
	expect_rc 0 qsign -s "${SRV[$1]}" -p auditor audit verify --log-key "$T/exp0/log-key.pem" \
		--state "$T/audit-state.json"
}
# The acknowledged digests in $1 (one a line) each have exactly one
# "signature" entry in the export $2.
one_entry_each() {
	python3 - "$1" "$2/entries.jsonl" <<'PY' || fail "acknowledged signatures and log entries differ"
import json, sys, collections
acked = [l.strip() for l in open(sys.argv[1]) if l.strip()]
n = collections.Counter()
for i, line in enumerate(open(sys.argv[2], "rb")):
    e = json.loads(line)
    assert e["seq"] == i, (i, e["seq"])
    if e["event"] == "signature":
        n[e["digest"].lower()] += 1
bad = [(d, n[d]) for d in acked if n[d] != 1]
if bad:
    print("signatures without exactly one entry:", bad[:5], len(bad), file=sys.stderr)
    sys.exit(1)
print(len(acked), "acknowledged signatures, one entry each")
PY
}

start_replica A "${HOME_[A]}"
start_replica B "${HOME_[B]}"
start_replica C "${HOME_[C]}"; echo "($SECONDS s) 3 replicas up"
: >"$T/acked"

# --- signatures and votes through different replicas: one log
for n in A B C; do
	dg=$(digest)
	expect_rc 0 qsign -s "${SRV[$n]}" -p ci sign -r ci-sign -d "$dg" --format hex
	echo "$dg" >>"$T/acked"
done
head -c 500 /dev/urandom >"$T/payload"
expect_rc 0 qsign -s "${SRV[A]}" -p ci request submit -r release -f "$T/payload" -m "one log"
id=$(cat "$T/out")
expect_rc 0 qsign -s "${SRV[B]}" -p admin1 approve "$id"
expect_rc 0 qsign -s "${SRV[C]}" -p admin3 approve "$id"
expect_rc 0 qsign -s "${SRV[A]}" -p ci request fetch "$id" -o "$T/release.sig"
expect_rc 0 qsign -s "${SRV[A]}" -p auditor audit export -o "$T/exp0" --no-state
echo "($SECONDS s) signed"; verify_at A; echo "($SECONDS s) verified A"
sa=$(psql_q "SELECT size FROM qsign.audit_head")
verify_at B
verify_at C
for ev in '"event":"request.submitted"' '"event":"request.vote"' '"event":"request.signed"'; do
	grep -q "$ev" "$T/exp0/entries.jsonl" || fail "no $ev entry in the one log"
done
[ "$(grep -c "\"id\":\"$id\"" "$T/exp0/entries.jsonl")" -ge 4 ] || fail "the request's entries are not all in the one log"
echo "ok: ($SECONDS s) signatures and votes through A, B and C are in one log; verified through A, B and C in turn (size $sa)"

# --- a mixed load through all three; B SIGKILLed mid-load and restarted
load() { # NAME OUTFILE
	local s=${SRV[$1]} out=$2 dg
	: >"$out"
	while [ ! -f "$T/stop-load" ]; do
		dg=$(digest)
		if qsign -s "$s" -p ci sign -r ci-sign -d "$dg" --format hex >/dev/null 2>&1; then
			echo "$dg" >>"$out"
		fi
	done
}
votes() { # submit through A, approve through B and C, until told to stop
	local id
	while [ ! -f "$T/stop-load" ]; do
		head -c 200 /dev/urandom >"$T/vp"
		id=$(qsign -s "${SRV[A]}" -p ci request submit -r release -f "$T/vp" -m load 2>/dev/null) || continue
		qsign -s "${SRV[B]}" -s "${SRV[C]}" -p admin1 approve "$id" >/dev/null 2>&1 || true
		qsign -s "${SRV[C]}" -p admin2 approve "$id" >/dev/null 2>&1 || true
	done
}
load A "$T/ackA" & la=$!
load B "$T/ackB" & lb=$!
load C "$T/ackC" & lc=$!
votes & lv=$!
LOADERS=("$la" "$lb" "$lc" "$lv")
sleep 2
kill -9 "${PID[B]}"
wait "${PID[B]}" 2>/dev/null || true
mv "$T/B.log" "$T/B.log.killed"
sleep 1
verify_at A # while B is down: A's view extends what was seen
start_replica B "${HOME_[B]}"
sleep 1
touch "$T/stop-load"
wait "$la" "$lb" "$lc" "$lv"
LOADERS=()
cat "$T/ackA" "$T/ackB" "$T/ackC" >>"$T/acked"
[ -s "$T/ackA" ] && [ -s "$T/ackC" ] || fail "the load signed nothing through A or C"
for n in B C A; do verify_at "$n"; done
expect_rc 0 qsign -s "${SRV[C]}" -p auditor audit export -o "$T/exp1" --log-key "$T/exp0/log-key.pem" --no-state
one_entry_each "$T/acked" "$T/exp1"
size=$(psql_q "SELECT size FROM qsign.audit_head")
[ "$(psql_q "SELECT count(*) FROM qsign.audit_entry")" = "$size" ] || fail "the database holds entries past the head"
[ "$(psql_q "SELECT max(seq) + 1 FROM qsign.audit_entry")" = "$size" ] || fail "entries are not 0..size-1"
batches=$(cat "$T"/A.log "$T"/C.log | grep -o 'audit_commit_stages batches=[0-9]*' | head -1 || true)
echo "ok: ($SECONDS s) mixed load through A, B, C with B killed and restarted: one consistent log of $size entries; $(wc -l <"$T/acked") acknowledged signatures, one entry each"

# --- PostgreSQL does not commit the log: nothing released, nothing logged
psql_q "CREATE FUNCTION qsign.refuse_commit() RETURNS trigger LANGUAGE plpgsql AS
	\$\$BEGIN RAISE EXCEPTION 'commit refused by the test'; END\$\$" >/dev/null
psql_q "CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON qsign.audit_head
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION qsign.refuse_commit()" >/dev/null
before=$(psql_q "SELECT size FROM qsign.audit_head")
nsig=$(psql_q "SELECT count(*) FROM qsign.signature")
dg=$(digest)
expect_rc 1 qsign -s "${SRV[A]}" -p ci sign -r ci-sign -d "$dg" --format hex
grep -qi "unavailable" "$T/err" || fail "no UNAVAILABLE when the log cannot commit: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "a signature was released although its entry did not commit"
[ "$(psql_q "SELECT size FROM qsign.audit_head")" = "$before" ] || fail "the head moved"
[ "$(psql_q "SELECT count(*) FROM qsign.audit_entry")" = "$before" ] || fail "entries of a refused commit stayed"
[ "$(psql_q "SELECT count(*) FROM qsign.signature")" = "$nsig" ] || fail "a signature was recorded"
grep -q "commit refused by the test" "$T/A.log" || fail "A did not log why the commit failed"
psql_q "DROP TRIGGER refuse_commit ON qsign.audit_head" >/dev/null
ok=0
for _ in $(seq 1 20); do
	if qsign -s "${SRV[A]}" -p ci sign -r ci-sign -d "$dg" --format hex >"$T/out" 2>"$T/err"; then ok=1; break; fi
	sleep 0.2
done
[ "$ok" = 1 ] || fail "A did not sign again once the database commits: $(cat "$T/err")"
echo "$dg" >>"$T/acked"
verify_at B
echo "ok: ($SECONDS s) a COMMIT PostgreSQL refuses: UNAVAILABLE, nothing released or logged; then signing resumes on one log"

# --- the attacker's side: the database's log changed behind the replicas
e1=$(psql_q "SELECT encode(data, 'hex') FROM qsign.audit_entry WHERE seq = 1")
psql_q "UPDATE qsign.audit_entry SET data = data || '\\x20'::bytea WHERE seq = 1" >/dev/null
expect_rc 1 qsign -s "${SRV[C]}" -p auditor audit verify --log-key "$T/exp0/log-key.pem" --no-state
kill "${PID[C]}"; wait "${PID[C]}" 2>/dev/null || true; PID[C]=""
mv "$T/C.log" "$T/C.log.1"
SOFTHSM2_CONF=${HOME_[C]}/softhsm2.conf timeout 60 "$QS_BIN/qsignd" -c "${HOME_[C]}/qsignd.json" >"$T/C.tamper" 2>&1 &&
	fail "a replica started on a modified log"
echo "($SECONDS s) C refused to start"
grep -q "does not match its signed checkpoint" "$T/C.tamper" || fail "the refusal does not say why: $(tail -3 "$T/C.tamper")"
psql_q "UPDATE qsign.audit_entry SET data = decode('$e1', 'hex') WHERE seq = 1" >/dev/null
start_replica C "${HOME_[C]}"; echo "($SECONDS s) 3 replicas up"
verify_at C
# A head set back to an older checkpoint (a rollback of the table).
psql_q "CREATE TABLE public.saved_head AS SELECT * FROM qsign.audit_head" >/dev/null
psql_q "UPDATE qsign.audit_head SET size = 0, checkpoint = ''" >/dev/null
expect_rc 1 qsign -s "${SRV[A]}" -p ci sign -r ci-sign -d "$(digest)" --format hex
[ ! -s "$T/out" ] || fail "a signature was released on a rolled-back log"
grep -q "rolled back" "$T/A.log" || fail "A did not say the log went back"
psql_q "UPDATE qsign.audit_head h SET size = o.size, checkpoint = o.checkpoint FROM public.saved_head o" >/dev/null
expect_rc 0 qsign -s "${SRV[A]}" -p ci sign -r ci-sign -d "$(digest)" --format hex
for n in A B C; do verify_at "$n"; done
echo "ok: an entry changed in the database is caught by audit verify and refused at start; a head set back is refused"

for n in A B C; do kill -0 "${PID[$n]}" || fail "replica $n died"; done
echo PASS
