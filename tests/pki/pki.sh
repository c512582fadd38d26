#!/usr/bin/env bash
# Factory PKI end to end through the CLI and the real daemon (demo set-up:
# role pki = 2 of admin1..3, device-register online for registrar), with
# the openssl tools as the independent judge: root CA created once; online
# device CA with its key in the token; device certificates issued online
# from openssl-made CSRs; server TLS and EST certificates, rotation and
# history; a local device CA from a CSR; refusals (second create, bad CSR
# signature, wrong OU, CN not a UUID, longer path); disable (issuance
# refused, devices still connect) vs revoke (CRL, verify and mutual TLS
# refused).
. "$(dirname "$0")/../integration/lib.sh"
qs_setup
qs_start
cd "$T"
factory=demo-factory

# quorum ID: approve by admin2 and admin3, fetch the PEM result into FILE.
quorum() {
	local id=$1 out=$2
	expect_rc 0 qsign -p admin2 approve "$id"
	expect_rc 0 qsign -p admin3 approve "$id"
	expect_rc 0 qsign -p admin1 ca fetch "$id" -o "$out"
}
submit() { # qsign args... -> request id in $id
	expect_rc 0 qsign -p admin1 "$@"
	id=$(cat "$T/out")
	[ ${#id} = 32 ] || fail "no request id from: $*"
}
csr() { # key csr subject [extra req args]
	local key=$1 out=$2 subj=$3
	shift 3
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$key" \
		-subj "$subj" -out "$out" "$@" 2>/dev/null || fail "openssl req $subj"
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }
text() { openssl x509 -in "$1" -noout -text; }
# has FILE REGEX...: every regex matches the certificate text
has() {
	local f=$1
	shift
	for re in "$@"; do
		text "$f" | grep -qE "$re" || fail "$f lacks /$re/: $(text "$f")"
	done
}
not_after_le() { # cert ca: cert's notAfter <= ca's
	local a b
	a=$(date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s)
	b=$(date -d "$(openssl x509 -in "$2" -noout -enddate | cut -d= -f2)" +%s)
	[ "$a" -le "$b" ] || fail "$1 outlives its CA $2"
}
serial_bytes_ok() { # >= 16 bytes, positive
	local s
	s=$(serial_of "$1")
	[ ${#s} -ge 32 ] || fail "$1: serial $s shorter than 128 bits"
	case $s in [89a-f]*) [ ${#s} -lt 40 ] || fail "$1: negative serial $s" ;; esac
}

# ---- root CA: quorum, once
expect_rc 0 qsign ca --help
expect_rc 0 qsign ca create --help
grep -q "example:" "$T/out" || fail "ca create --help has no example"
submit ca create -m "factory PKI"
expect_rc 0 qsign -p admin2 request show "$id"
grep -q "CN=Factory-CA, OU=$factory" "$T/out" || fail "approvers do not see the root subject"
expect_rc 1 qsign -p admin1 ca fetch "$id"
quorum "$id" root.pem
openssl verify -CAfile root.pem root.pem >/dev/null || fail "root does not verify"
has root.pem "Subject: CN = Factory-CA, OU = $factory" "Basic Constraints: critical" \
	"CA:TRUE" "Key Usage: critical" "Certificate Sign, CRL Sign" "ecdsa-with-SHA256" \
	"NIST CURVE: P-256"
serial_bytes_ok root.pem
expect_rc 1 qsign -p admin1 ca create
grep -q "FAILED_PRECONDITION" "$T/err" || fail "second create: $(cat "$T/err")"
expect_rc 1 qsign -p admin2 ca create
grep -q "created once" "$T/err" || fail "second create by another admin: $(cat "$T/err")"
echo "ok: root CA created by 2 of 3 (key in the token), a second create refused"

# ---- online device CA
submit ca add-device-ca --online online-ca-1
quorum "$id" dca.pem
openssl verify -CAfile root.pem dca.pem >/dev/null || fail "device CA does not verify"
has dca.pem "Subject: CN = online-ca-1, OU = $factory" "Basic Constraints: critical" \
	"CA:TRUE, pathlen:0" "Certificate Sign, CRL Sign" "Authority Key Identifier"
not_after_le dca.pem root.pem
serial_bytes_ok dca.pem
dca=$(serial_of dca.pem)
expect_rc 0 qsign -p admin1 ca show --pretty
grep -q "online-ca-1 .*device-ca-online active $dca" "$T/out" || fail "show: $(cat "$T/out")"
echo "ok: online device CA"

# ---- device certificates, online
uuid=$(cat /proc/sys/kernel/random/uuid)
csr dev.key dev.csr "/CN=$uuid/OU=$factory"
expect_rc 0 qsign -p registrar ca issue-device --csr dev.csr -o dev.pem --chain chain.pem
cmp -s chain.pem dca.pem || fail "--chain is not the device CA"
has dev.pem "Subject: CN = $uuid, OU = $factory" "Basic Constraints: critical" "CA:FALSE" \
	"Key Usage: critical" "Digital Signature" "TLS Web Client Authentication"
not_after_le dev.pem dca.pem
serial_bytes_ok dev.pem
expect_rc 0 qsign -p admin1 ca crl -o "$T"
[ -s root.crl.pem ] && [ -s online-ca-1.crl.pem ] || fail "ca crl -o wrote no CRLs"
cat root.crl.pem online-ca-1.crl.pem >crls.pem
openssl verify -CAfile root.pem -untrusted dca.pem -CRLfile crls.pem -crl_check_all dev.pem \
	>/dev/null || fail "device certificate does not verify with -crl_check_all"
openssl verify -CAfile root.pem -untrusted dca.pem -CRLfile online-ca-1.crl.pem -crl_check dev.pem \
	>/dev/null || fail "device certificate does not verify with -crl_check"
openssl crl -in root.crl.pem -noout -text | grep -q "CRL Number" || fail "CRL without number"
echo "ok: device certificate issued online by registrar; openssl verify -crl_check(_all)"

# ---- refusals of device CSRs
expect_rc 1 qsign -p ci ca issue-device --csr dev.csr
grep -q PERMISSION_DENIED "$T/err" || fail "ci issued a device certificate: $(cat "$T/err")"
csr bad.key badou.csr "/CN=$uuid/OU=other-factory"
expect_rc 1 qsign -p registrar ca issue-device --csr badou.csr
grep -q "is not the factory" "$T/err" || fail "wrong OU: $(cat "$T/err")"
csr bad.key badcn.csr "/CN=not-a-uuid/OU=$factory"
expect_rc 1 qsign -p registrar ca issue-device --csr badcn.csr
grep -q "not a device UUID" "$T/err" || fail "CN not a UUID: $(cat "$T/err")"
openssl req -in dev.csr -outform DER -out dev.der
python3 - dev.der badsig.csr <<'PY'
import base64, sys
d = bytearray(open(sys.argv[1], "rb").read())
d[-5] ^= 0x01  # inside the ECDSA signature
b = base64.encodebytes(bytes(d)).decode()
open(sys.argv[2], "w").write("-----BEGIN CERTIFICATE REQUEST-----\n" + b +
                             "-----END CERTIFICATE REQUEST-----\n")
PY
expect_rc 1 qsign -p registrar ca issue-device --csr badsig.csr
grep -qi "signature" "$T/err" || fail "bad CSR signature: $(cat "$T/err")"
head -c 20000 /dev/urandom | base64 >huge.csr
expect_rc 2 qsign -p registrar ca issue-device --csr huge.csr
echo "ok: CSR refusals (wrong principal, OU, CN, signature, size)"

# ---- server TLS and EST certificates, rotation keeps history
csr srv.key srv.csr "/CN=gateway.$factory" -addext "subjectAltName=DNS:localhost,DNS:gateway.$factory"
submit ca issue-tls --csr srv.csr
expect_rc 0 qsign -p admin2 request show "$id"
for s in "CN=gateway.$factory" "DNS name (SAN): localhost" "EC P-256" "serverAuth" \
	"signed by the factory root CA" "validity: 825 days"; do
	grep -qF "$s" "$T/out" || fail "TLS request show lacks \"$s\": $(cat "$T/out")"
done
quorum "$id" srv.pem
openssl verify -CAfile root.pem srv.pem >/dev/null || fail "TLS certificate does not verify"
has srv.pem "DNS:localhost, DNS:gateway.$factory" "TLS Web Server Authentication" \
	"CA:FALSE" "Digital Signature"
expect_rc 1 qsign -p admin1 ca issue-tls --csr srv.csr
grep -q "rotate it" "$T/err" || fail "second issue-tls: $(cat "$T/err")"
csr srv2.key srv2.csr "/CN=gateway.$factory" -addext "subjectAltName=DNS:localhost"
submit ca rotate-tls --csr srv2.csr
quorum "$id" srv2.pem
openssl verify -CAfile root.pem srv2.pem >/dev/null || fail "rotated TLS certificate"
expect_rc 0 qsign -p admin1 ca show --history
grep -q "^tls .* active $(serial_of srv2.pem)" "$T/out" || fail "rotated: $(cat "$T/out")"
grep -q "^tls .* superseded $(serial_of srv.pem)" "$T/out" || fail "history: $(cat "$T/out")"
# The rotation revoked the replaced certificate: root CRL entry, reason superseded.
expect_rc 0 qsign -p admin1 ca crl -o "$T"
if openssl verify -CAfile root.pem -CRLfile root.crl.pem -crl_check srv.pem >verify-old.txt 2>&1; then
	fail "the rotated-out TLS certificate still verifies with -crl_check"
fi
grep -q "certificate revoked" verify-old.txt || fail "old TLS certificate: $(cat verify-old.txt)"
openssl crl -in root.crl.pem -noout -text | grep -A5 -i "$(serial_of srv.pem)" | grep -q Superseded ||
	fail "the old TLS certificate's CRL entry is not reason superseded"
openssl verify -CAfile root.pem -CRLfile root.crl.pem -crl_check srv2.pem >/dev/null ||
	fail "the new TLS certificate does not verify with -crl_check"
expect_rc 0 qsign -p auditor audit tail -n 30
grep -q "pki.tls.revoked" "$T/out" || fail "the revocation at rotation is not audited"
csr est.key est.csr "/CN=est.$factory" -addext "subjectAltName=DNS:est.$factory"
submit ca issue-tls --est --csr est.csr
quorum "$id" est.pem
openssl verify -CAfile root.pem est.pem >/dev/null || fail "EST TLS certificate"
echo "ok: server TLS and EST certificates; rotate-tls keeps the previous one in the history and revokes it (CRL)"

# ---- local device CA from a CSR (key stays at the site)
csr local.key local.csr "/CN=site-1/OU=$factory" -addext "basicConstraints=critical,CA:TRUE,pathlen:1"
expect_rc 1 qsign -p admin1 ca add-device-ca --local site-1 --csr local.csr
grep -q "longer path" "$T/err" || fail "pathlen:1 CSR: $(cat "$T/err")"
csr local.key local.csr "/CN=site-1/OU=$factory"
submit ca add-device-ca --local site-1 --csr local.csr
quorum "$id" local.pem
has local.pem "Subject: CN = site-1, OU = $factory" "CA:TRUE, pathlen:0"
openssl verify -CAfile root.pem local.pem >/dev/null || fail "local device CA"
# the site issues its own device certificate with its own key
csr ldev.key ldev.csr "/CN=$(cat /proc/sys/kernel/random/uuid)/OU=$factory"
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n' >ext.cnf
openssl x509 -req -in ldev.csr -CA local.pem -CAkey local.key -CAcreateserial -days 30 \
	-extfile ext.cnf -out ldev.pem 2>/dev/null || fail "site signing"
openssl verify -CAfile root.pem -untrusted local.pem ldev.pem >/dev/null ||
	fail "device of the local CA does not verify"
echo "ok: local device CA from a CSR; a CSR asking for a longer path refused"

# ---- mutual TLS: s_server with the issued TLS certificate, CRLs of the
# whole chain; s_client with the device certificate.
trust() {
	expect_rc 0 qsign -p admin1 ca crl -o "$T"
	cat root.pem dca.pem root.crl.pem online-ca-1.crl.pem >trust.pem
	cat root.crl.pem online-ca-1.crl.pem >crls.pem
}
mtls() { # 0 if the handshake (and one HTTP exchange) succeeds
	local port sp rc=0
	# A port the kernel just handed out and released: free unless another
	# test grabs it within milliseconds.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# Line-buffered, so that what it says is in the log before it is killed.
	timeout 30 stdbuf -oL -eL openssl s_server -accept "127.0.0.1:$port" -cert srv2.pem -key srv2.key \
		-CAfile trust.pem -Verify 1 -verify_return_error -crl_check_all -www \
		>"$T/s_server.log" 2>&1 &
	sp=$!
	for _ in $(seq 1 50); do
		grep -q ACCEPT "$T/s_server.log" 2>/dev/null && break
		sleep 0.1
	done
	printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
		-cert dev.pem -key dev.key -CAfile root.pem -verify_return_error \
		-verify_hostname localhost -quiet >"$T/s_client.log" 2>&1 || rc=$?
	kill "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	grep -q "200 ok" "$T/s_client.log"
}
trust
mtls || fail "mutual TLS before revoke: $(cat "$T/s_server.log" "$T/s_client.log")"
echo "ok: mutual TLS handshake (s_server -Verify 1 -crl_check_all / s_client) succeeds"

# ---- disable: no new issuance, existing devices keep working
submit ca disable-device-ca "$dca"
quorum "$id" crl-after-disable.pem
uuid2=$(cat /proc/sys/kernel/random/uuid)
csr dev2.key dev2.csr "/CN=$uuid2/OU=$factory"
expect_rc 1 qsign -p registrar ca issue-device --csr dev2.csr
grep -q "FAILED_PRECONDITION.*disabled" "$T/err" || fail "issue after disable: $(cat "$T/err")"
trust
openssl verify -CAfile root.pem -untrusted dca.pem -CRLfile crls.pem -crl_check_all dev.pem \
	>/dev/null || fail "an existing device stopped verifying after disable"
mtls || fail "mutual TLS after disable: $(cat "$T/s_server.log")"
expect_rc 0 qsign -p admin1 ca show
grep -q "online-ca-1 .* disabled $dca" "$T/out" || fail "show after disable: $(cat "$T/out")"
submit ca enable-device-ca "$dca"
quorum "$id" crl-after-enable.pem
expect_rc 0 qsign -p registrar ca issue-device --csr dev2.csr -o dev2.pem
submit ca disable-device-ca "$dca"
quorum "$id" crl-after-disable2.pem
echo "ok: disable refuses issuance (FAILED_PRECONDITION), existing devices still connect; enable undoes it"

# ---- revoke (quorum): CRL, verify and handshake fail
submit ca revoke-device-ca "$dca"
expect_rc 0 qsign -p admin2 request show "$id"
grep -q "REVOKE device CA serial $dca" "$T/out" || fail "revoke show: $(cat "$T/out")"
quorum "$id" crl-after-revoke.pem
openssl crl -in crl-after-revoke.pem -noout -text | grep -qi "$dca" ||
	fail "the revoked CA is not in the root CRL"
openssl crl -in crl-after-revoke.pem -noout -text | grep -q "Privilege Withdrawn" ||
	fail "reason is not privilegeWithdrawn"
trust
if openssl verify -CAfile root.pem -untrusted dca.pem -CRLfile crls.pem -crl_check_all dev.pem \
	>/dev/null 2>&1; then
	fail "a device of a revoked CA still verifies"
fi
if openssl verify -CAfile root.pem -CRLfile root.crl.pem -crl_check dca.pem >/dev/null 2>&1; then
	fail "the revoked device CA still verifies with -crl_check"
fi
if mtls; then fail "mutual TLS still succeeds after revoke"; fi
cat "$T/s_server.log" "$T/s_client.log" | grep -q "certificate revoked" || fail "handshake failed for another reason: $(cat "$T/s_server.log")"
expect_rc 1 qsign -p registrar ca issue-device --csr dev2.csr
grep -q "revoked" "$T/err" || fail "issue after revoke: $(cat "$T/err")"
expect_rc 1 qsign -p admin1 ca enable-device-ca "$dca"
grep -q "stays revoked" "$T/err" || fail "enable of a revoked CA: $(cat "$T/err")"
echo "ok: revoke publishes the CRL; verify -crl_check and the mutual TLS handshake now fail"

# ---- state survives a restart; audit has the issuances
qs_stop
qs_start
expect_rc 0 qsign -p admin1 ca show
grep -q "online-ca-1 .* revoked $dca" "$T/out" || fail "state lost across restart"
expect_rc 0 qsign -p auditor audit tail -n 100
grep -q "pki.issued" "$T/out" || fail "no pki.issued in the audit log: $(head -5 "$T/out")"
echo "ok: PKI state survives a restart; issuances are in the audit log"
