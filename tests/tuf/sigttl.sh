#!/usr/bin/env bash
# An approved TUF change that waits for the signature of an admin-held key
# expires like any other request: tuf.signature_ttl after its last approval
# (here 3 s), by the clock, at reads and when the signature finally comes.
. "$QS_SRC/tests/integration/lib.sh"
qs_setup
module=/usr/lib/softhsm/libsofthsm2.so
d=$T/adm1
mkdir -p "$d/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$d" \
	>"$d/softhsm2.conf"
openssl rand -hex 16 >"$d/so.pin"
openssl rand -hex 16 >"$d/user.pin"
chmod 600 "$d/so.pin" "$d/user.pin"
export SOFTHSM2_CONF_ADM=$d/softhsm2.conf
SOFTHSM2_CONF=$d/softhsm2.conf qsign-token init --module "$module" --label adm1 \
	--so-pin-file "$d/so.pin" --pin-file "$d/user.pin" >/dev/null
SOFTHSM2_CONF=$d/softhsm2.conf qsign-token keygen -m "$module" -u "pkcs11:token=adm1" \
	-P "file:$d/user.pin" -t ecdsa-p256 -l tuf-key >/dev/null
SOFTHSM2_CONF=$d/softhsm2.conf qsign-token pubkey -m "$module" -u "pkcs11:token=adm1;object=tuf-key" \
	-P "file:$d/user.pin" -o "$d/tuf-key.pem"
export T_DIR=$T
qs_policy_edit "
import os
pem = open(os.environ['T_DIR'] + '/adm1/tuf-key.pem').read()
p['tuf']['external'] = {'adm1-root': {'holder': 'admin1', 'public_key': pem}}
p['tuf']['roles']['root']['keys'].append('adm1-root')
p['tuf']['roles']['root']['threshold'] = len(p['tuf']['roles']['root']['keys'])
p['tuf']['signature_ttl'] = '3s'
"
qs_start
expect_rc 0 qsign -p admin3 tuf init -m "needs admin1's key"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id"
expect_rc 0 qsign -p admin2 approve "$id"
expect_rc 0 qsign -p admin1 request show "$id"
grep -q "state: *approved" "$T/out" || fail "not waiting: $(cat "$T/out")"
sleep 4
expect_rc 1 env SOFTHSM2_CONF="$d/softhsm2.conf" QSIGN_PIN_FILE="$d/user.pin" \
	qsign -p admin1 tuf sign --yes --no-approve -i "pkcs11:token=adm1;object=tuf-key" "$id"
grep -q "expired\|is closed" "$T/err" || fail "late signature: $(cat "$T/err")"
expect_rc 0 qsign -p admin1 request show "$id"
grep -q "state: *expired" "$T/out" || fail "not expired: $(cat "$T/out")"
grep -q "tuf.signature_ttl passed" "$T/out" || fail "no reason shown: $(cat "$T/out")"
[ ! -e "$QSIGN_HOME/tuf/ci/metadata/1.root.json" ] || fail "published after expiry"
echo "ok: an approved change waiting for external signatures expires after tuf.signature_ttl"
qs_stop || fail "unclean stop"
echo PASS
