#!/usr/bin/env bash
# kill -9 of qsignd at random points of a mixed load (online signs and
# batches, quorum requests, approvals: crashload.c), 50 times. After every
# restart each acknowledged result must be there: every signature a client
# received has its audit entry (and its row in state.db), every accepted
# request and vote is in the log and in state.db (and, for the last cycle,
# in `qsign request list`), a request reported signed is still signed; no
# process of the killed daemon lives on; and `qsign audit verify --state`
# passes, which also proves the log only grew (consistent with the
# previous run).
#
# QS_CRASH_CYCLES overrides the count (default 50; 20 in sanitizer builds,
# 6 under valgrind, QS_VALGRIND=1, to stay within ctest's timeout),
# QS_CRASH_SEED the kill points.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
if [ "${QS_VALGRIND:-0}" = 1 ]; then
	: "${QS_CRASH_CYCLES:=6}"
elif qs_sanitized; then
	: "${QS_CRASH_CYCLES:=20}"
else
	: "${QS_CRASH_CYCLES:=50}"
fi
RANDOM=${QS_CRASH_SEED:-$$}
echo "crashes: $QS_CRASH_CYCLES cycles, seed ${QS_CRASH_SEED:-$$}"
qs_setup
qs_start
A=(qsign -p auditor)
URL=ipc://$QSIGN_HOME/qsignd.sock
: >"$T/acks"

check() { # CYCLE: everything acknowledged so far; the list view for the last cycle's
	expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"
	grep -q "checkpoint OK" "$T/out" || fail "cycle $1: verify: $(cat "$T/out")"
	rm -rf "$T/exp"
	expect_rc 0 "${A[@]}" audit export -o "$T/exp"
	# The newest 1000 requests (the daemon's cap for one List).
	expect_rc 0 qsign -p admin3 --json request list --limit 1000
	mv "$T/out" "$T/list.json"
	sqlite3 -readonly "$QSIGN_HOME/state/state.db" "SELECT lower(hex(digest)) FROM signature" \
		>"$T/db-sigs"
	sqlite3 -readonly "$QSIGN_HOME/state/state.db" "SELECT id, state FROM request" >"$T/db-reqs"
	sqlite3 -readonly "$QSIGN_HOME/state/state.db" "SELECT request, approver FROM vote" \
		>"$T/db-votes"
	python3 - "$T" "$1" "$acks_before" <<'PY' || fail "cycle $1: an acknowledged result is missing after kill -9"
import json, sys
T, cycle, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
sigs, reqs, votes, last_reqs, last_votes = set(), set(), [], set(), []
for n, l in enumerate(open(T + "/acks")):
    f = l.split()
    if f[0] == "sig":
        sigs.add(f[1])
    elif f[0] == "req":
        reqs.add(f[1])
        if n >= first:
            last_reqs.add(f[1])
    elif f[0] == "vote":
        votes.append(f[1:])
        if n >= first:
            last_votes.append(f[1:])
logged, submitted, voted, signed = set(), set(), set(), set()
for l in open(T + "/exp/entries.jsonl"):
    e = json.loads(l)
    ev = e["event"]
    if ev == "signature":
        logged.add(e["digest"])
    elif ev == "request.submitted":
        submitted.add(e["id"])
    elif ev == "request.vote":
        voted.add((e["id"], e["approver"]))
    elif ev == "request.signed":
        signed.add(e["id"])
db_sigs = {l.strip() for l in open(T + "/db-sigs")}
db_reqs = dict(l.strip().split("|") for l in open(T + "/db-reqs"))
db_votes = {tuple(l.strip().split("|")) for l in open(T + "/db-votes")}
lst = json.load(open(T + "/list.json"))
if isinstance(lst, dict):
    lst = lst.get("requests", lst)
view = {r["id"]: r for r in lst}
acked_votes = {(i, a) for i, a, _ in votes}
acked_signed = {i for i, _, s in votes if s == "signed"}
bad = []
def miss(what, s):
    if s:
        bad.append("%d %s, e.g. %s" % (len(s), what, sorted(s)[:2]))
# Everything acknowledged since the start: the audit log and the state.
miss("acknowledged signatures without an audit entry", sigs - logged)
miss("acknowledged signatures not in state.db", sigs - db_sigs)
miss("acknowledged requests without an audit entry", reqs - submitted)
miss("acknowledged requests not in state.db", reqs - set(db_reqs))
miss("acknowledged votes without an audit entry", acked_votes - voted)
miss("acknowledged votes not in state.db", acked_votes - db_votes)
miss("requests acknowledged as signed without request.signed", acked_signed - signed)
miss("requests acknowledged as signed not signed in state.db",
     {i for i in acked_signed if db_reqs.get(i) != "3"})
# What `qsign request list` shows for the last cycle's acknowledgements.
miss("requests acknowledged in this cycle not listed", last_reqs - set(view))
miss("votes acknowledged in this cycle not in the listed request",
     {(i, a) for i, a, _ in last_votes
      if i not in view or a not in {v["approver"] for v in view[i]["votes"]}})
miss("requests acknowledged as signed in this cycle not listed as signed",
     {i for i, _, s in last_votes if s == "signed" and view.get(i, {}).get("state") != "signed"})
assert not bad, "; ".join(bad)
print("cycle %s: %d signatures, %d requests, %d votes acknowledged so far: all present "
      "(this cycle: %d requests, %d votes, seen in request list)"
      % (cycle, len(sigs), len(reqs), len(votes), len(last_reqs), len(last_votes)))
PY
}

leftovers() { # qsignd processes (front or helpers) of this test's home
	local p comm
	for p in /proc/[0-9]*; do
		comm=$(cat "$p/comm" 2>/dev/null) || continue
		case $comm in qsignd*) ;; *) continue ;; esac
		grep -qs "^State:.*Z" "$p/status" && continue
		tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "QSIGN_HOME=$QSIGN_HOME" || continue
		printf '%s(%s) ' "${p#/proc/}" "$comm"
	done
}

load_ms_total=0
for cycle in $(seq 1 "$QS_CRASH_CYCLES"); do
	acks_before=$(wc -l <"$T/acks")
	"$QS_BIN/qs_crashload" "$URL" "$QSIGN_HOME" "$T/acks" 2>>"$T/load.err" &
	load=$!
	ms=$((500 + RANDOM % 1001))
	load_ms_total=$((load_ms_total + ms))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -0 "$load" 2>/dev/null || fail "cycle $cycle: load generator exited: $(tail -3 "$T/load.err")"
	qs_kill9
	kill -9 "$load" 2>/dev/null || true
	wait "$load" 2>/dev/null || true
	# Nothing of the killed daemon may live on (signer helpers hold token
	# sessions): no process but zombies still carries this test's home.
	for _ in $(seq 1 40); do
		left=$(leftovers)
		[ -z "$left" ] && break
		sleep 0.05
	done
	[ -z "$left" ] || fail "cycle $cycle: processes of the killed qsignd still run: $left"
	qs_start
	check "$cycle"
done
grep -E "^crashload: cannot" "$T/load.err" && fail "load generator failed"
python3 - "$T/acks" <<'PY'
import collections, sys
c = collections.Counter(l.split()[0] for l in open(sys.argv[1]))
s = collections.Counter(l.split()[3] for l in open(sys.argv[1]) if l.startswith("vote"))
print("acknowledged in total: %d signatures, %d requests, %d votes (%s)" %
      (c["sig"], c["req"], c["vote"], ", ".join("%s %d" % kv for kv in sorted(s.items()))))
PY
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(printf after | sha256sum | cut -c1-64)" --format hex
echo "load before each kill: $((load_ms_total / QS_CRASH_CYCLES)) ms on average"
echo "PASS crashes: $QS_CRASH_CYCLES kill -9 cycles in $(($(date +%s) - t0)) s"
