#!/usr/bin/env bash
# Quorum rules on the wire (see votes.c), against a real qsignd.
. "$(dirname "$0")/lib.sh"
qs_setup
qs_policy_edit '
import copy
p["roles"]["short"] = copy.deepcopy(p["roles"]["release"])
p["roles"]["short"]["quorum"]["request_ttl"] = "2s"'
qs_start
"$QS_BIN/qs_votes" "ipc://$QSIGN_HOME/qsignd.sock" "$QSIGN_HOME" || fail "vote checks"
kill -0 "$QSIGND_PID" || fail "qsignd died"
qs_stop || fail "unclean stop"
echo PASS
