#!/usr/bin/env bash
# The seccomp filters kill a process that makes a forbidden call:
#   seccomp_test.sh           the daemon's allow-list
#   seccomp_test.sh launcher  the signer launcher's deny-list (a helper's
#                             start-up still works under it)
set -u
out=$("$QS_BIN/seccomp_test" "$@" 2>&1)
rc=$?
# 128 + SIGSYS (31) when killed by the filter.
if [ "$rc" != 159 ]; then
	echo "FAIL: expected death by SIGSYS (159), got $rc: $out" >&2
	exit 1
fi
case "$out" in *"filter installed"*) ;; *) echo "FAIL: allowed call did not work: $out" >&2; exit 1 ;; esac
echo "$out"
echo PASS
