#!/usr/bin/env bash
# The packaged unit under a real systemd.
#
# Boots a fresh Debian 12 system in a container (debootstrap, then
# systemd-nspawn with systemd as the container's PID 1), installs the .deb
# with apt, provisions the SoftHSM token by running the shell block of
# ops/docs/operations.md ("### SoftHSMv2") verbatim, writes a config and a
# policy, and checks, through systemctl and /proc:
#   - `systemctl start qsignd` returns only after READY=1 (Type=notify) and
#     the unit is active; the journal shows the bootstrap and "qsignd: ready";
#   - the daemon and its helpers run as the dynamic user, with no
#     capabilities, no_new_privs and a seccomp filter; the PIN reached it as
#     a credential, not through the file system;
#   - the packaged qsign signs over the unit's ipc socket and OpenSSL
#     verifies the signature;
#   - SIGKILL of the main process: Restart=on-failure brings it back, the
#     acknowledged signature's audit entry is there and the log verifies;
#   - a broken config stops the start in ExecStartPre (--check) with the
#     reason in the journal, and the service starts again once fixed;
#   - `systemd-analyze security qsignd` rates the unit as loaded.
#
# Needs root, debootstrap, systemd-nspawn (systemd-container) and Debian's
# package mirror. QS_ROOTFS_CACHE=DIR keeps the debootstrapped tree in DIR
# between runs (developers); CI bootstraps afresh. QS_KEEP=1 keeps the
# working directory and leaves the container running for a look.
set -euo pipefail
: "${QS_BUILD:?}" "${QS_SRC:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, systemd-nspawn)"
for c in debootstrap systemd-nspawn nsenter cpack; do
	command -v "$c" >/dev/null || fail "$c missing (ops/install-deps installs it)"
done

T=$(mktemp -d "${TMPDIR:-/tmp}/qsign-systemd.XXXXXX")
root=$T/root
NSPAWN_PID=""
cleanup() {
	if [ "${QS_KEEP:-0}" = 1 ]; then
		echo "kept $T (container leader: nspawn pid ${NSPAWN_PID:-none})" >&2
		return
	fi
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$NSPAWN_PID" 2>/dev/null || true # the container halts
		for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$NSPAWN_PID" 2>/dev/null || true
		wait "$NSPAWN_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# --- the package
(cd "$T" && cpack -G DEB --config "$QS_BUILD/CPackConfig.cmake" >"$T/cpack.log" 2>&1) ||
	{ tail -20 "$T/cpack.log" >&2; fail "cpack"; }
deb=$(ls "$T"/quorum-signer_*.deb)

# --- a fresh Debian 12 with systemd
bootstrap() { # dir
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
		bookworm "$1" http://deb.debian.org/debian >"$T/debootstrap.log" 2>&1 ||
		{ tail -20 "$T/debootstrap.log" >&2; fail "debootstrap"; }
}
if [ -n "${QS_ROOTFS_CACHE:-}" ]; then
	[ -x "$QS_ROOTFS_CACHE/usr/lib/systemd/systemd" ] || { rm -rf "$QS_ROOTFS_CACHE"; bootstrap "$QS_ROOTFS_CACHE"; }
	cp -a "$QS_ROOTFS_CACHE" "$root"
else
	bootstrap "$root"
fi
echo "ok: Debian 12 root file system"

# Commands in the container before it boots (apt, provisioning).
offline() { systemd-nspawn -q -D "$root" --register=no --keep-unit --pipe -E DEBIAN_FRONTEND=noninteractive "$@"; }
cp "$deb" "$root/var/cache/quorum-signer.deb"
cp /etc/resolv.conf "$root/etc/resolv.conf"
offline sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends /var/cache/quorum-signer.deb openssl python3 procps' \
	>"$T/apt.log" 2>&1 || { tail -30 "$T/apt.log" >&2; fail "apt install of the .deb"; }
echo "ok: apt installed $(basename "$deb") and its dependencies"

# --- provisioning, as operations.md says
awk '/^### SoftHSMv2/{s=1} s&&/^```sh/{c=1; next} c&&/^```/{exit} c' "$QS_SRC/ops/docs/operations.md" \
	>"$root/root/provision.sh"
grep -q "qsign-token init" "$root/root/provision.sh" || fail "no SoftHSMv2 block found in operations.md"
offline bash -euo pipefail /root/provision.sh >"$T/provision.log" 2>&1 ||
	{ cat "$T/provision.log" >&2; fail "the SoftHSMv2 provisioning of operations.md"; }
grep -q "audit-log" "$T/provision.log" || { cat "$T/provision.log" >&2; fail "provisioning listed no audit-log key"; }
echo "ok: token provisioned by operations.md's SoftHSMv2 block"

for p in ci auditor admin1 admin2; do
	offline qsign keygen -t ed25519 -o "/root/$p.key" >"$T/$p.pub"
done
cat >"$root/etc/qsignd/qsignd.json" <<'EOF'
{
  "identity": "qsignd-unit-test",
  "listen": ["ipc:///run/qsignd/qsignd.sock"],
  "state_dir": "/var/lib/qsignd",
  "policy": "/etc/qsignd/policy.json",
  "tokens": [
    {"name": "online", "module": "/usr/lib/softhsm/libsofthsm2.so",
     "uri": "pkcs11:token=qsign-online", "pin_file": "credential:online.pin"}
  ],
  "workers": 2,
  "signers": 2,
  "audit": {"origin": "unit-test.example/qsignd", "key": "pkcs11:token=qsign-online;object=audit-log"}
}
EOF
python3 - "$T" >"$root/etc/qsignd/policy.json" <<'PY'
import json, sys
pub = lambda n: open(f"{sys.argv[1]}/{n}.pub").read()
print(json.dumps({
    "version": 1,
    "principals": {"ci": {"public_key": pub("ci"), "roles": ["requester"]},
                   "auditor": {"public_key": pub("auditor"), "roles": ["auditor"]},
                   "admin1": {"public_key": pub("admin1"), "roles": ["admin"]},
                   "admin2": {"public_key": pub("admin2"), "roles": ["admin"]}},
    "policy_admins": {"threshold": 2, "admins": ["admin1", "admin2"]},
    "keys": {"ci-targets": {"uri": "pkcs11:token=qsign-online;object=ci-targets",
                            "algorithm": "ecdsa-p256"}},
    "roles": {"ci-sign": {"keys": ["ci-targets"], "payloads": ["blob", "digest"],
                          "online": {"requesters": ["ci"], "rate_per_second": 100, "burst": 100}}},
}, indent=2))
PY
chmod 0644 "$root/etc/qsignd/qsignd.json" "$root/etc/qsignd/policy.json"

# --- boot
systemd-nspawn -q -D "$root" --register=no --keep-unit -M qsign-unit-test -b --console=pipe \
	>"$T/boot.log" 2>&1 </dev/null &
NSPAWN_PID=$!
# The container's PID 1 is systemd, a child of systemd-nspawn once booted
# (an intermediate set-up child comes and goes first): look for it by name,
# and allow a loaded machine a minute and a half.
cpid=""
state=""
cin() { nsenter -t "$cpid" -a "$@"; }
for _ in $(seq 1 450); do
	kill -0 "$NSPAWN_PID" 2>/dev/null || break
	cpid=$(pgrep -P "$NSPAWN_PID" -x systemd | head -1 || true)
	if [ -n "$cpid" ]; then
		state=$(cin systemctl is-system-running 2>/dev/null || true)
		case "$state" in running | degraded) break ;; esac
	fi
	sleep 0.2
done
case "$state" in
running | degraded) ;;
*)
	cat "$T/boot.log" >&2
	ps -o pid,ppid,comm -g "$(ps -o sid= -p $$ | tr -d ' ')" >&2 || true
	[ -z "$cpid" ] || cin systemctl list-jobs --no-pager >&2 || true
	fail "systemd in the container: '${state:-no answer}' (pid 1: ${cpid:-not found})"
	;;
esac
echo "ok: systemd $(cin systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') is PID 1 of the container ($state)"

unit_status() { cin systemctl status --no-pager -l qsignd 2>&1 | tail -25 >&2 || true; cin journalctl -u qsignd --no-pager 2>&1 | tail -40 >&2 || true; }
prop() { cin systemctl show -p "$1" --value qsignd; }

# --- start: Type=notify returns once READY=1 arrived
cin systemctl start qsignd || { unit_status; fail "systemctl start qsignd"; }
[ "$(prop ActiveState)/$(prop SubState)" = active/running ] || { unit_status; fail "qsignd not active/running"; }
journal=$(cin journalctl -u qsignd --no-pager -o cat)
echo "$journal" | grep -q "policy.bootstrap" || { unit_status; fail "no policy.bootstrap in the journal"; }
echo "$journal" | grep -q "qsignd: ready" || { unit_status; fail "no 'qsignd: ready' in the journal"; }
pid=$(prop MainPID)
[ "$pid" -gt 0 ] || fail "no MainPID"
echo "ok: systemctl start returned after READY=1; qsignd active, main pid $pid (in the container)"

# --- the sandbox as the kernel sees it
st=$(cin cat "/proc/$pid/status")
uid=$(echo "$st" | awk '/^Uid:/{print $2}')
[ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] || fail "main process uid $uid is not a dynamic user"
echo "$st" | grep -q "^NoNewPrivs:[[:space:]]*1" || fail "no_new_privs not set"
echo "$st" | grep -q "^Seccomp:[[:space:]]*2" || fail "no seccomp filter on the main process"
echo "$st" | grep -q "^CapEff:[[:space:]]*0000000000000000" || fail "main process has capabilities: $(echo "$st" | grep ^CapEff)"
tree() { # pid: its descendants
	local c
	for c in $(cin pgrep -P "$1" || true); do echo "$c"; tree "$c"; done
}
children=$(tree "$pid")
[ "$(echo "$children" | wc -w)" = 4 ] || fail "expected the launcher and 3 signer helpers (2 + the audit log's) under the main process, got: $children"
for c in $children; do
	cst=$(cin cat "/proc/$c/status")
	echo "$cst" | grep -q "^Seccomp:[[:space:]]*2" || fail "helper/launcher $c has no seccomp filter"
	echo "$cst" | grep -q "^NoNewPrivs:[[:space:]]*1" || fail "helper/launcher $c lacks no_new_privs"
	echo "$cst" | grep -q "^CapEff:[[:space:]]*0000000000000000" || fail "helper/launcher $c has capabilities"
done
[ -L "$root/var/lib/qsignd" ] && [ -d "$root/var/lib/private/qsignd/audit" ] ||
	fail "state directory is not the DynamicUser layout (/var/lib/private/qsignd)"
cin test -e /run/qsignd/qsignd.sock || fail "no ipc socket under /run/qsignd"
echo "ok: uid $uid (dynamic), no capabilities, no_new_privs, seccomp on the daemon and its $(echo "$children" | wc -w) child process(es); state under /var/lib/private/qsignd"

# --- sign through the unit's socket, verify with OpenSSL
Q() { cin qsign -s ipc:///run/qsignd/qsignd.sock "$@"; }
echo "signed by the unit" >"$root/root/blob"
Q -p ci -i /root/ci.key sign -r ci-sign -f /root/blob -o /root/blob.sig || { unit_status; fail "qsign sign"; }
Q -p ci -i /root/ci.key keys --json |
	python3 -c 'import json,sys; print([k for k in json.load(sys.stdin)["keys"] if k["name"]=="ci-targets"][0]["public_pem"], end="")' \
	>"$root/root/ci-targets.pem"
openssl dgst -sha256 -verify "$root/root/ci-targets.pem" -signature "$root/root/blob.sig" "$root/root/blob" >/dev/null ||
	fail "the unit's signature does not verify"
cin env SOFTHSM2_CONF=/var/lib/qsignd/softhsm2.conf qsign-token pubkey \
	-u 'pkcs11:token=qsign-online;object=audit-log' -P file:/etc/qsignd/online.pin -o /root/log-key.pem ||
	fail "audit log key from the token"
Q -p auditor -i /root/auditor.key audit verify --log-key /root/log-key.pem --state /root/audit-state.json \
	>"$T/verify1.log" 2>&1 || { cat "$T/verify1.log" >&2; fail "audit verify"; }
echo "ok: a signature over the unit's socket verifies with OpenSSL; the audit log verifies"

# --- SIGKILL: systemd restarts it, nothing acknowledged is lost
cin systemctl kill -s KILL --kill-whom=main qsignd
newpid=""
for _ in $(seq 1 100); do
	newpid=$(prop MainPID)
	[ "$(prop ActiveState)" = active ] && [ "$newpid" -gt 0 ] && [ "$newpid" != "$pid" ] && break
	sleep 0.2
done
[ "$(prop ActiveState)" = active ] && [ "$newpid" != "$pid" ] || { unit_status; fail "qsignd not restarted after SIGKILL"; }
[ "$(prop NRestarts)" -ge 1 ] || fail "NRestarts did not count the restart"
newtree=" $newpid $(tree "$newpid" | tr '\n' ' ') "
for c in $children; do # the old launcher and helpers exit with the front
	if cin test -d "/proc/$c" && [ "${newtree#* $c }" = "$newtree" ]; then
		fail "process $c of the killed daemon is still running"
	fi
done
Q -p auditor -i /root/auditor.key audit verify --log-key /root/log-key.pem --state /root/audit-state.json \
	>"$T/verify2.log" 2>&1 || { cat "$T/verify2.log" >&2; fail "audit verify after the restart"; }
dg=$(sha256sum "$root/root/blob" | cut -d' ' -f1)
Q -p auditor -i /root/auditor.key audit export --log-key /root/log-key.pem >"$T/entries.jsonl" || fail "audit export"
grep -q "$dg" "$T/entries.jsonl" || fail "the acknowledged signature's audit entry is missing after the restart"
Q -p ci -i /root/ci.key sign -r ci-sign -f /root/blob -o /root/blob2.sig || fail "sign after the restart"
echo "ok: SIGKILL of pid $pid: restarted as $newpid (NRestarts=$(prop NRestarts)); the signature's audit entry is there; the log verifies"

# --- a broken config stops the start in ExecStartPre, with the reason
cp "$root/etc/qsignd/qsignd.json" "$T/good.json"
sed -i 's/"workers": 2/"workers": "two"/' "$root/etc/qsignd/qsignd.json"
cin systemctl restart qsignd 2>/dev/null && fail "qsignd restarted with a broken config"
[ "$(prop ActiveState)" != active ] || fail "qsignd active with a broken config"
cin journalctl -u qsignd --no-pager -o cat | grep -q '"workers" must be an integer' ||
	{ unit_status; fail "the journal does not say what is wrong with the config"; }
cin systemctl reset-failed qsignd
cp "$T/good.json" "$root/etc/qsignd/qsignd.json"
cin systemctl start qsignd || { unit_status; fail "start after fixing the config"; }
Q -p ci -i /root/ci.key sign -r ci-sign -f /root/blob -o /root/blob3.sig || fail "sign after fixing the config"
echo "ok: a broken config fails ExecStartPre with the reason in the journal; fixed, the unit starts and signs"

# --- systemd's own rating of the loaded unit
sec=$(cin systemd-analyze security --no-pager qsignd 2>&1 | tail -1)
echo "$sec" | grep -q "Overall exposure level for qsignd.service" || fail "systemd-analyze security: $sec"
echo "systemd-analyze security (loaded unit): ${sec#*: }"
cin systemctl stop qsignd || fail "systemctl stop"
[ "$(prop ActiveState)" = inactive ] || fail "qsignd not inactive after stop"

# --- without the unit's SystemCallFilter=seccomp, qsignd says what is wrong
out=$(cin systemd-run --wait --pipe --quiet -p SystemCallFilter=@system-service -p SystemCallErrorNumber=EPERM \
	-p LoadCredential=online.pin:/etc/qsignd/online.pin -E SOFTHSM2_CONF=/var/lib/qsignd/softhsm2.conf \
	/usr/bin/qsignd -c /etc/qsignd/qsignd.json --check 2>&1) && fail "qsignd --check passed with seccomp() blocked"
echo "$out" | grep -q "SystemCallFilter=seccomp" || fail "no clear error with seccomp() blocked: $out"
echo "ok: with seccomp() blocked by the service manager qsignd refuses to start and says why"
echo PASS
