#!/usr/bin/env bash
# 10,000 malformed and hostile calls against a real qsignd (see storm.c):
# each must be answered with an error (or a dropped connection below the SP
# framing), a valid client signs throughout, and afterwards the state and
# the audit log hold nothing new but the valid client's work and the
# audited refusals the storm caused (one entry each, or counted in an
# "audit.summary" entry once a principal is past its audit rate).
#
# QS_STORM_CALLS overrides the count (default 10000, in sanitizer builds
# too: ~1 minute there), QS_STORM_SEED replays one order of calls.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
: "${QS_STORM_CALLS:=10000}"
export QS_STORM_CALLS
qs_setup
# One key, one purpose: each added role signs with a key of its own.
qsign-token keygen -m /usr/lib/softhsm/libsofthsm2.so -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 -l flood-key >/dev/null
qsign-token keygen -m /usr/lib/softhsm/libsofthsm2.so -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t ecdsa-p256 -l short-key >/dev/null
qs_policy_edit '
import copy
p["keys"]["short-key"] = {"uri": "pkcs11:token=qsign-demo;object=short-key", "algorithm": "ecdsa-p256"}
p["keys"]["flood-key"] = {"uri": "pkcs11:token=qsign-demo;object=flood-key", "algorithm": "ecdsa-p256"}
p["roles"]["flood"] = {"keys": ["flood-key"], "payloads": ["digest"],
                       "online": {"requesters": ["registrar"], "rate_per_second": 2, "burst": 2}}
p["roles"]["short"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["short"]["keys"] = ["short-key"]
p["roles"]["short"]["quorum"]["request_ttl"] = "2s"'
# Summaries every second, so that the last one is written before the count.
python3 - "$QSIGN_HOME/qsignd.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["audit"]["summary_s"] = 1
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
qs_start
A=(qsign -p auditor)
db=$QSIGN_HOME/state/state.db

# ------------------------------------------------------------ requests in every state
head -c 500 /dev/urandom >"$T/payload"
submit() { # ROLE -> id in $id
	expect_rc 0 qsign -p ci request submit -r "$1" -f "$T/payload" -m "storm target"
	id=$(cat "$T/out")
}
submit short
expired=$id
submit release
echo "pending $id" >"$T/ids"
submit release
expect_rc 0 qsign -p admin1 approve "$id"
expect_rc 0 qsign -p admin2 approve "$id"
echo "signed $id" >>"$T/ids"
submit release
expect_rc 0 qsign -p ci request cancel "$id"
echo "cancelled $id" >>"$T/ids"
submit release
expect_rc 0 qsign -p admin1 reject "$id" -m no
expect_rc 0 qsign -p admin2 reject "$id" -m no
echo "rejected $id" >>"$T/ids"
# The TTL is whole seconds (it can run up to 1 s past 2 s): wait past that.
sleep 3.5
expect_rc 0 qsign -p ci request show "$expired"
grep -qi expired "$T/out" || fail "request $expired did not expire: $(cat "$T/out")"
echo "expired $expired" >>"$T/ids"
for s in signed cancelled rejected; do
	expect_rc 0 qsign -p ci request show "$(awk -v s=$s '$1 == s { print $2 }' "$T/ids")"
	grep -qi "$s" "$T/out" || fail "request not $s: $(cat "$T/out")"
done

# ------------------------------------------------------------ before
snapshot() { # NAME
	sqlite3 -readonly "$db" "
		SELECT 'signatures', count(*) FROM signature;
		SELECT 'requests', count(*) FROM request;
		SELECT 'votes', count(*) FROM vote;" >"$T/$1.counts"
	sqlite3 -readonly "$db" "
		SELECT id, state, ifnull(state_message, ''), hex(digest) FROM request ORDER BY id;
		SELECT request, approver, approve, time, hex(signature) FROM vote
			ORDER BY request, approver;
		SELECT request, idx, hex(signature) FROM request_sig ORDER BY request, idx;" \
		>"$T/$1.rows"
	expect_rc 0 "${A[@]}" audit export -o "$T/$1.audit"
}
expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"
snapshot before

# ------------------------------------------------------------ the storm
s0=$(date +%s.%N)
"$QS_BIN/qs_storm" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" "$T/ids" "$T" |
	tee "$T/storm.out" || fail "storm: survivors or a failing valid client (see above)"
s1=$(date +%s.%N)
kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd died during the storm"
grep -q "^survivors: 0$" "$T/storm.out" || fail "storm did not finish"

# ------------------------------------------------------------ after
sleep 2.5 # the storm's last counts reach an audit.summary entry
snapshot after
expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"
grep -q "checkpoint OK" "$T/out" || fail "verify: $(cat "$T/out")"
diff "$T/before.rows" "$T/after.rows" >&2 || fail "requests, votes or their signatures changed"
python3 - "$T" <<'PY' || fail "state or audit log changed beyond the expected entries"
import collections, json, sys
T = sys.argv[1]
exp = dict((k, int(v)) for k, v in (l.split() for l in open(T + "/expect.txt")))
counts = lambda n: dict((k, int(v)) for k, v in (l.split("|") for l in open(f"{T}/{n}.counts")))
b, a = counts("before"), counts("after")
assert a["requests"] == b["requests"] and a["votes"] == b["votes"], (b, a)
assert a["signatures"] - b["signatures"] == exp["signature"], \
    "state.db gained %d signatures, expected %d" % (a["signatures"] - b["signatures"], exp["signature"])
before = open(T + "/before.audit/entries.jsonl", "rb").read()
after = open(T + "/after.audit/entries.jsonl", "rb").read()
assert after.startswith(before), "the audit log's old entries changed"
new = [json.loads(l) for l in after[len(before):].splitlines()]
ev = collections.Counter(e["event"] for e in new)
# Entries past a principal's rate are counted in audit.summary entries.
summaries = [e for e in new if e["event"] == "audit.summary"]
del ev["audit.summary"]
for e in summaries:
    assert e["total"] == sum(c["count"] for c in e["counts"]) + e["other"], e
    assert len(e["counts"]) <= 64, e
    for c in e["counts"]:
        ev[c["event"]] += c["count"]
# The second export's own authentication is the one entry the storm did not make.
auditor = sum(1 for e in new if e["event"] == "auth" and e.get("principal") == "auditor")
auditor += sum(c["count"] for e in summaries for c in e["counts"]
               if c["event"] == "auth" and c["principal"] == "auditor")
assert auditor == 1, "auditor auth entries: %d" % auditor
ev["auth"] -= 1
want = collections.Counter({"auth": exp["auth"], "signature": exp["signature"], "refusal": exp["refusal"]})
assert +ev == +want, "new audit entries (summaries counted in) %s, expected %s" % (dict(ev), dict(want))
statuses = collections.Counter(e.get("status") for e in new if e["event"] == "refusal")
logged = {e["digest"] for e in new if e["event"] == "signature"}
valid = {l.strip() for l in open(T + "/valid.txt")}
assert valid <= logged, "valid signatures without an entry: %s" % sorted(valid - logged)[:3]
print("ok: state.db: +%d signatures, requests and votes unchanged" % exp["signature"])
print("ok: audit log: old entries unchanged; new: %d auth, %d signature, %d refusal (%s; %d in %d summaries)" %
      (exp["auth"], exp["signature"], exp["refusal"],
       ", ".join("%s %d" % kv for kv in sorted(statuses.items())),
       sum(e["total"] for e in summaries), len(summaries)))
PY
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(printf after | sha256sum | cut -c1-64)" --format hex
qs_stop || fail "qsignd did not exit cleanly after the storm"
printf 'PASS storm: %s hostile calls in %.1f s (test %d s)\n' "$QS_STORM_CALLS" \
	"$(echo "$s1 - $s0" | bc)" "$(($(date +%s) - t0))"
