#!/usr/bin/env bash
# A client connection outlives a daemon restart (see reauth.c).
. "$(dirname "$0")/lib.sh"
qs_setup
qs_start
coproc RA { "$QS_BIN/qs_reauth" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" 2>&1; }
read -r -t 20 line <&"${RA[0]}" || fail "client did not sign before the restart"
[ "$line" = ready ] || fail "client: $line"
qs_stop
qs_start
echo go >&"${RA[1]}"
read -r -t 30 line <&"${RA[0]}" || fail "client hung after the restart"
[ "$line" = ok ] || fail "client after restart: $line"
wait "$RA_PID" || fail "client exit status"
[ "$(grep -c 'auth.ok.*principal=ci' "$T/qsignd.log")" -ge 1 ] || fail "no re-authentication seen"
qs_stop
echo PASS
