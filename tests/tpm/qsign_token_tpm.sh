#!/bin/sh
# tests/tpm/qsign_token_tpm.sh - qsign-token against a TPM token: generate
# an ECDSA P-256 and an RSA-3072 key, list them, export the public keys,
# sign, and check the signatures with OpenSSL (not with our own code).
set -eu
# shellcheck source=tests/tpm/lib.sh
. "$(dirname "$0")/lib.sh"

need_bin qsign-token
command -v openssl >/dev/null || { echo "FAIL: openssl missing" >&2; exit 1; }
tpm_start tpmtok
W=$TPM_WORK

# qt SUBCOMMAND URI ARGS...
qt() {
	sub=$1 uri=$2
	shift 2
	"$QS_BIN/qsign-token" "$sub" -m "$QS_TPM_MODULE" -u "$uri" -P "file:$QS_TPM_PIN_FILE" "$@"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# raw_to_der IN OUT: raw r||s (64 bytes) -> DER ECDSA-Sig-Value, with
# openssl alone (a second, independent encoder).
raw_to_der() {
	hex=$(od -An -v -tx1 "$1" | tr -d ' \n')
	cat >"$W/sig.cnf" <<-EOC
		asn1=SEQUENCE:sig
		[sig]
		r=INTEGER:0x$(echo "$hex" | cut -c1-64)
		s=INTEGER:0x$(echo "$hex" | cut -c65-128)
	EOC
	openssl asn1parse -genconf "$W/sig.cnf" -out "$2" >/dev/null
}

printf 'quorum-signer tpm test message\n' >"$W/msg"
printf 'quorum-signer tpm test messagE\n' >"$W/bad"

# -- keygen
qt keygen "$QS_TPM_URI" -t ecdsa-p256 -l ec1 || fail "keygen ecdsa-p256"
qt keygen "$QS_TPM_URI" -t rsa3072 -l rsa1 || fail "keygen rsa3072"
if qt keygen "$QS_TPM_URI" -t ecdsa-p256 -l ec1 2>"$W/dup.err"; then
	fail "keygen over an existing label succeeded"
fi

# -- list
qt list "$QS_TPM_URI" >"$W/list" || fail "list"
cat "$W/list"
grep -q 'ec1' "$W/list" || fail "list lacks ec1"
grep -q 'rsa1' "$W/list" || fail "list lacks rsa1"

# -- pubkey + sign + verify with openssl, per key type
for k in ec1 rsa1; do
	qt pubkey "$QS_TPM_URI;object=$k" -o "$W/$k.pub" || fail "pubkey $k"
	openssl pkey -pubin -in "$W/$k.pub" -noout || fail "pubkey $k is not a PEM public key"
	qt sign "$QS_TPM_URI;object=$k" -f "$W/msg" -o "$W/$k.sig" || fail "sign $k"
done

# ECDSA: accept DER (preferred) or raw r||s from the CLI.
sz=$(wc -c <"$W/ec1.sig")
if [ "$sz" = 64 ]; then
	raw_to_der "$W/ec1.sig" "$W/ec1.der"
else
	cp "$W/ec1.sig" "$W/ec1.der"
fi
openssl dgst -sha256 -verify "$W/ec1.pub" -signature "$W/ec1.der" "$W/msg" ||
	fail "ECDSA signature does not verify"
if openssl dgst -sha256 -verify "$W/ec1.pub" -signature "$W/ec1.der" "$W/bad" >/dev/null 2>&1; then
	fail "ECDSA signature verifies over the wrong message"
fi

# RSA-3072 PSS, SHA-256, MGF1-SHA256, salt 32 (hsm.h).
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
	-sigopt rsa_mgf1_md:sha256 -verify "$W/rsa1.pub" -signature "$W/rsa1.sig" "$W/msg" ||
	fail "RSA-PSS signature does not verify"

# -- a signature after a TPM reset, in a fresh process
"$TPM_ENV" restart-tpm "$TPM_DIR" || fail "restart-tpm"
qt sign "$QS_TPM_URI;object=ec1" -f "$W/msg" -o "$W/ec2.sig" || fail "sign after TPM reset"
if [ "$(wc -c <"$W/ec2.sig")" = 64 ]; then
	raw_to_der "$W/ec2.sig" "$W/ec2.der"
else
	cp "$W/ec2.sig" "$W/ec2.der"
fi
openssl dgst -sha256 -verify "$W/ec1.pub" -signature "$W/ec2.der" "$W/msg" ||
	fail "ECDSA signature made after the TPM reset does not verify"

echo "tpm_token_cli: passed"
