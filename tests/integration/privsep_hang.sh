#!/usr/bin/env bash
# A signer helper that stops answering (a hung token: simulated with
# SIGSTOP) is given up on after the reply deadline, killed and replaced, and
# the call is retried on the replacement: the client gets its signature, a
# little late, and the daemon keeps its PID.
. "$(dirname "$0")/lib.sh"
qs_setup
export QSIGND_SIGNER_TIMEOUT_MS=1000 # the default is 120 s
qs_start
dg() { echo "$1" | sha256sum | cut -c1-64; }
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg before)" --format hex
# The launcher is the daemon's child; the helpers are the launcher's.
launcher=$(pgrep -P "$QSIGND_PID" | head -1)
mapfile -t helpers < <(pgrep -P "$launcher")
[ "${#helpers[@]}" -ge 1 ] || fail "no signer helpers found under qsignd $QSIGND_PID"
# Stopped helpers never exit: let them go on any exit, or the stop hangs.
trap 'kill -CONT "${helpers[@]}" 2>/dev/null || true; qs_cleanup' EXIT
kill -STOP "${helpers[@]}"
start=$(date +%s%N)
expect_rc 0 qsign --timeout 20 -p ci sign -r ci-sign -d "$(dg during)" --format hex
ms=$((($(date +%s%N) - start) / 1000000))
[ -s "$T/out" ] || fail "no signature"
echo "ok: signed in ${ms} ms with every helper stopped (deadline 1000 ms)"
grep -q "privsep.helper_restarted\|privsep.helper_died" "$T/qsignd.log" || fail "no helper restart logged"
# The next sign goes to the other request helper (round robin), also
# stopped: given up on and replaced the same way. (The third helper, the
# audit log's, hung on the checkpoints of both.)
expect_rc 0 qsign --timeout 20 -p ci sign -r ci-sign -d "$(dg "during 2")" --format hex
for h in "${helpers[@]}"; do
	if kill -0 "$h" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$h/stat" 2>/dev/null)" != Z ]; then
		fail "hung helper $h was not killed"
	fi
done
kill -0 "$QSIGND_PID" || fail "qsignd died"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(dg after)" --format hex
qs_stop || fail "unclean stop"
echo PASS
