#!/usr/bin/env bash
# tests/bench/run.sh [-t SECONDS] [-k] - run qsign-bench on a fresh demo set-up.
#
# Sets up a temporary QSIGN_HOME (ops/run --setup-only: SoftHSM token
# "qsign-demo", ECDSA P-256 key "ci-key", principal "ci"), raises the rate
# limit of role ci-sign out of the way, gives qsignd 8 workers and a mutual
# TLS listener, starts qsignd and `p11-kit server` exporting the same token,
# runs qsign-bench against all of them, then checks the run:
#   - every mode produced signatures and qsign-bench reported no error;
#   - the sample signatures of every mode verify with `openssl pkeyutl`
#     against the public key that qsignd publishes (ListKeys), which also
#     proves that all modes used the same key.
# With PostgreSQL installed (postgresql-15), it also compares Sign ipc on
# SQLite with 1, 2 and 3 replicas on a throwaway PostgreSQL, and times a
# client's fail-over when its replica is killed (QS_BENCH_PG=0 skips that).
# Everything started here is stopped by PID; the directory is removed
# (-k keeps it). -t: seconds per measurement (default 3).
#
# Needs a build: QS_BIN=<build>/bin (ctest sets it; default build/bin).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
QS_SRC=${QS_SRC:-$top}
QS_BIN=${QS_BIN:-$top/build/bin}
secs=3
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	-t) [ $# -ge 2 ] || { echo "run.sh: -t needs seconds" >&2; exit 2; }; secs=$2; shift 2 ;;
	-k) keep=1; shift ;;
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
for b in qsignd qsign qsign-token qsign-bench; do
	[ -x "$QS_BIN/$b" ] || { echo "run.sh: $QS_BIN/$b missing: build first (QS_BIN=<build>/bin)" >&2; exit 2; }
done
module=/usr/lib/softhsm/libsofthsm2.so
client_module=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
for f in "$module" "$client_module"; do
	[ -f "$f" ] || { echo "run.sh: $f missing (packages softhsm2, p11-kit-modules)" >&2; exit 2; }
done
command -v p11-kit >/dev/null || { echo "run.sh: p11-kit missing (package p11-kit)" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qsign-bench.XXXXXX")
export QSIGN_HOME="$T/home"
export XDG_CONFIG_HOME="$T/config" # qsign's known_servers
export SOFTHSM2_CONF="$QSIGN_HOME/softhsm2.conf"
QSIGND_PID=""
P11KIT_PID=""

stop_pid() { # pid
	if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
		kill "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
	fi
}
cleanup() {
	stop_pid "$P11KIT_PID"
	stop_pid "$QSIGND_PID"
	stop_pid "${NOAUDIT_PID:-}"
	stop_pid "${INPROC_PID:-}"
	stop_pid "${NOGUARD_PID:-}"
	stop_pid "${SIDE_PID:-}" # one that failed to get ready
	for p in ${REPLICA_PIDS:-}; do stop_pid "$p"; done
	if declare -F pg_stop_all >/dev/null; then pg_stop_all; fi
	if [ "$keep" = 1 ]; then echo "run.sh: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for l in qsignd.log p11kit.log; do
		if [ -s "$T/$l" ]; then
			echo "--- $l (last 20 lines)" >&2
			tail -20 "$T/$l" >&2
		fi
	done
	exit 1
}

# --- demo set-up, then the benchmark's changes (before the first start,
# while the bootstrap policy file still decides)
QS_BIN="$QS_BIN" "$QS_SRC/ops/run" --setup-only --no-build >"$T/setup.log" 2>&1 ||
	{ cat "$T/setup.log" >&2; fail "ops/run --setup-only"; }

pki=$T/pki
mkdir -p "$pki"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
(
	cd "$pki"
	ec ca.key
	openssl req -x509 -new -key ca.key -subj "/CN=bench CA" -days 2 -out ca.crt 2>/dev/null
	ec server.key
	openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
	openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.crt 2>/dev/null
	ec client.key
	openssl req -new -key client.key -subj "/CN=bench-client" -out client.csr 2>/dev/null
	openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-out client.crt 2>/dev/null
) || fail "certificates"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$QSIGN_HOME" "$pki" "$port" <<'PY' || fail "editing policy/config"
import json, os, sys
home, pki, port = sys.argv[1], sys.argv[2], sys.argv[3]
pp = f"{home}/policy.json"
p = json.load(open(pp))
# The benchmark measures the signing path, not the rate limiter: the
# largest limits the policy accepts.
p["roles"]["ci-sign"]["online"]["rate_per_second"] = 1000000
p["roles"]["ci-sign"]["online"]["burst"] = 10000000
json.dump(p, open(pp, "w"), indent=2)
cp = f"{home}/qsignd.json"
c = json.load(open(cp))
c["workers"] = 8
if os.environ.get("QS_BENCH_SIGNERS"):
    c["signers"] = int(os.environ["QS_BENCH_SIGNERS"])
c["listen"].append(f"tls+tcp://127.0.0.1:{port}")
c["tls"] = {"cert": f"{pki}/server.crt", "key": f"{pki}/server.key",
            "client_ca": f"{pki}/ca.crt"}
json.dump(c, open(cp, "w"), indent=2)
PY

# --- qsignd
"$QS_BIN/qsignd" -c "$QSIGN_HOME/qsignd.json" >"$T/qsignd.log" 2>&1 &
QSIGND_PID=$!
for _ in $(seq 1 200); do
	grep -q "qsignd: ready" "$T/qsignd.log" 2>/dev/null && break
	kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd exited during start"
	sleep 0.05
done
grep -q "qsignd: ready" "$T/qsignd.log" || fail "qsignd not ready after 10 s"

# --- idle RSS of qsignd before any load: the front process and its helper
# processes (its children: signer helpers, the launcher)
sleep 1
idle_front=$(awk '/^VmRSS/ {print $2}' "/proc/$QSIGND_PID/status")
descendants() { # pid: its child processes, theirs, ...
	local c
	for c in $(ps -o pid= --ppid "$1"); do
		echo "$c"
		descendants "$c"
	done
}
idle_helpers=0
idle_nhelpers=0
for p in $(descendants "$QSIGND_PID"); do
	r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
	idle_helpers=$((idle_helpers + ${r:-0}))
	idle_nhelpers=$((idle_nhelpers + 1))
done

# --- p11-kit server exporting the same token
sock=$T/p11kit.sock
p11-kit server -f -n "$sock" --provider "$module" "pkcs11:token=qsign-demo" \
	>"$T/p11kit.log" 2>&1 &
P11KIT_PID=$!
for _ in $(seq 1 200); do
	[ -S "$sock" ] && break
	kill -0 "$P11KIT_PID" 2>/dev/null || fail "p11-kit server exited during start"
	sleep 0.05
done
[ -S "$sock" ] || fail "p11-kit server socket $sock not there after 10 s"

# --- the public key as qsignd publishes it: the reference for every mode
"$QS_BIN/qsign" -p ci keys --json >"$T/keys.json" 2>"$T/keys.err" ||
	{ cat "$T/keys.err" >&2; fail "qsign keys"; }
python3 - "$T/keys.json" >"$T/ci-key.pem" <<'PY' || fail "no ci-key in ListKeys"
import json, sys
keys = json.load(open(sys.argv[1]))["keys"]
print(next(k["public_pem"] for k in keys if k["name"] == "ci-key"), end="")
PY

# --- the benchmark
rc=0
P11_KIT_SERVER_ADDRESS="unix:path=$sock" "$QS_BIN/qsign-bench" -t "$secs" --json \
	--samples "$T/samples" \
	--module "$module" --p11kit-module "$client_module" \
	--uri "pkcs11:token=qsign-demo" --pin "file:$QSIGN_HOME/user.pin" --key ci-key \
	--ipc "ipc://$QSIGN_HOME/qsignd.sock" --principal ci \
	--identity "$QSIGN_HOME/demo/ci.key" --role ci-sign \
	--tls "tls+tcp://127.0.0.1:$port" --tls-cert "$pki/client.crt" \
	--tls-key "$pki/client.key" --tls-ca "$pki/ca.crt" --tls-server-name localhost \
	>"$T/bench.out" 2>"$T/bench.err" || rc=$?
cat "$T/bench.out"
awk -v f="$idle_front" -v h="$idle_helpers" -v n="$idle_nhelpers" 'BEGIN {
	printf "\nidle RSS of qsignd: front %.1f MB, %d helper processes %.1f MB, together %.1f MB (target: front <= 20 MB)\n",
		f / 1024, n, h / 1024, (f + h) / 1024 }'
[ "$rc" = 0 ] || { cat "$T/bench.err" >&2; fail "qsign-bench exited $rc"; }
kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd died during the benchmark"
kill -0 "$P11KIT_PID" 2>/dev/null || fail "p11-kit server died during the benchmark"

# --- checks: every mode signed, and signed with this key
tail -1 "$T/bench.out" >"$T/bench.json"
python3 - "$T/bench.json" <<'PY' || fail "a mode produced no valid signatures"
import json, sys
j = json.load(open(sys.argv[1]))
want = {("direct", 1), ("direct", 2), ("direct", 8), ("p11kit", 1), ("p11kit", 2),
        ("p11kit", 8), ("ipc", 1), ("ipc", 8), ("tls", 1), ("tls", 8), ("batch", 1),
        ("batch", 2)}
seen = set()
bad = []
for r in j["results"]:
    seen.add((r["mode"], r["threads"]))
    if not (r["ran"] and r["ok"] and r["signatures"] > 0 and r["errors"] == 0
            and r["samples"] > 0 and r["verified"] == r["samples"]):
        bad.append(f'{r["mode"]} x{r["threads"]}: {r}')
if want - seen:
    bad.append(f"missing rows: {sorted(want - seen)}")
for b in bad:
    print("bad:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
n=0
for mode in direct p11kit ipc tls batch; do
	m=0
	for sig in "$T/samples/$mode"-*.sig; do
		[ -f "$sig" ] || continue
		openssl pkeyutl -verify -pubin -inkey "$T/ci-key.pem" -in "${sig%.sig}.dg" \
			-sigfile "$sig" >/dev/null 2>&1 ||
			fail "sample $(basename "$sig") does not verify against qsignd's ci-key"
		m=$((m + 1))
	done
	[ "$m" -gt 0 ] || fail "no sample signatures from mode $mode"
	n=$((n + m))
done
echo "run.sh: ok: every mode signed; $n sample signatures verify with openssl against ci-key"

# --- the PKCS#11 module (libqsign-pkcs11.so): C_Sign through the module vs
# Sign over ipc (the ipc rows above), same daemon, same key, same run, 1
# and 8 client threads. Each C_Sign is one Sign RPC on a pooled connection.
p11mod=${QS_BUILD:-$QS_BIN/..}/lib/libqsign-pkcs11.so
if [ -f "$p11mod" ] && [ -x "$QS_BIN/p11_client" ]; then
	: >"$T/pkcs11.rows"
	for thr in 1 8; do
		QSIGN_SERVER="ipc://$QSIGN_HOME/qsignd.sock" QSIGN_PRINCIPAL=ci \
			QSIGN_IDENTITY="$QSIGN_HOME/demo/ci.key" \
			"$QS_BIN/p11_client" "$p11mod" bench ci-sign ci-key "$thr" "$secs" \
			>>"$T/pkcs11.rows" 2>"$T/pkcs11.err" ||
			{ cat "$T/pkcs11.err" >&2; fail "p11_client bench ($thr threads)"; }
	done
	python3 - "$T/bench.json" "$T/pkcs11.rows" <<'PY' || fail "pkcs11 rows"
import json, sys
ipc = {r["threads"]: r["sigs_per_s"] for r in json.load(open(sys.argv[1]))["results"]
       if r["mode"] == "ipc" and r["ran"]}
print("\nPKCS#11 module (C_Sign through libqsign-pkcs11.so) vs Sign over ipc, same run:")
print(f"{'mode':8}{'thr':>5}{'sigs/s':>10}{'ipc':>10}{'ratio':>8}")
worst = None
for line in open(sys.argv[2]):
    mode, thr, sigs, secs, rate = line.split()
    thr, rate = int(thr), float(rate)
    if int(sigs) <= 0:
        sys.exit(f"pkcs11 x{thr}: no signatures")
    ratio = rate / ipc[thr]
    worst = ratio if worst is None else min(worst, ratio)
    print(f"{mode:8}{thr:>5}{rate:>10.0f}{ipc[thr]:>10.0f}{ratio:>8.2f}")
print(f"pkcs11: worst ratio {worst:.2f} ({'meets' if worst >= 0.9 else 'BELOW'} the 0.9 target)")
PY
fi

# A second daemon beside the first, on the same token and key: config NAME
# (own socket $T/NAME.sock, own state, no TLS or metrics listener; SIGNERS
# if given), binary BIN; waits until it is ready and sets SIDE_PID.
side_daemon() { # NAME BIN [SIGNERS]
	python3 - "$QSIGN_HOME/qsignd.json" "$T/$1.json" "$T" "$1" "${3:-}" <<'PY' || fail "$1 config"
import json, sys
c = json.load(open(sys.argv[1]))
t, name, signers = sys.argv[3], sys.argv[4], sys.argv[5]
home = sys.argv[1].rsplit("/", 1)[0]
if signers:
    c["signers"] = int(signers)
c["listen"] = [f"ipc://{t}/{name}.sock"]
c.pop("tls", None)
c.pop("metrics", None)
c["state_dir"] = f"{t}/state-{name}"
c["policy"] = f"{home}/" + c["policy"] if not c["policy"].startswith("/") else c["policy"]
for tok in c["tokens"]:
    if not tok["pin_file"].startswith("/"):
        tok["pin_file"] = f"{home}/" + tok["pin_file"]
c["audit"].pop("dir", None)
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
	"$QS_BIN/$2" -c "$T/$1.json" >"$T/$1.log" 2>&1 &
	SIDE_PID=$!
	for _ in $(seq 1 200); do
		grep -q "qsignd: ready" "$T/$1.log" 2>/dev/null && return 0
		kill -0 "$SIDE_PID" 2>/dev/null || { cat "$T/$1.log" >&2; fail "$1 daemon ($2) exited"; }
		sleep 0.05
	done
	fail "$1 daemon ($2) not ready after 10 s"
}
# --- the audit log's cost: the same daemon with audit_append a no-op
# (qsignd-noaudit, built only for this), same key, same run.
side_daemon noaudit qsignd-noaudit
NOAUDIT_PID=$SIDE_PID
for which in on off; do
	url="ipc://$QSIGN_HOME/qsignd.sock"
	[ "$which" = off ] && url="ipc://$T/noaudit.sock"
	"$QS_BIN/qsign-bench" -t "$secs" --json --modes ipc,batch --ipc "$url" --principal ci \
		--identity "$QSIGN_HOME/demo/ci.key" --role ci-sign \
		--module "$module" --uri "pkcs11:token=qsign-demo" --pin "file:$QSIGN_HOME/user.pin" \
		--key ci-key >"$T/audit-$which.out" 2>"$T/audit-$which.err" ||
		{ cat "$T/audit-$which.err" >&2; fail "qsign-bench (audit $which)"; }
	tail -1 "$T/audit-$which.out" >"$T/audit-$which.json"
done
python3 - "$T/audit-on.json" "$T/audit-off.json" <<'PY' || fail "audit on/off comparison"
import json, sys
on = {(r["mode"], r["threads"]): r for r in json.load(open(sys.argv[1]))["results"] if r["ran"]}
off = {(r["mode"], r["threads"]): r for r in json.load(open(sys.argv[2]))["results"] if r["ran"]}
print("\naudit log on vs off (same daemon build, audit_append a no-op when off):")
print(f"{'mode':8}{'thr':>5}{'on sigs/s':>12}{'off sigs/s':>12}{'on/off':>8}")
for k in sorted(set(on) & set(off)):
    a, b = on[k]["sigs_per_s"], off[k]["sigs_per_s"]
    if not (on[k]["signatures"] > 0 and off[k]["signatures"] > 0):
        sys.exit(f"no signatures in {k}")
    print(f"{k[0]:8}{k[1]:>5}{a:>12.0f}{b:>12.0f}{a / b:>8.2f}")
PY

# Two daemons measured alternately, twice each (A, B, A, B), the better of
# the two rounds of each compared, so that a noisy neighbour cannot make
# either side look better. alternate PREFIX URL_A URL_B writes
# $T/PREFIX-{a,b}-{1,2}.json; compare PREFIX TITLE LABEL_A LABEL_B BAR prints
# the table and the worst ratio A/B against BAR.
alternate() { # PREFIX URL_A URL_B
	for round in 1 2; do
		for which in a b; do
			url=$2
			[ "$which" = b ] && url=$3
			"$QS_BIN/qsign-bench" -t "$secs" --json --modes ipc,batch --ipc "$url" --principal ci \
				--identity "$QSIGN_HOME/demo/ci.key" --role ci-sign \
				--module "$module" --uri "pkcs11:token=qsign-demo" --pin "file:$QSIGN_HOME/user.pin" \
				--key ci-key >"$T/$1-$which-$round.out" 2>"$T/$1-$which-$round.err" ||
				{ cat "$T/$1-$which-$round.err" >&2; fail "qsign-bench ($1 $which)"; }
			tail -1 "$T/$1-$which-$round.out" >"$T/$1-$which-$round.json"
		done
	done
}
compare() { # PREFIX TITLE LABEL_A LABEL_B BAR
	python3 - "$T" "$@" <<'PY' || fail "$1 comparison"
import json, sys
t, prefix, title, la, lb, bar = sys.argv[1:7]
bar = float(bar)
def best(which):
    out = {}
    for rnd in (1, 2):
        for r in json.load(open(f"{t}/{prefix}-{which}-{rnd}.json"))["results"]:
            if not r["ran"]:
                continue
            if r["signatures"] <= 0 or r["errors"] != 0:
                sys.exit(f"{prefix} {which} {r['mode']} x{r['threads']}: no clean signatures")
            k = (r["mode"], r["threads"])
            out[k] = max(out.get(k, 0), r["sigs_per_s"])
    return out
a, b = best("a"), best("b")
print(f"\n{title} (same run, best of 2 alternating rounds each; bar: {la} >= {bar:.2f} x {lb}):")
print(f"{'mode':8}{'thr':>5}{la:>10}{lb:>10}{'ratio':>8}")
worst = None
for k in sorted(set(a) & set(b)):
    ratio = a[k] / b[k]
    worst = ratio if worst is None else min(worst, ratio)
    print(f"{k[0]:8}{k[1]:>5}{a[k]:>10.0f}{b[k]:>10.0f}{ratio:>8.2f}")
print(f"{prefix}: worst ratio {worst:.2f} ({'within' if worst >= bar else 'OVER'} the bar)")
PY
}

# --- the signer helpers' checks of online signatures (signer/keys/privsep_guard.h:
# key purpose, the role's rate in the helper, the checkpoint's origin and
# size): the same daemon with them skipped (qsignd-noguard, built only for
# this). Target: at most 5% on online signing.
side_daemon noguard qsignd-noguard
NOGUARD_PID=$SIDE_PID
alternate guard "ipc://$QSIGN_HOME/qsignd.sock" "ipc://$T/noguard.sock"
compare guard "signer helper checks on vs off (qsignd-noguard skips them)" on off 0.95
stop_pid "$NOGUARD_PID"
# The same checks alone, per call (no daemon, no token): what the ratio
# above cannot resolve on a busy machine.
"$QS_BIN/guard_bench" "$QSIGN_HOME/qsignd.json" 200000 || fail "guard_bench"

# --- privilege separation's cost: the same build with the tokens in the
# front process ("signers": 0) beside the daemon above (its signer helpers:
# "signers" from QS_BENCH_SIGNERS, else one per CPU).
side_daemon inproc qsignd 0
INPROC_PID=$SIDE_PID
if grep -q "privsep.start" "$T/inproc.log"; then fail "the in-process daemon started signer helpers"; fi
grep -q "privsep.start" "$T/qsignd.log" || echo "note: the daemon under test runs without signer helpers (QS_BENCH_SIGNERS=0)"
alternate ps "ipc://$QSIGN_HOME/qsignd.sock" "ipc://$T/inproc.sock"
compare ps "privilege separation: signer helpers vs tokens in process" split in-proc 0.90

# --- replicas on PostgreSQL (ops/docs/replicated.md): Sign ipc x8 on the
# SQLite daemon above vs 1, 2 and 3 replicas on one throwaway PostgreSQL
# (ops/pg.sh), the 8 clients spread over the replicas, same run; then the
# time a client listing every replica loses when the one it talks to is
# killed. Skipped without PostgreSQL (QS_BENCH_PG=0 skips it too).
stop_pid "$INPROC_PID"
pg_initdb=${PG_BIN:-/usr/lib/postgresql/15/bin}/initdb
if [ "${QS_BENCH_PG:-1}" = 0 ] || [ ! -x "$pg_initdb" ]; then
	echo
	echo "replicas: skipped (no $pg_initdb, or QS_BENCH_PG=0)"
else
	. "$QS_SRC/ops/pg.sh"
	pg_start BENCH >"$T/pg.log" 2>&1 || { cat "$T/pg.log" >&2; fail "PostgreSQL for the replicas"; }
	REPLICA_PIDS=""
	# replica N: the daemon's config on the same token, its own socket and
	# state, the state in PostgreSQL.
	replica() {
		python3 - "$QSIGN_HOME/qsignd.json" "$T/r$1.json" "$T" "$1" "$PG_BENCH_CONNINFO" <<'PY' || fail "replica $1 config"
import json, sys
c = json.load(open(sys.argv[1]))
t, n, conninfo = sys.argv[3], sys.argv[4], sys.argv[5]
home = sys.argv[1].rsplit("/", 1)[0]
c["listen"] = [f"ipc://{t}/r{n}.sock"]
c.pop("tls", None)
c.pop("metrics", None)
c["state_dir"] = f"{t}/state-r{n}"
c["store"] = {"postgresql": conninfo}
c["policy"] = c["policy"] if c["policy"].startswith("/") else f"{home}/" + c["policy"]
for tok in c["tokens"]:
    if not tok["pin_file"].startswith("/"):
        tok["pin_file"] = f"{home}/" + tok["pin_file"]
c["audit"].pop("dir", None)
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
		"$QS_BIN/qsignd" -c "$T/r$1.json" >"$T/r$1.log" 2>&1 &
		SIDE_PID=$!
		for _ in $(seq 1 200); do
			grep -q "qsignd: ready" "$T/r$1.log" 2>/dev/null && break
			kill -0 "$SIDE_PID" 2>/dev/null || { cat "$T/r$1.log" >&2; fail "replica $1 exited"; }
			sleep 0.05
		done
		grep -q "qsignd: ready" "$T/r$1.log" || fail "replica $1 not ready after 10 s"
		REPLICA_PIDS="${REPLICA_PIDS:+$REPLICA_PIDS }$SIDE_PID"
		SIDE_PID=""
	}
	ipc_bench() { # NAME URL[,URL...]
		"$QS_BIN/qsign-bench" -t "$secs" --json --modes ipc --ipc "$2" --principal ci \
			--identity "$QSIGN_HOME/demo/ci.key" --role ci-sign \
			--module "$module" --uri "pkcs11:token=qsign-demo" --pin "file:$QSIGN_HOME/user.pin" \
			--key ci-key >"$T/repl-$1.out" 2>"$T/repl-$1.err" ||
			{ cat "$T/repl-$1.err" >&2; fail "qsign-bench ($1)"; }
		tail -1 "$T/repl-$1.out" >"$T/repl-$1.json"
	}
	urls=""
	ipc_bench sqlite "ipc://$QSIGN_HOME/qsignd.sock"
	for n in 1 2 3; do
		replica "$n"
		urls="${urls:+$urls,}ipc://$T/r$n.sock"
		ipc_bench "pg$n" "$urls"
	done
	"$QS_BIN/failover_bench" "$urls" ci "$QSIGN_HOME/demo/ci.key" ci-sign 3 \
		>"$T/failover.out" 2>"$T/failover.err" &
	fo=$!
	sleep 1
	r1=${REPLICA_PIDS%% *} # the first listed: the one the client talks to
	kill -9 "$r1"
	wait "$fo" || { cat "$T/failover.out" "$T/failover.err" >&2; fail "failover_bench"; }
	{ wait "$r1"; } 2>/dev/null || true # killed: no job notice
	for p in $REPLICA_PIDS; do stop_pid "$p"; done
	REPLICA_PIDS=""
	pg_stop_all
	python3 - "$T" "$(cat "$T/failover.out")" <<'PY' || fail "replica rows"
import json, sys
t, fo = sys.argv[1], sys.argv[2]
rows = {}
for name in ("sqlite", "pg1", "pg2", "pg3"):
    for r in json.load(open(f"{t}/repl-{name}.json"))["results"]:
        if not r["ran"]:
            continue
        if r["signatures"] <= 0 or r["errors"] != 0 or r["verified"] != r["samples"]:
            sys.exit(f"replicas {name} x{r['threads']}: no clean signatures: {r}")
        rows[(name, r["threads"])] = r
base = rows[("sqlite", 8)]["sigs_per_s"]
print("\nreplicas: Sign ipc on SQLite (one daemon) vs PostgreSQL with 1-3 replicas, clients spread over them, same run:")
print(f"{'store':24}{'thr':>5}{'sigs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x sqlite':>10}")
for name, label in (("sqlite", "SQLite, 1 daemon"), ("pg1", "PostgreSQL, 1 replica"),
                    ("pg2", "PostgreSQL, 2 replicas"), ("pg3", "PostgreSQL, 3 replicas")):
    for thr in (1, 8):
        r = rows.get((name, thr))
        if r is None:
            continue
        ref = rows[("sqlite", thr)]["sigs_per_s"]
        print(f"{label:24}{thr:>5}{r['sigs_per_s']:>10.0f}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}"
              f"{r['sigs_per_s'] / ref:>10.2f}")
one = rows[("pg1", 8)]["sigs_per_s"] / base
print(f"replicas: PostgreSQL 1 replica / SQLite, ipc x8: {one:.2f} "
      f"({'meets' if one >= 0.7 else 'BELOW'} the 0.7 target)")
kv = dict(x.split("=", 1) for x in fo.split()[1:])
g = float(kv["gap_ms"])
print(f"replicas: kill -9 of the replica a client talks to (client lists all 3): "
      f"{kv['failed']} failed call(s), signing again after {float(kv['fail_to_ok_ms']):.1f} ms "
      f"(first failure to first success); {g:.1f} ms between the last signature before and the "
      f"first after ({'meets' if g < 1000 else 'OVER'} the 1 s target); {kv['first']} -> {kv['then']}")
PY
fi

# --- where a commit of the audit log spends its time (the daemon under
# test, over the whole run): qsignd logs the averages when it stops
stop_pid "$QSIGND_PID"
grep -o "audit_commit_stages .*(" "$T/qsignd.log" | sed 's/ *($//; s/^/\naudit log commits (whole run): /' ||
	echo "note: no audit_commit_stages line in qsignd.log"
