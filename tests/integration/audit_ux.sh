#!/usr/bin/env bash
# The auditor's experience against a real qsignd on the demo set-up:
# `audit verify` keeps its state in the XDG state directory (created as
# needed, also on a machine without $QSIGN_HOME), an export older than the
# remembered checkpoint verifies when it is a prefix of what was seen and
# fails when it contradicts it, --no-state; --log-key SHA256:HEX (the
# fingerprint qsignd logs); `audit search` (filters, ISO 8601 times, quorum
# signatures naming submitter and approvers, --json, --offline); `audit
# tail` hiding logins; incremental `audit export`.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_start

A=(qsign -p auditor)
digest() { printf '%s' "$1" | sha256sum | cut -c1-64; }
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
state=$XDG_STATE_HOME/qsign/audit-state.json

for i in 1 2 3; do
	expect_rc 0 qsign -p ci sign -r ci-sign -d "$(digest "ux $i")" --format hex
done
head -c 1000 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "release 4.0"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id"
expect_rc 0 qsign -p admin3 approve "$id"

# ------------------------------------------------------------ state: XDG, created as needed
[ ! -e "$XDG_STATE_HOME" ] || fail "state directory exists before the first verification"
# A machine that is not the server: no $QSIGN_HOME there at all.
sock=ipc://$QSIGN_HOME/qsignd.sock
key=$QSIGN_HOME/demo/auditor.key
expect_rc 0 env QSIGN_HOME="$T/nowhere" QSIGN_SERVER="$sock" QSIGN_IDENTITY="$key" \
	qsign -p auditor audit verify
grep -q "first verification: recorded in $state" "$T/out" || fail "XDG state: $(cat "$T/out")"
[ -f "$state" ] || fail "no state file at $state"
[ ! -e "$T/nowhere" ] || fail "qsign created \$QSIGN_HOME"
# Without XDG_STATE_HOME: ~/.local/state.
expect_rc 0 env -u XDG_STATE_HOME HOME="$T/fakehome" "${A[@]}" audit verify
[ -f "$T/fakehome/.local/state/qsign/audit-state.json" ] || fail "no state under ~/.local/state"
# --no-state compares with and records nothing.
expect_rc 0 env XDG_STATE_HOME="$T/xdg-none" "${A[@]}" audit verify --no-state
grep -q "no previous checkpoint compared (--no-state)" "$T/out" || fail "--no-state: $(cat "$T/out")"
[ ! -e "$T/xdg-none" ] || fail "--no-state wrote a state"
expect_rc 2 "${A[@]}" audit verify --no-state --state "$T/x.json"
echo "ok: state in \$XDG_STATE_HOME/qsign (or ~/.local/state), created as needed; --no-state"

# ------------------------------------------------------------ an older export is not a rollback
expect_rc 0 "${A[@]}" audit export -o "$T/old"
old_size=$(wc -l <"$T/old/entries.jsonl")
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(digest "after the export")" --format hex
expect_rc 0 "${A[@]}" audit verify
grep -q "consistent with size" "$T/out" || fail "second verify: $(cat "$T/out")"
seen=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(list(d["logs"].values())[0]["size"])' "$state")
[ "$seen" -gt "$old_size" ] || fail "state did not advance ($seen <= $old_size)"
expect_rc 0 "${A[@]}" audit verify --offline "$T/old"
grep -q "an older export: a prefix of the log of size $seen" "$T/out" ||
	fail "older export: $(cat "$T/out")"
now=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(list(d["logs"].values())[0]["size"])' "$state")
[ "$now" = "$seen" ] || fail "an older export moved the state back to $now"
echo "ok: an export older than the remembered checkpoint verifies as a prefix of it"

# An older export that contradicts what was seen: the log is rolled back to
# a copy and grows differently (a validly signed, diverging history).
qs_stop
cp -a "$QSIGN_HOME/state/audit" "$T/audit-fork"
cp -a "$QSIGN_HOME/state" "$T/state-fork"
qs_start
for i in 1 2 3 4 5; do
	expect_rc 0 qsign -p ci sign -r ci-sign -d "$(digest "seen $i")" --format hex
done
expect_rc 0 "${A[@]}" audit verify
qs_stop
mv "$QSIGN_HOME/state" "$T/state-current"
cp -a "$T/state-fork" "$QSIGN_HOME/state"
qs_start
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(digest "forked")" --format hex
expect_rc 0 "${A[@]}" audit export -o "$T/fork" --no-state
expect_rc 1 "${A[@]}" audit verify --offline "$T/fork"
grep -q "log rewritten: entry [0-9]* of this export is not the entry" "$T/err" ||
	fail "diverging older export: $(cat "$T/err")"
# The live log smaller than what was seen is still a rollback.
expect_rc 1 "${A[@]}" audit verify
grep -q "rolled back" "$T/err" || fail "live rollback: $(cat "$T/err")"
qs_stop
rm -rf "$QSIGN_HOME/state"
mv "$T/state-current" "$QSIGN_HOME/state"
qs_start
expect_rc 0 "${A[@]}" audit verify
echo "ok: an older export that contradicts the remembered log, and a live rollback, fail"

# ------------------------------------------------------------ --log-key SHA256:HEX
fp=$(cat "$T"/qsignd.log | grep -o 'log_key=SHA256:[0-9a-f]*' | head -1 | cut -d= -f2)
[ "${#fp}" = 71 ] || fail "qsignd does not log the log key fingerprint: $(grep audit.open "$T/qsignd.log")"
expect_rc 0 "${A[@]}" audit checkpoint --log-key "$fp"
grep -q "key not pinned" "$T/out" && fail "fingerprint not taken as a pin"
grep -q "log key  $fp" "$T/out" || fail "checkpoint prints another fingerprint: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit verify --log-key "$fp"
grep -q "key not pinned" "$T/out" && fail "verify: fingerprint not taken as a pin"
expect_rc 0 "${A[@]}" audit verify --offline "$T/old" --log-key "$fp"
wrong=SHA256:$(printf '0%.0s' $(seq 64))
expect_rc 1 "${A[@]}" audit verify --log-key "$wrong"
grep -q "not the pinned $wrong" "$T/err" || fail "wrong fingerprint: $(cat "$T/err")"
expect_rc 1 "${A[@]}" audit verify --offline "$T/old" --log-key "$wrong" --no-state
expect_rc 2 "${A[@]}" audit checkpoint --log-key SHA256:abc
echo "ok: --log-key takes the SHA256: fingerprint qsignd logs"

# ------------------------------------------------------------ search
# Signatures by ci so far: 3 + 1 + 5 (the forked one was rolled back).
expect_rc 0 "${A[@]}" audit search --event signature --principal ci
n=$(wc -l <"$T/out")
[ "$n" = 9 ] || fail "search --event signature --principal ci: $n lines: $(cat "$T/out")"
grep -Evq "^ *[0-9]+  $iso  signature +ci role=ci-sign " "$T/out" && fail "search lines: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --request "$id"
grep -Eq "request.submitted +$id by ci" "$T/out" || fail "search --request: $(cat "$T/out")"
grep -Eq "request.signed +$id role=release .*submitter=ci approvers=admin1,admin3" "$T/out" ||
	fail "quorum signature without submitter and approvers: $(cat "$T/out")"
[ "$(grep -c "request.vote" "$T/out")" = 2 ] || fail "search --request votes: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --event request.signed --principal admin3
grep -q "$id" "$T/out" || fail "approver's quorum signature not found: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --event signature --on today
[ "$(wc -l <"$T/out")" = 9 ] || fail "--on today: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --event signature --on yesterday
[ ! -s "$T/out" ] || fail "--on yesterday: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --event signature --since "1h ago" --until now
[ "$(wc -l <"$T/out")" = 9 ] || fail "--since 1h ago: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --until 2001-01-01
[ ! -s "$T/out" ] || fail "--until 2001-01-01: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit search --event signature -n 2
[ "$(wc -l <"$T/out")" = 2 ] || fail "-n 2: $(cat "$T/out")"
expect_rc 2 "${A[@]}" audit search --since "last tuesday"
grep -q "give a time" "$T/err" || fail "bad time: $(cat "$T/err")"
expect_rc 2 "${A[@]}" audit search --since today --until yesterday
expect_rc 0 "${A[@]}" --json audit search --role release
python3 - "$T/out" "$id" <<'PY' || fail "search --json"
import json, sys
d, rid = json.load(open(sys.argv[1])), sys.argv[2]
ev = [e["event"] for e in d["entries"]]
assert d["matched"] == len(ev) and "request.signed" in ev and "request.submitted" in ev, ev
assert all(e["role"] == "release" for e in d["entries"]), d["entries"]
r = d["requests"][rid]
assert r["submitter"] == "ci" and r["approvers"] == ["admin1", "admin3"], r
assert r["message"] == "release 4.0", r
PY
expect_rc 0 "${A[@]}" audit search --offline "$T/old" --event request.vote
[ "$(wc -l <"$T/out")" = 2 ] || fail "offline search: $(cat "$T/out")"
cp -a "$T/old" "$T/bad"
sed -i '2s/"seq":1/"seq":1 /' "$T/bad/entries.jsonl"
expect_rc 1 "${A[@]}" audit search --offline "$T/bad"
grep -q "do not match the signed checkpoint" "$T/err" || fail "tampered search: $(cat "$T/err")"
expect_rc 0 "${A[@]}" audit show 1
grep -Eq "^entry 1 \($iso\) included in the checkpoint" "$T/out" || fail "show: no ISO time: $(cat "$T/out")"
echo "ok: search by event, principal (joined), role, request, time range, -n, --json, --offline"

# ------------------------------------------------------------ tail: logins hidden
for i in $(seq 1 12); do expect_rc 0 qsign -p ci keys; done
expect_rc 0 "${A[@]}" audit tail -n 3
grep -q " auth " "$T/out" && fail "tail shows logins: $(cat "$T/out")"
[ "$(wc -l <"$T/out")" = 3 ] || fail "tail -n 3: $(cat "$T/out")"
grep -Eq "login.* hidden: --all shows them" "$T/err" || fail "tail does not say logins are hidden: $(cat "$T/err")"
expect_rc 0 "${A[@]}" audit tail -n 3 --all
[ "$(grep -c " auth " "$T/out")" = 3 ] || fail "tail --all: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit tail -n 2 --event request.vote
[ "$(grep -c "request.vote" "$T/out")" = 2 ] || fail "tail --event: $(cat "$T/out")"
expect_rc 0 "${A[@]}" audit tail -n 4 --principal admin1 --all
grep -Evq "admin1" "$T/out" && fail "tail --principal: $(cat "$T/out")"
echo "ok: audit tail hides logins unless asked, takes the search filters"

# ------------------------------------------------------------ incremental export
expect_rc 0 "${A[@]}" audit export -o "$T/archive"
grep -q "fetched all" "$T/err" || fail "first export: $(cat "$T/err")"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(digest "new today")" --format hex
expect_rc 0 "${A[@]}" audit export -o "$T/archive"
grep -Eq "fetched the [0-9]+ new, [0-9]+ known from the earlier export" "$T/err" ||
	fail "incremental export: $(cat "$T/err")"
expect_rc 0 "${A[@]}" audit verify --offline "$T/archive"
# The earlier entries are used, not fetched again: a modified one is caught.
sed -i '1s/"seq":0/"seq":0 /' "$T/archive/entries.jsonl"
expect_rc 1 "${A[@]}" audit export -o "$T/archive"
grep -q "the earlier export in $T/archive and the" "$T/err" || fail "tampered archive: $(cat "$T/err")"
# --from N: the entries before N come from the last verification's state.
expect_rc 0 "${A[@]}" audit verify
size=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(list(d["logs"].values())[0]["size"])' "$state")
expect_rc 0 "${A[@]}" audit export --from $((size - 2))
[ "$(wc -l <"$T/out")" -ge 2 ] || fail "--from: $(cat "$T/out")"
head -1 "$T/out" | grep -q "\"seq\":$((size - 2))," || fail "--from first line: $(head -1 "$T/out")"
grep -Eq "fetched the [0-9]+ new, $((size - 2)) known from the log verified on" "$T/err" ||
	fail "--from did not use the state: $(cat "$T/err")"
expect_rc 0 "${A[@]}" audit export --from $((size - 2)) --no-state
grep -q "fetched all" "$T/err" || fail "--from --no-state: $(cat "$T/err")"
echo "ok: incremental export fetches only new entries; --from uses the remembered log"

for sub in search tail verify export; do
	expect_rc 0 qsign audit "$sub" --help
	grep -q "^example: " "$T/out" || fail "audit $sub --help has no example"
done
expect_rc 0 qsign audit --help
grep -q "search" "$T/out" || fail "audit --help lacks search"
qs_stop
echo "PASS audit_ux"
