#!/bin/sh
# tests/tpm/run-tpm.sh - the hsm/ layer's parametrised test (hsm_test)
# against a TPM: ECDSA P-256 and RSA-3072 (a TPM has no Ed25519), and
# recovery from a TPM reset (swtpm killed and restarted between signatures).
set -eu
# shellcheck source=tests/tpm/lib.sh
. "$(dirname "$0")/lib.sh"

need_bin hsm_test
start=$(date +%s)
tpm_start tpmtok

HSM_TEST_MODULE=$QS_TPM_MODULE \
HSM_TEST_URI=$QS_TPM_URI \
HSM_TEST_PIN=file:$QS_TPM_PIN_FILE \
HSM_TEST_KEYTYPES=ecdsa-p256,rsa3072 \
HSM_TEST_BREAK=cmd \
HSM_TEST_BREAK_CMD="$TPM_ENV restart-tpm $TPM_DIR" \
	"$QS_BIN/hsm_test"

echo "tpm_hsm: passed in $(($(date +%s) - start)) s"
