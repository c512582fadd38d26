# shellcheck shell=sh
# tests/tpm/lib.sh - sourced by the TPM test scripts: start a private TPM
# token (ops/tpm-env) in a fresh directory and stop it on every exit path.
# Sets TPM_DIR and exports what ops/tpm-env writes to env.sh (QS_TPM_*).

: "${QS_BIN:?QS_BIN unset (run through ctest)}"
: "${QS_SRC:?QS_SRC unset (run through ctest)}"
TPM_ENV=$QS_SRC/ops/tpm-env

# Sanitizer builds: tpm2-pkcs11 leaks inside OpenSSL (C_SignInit ->
# ssl_util_attrs_to_evp -> ASN1_item_d2i_ex, 66 bytes seen in one ECDSA C_SignInit).
# libcrypto has no frame pointers, so the fast unwinder stops there and
# tests/lsan.supp's leak:libtpm2_pkcs11.so cannot match: unwind fully.
if [ -n "${ASAN_OPTIONS:-}" ]; then
	ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0
	export ASAN_OPTIONS
fi

TPM_WORK=$(mktemp -d "${TMPDIR:-/tmp}/qs-tpm.XXXXXX")
TPM_DIR=$TPM_WORK/tpm

tpm_cleanup() {
	rc=$?
	"$TPM_ENV" stop "$TPM_DIR" || rc=1
	if [ "$rc" != 0 ]; then
		for f in "$TPM_DIR"/abrmd.log "$TPM_DIR"/swtpm.out "$TPM_DIR"/swtpm.log; do
			[ -s "$f" ] || continue
			echo "---- $f (last 20 lines) ----" >&2
			tail -n 20 "$f" >&2
		done
	fi
	if [ "${QS_KEEP_TMP:-0}" = 1 ]; then
		echo "kept $TPM_WORK" >&2
	else
		rm -rf "$TPM_WORK"
	fi
	exit "$rc"
}
trap tpm_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

tpm_start() {
	if ! "$TPM_ENV" start "$TPM_DIR" "${1:-tpmtok}"; then
		echo "FAIL: ops/tpm-env could not start a TPM token (packages missing? run ops/install-deps)" >&2
		exit 1
	fi
	# shellcheck source=/dev/null
	. "$TPM_DIR/env.sh"
}

need_bin() {
	[ -x "$QS_BIN/$1" ] || { echo "FAIL: $QS_BIN/$1 not built" >&2; exit 1; }
}
