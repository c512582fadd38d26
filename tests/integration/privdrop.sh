#!/usr/bin/env bash
# Started as root with "user": qsignd drops to that user after opening its
# tokens, state and sockets, keeps serving, and cannot regain root.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || fail "this test needs root (CI runs as root)"
id nobody >/dev/null 2>&1 || fail "no user nobody"
qs_setup
python3 - "$QSIGN_HOME/qsignd.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["user"] = "nobody"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
# The token files must be readable by the service user (as with systemd's
# DynamicUser + StateDirectory): hand the whole demo home over.
chown -R nobody "$QSIGN_HOME"
chmod 755 "$T"
qs_start
uid=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$QSIGND_PID/status")
[ "$uid" = "$(id -u nobody) $(id -u nobody) $(id -u nobody) $(id -u nobody)" ] ||
	fail "qsignd uids are '$uid', expected nobody everywhere"
grep -q "^CapEff:\s*0000000000000000" "/proc/$QSIGND_PID/status" || fail "capabilities left"
grep -q "^NoNewPrivs:\s*1" "/proc/$QSIGND_PID/status" || fail "no_new_privs not set"
dg=$(echo hi | sha256sum | cut -c1-64)
expect_rc 0 qsign -p ci sign -r ci-sign -d "$dg" --format hex
expect_rc 0 qsign -p ci request submit -r release -d "$dg"
echo "ok: runs as nobody, signs, writes state"
qs_stop || fail "unclean stop"
echo PASS
