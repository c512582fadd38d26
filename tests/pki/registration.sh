#!/usr/bin/env bash
# Disable reaches whoever registers devices: the signed list of device CAs
# enabled for new registrations (`qsign ca enabled-cas`), checked the way
# ops/docs/operations.md tells a registrar to check it, with stock openssl.
# A disabled CA, local or online, leaves the list while its devices'
# certificates still verify against the CRLs (no CRL entry); enable puts it
# back; a forged, re-signed or truncated list fails the openssl check; the
# version and issue time grow so an old list can be refused.
. "$(dirname "$0")/../integration/lib.sh"
qs_setup
qs_start
cd "$T"
factory=demo-factory
LIST=enabled-device-cas.json

quorum() { # ID OUT: approve by admin2 and admin3, fetch the PEM result
	expect_rc 0 qsign -p admin2 approve "$1"
	expect_rc 0 qsign -p admin3 approve "$1"
	expect_rc 0 qsign -p admin1 ca fetch "$1" -o "$2"
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
# The registrar's check, as documented: "Verified OK" from openssl dgst.
registrar_verifies() { # DIR
	openssl dgst -sha256 -verify root.pub -signature "$1/$LIST.sig" "$1/$LIST" 2>&1 |
		grep -qx "Verified OK"
}
# ...and its refusal: the signature is checked and does not match.
registrar_refuses() { # DIR WHAT
	local out
	out=$(openssl dgst -sha256 -verify root.pub -signature "$1/$LIST.sig" "$1/$LIST" 2>&1) &&
		fail "$2 verifies"
	grep -q "^Verification failure" <<<"$out" || fail "$2: openssl says: $out"
}
# The list's fields, read once per fetch into DIR/fields (one python run).
parse() { # DIR
	python3 - "$1/$LIST" >"$1/fields" <<'PY' || fail "$1/$LIST is not the list's JSON"
import json, sys
raw = open(sys.argv[1], "rb").read()
d = json.loads(raw)
assert raw == json.dumps(d, separators=(",", ":"), sort_keys=True).encode() + b"\n", "not canonical"
for k in ("type", "factory", "root_serial", "version", "issued_at", "expires"):
    print(f"{k}={d[k]}")
print("serials=" + " ".join(sorted(e["serial"] for e in d["device_cas"])))
PY
}
field() { sed -n "s/^$2=//p" "$1/fields"; } # DIR FIELD
serials() { field "$1" serials; }            # DIR: enabled serials, sorted
# fetch DIR: the list as the registrar gets it, checked with openssl
fetch() {
	mkdir -p "$1"
	expect_rc 0 qsign -p registrar ca enabled-cas -o "$1" --root root.pem
	registrar_verifies "$1" || fail "$1: the list does not verify with the root's key"
	parse "$1"
	[ "$(field "$1" type)" = qsign.enabled-device-cas.v1 ] || fail "$1: type"
	[ "$(field "$1" factory)" = "$factory" ] || fail "$1: factory"
	[ "$(field "$1" root_serial)" = "$(serial_of root.pem)" ] || fail "$1: root_serial"
	[ "$(field "$1" expires)" -gt "$(date +%s)" ] || fail "$1: already expired"
}
newer() { # OLD NEW: version grows, issue time does not go back
	[ "$(field "$2" version)" -gt "$(field "$1" version)" ] ||
		fail "$2 version $(field "$2" version) is not above $1's $(field "$1" version)"
	[ "$(field "$2" issued_at)" -ge "$(field "$1" issued_at)" ] || fail "$2 issued before $1"
}

# ---- command surface
expect_rc 0 qsign ca enabled-cas --help
for s in "openssl dgst -sha256 -verify" "version" "expires" "example:"; do
	grep -qF -- "$s" "$T/out" || fail "ca enabled-cas --help lacks \"$s\""
done
expect_rc 2 qsign -p registrar ca enabled-cas
grep -q -- "-o DIR is required" "$T/err" || fail "no -o: $(cat "$T/err")"

# ---- root CA, its public key for the registrar; the first list is empty
submit ca create -m "root"
quorum "$id" root.pem
openssl x509 -in root.pem -noout -pubkey >root.pub
fetch l0
[ "$(serials l0)" = "" ] || fail "a list before any device CA: $(serials l0)"

# ---- an online and a local device CA: both enabled
submit ca add-device-ca --online online-ca-1
quorum "$id" dca.pem
dca=$(serial_of dca.pem)
csr local.key local.csr "/CN=site-1/OU=$factory"
submit ca add-device-ca --local site-1 --csr local.csr
quorum "$id" local.pem
lca=$(serial_of local.pem)
fetch l1
newer l0 l1
[ "$(serials l1)" = "$(printf '%s\n' "$dca" "$lca" | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
	fail "l1 lists $(serials l1), want $dca and $lca"
python3 - "l1/$LIST" "$lca" "$(openssl x509 -in local.pem -outform DER | sha256sum | cut -d' ' -f1)" <<'PY' ||
import json, sys
d = json.load(open(sys.argv[1]))
e = [e for e in d["device_cas"] if e["serial"] == sys.argv[2]][0]
assert e["kind"] == "device-ca-local" and e["name"] == "site-1", e
assert e["sha256"] == sys.argv[3], e
PY
	fail "l1's entry for the local CA"
# fetching again re-signs nothing: same version
fetch l1b
[ "$(field l1b version)" = "$(field l1 version)" ] || fail "an unchanged list was re-signed"
echo "ok: the list names the enabled device CAs (online and local), signed by the root"

# ---- devices of both CAs
uuid=$(cat /proc/sys/kernel/random/uuid)
csr dev.key dev.csr "/CN=$uuid/OU=$factory"
expect_rc 0 qsign -p registrar ca issue-device --csr dev.csr -o dev.pem
csr ldev.key ldev.csr "/CN=$(cat /proc/sys/kernel/random/uuid)/OU=$factory"
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n' >ext.cnf
openssl x509 -req -in ldev.csr -CA local.pem -CAkey local.key -CAcreateserial -days 30 \
	-extfile ext.cnf -out ldev.pem 2>/dev/null || fail "site signing"
# The site's own CRL for its local CA (empty), as a site would publish it.
mkdir -p site && : >site/index.txt && echo 01 >site/crlnumber
cat >site/ca.cnf <<EOF
[ca]
default_ca = site
[site]
database = $T/site/index.txt
crlnumber = $T/site/crlnumber
default_md = sha256
default_crl_days = 30
EOF
openssl ca -config site/ca.cnf -gencrl -keyfile local.key -cert local.pem -out local.crl.pem \
	2>/dev/null || fail "site CRL"
devices_verify() { # both devices verify with every CRL of their chain
	expect_rc 0 qsign -p admin1 ca crl -o "$T"
	openssl verify -CAfile root.pem -untrusted dca.pem -CRLfile root.crl.pem \
		-CRLfile online-ca-1.crl.pem -crl_check_all dev.pem >/dev/null 2>&1 ||
		fail "$1: the online CA's device does not verify with -crl_check_all"
	openssl verify -CAfile root.pem -untrusted local.pem -CRLfile root.crl.pem \
		-CRLfile local.crl.pem -crl_check_all ldev.pem >/dev/null 2>&1 ||
		fail "$1: the local CA's device does not verify with -crl_check_all"
}
devices_verify "before disable"
# `ca crl -o` publishes the list beside the CRLs
registrar_verifies "$T" || fail "ca crl -o: no verifiable list beside the CRLs"

# ---- disable the local CA: gone from the list, its devices still verify
submit ca disable-device-ca "$lca"
quorum "$id" crl.pem
fetch l2
newer l1 l2
[ "$(serials l2)" = "$dca" ] || fail "after disabling the local CA the list has: $(serials l2)"
devices_verify "after disabling the local CA"
openssl crl -in root.crl.pem -noout -text | grep -qi "$lca" && fail "disable put the local CA on the CRL"
echo "ok: disable of a local CA: absent from the list, no CRL entry, its devices verify"

# ---- disable the online CA: gone too, its devices still verify
submit ca disable-device-ca "$dca"
quorum "$id" crl.pem
fetch l3
newer l2 l3
[ "$(serials l3)" = "" ] || fail "after disabling both the list has: $(serials l3)"
devices_verify "after disabling the online CA"
openssl crl -in root.crl.pem -noout -text | grep -qi "$dca" && fail "disable put the online CA on the CRL"
echo "ok: disable of an online CA: absent from the list, no CRL entry, its devices verify"

# ---- enable puts the local CA back
submit ca enable-device-ca "$lca"
quorum "$id" crl.pem
fetch l4
newer l3 l4
[ "$(serials l4)" = "$lca" ] || fail "after enabling the local CA the list has: $(serials l4)"
echo "ok: enable puts the CA back on the list"

# ---- a registrar detects tampering with openssl
mkdir -p forged
# (a) the disabled online CA written back into the newest list
python3 - "l4/$LIST" "l1/$LIST" "forged/$LIST" <<'PY'
import json, sys
new, old = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
new["device_cas"] = old["device_cas"]
open(sys.argv[3], "w").write(json.dumps(new, separators=(",", ":"), sort_keys=True) + "\n")
PY
cp l4/$LIST.sig forged/
registrar_refuses forged "a list with a disabled CA added back"
# (b) one byte of the document changed (the version)
sed 's/"version":\([0-9]*\)/"version":9\1/' l4/$LIST >forged/$LIST
cmp -s forged/$LIST l4/$LIST && fail "the forgery did not change the document"
registrar_refuses forged "a list with a raised version"
# (c) the genuine document with a damaged signature
cp l4/$LIST forged/
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-3]^=1; open(sys.argv[2],"wb").write(d)' \
	l4/$LIST.sig forged/$LIST.sig
registrar_refuses forged "a damaged signature"
# (d) a forged list signed by a key that is not the root's
python3 - "l1/$LIST" "forged/$LIST" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["version"] += 1000
open(sys.argv[2], "w").write(json.dumps(d, separators=(",", ":"), sort_keys=True) + "\n")
PY
openssl ecparam -name prime256v1 -genkey -noout -out other.key 2>/dev/null
openssl dgst -sha256 -sign other.key -out forged/$LIST.sig forged/$LIST
registrar_refuses forged "a list signed by another key"
# the CLI's own --root check refuses it too, against another root, and writes nothing
openssl req -new -x509 -key other.key -subj "/CN=Other-CA" -days 1 -out other-root.pem 2>/dev/null
mkdir -p refused
expect_rc 1 qsign -p registrar ca enabled-cas -o refused --root other-root.pem
grep -q "does not verify" "$T/err" || fail "--root with another root: $(cat "$T/err")"
[ ! -e refused/$LIST ] || fail "a list that did not verify was written"
# (e) replay: an older genuine list verifies but its version is lower
registrar_verifies l1 || fail "the old list stopped verifying"
[ "$(field l1 version)" -lt "$(field l4 version)" ] || fail "an old list is not recognisably older"
echo "ok: forged, re-signed and damaged lists fail openssl dgst -verify; an old list has a lower version"

# ---- revoke: stays off the list, CRL entry; the list and its version survive a restart
submit ca revoke-device-ca "$dca"
quorum "$id" crl.pem
fetch l5
[ "$(serials l5)" = "$lca" ] || fail "after the revoke the list has: $(serials l5)"
openssl crl -in crl.pem -noout -text | grep -qi "$dca" || fail "the revoked CA is not on the CRL"
qs_stop
qs_start
fetch l6
[ "$(field l6 version)" = "$(field l5 version)" ] || fail "the list changed across a restart"
[ "$(serials l6)" = "$lca" ] || fail "after a restart the list has: $(serials l6)"
expect_rc 0 qsign -p auditor audit tail -n 200
[ "$(grep -c 'pki.ca_list' "$T/out")" -ge 6 ] || fail "list signings are not in the audit log"
echo "ok: revoke keeps the CA off the list; the list survives a restart; each signing audited"
echo PASS
