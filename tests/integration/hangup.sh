#!/usr/bin/env bash
# Connections that hang up during negotiation (nng issue 1518 in Debian's
# nng 1.5.2: one such peer stopped the listener for good) must never stop a
# listener: on ipc:// and tls+tcp://, 1,000 of each kind at random moments
# (see hangup.c), while valid clients keep signing over fresh connections.
# Afterwards the daemon's own health and listener probe say it still
# accepts on both listeners, and the qsign CLI gets in.
#
# QS_HANGUP_EACH overrides the count per kind (default 1000; 100 in
# sanitizer builds, whose second pass looks for memory errors, not counts:
# the TLS handshakes alone take minutes there).
. "$(dirname "$0")/lib.sh"
if qs_sanitized; then
	: "${QS_HANGUP_EACH:=100}"
fi
export QS_HANGUP_EACH=${QS_HANGUP_EACH:-1000}
qs_setup
qs_tls_pki "$T/pki"
qs_tls_listen "$T/pki"
python3 - "$QSIGN_HOME/qsignd.json" <<'PY'
import json, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
c = json.load(open(sys.argv[1])); c["metrics"] = f"http://127.0.0.1:{port}"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
metrics=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"])' "$QSIGN_HOME/qsignd.json")
qs_start
"$QS_BIN/qs_hangup" "$QSIGN_HOME" "ipc://$QSIGN_HOME/qsignd.sock" "$QS_TLS_URL" "$T/pki" ||
	fail "listeners did not survive connections that hang up during negotiation"
kill -0 "$QSIGND_PID" || fail "qsignd died"

# The CLI still gets in, on both listeners.
expect_rc 0 qsign -p ci info
expect_rc 0 qsign -s "$QS_TLS_URL" --tls-ca "$T/pki/ca.crt" --tls-server-name localhost \
	--tls-cert "$T/pki/client.crt" --tls-key "$T/pki/client.key" -p ci info

# The daemon's own view: /healthz ready, every listener up in its probe.
health() { curl -s -o "$T/health" -w '%{http_code}' "$metrics/healthz"; }
[ "$(health)" = 200 ] || fail "healthz after the storm: $(cat "$T/health")"
curl -s "$metrics/metrics" >"$T/metrics"
for u in "ipc://$QSIGN_HOME/qsignd.sock" "$QS_TLS_URL"; do
	grep -qxF "qsign_listener_up{url=\"$u\"} 1" "$T/metrics" ||
		fail "listener $u not up in /metrics: $(grep listener "$T/metrics")"
done
echo "ok: healthz 200, both listeners up in their self-probe"

# And the probe does see a listener that no longer accepts: with its socket
# file gone, no new client reaches the ipc listener; within a few seconds
# the daemon says so.
rm "$QSIGN_HOME/qsignd.sock"
for _ in $(seq 1 100); do
	[ "$(health)" = 503 ] && break
	sleep 0.1
done
[ "$(health)" = 503 ] || fail "healthz still ready 10 s after the ipc listener stopped accepting"
grep -q "listener ipc://$QSIGN_HOME/qsignd.sock does not accept" "$T/health" ||
	fail "healthz does not name the listener: $(cat "$T/health")"
curl -s "$metrics/metrics" >"$T/metrics"
grep -qxF "qsign_listener_up{url=\"ipc://$QSIGN_HOME/qsignd.sock\"} 0" "$T/metrics" ||
	fail "qsign_listener_up of the dead listener is not 0"
grep -qxF "qsign_ready 0" "$T/metrics" || fail "qsign_ready is not 0"
grep -q "listener.unready" "$T/qsignd.log" || fail "no listener.unready log line"
echo "ok: a listener that stops accepting makes the daemon not ready ($(cat "$T/health"))"
echo PASS
