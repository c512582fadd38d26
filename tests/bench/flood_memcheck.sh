#!/usr/bin/env bash
# The 1,200-connection flood under memcheck: tests/integration/flood.sh
# (refused calls and logins, then 1,200 connections held 5 s against a
# qsignd whose file limit is lowered to 1,024 while registrar signs every
# 20 ms on its own connection) with qsignd under valgrind memcheck
# (QS_VALGRIND=1 in tests/integration/lib.sh: the front and the processes it
# forks, launcher and signer helpers, which memcheck follows; seccomp off),
# with 2,000 refusals and 200 logins instead of 20,000 and 2,000 (memcheck
# runs the daemon ~20-50x slower). Prints whether signing went on and the
# number of memcheck errors over all processes (with -q, valgrind reports
# nothing but errors and definite leaks). Not a ctest: it takes minutes.
#   QS_BIN=$PWD/build/bin tests/bench/flood_memcheck.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
export QS_BIN=${QS_BIN:-$src/build/bin} QS_SRC=$src QS_VALGRIND=1
if ! command -v valgrind >/dev/null; then
	echo "skipped: valgrind is not installed (ops/install-deps installs it)"
	exit 0
fi
if grep -q '^QS_SANITIZE:BOOL=ON' "$QS_BIN/../CMakeCache.txt" 2>/dev/null; then
	echo "flood_memcheck: $QS_BIN is a sanitizer build; memcheck needs a plain one" >&2
	exit 2
fi
V=$(mktemp -d)
trap 'rm -rf "$V"' EXIT
export QS_VALGRIND_LOG=$V/memcheck QS_FLOOD_REFUSALS=2000 QS_FLOOD_LOGINS=200
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
rc=0
"$src/tests/integration/flood.sh" >"$V/out" 2>&1 || rc=$?
secs=$(($(date +%s) - start))
# An error's first line: "==PID== Invalid read ...", "==PID== 16 bytes in
# 1 blocks are definitely lost ..."; its stack lines are indented.
errors=$(cat "$V"/memcheck.* 2>/dev/null | grep -cE '^==[0-9]+== [^ ]' || true)
procs=$(ls "$V"/memcheck.* 2>/dev/null | wc -l)
grep -E '^(conns opened|daemon fds|flood signed|FAIL|ok:|PASS)' "$V/out" || true
echo "flood under memcheck: ${secs} s (load average $load0 at the start), $procs processes under memcheck, memcheck errors: $errors"
if [ "$rc" = 0 ] && [ "$errors" = 0 ]; then
	echo "ok: signing went on through the flood, no memcheck error"
	exit 0
fi
[ "$errors" = 0 ] || cat "$V"/memcheck.* | head -60 >&2
[ "$rc" = 0 ] || tail -30 "$V/out" >&2
echo "FAIL: the flood under memcheck (flood.sh exit $rc, $errors memcheck errors)" >&2
exit 1
