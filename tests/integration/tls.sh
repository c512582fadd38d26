#!/usr/bin/env bash
# Mutual TLS listener: a client with a certificate from the client CA signs;
# a client without one cannot even connect. Identity still comes from the
# principal key, not from the certificate.
. "$(dirname "$0")/lib.sh"
qs_setup
pki=$T/pki
qs_tls_pki "$pki"
# A client certificate from a CA the daemon does not trust.
(
	cd "$pki"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rogue-ca.key 2>/dev/null
	openssl req -x509 -new -key rogue-ca.key -subj "/CN=rogue" -days 2 -out rogue-ca.crt 2>/dev/null
	openssl req -new -key client.key -subj "/CN=rogue-client" -out rogue.csr 2>/dev/null
	openssl x509 -req -in rogue.csr -CA rogue-ca.crt -CAkey rogue-ca.key -CAcreateserial -days 2 \
		-out rogue.crt 2>/dev/null
)
qs_tls_listen "$pki"
port=${QS_TLS_URL##*:}
qs_start
url="tls+tcp://127.0.0.1:$port"
tls="--tls-ca $pki/ca.crt --tls-server-name localhost"

expect_rc 0 qsign -s "$url" $tls --tls-cert "$pki/client.crt" --tls-key "$pki/client.key" -p ci info
grep -q "qsignd-demo" "$T/out" || fail "info over mTLS lacks the server identity"
echo hello >"$T/blob"
expect_rc 0 qsign -s "$url" $tls --tls-cert "$pki/client.crt" --tls-key "$pki/client.key" \
	-p ci sign -r ci-sign -f "$T/blob" -o "$T/sig" --format der
expect_rc 0 qsign -p ci keys --json
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][0]["public_pem"], end="")' \
	"$T/out" >"$T/ci.pem"
openssl dgst -sha256 -verify "$T/ci.pem" -signature "$T/sig" "$T/blob" >/dev/null ||
	fail "signature over mTLS does not verify"
echo "ok: mTLS client signs, signature verifies"

# No client certificate / one from an untrusted CA: the server refuses the
# handshake (checked with OpenSSL's client, since qsign itself refuses to dial
# tls+tcp:// without a certificate).
handshake() { # extra s_client args...
	timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$pki/ca.crt" \
		-servername localhost -tls1_2 "$@" </dev/null >"$T/hs.out" 2>&1
}
handshake -cert "$pki/client.crt" -key "$pki/client.key" || fail "handshake with a valid client cert failed"
if handshake; then
	# TLS 1.2: a refused handshake makes s_client exit non-zero.
	cat "$T/hs.out" >&2; fail "handshake without a client certificate succeeded"
fi
echo "ok: client without certificate refused"
if handshake -cert "$pki/rogue.crt" -key "$pki/client.key"; then
	cat "$T/hs.out" >&2; fail "handshake with an untrusted client certificate succeeded"
fi
echo "ok: client certificate from an untrusted CA refused"
expect_rc 1 qsign -s "$url" $tls -p ci info
grep -q "needs a client certificate" "$T/err" || fail "no hint about the missing certificate"
echo "ok: qsign refuses to dial tls+tcp without a client certificate"
# A valid certificate does not replace the principal's key.
expect_rc 1 qsign -s "$url" $tls --tls-cert "$pki/client.crt" --tls-key "$pki/client.key" \
	-p ci -i "$QSIGN_HOME/demo/admin1.key" info
grep -q UNAUTHENTICATED "$T/err" || fail "wrong principal key over mTLS not UNAUTHENTICATED"
echo "ok: identity comes from the principal key, not the certificate"
kill -0 "$QSIGND_PID" || fail "qsignd died"
qs_stop || fail "unclean stop"
echo PASS
