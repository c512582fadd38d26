#!/usr/bin/env bash
# tests/tpm/daemon_recovery.sh - a running qsignd (privilege separation on,
# the default: the TPM token lives in the signer helpers) keeps signing with
# a TPM key across TPM resets, without being restarted.
#
#  1. private TPM (ops/tpm-env), an ECDSA P-256 key made in it with
#     qsign-token; the demo home (ops/run --setup-only) gets a second token
#     entry for the TPM, a policy key "tpm-key" and an online role
#     "tpm-sign" for ci;
#  2. qsign -p ci sign -r tpm-sign, checked with openssl against the public
#     key `qsign keys --json` reports;
#  3. `ops/tpm-env restart-tpm` (a power cut) RESETS times; after each, the
#     FIRST sign must succeed (the hsm layer re-initialises the module, logs
#     in again and retries once, hsm/hsm.h), and enough further signs follow
#     that every signer helper goes through its own recovery; qsignd keeps
#     its PID, its helpers stay alive, qsign_token_reconnects_total for the
#     TPM token goes up, the SoftHSM token's stays where it was;
#  4. the SoftHSM role ci-sign signs (and verifies) throughout.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
. "$QS_SRC/tests/integration/lib.sh"

TPM_ENV=$QS_SRC/ops/tpm-env
TPM_DIR=$T/tpm
TPM_LABEL=qs-tpm
RESETS=${QS_TPM_RESETS:-3}
for b in qsignd qsign qsign-token; do
	[ -x "$QS_BIN/$b" ] || { echo "FAIL: $QS_BIN/$b not built" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "FAIL: openssl missing" >&2; exit 1; }

# Sanitizer builds: see tests/tpm/lib.sh (tpm2-pkcs11 leaks inside libcrypto,
# which has no frame pointers).
if [ -n "${ASAN_OPTIONS:-}" ]; then
	export ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0
fi

# Stop qsignd first (it holds the token), then the TPM, then the rest.
cleanup() {
	local rc=$?
	if [ -n "$QSIGND_PID" ] && kill -0 "$QSIGND_PID" 2>/dev/null; then
		kill "$QSIGND_PID" 2>/dev/null || true
		wait "$QSIGND_PID" 2>/dev/null || true
	fi
	QSIGND_PID=""
	if [ -f "$TPM_DIR/pids" ]; then
		"$TPM_ENV" stop "$TPM_DIR" || rc=1
	fi
	if [ "$rc" != 0 ]; then
		for f in "$TPM_DIR"/abrmd.log "$TPM_DIR"/swtpm.out "$TPM_DIR"/swtpm.log; do
			[ -s "$f" ] || continue
			echo "---- $f (last 20 lines) ----" >&2
			tail -n 20 "$f" >&2
		done
	fi
	# shellcheck disable=SC2034 # read by qs_cleanup (lib.sh)
	if [ "${QS_KEEP_TMP:-0}" = 1 ]; then QS_KEEP=1; fi
	qs_cleanup
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
since() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$1" "$(now)"; }
t0=$(now)

# -- 1. TPM token with a key, demo home extended with it
"$TPM_ENV" start "$TPM_DIR" "$TPM_LABEL" ||
	fail "ops/tpm-env could not start a TPM token (packages missing? run ops/install-deps)"
# Exports TPM2_PKCS11_STORE, TPM2_PKCS11_TCTI, DBUS_SESSION_BUS_ADDRESS, ...:
# qsignd and its signer helpers inherit them from here.
# shellcheck source=/dev/null
. "$TPM_DIR/env.sh"
"$QS_BIN/qsign-token" keygen -m "$QS_TPM_MODULE" -u "$QS_TPM_URI" -P "file:$QS_TPM_PIN_FILE" \
	-t ecdsa-p256 -l tpm-key >"$T/keygen.log" 2>&1 || { cat "$T/keygen.log" >&2; fail "qsign-token keygen"; }
echo "ok: TPM token $TPM_LABEL with ECDSA P-256 key tpm-key ($(since "$t0") s)"

qs_setup
install -m 0600 "$QS_TPM_PIN_FILE" "$QSIGN_HOME/tpm.pin"
python3 - "$QSIGN_HOME/qsignd.json" "$QS_TPM_MODULE" "$QS_TPM_URI" <<'PY'
import json, sys
path, module, uri = sys.argv[1:4]
c = json.load(open(path))
c["tokens"].append({"name": "tpm", "module": module, "uri": uri, "pin_file": "tpm.pin"})
json.dump(c, open(path, "w"), indent=2)
PY
qs_policy_edit "
p['keys']['tpm-key'] = {'uri': '$QS_TPM_URI;object=tpm-key', 'algorithm': 'ecdsa-p256'}
p['roles']['tpm-sign'] = {'keys': ['tpm-key'], 'payloads': ['digest'],
    'online': {'requesters': ['ci'], 'rate_per_second': 1000, 'burst': 1000}}
"
qs_start
pid=$QSIGND_PID
# qsignd's descendants: the signer launcher and the helpers it forked.
helpers() {
	local p kids=() todo=("$pid")
	while [ ${#todo[@]} -gt 0 ]; do
		p=${todo[0]}
		todo=("${todo[@]:1}")
		for c in $(pgrep -P "$p" || true); do kids+=("$c"); todo+=("$c"); done
	done
	printf '%s\n' "${kids[@]}" | sort -n | tr '\n' ' '
}
helpers0=$(helpers)
nhelpers=$(echo "$helpers0" | wc -w)
signers=$(sed -n 's/.*privsep\.start signers=\([0-9]*\).*/\1/p' "$T/qsignd.log" | head -1)
if [ -z "$signers" ] || [ "$signers" -lt 1 ]; then
	fail "qsignd did not start signer helpers (privsep is the default)"
fi
# The recovery must work under the helpers' seccomp filters, their own on
# top of the launcher's, which they inherit (a violation kills the helper,
# which the unchanged-PID check below would catch): every descendant of
# qsignd runs filtered.
filtered=0
for c in $helpers0; do
	[ "$(sed -n 's/^Seccomp:[[:space:]]*//p' "/proc/$c/status" 2>/dev/null)" = 2 ] && filtered=$((filtered + 1))
done
# (sanitizer builds run without the filter and say so in the log)
if grep -q 'seccomp.skipped' "$T/qsignd.log"; then
	echo "note: $(grep -o 'seccomp.skipped.*' "$T/qsignd.log" | head -1)"
elif [ "$filtered" -lt "$signers" ] || [ "$filtered" != "$nhelpers" ]; then
	fail "only $filtered of qsignd's $nhelpers child processes (launcher, $signers signers) run under seccomp"
fi
echo "ok: qsignd $pid ready with the TPM token, $signers signer helper(s) (child processes $helpers0, $filtered under seccomp) ($(since "$t0") s)"

# Public keys as the daemon reports them.
expect_rc 0 qsign -p ci --json keys
python3 - "$T/out" "$T" <<'PY' || fail "keys --json lacks tpm-key / ci-key: $(cat "$T/out")"
import json, sys
doc = json.load(open(sys.argv[1]))
keys = doc["keys"] if isinstance(doc, dict) and "keys" in doc else doc
if isinstance(keys, dict):
    keys = [dict(v, name=k) for k, v in keys.items()]
found = 0
for k in keys:
    name = k.get("name") or k.get("key")
    pem = k.get("public_pem")
    if name in ("tpm-key", "ci-key") and pem:
        open(f"{sys.argv[2]}/{name}.pub", "w").write(pem)
        found += 1
sys.exit(0 if found == 2 else 1)
PY
for k in tpm-key ci-key; do
	openssl pkey -pubin -in "$T/$k.pub" -noout 2>/dev/null || fail "$k: public key is not PEM"
done
# The daemon's tpm-key is the key made in the TPM.
"$QS_BIN/qsign-token" pubkey -m "$QS_TPM_MODULE" -u "$QS_TPM_URI;object=tpm-key" \
	-P "file:$QS_TPM_PIN_FILE" -o "$T/tpm-key.token.pub" >/dev/null 2>&1 || fail "qsign-token pubkey"
[ "$(openssl pkey -pubin -in "$T/tpm-key.pub" -outform DER | sha256sum)" = \
	"$(openssl pkey -pubin -in "$T/tpm-key.token.pub" -outform DER | sha256sum)" ] ||
	fail "qsign keys reports another public key for tpm-key than the TPM holds"

# sign_ok ROLE KEY TAG: sign a fresh digest, verify it with openssl (the
# ECDSA signature is over the digest itself), and reject a wrong digest.
n=0
sign_ok() {
	local role=$1 key=$2 tag=$3 hex
	n=$((n + 1))
	hex=$(echo "$tag $n" | sha256sum | cut -c1-64)
	qsign -p ci sign -r "$role" -d "$hex" --format der -o "$T/sig.der" >"$T/out" 2>"$T/err" || return 1
	printf '%s' "$hex" | xxd -r -p >"$T/dg.bin"
	openssl pkeyutl -verify -pubin -inkey "$T/$key.pub" -in "$T/dg.bin" -sigfile "$T/sig.der" \
		>/dev/null 2>&1 || fail "$role ($tag): signature does not verify with openssl"
	printf '%s' "$(echo "not $hex" | sha256sum | cut -c1-64)" | xxd -r -p >"$T/bad.bin"
	if openssl pkeyutl -verify -pubin -inkey "$T/$key.pub" -in "$T/bad.bin" \
		-sigfile "$T/sig.der" >/dev/null 2>&1; then
		fail "$role ($tag): signature verifies over another digest"
	fi
}
must_sign() {
	sign_ok "$@" || { cat "$T/err" >&2; fail "$1 ($3): sign failed"; }
}

# reconnects TOKEN_LABEL: the daemon's qsign_token_reconnects_total (summed
# over the signer helpers), empty if the metric lacks the token.
reconnects() {
	expect_rc 0 qsign -p auditor metrics
	sed -n "s/^qsign_token_reconnects_total{token=\"$1\"} \([0-9]*\)\$/\1/p" "$T/out"
}

# -- 2. signatures before any reset
for i in $(seq 1 $((nhelpers + 2))); do
	must_sign tpm-sign tpm-key "before"
	must_sign ci-sign ci-key "before"
done
rec_tpm0=$(reconnects "$TPM_LABEL")
rec_soft0=$(reconnects qsign-demo)
[ -n "$rec_tpm0" ] || fail "metrics lack qsign_token_reconnects_total{token=\"$TPM_LABEL\"}: $(grep reconnects "$T/out")"
echo "ok: tpm-sign and ci-sign sign and verify; reconnects: $TPM_LABEL=$rec_tpm0 qsign-demo=${rec_soft0:-?} ($(since "$t0") s)"

# -- 3./4. TPM resets under the running daemon
# Each helper holds its own sessions, so each recovers on its own first
# call after a reset: sign more times than there are helpers.
per=$((2 * nhelpers + 2))
for r in $(seq 1 "$RESETS"); do
	"$TPM_ENV" restart-tpm "$TPM_DIR" >"$T/restart.log" 2>&1 || { cat "$T/restart.log" >&2; fail "restart-tpm"; }
	tr=$(now)
	# The first call after the reset must succeed: no client retry.
	if ! sign_ok tpm-sign tpm-key "reset $r first"; then
		cat "$T/err" >&2
		if sign_ok tpm-sign tpm-key "reset $r client retry"; then
			fail "reset $r: first tpm-sign after the TPM reset failed, a client retry succeeded (hsm recovery did not retry in the same call)"
		fi
		fail "reset $r: tpm-sign fails after the TPM reset, also on a client retry (no recovery)"
	fi
	first=$(since "$tr")
	for i in $(seq 2 "$per"); do
		must_sign tpm-sign tpm-key "reset $r #$i"
		must_sign ci-sign ci-key "reset $r #$i"
	done
	kill -0 "$pid" 2>/dev/null || fail "qsignd died"
	[ "$(helpers)" = "$helpers0" ] ||
		fail "reset $r: signer helpers changed (died and were restarted?): $helpers0-> $(helpers)"
	echo "ok: reset $r: first tpm-sign after it took $first s, then $((per - 1)) more tpm-sign and $((per - 1)) ci-sign, qsignd $pid and its helpers unchanged"
done

rec_tpm=$(reconnects "$TPM_LABEL")
rec_soft=$(reconnects qsign-demo)
# Every helper holds its own sessions and recovers on its own.
[ "$((rec_tpm - rec_tpm0))" -ge "$((RESETS * signers))" ] ||
	fail "qsign_token_reconnects_total{token=\"$TPM_LABEL\"}: $rec_tpm0 -> $rec_tpm, want at least $RESETS resets x $signers helpers"
[ "${rec_soft:-0}" = "${rec_soft0:-0}" ] ||
	fail "SoftHSM token reconnected although only the TPM was reset: $rec_soft0 -> $rec_soft"
echo "ok: reconnects $TPM_LABEL $rec_tpm0 -> $rec_tpm over $RESETS resets, qsign-demo ${rec_soft0:-0} -> ${rec_soft:-0}"

grep -q "qsignd: ready" "$T/qsignd.log" || fail "qsignd log lost its ready line"
[ "$(grep -c 'qsignd: ready' "$T/qsignd.log")" = 1 ] || fail "qsignd restarted itself"
qs_stop || fail "qsignd did not stop cleanly (exit $?)"
# Sanitizer builds: the helpers' reports land in the same log.
if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T"/qsignd.log.* >/dev/null 2>&1; then
	grep -hE -A20 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T"/qsignd.log.* | head -60 >&2
	fail "sanitizer report in the qsignd log"
fi
echo "daemon_recovery: passed in $(since "$t0") s"
