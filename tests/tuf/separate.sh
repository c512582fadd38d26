#!/usr/bin/env bash
# The CI and production repositories trust each other's metadata in no way:
# each has root, snapshot and timestamp keys of its own, and the CI targets
# key is not in the production root. A real TUF client (tuf-js) that holds
# the production root refuses, with its own signature errors,
#   (a) the CI root chain (the CI repository served in place of production),
#   (b) the CI timestamp and snapshot served in place of production's,
# and afterwards still updates from the real production repository (no
# poisoned version counters); the same for a client holding the CI root fed
# production metadata. Policies that list one key for both repositories
# (by name, through another URI of the same token object, or as an external
# key whose public key is a token key of the other repository) are refused.
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
tuf=$QSIGN_HOME/tuf

# --- policies that put one key in both repositories: qsignd refuses to start
refused_policy() { # EDIT WHY PATTERN
	local rc=0
	cp "$QSIGN_HOME/policy.json" "$T/policy.good"
	qs_policy_edit "$1"
	timeout 20 qsignd -c "$QSIGN_HOME/qsignd.json" >"$T/bad.log" 2>&1 || rc=$?
	cp "$T/policy.good" "$QSIGN_HOME/policy.json"
	[ "$rc" != 0 ] || fail "qsignd started with $2"
	grep -q "$3" "$T/bad.log" || fail "$2: $(cat "$T/bad.log")"
}
refused_policy "p['tuf']['roles']['prod-root']['keys'] = list(p['tuf']['roles']['root']['keys'])" \
	"the CI root key in the production root" "listed for the CI repository too"
refused_policy "p['tuf']['roles']['prod-timestamp']['keys'] = list(p['tuf']['roles']['snapshot']['keys'])" \
	"the CI snapshot key as production timestamp key" "listed for the CI repository too"
refused_policy "p['tuf']['roles']['prod-targets']['keys'].append(p['tuf']['roles']['targets']['keys'][0])" \
	"the CI targets key in production targets" "listed for the CI repository too"
# The same token object under a second name and a differently written URI.
refused_policy "
k = p['tuf']['roles']['root']['keys'][0]
tok, obj = [x.split('=', 1)[1] for x in p['keys'][k]['uri'].split(':', 1)[1].split(';')]
p['keys']['alias'] = {'uri': f'pkcs11:object={obj};token={tok}', 'algorithm': p['keys'][k]['algorithm']}
p['tuf']['roles']['prod-snapshot']['keys'] = ['alias']
" "one token object under two names" "listed for the CI repository too"
# An admin's external key whose public key is a daemon key of the other repository.
k=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["tuf"]["roles"]["root"]["keys"][0])' "$QSIGN_HOME/policy.json")
qsign-token pubkey -u "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["keys"][sys.argv[2]]["uri"])' "$QSIGN_HOME/policy.json" "$k")" \
	-P "file:$QSIGN_HOME/user.pin" -o "$T/ci-root.pem" >/dev/null
export T_DIR=$T
refused_policy "
import os
p['tuf']['external'] = {'adm1-prod-root': {'holder': 'admin1', 'public_key': open(os.environ['T_DIR'] + '/ci-root.pem').read()}}
p['tuf']['roles']['prod-root']['keys'].append('adm1-prod-root')
" "an external production root key that is the CI root key" "listed for the CI repository too"
echo "ok: a policy listing one key for both repositories is refused"

qs_start
approve() { local id=$1; shift; for a in "$@"; do expect_rc 0 qsign -p "$a" approve "$id"; done; }

# --- both repositories at root 2 and production releases; CI moves faster
expect_rc 0 qsign -p admin1 tuf init -m "separate roots"
approve "$(cat "$T/out")" admin2 admin3
for r in ci prod; do cp "$tuf/$r/metadata/1.root.json" "$T/$r.1.root.json"; done
head -c 3000 /dev/urandom >"$T/app.bin"
head -c 3000 /dev/urandom >"$T/app2.bin"
sha=$(sha256sum "$T/app.bin" | cut -c1-64)
sha2=$(sha256sum "$T/app2.bin" | cut -c1-64)
expect_rc 0 qsign -p ci tuf push-targets "$T/app.bin"
expect_rc 0 qsign -p admin1 tuf promote -m "release 1" app.bin
approve "$(cat "$T/out")" admin2 admin3
[ -f "$tuf/prod/metadata/2.targets.json" ] || fail "promote not published"
expect_rc 0 qsign -p admin1 tuf set-expiry -m "root 2" root 300d
approve "$(cat "$T/out")" admin2 admin3
for r in ci prod; do [ -f "$tuf/$r/metadata/2.root.json" ] || fail "$r root 2 not published"; done
for f in "$T/app2.bin" "$T/app.bin" "$T/app2.bin"; do
	expect_rc 0 qsign -p ci tuf push-targets "$f"
done
python3 - "$tuf" <<'PY' || fail "the two roots share keys"
import json, sys
d = sys.argv[1]
ci = json.load(open(f"{d}/ci/metadata/root.json"))["signed"]
prod = json.load(open(f"{d}/prod/metadata/root.json"))["signed"]
shared = set(ci["keys"]) & set(prod["keys"])
assert not shared, f"keys in both roots: {sorted(shared)}"
ts = lambda r: json.load(open(f"{d}/{r}/metadata/timestamp.json"))["signed"]["version"]
assert ts("ci") > ts("prod"), (ts("ci"), ts("prod"))
PY
expect_rc 0 qsign -p admin1 tuf review
grep -q "shared" "$T/out" && fail "review reports shared keys: $(cat "$T/out")"
echo "ok: no key in both roots; review finds none shared"

# --- mixed repositories: one flavour with the other's timestamp + snapshots
mix() { # name base other
	mkdir -p "$tuf/$1"
	cp -r "$tuf/$2/metadata" "$tuf/$2/targets" "$tuf/$1/"
	cp "$tuf/$3/metadata/timestamp.json" "$tuf/$1/metadata/"
	cp "$tuf/$3/metadata/"*.snapshot.json "$tuf/$1/metadata/"
}
mix prod-ci-ts prod ci
mix ci-prod-ts ci prod

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tuf" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ci/metadata/root.json" >/dev/null && break; sleep 0.1; done

# walk CLIENT REPO [args...]: the device CLIENT (its trusted metadata kept
# in $T/dev.CLIENT, seeded with CLIENT's root 1) refreshes from REPO.
walk() {
	local client=$1 repo=$2
	shift 2
	node "$here/walk.mjs" --url "http://127.0.0.1:$PORT/$repo" --root "$T/$client.1.root.json" \
		--state "$T/dev.$client" "$@" >"$T/walk.out" 2>&1 ||
		{ cat "$T/walk.out" >&2; fail "tuf-js $client device on $repo: $*"; }
	cat "$T/walk.out"
}
verify() { # ROOT ROLE FILE REGEX
	node "$here/verify.mjs" --root "$1" --role "$2" --file "$3" --expect-fail "$4" >"$T/verify.out" 2>&1 ||
		{ cat "$T/verify.out" >&2; fail "tuf-js accepted $3 as $2 under $1"; }
	cat "$T/verify.out"
}

unsigned='UnsignedMetadataError: %s was signed by 0/[0-9]+ keys'
for pair in "prod ci" "ci prod"; do
	set -- $pair
	own=$1 other=$2
	# (a) the other repository's root chain
	walk "$own" "$other" --expect-fail "$(printf "$unsigned" root)"
	# (b) the other repository's timestamp and snapshot
	walk "$own" "$own-$other-ts" --expect-fail "$(printf "$unsigned" timestamp)"
	last=$(ls "$tuf/$other/metadata" | grep -E '^[0-9]+\.snapshot\.json$' | sort -n | tail -1)
	verify "$tuf/$own/metadata/root.json" snapshot "$tuf/$other/metadata/$last" "$(printf "$unsigned" snapshot)"
	verify "$tuf/$own/metadata/root.json" timestamp "$tuf/$other/metadata/timestamp.json" "$(printf "$unsigned" timestamp)"
	# ... and the same device still updates from its own repository.
	if [ "$own" = prod ]; then want=$sha; name=app.bin; else want=$sha2; name=app2.bin; fi
	walk "$own" "$own" --root-version 2 --target "$name" --sha256 "$want"
	echo "ok: a $own device refuses $other metadata and still updates from $own"
done
