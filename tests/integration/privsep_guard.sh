#!/usr/bin/env bash
# Signer helpers trust nothing the front says (signer/keys/privsep_guard.h):
# qs_privsep_guard holds the front's end of the helper protocol, as code
# execution in the front would, and asks for what a helper must refuse --
# the audit key over arbitrary bytes, over a note that is no checkpoint, of
# another origin, of a smaller tree size than the checkpoint on disk; a
# quorum key by plain sign, without approvals, with too few, with one
# approver twice, with approvals of another payload or of another
# signature hash (SHA-256 votes for a SHA-384 request, a hash the role does
# not allow, an unknown one), under a policy version never approved (and
# after a version 2 handed over with too few approvals). Each must be refused with its reason and logged as
# privsep.refused; what is allowed still signs. Then TUF keys (a timestamp
# key over another role's document, the other repository, JSON not in
# canonical form, a version not above the published or last signed one,
# an expiry beyond the policy's bound), an online key beyond its role's
# rate or over a digest of a hash its role does not allow, key generation outside the daemon's label namespace or over a taken
# label; a device CA key over arbitrary bytes and over certificates outside
# its constraints (subject form, validity, extensions, a CA certificate).
# Roots and production targets without an approved request, with too few
# approvals, with approvals of another payload, of a version, threshold,
# expiry or targets the request did not approve; the root CA key over a
# root CA or device CA certificate likewise; a device CA key over a CRL
# that revokes without approvals (against the CRL it signed before), with
# too few, of another payload, naming another certificate, two at once, or
# that drops a revocation; the root CA key over a CA list that enables or
# disables a device CA without the approved request, with too few approvals,
# of another payload, for another CA, or after a list it did not sign.
. "$(dirname "$0")/lib.sh"
qs_setup
cfg=$QSIGN_HOME/qsignd.json
# ci-sign at 1/s, burst 3: the harness exceeds it through the helper; and
# SHA-256 only: the harness asks for SHA-384 and SHA-512 signatures.
qs_policy_edit 'p["roles"]["ci-sign"]["online"].update({"rate_per_second": 1, "burst": 3, "hashes": ["sha256"]})'
# The quorum roles of blobs may sign with SHA-384 (not SHA-512): the
# harness asks for each with approvals of one hash or another.
qs_policy_edit '
for r in p["roles"].values():
    if "quorum" in r and "blob" in r["payloads"]:
        r["quorum"]["hashes"] = ["sha256", "sha384"]'

# A log with a checkpoint of some size: the helper's high-water mark.
qs_start
dg=$(printf 'guard' | sha256sum | cut -c1-64)
for _ in 1 2 3; do
	qsign -p ci sign -r ci-sign -d "$dg" >/dev/null || fail "online sign"
done
qs_stop || fail "qsignd did not stop cleanly"

# Version 2 of the policy: the quorum role needs one approval.
python3 - "$QSIGN_HOME/policy.json" "$T/policy-v2.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["version"] = 2
p["roles"]["release"]["quorum"]["threshold"] = 1
json.dump(p, open(sys.argv[2], "w"), indent=2)
PY

# A published CI timestamp, version 3: the floor of the helper's mark.
mkdir -p "$QSIGN_HOME/tuf/ci/metadata"
printf '{"signatures":[],"signed":{"_type":"timestamp","expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"version":2}},"spec_version":"1.0.31","version":3}}' \
	>"$QSIGN_HOME/tuf/ci/metadata/timestamp.json"

rc=0
# Each check is a round trip and a token signature: 60 s, 450 in a sanitizer
# build (instrumented OpenSSL, token and helper run several times slower).
limit=60
qs_sanitized && limit=450
timeout "$limit" "$QS_BIN/qs_privsep_guard" "$cfg" "$QSIGN_HOME" "$T/policy-v2.json" >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out"
[ "$rc" = 0 ] || { tail -20 "$T/err" >&2; fail "qs_privsep_guard exited $rc"; }
# Every refusal the harness saw is in the helper's log, with its reason.
for want in "signs only checkpoints of its log" "not a checkpoint note" "not this log's" \
	"is smaller than" "not the audit log key" "is a quorum key" "without approvals" \
	"only 1 of the 2 approvals" "signatures do not verify over this request and payload" \
	"never verified" "signs only TUF metadata" "signs only timestamp metadata" \
	"signs only the ci repository" "not canonical" "is not above 3" "is not above 10" \
	"beyond the 86400 s" "over its rate" "not a 48-byte digest (sha384)" "outside the daemon's namespace" \
	"is taken" "signs only certificates and CRLs" "not a DER certificate" \
	"subject is not CN=<UUID>" "valid beyond the policy's" "the profile does not have" \
	"does not issue device CA certificates" "only the root CA key signs" \
	"without the approved request" "approved root version 5, not 7" "not the approved 1" \
	"is not the production targets request" "re-signs no production targets" \
	"neither the one published nor one a promote approved" \
	"without the approved pki.ca-create request" "without the approved pki.device-ca request" \
	"makes no root CA certificate" "for another subject than request" \
	"valid beyond the 3650 days request" "a first CRL (none before it) that revokes" \
	"not a CRL this key signed" "without the approved request that revokes it" \
	"does not name" "drops a revoked certificate" "revokes 2 certificates at once" \
	"a first list of device CAs" "enables device CA" "disables device CA" "which request" \
	"not a list this key signed"; do
	grep "privsep.refused" "$T/err" | grep -F "$want" >/dev/null || fail "no privsep.refused logged with '$want'"
done
grep "privsep.refused request=policy" "$T/err" | grep -F "only 1 of the 2 approvals" >/dev/null ||
	fail "version 2 with one approval: no refusal logged"
grep -q "privsep.policy_refused" "$T/err" || fail "the front did not log the refused version"
grep -q "privsep.policy version=2" "$T/err" || fail "version 2 with two approvals not accepted"
echo "ok: every refusal logged as privsep.refused with its reason"

# The daemon's own path: version 2 approved by two admins reaches the
# helpers, and after a restart they verify the chain from the state store
# again; a release request under version 2 then signs with one approval.
qs_start
expect_rc 0 qsign -p admin1 policy propose "$T/policy-v2.json" -m "release: one approval"
pid=$(cat "$T/out")
expect_rc 0 qsign -p admin2 approve "$pid"
expect_rc 0 qsign -p admin3 approve "$pid"
grep -q "policy.applied version=2" "$T/qsignd.log" || fail "policy v2 not applied"
qs_stop || fail "qsignd did not stop cleanly"
: >"$T/qsignd.log"
qs_start
head -c 2000 /dev/urandom >"$T/payload"
expect_rc 0 qsign -p ci request submit -r release -f "$T/payload" -m "under v2"
id=$(cat "$T/out")
expect_rc 0 qsign -p admin1 approve "$id"
expect_rc 0 qsign -p ci request fetch "$id" -o "$T/sig"
grep -q "privsep.policy version=2" "$T/qsignd.log" || fail "helpers did not verify version 2 after the restart"
grep -q "privsep.sign_quorum request=$id" "$T/qsignd.log" || fail "the helper did not sign request $id on its approvals"
if grep -q "privsep.refused" "$T/qsignd.log"; then fail "the daemon's own requests were refused: $(grep privsep.refused "$T/qsignd.log")"; fi
qs_stop || fail "qsignd did not stop cleanly"
echo "ok: version 2 replayed to the helpers at start; a request under it signs with its one approval"
echo PASS
