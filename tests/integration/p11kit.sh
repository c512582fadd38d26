#!/usr/bin/env bash
# p11-kit finds libqsign-pkcs11.so from the module file that cmake --install
# ships: `p11-kit list-modules` loads it and shows one token per role the
# principal may use; p11-kit-proxy (every PKCS#11 consumer of the system)
# does not load it (disable-in: p11-kit-proxy), and does once that line is
# gone (so the check can tell). p11-kit reads user module files only for
# non-root users: the tools run as nobody, with the shipped file, module
# line pointed at the scratch install, in nobody's ~/.config/pkcs11/modules
# (as a package puts it in share/p11-kit/modules).
. "$QS_SRC/tests/integration/lib.sh"
. "$QS_SRC/tests/integration/p11lib.sh"

[ "$(id -u)" = 0 ] || fail "this test needs root to run the tools as nobody (CI runs as root)"
id nobody >/dev/null 2>&1 || fail "no user nobody"
PROXY=$(find /usr/lib -name p11-kit-proxy.so 2>/dev/null | head -1)
[ -n "$PROXY" ] || fail "no p11-kit-proxy.so (package p11-kit-modules)"
qs_setup
p11_demo_keys
qs_start
export QSIGN_PRINCIPAL=ci
cd "$T"

p11_install
shipped=$T/inst/share/p11-kit/modules/qsign-pkcs11.module
[ -f "$shipped" ] || fail "no module file installed: $(cat "$T/install.log")"
mods=$XDG_CONFIG_HOME/pkcs11/modules
mkdir -p "$mods"
sed "s|^module: .*|module: $P11_MODULE|" "$shipped" >"$mods/qsign-pkcs11.module"

# The user's side: nobody reads its identity key, the socket, the token
# configuration (the daemon already has what it opened).
chown -R nobody "$T"
chmod 755 "$T"
as_nobody() {
	"${P11_ENV[@]}" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env HOME="$T/config" XDG_CONFIG_HOME="$XDG_CONFIG_HOME" "$@"
}

expect_rc 0 as_nobody p11-kit list-modules
python3 - "$T/out" "$P11_MODULE" <<'PY' || fail "list-modules: $(cat "$T/out" "$T/err")"
import sys
text, path = open(sys.argv[1]).read(), sys.argv[2]
blocks = {}
for line in text.splitlines():
    if line and not line[0].isspace():
        name = line.split(":", 1)[0]
        blocks[name] = []
    elif line.strip():
        blocks[name].append(line.strip())
b = blocks.get("qsign-pkcs11")
assert b is not None, "no qsign-pkcs11 module: " + ", ".join(blocks)
assert text.split("qsign-pkcs11: ", 1)[1].split("\n", 1)[0] == path, "module path"
tokens = {l.split(": ", 1)[1] for l in b if l.startswith("token: ")}
# ci's roles (the demo's ci-sign and tuf-ci and p11lib's), not registrar's
assert tokens == {"boot", "ci-sign", "tuf-ci", "p11-ed", "p11-rsa", "p11-slow", "p11-p384"}, tokens
PY
echo "ok: p11-kit list-modules loads the shipped module file: one token per role of ci"

# p11-kit-proxy: not there by default
expect_rc 0 as_nobody pkcs11-tool --module "$PROXY" -L
grep -q "SoftHSM" "$T/out" || fail "p11-kit-proxy loads no module at all: $(cat "$T/out")"
grep -q "token label *: boot" "$T/out" && fail "p11-kit-proxy loads the module: $(cat "$T/out")"
# ... and there once the module file no longer says disable-in
sed -i '/^disable-in:/d' "$mods/qsign-pkcs11.module"
expect_rc 0 as_nobody pkcs11-tool --module "$PROXY" -L
grep -q "token label *: boot" "$T/out" || fail "module without disable-in: $(cat "$T/out")"
echo "ok: off for p11-kit-proxy (disable-in), on without that line"
echo PASS
