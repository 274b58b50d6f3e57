#!/bin/bash
# cluster.sh - the reference article across three VMs with IPVS (issue #9), as CI runs it.
#
# Boots 3 QEMU VMs (Debian's kernel, which has IPVS; the cached kernel and base initramfs of
# run-in-vm.sh) on a private bridge inside a network namespace of this script's own, with no
# route anywhere else. Each VM gets swarmd, swarmctl, whoami and the deploy kit's launcher in its
# initramfs; swarmd starts from the kit's config file (/etc/shoal/swarmd.conf): vm1 initialises,
# vm2 and vm3 join with the tokens over the VMs' network. Then, with --lb-backend auto picking
# IPVS: overlay lp_net, web (3 replicas, a published port), a second service; the mesh answers on
# every VM with strict round robin; the VIP rotates from a task of the second service; tasks.web
# and web.<slot>.<taskid>.lp_net resolve; `ipvsadm -Ln` in a VM's lb_ namespace lists the FWM, rr
# and the 3 backends with Masq. Then vm3 is powered off: its task runs again on the others and no
# request goes to a missing backend once it is Down (after one heartbeat period).
#
# Usage: tests/vm/cluster.sh [BIN_DIR]   (root; BIN_DIR holds swarmd swarmctl whoami, default
#        $CARGO_TARGET_DIR/debug). Prints PASS/FAIL lines and timings; exit 0 only if all pass.
# Env: SHOAL_VM_MEM (MiB per VM, default 768), SHOAL_VM_ACCEL (tcg), KEEP=1 (keep the run dir).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN_DIR=${1:-${CARGO_TARGET_DIR:-/var/tmp/shoal-target}/debug}
# shellcheck disable=SC2034  # N NET NS MEM ACCEL HB: read by tests/vm/lib.sh (vmc_*)
MEM=${SHOAL_VM_MEM:-768}
ACCEL=${SHOAL_VM_ACCEL:-tcg}
N=3
NET=198.18.9     # the VMs' private network: .11-.13, the namespace's bridge .1
NS=shoalvm$$     # this run's namespace (bridge + taps live and die with it)
HB=1s            # heartbeat period under emulation (a node is Down after 3 missed)

# shellcheck source=lib.sh
. "$HERE/lib.sh"   # copy_with_libs ROOT FILE DEST, vmx I TIMEOUT SCRIPT, wait_for SECS DESC CMD...
script_checks cluster   # log, pass, fail (counted in FAILS), die; now, since

[ "$(id -u)" = 0 ] || die "needs root (network namespace, taps, QEMU)"
for b in swarmd swarmctl whoami; do [ -x "$BIN_DIR/$b" ] || die "no $BIN_DIR/$b (build the workspace first)"; done
command -v python3 >/dev/null || die "python3 is needed (the control channel client)"
RUN=$(mktemp -d /tmp/shoal-vmcluster.XXXXXX)
trap vmc_cleanup EXIT   # the VMs by PID, the namespace, the run directory
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ initramfs, network, VMs
vmc_initrd "$BIN_DIR"   # the cached base + the binaries, the kit, bash, curl
log "initramfs $(($(stat -c %s "$RUN/initrd.img") / 1048576)) MiB"
vmc_up
log "3 VMs booted in ${BOOTED}s"

# ------------------------------------------------------------------ swarmd from the kit's config
vmc_swarm   # install.sh twice per VM, vm1 initialises, the others join; 3 Ready
pass "install.sh run twice in each VM: one working install, the second run changed nothing"
pass "3 VMs, swarmd from the kit's config, joined with tokens: node ls shows 3 Ready (${READY}s after boot)"
ctl 1 node ls

# ------------------------------------------------------------------ the article's scenario
T_SVC=$(now)
ctl 1 network create -d overlay lp_net >/dev/null
ctl 1 service create --runtime process -d --name web --replicas 3 --publish 8080 --network lp_net whoami >/dev/null
ctl 1 service create --runtime process -d --name client --network lp_net --constraint node.hostname==vm1 whoami --port 9000 >/dev/null
if wait_for 180 "web running" vmc_running web 3 && wait_for 120 "client running" vmc_running client 1; then
  CONVERGED=$(since "$T_SVC")
  pass "web (3 replicas) and client converged in ${CONVERGED}s"
else
  ctl 1 service ps web; fail "services did not converge"
fi
PORT=$(ctl 1 service inspect web --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ports"][0]["published"])')
WEB=$(ctl 1 service ps web --format json)
ids() { echo "$WEB" | python3 -c 'import json,sys; print(" ".join(t["id"] for t in json.load(sys.stdin) if t["status"]["state"]=="running"))'; }
rr_ok() {   # rr_ok "answers" "ids": every window of 3 answers names 3 different running tasks
  python3 - "$1" "$2" <<'PY'
import sys
ans, ids = sys.argv[1].split(), set(sys.argv[2].split())
ok = len(ans) >= 3 and all(a in ids for a in ans) and all(len(set(ans[i:i+3])) == 3 for i in range(len(ans) - 2))
sys.exit(0 if ok else 1)
PY
}
IDS=$(ids)
# The mesh on every VM, localhost and another VM's address.
for i in 1 2 3; do
  other=$NET.$(( 10 + (i % 3) + 1 ))
  a=$(vmx "$i" 60 "for k in 1 2 3 4 5 6; do curl -s -m 3 http://127.0.0.1:$PORT/name; echo; done")
  b=$(vmx "$i" 60 "for k in 1 2 3 4 5 6; do curl -s -m 3 http://$other:$PORT/name; echo; done")
  if rr_ok "$a" "$IDS" && rr_ok "$b" "$IDS"; then pass "mesh on vm$i: strict round robin (localhost and $other)"
  else fail "mesh on vm$i: $(echo $a) / $(echo $b)"; fi
done
# The VIP (by name: the embedded DNS) from the client task.
CT=$(ctl 1 service ps client -q | tr -d '\r' | head -1)
a=$(ctl 1 task exec "$CT" -- sh -c "'for k in 1 2 3 4 5 6; do curl -s -m 3 http://web:8080/name; echo; done'")
if rr_ok "$a" "$IDS"; then pass "web's VIP from the client task: strict round robin"; else fail "VIP: $(echo $a)"; fi
# DNS: tasks.web lists the 3, web.<slot>.<taskid>.lp_net resolves to that task.
TW=$(ctl 1 task exec "$CT" -- nslookup tasks.web 127.0.0.11)
n=$(echo "$TW" | grep -cE '^Address( [0-9]+)?: *10\.')
if [ "$n" = 3 ]; then pass "tasks.web resolves to 3 addresses"; else fail "tasks.web: $TW"; fi
T1=$(echo "$WEB" | python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin) if t["status"]["state"] == "running"][0]
ip = [n for n in t["networks"] if n["network"] == "lp_net"][0]["addresses"][0].split("/")[0]
print(t["name"] + ".lp_net", ip)')
read -r T1NAME T1IP <<<"$T1"
got=$(ctl 1 task exec "$CT" -- nslookup "$T1NAME" 127.0.0.11)
if echo "$got" | grep -q "$T1IP"; then pass "$T1NAME resolves to $T1IP"; else fail "$T1NAME: $got"; fi
# ipvsadm in vm1's lb_ namespace, as the article shows it.
IPVS=$(vmx 1 30 'for f in /var/lib/shoal/netns/lb_*; do nsenter --net=$f ipvsadm -Ln; done')
echo "$IPVS"
if echo "$IPVS" | grep -qE '^FWM +[0-9]+ rr' && [ "$(echo "$IPVS" | grep -c 'Masq')" -ge 3 ]; then
  pass "ipvsadm -Ln in vm1's lb_ namespace: FWM rr with 3 Masq backends"
else fail "ipvsadm -Ln: no FWM rr with 3 Masq backends"; fi

# Limits on a cgroup v2 kernel (the VMs'; this machine's is v1): memory.max of the task's cgroup.
ctl 1 service create --runtime process -d --name limited --limit-memory 64M --limit-cpu 0.5 --constraint node.hostname==vm2 sleep 100000 >/dev/null
if wait_for 120 "limited running" vmc_running limited 1; then
  LT=$(ctl 1 service ps limited -q --no-trunc | tr -d '\r' | head -1)
  d=/sys/fs/cgroup/swarmd.service
  got=$(vmx 2 10 "cat $d/shoal-tasks/shoal-$LT/memory.max $d/shoal-tasks/shoal-$LT/cpu.max; grep -c . $d/swarmd/cgroup.procs")
  if echo "$got" | grep -qx 67108864 && echo "$got" | grep -q '^50000 100000'; then
    pass "cgroup v2 limits beneath swarmd's delegated cgroup (swarmd moved to a leaf): memory.max 64M, cpu.max 0.5 core"
  else
    fail "cgroup v2 limits: $got"
    vmx 2 10 'find /sys/fs/cgroup -name "shoal-*" -o -name swarmd | head; cat /proc/$(pidof swarmd | cut -d" " -f1)/cgroup; grep -i cgroup /var/log/swarmd.log | tail -5'
  fi
else
  ctl 1 service ps limited; fail "a task with limits did not run on cgroup v2"
fi

# ------------------------------------------------------------------ power off vm3
VM3ID=$(ctl 1 node inspect vm3 --format json | python3 -c 'import json,sys; v=json.load(sys.stdin); print((v[0] if isinstance(v, list) else v)["id"])')
ON3=$(echo "$WEB" | python3 -c '
import json, sys
print(" ".join(t["id"] for t in json.load(sys.stdin) if t["status"]["state"] == "running" and t["node_id"] == sys.argv[1]))' "$VM3ID")
vmx 3 5 'sync; poweroff -f' >/dev/null 2>&1   # no answer comes back: the VM is gone
down3() { ctl 1 node ls | grep ' vm3 ' | grep -q Down; }
if wait_for 60 "vm3 Down" down3; then
  sleep 1   # one heartbeat period
  a=$(vmx 1 60 "for k in 1 2 3 4 5 6; do curl -s -m 3 http://127.0.0.1:$PORT/name || echo FAIL; echo; done")
  bad=0; for x in $a; do case " $ON3 FAIL " in *" $x "*) bad=1 ;; esac; done
  if [ $bad = 0 ]; then pass "vm3 Down: no request to its task (${ON3:-none}) through the mesh"; else fail "after vm3: $(echo $a)"; fi
  b=$(ctl 1 task exec "$CT" -- sh -c "'for k in 1 2 3 4 5 6; do curl -s -m 3 http://web:8080/name || echo FAIL; echo; done'")
  bad=0; for x in $b; do case " $ON3 FAIL " in *" $x "*) bad=1 ;; esac; done
  if [ $bad = 0 ]; then pass "vm3 Down: no request to its task through the VIP"; else fail "VIP after vm3: $(echo $b)"; fi
  live3() {   # 3 tasks seen running, none on vm3
    [ "$(ctl 1 service ps web --format json | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin) if t["status"]["state"] == "running" and t["desired_state"] == "running" and t["node_id"] != sys.argv[1]))' "$VM3ID")" = 3 ]
  }
  if wait_for 120 "web 3/3 on vm1+vm2" live3; then pass "vm3's task runs again on the others"; else ctl 1 service ps web; fail "web not back to 3"; fi
else
  fail "vm3 never Down"
fi

log "timings: booted ${BOOTED}s; booted -> 3 Ready ${READY:-n/a}s; service create -> converged ${CONVERGED:-n/a}s (emulated CPUs, TCG)"
echo "CLUSTER-TIMINGS booted=${BOOTED} ready=${READY:-nan} converged=${CONVERGED:-nan}"
if [ "$FAILS" -gt 0 ]; then log "$FAILS check(s) failed"; exit 1; fi
log "all checks passed"
