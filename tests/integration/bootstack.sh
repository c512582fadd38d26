#!/usr/bin/env bash
# Boot-stack signing through libqsign-pkcs11.so and a real qsignd, with the
# build farm's own tools, each result checked by a verifier that is not
# ours: sbsign/sbverify on a real EFI binary (systemd-boot), osslsigncode
# sign/verify (Authenticode), openssl cms -sign/-verify (firmware
# manifests), mkimage -N pkcs11 (a signed U-Boot FIT, checked by
# fit_verify.py: python3-libfdt and openssl over the regions U-Boot
# hashes). The commands are those of the README's "Boot-stack signing from
# the build farm". Every signature is in the audit log under the
# module's principal, with the scheme (rsa2048-pkcs1).
. "$QS_SRC/tests/integration/lib.sh"
. "$QS_SRC/tests/integration/p11lib.sh"

EFI=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -f "$EFI" ] || fail "no $EFI (package systemd-boot-efi, ops/install-deps)"
qs_setup
p11_demo_keys
qs_start
export QSIGN_PRINCIPAL=ci
cd "$T"

# --- installed as the README says (into a scratch prefix): the module in
# lib/.../pkcs11/, the p11-kit module file beside p11-kit's others
p11_install
sed -i "s|^MODULE_PATH = .*|MODULE_PATH = $P11_MODULE|" "$T/openssl-p11.cnf"
modfile=$T/inst/share/p11-kit/modules/qsign-pkcs11.module
grep -q "^disable-in: p11-kit-proxy" "$modfile" || fail "no p11-kit module file"
# (`p11-kit list-modules` with that file: integration_p11kit.)
echo "ok: installed into lib/.../pkcs11/ with its p11-kit module file"

# --- the db certificate: made through the module (the key never leaves qsignd)
expect_rc 0 p11_engine req -new -x509 -engine pkcs11 -keyform engine \
	-key "pkcs11:token=boot;object=db-key" -subj "/CN=Build farm UEFI db" -days 3650 \
	-sha256 -outform PEM -out db.crt
openssl req -new -x509 -newkey rsa:2048 -nodes -keyout other.key -subj "/CN=Someone else" \
	-days 1 -out other.crt 2>/dev/null || fail "other certificate"

# --- the certificate goes into the policy (a quorum change), so tools that
# read it from the token find it; a certificate of another key is refused
# at submission
expect_rc 0 qsign -p admin1 policy show
python3 - "$T/out" "$T/v2.json" "$T/bad.json" db.crt other.crt <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["version"] = 2
bad = json.loads(json.dumps(p))
p["keys"]["db-key"]["certificate"] = open(sys.argv[4]).read()
bad["keys"]["db-key"]["certificate"] = open(sys.argv[5]).read()
json.dump(p, open(sys.argv[2], "w"), indent=2)
json.dump(bad, open(sys.argv[3], "w"), indent=2)
pss = json.loads(json.dumps(p))
pss["keys"]["db-key"]["algorithm"] = "rsa3072"
json.dump(pss, open(sys.argv[3] + ".pss", "w"), indent=2)
PY
expect_rc 1 qsign -p admin1 policy propose "$T/bad.json" -m "db certificate of another key"
grep -q "certifies another public key" "$T/err" || fail "bad certificate: $(cat "$T/err")"
# the PKCS#1 key declared as a PSS key: not that token object (one key, one
# scheme), refused at submission
expect_rc 1 qsign -p admin1 policy propose "$T/bad.json.pss" -m "db-key as PSS"
grep -q "keys.db-key" "$T/err" || fail "db-key as PSS: $(cat "$T/err")"
expect_rc 0 qsign -p admin1 policy propose "$T/v2.json" -m "db certificate"
pid=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$pid"
expect_rc 0 qsign -p admin3 approve "$pid"
expect_rc 0 "${P11_ENV[@]}" pkcs11-tool --module "$P11_MODULE" --token-label boot -O
grep -q "Certificate Object" "$T/out" || fail "no certificate object: $(cat "$T/out")"
expect_rc 0 "${P11_ENV[@]}" pkcs11-tool --module "$P11_MODULE" --token-label boot -r \
	--type cert --label db-key -o db-from-token.der
openssl x509 -inform DER -in db-from-token.der -out db-from-token.crt || fail "token certificate"
cmp -s db-from-token.crt db.crt || fail "the token's certificate is not the policy's"
echo "ok: the policy's certificate is a token object; one of another key is refused"

# --- UEFI Secure Boot: sbsign through the engine, sbverify
expect_rc 0 "${P11_ENV[@]}" env OPENSSL_CONF="$T/openssl-p11.cnf" sbsign --engine pkcs11 \
	--key "pkcs11:token=boot;object=db-key" --cert db.crt --output systemd-boot.signed.efi "$EFI"
expect_rc 0 sbverify --cert db.crt systemd-boot.signed.efi
expect_rc 1 sbverify --cert other.crt systemd-boot.signed.efi
expect_rc 1 sbverify --cert db.crt "$EFI"
echo "ok: sbsign --engine pkcs11; sbverify passes with db.crt, fails with another certificate"

# --- Authenticode with osslsigncode
expect_rc 0 "${P11_ENV[@]}" osslsigncode sign -pkcs11engine "$P11_ENGINE" \
	-pkcs11module "$P11_MODULE" -key "pkcs11:token=boot;object=db-key" -certs db.crt \
	-h sha256 -in "$EFI" -out systemd-boot.osslsigncode.efi
expect_rc 0 osslsigncode verify -CAfile db.crt -in systemd-boot.osslsigncode.efi
expect_rc 1 osslsigncode verify -CAfile other.crt -in systemd-boot.osslsigncode.efi
echo "ok: osslsigncode sign -pkcs11module; osslsigncode verify"

# --- CMS (a firmware manifest, detached, DER)
head -c 100000 /dev/urandom >firmware.bin
expect_rc 0 p11_engine cms -sign -engine pkcs11 -keyform engine \
	-inkey "pkcs11:token=boot;object=db-key" -signer db.crt -binary -outform DER \
	-in firmware.bin -out firmware.p7s
expect_rc 0 openssl cms -verify -binary -inform DER -in firmware.p7s -content firmware.bin \
	-CAfile db.crt -purpose any -out /dev/null
echo tampered >>firmware.bin
expect_rc 4 openssl cms -verify -binary -inform DER -in firmware.p7s -content firmware.bin \
	-CAfile db.crt -purpose any -out /dev/null
echo "ok: openssl cms -sign -engine pkcs11; cms -verify passes, fails on a changed file"
# the same with SHA-384 (libp11 sends a SHA-384 DigestInfo: qsignd signs
# that digest, and the audit entry says sha384)
expect_rc 0 p11_engine cms -sign -engine pkcs11 -keyform engine \
	-inkey "pkcs11:token=boot;object=db-key" -signer db.crt -binary -outform DER -md sha384 \
	-in firmware.bin -out firmware384.p7s
expect_rc 0 openssl cms -verify -binary -inform DER -in firmware384.p7s -content firmware.bin \
	-CAfile db.crt -purpose any -out /dev/null
openssl cms -cmsout -inform DER -in firmware384.p7s -print | grep -q "algorithm: sha384" ||
	fail "the CMS signature is not SHA-384"
echo "ok: openssl cms -sign -md sha384 through the engine; cms -verify passes"

# --- U-Boot FIT: mkimage signs the configuration through the engine
# (-N pkcs11 -k 'token=ROLE': the key is pkcs11:token=boot;object=<key-name-hint>)
# and writes the public key into the U-Boot device tree (-K); the
# configuration signature is checked by fit_verify.py (python3-libfdt and
# openssl over the regions U-Boot hashes: Debian has no fit_check_sign)
head -c 65536 /dev/urandom >kernel.bin
cat >image.its <<'ITS'
/dts-v1/;
/ {
	description = "Build farm FIT";
	#address-cells = <1>;
	images {
		kernel-1 {
			description = "kernel";
			data = /incbin/("kernel.bin");
			type = "kernel";
			arch = "arm64";
			os = "linux";
			compression = "none";
			load = <0x80080000>;
			entry = <0x80080000>;
			hash-1 { algo = "sha256"; };
		};
	};
	configurations {
		default = "conf-1";
		conf-1 {
			kernel = "kernel-1";
			signature-1 {
				algo = "sha256,rsa2048";
				key-name-hint = "db-key";
				sign-images = "kernel";
			};
		};
	};
};
ITS
echo '/dts-v1/; / { };' | dtc -I dts -O dtb -o pubkey.dtb - || fail "dtc"
expect_rc 0 "${P11_ENV[@]}" env OPENSSL_CONF="$T/openssl-p11.cnf" mkimage -N pkcs11 \
	-k 'token=boot' -K pubkey.dtb -r -f image.its image.fit
FITV=(/usr/bin/python3 "$QS_SRC/tests/integration/fit_verify.py")
expect_rc 0 "${FITV[@]}" image.fit pubkey.dtb
grep -q "FIT verified: configuration conf-1, key db-key" "$T/out" || fail "FIT: $(cat "$T/out")"
# a changed load address (in the signed configuration regions), a changed
# byte of the kernel (its signed hash no longer matches), a FIT signed by
# another key: each fails
/usr/bin/python3 - <<'PY' || fail "tampered FITs"
import libfdt
b = bytearray(open("image.fit", "rb").read())
f = libfdt.Fdt(bytes(b))
n = f.path_offset("/images/kernel-1")
f.setprop_u32(n, "load", 0x90000000)
open("load.fit", "wb").write(f.as_bytearray())
b[bytes(b).find(open("kernel.bin", "rb").read()) + 100] ^= 1
open("data.fit", "wb").write(b)
PY
expect_rc 1 "${FITV[@]}" load.fit pubkey.dtb
grep -q "signature does not verify" "$T/out" || fail "FIT load: $(cat "$T/out")"
expect_rc 1 "${FITV[@]}" data.fit pubkey.dtb
grep -q "digest does not match" "$T/out" || fail "FIT data: $(cat "$T/out")"
mkdir -p other-keys && cp other.key other-keys/db-key.key && cp other.crt other-keys/db-key.crt
expect_rc 0 mkimage -k other-keys -r -f image.its other.fit
expect_rc 1 "${FITV[@]}" other.fit pubkey.dtb
grep -q "signature does not verify" "$T/out" || fail "FIT other key: $(cat "$T/out")"
echo "ok: mkimage -N pkcs11 signs a FIT; its configuration signature verifies, and fails when changed or signed by another key"

# --- one key, one scheme: the module refuses PSS with the PKCS#1 key (the
# daemon would sign PKCS#1 v1.5 whatever is asked: the type decides)
expect_rc 1 "${P11_ENV[@]}" pkcs11-tool --module "$P11_MODULE" --token-label boot --sign \
	-m RSA-PKCS-PSS --hash-algorithm SHA256 --mgf MGF1-SHA256 --salt-len 32 --label db-key \
	-i <(openssl dgst -sha256 -binary firmware.bin) -o /dev/null
cat "$T/out" "$T/err" | grep -q "CKR_MECHANISM_INVALID" ||
	fail "PSS with the PKCS#1 key: $(cat "$T/out" "$T/err")"
# and the module offers only PKCS#1 v1.5 for it
expect_rc 0 "${P11_ENV[@]}" pkcs11-tool --module "$P11_MODULE" --token-label boot -M
grep -q "RSA-PKCS-PSS" "$T/out" && fail "module offers PSS for PKCS#1 keys: $(cat "$T/out")"
grep -q "SHA256-RSA-PKCS" "$T/out" || fail "no SHA256-RSA-PKCS: $(cat "$T/out")"
echo "ok: PKCS#1 keys sign nothing else"

# --- the audit log: every signature under ci, scheme rsa2048-pkcs1
expect_rc 0 qsign -p auditor --json audit search --event signature --role boot
python3 - "$T/out" <<'PY' || fail "audit entries: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
es = d["entries"] if isinstance(d, dict) else d
es = [e.get("fields", e) for e in es]
assert len(es) >= 6, len(es)  # req -x509, sbsign, osslsigncode, cms (2), mkimage
for e in es:
    assert e["principal"] == "ci", e
    assert e["algorithm"] == "rsa2048-pkcs1", e
assert [e["hash"] for e in es].count("sha384") == 1, [e["hash"] for e in es]
print(len(es), "signature entries")
PY
expect_rc 0 qsign -p auditor audit verify
echo "ok: audit log: $(cat "$T/out" | head -1)"
