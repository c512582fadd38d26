#!/usr/bin/env bash
# A full disk between the last approval and the execution heals by itself:
# the audit log lives on a small tmpfs; a policy change (whose "policy"
# entry carries the whole, here padded, policy text) gets its last approval
# while the file system has room for the vote's entry but not for that one.
# The approver is told it is not applied (exit 1, the reason), the request
# stays APPROVED and is retried while the disk is full; once space is freed
# the daemon applies it without a restart, and the log verifies.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
[ "$(id -u)" = 0 ] || fail "needs root (mount -t tmpfs)"
qs_setup
fs=$T/auditfs
mkdir -p "$fs"
mount -t tmpfs -o size=2m tmpfs "$fs" || fail "cannot mount a tmpfs on $fs"
trap '[ -z "$QSIGND_PID" ] || { kill "$QSIGND_PID"; wait "$QSIGND_PID"; QSIGND_PID=""; } 2>/dev/null; umount "$fs" 2>/dev/null || true; qs_cleanup' EXIT
python3 - "$QSIGN_HOME/qsignd.json" "$fs/audit" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["audit"]["dir"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
qs_start
pid=$QSIGND_PID
A=(qsign -p auditor)
expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"

# Version 2 with a 600 KB comment: its "policy" audit entry needs that much.
expect_rc 0 qsign -p admin1 policy show
python3 - "$T/out" "$T/v2.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["version"] = 2; p["comment"] = "padding " * 75000
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
expect_rc 0 qsign -p admin1 policy propose "$T/v2.json" -m "big v2"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$id"

# Leave 64 KiB: room for a vote, not for the policy entry.
avail=$(df --output=avail -B1 "$fs" | tail -1)
dd if=/dev/zero of="$fs/ballast" bs=4096 count=$(((avail - 65536) / 4096)) status=none
expect_rc 1 qsign -p admin3 approve "$id"
grep -q "NOT applied yet: audit log cannot be written" "$T/out" ||
	fail "the approver is not told the truth: $(cat "$T/out")"
grep -q "not applied: qsignd retries" "$T/err" || fail "no retry notice: $(cat "$T/err")"
echo "ok: last approval on a full disk: exit 1, $(cat "$T/out")"
expect_rc 0 qsign -p admin1 policy show
grep -q "version 1 (current 1)" "$T/err" || fail "policy applied while the log is full"
sleep 6 # at least one retry while the disk is still full
expect_rc 0 qsign -p admin1 --json request show "$id"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["state"] == "approved" and "No space" in v["state_message"], v["state"]' "$T/out" ||
	fail "request not APPROVED with the reason while the disk is full"
grep -q "retry" "$T/qsignd.log" || fail "no retry while full"
kill -0 "$pid" || fail "qsignd died"

rm -f "$fs/ballast"
expect_rc 0 qsign -p admin1 request wait "$id" --timeout 30
expect_rc 0 qsign -p admin1 policy show
grep -q "version 2 (current 2)" "$T/err" || fail "policy not applied after the disk was freed"
[ "$QSIGND_PID" = "$pid" ] && kill -0 "$pid" || fail "qsignd restarted"
expect_rc 0 qsign -p admin1 request show "$id"
grep -q "executed on a retry" "$T/out" || fail "request show does not say it was retried: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit verify --state "$T/verify.state"
grep -q "checkpoint OK" "$T/out" || fail "verify: $(cat "$T/out")"
echo "ok: disk freed: applied without a restart, the log verifies"
qs_stop || fail "qsignd did not stop cleanly"
umount "$fs"
echo "PASS diskfull ($(($(date +%s) - t0)) s)"
