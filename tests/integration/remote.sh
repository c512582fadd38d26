#!/usr/bin/env bash
# The remote-client set-up of ops/docs/operations.md ("Remote clients
# (mutual TLS)"), run as written: its client CA and server certificate
# block, its qsignd.json lines, its client-certificate block and its
# build-host block, with /etc/qsignd/tls, signer.example.org and port 7443
# replaced by this test's directory, localhost and a free loopback port.
# Then the attacker's side: no client certificate, one from another CA, one
# the client CA issued but presented with another key, a wrong server CA
# (a client without any certificate: tests/integration/tls.sh).
. "$(dirname "$0")/lib.sh"
qs_setup
doc=$QS_SRC/ops/docs/operations.md
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# block MARKER: the fenced block after <!-- remote-tls:MARKER -->, with this
# host's paths, name and port.
block() {
	awk -v m="<!-- remote-tls:$1 -->" '$0==m{s=1;next} s&&/^```/{if(c)exit; c=1; next} c' "$doc" |
		sed -e "s#/etc/qsignd/tls#$T/tls#g" -e "s#signer.example.org#localhost#g" -e "s#7443#$port#g"
}
for m in ca config client use; do
	[ "$(block $m | wc -l)" -gt 2 ] || fail "operations.md: no remote-tls:$m block"
done

# 1. the signer host: client CA, server certificate
block ca >"$T/ca.sh"
(cd "$T" && bash -euo pipefail "$T/ca.sh") >"$T/ca.log" 2>&1 || { cat "$T/ca.log" >&2; fail "the CA block"; }
# ... and the config lines, merged into the demo's qsignd.json
block config >"$T/config.json"
python3 - "$QSIGN_HOME/qsignd.json" "$T/config.json" "$QSIGN_HOME" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); add = json.load(open(sys.argv[2]))
# the demo's own ipc socket, not /run/qsignd's
c["listen"] = [u for u in c["listen"] if u.startswith("ipc://")] + \
	[u.replace("0.0.0.0", "127.0.0.1") for u in add["listen"] if u.startswith("tls+tcp://")]
c["tls"] = add["tls"]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
qs_start

# 2. a build host's key and certificate
mkdir -p "$T/build"
block client >"$T/client.sh"
(cd "$T/build" && bash -euo pipefail "$T/client.sh") >"$T/client.log" 2>&1 ||
	{ cat "$T/client.log" >&2; fail "the client certificate block"; }
openssl x509 -in "$T/build/build-1.crt" -noout -ext extendedKeyUsage | grep -q "TLS Web Client Authentication" ||
	fail "the client certificate is not for client authentication"

# 3. the build host: its principal key (the demo's ci) and the calls
cp "$QSIGN_HOME/demo/ci.key" "$T/build/ci.key"
cp "$T/tls/server-ca.crt" "$T/build/"
echo 'build 42' >"$T/build/build.tar.gz"
block use >"$T/use.sh"
(cd "$T/build" && env -u QSIGN_HOME bash -euo pipefail "$T/use.sh") >"$T/use.log" 2>&1 ||
	{ cat "$T/use.log" >&2; fail "the build host block"; }
grep -q "server identity: qsignd-demo" "$T/use.log" || fail "info over mTLS: $(cat "$T/use.log")"
grep -q "^Verified OK (key ci-key" "$T/use.log" || fail "sign + verify over mTLS: $(cat "$T/use.log")"
grep -q "auth.ok .*principal=ci transport=net" "$T/qsignd.log" || fail "the daemon saw no TLS client"
echo "ok: the documented remote-client set-up signs and verifies over mutual TLS"

# The attacker's side: each refused at the handshake (exit 3), nothing signed.
cd "$T/build"
export QSIGN_SERVER=tls+tcp://localhost:$port QSIGN_TLS_CA=$T/build/server-ca.crt
n0=$(grep -c "auth.ok" "$T/qsignd.log")
(
	cd "$T/build"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rogue-ca.key 2>/dev/null
	openssl req -x509 -new -key rogue-ca.key -subj "/CN=qsign clients CA" -days 2 -out rogue-ca.crt 2>/dev/null
	openssl req -new -key build-1.key -subj "/CN=build-1" -out rogue.csr 2>/dev/null
	openssl x509 -req -in rogue.csr -CA rogue-ca.crt -CAkey rogue-ca.key -CAcreateserial -days 2 \
		-out rogue.crt 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null
)
expect_rc 3 qsign -p ci -i ci.key --tls-cert rogue.crt --tls-key build-1.key info
grep -q "check --tls-cert/--tls-key/--tls-ca" "$T/err" || fail "rogue CA: $(cat "$T/err")"
expect_rc 3 qsign -p ci -i ci.key --tls-cert build-1.crt --tls-key other.key info
expect_rc 3 qsign -p ci -i ci.key --tls-cert build-1.crt --tls-key build-1.key --tls-ca rogue-ca.crt info
[ "$(grep -c "auth.ok" "$T/qsignd.log")" = "$n0" ] || fail "a refused client authenticated"
echo "ok: a certificate from another CA, a key that is not the certificate's, a wrong server CA: refused"
qs_stop
echo PASS
