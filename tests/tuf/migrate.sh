#!/usr/bin/env bash
# Upgrading a deployment whose TUF repositories were initialised by the last
# release before each repository had keys of its own (commit 0796e07): CI
# and production share the root, snapshot and timestamp keys, and an
# admin-held external root key is in both roots.
#
# The state is made by that release itself (its qsignd, qsign and ops/run),
# then the current qsignd starts on it. `qsign tuf review` reports the
# shared keys as errors; `qsign tuf separate` (a quorum root change, the
# admin adding a production root key of their own) ends the sharing; review
# is then clean. tuf-js devices that hold the OLD production root walk to
# the separated production root and download a promoted target, while the
# CI root chain, timestamp and snapshot are refused by a production device.
#
# The old release is built once into a cache directory (a RelWithDebInfo
# build of its three executables takes 1-2 minutes on a loaded 2-core
# machine, too slow for every run): $QS_OLD_RELEASE_CACHE, by default
# old-release-<commit> next to the build's bin/. The sources come from this
# repository's history (`git archive`), so the test needs a clone that has
# the commit (not a shallow one).
. "$QS_SRC/tests/integration/lib.sh"
here=$QS_SRC/tests/tuf
command -v node >/dev/null || fail "node is required"
if [ ! -d "$here/node_modules/tuf-js" ]; then
	(cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1) || fail "npm ci in tests/tuf"
fi
HTTP_PID=""
stop_http() { [ -z "$HTTP_PID" ] || { kill "$HTTP_PID" 2>/dev/null || true; wait "$HTTP_PID" 2>/dev/null || true; }; }
trap 'stop_http; qs_cleanup' EXIT

# --- the previous release, built once
old_rev=0796e07
old=${QS_OLD_RELEASE_CACHE:-$(cd "$QS_BIN/.." && pwd)/old-release-$old_rev}
# Without the history (a shallow clone) there is no previous release to
# build: say so and skip (ctest counts exit 77 as skipped, not passed).
if ! git -C "$QS_SRC" cat-file -e "$old_rev^{commit}" 2>/dev/null; then
	echo "SKIP: commit $old_rev (the previous release) is not in this clone's history"
	exit 77
fi
# The old release links nng as this build does (the patched static nng,
# ops/nng): no system libnng needed.
nng_dir=$(sed -n 's/^nng_DIR:PATH=//p' "$QS_BUILD/CMakeCache.txt")
mkdir -p "$old"
(
	flock 9
	if [ ! -x "$old/build/bin/qsignd" ] || [ ! -x "$old/build/bin/qsign" ] ||
		[ ! -x "$old/build/bin/qsign-token" ]; then
		rm -rf "$old/src" "$old/build"
		mkdir -p "$old/src"
		git -C "$QS_SRC" archive "$old_rev" | tar -x -C "$old/src" ||
			{ echo "git archive $old_rev failed: the test needs this repository's history" >&2; exit 1; }
		{ cmake -S "$old/src" -B "$old/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
			-Dnng_DIR="$nng_dir" &&
			cmake --build "$old/build" -j2 --target qsignd qsign qsign-token; } \
			>"$old/build.log" 2>&1 || { tail -30 "$old/build.log" >&2; exit 1; }
	fi
) 9>"$old/lock" || fail "building release $old_rev"
OLD_BIN=$old/build/bin
NEW_BIN=$QS_BIN
module=/usr/lib/softhsm/libsofthsm2.so

# --- the deployment, as the old release sets it up
QS_BIN=$OLD_BIN "$old/src/ops/run" --setup-only --no-build >"$T/setup.log" 2>&1 ||
	{ cat "$T/setup.log" >&2; fail "old ops/run --setup-only"; }
tuf=$QSIGN_HOME/tuf

# admin1 holds a root key in a token of their own (the old release put it in
# both roots); its production key comes later, for the separation.
a1=$T/adm1
mkdir -p "$a1/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$a1" >"$a1/softhsm2.conf"
openssl rand -hex 16 >"$a1/so.pin"
openssl rand -hex 16 >"$a1/user.pin"
chmod 600 "$a1/so.pin" "$a1/user.pin"
a1tok() { SOFTHSM2_CONF=$a1/softhsm2.conf "$@"; }
a1tok "$NEW_BIN/qsign-token" init --module "$module" --label adm1 \
	--so-pin-file "$a1/so.pin" --pin-file "$a1/user.pin" >/dev/null
for k in tuf-root tuf-prod-root; do
	a1tok "$NEW_BIN/qsign-token" keygen -m "$module" -u "pkcs11:token=adm1" -P "file:$a1/user.pin" \
		-t ecdsa-p256 -l "$k" >/dev/null
	a1tok "$NEW_BIN/qsign-token" pubkey -m "$module" -u "pkcs11:token=adm1;object=$k" \
		-P "file:$a1/user.pin" -o "$a1/$k.pem"
done
export T_DIR=$T
qs_policy_edit "
import os
p['tuf']['external'] = {'adm1-root': {'holder': 'admin1',
                        'public_key': open(os.environ['T_DIR'] + '/adm1/tuf-root.pem').read()}}
p['tuf']['roles']['root'] = {'keys': ['tuf-root-1', 'adm1-root'], 'threshold': 2, 'expires': '365d'}
# Refresh every second what expires within a day minus 2 s: the 1-day
# timestamps are re-signed all along, before and after the upgrade.
p['tuf']['refresh'] = {'interval': '1s', 'margin': '86398s'}
"
python3 - "$QSIGN_HOME/policy.json" <<'PY' || fail "not the old policy layout"
import json, sys
roles = json.load(open(sys.argv[1]))["tuf"]["roles"]
assert sorted(roles) == ["prod-targets", "root", "snapshot", "targets", "timestamp"], sorted(roles)
PY

approve() { local id=$1; shift; for a in "$@"; do expect_rc 0 "$QSB/qsign" -p "$a" approve "$id"; done; }
a1sign() { # admin1 signs request ID with each of its keys named after it
	local id=$1 args=()
	shift
	for k in "$@"; do args+=(-i "pkcs11:token=adm1;object=$k"); done
	SOFTHSM2_CONF=$a1/softhsm2.conf QSIGN_PIN_FILE=$a1/user.pin \
		expect_rc 0 "$QSB/qsign" -p admin1 tuf sign --yes "${args[@]}" "$id"
}

# --- with the old qsignd and qsign: init, CI pushes, a production release
QSB=$OLD_BIN
QS_BIN=$OLD_BIN qs_start
head -c 3000 /dev/urandom >"$T/app.bin"
head -c 3000 /dev/urandom >"$T/app2.bin"
head -c 3000 /dev/urandom >"$T/app3.bin"
sha() { sha256sum "$1" | cut -c1-64; }
expect_rc 0 "$QSB/qsign" -p admin3 tuf init -m "repositories of the old release"
id=$(cat "$T/out")
approve "$id" admin1 admin2
a1sign "$id" tuf-root
for r in ci prod; do
	[ -f "$tuf/$r/metadata/1.root.json" ] || fail "old release: $r root 1 not published"
	cp "$tuf/$r/metadata/1.root.json" "$T/$r.1.root.json"
done
expect_rc 0 "$QSB/qsign" -p ci tuf push-targets "$T/app.bin"
expect_rc 0 "$QSB/qsign" -p ci tuf push-targets "$T/app2.bin"
expect_rc 0 "$QSB/qsign" -p admin1 tuf promote -m "release 1" app.bin
approve "$(cat "$T/out")" admin2 admin3
[ -f "$tuf/prod/metadata/2.targets.json" ] || fail "old release: promote not published"
python3 - "$tuf" <<'PY' || fail "the old release's roots should share keys"
import json, sys
d = sys.argv[1]
ci = json.load(open(f"{d}/ci/metadata/root.json"))["signed"]
prod = json.load(open(f"{d}/prod/metadata/root.json"))["signed"]
for role in ("root", "snapshot", "timestamp"):
    assert ci["roles"][role] == prod["roles"][role], role
assert set(ci["roles"]["targets"]["keyids"]) < set(prod["roles"]["targets"]["keyids"])
PY
# A release approved by one admin under the old release, pending across
# the upgrade and the separation.
expect_rc 0 "$QSB/qsign" -p admin1 tuf promote -m "release 1.1" app2.bin
pending=$(cat "$T/out")
approve "$pending" admin2
qs_stop || fail "old qsignd did not stop cleanly"
echo "ok: release $old_rev initialised repositories sharing keys (external root key included)"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tuf" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ci/metadata/root.json" >/dev/null && break; sleep 0.1; done
# walk CLIENT REPO [args...]: device CLIENT (state kept in $T/dev.CLIENT,
# seeded with CLIENT's root 1 of the old release) refreshes from REPO.
walk() {
	local client=$1 repo=$2
	shift 2
	node "$here/walk.mjs" --url "http://127.0.0.1:$PORT/$repo" --root "$T/${client%%.*}.1.root.json" \
		--state "$T/dev.$client" "$@" >"$T/walk.out" 2>&1 ||
		{ cat "$T/walk.out" >&2; fail "tuf-js $client device on $repo: $*"; }
	cat "$T/walk.out"
}
# The production device of the old release: trusts its root 1, has app.bin.
walk prod prod --root-version 1 --target app.bin --sha256 "$(sha "$T/app.bin")"

# --- the current qsignd on that state
QSB=$NEW_BIN
QS_BIN=$NEW_BIN qs_start
expect_rc 1 "$QSB/qsign" -p admin1 tuf review
# Every shared key is an error: the daemon's root (and admin1's external
# root key), snapshot and timestamp keys, and the CI targets key that
# signed production targets.
a1root=$(python3 - "$tuf/ci/metadata/root.json" "$a1/tuf-root.pem" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["signed"]
pem = open(sys.argv[2]).read().strip()
print([k for k, v in s["keys"].items() if v["keyval"]["public"].strip() == pem][0][:16])
PY
)
for pair in "root and prod-root" "snapshot and prod-snapshot" "timestamp and prod-timestamp" \
	"prod-targets and targets" "$a1root.*root and prod-root"; do
	grep -q "^  error: key .*$pair.*qsign tuf separate" "$T/out" ||
		fail "review does not report the shared key of $pair: $(cat "$T/out" "$T/err")"
done
[ "$(grep -c "^  error: .*is shared by the CI and production" "$T/out")" = 5 ] ||
	fail "review: $(cat "$T/out")"
cp "$T/out" "$T/review.before"
echo "ok: the current qsignd starts on the old state; review reports the shared keys as errors"

# The online roles keep working before the separation.
expect_rc 0 "$QSB/qsign" -p ci tuf push-targets "$T/app3.bin"

# --- the separation: admin1's shared external root key leaves production,
# its production root key joins; a quorum approves; admin1 signs both roots.
ver=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$tuf/prod/metadata/root.json")
expect_rc 0 "$QSB/qsign" -p admin1 tuf separate -m "production keys of its own" \
	--external adm1-prod-root --holder admin1 --public-key "$a1/tuf-prod-root.pem"
id=$(cat "$T/out")
approve "$id" admin2 admin3
[ ! -e "$tuf/prod/metadata/$((ver + 1)).root.json" ] || fail "published without admin1's signatures"
a1sign "$id" tuf-root tuf-prod-root
for r in ci prod; do
	[ -f "$tuf/$r/metadata/$((ver + 1)).root.json" ] || fail "$r root $((ver + 1)) not published"
done
expect_rc 0 "$QSB/qsign" -p admin1 tuf review
grep -q "shared" "$T/out" && fail "review still reports shared keys: $(cat "$T/out")"
python3 - "$tuf" "$a1/tuf-root.pem" "$a1/tuf-prod-root.pem" <<'PY' || fail "separated roots"
import json, sys
d, ci_pem, prod_pem = sys.argv[1:]
ci = json.load(open(f"{d}/ci/metadata/root.json"))["signed"]
prod = json.load(open(f"{d}/prod/metadata/root.json"))["signed"]
shared = set(ci["keys"]) & set(prod["keys"])
assert not shared, f"keys in both roots: {sorted(shared)}"
pems = lambda s, role: {s["keys"][k]["keyval"]["public"] for k in s["roles"][role]["keyids"]}
norm = lambda f: open(f).read().strip()
assert norm(ci_pem) in {x.strip() for x in pems(ci, "root")}
assert norm(prod_pem) in {x.strip() for x in pems(prod, "root")}
assert norm(ci_pem) not in {x.strip() for x in pems(prod, "root")}
assert prod["roles"]["root"]["threshold"] == 2 and len(prod["roles"]["root"]["keyids"]) == 2
PY
echo "ok: separate (quorum + admin1's CI and production root keys) leaves no shared key"

# --- production still releases, with its own keys
# The release left pending by the old release was diffed against the
# production targets the separation re-signed: its last vote ends it with
# that reason (operations.md), and it is submitted again.
approve "$pending" admin3
expect_rc 0 "$QSB/qsign" -p admin1 request show "$pending"
grep -q "state: *failed (the promote's base is not the production targets in force" "$T/out" ||
	fail "pending promote: $(cat "$T/out")"
expect_rc 0 "$QSB/qsign" -p admin1 tuf promote -m "release 2" app2.bin app3.bin
approve "$(cat "$T/out")" admin2 admin3
expect_rc 0 "$QSB/qsign" -p ci tuf push-targets "$T/app2.bin"
# The old production device walks to the separated root and downloads the
# release promoted after the split; so does a fresh device seeded with the
# old release's production root 1.
walk prod prod --root-version "$((ver + 1))" --target app3.bin --sha256 "$(sha "$T/app3.bin")"
walk prod.fresh prod --root-version "$((ver + 1))" --target app.bin --sha256 "$(sha "$T/app.bin")"
walk prod.fresh prod --root-version "$((ver + 1))" --target app2.bin --sha256 "$(sha "$T/app2.bin")"
echo "ok: devices holding the old production root reach root $((ver + 1)) and download"

# The refresh timer re-signs production's timestamp with production's
# own key, also after a restart.
qs_stop || fail "qsignd did not stop cleanly"
QS_BIN=$NEW_BIN qs_start
expect_rc 0 "$QSB/qsign" -p admin1 tuf review
grep -q "shared" "$T/out" && fail "review after restart: $(cat "$T/out")"
tsver() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["version"])' "$tuf/prod/metadata/timestamp.json"; }
v0=$(tsver)
for _ in $(seq 1 100); do [ "$(tsver)" -ge $((v0 + 2)) ] && break; sleep 0.1; done
[ "$(tsver)" -ge $((v0 + 2)) ] || fail "production timestamp not refreshed after the separation"
walk prod prod --root-version "$((ver + 1))" --target app3.bin --sha256 "$(sha "$T/app3.bin")"

# Both roots move on once more, so CI has a root beyond the device's.
expect_rc 0 "$QSB/qsign" -p admin1 tuf set-expiry -m "root after the split" root 300d
id=$(cat "$T/out")
approve "$id" admin2 admin3
a1sign "$id" tuf-root tuf-prod-root
for r in ci prod; do
	[ -f "$tuf/$r/metadata/$((ver + 2)).root.json" ] || fail "$r root $((ver + 2)) not published"
done

# --- a production device past the split refuses everything CI signs
unsigned='UnsignedMetadataError: %s was signed by 0/[0-9]+ keys'
cp -r "$T/dev.prod" "$T/dev.prod.ci"
walk prod.ci ci --expect-fail "$(printf "$unsigned" root)"
verify() { # ROOT ROLE FILE REGEX
	node "$here/verify.mjs" --root "$1" --role "$2" --file "$3" --expect-fail "$4" >"$T/verify.out" 2>&1 ||
		{ cat "$T/verify.out" >&2; fail "tuf-js accepted $3 as $2 under $1"; }
}
last=$(ls "$tuf/ci/metadata" | grep -E '^[0-9]+\.snapshot\.json$' | sort -n | tail -1)
verify "$tuf/prod/metadata/root.json" snapshot "$tuf/ci/metadata/$last" "$(printf "$unsigned" snapshot)"
verify "$tuf/prod/metadata/root.json" timestamp "$tuf/ci/metadata/timestamp.json" "$(printf "$unsigned" timestamp)"
ci_targets=$(ls "$tuf/ci/metadata" | grep -E '^[0-9]+\.targets\.json$' | sort -n | tail -1)
verify "$tuf/prod/metadata/root.json" targets "$tuf/ci/metadata/$ci_targets" "$(printf "$unsigned" targets)"
# ... and still updates from production afterwards.
walk prod.ci prod --root-version "$((ver + 2))" --target app3.bin --sha256 "$(sha "$T/app3.bin")"
# A CI device of the old release follows CI and refuses production's timestamp.
walk ci ci --root-version "$((ver + 2))" --target app2.bin --sha256 "$(sha "$T/app2.bin")"
verify "$tuf/ci/metadata/root.json" timestamp "$tuf/prod/metadata/timestamp.json" "$(printf "$unsigned" timestamp)"
echo "ok: a separated production device refuses CI's root chain, timestamp, snapshot and targets"

qs_stop || fail "qsignd did not stop cleanly"
