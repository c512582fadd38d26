#!/usr/bin/env bash
# qsignd migrate-store: a single-host deployment (SQLite, the audit log in
# files) moved onto PostgreSQL with its whole history:
#  - refused while qsignd runs on the old state, for a bad conninfo, and
#    for a source log that does not verify (an entry changed): nothing is
#    written to the database;
#  - a failure in the middle of the copy (the database refuses an entry)
#    leaves the target empty, and the same command then succeeds there;
#  - killed right after the COMMIT: the old state is marked already;
#  - the copy: requests (with their signature), policy versions, signature
#    records, TUF documents; the audit log's entries verbatim with its
#    signed checkpoint, so an auditor's checkpoint saved before verifies
#    (consistency proof) against the migrated log, and new entries follow;
#  - a target that already holds a state is refused and left unchanged;
#  - the moved state is marked: migrate-store, qsignd --check and qsignd
#    itself refuse it (a second history under the same log key).
. "$(dirname "$0")/lib.sh"
. "$QS_SRC/ops/pg.sh"
pg_start DB || fail "cannot start PostgreSQL"
qs_setup
CFG=$QSIGN_HOME/qsignd.json
A=(qsign -p auditor)
dg() { echo "$1" | sha256sum | cut -c1-64; }
psql_q() { pg_psql DB "$1"; }
psql_in() { # DBNAME SQL
	pg_as psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DB_SOCK" -p 5432 -U postgres -d "$1" -c "$2"
}
ROWS="SELECT (SELECT count(*) FROM qsign.policy) || ' ' || (SELECT count(*) FROM qsign.signature)
 || ' ' || (SELECT count(*) FROM qsign.request) || ' ' || (SELECT count(*) FROM qsign.vote)
 || ' ' || (SELECT count(*) FROM qsign.doc) || ' ' || (SELECT count(*) FROM qsign.audit_entry)
 || ' ' || (SELECT count(*) FROM qsign.audit_head)"
no_schema() { # DBNAME: no qsign schema was created
	[ "$(psql_in "$1" "SELECT count(*) FROM pg_namespace WHERE nspname = 'qsign'")" = 0 ] ||
		fail "$2: something was written to the database $1"
}

# --- a single-host deployment with some history
qs_start
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg one)"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg two)"
head -c 400 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "before the move"
rid=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$rid"
expect_rc 0 qsign -p admin2 approve "$rid"
expect_rc 0 qsign -p ci request fetch "$rid" -o "$T/sig.before"
expect_rc 0 qsign -p ci request submit -r release -d "$(dg pending)" -m "still pending"
pending=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$pending"
qs_policy_apply 2 "version 2"
pid=$QS_POLICY_REQ
expect_rc 0 qsign -p admin1 tuf init -m "first TUF root"
tid=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$tid"
expect_rc 0 qsign -p admin3 approve "$tid"
head -c 3000 /dev/urandom >"$T/app.bin"
expect_rc 0 qsign -p ci tuf push-targets "$T/app.bin"
# The auditor's view before the move: its checkpoint is kept in the state.
expect_rc 0 "${A[@]}" audit verify --state "$T/auditor.state"
echo "ok: ($SECONDS s) a SQLite deployment with signatures, requests, policy v2, TUF"

# --- refused while qsignd runs: the database is not touched
expect_rc 1 qsignd -c "$CFG" migrate-store --to "$PG_DB_CONNINFO"
grep -q "is qsignd running" "$T/err" || fail "no 'is qsignd running' in: $(cat "$T/err")"
no_schema qsign "a migration while qsignd runs"
qs_stop
echo "ok: refused while qsignd runs on the state, nothing written"

sq() { sqlite3 "$QSIGN_HOME/state/state.db" "$1"; }
nsig=$(sq "SELECT count(*) FROM signature")
nreq=$(sq "SELECT count(*) FROM request")
ndoc=$(sq "SELECT count(*) FROM doc")
[ "$ndoc" -gt 0 ] && [ "$nreq" = 4 ] || fail "unexpected source state: $nreq requests, $ndoc documents"
cp "$QSIGN_HOME/state/audit/entries" "$T/entries.before"

# --- bad arguments and conninfos
expect_rc 2 qsignd -c "$CFG" migrate-store
expect_rc 1 qsignd -c "$CFG" migrate-store --to "host=$T/nowhere dbname=qsign user=postgres connect_timeout=2"
grep -qi "unavailable" "$T/err" || fail "unreachable database: $(cat "$T/err")"
expect_rc 1 qsignd -c "$CFG" migrate-store --to "dbname='unterminated"
grep -q "conninfo" "$T/err" || fail "malformed conninfo: $(cat "$T/err")"
expect_rc 0 qsignd --help
grep -q "migrate-store --to CONNINFO" "$T/out" || fail "--help does not mention migrate-store"
echo "ok: bad conninfos refused with the reason"

# --- a source log that does not verify: refused, nothing written
TH=$T/tampered
cp -a "$QSIGN_HOME" "$TH"
sed -i "s|$QSIGN_HOME|$TH|g" "$TH/softhsm2.conf" "$TH/qsignd.json"
python3 - "$TH/state/audit/entries" <<'PY'
import hashlib, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
# The first entry record (after the 8-byte header; checkpoint records have
# the length's top bit set): a u32 length, the entry's JSON, the first 4
# bytes of its leaf hash. Change one digit of its time and mend the
# record's checksum: only the signed tree shows it.
off = 8
while int.from_bytes(b[off:off + 4], "big") & 0x80000000:
    off += 8 + (int.from_bytes(b[off:off + 4], "big") & 0x7fffffff)
n = int.from_bytes(b[off:off + 4], "big")
d = off + 4
i = b.index(b'"time":', d, d + n) + 8
b[i] = ord("1") if b[i] != ord("1") else ord("2")
b[d + n:d + n + 4] = hashlib.sha256(b"\0" + bytes(b[d:d + n])).digest()[:4]
open(p, "wb").write(bytes(b))
PY
expect_rc 1 env SOFTHSM2_CONF="$TH/softhsm2.conf" qsignd -c "$TH/qsignd.json" migrate-store --to "$PG_DB_CONNINFO"
grep -q "does not verify" "$T/err" || fail "tampered log: $(cat "$T/err")"
no_schema qsign "a migration of a tampered log"
echo "ok: a source log that does not verify is refused, nothing written"

# --- a failure in the middle of the copy: the target stays empty, and the
# same command then succeeds there. A second database with the schema (as
# qsignd creates it) whose entry table refuses the sixth entry.
pg_as "$PG_BIN/createdb" -h "$PG_DB_SOCK" -p 5432 -U postgres qsign2
expect_rc 0 qsignd -c "$CFG" migrate-store --to "${PG_DB_CONNINFO/dbname=qsign/dbname=qsign2}"
for t in audit_entry audit_head vote request_sig request signature policy doc; do
	psql_in qsign2 "DELETE FROM qsign.$t"
done

# --- a moved state is marked: no second migration, no qsignd on it
MARK=$QSIGN_HOME/state/MOVED-TO-POSTGRESQL
MARK_LOG=$QSIGN_HOME/state/audit/MOVED-TO-POSTGRESQL
[ -f "$MARK" ] || fail "the migrated state is not marked"
[ -f "$MARK_LOG" ] || fail "the migrated audit log's directory is not marked"
expect_rc 1 qsignd -c "$CFG" migrate-store --to "$PG_DB_CONNINFO"
grep -q "was moved to PostgreSQL" "$T/err" || fail "a moved state migrated again: $(cat "$T/err")"
no_schema qsign "a second migration of a moved state"
expect_rc 1 qsignd -c "$CFG" --check
grep -q "was moved to PostgreSQL" "$T/err" || fail "--check on a moved state: $(cat "$T/err")"
expect_rc 1 timeout 60 qsignd -c "$CFG"
grep -q "was moved to PostgreSQL" "$T/err" || fail "qsignd started on a moved state: $(cat "$T/err")"
cmp -s "$T/entries.before" "$QSIGN_HOME/state/audit/entries" || fail "the refused start changed the old log"
# No backup of it either (restored elsewhere it would extend the old log),
# and no restore over it.
expect_rc 1 qsignd -c "$CFG" backup -o "$T/bk-moved"
grep -q "was moved to PostgreSQL" "$T/err" || fail "a moved state was backed up: $(cat "$T/err")"
[ ! -e "$T/bk-moved" ] || fail "the refused backup wrote $T/bk-moved"
expect_rc 1 qsignd -c "$CFG" restore -i "$T/bk-moved" --force
grep -q "was moved to PostgreSQL" "$T/err" || fail "a restore over a moved state: $(cat "$T/err")"
# The same log under another state directory: the log's own marker refuses.
python3 - "$CFG" "$QSIGN_HOME/other.json" "$QSIGN_HOME" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["state_dir"] = sys.argv[3] + "/state-other"
c.setdefault("audit", {})["dir"] = sys.argv[3] + "/state/audit"
json.dump(c, open(sys.argv[2], "w"))
PY
expect_rc 1 timeout 60 qsignd -c "$QSIGN_HOME/other.json"
grep -q "was moved to PostgreSQL" "$T/err" || fail "the moved log under another state_dir: $(cat "$T/err")"
cmp -s "$T/entries.before" "$QSIGN_HOME/state/audit/entries" || fail "the refused start changed the old log"
rm "$MARK" "$MARK_LOG" # on purpose: migrate this state again, into the database of the test
echo "ok: a moved state is refused by migrate-store, --check, backup, restore and qsignd (also under another state_dir) until its markers are removed"

psql_in qsign2 "ALTER TABLE qsign.audit_entry ADD CONSTRAINT refuse CHECK (seq < 5)"
expect_rc 1 qsignd -c "$CFG" migrate-store --to "${PG_DB_CONNINFO/dbname=qsign/dbname=qsign2}"
grep -q "refuse" "$T/err" || fail "the injected failure: $(cat "$T/err")"
[ "$(psql_in qsign2 "$ROWS")" = "0 0 0 0 0 0 0" ] ||
	fail "a failed copy left rows behind: $(psql_in qsign2 "$ROWS")"
[ ! -f "$MARK" ] && [ ! -f "$MARK_LOG" ] || fail "a failed copy marked the state as moved"
psql_in qsign2 "ALTER TABLE qsign.audit_entry DROP CONSTRAINT refuse"
expect_rc 0 qsignd -c "$CFG" migrate-store --to "${PG_DB_CONNINFO/dbname=qsign/dbname=qsign2}"
rm "$MARK" "$MARK_LOG" # as above
echo "ok: a copy that fails in the middle leaves the target empty; run again, it succeeds"

# --- killed right after the COMMIT, before the copy is checked (kill -9,
# Ctrl-C during a long check): the old state is marked already, so no
# qsignd extends the old log beside the committed copy.
FAULTD=$QS_BIN/qsignd-fault
[ -x "$FAULTD" ] || fail "$FAULTD is missing (built by tests/integration/CMakeLists.txt)"
pg_as "$PG_BIN/createdb" -h "$PG_DB_SOCK" -p 5432 -U postgres qsign3
expect_rc 137 env QS_FAULT=migrate.after_commit "$FAULTD" -c "$CFG" migrate-store \
	--to "${PG_DB_CONNINFO/dbname=qsign/dbname=qsign3}"
[ "$(psql_in qsign3 "SELECT count(*) FROM qsign.audit_entry")" -gt 0 ] ||
	fail "the fault point did not follow the COMMIT"
[ -f "$MARK" ] || fail "a migration killed after its COMMIT left the old state unmarked"
expect_rc 1 timeout 60 qsignd -c "$CFG"
grep -q "was moved to PostgreSQL" "$T/err" || fail "qsignd started beside a committed copy: $(cat "$T/err")"
grep -q "remove this file and run it again" "$MARK" || fail "the marker does not say what to do"
rm "$MARK" "$MARK_LOG" # as above
echo "ok: a migration killed after its COMMIT leaves the old state marked"

# --- the migration
expect_rc 0 qsignd -c "$CFG" migrate-store --to "$PG_DB_CONNINFO"
grep -q "^migrate-store: .* 2 policy versions, $nsig signature records, $nreq requests, $ndoc documents, audit log of [0-9]* entries (root [0-9a-f]\{64\}), its signed checkpoint unchanged; verified" "$T/out" ||
	fail "migration report: $(cat "$T/out")"
cmp -s "$T/entries.before" "$QSIGN_HOME/state/audit/entries" || fail "the migration changed the source log"
size=$(sed -n 's/.*audit log of \([0-9]*\) entries.*/\1/p' "$T/out")
before=$(psql_q "$ROWS")
[ "$before" = "2 $nsig $nreq $(sq "SELECT count(*) FROM vote") $ndoc $size 1" ] ||
	fail "the copy's rows: $before"
# The database's entries are the file's, byte for byte, in order.
psql_q "SELECT encode(data, 'base64') FROM qsign.audit_entry ORDER BY seq" | tr -d '\n' >"$T/pg.b64"
python3 - "$T/entries.before" "$T/pg.b64" "$size" <<'PY' || fail "the copied entries differ from the file's"
import sys, base64, re
b = open(sys.argv[1], "rb").read()
ents, off = [], 8
while off + 8 <= len(b):
    n = int.from_bytes(b[off:off + 4], "big")
    if not n & 0x80000000:
        ents.append(b[off + 4:off + 4 + n])
    off += 8 + (n & 0x7fffffff)
want = b"".join(base64.b64encode(e) for e in ents[:int(sys.argv[3])])
assert open(sys.argv[2], "rb").read() == want
PY
echo "ok: ($SECONDS s) migrated: every row, the entries verbatim"

# --- a target that already holds a state: refused, unchanged
[ -f "$MARK" ] || fail "the migrated state is not marked"
mv "$MARK" "$T/mark" # only to reach the target's own refusal
mv "$MARK_LOG" "$T/mark_log"
expect_rc 1 qsignd -c "$CFG" migrate-store --to "$PG_DB_CONNINFO"
grep -q "already holds a quorum-signer state" "$T/err" || fail "non-empty target: $(cat "$T/err")"
[ "$(psql_q "$ROWS")" = "$before" ] || fail "a refused migration changed the target"
mv "$T/mark" "$MARK"
mv "$T/mark_log" "$MARK_LOG"
echo "ok: a target that holds a state is refused and left unchanged"

# --- qsignd on PostgreSQL: the history is there, the auditor's checkpoint verifies
qs_use_pg "$CFG" "$PG_DB_CONNINFO"
rm -rf "$QSIGN_HOME/tuf" # published anew from the store
qs_start
expect_rc 0 "${A[@]}" audit verify --state "$T/auditor.state"
expect_rc 0 qsign -p ci request fetch "$rid" -o "$T/sig.after"
cmp -s "$T/sig.before" "$T/sig.after" || fail "the signed request's signature changed"
expect_rc 0 qsign -p admin1 --json request list
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
st = {r["id"]: r["state"] for r in (d if isinstance(d, list) else d["requests"])}
assert st.get(sys.argv[2]) == "signed" and st.get(sys.argv[4]) == "signed", st
assert st.get(sys.argv[3]) == "pending", st
' "$T/out" "$rid" "$pending" "$pid" || fail "requests after the migration: $(cat "$T/out")"
# The pending request goes on: the second approval signs it.
expect_rc 0 qsign -p admin2 approve "$pending"
expect_rc 0 qsign -p ci request fetch "$pending" -o "$T/sig.pending"
expect_rc 0 qsign -p admin1 policy show
grep -q '"version": 2' "$T/out" || fail "policy v2 lost"
[ -f "$QSIGN_HOME/tuf/ci/metadata/1.root.json" ] || fail "the TUF repository was not published from the store"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg after)"
[ "$(psql_q "SELECT count(*) FROM qsign.signature")" = $((nsig + 1)) ] || fail "signature records after the move"
expect_rc 0 "${A[@]}" audit verify --state "$T/auditor.state"
[ "$(psql_q "SELECT size FROM qsign.audit_head")" -gt "$size" ] || fail "no entries appended after the move"
echo "ok: ($SECONDS s) qsignd on PostgreSQL serves the history; the auditor's old checkpoint verifies; new entries append"
qs_stop
