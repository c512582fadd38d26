#!/usr/bin/env bash
# Published artifacts of replicas on one PostgreSQL database: every replica
# materialises its own published TUF repositories from the store.
#  - TUF init, a CI push and a production promote made through replica A
#    appear in replica B's published directories (its own, "tuf_publish" in
#    its qsignd.json) within a bounded delay, without any call to B; a real
#    TUF client (tuf-js) updating from B's directories gets the new target;
#  - a CRL change (a device CA revoked) through A is in the CRL B serves,
#    byte for byte the one A serves;
#  - replica C, started after every change, has them published when it
#    says ready (from trusted root 1: every root version is there);
#  - from the attacker's side: target contents altered in the database are
#    not published (their hash is not the signed one) and the replica keeps
#    its repository as it was; once the contents are right again it catches
#    up; a stored target name that leads out of targets/ is refused (the
#    rules a push is held to), nothing of that repository is written, the
#    other repository is published regardless;
#  - a bad "tuf_publish" is refused with a clear error.
. "$(dirname "$0")/lib.sh"
. "$QS_SRC/ops/pg.sh"
tufdir=$QS_SRC/tests/tuf
command -v node >/dev/null || fail "node is required"
if [ ! -d "$tufdir/node_modules/tuf-js" ]; then
	(cd "$tufdir" && npm ci --no-audit --no-fund >/dev/null 2>&1) || fail "npm ci in tests/tuf"
fi
pg_start DB || fail "cannot start PostgreSQL"
qs_setup
qs_use_pg "$QSIGN_HOME/qsignd.json" "$PG_DB_CONNINFO"

HA=$QSIGN_HOME
# make_replica NAME: a copy of A's home (the same keys in its own token
# directory) publishing TUF under its own pub/.
make_replica() {
	local h=$T/home$1
	cp -a "$HA" "$h"
	sed -i "s|$HA|$h|g" "$h/softhsm2.conf" "$h/qsignd.json"
	python3 - "$h/qsignd.json" "$h/pub" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["tuf_publish"] = {"ci": sys.argv[2] + "/ci", "prod": sys.argv[2] + "/prod"}
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
}
make_replica B
make_replica C
HB=$T/homeB
HC=$T/homeC
SA=ipc://$HA/qsignd.sock
SB=ipc://$HB/qsignd.sock
SC=ipc://$HC/qsignd.sock
. "$(dirname "$0")/replicas_lib.sh"
HTTP_PID=""

# --- a bad "tuf_publish": a clear error at --check
for bad in '"x"' '{}' '{"ci": ""}' '{"ci": "/a", "staging": "/b"}'; do
	python3 - "$HB/qsignd.json" "$T/bad.json" "$bad" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["tuf_publish"] = json.loads(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"))
PY
	expect_rc 1 env SOFTHSM2_CONF="$HB/softhsm2.conf" qsignd -c "$T/bad.json" --check
	grep -q "tuf_publish" "$T/err" || fail "bad tuf_publish $bad: $(cat "$T/err")"
done
echo "ok: a bad tuf_publish is refused at --check, naming it"

stop_replica() {
	[ -n "${PID[$1]:-}" ] || return 0
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
	mv "$T/$1.log" "$T/$1.log.$(date +%s%N)"
	PID[$1]=""
}
cleanup() {
	for n in "${!PID[@]}"; do stop_replica "$n"; done
	[ -z "$HTTP_PID" ] || { kill "$HTTP_PID" 2>/dev/null || true; wait "$HTTP_PID" 2>/dev/null || true; }
	qs_cleanup
}
trap cleanup EXIT

# wait_same FILE_A FILE_B WHAT: B's copy equals A's within the bounded
# delay (the timer looks every second); prints the delay in ms.
wait_same() {
	local t0 t1 tries=50
	t0=$(date +%s%N)
	qs_sanitized && tries=150
	for _ in $(seq 1 "$tries"); do
		if [ -f "$2" ] && cmp -s "$1" "$2"; then
			t1=$(date +%s%N)
			echo "$3 on B after $(((t1 - t0) / 1000000)) ms"
			return 0
		fi
		sleep 0.1
	done
	fail "$3: B's $2 is not A's $1 after $((tries / 10)) s"
}
approve() { # ID SERVER ADMIN...
	local id=$1 s=$2
	shift 2
	for a in "$@"; do expect_rc 0 qsign -s "$s" -p "$a" approve "$id"; done
}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$T" "$PORT" >"$T/http.log" 2>&1 &
HTTP_PID=$!
walk() { # DIR(relative to $T) ROOTFILE [args...]
	local d=$1 root=$2
	shift 2
	node "$tufdir/walk.mjs" --url "http://127.0.0.1:$PORT/$d" --root "$root" "$@" \
		>"$T/walk.out" 2>&1 || { cat "$T/walk.out" >&2; fail "tuf-js on $d: $*"; }
}

start_replica A "$HA"
start_replica B "$HB"
pubA=$HA/tuf
pubB=$HB/pub

# --- TUF init through A: B publishes it
expect_rc 0 qsign -s "$SA" -p admin1 tuf init -m "first TUF root"
approve "$(cat "$T/out")" "$SA" admin2 admin3
[ -f "$pubA/ci/metadata/1.root.json" ] || fail "A did not publish the init"
for r in ci prod; do
	wait_same "$pubA/$r/metadata/timestamp.json" "$pubB/$r/metadata/timestamp.json" "init ($r)"
	for f in 1.root.json root.json 1.targets.json 1.snapshot.json; do
		cmp -s "$pubA/$r/metadata/$f" "$pubB/$r/metadata/$f" || fail "B's $r/metadata/$f is not A's"
	done
	cp "$pubA/$r/metadata/1.root.json" "$T/$r.1.root.json"
done
[ "$(stat -c %a "$pubB/ci/metadata")" = 755 ] || fail "B's metadata directory is not world-readable"
[ "$(stat -c %a "$pubB/ci/metadata/timestamp.json")" = 644 ] || fail "B's timestamp.json is not world-readable"
grep -q "tuf.materialised repo=ci" "$T/B.log" || fail "B did not log tuf.materialised"
echo "ok: TUF init through A is published by B"

# --- a CI push through A: B publishes metadata and contents; tuf-js gets it from B
head -c 5000 /dev/urandom >"$T/app.bin"
sha=$(sha256sum "$T/app.bin" | cut -c1-64)
expect_rc 0 qsign -s "$SA" -p ci tuf push-targets "$T/app.bin"
[ -f "$pubA/ci/targets/$sha.app.bin" ] || fail "A did not publish the target"
[ ! -f "$pubB/ci/targets/$sha.app.bin" ] || fail "B has the target before any materialisation (shared directory?)"
wait_same "$pubA/ci/metadata/timestamp.json" "$pubB/ci/metadata/timestamp.json" "CI push"
cmp -s "$T/app.bin" "$pubB/ci/targets/$sha.app.bin" || fail "B did not publish the target's contents"
walk homeB/pub/ci "$T/ci.1.root.json" --target app.bin --sha256 "$sha"
echo "ok: a CI push through A: tuf-js updating from B downloads the new target"

# --- a production promote through A (quorum): B publishes it
expect_rc 0 qsign -s "$SA" -p admin1 tuf promote -m "release 1" app.bin
approve "$(cat "$T/out")" "$SA" admin2 admin3
[ -f "$pubA/prod/metadata/2.targets.json" ] || fail "A did not publish the promote"
wait_same "$pubA/prod/metadata/timestamp.json" "$pubB/prod/metadata/timestamp.json" "promote"
cmp -s "$pubA/prod/metadata/2.targets.json" "$pubB/prod/metadata/2.targets.json" || fail "B's prod targets"
cmp -s "$T/app.bin" "$pubB/prod/targets/$sha.app.bin" || fail "B did not publish the promoted contents"
walk homeB/pub/prod "$T/prod.1.root.json" --target app.bin --sha256 "$sha"
echo "ok: a production promote through A: tuf-js updating from B's production repository gets it"

# --- a CRL change through A: the CRL B serves is A's
submit() { # SERVER qsign-args... -> request id in $id
	local s=$1
	shift
	expect_rc 0 qsign -s "$s" -p admin1 "$@"
	id=$(cat "$T/out")
}
submit "$SA" ca create -m "factory PKI"
approve "$id" "$SA" admin2 admin3
expect_rc 0 qsign -s "$SA" -p admin1 ca fetch "$id" -o "$T/root.pem"
submit "$SA" ca add-device-ca --online online-ca-1
approve "$id" "$SA" admin2 admin3
expect_rc 0 qsign -s "$SA" -p admin1 ca fetch "$id" -o "$T/dca.pem"
dca=$(openssl x509 -in "$T/dca.pem" -noout -serial | cut -d= -f2)
mkdir -p "$T/crlB0" "$T/crlA" "$T/crlB"
expect_rc 0 qsign -s "$SB" -p admin1 ca crl -o "$T/crlB0"
openssl crl -in "$T/crlB0/root.crl.pem" -noout -text | grep -qi "$dca" && fail "CA listed before its revocation"
submit "$SA" ca revoke-device-ca "$dca"
approve "$id" "$SA" admin2 admin3
expect_rc 0 qsign -s "$SA" -p admin1 ca crl -o "$T/crlA"
expect_rc 0 qsign -s "$SB" -p admin1 ca crl -o "$T/crlB"
openssl crl -in "$T/crlB/root.crl.pem" -noout -text | grep -qi "$dca" || fail "B's root CRL lacks the CA revoked through A"
cmp -s "$T/crlA/root.crl.pem" "$T/crlB/root.crl.pem" || fail "B's root CRL is not A's"
openssl crl -in "$T/crlB/root.crl.pem" -CAfile "$T/root.pem" -noout 2>&1 | grep -q "verify OK" ||
	fail "B's root CRL does not verify against the root"
for f in "$T"/crlA/*; do
	cmp -s "$f" "$T/crlB/$(basename "$f")" || fail "B serves a different $(basename "$f")"
done
echo "ok: a device CA revoked through A: B serves the same, newer root CRL and list of enabled CAs"

# --- C starts after every change: published by the time it is ready
start_replica C "$HC"
for r in ci prod; do
	for f in 1.root.json root.json timestamp.json; do
		cmp -s "$pubA/$r/metadata/$f" "$HC/pub/$r/metadata/$f" || fail "C at start: $r/metadata/$f"
	done
done
cmp -s "$T/app.bin" "$HC/pub/prod/targets/$sha.app.bin" || fail "C at start: promoted contents"
walk homeC/pub/ci "$T/ci.1.root.json" --target app.bin --sha256 "$sha" --root-version 1
walk homeC/pub/prod "$T/prod.1.root.json" --target app.bin --sha256 "$sha" --root-version 1
echo "ok: C started after the changes has them published when ready; tuf-js walks both from C"

# --- attacker: contents altered in the database are not published
stop_replica C
rm -rf "$HC/pub"
good=$(pg_psql DB "SELECT encode(data, 'hex') FROM qsign.doc WHERE ns = 'tuf.target' AND name = '$sha'")
[ -n "$good" ] || fail "the target's contents are not in the store"
pg_psql DB "UPDATE qsign.doc SET data = decode(md5('x'), 'hex') WHERE ns = 'tuf.target' AND name = '$sha'" >/dev/null
start_replica C "$HC"
grep -q "tuf.materialise.*do not match" "$T/C.log" || fail "C did not refuse the altered contents: $(grep tuf "$T/C.log")"
[ ! -e "$HC/pub/ci/targets/$sha.app.bin" ] || fail "altered contents published"
[ ! -e "$HC/pub/ci/metadata/timestamp.json" ] || fail "C published a timestamp naming contents it could not publish"
pg_psql DB "UPDATE qsign.doc SET data = decode('$good', 'hex') WHERE ns = 'tuf.target' AND name = '$sha'" >/dev/null
wait_same "$pubA/ci/metadata/timestamp.json" "$HC/pub/ci/metadata/timestamp.json" "restored contents (C)"
cmp -s "$T/app.bin" "$HC/pub/ci/targets/$sha.app.bin" || fail "C did not publish the restored contents"
echo "ok: contents altered in the database are refused (hash), nothing of that change published; restored, C catches up"

# --- attacker: stored targets metadata naming a path outside targets/
stop_replica C
rm -rf "$HC/pub"
q="WHERE ns = 'tuf' AND name = 'ci.targets'"
tv=$(pg_psql DB "SELECT max(version) FROM qsign.doc $q")
orig=$(pg_psql DB "SELECT encode(data, 'hex') FROM qsign.doc $q AND version = $tv")
evil=$(python3 -c 'import sys; print(bytes.fromhex(sys.argv[1]).replace(b"\"app.bin\"", b"\"../../escaped.bin\"").hex())' "$orig")
[ "$evil" != "$orig" ] || fail "no target name to forge in the stored targets metadata"
pg_psql DB "UPDATE qsign.doc SET data = decode('$evil', 'hex') $q AND version = $tv" >/dev/null
start_replica C "$HC"
grep -q "tuf.materialise repo=ci .*stored ci targets version $tv" "$T/C.log" ||
	fail "C did not refuse the forged target name: $(grep tuf "$T/C.log")"
[ -z "$(find "$T" -name '*escaped.bin')" ] || fail "a file was written outside targets/: $(find "$T" -name '*escaped.bin')"
[ ! -e "$HC/pub/ci/metadata/timestamp.json" ] || fail "C published the change naming the forged path"
cmp -s "$pubA/prod/metadata/timestamp.json" "$HC/pub/prod/metadata/timestamp.json" ||
	fail "production was not published beside the refused CI repository"
pg_psql DB "UPDATE qsign.doc SET data = decode('$orig', 'hex') $q AND version = $tv" >/dev/null
wait_same "$pubA/ci/metadata/timestamp.json" "$HC/pub/ci/metadata/timestamp.json" "restored metadata (C)"
echo "ok: a stored target name leading out of targets/ is refused, nothing written; production published regardless"

for n in A B C; do kill -0 "${PID[$n]}" || fail "replica $n died"; done
echo PASS
