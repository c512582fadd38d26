#!/bin/sh
# qsign-token end to end on a fresh SoftHSMv2 token of its own: init through
# the tool (PIN files, mode 0600), keygen of every type, list, pubkey, and
# signatures checked by the openssl command line. Also the exit codes: 0 ok,
# 1 failed operation, 2 usage.
set -eu

: "${QS_BIN:?QS_BIN must point at the build's bin directory}"
tool="$QS_BIN/qsign-token"
dir=$(mktemp -d "${TMPDIR:-/tmp}/qs-token-test.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect CODE CMD...: run CMD, require exit status CODE, keep stderr in $dir/err
expect() {
	want=$1
	shift
	set +e
	"$@" >"$dir/out" 2>"$dir/err"
	got=$?
	set -e
	[ "$got" -eq "$want" ] || {
		cat "$dir/out" "$dir/err" >&2
		fail "exit $got, want $want: $*"
	}
}

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
export QSIGN_PKCS11_MODULE=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
unset QSIGN_PIN_FILE

(umask 077 && printf 'so-secret-1\n' >"$dir/so.pin" && printf 'user-secret-1\n' >"$dir/user.pin")
[ "$(stat -c %a "$dir/user.pin")" = 600 ] || fail "PIN file mode"

# --- help and usage ---------------------------------------------------------
expect 0 "$tool" --help
grep -q keygen "$dir/out" || fail "--help lists no subcommands"
for c in init keygen list pubkey sign; do
	expect 0 "$tool" $c --help
	grep -q "Example" "$dir/out" || fail "$c --help has no example"
done
expect 2 "$tool"
expect 2 "$tool" frobnicate
expect 2 "$tool" keygen -t ed25519 -l x          # no -u
expect 2 "$tool" keygen -u pkcs11:token=t -t dsa -l x
expect 2 "$tool" sign -u pkcs11:object=x          # neither -d nor -f
expect 2 "$tool" sign -u pkcs11:object=x -d 00ff  # digest too short
expect 2 "$tool" list -u pkcs11: extra-arg
# A PIN cannot be given on the command line: there is no such option.
expect 2 "$tool" keygen --pin 1234 -u pkcs11:token=t -t ed25519 -l x
expect 2 "$tool" init --so-pin 1 --pin 2 --label t
expect 2 "$tool" list -u pkcs11: -p 1234

# --- init -------------------------------------------------------------------
expect 0 "$tool" init --so-pin-file "$dir/so.pin" --pin-file "$dir/user.pin" --label qstok
expect 1 "$tool" init --so-pin-file "$dir/so.pin" --pin-file "$dir/user.pin" --label qstok
grep -q "already exists" "$dir/err" || fail "second init: $(cat "$dir/err")"

uri="pkcs11:token=qstok"
pin="file:$dir/user.pin"

# wrong PIN and missing token fail cleanly with exit 1
printf 'wrong\n' >"$dir/bad.pin"
expect 1 "$tool" list -u "$uri" -P "file:$dir/bad.pin"
grep -q "CKR_PIN_INCORRECT" "$dir/err" || fail "wrong PIN: $(cat "$dir/err")"
expect 1 "$tool" list -u "pkcs11:token=nope" -P "$pin"
expect 1 "$tool" list -u "$uri?pin-value=1234"
grep -q "pin-value" "$dir/err" || fail "pin-value: $(cat "$dir/err")"

# --- keygen, list, pubkey, sign ---------------------------------------------
head -c 4096 /dev/urandom >"$dir/msg"
for t in ecdsa-p256 ecdsa-p384 ed25519 rsa3072; do
	expect 0 "$tool" keygen -u "$uri" -P "$pin" -t $t -l "k-$t"
	keyid=$(head -n 1 "$dir/out")
	echo "$keyid" | grep -Eq '^[0-9a-f]{64}$' || fail "keygen $t: key id '$keyid'"
	sed -n '2,$p' "$dir/out" >"$dir/$t.keygen.pem"
	# the key id is the SHA-256 of the SPKI DER
	expect 0 "$tool" pubkey -u "$uri;object=k-$t" -P "$pin" --der -o "$dir/$t.der"
	[ "$(sha256sum <"$dir/$t.der" | cut -d' ' -f1)" = "$keyid" ] || fail "$t key id"
	expect 0 "$tool" pubkey -u "$uri;object=k-$t" -P "$pin" -o "$dir/$t.pem"
	cmp -s "$dir/$t.pem" "$dir/$t.keygen.pem" || fail "$t: pubkey differs from keygen"
	openssl pkey -pubin -in "$dir/$t.pem" -noout || fail "$t: openssl rejects the PEM"
done

# duplicate label: refused, clear message, exit 1
expect 1 "$tool" keygen -u "$uri" -P "$pin" -t ed25519 -l k-ed25519
grep -q 'qsign-token: keygen: already exists: .*k-ed25519' "$dir/err" ||
	fail "duplicate keygen message: $(cat "$dir/err")"

# PIN from QSIGN_PIN_FILE and from the URI's pin-source
QSIGN_PIN_FILE="$dir/user.pin" expect 0 "$tool" list -u "$uri"
expect 0 "$tool" list -u "$uri?pin-source=file:$dir/user.pin"
for t in ecdsa-p256 ecdsa-p384 ed25519 rsa3072; do
	grep -q "^$t k-$t [0-9a-f]\{32\} [0-9a-f]\{64\}\$" "$dir/out" || {
		cat "$dir/out" >&2
		fail "list misses $t"
	}
done

# ECDSA: DER signature over SHA-256 of the file
expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -f "$dir/msg" -o "$dir/ec.sig"
openssl dgst -sha256 -verify "$dir/ecdsa-p256.pem" -signature "$dir/ec.sig" "$dir/msg" >/dev/null ||
	fail "ECDSA signature does not verify"
# same key, digest given with -d, hex output
dgst=$(sha256sum <"$dir/msg" | cut -d' ' -f1)
expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -d "$dgst" --format hex
xxd -r -p "$dir/out" >"$dir/ec2.sig"
openssl dgst -sha256 -verify "$dir/ecdsa-p256.pem" -signature "$dir/ec2.sig" "$dir/msg" >/dev/null ||
	fail "ECDSA (-d, hex) signature does not verify"
expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -d "$dgst" --format raw-hex
grep -Eq '^[0-9a-f]{128}$' "$dir/out" || fail "raw-hex is not 64 bytes"

# ECDSA P-384: a secp384r1 key, DER signature; raw r||s of 2 x 48 bytes
openssl pkey -pubin -in "$dir/ecdsa-p384.pem" -noout -text | grep -q 'NIST CURVE: P-384' ||
	fail "ecdsa-p384 key is not on P-384"
expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p384" -P "$pin" -f "$dir/msg" -o "$dir/ec384.sig"
openssl dgst -sha256 -verify "$dir/ecdsa-p384.pem" -signature "$dir/ec384.sig" "$dir/msg" \
	>/dev/null || fail "ECDSA P-384 signature does not verify"
openssl dgst -sha256 -verify "$dir/ecdsa-p256.pem" -signature "$dir/ec384.sig" "$dir/msg" \
	>/dev/null 2>&1 && fail "ECDSA P-384 signature verifies with the P-256 key"
expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p384" -P "$pin" -d "$dgst" --format raw-hex
grep -Eq '^[0-9a-f]{192}$' "$dir/out" || fail "P-384 raw-hex is not 96 bytes"

# Ed25519: pure, over the file bytes; -d is refused
expect 0 "$tool" sign -u "$uri;object=k-ed25519" -P "$pin" -f "$dir/msg" -o "$dir/ed.sig"
openssl pkeyutl -verify -pubin -inkey "$dir/ed25519.pem" -rawin -in "$dir/msg" \
	-sigfile "$dir/ed.sig" >/dev/null || fail "Ed25519 signature does not verify"
expect 1 "$tool" sign -u "$uri;object=k-ed25519" -P "$pin" -d "$dgst"

# RSA-PSS, SHA-256, salt 32; base64 output
expect 0 "$tool" sign -u "$uri;object=k-rsa3072" -P "$pin" -f "$dir/msg" --format base64
base64 -d "$dir/out" >"$dir/rsa.sig"
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
	-verify "$dir/rsa3072.pem" -signature "$dir/rsa.sig" "$dir/msg" >/dev/null ||
	fail "RSA-PSS signature does not verify"

# SHA-384 and SHA-512: a digest of 48 or 64 bytes (-d, told by its length)
# or --hash over the file; openssl verifies with that hash
for h in 384 512; do
	d=$(openssl dgst -sha$h -r "$dir/msg" | cut -d' ' -f1)
	expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p384" -P "$pin" -d "$d" -o "$dir/h.sig"
	openssl dgst -sha$h -verify "$dir/ecdsa-p384.pem" -signature "$dir/h.sig" "$dir/msg" \
		>/dev/null || fail "ECDSA P-384 over a SHA-$h digest (-d) does not verify"
	expect 0 "$tool" sign -u "$uri;object=k-rsa3072" -P "$pin" -f "$dir/msg" --hash sha$h \
		-o "$dir/h.sig"
	openssl dgst -sha$h -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:$((h / 8)) \
		-verify "$dir/rsa3072.pem" -signature "$dir/h.sig" "$dir/msg" >/dev/null ||
		fail "RSA-PSS over SHA-$h (--hash) does not verify"
	expect 0 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -d "$d" --hash sha$h \
		-o "$dir/h.sig"
	openssl dgst -sha$h -verify "$dir/ecdsa-p256.pem" -signature "$dir/h.sig" "$dir/msg" \
		>/dev/null || fail "ECDSA P-256 over a SHA-$h digest (-d --hash) does not verify"
done
expect 2 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -d "$dgst" --hash sha384
grep -q "not a digest of --hash" "$dir/err" || fail "-d of another hash: $(cat "$dir/err")"
expect 2 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -f "$dir/msg" --hash md5
grep -q "sha256, sha384 or sha512" "$dir/err" || fail "--hash md5: $(cat "$dir/err")"
expect 2 "$tool" sign -u "$uri;object=k-ecdsa-p256" -P "$pin" -d "$dgst"00
expect 1 "$tool" sign -u "$uri;object=k-ed25519" -P "$pin" -f "$dir/msg" --hash sha384

# missing key
expect 1 "$tool" sign -u "$uri;object=nope" -P "$pin" -f "$dir/msg"
grep -q "not found" "$dir/err" || fail "missing key: $(cat "$dir/err")"

echo "qsign_token_test: all checks passed"
