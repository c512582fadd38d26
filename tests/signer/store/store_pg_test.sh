#!/bin/bash
# The state store's unit test on PostgreSQL: a throwaway server
# (ops/pg.sh), an empty database, store_test --pg.
set -euo pipefail
: "${QS_BIN:?}" "${QS_SRC:?}"
. "$QS_SRC/ops/pg.sh"
trap pg_stop_all EXIT
pg_start DB
timeout 60 "$QS_BIN/store_test" --pg "$PG_DB_CONNINFO"
