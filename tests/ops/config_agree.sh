#!/usr/bin/env bash
# The shipped example config and the shipped systemd unit agree, and the
# configuration reference shows that very file:
#   - ops/docs/configuration.md's "Complete example" is ops/qsignd.example.json,
#     byte for byte;
#   - every "credential:NAME" the example uses is a LoadCredential=NAME:... of
#     the unit (a missing one fails the start), and the unit loads no PIN
#     the example does not use;
#   - every listen address of the example is one the unit lets traffic reach:
#     ipc sockets under the unit's RuntimeDirectory, tcp listeners on an
#     address IPAddressAllow= admits (0.0.0.0: more than localhost);
#   - state_dir is the unit's StateDirectory and ExecStart reads the config
#     from the unit's ConfigurationDirectory.
# Then the same checks fail on a unit and a doc that disagree.
set -euo pipefail
: "${QS_SRC:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/qsign-agree.XXXXXX")
trap 'rm -rf "$T"' EXIT

check() { # UNIT CONFIG DOC -> prints problems, exit 1 if any
	python3 - "$@" <<'PY'
import ipaddress, json, re, sys
unit_path, cfg_path, doc_path = sys.argv[1:4]
unit = [l.strip() for l in open(unit_path) if l.strip() and not l.lstrip().startswith("#")]
def values(key):
    out = []
    for l in unit:
        if l.startswith(key + "="):
            v = l[len(key) + 1:]
            out = [] if v == "" else out + v.split()
    return out
raw = open(cfg_path).read()
cfg = json.loads(raw)
bad = []

# the reference's "Complete example" block is the file
doc = open(doc_path).read()
m = re.search(r"## Complete example\n.*?```json\n(.*?)```\n", doc, re.S)
if not m:
    bad.append("configuration.md has no Complete example block")
elif m.group(1) != raw:
    bad.append("configuration.md's Complete example is not ops/qsignd.example.json")

# credentials
loaded = {v.split(":", 1)[0] for v in values("LoadCredential")}
used = set()
for t in cfg.get("tokens", []):
    pf = t.get("pin_file", "")
    if pf.startswith("credential:"):
        used.add(pf[len("credential:"):])
for n in sorted(used - loaded):
    bad.append(f"the example uses credential:{n}, the unit does not load it")
for n in sorted(loaded - used):
    bad.append(f"the unit loads credential {n}, the example does not use it")

# listen addresses
runtime = values("RuntimeDirectory")
allow = values("IPAddressAllow")
def admitted(host):
    if host in ("0.0.0.0", "::", "[::]", ""):
        return any(a != "localhost" for a in allow)
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True  # a name: resolved at start, not checkable here
    if ip.is_loopback:
        return "localhost" in allow or any(ip in ipaddress.ip_network(a, False) for a in allow if a != "localhost")
    return any(a != "localhost" and ip in ipaddress.ip_network(a, False) for a in allow)
urls = list(cfg.get("listen", []))
if "metrics" in cfg:
    urls.append(cfg["metrics"])
for u in urls:
    if u.startswith("ipc://"):
        d = u[len("ipc://"):].rsplit("/", 1)[0]
        if not any(d == "/run/" + r for r in runtime):
            bad.append(f"{u}: not under the unit's RuntimeDirectory {runtime}")
        continue
    host = re.sub(r"^[a-z+]+://", "", u).rsplit(":", 1)[0]
    if not admitted(host):
        bad.append(f"{u}: the unit's IPAddressAllow={' '.join(allow)} lets no client reach it")

# state and config directories
if cfg.get("state_dir") not in ["/var/lib/" + s for s in values("StateDirectory")]:
    bad.append(f"state_dir {cfg.get('state_dir')} is not the unit's StateDirectory")
conf = values("ConfigurationDirectory")
for l in unit:
    if l.startswith("ExecStart=") and not any(f"/etc/{c}/" in l for c in conf):
        bad.append(f"{l}: config not in the unit's ConfigurationDirectory")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
}

check "$QS_SRC/ops/qsignd.service" "$QS_SRC/ops/qsignd.example.json" "$QS_SRC/ops/docs/configuration.md" ||
	{ echo "FAIL: the shipped unit, example config and reference disagree"; exit 1; }
echo "ok: unit, example config and configuration.md agree"

# The checks are not vacuous: each disagreement is caught.
expect_disagree() { # what UNIT CONFIG DOC
	local what=$1 out
	shift
	if out=$(check "$@"); then echo "FAIL: not caught: $what"; exit 1; fi
	echo "  caught: $out"
}
sed 's/^IPAddressAllow=.*/IPAddressAllow=localhost/' "$QS_SRC/ops/qsignd.service" >"$T/unit.localhost"
expect_disagree "tls+tcp://0.0.0.0 with IPAddressAllow=localhost" \
	"$T/unit.localhost" "$QS_SRC/ops/qsignd.example.json" "$QS_SRC/ops/docs/configuration.md"
sed 's/^LoadCredential=.*/LoadCredential=other.pin:\/etc\/qsignd\/other.pin/' "$QS_SRC/ops/qsignd.service" >"$T/unit.cred"
expect_disagree "a PIN the unit does not load" \
	"$T/unit.cred" "$QS_SRC/ops/qsignd.example.json" "$QS_SRC/ops/docs/configuration.md"
sed 's/"workers": 4/"workers": 8/' "$QS_SRC/ops/qsignd.example.json" >"$T/example.json"
expect_disagree "a reference that shows another file" \
	"$QS_SRC/ops/qsignd.service" "$T/example.json" "$QS_SRC/ops/docs/configuration.md"
sed 's#ipc:///run/qsignd/#ipc:///run/elsewhere/#' "$QS_SRC/ops/qsignd.example.json" >"$T/example2.json"
expect_disagree "a socket outside the RuntimeDirectory" \
	"$QS_SRC/ops/qsignd.service" "$T/example2.json" "$QS_SRC/ops/docs/configuration.md"
echo PASS
