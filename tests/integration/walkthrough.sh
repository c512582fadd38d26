#!/usr/bin/env bash
# The README's walkthrough, run verbatim (between the walkthrough markers)
# against the ops/run demo set-up, so the README cannot rot.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_start
awk '/<!-- walkthrough:begin -->/{f=1;next} /<!-- walkthrough:end -->/{f=0} f' "$QS_SRC/README.md" |
	sed '/^```/d' >"$T/walkthrough.sh"
[ "$(wc -l <"$T/walkthrough.sh")" -gt 20 ] || fail "no walkthrough found in README.md"
# The README says PATH=$PWD/build/bin and QSIGN_HOME=$PWD/.qsign: run it from
# a directory where those are this build and this test's home.
mkdir -p "$T/repo/build"
ln -s "$QS_BIN" "$T/repo/build/bin"
ln -s "$QSIGN_HOME" "$T/repo/.qsign"
# Its `mktemp -d` lands in this test's directory, removed with it.
mkdir -p "$T/tmp"
(cd "$T/repo" && TMPDIR=$T/tmp bash -euo pipefail "$T/walkthrough.sh") >"$T/walk.out" 2>&1 ||
	{ tail -30 "$T/walk.out" >&2; fail "the README walkthrough fails"; }
grep -q "^Verified OK (key ci-key, ecdsa-p256" "$T/walk.out" || fail "step 1: qsign verify did not verify"
grep -qx "Verified OK" "$T/walk.out" || fail "step 1: openssl did not verify with keys --pem"
grep -q "fw.bin" "$T/walk.out" || fail "production targets lack fw.bin"
grep -q "dev.pem: OK" "$T/walk.out" || fail "device certificate did not verify before revoke"
grep -q "dev.pem: revoked, as expected" "$T/walk.out" || fail "revocation not visible"
grep -q "certificate revoked" "$T/walk.out" || fail "openssl did not say revoked"
kill -0 "$QSIGND_PID" || fail "qsignd died"
qs_stop
echo PASS
