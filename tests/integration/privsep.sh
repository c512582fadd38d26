#!/usr/bin/env bash
# Privilege separation (signer/keys/privsep.h) against a real qsignd:
#  1. the front process has no PKCS#11 module mapped and no PIN file open;
#     the signer helpers have the module; the launcher has neither;
#  2. SIGKILL of a helper under a load of `qsign sign`: the front restarts
#     it (log line), later signs succeed, and every signature a client got
#     back has its audit entry;
#  3. a helper refuses a request type outside its permission table and a
#     key handle it did not hand out, and exits on a malformed frame
#     (qsignd --privsep-selftest speaks the helper protocol directly);
#     the launcher dies by SIGSYS on a call its seccomp filter forbids,
#     and has no filter with "seccomp": false;
#  4. (with 1.) the launcher runs under its own filter, the helpers under
#     it and their own.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "this test needs root to read other processes' maps (CI runs as root)"
qs_setup
cfg=$QSIGN_HOME/qsignd.json
python3 - "$cfg" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["signers"] = 2
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
module=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"][0]["module"])' "$cfg")
pin=$(python3 -c 'import json,sys,os; c=json.load(open(sys.argv[1])); p=c["tokens"][0]["pin_file"]; print(p if os.path.isabs(p) else os.path.join(os.path.dirname(sys.argv[1]), p))' "$cfg")
modbase=$(basename "$module")

# ------------------------------------------------------------ 3. refusals
expect_rc 0 qsignd -c "$cfg" --privsep-selftest
cat "$T/out"
for want in "unknown request type 0x55: permission denied" \
	"sign with forged handle: permission denied" \
	"sign with its handle: success" \
	"find with a trailing byte: the helper exited" \
	"frame length 0xffffffff: the helper exited" \
	"sign with a truncated handle: the helper exited"; do
	grep -qF "ok: $want" "$T/out" || fail "selftest lacks '$want'"
done
grep -q "privsep.refused type=85" "$T/err" || fail "no refusal logged for the unknown type"
grep -q "privsep.refused handle=1001" "$T/err" || fail "no refusal logged for the forged handle"
grep -q "privsep.garbage" "$T/err" || fail "no garbage exit logged"
echo "ok: helpers refuse unknown requests and forged handles, exit on garbage"
cp "$T/out" "$T/selftest.out"
python3 - "$cfg" "$QSIGN_HOME/noseccomp.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["seccomp"] = False
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
expect_rc 0 qsignd -c "$QSIGN_HOME/noseccomp.json" --privsep-selftest
grep -qF "note: the launcher runs without a seccomp filter (Seccomp: 0)" "$T/out" ||
	fail "with \"seccomp\": false the launcher has a filter: $(grep launcher "$T/out")"
echo "ok: \"seccomp\": false: the launcher runs without a filter"

# ------------------------------------------------------------ 1. who holds what
qs_start
front=$QSIGND_PID
launcher=$(ps -o pid= --ppid "$front" | tr -d ' ')
[ -n "$launcher" ] && [ "$(cat /proc/"$launcher"/comm)" = qsignd-launch ] ||
	fail "no launcher child of the front ($launcher)"
helpers=$(ps -o pid= --ppid "$launcher" | tr -d ' ' | tr '\n' ' ')
# "signers": 2 request helpers, and one kept for the audit log's checkpoints.
[ "$(echo $helpers | wc -w)" = 3 ] || fail "expected 3 signer helpers (2 + the audit log's), found '$helpers'"
grep -q "$modbase" /proc/"$front"/maps && fail "the front maps the PKCS#11 module $modbase"
grep -q "$modbase" /proc/"$launcher"/maps && fail "the launcher maps the PKCS#11 module"
for h in $helpers; do
	[ "$(cat /proc/"$h"/comm)" = qsignd-signer ] || fail "helper $h is $(cat /proc/"$h"/comm)"
	grep -q "$modbase" /proc/"$h"/maps || fail "helper $h does not map $modbase"
done
for p in "$front" "$launcher"; do
	if ls -l /proc/"$p"/fd | grep -qF "$pin"; then fail "process $p has the PIN file open"; fi
done
echo "ok: module only in helpers ($helpers), front $front and launcher $launcher without it; no PIN file open"

# ------------------------------------------------------------ 4. seccomp filters
# "Seccomp Seccomp_filters" of a process: mode 2 = filtered, and how many.
filters() {
	echo "$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/"$1"/status) $(sed -n 's/^Seccomp_filters:[[:space:]]*//p' /proc/"$1"/status)"
}
if [ "${QS_VALGRIND:-0}" = 1 ]; then
	# qs_start turned "seccomp" off for valgrind: no process has a filter.
	for p in "$launcher" $helpers; do
		[ "$(filters "$p")" = "0 0" ] || fail "seccomp off, yet process $p has filters: $(filters "$p")"
	done
	grep -qF "ok: forbidden call in the launcher: killed by SIGSYS" "$T/selftest.out" ||
		fail "the selftest's launcher did not die by SIGSYS"
	echo "ok: \"seccomp\": false honoured (valgrind run): launcher and helpers without filters"
elif grep -q 'seccomp.skipped' "$T/qsignd.log"; then
	# Sanitizer builds install no filter anywhere, and say so.
	[ "$(filters "$launcher")" = "0 0" ] || fail "sanitizer build, yet the launcher has filters: $(filters "$launcher")"
	grep -qF "note: the launcher runs without a seccomp filter" "$T/selftest.out" ||
		fail "sanitizer build: the selftest did not note the launcher's missing filter"
	echo "note: sanitizer build: no seccomp filters (launcher included)"
else
	[ "$(filters "$launcher")" = "2 1" ] || fail "launcher $launcher: Seccomp/filters $(filters "$launcher"), want 2 1"
	for h in $helpers; do
		[ "$(filters "$h")" = "2 2" ] || fail "helper $h: Seccomp/filters $(filters "$h"), want 2 2 (the launcher's and its own)"
	done
	grep -qF "ok: forbidden call in the launcher: killed by SIGSYS" "$T/selftest.out" ||
		fail "the selftest's launcher did not die by SIGSYS: $(grep -i launcher "$T/selftest.out")"
	echo "ok: launcher under its own filter (and killed by SIGSYS on a forbidden call), helpers under two"
fi

# ------------------------------------------------------------ 2. SIGKILL a helper under load
# First use of the daemon's key (its notice on stderr) before the load,
# whose stderr must hold nothing but UNAVAILABLE.
expect_rc 0 qsign -p ci info
: >"$T/signed"
(
	for i in $(seq 1 400); do
		dg=$(printf 'privsep-%d' "$i" | sha256sum | cut -c1-64)
		if sig=$(qsign -p ci sign -r ci-sign -d "$dg" --format hex 2>>"$T/load.err"); then
			echo "$dg $sig" >>"$T/signed"
		else
			echo "$dg FAILED" >>"$T/signed"
		fi
		[ -e "$T/stop" ] && break
	done
) &
load=$!
for _ in $(seq 1 100); do
	[ "$(wc -l <"$T/signed")" -ge 20 ] && break
	sleep 0.05
done
victim=${helpers%% *}
kill -9 "$victim"
for _ in $(seq 1 100); do
	grep -q "privsep.helper_restarted old_pid=$victim" "$T/qsignd.log" && break
	sleep 0.05
done
grep -q "privsep.helper_restarted old_pid=$victim" "$T/qsignd.log" ||
	fail "the front did not restart helper $victim"
n0=$(wc -l <"$T/signed")
for _ in $(seq 1 200); do
	[ "$(wc -l <"$T/signed")" -ge $((n0 + 30)) ] && break
	sleep 0.05
done
touch "$T/stop"
wait "$load"
helpers2=$(ps -o pid= --ppid "$launcher" | tr -d ' ' | tr '\n' ' ')
[ "$(echo $helpers2 | wc -w)" = 3 ] || fail "after the restart: helpers '$helpers2'"
echo "$helpers2" | grep -qw "$victim" && fail "the killed helper is still listed"
total=$(wc -l <"$T/signed")
failed=$(grep -c FAILED "$T/signed" || true)
# Calls caught by the kill may fail (UNAVAILABLE) or be retried; the rest,
# and everything after the restart, must succeed.
[ "$failed" -le 2 ] || { cat "$T/load.err" >&2; fail "$failed of $total signs failed"; }
tail -n 30 "$T/signed" | grep -q FAILED && fail "signs still fail after the restart"
if [ -s "$T/load.err" ]; then
	grep -v -e UNAVAILABLE "$T/load.err" >&2 && fail "unexpected sign errors"
fi
# Every signature handed out is in the audit log (entries carry the digest).
expect_rc 0 qsign -p auditor audit tail -n 1000 --json
cp "$T/out" "$T/audit.txt"
missing=0
while read -r dg sig; do
	[ "$sig" = FAILED ] && continue
	grep -q "$dg" "$T/audit.txt" || { echo "unaudited: $dg" >&2; missing=$((missing + 1)); }
done <"$T/signed"
[ "$missing" = 0 ] || fail "$missing signatures returned without an audit entry"
expect_rc 0 qsign -p auditor audit verify
echo "ok: helper $victim killed under load: restarted, $total signs ($failed failed), all audited"

# A stop ends the launcher and the helpers too.
qs_stop || fail "unclean stop"
for p in $launcher $helpers2; do
	for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$p" 2>/dev/null && fail "process $p outlived qsignd"
done
echo "ok: launcher and helpers exit with the front"
echo PASS
