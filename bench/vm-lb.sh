#!/usr/bin/env bash
# (w) The data plane of bench/lb.sh inside three VMs whose kernel has IPVS (issue 22), with
# swarmd --lb-backend auto picking IPVS. This machine's kernel has no IPVS; the VMs of tests/vm/
# (Debian's kernel, QEMU TCG) do. The VMs, their private bridge, the kit and the swarm are
# tests/vm/lib.sh's (as tests/vm/cluster.sh uses them): vm1 manager, vm2 and vm3 workers.
#
# Services: web = 2 whoami on the overlay lp_net, both on vm2, --publish 8080; client and
# client-lb = one whoami each on lp_net, on vm1. Every row's load generator runs in vm1 and
# every backend in vm2 (vm3 carries no task): each VM is one emulated CPU, so spreading
# backends over other VMs would measure where the CPU is, not the path.
# HTTP with a new TCP connection per request (wrk -t1 -cCONNS -dDURATION --latency
# -H 'Connection: close', GET /name of whoami; wrk, from this host's Debian package with its
# libraries, is shipped in the VMs' initramfs), RUNS rounds, paths interleaved (order rotated):
#   direct:      wrk in the client task's namespace -> a web task's lp_net address:8080 (VXLAN);
#   vip:         the same -> web's VIP:8080; balanced by nftables DNAT in the client's own
#                namespace (agent/src/network/lb/client.rs): NOT through IPVS;
#   vip-lb:      wrk in client-lb's namespace -> the VIP; that task's mark table (shoal_vipmark)
#                is deleted, as for a task whose table is not written yet, so its connections
#                go to vm1's lb_ namespace: IPVS (fwmark service, Masq, SNAT);
#   mesh-local:  wrk in vm1's own namespace -> 127.0.0.1:PUBLISHED (balanced by nftables in vm1's
#                own namespace: the mesh is nftables whatever --lb-backend says, NOT IPVS);
#   mesh-remote: wrk in vm1's own namespace -> vm2's address:PUBLISHED (nftables in vm2's namespace).
# For each run the IPVS connection counters (ipvsadm -Ln --stats --exact) of vm1's lb_, and the CPU time of the three QEMU processes, are read
# before and after: the report shows which balancer counted the connections and how busy each
# emulated CPU was. Requests/s, p50, p99 are medians over the rounds, with ratios to direct.
#
# EMULATED CPUs (TCG, no KVM): every guest instruction is translated; absolute figures are
# nothing like real hardware, only the ratios between the rows mean something.
#
# Root only. The VMs' network lives in a namespace of this script's own (no route to anything
# else); at exit, even on failure or Ctrl-C, the VMs are stopped by their PIDs, the namespace
# is deleted and the run directory removed (KEEP=1 keeps it).
#
# Usage: bench/vm-lb.sh [BIN_DIR]   (swarmd, swarmctl, whoami; default $CARGO_TARGET_DIR/release;
#        copied first, so a rebuild during the run does not change them)
# Env: RUNS=5 DURATION=10 CONNS=8, BIN_NOTE (what the binaries are built from, for the report), SHOAL_VM_MEM (768), SHOAL_VM_ACCEL (tcg), VM_NET=198.18.9
# (first three octets of the VMs' private /24), KEEP=1. Output: $RESULTS_DIR/vm-lb.md, .raw.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"   # log, die, bench_init, wrk_parse, machine_note, run_info, ...
# shellcheck source=../tests/vm/lib.sh
source "$REPO/tests/vm/lib.sh"    # vmx, wait_for, vmc_* (a cluster of VMs), ctl, vmc_running

[ "$(id -u)" -eq 0 ] || die "bench/vm-lb.sh needs root (network namespace, taps, QEMU)"
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-8}
SRC_BIN=${1:-$CARGO_TARGET_DIR/release}
# shellcheck disable=SC2034  # N NET NS MEM ACCEL HB: read by tests/vm/lib.sh (vmc_*)
N=3
NET=${VM_NET:-198.18.9}
NS=shoalvmlb$$
MEM=${SHOAL_VM_MEM:-768}
ACCEL=${SHOAL_VM_ACCEL:-tcg}
HB=1s
ST=/var/lib/shoal   # swarmd's state directory in the VMs (the kit's)
T_START=$(date +%s)
for b in swarmd swarmctl whoami; do [ -x "$SRC_BIN/$b" ] || die "no $SRC_BIN/$b (build the release binaries first)"; done
command -v python3 >/dev/null || die "python3 is needed (the VMs' control channel)"
need_cmd wrk

bench_init vm-lb   # BASE, the bench lock
RUN=$BASE/vms
mkdir -p "$RUN" "$BASE/bin" "$RESULTS_DIR"
cleanup_all() {
  local rc=$?
  set +e
  vmc_cleanup   # the VMs by PID, the namespace, $RUN
  (exit "$rc")
  bench_cleanup
}
trap cleanup_all EXIT
cp "$SRC_BIN/swarmd" "$SRC_BIN/swarmctl" "$SRC_BIN/whoami" "$BASE/bin/"
RAW=$BASE/vm-lb.raw
: >"$RAW"

wait_quiet
START_NOTE="$(date -u +%FT%TZ), $(machine_note)"
vmc_initrd "$BASE/bin" "$(command -v wrk)"
log "initramfs $(($(stat -c %s "$RUN/initrd.img") / 1048576)) MiB (with wrk); booting $N VMs ($MEM MiB, $ACCEL)"
vmc_up
log "$N VMs booted in ${BOOTED}s"
# Conntrack sized as on this host (a node with the RAM of a real one): the kernel sizes it from
# the VM's ~700 MiB to 6,144 entries per namespace, and with a new connection per request the
# TIME_WAIT entries (120 s) fill that within a round; then SYNs are dropped ("nf_conntrack:
# table full") and wrk stalls on retransmissions (seen in the first run: 0.7 req/s).
CT_MAX=$(sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null || echo 262144)
CT_HASH=$(cat /sys/module/nf_conntrack/parameters/hashsize 2>/dev/null || echo "$CT_MAX")
for i in $(seq 1 "$N"); do
  vmx "$i" 20 "echo $CT_HASH > /sys/module/nf_conntrack/parameters/hashsize && echo $CT_MAX > /proc/sys/net/netfilter/nf_conntrack_max" >/dev/null ||
    die "cannot size conntrack in vm$i"
done
vmc_swarm
log "swarm of $N formed in ${READY}s; conntrack in the VMs: max $CT_MAX, hash $CT_HASH (this host's)"

# ------------------------------------------------------------------------------ services
ctl 1 network create -d overlay lp_net >/dev/null || die "cannot create lp_net"
ctl 1 service create --runtime process -d --name web --replicas 2 --constraint node.hostname==vm2 \
  --publish 8080 --network lp_net whoami >/dev/null || die "cannot create web"
for c in client:9000 client-lb:9001; do
  ctl 1 service create --runtime process -d --name "${c%:*}" --network lp_net --constraint node.hostname==vm1 \
    whoami --port "${c#*:}" >/dev/null || die "cannot create ${c%:*}"
done
wait_for 180 "web running" vmc_running web 2 || die "web did not run: $(ctl 1 service ps web)"
wait_for 120 "client running" vmc_running client 1 || die "client did not run"
wait_for 120 "client-lb running" vmc_running client-lb 1 || die "client-lb did not run"
NETID=$(ctl 1 network inspect lp_net --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
SVC=$(ctl 1 service inspect web --format json)
PORT=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ports"][0]["published"])' <<<"$SVC")
VIP=$(python3 -c '
import json, sys
print([v["addr"].split("/")[0] for v in json.load(sys.stdin)[0]["vips"] if v["network_id"] == sys.argv[1]][0])' "$NETID" <<<"$SVC")
# "ID lp_net-address" of the running tasks of a service
tasks() {
  ctl 1 service ps "$1" --format json | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["status"]["state"] == "running":
        print(t["id"], [n for n in t["networks"] if n["network"] == "lp_net"][0]["addresses"][0].split("/")[0])'
}
read -r DIRECT_ID DIRECT_IP < <(tasks web | awk "NR == 1")
read -r CLI_ID _ < <(tasks client)
read -r CLB_ID _ < <(tasks client-lb)
tkns() { echo "$ST/netns/tk_$(echo "$1" | tr -cd 'a-z0-9' | cut -c1-12)"; }
NS_CLI=$(tkns "$CLI_ID")
NS_CLB=$(tkns "$CLB_ID")
[ -n "$PORT" ] && [ -n "$VIP" ] && [ -n "$DIRECT_IP" ] || die "no published port / VIP / task address (port=$PORT vip=$VIP direct=$DIRECT_IP)"
log "web: VIP $VIP, published $PORT, direct target ${DIRECT_ID:0:12} at $DIRECT_IP (vm2); clients ${CLI_ID:0:12}, ${CLB_ID:0:12} (vm1)"
echo "SETUP vip=$VIP published=$PORT direct=$DIRECT_IP net_id=$NETID booted_s=$BOOTED ready_s=$READY mem=$MEM accel=$ACCEL ct_max=$CT_MAX ct_hash=$CT_HASH" >>"$RAW"

# The clients' own VIP tables (client.rs) written, then client-lb's mark table removed: its
# connections to the VIP then go to vm1's lb_ namespace.
vip_tables() { vmx 1 20 "nsenter --net=$1 nft list tables" | grep -q shoal_vipmark; }
wait_for 60 "client's VIP tables" vip_tables "$NS_CLI" || die "no shoal_vipmark table in the client task"
wait_for 60 "client-lb's VIP tables" vip_tables "$NS_CLB" || die "no shoal_vipmark table in client-lb"
unmark() { vmx 1 20 "nsenter --net=$NS_CLB nft delete table ip shoal_vipmark 2>/dev/null; nsenter --net=$NS_CLB nft list tables"; }
unmark >/dev/null

# IPVS picked (auto): FWM services, round robin, the 2 backends with Masq, in vm1's lb_.
ipvs_ok() {
  local out
  out=$(vmx "$1" 20 "for f in $ST/netns/$2; do nsenter --net=\$f ipvsadm -Ln; done") || return 1
  echo "$out" | grep -qE '^FWM +[0-9]+ rr' && [ "$(echo "$out" | grep -c 'Masq')" -ge 2 ]
}
BALANCERS=("1:lb_*")   # VM:namespace (a glob in the VM)
for x in "${BALANCERS[@]}"; do
  wait_for 90 "IPVS in vm${x%%:*} ${x#*:}" ipvs_ok "${x%%:*}" "${x#*:}" ||
    die "no IPVS FWM rr service with 2 Masq backends in vm${x%%:*}'s ${x#*:}: $(vmx "${x%%:*}" 20 "ls $ST/netns; for f in $ST/netns/${x#*:}; do echo \$f; nsenter --net=\$f ipvsadm -Ln; nsenter --net=\$f nft list ruleset | head -40; done")"
done
{
  for x in "${BALANCERS[@]}"; do
    echo "# vm${x%%:*} ${x#*:}: ipvsadm -Ln"
    vmx "${x%%:*}" 20 "for f in $ST/netns/${x#*:}; do nsenter --net=\$f ipvsadm -Ln; done" | sed 's/^/#   /'
  done
  echo "# vm1 client task: nft list tables"; vmx 1 20 "nsenter --net=$NS_CLI nft list tables" | sed 's/^/#   /'
  echo "# vm1 client-lb task (mark table removed): nft list tables"; vmx 1 20 "nsenter --net=$NS_CLB nft list tables" | sed 's/^/#   /'
} >>"$RAW"
log "IPVS balances in vm1's lb_ (ipvsadm -Ln in $RAW)"

# ------------------------------------------------------------------------------ measurement
# IPVS connections counted so far in vm1's lb_.
ipvs_sum() { # VM NAMESPACE-GLOB
  vmx "$1" 20 "for f in $ST/netns/$2; do nsenter --net=\$f ipvsadm -Ln --stats --exact; done" |
    awk '/^(FWM|TCP|UDP) / { s += $3 } END { print s + 0 }'
}
ipvs_counts() { local x; for x in "${BALANCERS[@]}"; do printf '%s ' "$(ipvs_sum "${x%%:*}" "${x#*:}")"; done; }
# CPU seconds of the three QEMU processes (all their threads).
qcpu() {
  local i
  for i in $(seq 1 "$N"); do awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f ", ($14 + $15) / hz }' "/proc/$(cat "$RUN/vm$i.pid")/stat"; done
}
wrk_once() { # PATH RUN
  local path=$1 run=$2 url pre="" out b a c0 c1 t0 t1 rps p50 p99 n err bad
  case $path in
    direct) pre="nsenter --net=$NS_CLI"; url=http://$DIRECT_IP:8080/name ;;
    vip) pre="nsenter --net=$NS_CLI"; url=http://$VIP:8080/name ;;
    vip-lb) pre="nsenter --net=$NS_CLB"; url=http://$VIP:8080/name
            unmark | grep -q shoal_vipmark && log "  client-lb's mark table is back: removed again" ;;
    mesh-local) url=http://127.0.0.1:$PORT/name ;;
    mesh-remote) url=http://$NET.12:$PORT/name ;;
  esac
  b=$(ipvs_counts)
  c0=$(qcpu); t0=$(date +%s.%N)
  out=$(vmx 1 $((DURATION + 90)) "$pre timeout $((DURATION + 60)) wrk -t1 -c$CONNS -d${DURATION}s --timeout 10s --latency -H 'Connection: close' $url 2>&1")
  c1=$(qcpu); t1=$(date +%s.%N)
  sleep 2.5   # IPVS adds its per-CPU counters up every 2 s (the estimator)
  a=$(ipvs_counts)
  sed "s/^/# $path run $run: /" <<<"$out" >>"$RAW"
  read -r rps p50 p99 n err bad < <(wrk_parse <<<"$out")
  local cpu ipvs
  cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) printf "%s%.0f", (i > 1 ? "," : ""), 100 * (y[i] - x[i]) / (t1 - t0) }')
  ipvs=$(awk -v a="$b" -v b="$a" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "," : ""), y[i] - x[i] }')
  echo "WRK path=$path run=$run rps=$rps p50_ms=$p50 p99_ms=$p99 requests=$n errors=$err non2xx=$bad ipvs=$ipvs cpu=$cpu url=$url" >>"$RAW"
  log "  $path run $run: $rps req/s, p50 $p50 ms, p99 $p99 ms ($n requests, $err socket errors, $bad non-2xx); IPVS conns vm1 lb_,vm1 ingress,vm2 ingress: $ipvs; QEMU CPU % vm1,vm2,vm3: $cpu"
}
PATHS=(direct vip vip-lb mesh-local mesh-remote)
log "HTTP, a new connection per request: wrk -t1 -c$CONNS -d${DURATION}s in vm1, $RUNS rounds of ${PATHS[*]} (order rotated)"
for run in $(seq 1 "$RUNS"); do
  for k in "${!PATHS[@]}"; do wrk_once "${PATHS[$(( (k + run - 1) % ${#PATHS[@]} ))]}" "$run"; done
done
for i in $(seq 1 "$N"); do
  echo "CTFULL vm=$i drops=$(vmx "$i" 20 'dmesg | grep -c "table full"' | tr -d '\r' | tail -1)" >>"$RAW"
done
END_NOTE="$(date -u +%FT%TZ), $(machine_note)"

# ------------------------------------------------------------------------------ results
run_info
WRK_VERSION=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true)
KERNEL=$(vmx 1 10 'uname -r' | tr -d '\r' | tail -1)
BIN_NOTE=${BIN_NOTE:-release binaries of $SRC_BIN}
export RUNS DURATION CONNS BIN_NOTE START_NOTE END_NOTE WRK_VERSION KERNEL MEM ACCEL
python3 - "$RAW" >"$BASE/vm-lb.md" <<'PY' || die "cannot write the report"
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from benchfmt import num, med, f0, f2  # noqa: E402

E = os.environ
rows = []
for line in open(sys.argv[1]):
    if line.startswith(("SETUP ", "WRK ", "CTFULL ")):
        kind, rest = line.split(" ", 1)
        rows.append((kind, dict(p.split("=", 1) for p in rest.split())))
setup = [d for k, d in rows if k == "SETUP"][0]
wk = [d for k, d in rows if k == "WRK"]

print("# Data plane in VMs with IPVS (bench/vm-lb.sh)")
print()
print("**Emulated CPUs (QEMU TCG, no KVM): absolute figures say nothing about real hardware; "
      "only the ratios between the rows mean something.**")
print()
print(f"- host: {E['MACHINE']}; {E['WRK_VERSION']} (shipped into the VMs)")
print(f"- Shoal: bench script at {E['REV']}; {E['BIN_NOTE']}")
print(f"- 3 VMs (QEMU {E['ACCEL']}, 1 vCPU, {E['MEM']} MiB each, "
      f"Debian kernel {E['KERNEL']}): vm1 manager, vm2 + vm3 workers, swarmd --lb-backend auto (IPVS picked); "
      f"booted in {setup['booted_s']} s, swarm formed in {setup['ready_s']} s; conntrack max {setup['ct_max']} "
      f"entries, {setup['ct_hash']} buckets (this host's values; the VMs' own default, 6,144 per namespace, "
      "fills with TIME_WAIT entries within a round)")
print(f"- web: 2 × whoami on lp_net, both on vm2 (VIP {setup['vip']}), published {setup['published']}->8080; "
      f"client and client-lb: whoami on vm1; direct target {setup['direct']}; every load generator in vm1")
ct = [d for k, d in rows if k == "CTFULL"]
print(f"- conntrack \"table full\" drops logged by the VMs' kernels: {', '.join('vm%s %s' % (d['vm'], d['drops']) for d in ct)}")
print(f"- start: {E['START_NOTE']}")
print(f"- end:   {E['END_NOTE']}")
print()
print(f"HTTP, a new TCP connection per request (wrk -t1 -c{E['CONNS']} -d{E['DURATION']}s --latency "
      f"-H 'Connection: close', GET /name; {E['RUNS']} rounds, paths interleaved). "
      "IPVS connections per request: the rise of the connection counters of `ipvsadm -Ln --stats` "
      "in vm1's lb_, divided by wrk's completed requests "
      "(slightly above 1: the connections still open when wrk stops are counted too). "
      "QEMU CPU: each VM's process, % of one host core over the run (medians).")
print()
print("| path | req/s per run | req/s (median) | vs direct | p50 | p99 | IPVS conns / request: vm1 lb_, vm1 ingress, vm2 ingress | QEMU CPU % vm1, vm2, vm3 | socket errors, non-2xx |")
print("|---|---|---:|---:|---:|---:|---|---|---:|")
what = {"direct": "direct: client task (vm1) → web task on vm2 (overlay, no balancer)",
        "vip": "VIP: client task → VIP (nftables DNAT in the task's own namespace, no IPVS)",
        "vip-lb": "VIP through vm1's lb_ namespace (IPVS; client-lb's own mark table removed)",
        "mesh-local": f"routing mesh: vm1 → 127.0.0.1:{setup['published']} (vm1's own namespace, nftables)",
        "mesh-remote": f"routing mesh: vm1 → vm2's address:{setup['published']} (vm2's own namespace, nftables)"}
base = None
for p in what:
    ds = sorted([d for d in wk if d["path"] == p], key=lambda d: int(d["run"]))
    if not ds:
        continue
    m = {k: med([num(d[k]) for d in ds]) for k in ("rps", "p50_ms", "p99_ms")}
    if p == "direct":
        base = m
    per = [[num(x) / num(d["requests"]) for x in d["ipvs"].split(",")] for d in ds]
    ipvs = ", ".join(f2(med([r[i] for r in per])) for i in range(3))
    cpu = ", ".join(f0(med([num(d["cpu"].split(",")[i]) for d in ds])) for i in range(3))
    errs = sum(int(d["errors"]) for d in ds), sum(int(d["non2xx"]) for d in ds)
    ratio = f2(m["rps"] / base["rps"]) if base else "n/a"
    print(f"| {what[p]} | {' '.join(f0(num(d['rps'])) for d in ds)} | **{f0(m['rps'])}** | **{ratio}** | "
          f"{f2(m['p50_ms'])} ms | {f2(m['p99_ms'])} ms | {ipvs} | {cpu} | {errs[0]}, {errs[1]} |")
PY
cp "$RAW" "$RESULTS_DIR/vm-lb.raw"
cp "$BASE/vm-lb.md" "$RESULTS_DIR/vm-lb.md"
cat "$RESULTS_DIR/vm-lb.md"
log "done in $(( $(date +%s) - T_START )) s"
