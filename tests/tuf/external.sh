#!/usr/bin/env bash
# Offline TUF keys held by admins, outside the daemon: a mixed root (one
# key in the daemon's token, two external keys of admin1 and admin2, each
# in their own SoftHSM token with its own token directory; admin2's is
# Ed25519, as is the daemon's timestamp key), threshold 2 of 3, and a production-targets key of admin3 in a PEM file (one key per
# release engineer). The repositories share no key: admin1 and admin2 hold
# one root key per repository (two objects in their token) and `qsign tuf
# sign -i CI_KEY -i PROD_KEY` signs with both in one go.
# Publication waits until every threshold (the approvals and TUF's) is met;
# `qsign tuf sign` signs the exact canonical bytes with the admin's token
# key; tuf-js walks every root version from root v1 and downloads a
# promoted target. Refused: a key held by someone else, a key the request
# does not need, a replayed or garbage signature, a bad document index, a
# policy that puts an external key on an online role.
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
module=/usr/lib/softhsm/libsofthsm2.so

# --- each admin's own token, in a token directory of their own
admin_token() { # name
	local d=$T/$1
	mkdir -p "$d/tokens"
	printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$d" >"$d/softhsm2.conf"
	openssl rand -hex 16 >"$d/so.pin"
	openssl rand -hex 16 >"$d/user.pin"
	chmod 600 "$d/so.pin" "$d/user.pin"
	SOFTHSM2_CONF=$d/softhsm2.conf qsign-token init --module "$module" --label "$1" \
		--so-pin-file "$d/so.pin" --pin-file "$d/user.pin" >/dev/null
	SOFTHSM2_CONF=$d/softhsm2.conf qsign-token keygen -m "$module" -u "pkcs11:token=$1" \
		-P "file:$d/user.pin" -t "${2:-ecdsa-p256}" -l tuf-key >/dev/null
	SOFTHSM2_CONF=$d/softhsm2.conf qsign-token pubkey -m "$module" \
		-u "pkcs11:token=$1;object=tuf-key" -P "file:$d/user.pin" -o "$d/tuf-key.pem"
	# the production root key of the same admin, beside the CI one
	SOFTHSM2_CONF=$d/softhsm2.conf qsign-token keygen -m "$module" -u "pkcs11:token=$1" \
		-P "file:$d/user.pin" -t "${2:-ecdsa-p256}" -l tuf-prod-key >/dev/null
	SOFTHSM2_CONF=$d/softhsm2.conf qsign-token pubkey -m "$module" \
		-u "pkcs11:token=$1;object=tuf-prod-key" -P "file:$d/user.pin" -o "$d/tuf-prod-key.pem"
}
admin_token adm1
admin_token adm2 ed25519 # TUF's other key type: hex public key, raw signatures
admin_token stray
# admin3's release key is a plain PEM file (0600): `qsign tuf sign -i FILE`
mkdir -p "$T/adm3"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/adm3/release.key" 2>/dev/null
chmod 600 "$T/adm3/release.key"
openssl pkey -in "$T/adm3/release.key" -pubout -out "$T/adm3/tuf-key.pem"
# as ADMIN with the token of TOKEN: qsign tuf sign ...
tsign() { # admin token args...
	local a=$1 t=$2
	shift 2
	if [ "$t" = adm3 ]; then
		qsign -p "$a" tuf sign --yes -i "$T/adm3/release.key" "$@"
		return
	fi
	# Sanitizer builds: SoftHSM leaks a few bytes per Ed25519 C_SignInit
	# inside libcrypto (no frame pointers); only the full unwinder reaches
	# the libsofthsm2 frame that tests/lsan.supp names (as in
	# tests/hsm/run-softhsm.sh), so this process unwinds fully.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:fast_unwind_on_malloc=0} \
		SOFTHSM2_CONF=$T/$t/softhsm2.conf QSIGN_PIN_FILE=$T/$t/user.pin \
		qsign -p "$a" tuf sign --yes -i "pkcs11:token=$t;object=tuf-key" \
		-i "pkcs11:token=$t;object=tuf-prod-key" "$@"
}
keyid() { # pem file -> TUF keyid, computed here from the spec (OLPC
	# canonical JSON escapes only " and \, so the PEM's newlines stay raw)
	python3 - "$1" <<'PY'
import base64, hashlib, sys
pem = open(sys.argv[1]).read()
der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
if len(der) == 44:  # Ed25519 SubjectPublicKeyInfo: the raw key is its last 32 bytes
    canon = '{"keytype":"ed25519","keyval":{"public":"' + der[-32:].hex() + '"},"scheme":"ed25519"}'
else:
    canon = '{"keytype":"ecdsa","keyval":{"public":' + q(pem) + '},"scheme":"ecdsa-sha2-nistp256"}'
print(hashlib.sha256(canon.encode()).hexdigest())
PY
}
k1=$(keyid "$T/adm1/tuf-key.pem")
k2=$(keyid "$T/adm2/tuf-key.pem")
k3=$(keyid "$T/adm3/tuf-key.pem")
kp1=$(keyid "$T/adm1/tuf-prod-key.pem")
kp2=$(keyid "$T/adm2/tuf-prod-key.pem")

SOFTHSM2_CONF=$QSIGN_HOME/softhsm2.conf qsign-token keygen -m "$module" -u "pkcs11:token=qsign-demo" \
	-P "file:$QSIGN_HOME/user.pin" -t ed25519 -l tuf-timestamp-ed >/dev/null
export T_DIR=$T
qs_policy_edit "
uri = p['keys']['tuf-timestamp']['uri'].replace('object=tuf-timestamp', 'object=tuf-timestamp-ed')
p['keys']['tuf-timestamp-ed'] = {'uri': uri, 'algorithm': 'ed25519'}
p['tuf']['roles']['timestamp']['keys'] = ['tuf-timestamp-ed']
"
qs_policy_edit "
import os
T = os.environ['T_DIR']
pem = lambda a: open(f'{T}/{a}/tuf-key.pem').read()
p['tuf']['external'] = {
    'adm1-root': {'holder': 'admin1', 'public_key': pem('adm1')},
    'adm2-root': {'holder': 'admin2', 'public_key': pem('adm2')},
    'adm3-release': {'holder': 'admin3', 'public_key': pem('adm3')},
    'adm1-prod-root': {'holder': 'admin1', 'public_key': open(f'{T}/adm1/tuf-prod-key.pem').read()},
    'adm2-prod-root': {'holder': 'admin2', 'public_key': open(f'{T}/adm2/tuf-prod-key.pem').read()},
}
p['tuf']['roles']['root'] = {'keys': ['tuf-root-1', 'adm1-root', 'adm2-root'], 'threshold': 2, 'expires': '365d'}
p['tuf']['roles']['prod-root'] = {'keys': ['tuf-prod-root-1', 'adm1-prod-root', 'adm2-prod-root'], 'threshold': 2, 'expires': '365d'}
p['tuf']['roles']['prod-targets'] = {'keys': ['tuf-prod-targets', 'tuf-targets-offline', 'adm3-release'], 'threshold': 3, 'expires': '90d'}
"

# --- policies qsignd refuses to start with: EDIT (python on p) WHY PATTERN
refused_policy() {
	local rc=0
	cp "$QSIGN_HOME/policy.json" "$T/policy.good"
	qs_policy_edit "$1"
	timeout 20 qsignd -c "$QSIGN_HOME/qsignd.json" >"$T/bad.log" 2>&1 || rc=$?
	cp "$T/policy.good" "$QSIGN_HOME/policy.json"
	[ "$rc" != 0 ] || fail "qsignd started with $2"
	grep -q "$3" "$T/bad.log" || fail "$2: $(cat "$T/bad.log")"
}
# an external key on an online role, or held by a non-approver
refused_policy "p['tuf']['roles']['snapshot']['keys'] = ['adm1-root']" \
	"an external snapshot key" "only root, prod-root and prod-targets keys may be held outside"
refused_policy "p['tuf']['external']['adm1-root']['holder'] = 'ci'" \
	"an external key held by a non-approver" "is not an approver of tuf.gates.admin"
# one key under two names, or in both targets roles, would count twice
refused_policy "p['tuf']['external']['adm2-again'] = dict(p['tuf']['external']['adm2-root'])" \
	"one external key under two names" "the same key as"
refused_policy "p['tuf']['roles']['prod-targets']['keys'].append('tuf-targets')" \
	"the CI targets key in prod-targets" "is listed for the CI repository too"
# an admin's CI root key cannot be their production root key as well
refused_policy "p['tuf']['roles']['prod-root']['keys'][1] = 'adm1-root'" \
	"an external key in both roots" "is listed for the CI repository too"
echo "ok: external keys only on offline roles, held by the role's approvers, each key once"

qs_start
approve() { local id=$1; shift; for a in "$@"; do expect_rc 0 qsign -p "$a" approve "$id"; done; }
state() { expect_rc 0 qsign -p admin1 request show "$1"; grep -m1 -o "state: *[a-z]*" "$T/out" | awk '{print $2}'; }
no_signatures() { # request: no external signature kept on any of its documents
	expect_rc 0 qsign -p admin2 tuf status --json "$1"
	python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))
assert all(d["signed_by"] == [] for d in s["documents"]), s' "$T/out"
}

# --- init: the quorum alone publishes nothing; the signatures complete it
expect_rc 0 qsign -p admin3 tuf init -m "mixed root"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 tuf status "$id"
grep -q "waiting for" "$T/out" || fail "status: $(cat "$T/out")"
grep -q "adm1-root (held by admin1)" "$T/out" || fail "status lacks adm1-root: $(cat "$T/out")"
grep -q "root *2 of ${k1:0:12}\|root *2 of .* ${k1:0:12}" "$T/out" || fail "status does not describe root v1: $(cat "$T/out")"
approve "$id" admin1 admin2
grep -q "publishes when every TUF signature is in" "$T/out" || fail "progress line: $(cat "$T/out")"
[ "$(state "$id")" = approved ] || fail "init not approved: $(cat "$T/out")"
[ ! -e "$tuf/ci/metadata/1.root.json" ] || fail "published without the external signatures"
grep -q "request.waiting" "$T/qsignd.log" || fail "no request.waiting in the log"
# admin1 cannot sign with admin2's key, nor with a key nobody declared
expect_rc 1 tsign admin1 adm2 "$id"
grep -q "held by admin2, not by admin1" "$T/err" || fail "foreign key: $(cat "$T/err")"
expect_rc 1 tsign admin1 stray "$id"
grep -q "needs no signature of any of these keys" "$T/err" || fail "stray key: $(cat "$T/err")"
expect_rc 0 tsign admin1 adm1 "$id"
grep -q "signed ci root version 1" "$T/out" || fail "sign: $(cat "$T/out")"
[ ! -e "$tuf/prod/metadata/1.root.json" ] || fail "published without admin3's release key"
grep -q "prod targets version 1 .*missing 1" "$T/out" || fail "status after sign: $(cat "$T/out")"
expect_rc 0 tsign admin3 adm3 "$id"
[ "$(state "$id")" = signed ] || fail "init not done: $(cat "$T/out")"
for r in ci prod; do
	[ -f "$tuf/$r/metadata/1.root.json" ] || fail "$r root 1 not published"
	cp "$tuf/$r/metadata/1.root.json" "$T/$r.1.root.json"
done
python3 - "$tuf" "$k1" "$k2" "$k3" "$kp1" "$kp2" <<'PY' || fail "root v1 keys"
import json, sys
tuf, k1, k2, k3, kp1, kp2 = sys.argv[1:]
for repo, a, b in (("ci", k1, k2), ("prod", kp1, kp2)):
    r = json.load(open(f"{tuf}/{repo}/metadata/1.root.json"))
    s = r["signed"]
    assert s["roles"]["root"]["threshold"] == 2 and len(s["roles"]["root"]["keyids"]) == 3
    assert a in s["roles"]["root"]["keyids"] and b in s["roles"]["root"]["keyids"]
    sigs = {x["keyid"] for x in r["signatures"]}
    assert a in sigs and b not in sigs and len(sigs) == 2, sigs
    assert s["keys"][b]["keytype"] == "ed25519" and len(s["keys"][b]["keyval"]["public"]) == 64
ci = json.load(open(f"{tuf}/ci/metadata/1.root.json"))["signed"]
s = json.load(open(f"{tuf}/prod/metadata/1.root.json"))["signed"]
assert not set(ci["keys"]) & set(s["keys"]), "the roots share keys"
assert k3 in s["roles"]["targets"]["keyids"] and s["roles"]["targets"]["threshold"] == 3
t = json.load(open(f"{tuf}/prod/metadata/1.targets.json"))
assert k3 in {x["keyid"] for x in t["signatures"]} and len(t["signatures"]) == 3
ts = ci["roles"]["timestamp"]["keyids"][0]
assert ci["keys"][ts]["keytype"] == "ed25519", ci["keys"][ts]
PY
echo "ok: mixed root v1 (2 of 3, two keys in admins' own tokens) waits for and merges their signatures"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$tuf" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ci/metadata/root.json" >/dev/null && break; sleep 0.1; done
walk() { # repo [args...]
	local repo=$1
	shift
	node "$here/walk.mjs" --url "http://127.0.0.1:$PORT/$repo" --root "$T/$repo.1.root.json" "$@" \
		>"$T/walk.out" 2>&1 || { cat "$T/walk.out" >&2; fail "tuf-js on $repo: $*"; }
}
walk ci --root-version 1
walk prod --root-version 1
echo "ok: tuf-js accepts the mixed root"

# --- rotate the daemon's root key: root 2 needs 2 of root 1's keys and 2
# of root 2's: the daemon's old and new key plus one admin's
objs() { find "$QSIGN_HOME/tokens" -name '*.object' ! -name token.object | sort; }
objs >"$T/objs.before"
expect_rc 0 qsign -p admin1 tuf rotate-key --keyid "$(python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))["signed"]
print([k for k in s["roles"]["root"]["keyids"] if k not in sys.argv[2:]][0])' "$tuf/ci/metadata/1.root.json" "$k1" "$k2")" root
rid=$(cat "$T/out")
expect_rc 0 tsign admin2 adm2 "$rid"
grep -q "approved request" "$T/out" || fail "tuf sign did not approve: $(cat "$T/out")"
[ "$(state "$rid")" = pending ] || fail "one approval is not the quorum"
[ ! -e "$tuf/ci/metadata/2.root.json" ] || fail "root 2 with one approval"
approve "$rid" admin3
[ "$(state "$rid")" = signed ] || fail "rotation not done: $(cat "$T/out")"
objs >"$T/objs.after"
# the two objects (private and public key) of the daemon's new root key
comm -13 "$T/objs.before" "$T/objs.after" >"$T/rootkey.objects"
[ "$(wc -l <"$T/rootkey.objects")" = 2 ] || fail "rotation made $(cat "$T/rootkey.objects")"
walk ci --root-version 2
walk prod --root-version 2
echo "ok: daemon root key rotated with an admin's external signature; tuf-js walks 1 -> 2"

# --- bad signatures change nothing: replayed from published metadata,
# garbage, a document index out of range
expect_rc 0 qsign -p admin1 tuf set-expiry -m "longer root" root 400d
xid=$(cat "$T/out")
expect_rc 0 qsign -p admin2 tuf status "$xid"
oldsig=$(python3 -c '
import json,sys; r=json.load(open(sys.argv[1]))
print([x["sig"] for x in r["signatures"] if x["keyid"]==sys.argv[2]][0])' "$tuf/ci/metadata/2.root.json" "$k2")
url=ipc://$QSIGN_HOME/qsignd.sock
addsig() { tuf_addsig "$url" admin2 "$QSIGN_HOME/demo/admin2.key" "$xid" "$@"; }
expect_rc 1 addsig 0 "$k2" "$oldsig"
grep -q "does not verify" "$T/out" || fail "replayed signature: $(cat "$T/out")"
expect_rc 1 addsig 0 "$k2" 3006020101020101
grep -q "does not verify" "$T/out" || fail "garbage signature: $(cat "$T/out")"
expect_rc 1 addsig 7 "$k2" "$oldsig"
grep -q "no document 7" "$T/out" || fail "bad index: $(cat "$T/out")"
expect_rc 1 tuf_addsig "$url" admin1 "$QSIGN_HOME/demo/admin1.key" "$xid" 0 "$k2" "$oldsig"
grep -q "held by admin2, not by admin1" "$T/out" || fail "foreign keyid: $(cat "$T/out")"
no_signatures "$xid" || fail "a refused signature was kept"
approve "$xid" admin2 admin3
[ ! -e "$tuf/ci/metadata/3.root.json" ] || fail "root 3 published without an external signature"
expect_rc 0 tsign admin1 adm1 "$xid"
[ "$(state "$xid")" = signed ] || fail "set-expiry not done: $(cat "$T/out")"
python3 - "$tuf" <<'PY' || fail "root 3 expiry"
import json, sys, datetime
s = json.load(open(f"{sys.argv[1]}/ci/metadata/3.root.json"))["signed"]
exp = datetime.datetime.strptime(s["expires"], "%Y-%m-%dT%H:%M:%SZ")
days = (exp - datetime.datetime.utcnow()).days
assert 398 <= days <= 400, days
PY
walk ci --root-version 3
echo "ok: replayed, garbage and misdirected signatures refused and not kept; set-expiry 400d published"

# --- remove admin1's root key: root 4 must be signed by 2 of root 3's keys
# and by 2 of root 4's (the daemon's and admin2's)
expect_rc 0 qsign -p admin3 tuf remove-key -m "admin1 leaves" root "$k1"
did=$(cat "$T/out")
approve "$did" admin1 admin2
expect_rc 0 qsign -p admin1 tuf status "$did"
grep -q "missing 1" "$T/out" || fail "remove-key status: $(cat "$T/out")"
# admin1's key still counts for root 3's threshold, not for root 4's
expect_rc 0 tsign admin1 adm1 "$did"
[ "$(state "$did")" = approved ] || fail "root 4 without a key of its own set: $(cat "$T/out")"
[ ! -e "$tuf/ci/metadata/4.root.json" ] || fail "root 4 published without 2 of its own keys"
expect_rc 0 tsign admin2 adm2 "$did"
[ "$(state "$did")" = signed ] || fail "remove-key not done: $(cat "$T/out")"
python3 - "$tuf" "$k1" <<'PY' || fail "root 4 keys"
import json, sys
s = json.load(open(f"{sys.argv[1]}/ci/metadata/4.root.json"))["signed"]
assert sys.argv[2] not in s["roles"]["root"]["keyids"] and len(s["roles"]["root"]["keyids"]) == 2
PY
walk ci --root-version 4
walk prod --root-version 4
echo "ok: an external root key removed; root 4 signed by the remaining threshold"

# --- production promote needs the release engineer's key (admin3)
head -c 3000 /dev/urandom >"$T/fw.bin"
sha=$(sha256sum "$T/fw.bin" | cut -c1-64)
expect_rc 0 qsign -p ci tuf push-targets "$T/fw.bin"
expect_rc 0 qsign -p admin1 tuf promote -m "release 1" fw.bin
pid=$(cat "$T/out")
approve "$pid" admin2 admin3
[ "$(state "$pid")" = approved ] || fail "promote: $(cat "$T/out")"
[ ! -e "$tuf/prod/metadata/2.targets.json" ] || fail "promote published without the release key"
walk prod --root-version 4
expect_rc 0 tsign admin3 adm3 "$pid"
[ "$(state "$pid")" = signed ] || fail "promote not done: $(cat "$T/out")"
walk prod --root-version 4 --target fw.bin --sha256 "$sha"
echo "ok: production targets wait for the release engineer's key; tuf-js downloads the target"

# --- a lost daemon root key: with a second daemon key and admin2's, the
# remaining threshold removes it (root 5 adds a key, root 6 drops the lost)
expect_rc 0 qsign -p admin1 tuf add-key -m "second daemon root key" root
aid=$(cat "$T/out")
approve "$aid" admin2 admin3
expect_rc 0 tsign admin2 adm2 "$aid"
[ "$(state "$aid")" = signed ] || fail "add-key not done: $(cat "$T/out")"
lost=$(python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))["signed"]
print([k for k in s["roles"]["root"]["keyids"] if k != sys.argv[2]][0])' "$tuf/ci/metadata/4.root.json" "$k2")
qs_stop
xargs rm -f <"$T/rootkey.objects"
qs_start
expect_rc 1 qsign -p admin1 tuf review
grep -q "root key .* is not in any opened token" "$T/out" || fail "review of a lost key: $(cat "$T/out")"
expect_rc 0 qsign -p admin1 tuf remove-key -m "lost with its token" root "$lost"
lid=$(cat "$T/out")
approve "$lid" admin2 admin3
# the lost key does not count: one external signature is still missing
expect_rc 0 qsign -p admin1 tuf status "$lid"
grep -q "waiting for" "$T/out" || fail "status counts the lost key: $(cat "$T/out")"
expect_rc 0 tsign admin2 adm2 "$lid"
[ "$(state "$lid")" = signed ] || fail "removing the lost key: $(cat "$T/out")"
grep -q "tuf.key_unavailable" "$T/qsignd.log" || fail "no tuf.key_unavailable logged"
python3 - "$tuf" "$lost" <<'PY' || fail "root 6"
import json, sys
r = json.load(open(f"{sys.argv[1]}/ci/metadata/6.root.json"))
assert sys.argv[2] not in r["signed"]["roles"]["root"]["keyids"]
assert sys.argv[2] not in {x["keyid"] for x in r["signatures"]} and len(r["signatures"]) == 2
PY
walk ci --root-version 6 --target fw.bin --sha256 "$sha"
walk prod --root-version 6 --target fw.bin --sha256 "$sha"
echo "ok: a lost daemon root key is removed by the remaining threshold; tuf-js walks to root 6"

# --- an online role's expiry only shortens: the signer helpers sign no
# timestamp expiring later than the policy's tuf.roles bound (1d here)
expect_rc 0 qsign -p admin1 tuf set-expiry -m "longer timestamps" timestamp 2d
lid=$(cat "$T/out")
approve "$lid" admin2 admin3
[ "$(state "$lid")" = failed ] || fail "set-expiry beyond the policy's bound: $(cat "$T/out")"
grep -q "longer than the policy's tuf.roles bound" "$T/out" || fail "no reason: $(cat "$T/out")"
echo "ok: set-expiry beyond the policy's bound for an online role fails with the reason"

# --- a change waiting for signatures can be withdrawn by its submitter
expect_rc 0 qsign -p admin1 tuf set-expiry -m "shorter timestamps" timestamp 20h
wid=$(cat "$T/out")
approve "$wid" admin2 admin3
[ "$(state "$wid")" = approved ] || fail "set-expiry: $(cat "$T/out")"
expect_rc 1 qsign -p admin2 request cancel "$wid"
expect_rc 0 qsign -p admin1 request cancel "$wid"
[ "$(state "$wid")" = cancelled ] || fail "cancel: $(cat "$T/out")"
expect_rc 1 tsign admin2 adm2 "$wid"
grep -q "is closed" "$T/err" || fail "signing a cancelled request: $(cat "$T/err")"
[ ! -e "$tuf/ci/metadata/7.root.json" ] || fail "a cancelled change was published"
echo "ok: a waiting change is cancelled by its submitter and takes no more signatures"

# --- the holder's client checks what it signs: a preparation that no
# longer follows the root in force is refused before anything is signed
expect_rc 0 qsign -p admin1 tuf set-expiry -m "stale" root 300d
sid=$(cat "$T/out")
expect_rc 0 qsign -p admin1 tuf status "$sid"
expect_rc 0 qsign -p admin3 tuf set-expiry -m "wins the race" root 200d
yid=$(cat "$T/out")
approve "$yid" admin1 admin2
expect_rc 0 tsign admin2 adm2 "$yid"
[ "$(state "$yid")" = signed ] || fail "set-expiry 200d: $(cat "$T/out")"
expect_rc 1 tsign admin2 adm2 "$sid"
grep -q "not version N+1 of the root in force" "$T/err" || fail "stale preparation: $(cat "$T/err")"
grep -q "refusing to sign" "$T/err" || fail "stale preparation: $(cat "$T/err")"
no_signatures "$sid" || fail "a refused document was signed"
expect_rc 0 qsign -p admin1 request cancel "$sid"
# without --yes, and no terminal to ask on, nothing is signed either
expect_rc 0 qsign -p admin1 tuf set-expiry -m "ask first" root 250d
nid=$(cat "$T/out")
SOFTHSM2_CONF=$T/adm2/softhsm2.conf QSIGN_PIN_FILE=$T/adm2/user.pin expect_rc 2 \
	qsign -p admin2 tuf sign -i "pkcs11:token=adm2;object=tuf-key" "$nid" </dev/null
grep -q "say --yes" "$T/err" || fail "no terminal: $(cat "$T/err")"
no_signatures "$nid" || fail "signed without --yes"
expect_rc 0 qsign -p admin1 request cancel "$nid"
echo "ok: tuf sign refuses a root that does not follow the root in force; asks before signing"

# --- review and audit
expect_rc 0 qsign -p admin1 tuf review
grep -q "held outside the daemon" "$T/out" || fail "review: $(cat "$T/out")"
expect_rc 0 qsign -p auditor audit tail -n 300 --json
grep -q '"tuf.signature"' "$T/out" || fail "audit lacks tuf.signature"
expect_rc 0 qsign -p auditor audit verify
echo "ok: review names the external keys; tuf.signature audited; log verifies"
