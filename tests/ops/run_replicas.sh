#!/usr/bin/env bash
# ops/run --replicas 2: the replica demo starts a PostgreSQL and two
# replicas, the commands it prints work (sign through the list, one replica
# killed, sign again), and stopping it stops every process it started.
set -euo pipefail
: "${QS_BIN:?}" "${QS_SRC:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d)
export QSIGN_HOME=$T/home QS_BIN XDG_CONFIG_HOME=$T/config
run=""
cleanup() {
	[ -n "$run" ] && kill "$run" 2>/dev/null && wait "$run" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
"$QS_SRC/ops/run" --replicas 2 --no-build >"$T/out" 2>&1 &
run=$!
for _ in $(seq 1 600); do
	[ -f "$QSIGN_HOME/replicas/READY" ] && break
	kill -0 "$run" 2>/dev/null || { cat "$T/out" >&2; fail "ops/run --replicas exited"; }
	sleep 0.1
done
[ -f "$QSIGN_HOME/replicas/READY" ] || { cat "$T/out" >&2; fail "not ready after 60 s"; }
grep -q "2 qsignd replicas on one PostgreSQL" "$T/out" || fail "no summary: $(cat "$T/out")"
# The commands it prints, as printed.
server=$(sed -n 's/.*export QSIGN_HOME=[^ ]* QSIGN_SERVER=//p' "$T/out")
[ "$server" = "$(cat "$QSIGN_HOME/replicas/READY")" ] || fail "printed server list: $server"
export QSIGN_SERVER=$server
q="$QS_BIN/qsign"
echo hello >"$T/hello.txt"
"$q" -p ci sign -r ci-sign -f "$T/hello.txt" -o "$T/sig1" || fail "sign through the list"
pids=$(sed -n 's/^  r[0-9]  pid \([0-9]*\) .*/\1/p' "$T/out")
[ "$(echo "$pids" | wc -l)" = 2 ] || fail "replica PIDs not printed: $(cat "$T/out")"
r1=$(echo "$pids" | head -1)
kill "$r1"
for _ in $(seq 1 100); do kill -0 "$r1" 2>/dev/null || break; sleep 0.1; done
"$q" -p ci sign -r ci-sign -f "$T/hello.txt" -o "$T/sig2" || fail "sign after r1 stopped"
"$q" -p ci keys --json | python3 -c 'import json,sys; print([k for k in json.load(sys.stdin)["keys"] if k["name"]=="ci-key"][0]["public_pem"], end="")' >"$T/pub.pem"
for s in sig1 sig2; do
	openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/$s" "$T/hello.txt" >/dev/null || fail "$s does not verify"
done
echo "ok: the printed commands sign through either replica; r1 gone, r2 signs"
pgpid=$(head -1 "$(sed -n 's/.*(state: host=\([^ ]*\)\/sock .*/\1/p' "$T/out")/data/postmaster.pid")
r2=$(echo "$pids" | tail -1)
# Ctrl-C in a terminal; a background job of a script ignores SIGINT, so
# the test sends SIGTERM, which the script handles the same way.
kill -TERM "$run"
wait "$run" 2>/dev/null || true
run=""
for p in "$r2" "$pgpid"; do
	for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && fail "process $p still runs after Ctrl-C"
done
echo "ok: Ctrl-C (SIGTERM) stops the replicas and PostgreSQL"
echo PASS
