# p11lib.sh - shared set-up of the PKCS#11 module suites (sourced after
# lib.sh): the module's path, keys and roles for it in the demo policy, and
# the foreign tools (pkcs11-tool, openssl with libp11's engine, sbsign,
# osslsigncode) run so that they can load it.

# The daemon binds a dozen keys: under the sanitizers on a busy machine
# its start takes longer than lib.sh waits by default.
export QS_START_TRIES=${QS_START_TRIES:-600}
P11_MODULE=${QS_BUILD:-$QS_BIN/..}/lib/libqsign-pkcs11.so
[ -f "$P11_MODULE" ] || fail "no module at $P11_MODULE"
P11_ENGINE=$(find /usr/lib -name pkcs11.so -path '*engines-3*' 2>/dev/null | head -1)

# A sanitizer build's module needs the sanitizer runtimes loaded first in
# the (uninstrumented) tools that dlopen it; their own leaks are not ours.
P11_ENV=()
# (ldd's output is read whole first: under pipefail, grep -q quitting at its
# first match may kill ldd with SIGPIPE and turn the match into a miss.)
if grep -q libasan <<<"$(ldd "$P11_MODULE")"; then
	P11_ENV=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
		"ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
fi

# OpenSSL with libp11's engine pointed at the module (the configuration the
# README's "Boot-stack signing from the build farm" shows).
cat >"$T/openssl-p11.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $P11_ENGINE
MODULE_PATH = $P11_MODULE
init = 0
[req]
distinguished_name = req_dn
[req_dn]
EOF
p11_engine() { "${P11_ENV[@]}" env OPENSSL_CONF="$T/openssl-p11.cnf" openssl "$@"; }

# p11_install: cmake --install into $T/inst (a scratch prefix, as the
# README's install does); P11_MODULE becomes the module installed into
# lib/.../pkcs11/.
p11_install() {
	cmake --install "$QS_BUILD" --prefix "$T/inst" >"$T/install.log" 2>&1 || fail "cmake --install"
	P11_MODULE=$(find "$T/inst" -name libqsign-pkcs11.so -path '*/pkcs11/*' | head -1)
	[ -n "$P11_MODULE" ] || fail "module not installed into .../pkcs11/: $(cat "$T/install.log")"
}

# Keys for the module's roles, in the demo token, and the roles:
#   p11-rsa   RSA-3072 PSS            (ci, online)
#   p11-ed    Ed25519, blobs          (ci, online)
#   p11-slow  ECDSA, 1 signature/s     (ci, online): the refused signature
#   p11-hidden ECDSA                  (registrar only): invisible to ci
#   boot      RSA-2048 PKCS#1 v1.5 "db-key" (ci, online): UEFI db, CMS
#   p11-p384  ECDSA P-384 "p384-key" (ci, online)
p11_demo_keys() {
	local tok=(qsign-token keygen -u "pkcs11:token=qsign-demo" -P "file:$QSIGN_HOME/user.pin")
	"${tok[@]}" -t rsa3072 -l pss-key >/dev/null || fail "keygen pss-key"
	"${tok[@]}" -t ed25519 -l ed-key >/dev/null || fail "keygen ed-key"
	"${tok[@]}" -t ecdsa-p256 -l slow-key >/dev/null || fail "keygen slow-key"
	"${tok[@]}" -t ecdsa-p256 -l hidden-key >/dev/null || fail "keygen hidden-key"
	"${tok[@]}" -t rsa2048-pkcs1 -l db-key >/dev/null || fail "keygen db-key"
	"${tok[@]}" -t ecdsa-p384 -l p384-key >/dev/null || fail "keygen p384-key"
	qs_policy_edit "
def key(n, a): p['keys'][n] = {'uri': 'pkcs11:token=qsign-demo;object=' + n, 'algorithm': a}
def role(n, keys, who, payloads=('digest', 'blob'), **online):
    p['roles'][n] = {'keys': keys, 'payloads': list(payloads),
                     'online': dict({'requesters': who}, **online)}
key('pss-key', 'rsa3072')
key('ed-key', 'ed25519')
key('slow-key', 'ecdsa-p256')
key('hidden-key', 'ecdsa-p256')
key('db-key', 'rsa2048-pkcs1')
key('p384-key', 'ecdsa-p384')
role('p11-rsa', ['pss-key'], ['ci'])
role('p11-ed', ['ed-key'], ['ci'], payloads=['blob'])
role('p11-slow', ['slow-key'], ['ci'], rate_per_second=1, burst=1)
role('p11-hidden', ['hidden-key'], ['registrar'])
role('boot', ['db-key'], ['ci'])
role('p11-p384', ['p384-key'], ['ci'])
"
}
