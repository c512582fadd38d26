#!/bin/sh
# note_openssl.sh NOTE_TOOL - an independent verifier for our checkpoints:
# the signatures note_tool writes verify with the plain openssl command line
# (pkeyutl -rawin for Ed25519, dgst -sha256 for ECDSA P-256), the key IDs
# match what sha256sum computes from the spec's recipe, and notes assembled
# from openssl-made signatures verify with our parser.
set -eu
tool=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cd "$d"
name=audit.example/log

fail() { echo "FAIL: $*" >&2; exit 1; }

openssl genpkey -algorithm ed25519 -out ed.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
for k in ed ec; do
	openssl pkey -in $k.pem -pubout -out $k.pub
	openssl pkey -in $k.pem -pubout -outform DER -out $k.pub.der
	"$tool" sign $k.pem $name 8 $k.note
	head -n 3 $k.note >$k.txt
	[ "$(sed -n 4p $k.note)" = "" ] || fail "$k: no blank line after the text"
	[ "$(wc -l <$k.note)" -eq 5 ] || fail "$k: expected 5 lines"
	# shellcheck disable=SC2046
	set -- $(sed -n 5p $k.note)
	[ "$1" = "—" ] || fail "$k: signature line does not start with an em dash"
	[ "$2" = "$name" ] || fail "$k: key name"
	printf '%s' "$3" | base64 -d >$k.blob
	head -c 4 $k.blob | od -An -tx1 | tr -d ' \n' >$k.id
	tail -c +5 $k.blob >$k.sig
done

# the RFC 6962 root of leaves "0".."7", computed with the shell
leaf() { { printf '\000'; printf '%s' "$1"; } | sha256sum | cut -c1-64; }
node() { { printf '\001'; printf '%s%s' "$1" "$2" | xxd -r -p; } | sha256sum | cut -c1-64; }
if command -v xxd >/dev/null 2>&1; then
	l0=$(leaf 0) l1=$(leaf 1) l2=$(leaf 2) l3=$(leaf 3)
	l4=$(leaf 4) l5=$(leaf 5) l6=$(leaf 6) l7=$(leaf 7)
	a=$(node "$(node "$l0" "$l1")" "$(node "$l2" "$l3")")
	b=$(node "$(node "$l4" "$l5")" "$(node "$l6" "$l7")")
	root=$(node "$a" "$b" | xxd -r -p | base64)
	[ "$(sed -n 3p ed.txt)" = "$root" ] || fail "root differs from the shell's RFC 6962 root"
fi
[ "$(sed -n 2p ed.txt)" = 8 ] || fail "tree size line"

openssl pkeyutl -verify -pubin -inkey ed.pub -rawin -in ed.txt -sigfile ed.sig >/dev/null ||
	fail "openssl pkeyutl does not verify the Ed25519 checkpoint"
openssl dgst -sha256 -verify ec.pub -signature ec.sig ec.txt >/dev/null ||
	fail "openssl dgst does not verify the ECDSA checkpoint"

# a tampered text must not verify with openssl either (the test can fail)
sed 's/^8$/9/' ed.txt >ed.bad
sed 's/^8$/9/' ec.txt >ec.bad
if openssl pkeyutl -verify -pubin -inkey ed.pub -rawin -in ed.bad -sigfile ed.sig \
	>/dev/null 2>&1; then fail "tampered Ed25519 text verified"; fi
if openssl dgst -sha256 -verify ec.pub -signature ec.sig ec.bad >/dev/null 2>&1; then
	fail "tampered ECDSA text verified"
fi

# key IDs from the spec's recipe:
#   0x01: SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4]
#   0x02: SHA-256(DER SubjectPublicKeyInfo)[:4]
want=$({ printf '%s\n\001' "$name"; tail -c 32 ed.pub.der; } | sha256sum | cut -c1-8)
[ "$want" = "$(cat ed.id)" ] || fail "Ed25519 key ID $(cat ed.id), expected $want"
want=$(sha256sum <ec.pub.der | cut -c1-8)
[ "$want" = "$(cat ec.id)" ] || fail "ECDSA key ID $(cat ec.id), expected $want"

# the other direction: openssl signs, note_tool verifies
openssl pkeyutl -sign -inkey ed.pem -rawin -in ed.txt -out ed.osig
openssl dgst -sha256 -sign ec.pem -out ec.osig ec.txt
for k in ed ec; do
	b64=$({ head -c 4 $k.blob; cat $k.osig; } | base64 -w0)
	{ cat $k.txt; printf '\n— %s %s\n' "$name" "$b64"; } >$k.onote
	"$tool" open $k.pub $name $k.onote >$k.out || fail "$k: openssl-made note refused"
	cmp -s $k.out $k.txt || fail "$k: text differs"
	# and our own notes, and tampered ones
	"$tool" open $k.pub $name $k.note >/dev/null || fail "$k: own note refused"
	sed 's/^8$/9/' $k.note >$k.badnote
	if "$tool" open $k.pub $name $k.badnote 2>/dev/null; then fail "$k: tampered note accepted"; fi
done
# keys swapped: refused
if "$tool" open ec.pub $name ed.note 2>/dev/null; then fail "wrong key accepted"; fi
echo "ok: checkpoints verify with openssl pkeyutl/dgst; openssl signatures verify with us"
