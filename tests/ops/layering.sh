#!/usr/bin/env bash
# ops_layering: each source directory includes only what its README allows.
#
# The rule is the README's line
#     Include rule (ctest ops_layering): `dir/`, `dir/file.h`, ...
# (a directory allows all its headers, a file only itself; *.pb-c.h count as
# proto/). Every `#include "x.h"` of every .c/.h in proto/, hsm/, clients/
# and signer/ must name a header the rule allows; a header called
# *_internal.h only from its own directory. The build enforces the same
# (each library exports only its own headers); this check names the rule
# that a wrong include breaks, and catches what a shared directory's
# quoted-include lookup would let through.
#
#   layering.sh [ROOT]     check ROOT (default $QS_SRC)
#   layering.sh --self-test  plant violations in a copy; each must be caught
set -euo pipefail

check() {
	python3 - "$1" <<'PY'
import os, re, sys
root = sys.argv[1]
dirs = ["proto", "hsm", "clients", "signer"]
rule_re = re.compile(r"^[ \t*-]*Include rule \(ctest ops_layering\):(.*)$", re.M)
# Every source directory, subdirectories included (signer/ has one per
# concern): its files and the rule of its nearest README that has one.
srcdirs = []
for d in dirs:
    for dirpath, subdirs, files in os.walk(os.path.join(root, d)):
        subdirs.sort()
        srcdirs.append((os.path.relpath(dirpath, root), sorted(files)))
owner, home = {}, {}
for rel, files in srcdirs:
    for f in files:
        if f.endswith(".h"):
            owner.setdefault(f, rel.split(os.sep)[0])
            home.setdefault(f, rel)
rules, bad = {}, []
for d in dirs:
    text = open(os.path.join(root, d, "README.md"), encoding="utf-8").read()
    m = rule_re.search(text)
    if m is None:
        bad.append(f"{d}/README.md: no 'Include rule (ctest ops_layering):' line")
        continue
    rules[d] = re.findall(r"`([^`]+)`", m.group(1))
for rel, files in srcdirs:
    d = rel.split(os.sep)[0]
    if d not in rules:
        continue
    allowed = rules[d]
    for f in files:
        if not f.endswith((".c", ".h")):
            continue
        path = os.path.join(root, rel, f)
        for n, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m is None:
                continue
            h = os.path.basename(m.group(1))
            o = "proto" if h.endswith(".pb-c.h") else owner.get(h)
            if o is None:
                bad.append(f"{rel}/{f}:{n}: includes \"{h}\", a header of no source directory")
                continue
            if h.endswith("_internal.h") and home[h] != rel:
                bad.append(f"{rel}/{f}:{n}: includes {home[h]}/{h}, private to {home[h]}/")
                continue
            if f"{o}/" in allowed or f"{o}/{h}" in allowed:
                continue
            bad.append(f"{rel}/{f}:{n}: includes {o}/{h}; {d}/README.md allows only "
                       + ", ".join(allowed))
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
}

if [ "${1:-}" = --self-test ]; then
	: "${QS_SRC:?}"
	t=$(mktemp -d)
	trap 'rm -rf "$t"' EXIT
	plant() { # plant DIR FILE LINE: a copy with LINE added to DIR/FILE must fail
		rm -rf "$t/src"
		mkdir -p "$t/src"
		for d in proto hsm clients signer; do
			cp -r "$QS_SRC/$d" "$t/src/$d"
		done
		check "$t/src" >/dev/null || { echo "FAIL: the unchanged copy does not pass"; exit 1; }
		printf '%s\n' "$3" >>"$t/src/$1/$2"
		if check "$t/src" >"$t/out"; then
			echo "FAIL: $1/$2 with '$3' was not caught"
			exit 1
		fi
		grep -q "FAIL: $1/$2" "$t/out" || { cat "$t/out"; echo "FAIL: wrong report"; exit 1; }
		echo "ok: caught $1/$2 + $3"
	}
	plant hsm hsm_pin.c '#include "statement.h"'
	plant hsm hsm.c '#include "qs_limits.h"'
	plant proto wire.c '#include "hsm.h"'
	plant clients identity.c '#include "keyring.h"'
	plant signer daemon/log.c '#include "qsclient.h"'
	plant signer tuf/tuf_rpc.c '#include "hsm_internal.h"'
	plant signer pki/pki.c '#include "tuf_internal.h"'
	plant clients qsclient.c '#include "tuf_internal.h"'
	exit 0
fi

check "${1:-${QS_SRC:?}}"
echo "ok: every include of proto/, hsm/, clients/ and signer/ follows its README"
