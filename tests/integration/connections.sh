#!/usr/bin/env bash
# Connection abuse (see conns.c): 1,000 idle connections, 200 slow-loris
# partial handshakes/frames and 25 frames held one byte short of
# QS_MAX_FRAME, held open while a valid client signs; its
# latency (p50/p99) without, with and after the abuse, the daemon's fds and
# memory, and how many abusive connections the daemon drops by itself.
# Then everything is closed and the daemon must be as before.
#
# qsignd starts with the soft file limit systemd gives a unit that sets no
# LimitNOFILE (ops/qsignd.service sets none): 1024, hard limit unchanged
# (QS_CONN_DAEMON_NOFILE overrides it). QS_CONN_IDLE, QS_CONN_LORIS,
# QS_CONN_FILLED and QS_CONN_HOLD (seconds) override the counts and the
# hold time.
. "$(dirname "$0")/lib.sh"
t0=$(date +%s)
: "${QS_CONN_IDLE:=1000}" "${QS_CONN_LORIS:=200}" "${QS_CONN_HOLD:=15}"
: "${QS_CONN_DAEMON_NOFILE:=1024}"
qs_setup
# The daemon inherits this limit; conns raises its own (it holds every
# abusive connection).
ulimit -Sn "$QS_CONN_DAEMON_NOFILE" || fail "ulimit -n $QS_CONN_DAEMON_NOFILE"
qs_start
echo "qsignd file limit: $(awk '/open files/ { print $4 }' "/proc/$QSIGND_PID/limits")"
fds0=$(ls "/proc/$QSIGND_PID/fd" | wc -l)
rc=0
"$QS_BIN/qs_conns" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" "$QSIGND_PID" \
	"$QS_CONN_IDLE" "$QS_CONN_LORIS" "$QS_CONN_HOLD" | tee "$T/conns.out" || rc=$?
kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd died under connection abuse"
if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
	echo "FAIL: valid clients were starved by idle / slow-loris connections (above)" >&2
	starved=1
fi
# Every abusive connection is gone: the daemon's fds are back (a few may
# belong to work in progress: allow a little slack).
for _ in $(seq 1 50); do
	fds1=$(ls "/proc/$QSIGND_PID/fd" | wc -l)
	[ "$fds1" -le $((fds0 + 8)) ] && break
	sleep 0.1
done
[ "$fds1" -le $((fds0 + 8)) ] || fail "qsignd holds $fds1 fds after the abuse, $fds0 before"
echo "ok: qsignd fds: $fds0 before, $fds1 after"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(printf after | sha256sum | cut -c1-64)" --format hex
expect_rc 0 qsign -p auditor audit verify
# Bounded per-connection resources: a connection that never completes a
# handshake or a frame must be dropped by the daemon, not held forever
# (each "max-frame" one also holds a QS_MAX_FRAME receive buffer).
[ "$rc" != 3 ] || fail "qsignd keeps partial frames open indefinitely (see 'still open' above)"
[ -z "${starved:-}" ] || fail "valid clients were starved (see above)"
qs_stop || fail "qsignd did not exit cleanly after the connection abuse"
echo "PASS connections: $QS_CONN_IDLE idle + $QS_CONN_LORIS slow-loris in $(($(date +%s) - t0)) s"
