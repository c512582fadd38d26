# pg.sh - a throwaway PostgreSQL for tests and the replica demo (ops/run
# --replicas), sourced by bash; after tests/integration/lib.sh or
# on its own).
#
#   pg_start NAME      initdb + start a server in its own temporary directory,
#                      listening on a unix socket only; sets PG_<NAME>_DIR,
#                      PG_<NAME>_SOCK, PG_<NAME>_PID and PG_<NAME>_CONNINFO
#                      (database "qsign", created).
#   pg_stop NAME       fast shutdown by PID (SIGINT), bounded; SIGKILL after.
#   pg_kill9 NAME      SIGKILL the postmaster (a crash of the database host).
#   pg_psql NAME SQL   run SQL in the qsign database, unaligned output.
#   pg_start_standby NAME PRIMARY
#                      a streaming standby of PRIMARY (pg_basebackup), made
#                      PRIMARY's synchronous standby: a COMMIT on PRIMARY
#                      returns once NAME has flushed it. Sets the same
#                      variables as pg_start.
#   pg_promote NAME    promote a standby to primary (waits until it is).
#
# PostgreSQL refuses to run as root: as root the server runs as the
# `postgres` user (Debian's postgresql-15 creates it), otherwise as the
# caller. Every wait is bounded; pg_stop_all runs from the caller's trap.
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_NAMES=""

pg_as() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

pg_start() {
	local name=$1 d port=5432
	[ -x "$PG_BIN/initdb" ] || { echo "pg.sh: no $PG_BIN/initdb (apt-get install postgresql-15)" >&2; return 1; }
	d=$(mktemp -d "${TMPDIR:-/tmp}/qsign-pg.XXXXXX")
	chmod 0755 "$d"
	mkdir -p "$d/sock"
	[ "$(id -u)" = 0 ] && chown -R postgres: "$d"
	pg_as "$PG_BIN/initdb" -D "$d/data" -U postgres -A trust --no-sync -E UTF8 \
		>"$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; return 1; }
	# fsync stays on: the tests check what survives a crash.
	cat >>"$d/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$d/sock'
port = $port
max_connections = 100
wal_level = replica
max_wal_senders = 4
EOF
	pg_as "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 30 start >/dev/null ||
		{ cat "$d/server.log" >&2; return 1; }
	printf -v "PG_${name}_DIR" '%s' "$d"
	printf -v "PG_${name}_SOCK" '%s' "$d/sock"
	printf -v "PG_${name}_PID" '%s' "$(head -1 "$d/data/postmaster.pid")"
	printf -v "PG_${name}_CONNINFO" '%s' "host=$d/sock port=$port user=postgres dbname=qsign"
	PG_NAMES="$PG_NAMES $name"
	pg_as "$PG_BIN/createdb" -h "$d/sock" -p "$port" -U postgres qsign ||
		{ cat "$d/server.log" >&2; return 1; }
}

pg_start_standby() {
	local name=$1 primary=$2 d port=5432 psock
	psock=PG_${primary}_SOCK
	d=$(mktemp -d "${TMPDIR:-/tmp}/qsign-pg.XXXXXX")
	chmod 0755 "$d"
	mkdir -p "$d/sock"
	[ "$(id -u)" = 0 ] && chown -R postgres: "$d"
	pg_as "$PG_BIN/pg_basebackup" -h "${!psock}" -p "$port" -U postgres -D "$d/data" -R -c fast \
		-X stream >"$d/basebackup.log" 2>&1 || { cat "$d/basebackup.log" >&2; return 1; }
	# The copied postgresql.conf names the primary's socket; later lines win.
	cat >>"$d/data/postgresql.conf" <<EOF
unix_socket_directories = '$d/sock'
cluster_name = '$name'
EOF
	pg_as "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 30 start >/dev/null ||
		{ cat "$d/server.log" >&2; return 1; }
	printf -v "PG_${name}_DIR" '%s' "$d"
	printf -v "PG_${name}_SOCK" '%s' "$d/sock"
	printf -v "PG_${name}_PID" '%s' "$(head -1 "$d/data/postmaster.pid")"
	printf -v "PG_${name}_CONNINFO" '%s' "host=$d/sock port=$port user=postgres dbname=qsign"
	PG_NAMES="$PG_NAMES $name"
	pg_psql "$primary" "ALTER SYSTEM SET synchronous_standby_names = '$name'" >/dev/null &&
		pg_psql "$primary" "SELECT pg_reload_conf()" >/dev/null || return 1
	for _ in $(seq 1 150); do
		[ "$(pg_psql "$primary" "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'")" = sync ] &&
			return 0
		sleep 0.1
	done
	echo "pg.sh: $name did not become $primary's synchronous standby" >&2
	return 1
}

pg_promote() {
	local name=$1 dirv
	dirv=PG_${name}_DIR
	pg_as "$PG_BIN/pg_ctl" -D "${!dirv}/data" -w -t 30 promote >/dev/null
}

pg_psql() {
	local name=$1 sock
	shift
	sock=PG_${name}_SOCK
	pg_as psql -X -q -A -t -v ON_ERROR_STOP=1 -h "${!sock}" -p 5432 -U postgres -d qsign -c "$1"
}

# Wait (bounded, 15 s) for PID to exit.
pg_wait_gone() {
	local pid=$1
	for _ in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

pg_stop() {
	local name=$1 pidv dirv
	pidv=PG_${name}_PID
	dirv=PG_${name}_DIR
	[ -n "${!pidv:-}" ] || return 0
	if kill -0 "${!pidv}" 2>/dev/null; then
		kill -INT "${!pidv}" 2>/dev/null || true
		pg_wait_gone "${!pidv}" || { kill -9 "${!pidv}" 2>/dev/null || true; pg_wait_gone "${!pidv}" || true; }
	fi
	printf -v "$pidv" '%s' ""
}

# A crash of the database host: the postmaster dies with SIGKILL; its
# backends notice and exit by themselves.
pg_kill9() {
	local name=$1 pidv
	pidv=PG_${name}_PID
	kill -9 "${!pidv}" 2>/dev/null || true
	pg_wait_gone "${!pidv}" || true
	printf -v "$pidv" '%s' ""
}

# Start NAME again on its data directory (after pg_stop or pg_kill9).
pg_restart() {
	local name=$1 dirv
	dirv=PG_${name}_DIR
	# Backends of a SIGKILLed postmaster exit on their own; wait for the
	# old server's socket lock to go before starting over.
	pg_as "$PG_BIN/pg_ctl" -D "${!dirv}/data" -l "${!dirv}/server.log" -w -t 30 start >/dev/null ||
		{ tail -20 "${!dirv}/server.log" >&2; return 1; }
	printf -v "PG_${name}_PID" '%s' "$(head -1 "${!dirv}/data/postmaster.pid")"
}

pg_stop_all() {
	local n dirv
	for n in $PG_NAMES; do
		pg_stop "$n"
		dirv=PG_${n}_DIR
		if [ "${QS_KEEP:-0}" = 1 ]; then echo "kept ${!dirv}"; else rm -rf "${!dirv}"; fi
	done
	PG_NAMES=""
}
