#!/usr/bin/env bash
# Metrics and health: Prometheus text on the loopback HTTP listener and via
# `qsign metrics` (admins/auditors only), counters that move with the work
# done, and /healthz turning 503 while the audit log cannot be written.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "needs root for the tmpfs (CI runs as root)"
qs_setup
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fs=$T/auditfs
mkdir -p "$fs"
mount -t tmpfs -o size=256k tmpfs "$fs" || fail "mount tmpfs"
# Stop the daemon before unmounting its log directory.
trap '[ -z "$QSIGND_PID" ] || { kill "$QSIGND_PID"; wait "$QSIGND_PID"; QSIGND_PID=""; } 2>/dev/null; umount "$fs" 2>/dev/null || true; qs_cleanup' EXIT
python3 - "$QSIGN_HOME/qsignd.json" "$port" "$fs/audit" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["metrics"] = f"http://127.0.0.1:{sys.argv[2]}"
c["audit"]["dir"] = sys.argv[3]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
qs_start
m=http://127.0.0.1:$port
for i in 1 2 3; do expect_rc 0 qsign -p ci sign -r ci-sign -d "$(echo $i | sha256sum | cut -c1-64)"; done
printf '%s\n' "$(echo a | sha256sum | cut -c1-64)" "$(echo b | sha256sum | cut -c1-64)" >"$T/dg"
expect_rc 0 qsign -p ci sign-batch -r ci-sign <"$T/dg"
curl -fsS "$m/metrics" >"$T/metrics" || fail "GET /metrics"
grep -q '^qsign_signatures_total{role="ci-sign",key="ci-key"} 5$' "$T/metrics" ||
	fail "signature counter: $(grep signatures_total "$T/metrics")"
grep -q '^qsign_calls_total{method="qsign.v1.Signer/Sign",status="OK"} 3$' "$T/metrics" || fail "call counter"
grep -q '^qsign_call_seconds_count{method="qsign.v1.Signer/SignBatch"} 1$' "$T/metrics" || fail "histogram"
grep -q '^qsign_ready 1$' "$T/metrics" || fail "not ready"
grep -q '^qsign_token_sessions{token="qsign-demo"}' "$T/metrics" || fail "token gauge"
grep -q '^qsign_audit_fsyncs_total ' "$T/metrics" || fail "audit counters"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$m/healthz")" = 200 ] || fail "healthz not 200"
echo "ok: /metrics counts 5 signatures, 3 Sign calls, 1 batch; /healthz 200"

expect_rc 0 qsign -p auditor metrics
grep -q qsign_signatures_total "$T/out" || fail "qsign metrics"
expect_rc 1 qsign -p ci metrics
grep -q PERMISSION_DENIED "$T/err" || fail "ci may read metrics"
echo "ok: qsign metrics for auditors, refused to requesters"

# Audit log full: signing refused, health 503, metrics say not ready.
dd if=/dev/zero of="$fs/ballast" bs=4k status=none 2>/dev/null || true
# The entries file's last page may still hold a few entries (a commit
# writes into it without growing the file): sign until the first refusal.
for i in $(seq 1 40); do
	qsign -p ci sign -r ci-sign -d "$(echo "full $i" | sha256sum | cut -c1-64)" >"$T/out" 2>"$T/err" || break
done
[ "$i" -lt 40 ] || fail "the log took 40 entries on a full file system"
grep -qi "unavailable\|audit" "$T/err" || fail "the refusal on a full log: $(cat "$T/err")"
code=$(curl -s -o "$T/health" -w '%{http_code}' "$m/healthz")
[ "$code" = 503 ] || fail "healthz $code while the audit log is full"
grep -q "audit log" "$T/health" || fail "healthz reason: $(cat "$T/health")"
curl -fsS "$m/metrics" | grep -q '^qsign_ready 0$' || fail "qsign_ready not 0"
expect_rc 1 qsign -p auditor metrics
grep -q "not ready" "$T/err" || fail "qsign metrics does not say not ready"
echo "ok: full audit log: 503 not ready"
rm -f "$fs/ballast"
expect_rc 0 qsign -p ci sign -r ci-sign -d "$(echo back | sha256sum | cut -c1-64)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$m/healthz")" = 200 ] || fail "healthz did not recover"
echo "ok: recovered: 200 again"
# Non-loopback metrics listeners are refused at load.
qs_stop
python3 - "$QSIGN_HOME/qsignd.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["metrics"] = "http://0.0.0.0:9464"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
expect_rc 1 qsignd -c "$QSIGN_HOME/qsignd.json" --check
grep -q "loopback" "$T/err" || fail "public metrics listener accepted"
umount "$fs"
echo PASS
