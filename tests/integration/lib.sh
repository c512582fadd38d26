# lib.sh - shared set-up for integration tests (sourced, bash).
#
# Every test gets its own temporary QSIGN_HOME built by `ops/run
# --setup-only` (the same demo set-up users get), its own SoftHSM token and
# state, and a real qsignd that the trap stops by PID.
set -euo pipefail

: "${QS_BIN:?QS_BIN must point at build/bin (ctest sets it)}"
: "${QS_SRC:?QS_SRC must point at the source tree (ctest sets it)}"
export PATH="$QS_BIN:$PATH"

T=$(mktemp -d "${TMPDIR:-/tmp}/qsign-test.XXXXXX")
export QSIGN_HOME="$T/home"
export SOFTHSM2_CONF="$QSIGN_HOME/softhsm2.conf"
# qsign remembers server keys (known_servers) in the user's config
# directory: this test's own.
export XDG_CONFIG_HOME="$T/config"
# qsign keeps per-user state (the audit verify state) here, never in the
# real home of whoever runs the tests.
export XDG_STATE_HOME="$T/xdg-state"
QSIGND_PID=""

qs_cleanup() {
	if [ -n "$QSIGND_PID" ] && kill -0 "$QSIGND_PID" 2>/dev/null; then
		kill "$QSIGND_PID" 2>/dev/null || true
		wait "$QSIGND_PID" 2>/dev/null || true
	fi
	if declare -F pg_stop_all >/dev/null; then pg_stop_all; fi
	if [ "${QS_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap qs_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	if [ -f "$T/qsignd.log" ]; then
		echo "--- qsignd log (last 30 lines)" >&2
		tail -30 "$T/qsignd.log" >&2
	fi
	exit 1
}

# The demo set-up, exactly as ops/run creates it. With QS_STORE=postgresql
# the state goes to a throwaway PostgreSQL (pg.sh, server "DB") instead of
# SQLite: the same test then runs on the replicated deployment's store.
qs_setup() {
	QS_BIN="$QS_BIN" "$QS_SRC/ops/run" --setup-only --no-build >"$T/setup.log" 2>&1 ||
		{ cat "$T/setup.log" >&2; fail "ops/run --setup-only"; }
	case "${QS_STORE:-sqlite}" in
	sqlite) ;;
	postgresql)
		. "$QS_SRC/ops/pg.sh"
		pg_start DB || fail "cannot start PostgreSQL"
		qs_use_pg "$QSIGN_HOME/qsignd.json" "$PG_DB_CONNINFO"
		;;
	*) fail "QS_STORE must be sqlite or postgresql" ;;
	esac
}

# qs_use_pg CONFIG CONNINFO: keep the daemon's state in PostgreSQL.
qs_use_pg() {
	python3 - "$1" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["store"] = {"postgresql": sys.argv[2]}
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
}

# Edit the bootstrap policy with a python expression on `p` (before the
# first start, when the file still decides).
qs_policy_edit() {
	python3 - "$QSIGN_HOME/policy.json" "$1" <<'PY'
import json, sys
path, expr = sys.argv[1], sys.argv[2]
p = json.load(open(path))
exec(expr)
json.dump(p, open(path, "w"), indent=2)
PY
}

# qs_policy_apply VERSION [COMMENT]: the policy in force as VERSION,
# proposed by admin1 and approved by admin2 and admin3 (the demo quorum);
# the request's id in QS_POLICY_REQ.
qs_policy_apply() {
	local v=$1 c=${2:-version $1}
	expect_rc 0 qsign -p admin1 policy show
	python3 - "$T/out" "$T/v$v.json" "$v" "$c" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["version"] = int(sys.argv[3]); p["comment"] = sys.argv[4]
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY
	expect_rc 0 qsign -p admin1 policy propose "$T/v$v.json" -m "v$v"
	QS_POLICY_REQ=$(cat "$T/out")
	expect_rc 0 qsign -p admin2 approve "$QS_POLICY_REQ"
	expect_rc 0 qsign -p admin3 approve "$QS_POLICY_REQ"
}

# qs_tls_pki DIR: a test CA (ca.crt, also the daemon's client_ca), a server
# certificate for localhost/127.0.0.1 (server.crt/key) and a client
# certificate from that CA (client.crt/key), all P-256.
qs_tls_pki() {
	local d=$1
	mkdir -p "$d"
	(
		cd "$d"
		ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
		ec ca.key
		openssl req -x509 -new -key ca.key -subj "/CN=test CA" -days 2 -out ca.crt 2>/dev/null
		ec server.key
		openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
		printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
			-extfile server.ext -out server.crt 2>/dev/null
		ec client.key
		openssl req -new -key client.key -subj "/CN=build-farm" -out client.csr 2>/dev/null
		openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
			-out client.crt 2>/dev/null
	) || fail "qs_tls_pki $d"
}

# qs_tls_listen PKI_DIR: add a tls+tcp:// listener on a free loopback port
# to qsignd.json (mutual TLS with the qs_tls_pki files); sets QS_TLS_URL.
qs_tls_listen() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	QS_TLS_URL="tls+tcp://127.0.0.1:$port"
	python3 - "$QSIGN_HOME/qsignd.json" "$1" "$QS_TLS_URL" <<'PY'
import json, sys
path, pki, url = sys.argv[1], sys.argv[2], sys.argv[3]
c = json.load(open(path))
c["listen"].append(url)
c["tls"] = {"cert": f"{pki}/server.crt", "key": f"{pki}/server.key", "client_ca": f"{pki}/ca.crt"}
json.dump(c, open(path, "w"), indent=2)
PY
}

# qs_sanitized: true when the build under test is a sanitizer build (its
# second pass looks for memory errors, not counts; suites may do fewer
# repetitions there, never fewer kinds of case).
qs_sanitized() {
	grep -q '^QS_SANITIZE:BOOL=ON' "${QS_BUILD:-/nonexistent}/CMakeCache.txt" 2>/dev/null
}

# Start qsignd in the background; wait (bounded) until it says ready.
qs_start() {
	local cfg=${1:-$QSIGN_HOME/qsignd.json}
	# QS_START_TRIES: how many 50 ms waits for "ready" (a sanitizer build on
	# a busy machine may need more than the default 10 s).
	local vg=() tries=${QS_START_TRIES:-200}
	# Sanitizer builds start several times slower (every token and helper
	# start is instrumented): 30 s unless QS_START_TRIES says otherwise.
	if [ -z "${QS_START_TRIES:-}" ] && qs_sanitized; then
		tries=600
	fi
	if [ "${QS_VALGRIND:-0}" = 1 ]; then
		# Memcheck: any error or definite leak makes qsignd exit 99, which
		# qs_stop reports as an unclean stop.
		vg=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
			--errors-for-leak-kinds=definite --suppressions="$QS_SRC/tests/valgrind.supp")
		# QS_VALGRIND_LOG=PREFIX: each process's report in PREFIX.PID
		# (tests/bench/flood_memcheck.sh counts the errors there).
		[ -z "${QS_VALGRIND_LOG:-}" ] || vg+=(--log-file="$QS_VALGRIND_LOG.%p")
		tries=1200
		# valgrind cannot run under a seccomp filter (it makes syscalls of
		# its own): memcheck runs turn it off, everything else stays.
		python3 - "$cfg" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["seccomp"] = False
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
	fi
	# QSIGND: another daemon binary (qsignd-fault for crash tests).
	"${vg[@]}" "${QSIGND:-$QS_BIN/qsignd}" -c "$cfg" >>"$T/qsignd.log" 2>&1 &
	QSIGND_PID=$!
	for _ in $(seq 1 "$tries"); do
		if grep -q "qsignd: ready" "$T/qsignd.log" 2>/dev/null; then
			return 0
		fi
		kill -0 "$QSIGND_PID" 2>/dev/null || fail "qsignd exited during start"
		sleep 0.05
	done
	fail "qsignd not ready after $((tries / 20)) s"
}

qs_stop() {
	[ -n "$QSIGND_PID" ] || return 0
	kill "$QSIGND_PID"
	local rc=0
	wait "$QSIGND_PID" || rc=$?
	QSIGND_PID=""
	# Ready-marker must not satisfy the next start.
	mv "$T/qsignd.log" "$T/qsignd.log.$(date +%s%N)"
	return $rc
}

qs_kill9() {
	kill -9 "$QSIGND_PID"
	wait "$QSIGND_PID" 2>/dev/null || true
	QSIGND_PID=""
	mv "$T/qsignd.log" "$T/qsignd.log.$(date +%s%N)"
}

# expect_rc WANT cmd... : run cmd, fail unless its exit code is WANT.
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" != "$want" ]; then
		echo "--- stdout" >&2; cat "$T/out" >&2
		echo "--- stderr" >&2; cat "$T/err" >&2
		fail "expected exit $want, got $rc: $*"
	fi
}
