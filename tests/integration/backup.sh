#!/usr/bin/env bash
# Online backup while qsignd signs; restore into a fresh state directory:
# requests, policy history and the audit log intact and verifiable; an older
# backup over newer state is refused unless forced, and forcing it is a
# rollback that `qsign audit verify` reports; the state a restore replaces
# is kept beside it (timestamped), and copying it back undoes the restore.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_start
dg() { echo "$1" | sha256sum | cut -c1-64; }
A=(qsign -p auditor)
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg one)"
expect_rc 0 qsign -p ci request submit -r release -d "$(dg release)" -m "backup me"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id"
expect_rc 0 qsign -p admin2 approve "$id"
qs_policy_apply 2 "version 2"
pid=$QS_POLICY_REQ
expect_rc 0 "${A[@]}" audit verify --state "$T/auditor.state"

# Online backup, with a signer busy in the background.
( for i in $(seq 1 40); do qsign -p ci sign -r ci-sign -d "$(dg "bg$i")" >/dev/null 2>&1; done ) &
bg=$!
expect_rc 0 qsignd -c "$QSIGN_HOME/qsignd.json" backup -o "$T/bk"
wait "$bg"
[ -f "$T/bk/MANIFEST.json" ] && [ -f "$T/bk/state.db" ] && [ -f "$T/bk/audit/entries" ] ||
	fail "backup incomplete"
expect_rc 1 qsignd -c "$QSIGN_HOME/qsignd.json" backup -o "$T/bk"
grep -q "already holds a backup" "$T/err" || fail "backup over a backup"
echo "ok: online backup while signing"

# Restore into a fresh state directory (same tokens and config otherwise).
python3 - "$QSIGN_HOME/qsignd.json" "$T/restored.json" "$T/fresh" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["state_dir"] = sys.argv[3]
c["policy"] = c["policy"] if c["policy"].startswith("/") else sys.argv[1].rsplit("/", 1)[0] + "/" + c["policy"]
c["tokens"][0]["pin_file"] = sys.argv[1].rsplit("/", 1)[0] + "/" + c["tokens"][0]["pin_file"]
c.get("audit", {}).pop("dir", None)
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
qs_stop
expect_rc 0 qsignd -c "$T/restored.json" restore -i "$T/bk"
grep -q "kept in" "$T/out" && fail "a restore into a fresh directory claims to keep something"
ls -d "$T"/fresh.replaced-* 2>/dev/null && fail "a restore into a fresh directory made a copy"
qs_start "$T/restored.json"
expect_rc 0 qsign -p admin1 --json request list
python3 -c '
import json,sys; d=json.load(open(sys.argv[1]))
ids = [r["id"] for r in (d if isinstance(d, list) else d["requests"])]
assert sys.argv[2] in ids and sys.argv[3] in ids, ids
' "$T/out" "$id" "$pid" || fail "requests missing after restore"
expect_rc 0 qsign -p admin1 request fetch "$id"
expect_rc 0 qsign -p admin1 policy show --version 1
expect_rc 0 qsign -p admin1 policy show
grep -q '"version": 2' "$T/out" || fail "policy history lost"
expect_rc 0 "${A[@]}" audit verify --state "$T/fresh-auditor.state"
grep -q "approvals.*re-verified\|re-verified" "$T/out" || true
echo "ok: restored state: requests, policy v1+v2, audit log verifies"

# Newer state, then an older backup: refused, unless --force (a rollback).
for i in 1 2 3; do expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg "after$i")"; done
expect_rc 0 "${A[@]}" audit verify --state "$T/fresh-auditor.state"
qs_stop
expect_rc 1 qsignd -c "$T/restored.json" restore -i "$T/bk"
grep -q "roll the log back" "$T/err" || fail "older backup not refused: $(cat "$T/err")"
echo "ok: restoring an older backup over newer state is refused"
newer=$(wc -l <"$T/fresh/audit/entries")
expect_rc 0 qsignd -c "$T/restored.json" restore -i "$T/bk" --force
kept=$(sed -n 's/^restore: the state it replaces is kept in \(.*\) (state.db, audit\/): to undo.*/\1/p' "$T/out")
[ -n "$kept" ] || fail "a forced restore does not say where the replaced state is: $(cat "$T/out")"
case "$kept" in "$T"/fresh.replaced-20[0-9][0-9][01][0-9][0-3][0-9]T[0-9]*Z) ;; *) fail "kept in $kept: not a timestamped copy beside the state directory" ;; esac
[ -f "$kept/state.db" ] && [ -s "$kept/audit/entries" ] || fail "the kept copy lacks state.db or the audit log"
[ "$(wc -l <"$kept/audit/entries")" = "$newer" ] || fail "the kept audit log is not the replaced one"
[ "$(stat -c %a "$kept")" = 700 ] || fail "the kept copy is not private"
qs_start "$T/restored.json"
expect_rc 1 "${A[@]}" audit verify --state "$T/fresh-auditor.state"
grep -q "rolled back" "$T/err" || fail "auditor did not notice the rollback: $(cat "$T/err")"
echo "ok: a forced restore is a rollback the auditor's verify reports; the replaced state is kept in $(basename "$kept")"
# Restore refuses while the daemon runs.
expect_rc 1 qsignd -c "$T/restored.json" restore -i "$T/bk" --force
grep -q "running" "$T/err" || fail "restore while running"
ls -d "$T"/fresh.replaced-* | grep -qv "^$kept\$" && fail "a refused restore made a copy"
qs_stop
# Undo the rollback as the message says: the kept copy is the whole state.
rm -f "$T/fresh/state.db-wal" "$T/fresh/state.db-shm"
cp "$kept"/state.db* "$T/fresh/"
cp "$kept"/audit/* "$T/fresh/audit/"
qs_start "$T/restored.json"
expect_rc 0 "${A[@]}" audit verify --state "$T/fresh-auditor.state"
echo "ok: copying the kept state back undoes the forced restore (the auditor's log verifies again)"
qs_stop

# A backup of the earlier format (the audit log's checkpoint in its own
# file, entries without checkpoint records), made from the one above:
# restored, the daemon migrates the log at start, and it verifies against
# what the auditor saw before the backup.
python3 - "$T/bk" "$T/bk1" <<'PY'
import os, shutil, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst + "/audit")
for f in ("MANIFEST.json", "state.db", "audit/checkpoint"):
    shutil.copy(src + "/" + f, dst + "/" + f)
data = open(src + "/audit/entries", "rb").read()
assert data[:8] == b"QSTLOG2\n", data[:8]
out, o = [b"QSTLOG1\n"], 8
while o < len(data):
    n = struct.unpack(">I", data[o:o + 4])[0]
    if not n & 0x80000000:
        out.append(data[o:o + 8 + n])
    o += 8 + (n & 0x7fffffff)
open(dst + "/audit/entries", "wb").write(b"".join(out))
PY
sed "s|$T/fresh|$T/fresh1|" "$T/restored.json" >"$T/restored1.json"
expect_rc 0 qsignd -c "$T/restored1.json" restore -i "$T/bk1"
[ -f "$T/fresh1/audit/checkpoint" ] || fail "a format 1 restore has no checkpoint file"
qs_start "$T/restored1.json"
grep -q "audit_migrated" "$T/qsignd.log" || fail "the restored format 1 log was not migrated: $(grep audit "$T/qsignd.log")"
[ "$(head -c 8 "$T/fresh1/audit/entries")" = "QSTLOG2" ] || fail "entries not in format 2 after the migration"
[ ! -e "$T/fresh1/audit/checkpoint" ] || fail "the checkpoint file is still there after the migration"
cp "$T/auditor.state" "$T/auditor1.state"
for f in "$T"/auditor.state.*.leaves; do cp "$f" "${f/auditor.state/auditor1.state}"; done
expect_rc 0 "${A[@]}" audit verify --state "$T/auditor1.state"
grep -q "consistent with size" "$T/out" || fail "the migrated log is not consistent with the one seen before: $(cat "$T/out")"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg after-migration)"
expect_rc 0 "${A[@]}" audit verify --state "$T/auditor1.state"
qs_stop
echo "ok: a backup of the earlier log format restores, migrates at start and verifies"
echo PASS
