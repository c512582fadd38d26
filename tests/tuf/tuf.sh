#!/usr/bin/env bash
# TUF end to end: a real daemon driven through the CLI on the demo set-up
# (ops/demo.d/tuf.sh), and a real TUF client (tuf-js) walking what it
# publishes from trusted root v1: init (quorum), CI push, production
# promote (quorum, diff shown), root key rotated twice (1 -> 2 -> 3),
# targets key rotation; rejected: a root not signed by the previous root's
# keys, an expired timestamp; refused: promote and root change below the
# approval threshold.
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
# The snapshot key is RSA-3072 (TUF's rsassa-pss-sha256), the others ECDSA.
SOFTHSM2_CONF=$QSIGN_HOME/softhsm2.conf qsign-token keygen -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t rsa3072 -l tuf-snapshot-rsa >/dev/null
qs_policy_edit "
uri = p['keys']['tuf-snapshot']['uri'].replace('object=tuf-snapshot', 'object=tuf-snapshot-rsa')
p['keys']['tuf-snapshot-rsa'] = {'uri': uri, 'algorithm': 'rsa3072'}
p['tuf']['roles']['snapshot']['keys'] = ['tuf-snapshot-rsa']
"
qs_start
tuf=$QSIGN_HOME/tuf

# approve ID ADMIN... : each admin approves.
approve() {
	local id=$1
	shift
	for a in "$@"; do expect_rc 0 qsign -p "$a" approve "$id"; done
}
walk() { # repo [args...]
	local repo=$1
	shift
	node "$here/walk.mjs" --url "http://127.0.0.1:$PORT/$repo" --root "$T/$repo.1.root.json" "$@" \
		>"$T/walk.out" 2>&1 || { cat "$T/walk.out" >&2; fail "tuf-js on $repo: $*"; }
	cat "$T/walk.out"
}

# --- init: quorum 2 of admin1..3
expect_rc 0 qsign -p admin1 tuf init -m "first TUF root"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin2 request show "$id"
grep -q "TUF init" "$T/out" || fail "request show does not describe the init"
approve "$id" admin2
[ ! -f "$tuf/ci/metadata/1.root.json" ] || fail "published with one approval"
approve "$id" admin3
for r in ci prod; do
	for f in 1.root.json root.json 1.targets.json 1.snapshot.json timestamp.json; do
		[ -f "$tuf/$r/metadata/$f" ] || fail "init did not publish $r/metadata/$f"
	done
	cp "$tuf/$r/metadata/1.root.json" "$T/$r.1.root.json"
done
python3 - "$tuf" <<'PY' || fail "root thresholds"
import json, sys
ci = json.load(open(f"{sys.argv[1]}/ci/metadata/1.root.json"))["signed"]
prod = json.load(open(f"{sys.argv[1]}/prod/metadata/1.root.json"))["signed"]
assert ci["roles"]["targets"]["threshold"] == 1 and len(ci["roles"]["targets"]["keyids"]) == 1
assert prod["roles"]["targets"]["threshold"] == 2 and len(prod["roles"]["targets"]["keyids"]) == 2
assert ci["consistent_snapshot"] is True and ci["spec_version"] == "1.0.31"
snap = ci["roles"]["snapshot"]["keyids"][0]
assert ci["keys"][snap]["keytype"] == "rsa" and ci["keys"][snap]["scheme"] == "rsassa-pss-sha256"
PY
expect_rc 0 qsign -p admin1 tuf show-root --prod
grep -q '"threshold": 2' "$T/out" || fail "show-root --prod lacks threshold 2"
for d in ci/metadata ci/targets prod/metadata prod/targets; do
	[ ! -d "$tuf/$d" ] || [ "$(stat -c %a "$tuf/$d")" = 755 ] ||
		fail "$d is $(stat -c %a "$tuf/$d"): a web server must be able to read it"
done
echo "ok: init by quorum, CI and production flavours published"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tuf" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ci/metadata/root.json" >/dev/null && break; sleep 0.1; done
walk ci --root-version 1
walk prod --root-version 1
echo "ok: tuf-js refreshes both repositories after init"

# --- CI push (online, ci)
head -c 5000 /dev/urandom >"$T/app.bin"
sha=$(sha256sum "$T/app.bin" | cut -c1-64)
expect_rc 1 qsign -p admin1 tuf push-targets "$T/app.bin"
expect_rc 0 qsign -p ci tuf push-targets --custom '{"hardwareIds":["demo"],"version":"1"}' "$T/app.bin"
grep -q "CI targets version 2" "$T/out" || fail "push: $(cat "$T/out")"
[ -f "$tuf/ci/targets/$sha.app.bin" ] || fail "target file not published"
walk ci --target app.bin --sha256 "$sha"
echo "ok: CI push signed online; tuf-js downloads the target"

# --- CI push refusals: said, exit 2, nothing signed or published
expect_rc 2 qsign -p ci tuf push-targets "$T/no-such-file"
grep -q "no-such-file" "$T/err" || fail "push of a missing file: $(cat "$T/err")"
expect_rc 2 qsign -p ci tuf push-targets --custom '[1]' "$T/app.bin"
grep -q -- "--custom: a JSON object" "$T/err" || fail "push --custom [1]: $(cat "$T/err")"
expect_rc 2 qsign -p ci tuf push-targets --name one "$T/app.bin" "$T/app.bin"
grep -q "usage:" "$T/err" || fail "push --name with two files: $(cat "$T/err")"
expect_rc 2 qsign -p ci tuf push-targets --name ../evil.bin "$T/app.bin"
grep -q "is not acceptable" "$T/err" || fail "push --name ../evil.bin: $(cat "$T/err")"
[ ! -f "$tuf/ci/metadata/3.targets.json" ] || fail "a refused push published targets"
echo "ok: CI push refuses a missing file, a --custom that is no object, --name with two files, a bad target path"

# --- production promote: too few approvals publish nothing, then quorum
expect_rc 0 qsign -p admin1 tuf promote -m "release 1" app.bin
pid=$(cat "$T/out")
expect_rc 0 qsign -p admin2 request show "$pid"
grep -q "version 1 -> 2" "$T/out" || fail "promote diff lacks the version: $(cat "$T/out")"
grep -q "+ app.bin" "$T/out" || fail "promote diff lacks the added target: $(cat "$T/out")"
approve "$pid" admin2
[ ! -f "$tuf/prod/metadata/2.targets.json" ] || fail "promote published with one approval"
walk prod
approve "$pid" admin3
[ -f "$tuf/prod/metadata/2.targets.json" ] || fail "promote not published"
[ -f "$tuf/prod/targets/$sha.app.bin" ] || fail "promoted target contents not published"
python3 -c '
import json,sys; e=json.load(open(sys.argv[1])); assert len(e["signatures"]) == 2, e["signatures"]' \
	"$tuf/prod/metadata/2.targets.json" || fail "production targets not signed by 2 keys"
walk prod --target app.bin --sha256 "$sha"
echo "ok: production promote by quorum with a diff; tuf-js downloads from production"

# --- root key rotation twice: 1 -> 2 -> 3
rotate() { # role [keyid]
	expect_rc 0 qsign -p admin1 tuf rotate-key ${2:+--keyid "$2"} -m "rotate $1" "$1"
	local rid
	rid=$(cat "$T/out")
	approve "$rid" admin2 admin3
	expect_rc 0 qsign -p admin1 request show "$rid"
	grep -q "signed" "$T/out" || fail "rotation $1 not done: $(cat "$T/out")"
}
rotate root
[ -f "$tuf/ci/metadata/2.root.json" ] || fail "root 2 not published"
rotate root
[ -f "$tuf/prod/metadata/3.root.json" ] || fail "root 3 not published"
walk ci --root-version 3 --target app.bin --sha256 "$sha"
walk prod --root-version 3 --target app.bin --sha256 "$sha"
echo "ok: root rotated twice; tuf-js walks 1 -> 2 -> 3"

# --- targets keys rotation: targets re-signed with the new key (production's
# offline key, then the CI key)
rotate prod-targets "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["signed"]["roles"]["targets"]; print(r["keyids"][-1])' "$tuf/prod/metadata/root.json")"
rotate targets
walk prod --root-version 5 --target app.bin --sha256 "$sha"
walk ci --root-version 5 --target app.bin --sha256 "$sha"
echo "ok: targets keys rotated; targets re-signed; tuf-js accepts"

# --- a root change approved by one admin only changes nothing
expect_rc 0 qsign -p admin1 tuf set-threshold -m "one approval only" root 1
approve "$(cat "$T/out")" admin2
[ ! -f "$tuf/ci/metadata/6.root.json" ] || fail "root change with one approval"
echo "ok: one approval publishes no root"

# --- negatives: forged root (not signed by root 5's keys), expired timestamp
mkdir -p "$tuf/forged"
cp -r "$tuf/ci/metadata" "$tuf/ci/targets" "$tuf/forged/"
node "$here/forge_root.mjs" "$tuf/forged/metadata" >/dev/null || fail "forge"
cp "$T/ci.1.root.json" "$T/forged.1.root.json"
walk forged --expect-fail "root was signed by 0/1 keys"
walk ci --clock-offset $((2 * 86400)) --expect-fail "timestamp.*expired|[Ee]xpired.*timestamp"
echo "ok: tuf-js rejects a root without the old threshold and an expired timestamp"

# --- review, audit
expect_rc 0 qsign -p admin1 tuf review
grep -q "root has 1 key" "$T/out" || fail "review: $(cat "$T/out")"
grep -q "threshold is 1" "$T/out" || fail "review: $(cat "$T/out")"
echo "ok: review lints the root"

# --- every change is in the audit log with the hashes of its files
expect_rc 0 qsign -p auditor audit tail -n 200 --json
for ev in tuf.init tuf.targets tuf.promote tuf.root key.generated; do
	grep -q "\"$ev\"" "$T/out" || fail "audit log lacks $ev"
done
echo "ok: audit log has tuf.* events"
