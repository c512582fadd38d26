# ops/demo.d/tuf.sh - TUF roles for the demo (sourced once by ops/run with
# bin, module, uri, pin and QSIGN_HOME set, after the bootstrap policy).
#
# Keys of root v1 in the demo token; root and production targets need 2 of
# admin1..3; CI targets, snapshot and timestamp are online for "ci".
# Each repository has keys of its own (a production client must never trust
# a CI key): tuf-root-1, tuf-targets, tuf-snapshot, tuf-timestamp for CI;
# tuf-prod-root-1, tuf-prod-targets + tuf-targets-offline (2 of 2),
# tuf-prod-snapshot, tuf-prod-timestamp for production.
# Repositories are published under $QSIGN_HOME/tuf/{ci,prod}/{metadata,targets}.
keys="tuf-root-1 tuf-targets tuf-snapshot tuf-timestamp tuf-prod-root-1 tuf-prod-targets
      tuf-targets-offline tuf-prod-snapshot tuf-prod-timestamp"
for k in $keys; do
	keygen "$k" ecdsa-p256
done
mkdir -p "$QSIGN_HOME/tuf/ci" "$QSIGN_HOME/tuf/prod"
chmod 755 "$QSIGN_HOME/tuf" "$QSIGN_HOME/tuf/ci" "$QSIGN_HOME/tuf/prod"
python3 - "$QSIGN_HOME" "$uri" $keys <<'PY'
import json, sys
home, uri, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
path = f"{home}/policy.json"
p = json.load(open(path))
admins = ["admin1", "admin2", "admin3"]
for k in keys:
    p["keys"][k] = {"uri": f"{uri};object={k}", "algorithm": "ecdsa-p256"}
p["roles"]["tuf-admin"] = {
    "keys": ["tuf-root-1"], "payloads": ["tuf-init", "tuf-root"],
    "quorum": {"threshold": 2, "approvers": admins, "requesters": admins, "request_ttl": "24h"}}
p["roles"]["tuf-promote"] = {
    "keys": ["tuf-targets-offline"], "payloads": ["tuf-promote"],
    "quorum": {"threshold": 2, "approvers": admins, "requesters": admins + ["ci"],
               "request_ttl": "24h"}}
p["roles"]["tuf-ci"] = {
    "keys": ["tuf-targets", "tuf-snapshot", "tuf-timestamp"], "payloads": ["tuf-push"],
    "online": {"requesters": ["ci"], "rate_per_second": 10, "burst": 20}}
p["tuf"] = {
    "repositories": {"ci": f"{home}/tuf/ci", "prod": f"{home}/tuf/prod"},
    "gates": {"admin": "tuf-admin", "promote": "tuf-promote", "online": "tuf-ci"},
    "roles": {
        "root": {"keys": ["tuf-root-1"], "threshold": 1, "expires": "365d"},
        "targets": {"keys": ["tuf-targets"], "threshold": 1, "expires": "90d"},
        "snapshot": {"keys": ["tuf-snapshot"], "threshold": 1, "expires": "7d"},
        "timestamp": {"keys": ["tuf-timestamp"], "threshold": 1, "expires": "1d"},
        "prod-root": {"keys": ["tuf-prod-root-1"], "threshold": 1, "expires": "365d"},
        "prod-targets": {"keys": ["tuf-prod-targets", "tuf-targets-offline"], "threshold": 2,
                         "expires": "90d"},
        "prod-snapshot": {"keys": ["tuf-prod-snapshot"], "threshold": 1, "expires": "7d"},
        "prod-timestamp": {"keys": ["tuf-prod-timestamp"], "threshold": 1, "expires": "1d"},
    },
    "refresh": {"interval": "5m", "margin": "12h"},
}
json.dump(p, open(path, "w"), indent=2)
PY
