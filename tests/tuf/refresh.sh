#!/usr/bin/env bash
# The daemon re-signs timestamp (and snapshot) before they expire, on its
# own timer; every refresh is audited and tuf-js accepts the result.
. "$QS_SRC/tests/integration/lib.sh"
here=$QS_SRC/tests/tuf
command -v node >/dev/null || fail "node is required"
if [ ! -d "$here/node_modules/tuf-js" ]; then
	(cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1) || fail "npm ci in tests/tuf"
fi
HTTP_PID=""
stop_http() { [ -z "$HTTP_PID" ] || { kill "$HTTP_PID" 2>/dev/null || true; wait "$HTTP_PID" 2>/dev/null || true; }; }
trap 'stop_http; qs_cleanup' EXIT

qs_setup
# Refresh every second what expires within a day minus 2 s: the 1-day
# timestamp is due again two seconds after each refresh.
qs_policy_edit 'p["tuf"]["refresh"] = {"interval": "1s", "margin": "86398s"}'
qs_start
tuf=$QSIGN_HOME/tuf
expect_rc 0 qsign -p admin1 tuf init -m "root for the refresh test"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$id"
expect_rc 0 qsign -p admin3 approve "$id"
cp "$tuf/ci/metadata/1.root.json" "$T/ci.1.root.json"
v0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$tuf/ci/metadata/timestamp.json")
v=$v0
for _ in $(seq 1 100); do
	v=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$tuf/ci/metadata/timestamp.json")
	[ "$v" -ge $((v0 + 2)) ] && break
	sleep 0.1
done
[ "$v" -ge $((v0 + 2)) ] || fail "timestamp not refreshed: version $v0 -> $v after 10 s"
echo "ok: timestamp refreshed by the daemon ($v0 -> $v)"
expect_rc 0 qsign -p auditor --json audit tail -n 50
grep -q '"tuf.refresh"\|tuf.refresh' "$T/out" || fail "refresh not in the audit log"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tuf" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ci/metadata/root.json" >/dev/null && break; sleep 0.1; done
node "$here/walk.mjs" --url "http://127.0.0.1:$PORT/ci" --root "$T/ci.1.root.json" --root-version 1 \
	>"$T/walk.out" 2>&1 || { cat "$T/walk.out" >&2; fail "tuf-js rejects the refreshed repository"; }
echo "ok: tuf-js accepts the refreshed timestamp"
qs_stop || fail "unclean stop"
echo PASS
