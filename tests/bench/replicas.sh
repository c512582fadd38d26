#!/usr/bin/env bash
# tests/bench/replicas.sh [-t SECONDS] [N] - Sign through N qsignd replicas
# (default 3) on one throwaway PostgreSQL (ops/pg.sh), all appending to the
# one audit log in the database: qsign-bench ipc with 8 threads against
# every replica at once, then per replica the signatures per second, the
# audit entries it committed and its entries per transaction (the metrics
# qsign_audit_batch_entries_total / qsign_audit_batches_total, over the
# whole run), and the log's total. Loopback and unix sockets only; every
# process started here is stopped by PID.
# Needs a build: QS_BIN=<build>/bin (default build/bin).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
QS_SRC=${QS_SRC:-$top}
QS_BIN=${QS_BIN:-$top/build/bin}
secs=3
[ "${1:-}" = -t ] && { secs=$2; shift 2; }
n=${1:-3}
T=$(mktemp -d "${TMPDIR:-/tmp}/qsign-bench-rep.XXXXXX")
export QSIGN_HOME=$T/home XDG_CONFIG_HOME=$T/config
declare -A PID
cleanup() {
	for k in "${!PID[@]}"; do kill "${PID[$k]}" 2>/dev/null || true; wait "${PID[$k]}" 2>/dev/null || true; done
	pg_stop_all 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
. "$QS_SRC/ops/pg.sh"
pg_start DB >/dev/null || fail "PostgreSQL"
QS_BIN="$QS_BIN" "$QS_SRC/ops/run" --setup-only --no-build >"$T/setup.log" 2>&1 || fail "ops/run --setup-only"
python3 - "$QSIGN_HOME" "$PG_DB_CONNINFO" <<'PY'
import json, sys
home, ci = sys.argv[1], sys.argv[2]
p = json.load(open(f"{home}/policy.json"))
p["roles"]["ci-sign"]["online"]["rate_per_second"] = 1000000
p["roles"]["ci-sign"]["online"]["burst"] = 10000000
json.dump(p, open(f"{home}/policy.json", "w"), indent=2)
c = json.load(open(f"{home}/qsignd.json"))
c["store"] = {"postgresql": ci}
c["workers"] = 8
json.dump(c, open(f"{home}/qsignd.json", "w"), indent=2)
PY
for i in $(seq 1 "$n"); do
	h=$T/r$i
	cp -a "$QSIGN_HOME" "$h"
	sed -i "s|$QSIGN_HOME|$h|g" "$h/softhsm2.conf" "$h/qsignd.json"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	python3 - "$h/qsignd.json" "$port" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["metrics"] = f"http://127.0.0.1:{sys.argv[2]}"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
	echo "$port" >"$h/metrics.port"
	SOFTHSM2_CONF=$h/softhsm2.conf "$QS_BIN/qsignd" -c "$h/qsignd.json" >"$T/r$i.log" 2>&1 &
	PID[$i]=$!
	for _ in $(seq 1 400); do grep -q "qsignd: ready" "$T/r$i.log" && break; sleep 0.05; done
	grep -q "qsignd: ready" "$T/r$i.log" || { tail "$T/r$i.log" >&2; fail "replica $i"; }
done
for i in $(seq 1 "$n"); do
	h=$T/r$i
	SOFTHSM2_CONF=$h/softhsm2.conf "$QS_BIN/qsign-bench" -t "$secs" --json --modes ipc \
		--ipc "ipc://$h/qsignd.sock" --principal ci --identity "$h/demo/ci.key" --role ci-sign \
		--module /usr/lib/softhsm/libsofthsm2.so --uri pkcs11:token=qsign-demo \
		--pin "file:$h/user.pin" --key ci-key \
		>"$T/b$i.out" 2>"$T/b$i.err" &
	PID[b$i]=$!
done
for i in $(seq 1 "$n"); do wait "${PID[b$i]}" || { cat "$T/b$i.err" >&2; fail "qsign-bench $i"; }; unset "PID[b$i]"; done
echo "$n replicas on one PostgreSQL, qsign-bench ipc against each at once (${secs} s per thread count):"
total=0
for i in $(seq 1 "$n"); do
	m=$(curl -s "http://127.0.0.1:$(cat "$T/r$i/metrics.port")/metrics")
	b=$(echo "$m" | awk '/^qsign_audit_batches_total/ {print $2}')
	e=$(echo "$m" | awk '/^qsign_audit_batch_entries_total/ {print $2}')
	python3 - "$T/b$i.out" "$i" "$b" "$e" <<'PY'
import json, sys
res = [r for r in json.loads(open(sys.argv[1]).read().splitlines()[-1])["results"] if r["ran"]]
rates = " ".join(f"x{r['threads']}:{r['sigs_per_s']:.0f}/s" for r in res)
b, e = int(sys.argv[3]), int(sys.argv[4])
print(f"replica {sys.argv[2]}: sign {rates}; audit {e} entries in {b} transactions, "
      f"{e / max(b, 1):.1f} entries per transaction")
PY
done
echo "one log: $(pg_psql DB "SELECT size FROM qsign.audit_head") entries, $(pg_psql DB "SELECT count(*) FROM qsign.signature") signatures recorded"
