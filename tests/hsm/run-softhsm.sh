#!/bin/sh
# Run hsm_test against a fresh SoftHSMv2 token of its own: a temporary
# token directory and softhsm2.conf, removed afterwards. Test-only PINs.
# Usage: run-softhsm.sh HSM_TEST_BINARY
set -eu

bin=${1:?usage: run-softhsm.sh HSM_TEST_BINARY}
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
dir=$(mktemp -d "${TMPDIR:-/tmp}/qs-hsm-test.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

# Sanitizer builds: SoftHSM 2.6.1 leaks a few bytes per Ed25519 C_SignInit
# (inside OpenSSL's d2i, called from libsofthsm2). The fast unwinder stops
# in libcrypto (no frame pointers) before reaching libsofthsm2, so the
# tests/lsan.supp entry for it could not match; unwind fully instead.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"

mkdir "$dir/tokens"
cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF="$dir/softhsm2.conf"

label=hsmtest
softhsm2-util --init-token --free --label "$label" --so-pin 87654321 --pin 12345678 >/dev/null
(umask 077 && printf '12345678\n' >"$dir/user.pin")

HSM_TEST_MODULE=$module \
HSM_TEST_URI="pkcs11:token=$label" \
HSM_TEST_PIN="file:$dir/user.pin" \
HSM_TEST_KEYTYPES=${HSM_TEST_KEYTYPES:-ecdsa-p256,ecdsa-p384,ed25519,rsa3072,rsa2048-pkcs1} \
HSM_TEST_BREAK=finalize \
	"$bin"
