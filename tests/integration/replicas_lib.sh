# replicas_lib.sh - starting qsignd replicas in one test (sourced after
# lib.sh): each replica NAME logs to $T/NAME.log, its PID in ${PID[NAME]}.

declare -A PID

# start_replica NAME HOME [BINARY]: start and wait for "qsignd: ready".
start_replica() {
	local n=$1 h=$2 bin=${3:-$QS_BIN/qsignd}
	SOFTHSM2_CONF=$h/softhsm2.conf "$bin" -c "$h/qsignd.json" >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
	local tries=200
	# Sanitizer builds start several times slower, more so on a busy
	# machine (QS_START_TRIES overrides, in 50 ms steps).
	qs_sanitized && tries=2400
	tries=${QS_START_TRIES:-$tries}
	for _ in $(seq 1 "$tries"); do
		grep -q "qsignd: ready" "$T/$n.log" 2>/dev/null && return 0
		kill -0 "${PID[$n]}" 2>/dev/null || { tail -20 "$T/$n.log" >&2; fail "replica $n exited during start"; }
		sleep 0.05
	done
	fail "replica $n not ready after $((tries / 20)) s"
}

# stop_replicas: SIGTERM every replica still running, and wait for it.
stop_replicas() {
	for n in "${!PID[@]}"; do
		[ -n "${PID[$n]}" ] || continue
		kill "${PID[$n]}" 2>/dev/null || true
		wait "${PID[$n]}" 2>/dev/null || true
	done
}
