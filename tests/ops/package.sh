#!/usr/bin/env bash
# The .deb builds with CPack and carries the binaries, the systemd unit and
# the examples; the unit's sandbox rates "OK" or better.
set -euo pipefail
: "${QS_BUILD:?}" "${QS_SRC:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
(cd "$T" && cpack -G DEB --config "$QS_BUILD/CPackConfig.cmake" >"$T/cpack.log" 2>&1) ||
	{ cat "$T/cpack.log" >&2; fail "cpack"; }
deb=$(ls "$T"/quorum-signer_*.deb)
dpkg-deb -c "$deb" >"$T/files"
for f in ./usr/bin/qsignd ./usr/bin/qsign ./usr/bin/qsign-token ./usr/lib/systemd/system/qsignd.service \
	./usr/share/doc/quorum-signer/qsignd.example.json ./usr/include/qsclient/qsclient.h ./usr/include/qsclient/qsc_audit.h ./usr/include/qsclient/audit.pb-c.h; do
	grep -q " $f\$" "$T/files" || fail "package lacks $f"
done
# nng is Debian's 1.5.2 with our listener fix, linked in (ops/nng/): the
# package must not pull the system's unpatched libnng, only the TLS library
# that nng uses.
deps=$(dpkg-deb -f "$deb" Depends)
echo "$deps" | grep -q "libmbedtls" || fail "Depends lacks nng's TLS library: $deps"
echo "$deps" | grep -q "libnng" && fail "Depends names the system's unpatched libnng: $deps"
grep -q "/libqs_nng.a$" "$T/files" || fail "package lacks libqs_nng.a"
# The PKCS#11 module in Debian's multiarch PKCS#11 directory, and its p11-kit
# module file.
grep -q "/usr/lib/[^/]*/pkcs11/libqsign-pkcs11.so$" "$T/files" || fail "package lacks the PKCS#11 module"
grep -q " ./usr/share/p11-kit/modules/qsign-pkcs11.module$" "$T/files" || fail "package lacks qsign-pkcs11.module"
echo "ok: $(basename "$deb") with binaries, unit, examples, header, PKCS#11 module"

# What the package installs runs: unpack it (dpkg -x: no changes to this
# machine), set up the demo with the packaged binaries, start the packaged
# qsignd and sign with the packaged qsign.
dpkg-deb -x "$deb" "$T/root"
pbin=$T/root/usr/bin
export QSIGN_HOME=$T/home SOFTHSM2_CONF=$T/home/softhsm2.conf XDG_CONFIG_HOME=$T/config
QS_BIN=$pbin "$QS_SRC/ops/run" --setup-only --no-build >"$T/setup.log" 2>&1 ||
	{ cat "$T/setup.log" >&2; fail "demo set-up with the packaged binaries"; }
"$pbin/qsignd" -c "$QSIGN_HOME/qsignd.json" --check >/dev/null || fail "packaged qsignd --check"
"$pbin/qsignd" -c "$QSIGN_HOME/qsignd.json" >"$T/qsignd.log" 2>&1 &
qpid=$!
trap 'kill $qpid 2>/dev/null || true; wait $qpid 2>/dev/null || true; rm -rf "$T"' EXIT
for _ in $(seq 1 100); do grep -q "qsignd: ready" "$T/qsignd.log" && break; sleep 0.1; done
grep -q "qsignd: ready" "$T/qsignd.log" || { cat "$T/qsignd.log" >&2; fail "packaged qsignd did not start"; }
echo pkg >"$T/blob"
"$pbin/qsign" -p ci sign -r ci-sign -f "$T/blob" -o "$T/sig" || fail "packaged qsign sign"
"$pbin/qsign" -p ci keys --json | python3 -c 'import json,sys; print([k for k in json.load(sys.stdin)["keys"] if k["name"]=="ci-key"][0]["public_pem"], end="")' >"$T/pub.pem"
openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/sig" "$T/blob" >/dev/null || fail "signature from the packaged daemon"
kill "$qpid"
wait "$qpid" || fail "packaged qsignd did not stop cleanly"
echo "ok: the packaged qsignd starts and signs; the packaged qsign talks to it"

# The packaged client library links as its pkg-config file says, against
# the patched nng it ships (libqs_nng.a), not the system's libnng.
cat >"$T/consumer.c" <<'C'
#include <qsclient.h>
#include <qsc_audit.h>
#include <string.h>
static void problem(void *arg, const char *msg) { (void)arg; (void)msg; }
int main(void)
{
	qsc_client *c = NULL;
	struct qsc_options o = {.url = "ipc:///nonexistent"};
	struct qsc_audit_callbacks cb = {problem, NULL, NULL};
	qsc_audit_verifier *v = NULL;
	const char *e = "{\"event\":\"x\",\"seq\":0,\"time\":1}";
	struct qsc_audit_totals t;
	if (qsc_new(&o, &c) != 0)
		return 1;
	qsc_close(c);
	/* The offline audit verifier is part of the library. */
	if (qsc_audit_verifier_new(&cb, &v) != 0 || qsc_audit_verifier_add(v, (const unsigned char *)e, strlen(e)) != 0)
		return 1;
	qsc_audit_verifier_totals(v, &t);
	qsc_audit_verifier_free(v);
	return t.entries == 1 && t.problems == 0 ? 0 : 1;
}
C
pc=$(dirname "$(find "$T/root" -name qsclient.pc)")
flags=$(PKG_CONFIG_PATH=$pc pkg-config --define-variable=prefix="$T/root/usr" --cflags --libs qsclient) ||
	fail "pkg-config qsclient"
cc -o "$T/consumer" "$T/consumer.c" $flags 2>"$T/cc.log" || { cat "$T/cc.log" >&2; fail "a consumer of the packaged qsclient does not link"; }
ldd "$T/consumer" | grep -q libnng && fail "the consumer links the system's libnng"
"$T/consumer" || fail "the consumer cannot create a client"
echo "ok: a program links the packaged qsclient (patched nng inside)"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze security --offline=yes --threshold=20 "$QS_SRC/ops/qsignd.service" 2>&1) ||
		{ echo "$out" | tail -3 >&2; fail "unit exposure above 2.0"; }
	echo "$out" | tail -1
else
	fail "systemd-analyze missing (ops/install-deps installs systemd)"
fi
echo PASS
