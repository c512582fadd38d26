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
	./usr/share/doc/quorum-signer/qsignd.example.json ./usr/include/qsclient/qsclient.h ./usr/include/qsclient/audit.pb-c.h; do
	grep -q " $f\$" "$T/files" || fail "package lacks $f"
done
dpkg-deb -f "$deb" Depends | grep -q "libnng" || fail "Depends lacks the shared libraries: $(dpkg-deb -f "$deb" Depends)"
echo "ok: $(basename "$deb") with binaries, unit, examples, header"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze security --offline=yes --threshold=20 "$QS_SRC/ops/qsignd.service" 2>&1) ||
		{ echo "$out" | tail -3 >&2; fail "unit exposure above 2.0"; }
	echo "$out" | tail -1
else
	fail "systemd-analyze missing (ops/install-deps installs systemd)"
fi
echo PASS
