#!/usr/bin/env bash
# (h) The data plane on a lab (issue 4): one `swarmctl lab` (3 managers + 2 workers, each a
# release swarmd --data-plane kernel in its own network namespace), three measurements:
#
# 1. TCP throughput worker2 -> worker1, overlay vs underlay, interleaved in the same run
#    (iperf3, DURATION s, RUNS runs each). Underlay: iperf3 in the two nodes' namespaces
#    (`swarmctl lab exec`), client to worker1's lab address. Overlay: two tasks (`sleep 100000`)
#    on an overlay network, one pinned to each worker; iperf3 runs in the tasks' network
#    namespaces (nsenter) and the client connects to the server task's overlay address (VXLAN
#    between the nodes). Result: Mbit/s medians and overlay / underlay.
# 2. `service create -d --replicas 50` -> 50 tasks RUNNING (polled every 50 ms through `service
#    ps --format json`), RUNS runs per network, the three interleaved in every round: tasks on
#    `--network none` (namespaces, no links: the baseline), on the default bridge (no flag) and on
#    an overlay network. The service is removed after each run and the script waits until its
#    tasks, task namespaces and overlay sandboxes are gone. Tasks get --stop-grace-period 1s (as
#    in the Swarm anchor): a task is PID 1 of its PID namespace, where `sleep` ignores SIGTERM, so
#    every stop waits out the grace period (default 10 s) before the SIGKILL.
# 3. VmRSS of every node's swarmd (pid from lab.json): before the lab ran any task, before each
#    run of 2 (0 tasks: the baseline) and SETTLE s after its 50 tasks are RUNNING; per node:
#    the delta per task.
#
# Root only. The lab gets a unique name (bench + 3 digits), a free /24 in 198.18.200-250.0 (or
# SUBNET) and its state in the run directory under /var/tmp; at exit, even on failure or
# Ctrl-C, `swarmctl lab down` removes it, and the processes the script started (iperf3 servers)
# are stopped by PID. Installs iperf3 with apt when missing.
#
# Throughput (issue 22): both iperf3 ends pinned (iperf3 -A CLIENT,SERVER: AFFINITY, default 0,1
# on a machine with 2+ CPUs; AFFINITY= to leave them free), a ratio per round (overlay / underlay
# of the same round, their median) next to the ratio of the medians, and the CPU cost per byte
# (iperf3's sender + receiver process CPU, in ns per KiB carried), which varies less than the
# rate on a shared machine. THROUGHPUT_ONLY=1 skips 2. and 3.
#
# RPS (issue 22): the lab's nodes share this machine's CPUs, and a veth delivers in the sender's
# softirq, so with the iperf3 ends pinned every receive-side step (the receiving node's IP stack,
# and for the overlay its decapsulation, bridge and the task's veth) runs on the sender's CPU:
# unlike two machines, where the receiver's CPU does it. RPS=1 (the default when AFFINITY pins
# both ends) adds to every round a second underlay/overlay pair with each node's eth0 steering
# what it receives to its own end's CPU (rps_cpus of eth0 inside the node, set through sysfs
# mounted in a private mount namespace): worker2 to the client's CPU, worker1 to the server's.
# Both rows are reported; RPS=0 skips the second pair.
#
# Hand-made reference (issue 22): HANDMADE=1 (the default) adds to every round (without RPS) the
# same pair on a VXLAN overlay made by hand with `ip`, the way it is usually built and as Docker
# and Shoal lay it out, with nothing of Shoal in it: namespaces of the script's own (hmNNN-*,
# removed at exit), an underlay bridge (br_netfilter off, as the lab's) with two "nodes" on it
# (198.18.255.1-2/24: isolated, routed nowhere), in each a VXLAN device (id 4242, the other node
# as its remote) moved into a sandbox namespace with br0, and a "task" namespace behind a veth on
# br0 (198.19.254.1-2/24, MTU 1450). No firewall and no conntrack anywhere. Rows `hand-made
# underlay` and `hand-made overlay`; per round, Shoal's overlay / the hand-made overlay, and the
# hand-made overlay / its underlay: what VXLAN itself costs on this machine. With it, a row
# `overlay, dnsrr`: the same two tasks' pair on a second overlay network (dprr) whose services
# are all `--endpoint-mode dnsrr`, so no VIP exists there and the tasks' namespaces hold no
# balancer table (no conntrack): what the VIP tables cost a stream that uses no VIP.
# HANDMADE=0 skips both.
#
# Env: RUNS=3 DURATION=5 REPLICAS=50 SETTLE=2 SUBNET=198.18.X.0/24 NO_BUILD=1 (use the release
# binaries already in $CARGO_TARGET_DIR/release), QUIET_PCT/QUIET_MAX (lib.sh; default 60 s here),
# SWARM_RESULTS (a docker-swarm.sh results file for the side-by-side Swarm figure), KEEP=1.
# Output: $RESULTS_DIR/dataplane.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
REPLICAS=${REPLICAS:-50}
SETTLE=${SETTLE:-2}
QUIET_MAX=${QUIET_MAX:-60}
PORT=5201
OVNET=dpnet
if [ -z "${AFFINITY+x}" ]; then
  if [ "$(nproc)" -ge 2 ]; then AFFINITY=0,1; else AFFINITY=; fi
fi
THROUGHPUT_ONLY=${THROUGHPUT_ONLY:-}
if [ -z "${RPS:-}" ]; then
  if [ -n "$AFFINITY" ]; then RPS=1; else RPS=0; fi
fi

HANDMADE=${HANDMADE:-1}
HM=""   # prefix of the hand-made reference's namespaces, once made

lab_init dataplane   # root; at exit: lab down, our processes (iperf3 servers) by PID, $BASE
# The hand-made namespaces go first at exit (their iperf3 processes are stopped by PID after).
hm_down() {
  local n
  [ -n "$HM" ] || return 0
  for n in t1 t2 sb1 sb2 n1 n2 ul; do
    [ -e "/var/run/netns/$HM-$n" ] && ip netns del "$HM-$n" 2>/dev/null
  done
  return 0
}
trap 'rc=$?; hm_down; (exit $rc); lab_cleanup' EXIT
RAW=$BASE/dataplane.raw
: >"$RAW"
mkdir -p "$RESULTS_DIR"

need_cmd iperf3
build_release_bins
lab_up
W1_ADDR=${ADDR_OF[worker1]}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo nan; }
# Tasks of SERVICE per node hostname: "HOST COUNT" lines (running tasks only).
tasks_per_node() {
  swarmctl service ps "$1" --format json | python3 -c '
import json, sys
names = dict(l.split() for l in open(sys.argv[1]))
c = {}
for t in json.load(sys.stdin):
    if t["status"]["state"] == "running":
        h = names.get(t["node_id"], t["node_id"]); c[h] = c.get(h, 0) + 1
for h, n in c.items(): print(h, n)' "$BASE/nodeids"
}
rss_sample() { # PHASE MODE RUN [SERVICE]   appends one RSS line per node
  local phase=$1 mode=$2 run=$3 svc=${4:-} n
  declare -A cnt=()
  if [ -n "$svc" ]; then while read -r h c; do cnt[$h]=$c; done < <(tasks_per_node "$svc"); fi
  for n in $NODES; do
    echo "RSS phase=$phase mode=$mode run=$run node=$n role=${ROLE_OF[$n]} kb=$(rss_kb "${PID_OF[$n]}") tasks=${cnt[$n]:-0}" >>"$RAW"
  done
}
# After `service rm`: no task left in the store, no task namespace and no overlay sandbox on any
# node (but the ingress network's: every node keeps it for the routing mesh). Prints the
# milliseconds it took.
INGRESS_OV=ov_$(swarmctl network inspect ingress --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"][:9])')
wait_gone() { # START_MS
  local tasks files
  for _ in $(seq 1 300); do   # 60 s at most
    tasks=$({ swarmctl task ls --format json 2>/dev/null || echo '"service_id"'; } | grep -c '"service_id"' || true)
    files=$(find "$LABDIR/nodes" -maxdepth 3 \( -path '*/netns/tk_*' -o -path '*/netns/ov_*' \) ! -name "$INGRESS_OV" 2>/dev/null | wc -l)
    if [ "$tasks" -eq 0 ] && [ "$files" -eq 0 ]; then echo $(( $(now_ms) - $1 )); return 0; fi
    sleep 0.2
  done
  die "tasks still there 60 s after service rm ($tasks in the store, $files namespaces/sandboxes)"
}

sleep 3   # let the fresh cluster settle (joins, first heartbeats) before the first RSS sample
node_ids >"$BASE/nodeids"
rss_sample fresh - 0

# ------------------------------------------------------------------------------ 1. throughput
# A server task on worker1 and a client task on worker2, both `sleep`, on a new overlay network:
# prints "SERVER_ID SERVER_IP SERVER_NETNS CLIENT_NETNS".
task_pair() { # NETWORK SERVER CLIENT [EXTRA service create ARGS...]
  local net=$1 srv=$2 cli=$3 sid sip cid
  shift 3
  swarmctl network create -d overlay "$net" >/dev/null || die "cannot create overlay network $net"
  swarmctl service create --runtime process -d --name "$srv" "$@" --stop-grace-period 1s --network "$net" --constraint node.hostname==worker1 sleep 100000 >/dev/null
  swarmctl service create --runtime process -d --name "$cli" "$@" --stop-grace-period 1s --network "$net" --constraint node.hostname==worker2 sleep 100000 >/dev/null
  wait_running "$srv" 1 30
  wait_running "$cli" 1 30
  read -r sid sip _ < <(tasks_of "$srv")
  read -r cid _ < <(tasks_of "$cli")
  { [ -e "$(tk_ns worker1 "$sid")" ] && [ -e "$(tk_ns worker2 "$cid")" ]; } || die "task namespaces of $srv and $cli not found"
  echo "$sid $sip $(tk_ns worker1 "$sid") $(tk_ns worker2 "$cid")"
}
read -r SRV_ID SRV_IP NS_SRV NS_CLI < <(task_pair "$OVNET" ipsrv ipcli)
[ -n "$NS_CLI" ] || die "no task pair on $OVNET"
# (not /sys/class/net: sysfs shows the namespace it was mounted in, not the one entered)
mtu_of() { nsenter --net="$1" ip -o link show eth0 2>/dev/null | sed -n 's/.* mtu \([0-9]*\) .*/\1/p' | grep . || echo '?'; }
echo "MTU kind=underlay mtu=$(mtu_of "$LABDIR/netns/worker1")" >>"$RAW"
echo "MTU kind=overlay mtu=$(mtu_of "$NS_SRV")" >>"$RAW"
log "overlay: server task ${SRV_ID:0:12} on worker1 at $SRV_IP, client task on worker2; underlay: worker1 at $W1_ADDR"
if [ "$HANDMADE" = 1 ]; then
  read -r _ RR_SRV_IP NS_RR_SRV NS_RR_CLI < <(task_pair dprr rrsrv rrcli --endpoint-mode dnsrr)
  [ -n "$NS_RR_CLI" ] || die "no task pair on dprr"
  echo "MTU kind=overlay-dnsrr mtu=$(mtu_of "$NS_RR_SRV")" >>"$RAW"
  echo "TABLES kind=overlay n=$(nsenter --net="$NS_SRV" nft list tables | wc -l) kind2=overlay-dnsrr n2=$(nsenter --net="$NS_RR_SRV" nft list tables | wc -l)" >>"$RAW"
fi

# ------------------------------------------------------------------------------ hand-made VXLAN
hm_up() {
  local i peer nsx
  HM=hm${LAB#bench}
  for nsx in ul n1 n2 sb1 sb2 t1 t2; do
    [ ! -e "/var/run/netns/$HM-$nsx" ] || die "namespace $HM-$nsx exists already (not this run's)"
  done
  for nsx in ul n1 n2 sb1 sb2 t1 t2; do ip netns add "$HM-$nsx"; ip -n "$HM-$nsx" link set lo up; done
  brnf_off() { local k; for k in iptables ip6tables arptables; do ip netns exec "$1" sysctl -qw "net.bridge.bridge-nf-call-$k=0" 2>/dev/null || true; done; }
  ip -n "$HM-ul" link add ulbr0 type bridge && ip -n "$HM-ul" link set ulbr0 up && brnf_off "$HM-ul"
  for i in 1 2; do
    peer=$((3 - i))
    ip -n "$HM-ul" link add "p$i" mtu 1500 type veth peer name eth0 netns "$HM-n$i" mtu 1500
    ip -n "$HM-ul" link set "p$i" master ulbr0 up
    ip -n "$HM-n$i" addr add "198.18.255.$i/24" dev eth0
    ip -n "$HM-n$i" link set eth0 up
    ip -n "$HM-n$i" link add vxlan0 mtu 1450 type vxlan id 4242 local "198.18.255.$i" remote "198.18.255.$peer" dstport 4789
    ip -n "$HM-n$i" link set vxlan0 netns "$HM-sb$i"
    ip -n "$HM-sb$i" link add br0 mtu 1450 type bridge && brnf_off "$HM-sb$i"
    ip -n "$HM-sb$i" link add veth0 mtu 1450 type veth peer name eth0 netns "$HM-t$i" mtu 1450
    ip -n "$HM-sb$i" link set vxlan0 master br0 up
    ip -n "$HM-sb$i" link set veth0 master br0 up
    ip -n "$HM-sb$i" link set br0 up
    ip -n "$HM-t$i" addr add "198.19.254.$i/24" dev eth0
    ip -n "$HM-t$i" link set eth0 up
  done
  ip netns exec "$HM-t2" ping -c 1 -W 2 198.19.254.1 >/dev/null || die "hand-made overlay: task 2 cannot reach task 1"
}
if [ "$HANDMADE" = 1 ]; then
  hm_up   # (not in an `||` list: set -e must stop it at the first failing command)
  echo "MTU kind=hm-underlay mtu=$(mtu_of "/var/run/netns/$HM-n1")" >>"$RAW"
  echo "MTU kind=hm-overlay mtu=$(mtu_of "/var/run/netns/$HM-t1")" >>"$RAW"
  log "hand-made reference: namespaces $HM-{ul,n1,n2,sb1,sb2,t1,t2}"
fi

listening() { nsenter --net="$1" ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; }
iperf_json() { # reads iperf3 -J on stdin: "Mbit/s retransmits sender-CPU% receiver-CPU%"
  python3 -c '
import json, sys
try:
    d = json.load(sys.stdin); e = d["end"]; c = e.get("cpu_utilization_percent", {})
    print("%.0f %d %.0f %.0f" % (e["sum_received"]["bits_per_second"] / 1e6, e["sum_sent"].get("retransmits", 0),
                                 c.get("host_total", 0), c.get("remote_total", 0)))
except Exception as ex:
    print("nan nan nan nan"); print("iperf3 output unusable: %s" % ex, file=sys.stderr)'
}
# Each node's eth0 hands what it receives to its own end's CPU (1), or to whichever CPU took the
# frame (0: the kernel's default).
rps_mode() { # 0|1
  local node cpu mask
  for node in worker1 worker2; do
    mask=0
    if [ "$1" = 1 ]; then
      if [ $node = worker2 ]; then cpu=${AFFINITY%%,*}; else cpu=${AFFINITY##*,}; fi
      mask=$(printf '%x' $((1 << cpu)))
    fi
    nsenter --net="$LABDIR/netns/$node" unshare -m sh -c \
      "mount -t sysfs sysfs /sys && echo $mask >/sys/class/net/eth0/queues/rx-0/rps_cpus" ||
      die "cannot set rps_cpus=$mask on $node's eth0"
  done
}
iperf_once() { # underlay|overlay|hm-underlay|hm-overlay|overlay-dnsrr RUN RPS
  local kind=$1 run=$2 rps=$3 srv srv_ns out cli_ns dst
  case $kind in
    underlay)
      srv_ns=$LABDIR/netns/worker1
      bg_start timeout 30 swarmctl lab exec worker1 --name "$LAB" -- iperf3 -s -1 -p "$PORT" >>"$BASE/iperf-server.log" 2>&1 ;;
    overlay) srv_ns=$NS_SRV ;;
    hm-underlay) srv_ns=/var/run/netns/$HM-n1; cli_ns=/var/run/netns/$HM-n2; dst=198.18.255.1 ;;
    hm-overlay) srv_ns=/var/run/netns/$HM-t1; cli_ns=/var/run/netns/$HM-t2; dst=198.19.254.1 ;;
    overlay-dnsrr) srv_ns=$NS_RR_SRV; cli_ns=$NS_RR_CLI; dst=$RR_SRV_IP ;;
  esac
  [ "$kind" = underlay ] || bg_start timeout 30 nsenter --net="$srv_ns" iperf3 -s -1 -p "$PORT" >>"$BASE/iperf-server.log" 2>&1
  srv=$BGPID
  for _ in $(seq 1 50); do listening "$srv_ns" && break; sleep 0.1; done
  listening "$srv_ns" || die "iperf3 server ($kind) not listening after 5 s: $(tail -n 3 "$BASE/iperf-server.log")"
  if [ "$kind" = underlay ]; then
    out=$(timeout $((DURATION + 20)) swarmctl lab exec worker2 --name "$LAB" -- iperf3 -c "$W1_ADDR" -p "$PORT" -t "$DURATION" ${AFFINITY:+-A "$AFFINITY"} -J 9>&- | iperf_json) || true
  elif [ "$kind" = overlay ]; then
    out=$(timeout $((DURATION + 20)) nsenter --net="$NS_CLI" iperf3 -c "$SRV_IP" -p "$PORT" -t "$DURATION" ${AFFINITY:+-A "$AFFINITY"} -J 9>&- | iperf_json) || true
  else
    out=$(timeout $((DURATION + 20)) nsenter --net="$cli_ns" iperf3 -c "$dst" -p "$PORT" -t "$DURATION" ${AFFINITY:+-A "$AFFINITY"} -J 9>&- | iperf_json) || true
  fi
  bg_stop "$srv"
  read -r mbps retr cpus cpur <<<"$out"
  echo "IPERF kind=$kind run=$run rps=$rps mbps=$mbps retr=$retr cpu_snd=$cpus cpu_rcv=$cpur" >>"$RAW"
  log "  $kind run $run (rps $rps): $mbps Mbit/s ($retr retransmits, CPU sender $cpus %, receiver $cpur %)"
}
log "1. TCP throughput worker2 -> worker1, $RUNS x $DURATION s each, underlay and overlay interleaved${AFFINITY:+, iperf3 -A $AFFINITY}"
RPS_MODES=0; [ "$RPS" = 1 ] && RPS_MODES="0 1"
for run in $(seq 1 "$RUNS"); do
  wait_quiet
  for rps in $RPS_MODES; do
    rps_mode "$rps"
    kinds=(underlay overlay)
    [ "$HANDMADE" = 1 ] && [ "$rps" = 0 ] && kinds+=(hm-underlay hm-overlay overlay-dnsrr)
    for k in $(seq 0 $((${#kinds[@]} - 1))); do   # order rotated every round
      iperf_once "${kinds[$(( (k + run - 1) % ${#kinds[@]} ))]}" "$run" "$rps"
    done
  done
done
rps_mode 0
t=$(now_ms)
swarmctl service rm ipsrv ipcli >/dev/null
[ "$HANDMADE" = 1 ] && swarmctl service rm rrsrv rrcli >/dev/null
wait_gone "$t" >/dev/null
if [ -n "$THROUGHPUT_ONLY" ]; then RUNS_CONV=0; else RUNS_CONV=$RUNS; fi

# ------------------------------------------------------------------------------ 2. + 3.
conv_once() { # MODE RUN
  local mode=$1 run=$2 svc="conv-$1-$2" t0 t1 t2 n polls=0 gone
  local net=()
  case $mode in none) net=(--network none) ;; bridge) net=() ;; overlay) net=(--network "$OVNET") ;; esac
  wait_quiet
  rss_sample before "$mode" "$run"
  t0=$(now_ms)
  swarmctl service create --runtime process -d --name "$svc" --replicas "$REPLICAS" --stop-grace-period 1s "${net[@]}" sleep 100000 >/dev/null 9>&- ||
    die "service create $svc failed"
  t1=$(now_ms)
  while :; do   # every 50 ms, at most 1200 polls and 60 s
    polls=$((polls + 1))
    n=$(running_count "$svc")
    [ "$n" -ge "$REPLICAS" ] && break
    if [ $polls -ge 1200 ] || [ $(( $(now_ms) - t0 )) -ge 60000 ]; then die "$svc: $n of $REPLICAS RUNNING after 60 s"; fi
    sleep 0.05
  done
  t2=$(now_ms)
  sleep "$SETTLE"
  rss_sample after "$mode" "$run" "$svc"
  t=$(now_ms)
  swarmctl service rm "$svc" >/dev/null
  gone=$(wait_gone "$t")
  echo "CONV mode=$mode run=$run ack_ms=$((t1 - t0)) running_ms=$((t2 - t0)) polls=$polls gone_ms=$gone" >>"$RAW"
  log "  $mode run $run: create acked $((t1 - t0)) ms, $REPLICAS RUNNING $((t2 - t0)) ms ($polls polls); removed in $gone ms"
}
log "2./3. service create --replicas $REPLICAS -> all RUNNING, $RUNS rounds of none / bridge / overlay (order rotated)"
MODES=(none bridge overlay)
for run in $(seq 1 "$RUNS_CONV"); do
  for k in 0 1 2; do conv_once "${MODES[$(( (k + run - 1) % 3 ))]}" "$run"; done
done
END_NOTE="$(date -u +%FT%TZ), $(machine_note)"

# ------------------------------------------------------------------------------ results
SW_CONV=3042   # Docker Swarm, docker-swarm.sh on this machine kind, median of 3 (2026-11-29)
if [ -n "${SWARM_RESULTS:-}" ] && [ -r "$SWARM_RESULTS" ]; then
  SW_CONV=$(grep -F "service create x50 -> all Running" "$SWARM_RESULTS" | awk '{print $NF}' | head -1)
fi
export SW_CONV RUNS DURATION REPLICAS SETTLE LAB SUBNET START_NOTE END_NOTE AFFINITY THROUGHPUT_ONLY RPS
run_info
IPERF_VERSION=$(iperf3 --version 2>/dev/null | head -1 || true)
export IPERF_VERSION
python3 - "$RAW" >"$RESULTS_DIR/dataplane.md" <<'PY'
import os, sys, statistics as st

def kv(line):
    parts = line.split()
    return parts[0], dict(p.split("=", 1) for p in parts[1:])

rows = [kv(l) for l in open(sys.argv[1]) if l.strip()]
E = os.environ
sys.path.insert(0, os.environ["BENCH_DIR"])
from benchfmt import num, med, f0, f2, f3  # noqa: E402

print("# Data plane on a lab (bench/dataplane.sh)")
print()
print(f"- machine: {E['MACHINE']}; {E['IPERF_VERSION']}")
print(f"- Shoal {E['REV']}, release build; lab `{E['LAB']}` on {E['SUBNET']}: 3 managers + 2 workers, "
      "swarmd --data-plane kernel, default timings")
print(f"- start: {E['START_NOTE']}")
print(f"- end:   {E['END_NOTE']}")
print()

# 1. throughput
ip = [d for k, d in rows if k == "IPERF"]
mtu = {d["kind"]: d["mtu"] for k, d in rows if k == "MTU"}
aff = E.get("AFFINITY", "")
print(f"## 1. TCP throughput worker2 → worker1 (iperf3, 1 stream, {E['DURATION']} s per run, "
      f"{E['RUNS']} runs each, interleaved{', iperf3 -A ' + aff + ' (client, server CPU)' if aff else ''})")
print()
def cost(d):   # iperf3's sender + receiver process CPU per KiB carried, ns
    kibps = num(d["mbps"]) * 1e6 / 8 / 1024
    return (num(d["cpu_snd"]) + num(d["cpu_rcv"])) / 100 * 1e9 / kibps if kibps == kibps and kibps else float("nan")
for rps in sorted({d.get("rps", "0") for d in ip}):
    sel = [d for d in ip if d.get("rps", "0") == rps]
    if rps == "1":
        print("**With RPS**: each node's eth0 steers what it receives to its own end's CPU, as two "
              "machines would split the work (the CPU ns per KiB then misses the receive-side "
              "softirq work, which no process is charged for).")
    else:
        print("**Without RPS** (the kernel's default: the receive side runs on the sender's CPU).")
    print()
    print("| path | MTU | Mbit/s per run | median Mbit/s | retransmits (median) | CPU % sender / receiver (median) | CPU ns per KiB (median) | vs underlay |")
    print("|---|---:|---|---:|---:|---|---:|---:|")
    base = med([num(d["mbps"]) for d in sel if d["kind"] == "underlay"])
    base_cost = med([cost(d) for d in sel if d["kind"] == "underlay"])
    for kind, what in (("underlay", "underlay: node namespace → node namespace (veth, lab bridge)"),
                       ("overlay", "overlay: task → task (VXLAN between the nodes)"),
                       ("hm-underlay", "hand-made underlay: namespace → namespace (veth, a bridge of its own)"),
                       ("hm-overlay", "hand-made overlay: namespace → namespace (VXLAN made with `ip`)"),
                       ("overlay-dnsrr", "overlay, dnsrr: task → task on a network without VIPs (no table in the tasks)")):
        ds = [d for d in sel if d["kind"] == kind]
        if not ds:
            continue
        m = med([num(d["mbps"]) for d in ds])
        print(f"| {what} | {mtu.get(kind, '?')} | {' '.join(f0(num(d['mbps'])) for d in ds)} | {f0(m)} | "
              f"{f0(med([num(d['retr']) for d in ds]))} | {f0(med([num(d['cpu_snd']) for d in ds]))} / "
              f"{f0(med([num(d['cpu_rcv']) for d in ds]))} | {f0(med([cost(d) for d in ds]))} | "
              f"{f2(m / base) if base == base and base else 'n/a'} |")
    print()
    runs = sorted({d["run"] for d in sel}, key=int)
    pair = {}
    for r in runs:
        u = [d for d in sel if d["run"] == r and d["kind"] == "underlay"]
        o = [d for d in sel if d["run"] == r and d["kind"] == "overlay"]
        if u and o and num(u[0]["mbps"]):
            pair[r] = (num(o[0]["mbps"]) / num(u[0]["mbps"]), cost(u[0]) / cost(o[0]) if cost(o[0]) else float("nan"))
    print(f"Overlay / underlay per round (same round): throughput {' '.join(f2(v[0]) for v in pair.values())} "
          f"(median **{f2(med([v[0] for v in pair.values()]))}**); CPU cost per byte, underlay / overlay "
          f"{' '.join(f2(v[1]) for v in pair.values())} (median **{f2(med([v[1] for v in pair.values()]))}**; "
          f"ratio of the medians {f2(base_cost / med([cost(d) for d in sel if d['kind'] == 'overlay']))}).")
    print()
    def per_round(a, b):   # a / b per round: throughput ratios and CPU cost per byte b / a
        out = []
        for r in runs:
            x = [d for d in sel if d["run"] == r and d["kind"] == a]
            y = [d for d in sel if d["run"] == r and d["kind"] == b]
            if x and y and num(y[0]["mbps"]) and cost(x[0]):
                out.append((num(x[0]["mbps"]) / num(y[0]["mbps"]), cost(y[0]) / cost(x[0])))
        return out
    hm = per_round("hm-overlay", "hm-underlay")
    if hm:
        sv = per_round("overlay", "hm-overlay")
        su = per_round("underlay", "hm-underlay")
        rr = per_round("overlay-dnsrr", "hm-overlay")
        vt = per_round("overlay", "overlay-dnsrr")
        tb = [d for k, d in rows if k == "TABLES"]
        if tb:
            print(f"nftables tables in the server task's namespace: {tb[0]['n']} on the VIP network, "
                  f"{tb[0]['n2']} on the dnsrr one.")
            print()
        for label, xs in (("Hand-made overlay / hand-made underlay (what VXLAN costs here)", hm),
                          ("Shoal's overlay / hand-made overlay", sv),
                          ("Shoal's overlay without VIPs (dnsrr) / hand-made overlay", rr),
                          ("Shoal's overlay / the same without VIPs (what the tasks' VIP tables cost)", vt),
                          ("Shoal's underlay / hand-made underlay", su)):
            print(f"{label}, per round: throughput {' '.join(f2(v[0]) for v in xs)} (median "
                  f"**{f2(med([v[0] for v in xs]))}**); CPU cost per byte {' '.join(f2(v[1]) for v in xs)} "
                  f"(median **{f2(med([v[1] for v in xs]))}**).")
            print()

# 2. convergence
if E.get("THROUGHPUT_ONLY"):
    print("(2. and 3. skipped: THROUGHPUT_ONLY=1)")
    sys.exit(0)
cv = [d for k, d in rows if k == "CONV"]
R = E["REPLICAS"]
sw = num(E["SW_CONV"])
print(f"## 2. `service create -d --replicas {R}` → {R} RUNNING (polled every 50 ms), {E['RUNS']} rounds")
print()
print(f"| tasks' network | per run (ms) | median | max | vs none (same run) | create acked (median) | `service rm` → tasks gone (median) |")
print("|---|---|---:|---:|---:|---:|---:|")
meds = {}
for mode in ("none", "bridge", "overlay"):
    ds = sorted([d for d in cv if d["mode"] == mode], key=lambda d: int(d["run"]))
    meds[mode] = med([num(d["running_ms"]) for d in ds])
for mode, what in (("none", "`--network none` (baseline: namespaces, no links)"),
                   ("bridge", "default bridge (no flag)"), ("overlay", "overlay (`--network dpnet`)")):
    ds = sorted([d for d in cv if d["mode"] == mode], key=lambda d: int(d["run"]))
    xs = [num(d["running_ms"]) for d in ds]
    print(f"| {what} | {' '.join(f0(x) for x in xs)} | {f0(meds[mode])} ms | {f0(max(xs) if xs else float('nan'))} ms | "
          f"{f2(meds[mode] / meds['none']) if meds['none'] else 'n/a'} | {f0(med([num(d['ack_ms']) for d in ds]))} ms | "
          f"{f0(med([num(d['gone_ms']) for d in ds]))} ms |")
print(f"| Docker Swarm anchor (busybox containers, no network; not this run) | | {f0(sw)} ms | | | | |")
print()
print(f"Shoal / Swarm anchor: none {f2(meds['none'] / sw)}, bridge {f2(meds['bridge'] / sw)}, "
      f"overlay {f2(meds['overlay'] / sw)} (side by side, not the same run).")
print()

# 3. memory
rss = [d for k, d in rows if k == "RSS"]
fresh = {d["node"]: num(d["kb"]) for d in rss if d["phase"] == "fresh"}
nodes = list(fresh)
role = {d["node"]: d["role"] for d in rss}
print(f"## 3. swarmd VmRSS with {R} tasks (about {int(R) // len(nodes) if nodes else '?'} per node), "
      f"sampled {E['SETTLE']} s after all were RUNNING")
print()
print("Baseline: the same swarmd with 0 tasks, just before each run's `service create`. "
      "Medians over the runs; MiB = 1024 KiB.")
print()
print("| node | network | RSS fresh, no task yet (MiB) | RSS 0 tasks (MiB) | RSS with tasks (MiB) | tasks | Δ per task vs 0 tasks (KiB) | Δ per task vs fresh (KiB) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
summary = {}
for mode in ("none", "bridge", "overlay"):
    for n in nodes:
        runs = sorted({d["run"] for d in rss if d["mode"] == mode})
        b, a, t, per = [], [], [], []
        for r in runs:
            bb = [num(d["kb"]) for d in rss if d["phase"] == "before" and d["mode"] == mode and d["run"] == r and d["node"] == n]
            aa = [d for d in rss if d["phase"] == "after" and d["mode"] == mode and d["run"] == r and d["node"] == n]
            if not bb or not aa:
                continue
            b.append(bb[0]); a.append(num(aa[0]["kb"])); t.append(int(aa[0]["tasks"]))
            if t[-1]:
                per.append((a[-1] - b[-1]) / t[-1])
        summary.setdefault(mode, {})[n] = med(per)
        vs_fresh = (med(a) - fresh[n]) / med(t) if t and med(t) else float("nan")
        print(f"| {n} ({role[n]}) | {mode} | {fresh[n] / 1024:.1f} | {med(b) / 1024:.1f} | {med(a) / 1024:.1f} | "
              f"{'/'.join(str(x) for x in t)} | {f0(med(per))} | {f0(vs_fresh)} |")
print()
print("RSS with 0 tasks before each run, in the order of the runs (MiB; first: fresh):")
print()
for n in nodes:
    seq = [fresh[n]] + [num(d["kb"]) for d in rss if d["phase"] == "before" and d["node"] == n]
    print(f"- {n}: {' '.join(f'{x / 1024:.1f}' for x in seq)}")
print()
for mode in ("none", "bridge", "overlay"):
    w = [v for n, v in summary.get(mode, {}).items() if role[n] == "worker"]
    m = [v for n, v in summary.get(mode, {}).items() if role[n] == "manager"]
    print(f"- {mode}: Δ per task, workers {' / '.join(f0(x) for x in w)} KiB, managers {' / '.join(f0(x) for x in m)} KiB")
PY
cat "$RESULTS_DIR/dataplane.md"
