#!/usr/bin/env bash
# Refusals and logins cannot fill the disk: 20,000 refused calls and 2,000
# logins by one principal add a bounded number of audit entries (those
# within the principal's audit rate, the rest counted in "audit.summary"
# entries, nothing lost), while another principal keeps signing; the log
# still verifies. Then a descriptor flood: 1,200 connections held against
# a qsignd whose file limit is lowered to 1,024, while registrar keeps
# signing on its connection: no signature may fail (each is an audit
# commit, which must need no new descriptor).
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
# QS_FLOOD_REFUSALS, QS_FLOOD_LOGINS: fewer for slow runs (memcheck:
# tests/bench/flood_memcheck.sh); at least 1000 refusals.
REFUSALS=${QS_FLOOD_REFUSALS:-20000}
LOGINS=${QS_FLOOD_LOGINS:-2000}
qs_setup
qs_policy_edit 'p["roles"]["ci-sign"]["online"]["requesters"].append("registrar")'
python3 - "$QSIGN_HOME/qsignd.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["audit"]["summary_s"] = 2
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
qs_start
A=(qsign -p auditor)
expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"
expect_rc 0 "${A[@]}" audit export -o "$T/before"
s0=$(date +%s.%N)
"$QS_BIN/qs_flood" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" $REFUSALS $LOGINS |
	tee "$T/flood.out" || fail "flood: a call was not refused or registrar could not sign"
sleep 3 # the last counts reach a summary (summary_s 2)
expect_rc 0 "${A[@]}" audit export -o "$T/after"
s1=$(date +%s.%N)
kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd died"
python3 - "$T" $REFUSALS $LOGINS "$(echo "$s1 - $s0" | bc)" <<'PY' || fail "audit log grew beyond the bound"
import json, math, sys
T, refusals, logins, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
before = open(T + "/before/entries.jsonl", "rb").read()
after = open(T + "/after/entries.jsonl", "rb").read()
assert after.startswith(before), "old entries changed"
new = [json.loads(l) for l in after[len(before):].splitlines()]
# Defaults: 60 per minute, burst 120, per principal and event; summaries every 2 s.
rate, burst, every = 60, 120, 2
bound = 2 * (burst + math.ceil(rate * secs / 60)) + math.ceil(secs / every) + 2
bound += 10 + 1 + 2  # registrar's signatures and login, the auditor's logins
assert len(new) <= bound, "%d new entries in %.1f s, bound %d" % (len(new), secs, bound)
count = lambda ev, who: (
    sum(1 for e in new if e["event"] == ev and e.get("principal") == who) +
    sum(c["count"] for e in new if e["event"] == "audit.summary"
        for c in e["counts"] if c["event"] == ev and c["principal"] == who))
assert count("refusal", "ci") == refusals, "ci refusals recorded: %d, made %d" % (count("refusal", "ci"), refusals)
assert count("auth", "ci") == logins + 1, "ci logins recorded: %d, made %d" % (count("auth", "ci"), logins + 1)
sums = [e for e in new if e["event"] == "audit.summary"]
assert sums, "no audit.summary entry"
for e in sums:
    assert len(e["counts"]) <= 64 and e["total"] == sum(c["count"] for c in e["counts"]) + e["other"], e
sigs = sum(1 for e in new if e["event"] == "signature" and e.get("principal") == "registrar")
assert sigs == refusals // 1000, "registrar signatures logged: %d" % sigs
print("ok: %d refusals and %d logins by ci in %.1f s: %d new entries (bound %d), %d summaries counting %d" %
      (refusals, logins + 1, secs, len(new), bound, len(sums), sum(e["total"] for e in sums)))
PY
grep -q "^signed $((REFUSALS / 1000))$" "$T/flood.out" || fail "registrar did not keep signing"
# The descriptor flood. The limit is lowered after the start, so the
# daemon's own connection cap (computed from the limit at start) does not
# stop the flood before the descriptors run out.
FLOOD_CONNS=1200
prlimit --pid "$QSIGND_PID" --nofile=1024:1024 || fail "prlimit on qsignd"
"$QS_BIN/qs_flood" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" --conns $FLOOD_CONNS \
	"$QSIGN_HOME/qsignd.sock" 5 "$QSIGND_PID" | tee "$T/conns.out" ||
	fail "signing failed during the connection flood (above)"
kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd died in the connection flood"
peak=$(awk '/^daemon fds peak/ { print $4 + 0 }' "$T/conns.out")
[ "${peak:-0}" -ge 1000 ] ||
	fail "the flood did not bring qsignd to its descriptor limit (peak ${peak:-?} of 1024)"
echo "ok: $FLOOD_CONNS connections, qsignd at $peak of 1024 descriptors, $(grep '^flood signed' "$T/conns.out")"
# With the flood's connections closed, new connections are served again
# (bounded: a daemon under memcheck takes a while to close the flood's
# pipes and retry its accepts).
wait_s=20
[ "${QS_VALGRIND:-0}" != 1 ] || wait_s=180
r0=$(date +%s.%N)
for _ in $(seq 1 $((wait_s * 2))); do
	qsign -p auditor audit checkpoint >/dev/null 2>&1 && break
	sleep 0.5
done
expect_rc 0 qsign -p auditor audit checkpoint
echo "ok: new connections served again $(awk -v a="$r0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the flood"
expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"
grep -q "checkpoint OK" "$T/out" || fail "verify: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit tail -n 400
grep -q "audit.summary .*not logged one by one: .*ci refusal qsign.v1.Signer/Sign" "$T/out" ||
	fail "audit tail does not show the summary: $(grep summary "$T/out" | head -3)"
qs_stop || fail "qsignd did not exit cleanly"
echo "PASS flood ($(($(date +%s) - t0)) s)"
