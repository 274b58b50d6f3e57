#!/usr/bin/env bash
# (i) Service load balancing (issue 7): the VIP and the routing mesh on one `swarmctl lab`
# (3 managers + 2 workers, release swarmd --data-plane kernel --lb-backend LB_BACKEND), and the
# programming cost of the balancers, all in one run:
#
# 1. HTTP with a new TCP connection per request (wrk -t1 -cCONNS -dDURATION --latency
#    -H 'Connection: close', GET /name of whoami), RUNS rounds, the four paths interleaved in
#    every round (order rotated). Service `web`: 5 whoami replicas on the overlay network lp_net,
#    --publish 8080; service `client`: one whoami task on lp_net pinned to worker1.
#    direct:      wrk in the client task's network namespace (nsenter) -> one web task's lp_net
#                 address:8080, a task on worker2 (VXLAN), no balancer;
#    vip:         the same client task -> web's VIP on lp_net:8080 (worker1's lp_net balancer,
#                 round robin over the 5 tasks);
#    mesh-local:  wrk in worker1's node namespace (`swarmctl lab exec`) -> localhost:PUBLISHED
#                 (routing mesh: ingress_sbox, ingress balancer, ingress overlay);
#    mesh-remote: the same, to worker2's lab address:PUBLISHED.
#    mesh-traffic-local: the same, to worker2's lab address:LOCAL_PUBLISHED, the port of service
#                 `near` (one whoami on worker2, --publish …,traffic=local, issue 22): worker2's
#                 node DNATs straight to its own task, no ingress sandbox, no SNAT.
#    Requests/s, p50, p99 (medians over the runs) and ratios to direct; for the balanced paths
#    the balancer's connection counters (network inspect --lb) before and after each run.
# 2. One backend change: `service scale web=6` then back to `web=5`, RUNS times each. The clock
#    starts just before the command; three pollers then run side by side until each is satisfied
#    (at most 30 s): `service ps web` (6, resp. 5, tasks running), `network inspect lp_net --lb`
#    (every node with a balancer for lp_net lists 6, resp. 5, backends for web) and likewise for
#    `ingress` (all 5 nodes). Each poll is one swarmctl run (one RPC; the managers ask every
#    node's agent, which lists its kernel table); times are when the first poll that showed the
#    state returned. Propagation = balancers updated - task running.
# 3. netlib's own benchmark (netlib/benches/lb_program.rs, as bench/netlib-lb.sh runs it on
#    the host): 1,000 services x 10 backends from empty and one change among them, RUNS runs.
#
# Root only. The lab gets a unique name, a free /24 in 198.18.200-250.0 (or SUBNET) and its state
# in the run directory under /var/tmp; at exit, even on failure or Ctrl-C, `swarmctl lab down`
# removes it and the script's own processes are stopped by PID (lib.sh). Installs wrk with apt
# when missing. All traffic stays inside the lab's namespaces.
#
# Env: RUNS=3 DURATION=5 CONNS=8 LB_BACKEND=nftables SUBNET=198.18.X.0/24 NO_BUILD=1 (use the
# release binaries already in $CARGO_TARGET_DIR/release), QUIET_PCT/QUIET_MAX (lib.sh; default
# 60 s here), KEEP=1. Output: $RESULTS_DIR/lb.raw and lb.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-8}
LB_BACKEND=${LB_BACKEND:-nftables}
QUIET_MAX=${QUIET_MAX:-60}
NET=lp_net
T_START=$(date +%s)

lab_init lb   # root; at exit: lab down, our processes by PID, $BASE
RAW=$BASE/lb.raw
: >"$RAW"
mkdir -p "$RESULTS_DIR"

need_cmd wrk
bash "$REPO/deploy/deps.sh"   # nft, for the netlib bench
build_release_bins

# ------------------------------------------------------------------------------ 3. netlib
# Built and run first: its compile must not overlap the lab's measurements.
log "building netlib's lb_program bench"
exe=""
for i in 1 2 3; do   # another engineer's half-edited file can break a build: retry
  exe=$(cd "$REPO" && cargo bench -q -p shoal-netlib --bench lb_program --no-run --message-format=json 2>>"$BASE/netlib.err" |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1) || true
  [ -n "$exe" ] && [ -x "$exe" ] && break
  log "bench build failed (attempt $i): $(tail -n 2 "$BASE/netlib.err" | tr '\n' ' '); retrying in 60 s"; exe=""; sleep 60
done
[ -n "$exe" ] || die "cannot build netlib's lb_program bench"
cp "$exe" "$BASE/bin/lb_program"
log "3. netlib: 1,000 services x 10 backends, $RUNS runs"
for run in $(seq 1 "$RUNS"); do
  wait_quiet
  timeout 300 "$BASE/bin/lb_program" 2>>"$BASE/netlib.err" 9>&- | grep '^|' | sed "s/^/NETLIB run=$run /" >>"$RAW" ||
    die "lb_program failed: $(tail -n 3 "$BASE/netlib.err")"
  log "  run $run: $(grep "^NETLIB run=$run " "$RAW" | head -2 | cut -d'|' -f2- | tr -s ' ' | tr '\n' ' ')"
done

# ------------------------------------------------------------------------------ the lab
export SHOAL_LAB_SWARMD_ARGS="--lb-backend $LB_BACKEND${SHOAL_LAB_SWARMD_ARGS:+ $SHOAL_LAB_SWARMD_ARGS}"
lab_up
sleep 2   # joins, first heartbeats
node_ids >"$BASE/nodeids"
W2_ID=$(awk '$2 == "worker2" {print $1}' "$BASE/nodeids")

swarmctl network create -d overlay "$NET" >/dev/null || die "cannot create overlay network $NET"
swarmctl service create --runtime process -d --name web --replicas 5 --publish 8080 --network "$NET" whoami >/dev/null
swarmctl service create --runtime process -d --name client --network "$NET" --constraint node.hostname==worker1 whoami --port 9000 >/dev/null
LOCAL_PUBLISHED=${LOCAL_PUBLISHED:-30999}
swarmctl service create --runtime process -d --name near --constraint node.hostname==worker2 \
  --publish "published=$LOCAL_PUBLISHED,target=8080,traffic=local" whoami >/dev/null
wait_running web 5 60
wait_running client 1 60
wait_running near 1 60
NETID=$(swarmctl network inspect "$NET" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
VIP=$(swarmctl service inspect web --format json | python3 -c '
import json, sys
print([v["addr"].split("/")[0] for v in json.load(sys.stdin)[0]["vips"] if v["network_id"] == sys.argv[1]][0])' "$NETID")
PUBLISHED=$(swarmctl service ls | awk '$2 == "web"' | sed -n 's/.*\*:\([0-9]*\)->8080\/tcp.*/\1/p' | head -1)
[ -n "$PUBLISHED" ] || die "no *:PORT->8080/tcp in: $(swarmctl service ls)"
tasks_of web "$NET" >"$BASE/webtasks"
# the direct target: a web task on worker2 (else any web task off worker1, else any)
read -r DIRECT_ID DIRECT_IP DIRECT_NODE < <({ awk -v n="$W2_ID" '$3 == n' "$BASE/webtasks"; grep -v " $(awk '$2 == "worker1" {print $1}' "$BASE/nodeids")\$" "$BASE/webtasks"; cat "$BASE/webtasks"; } | head -1)
DIRECT_HOST=$(awk -v n="$DIRECT_NODE" '$1 == n {print $2}' "$BASE/nodeids")
read -r CLI_ID _ < <(tasks_of client "$NET")
NS_CLI=$(tk_ns worker1 "$CLI_ID")
[ -e "$NS_CLI" ] || die "client task namespace not found: $NS_CLI"
echo "SETUP lab=$LAB subnet=$SUBNET backend=$LB_BACKEND net_id=$NETID vip=$VIP published=$PUBLISHED direct=$DIRECT_IP direct_node=$DIRECT_HOST client=${CLI_ID:0:12}" >>"$RAW"
log "web: VIP $VIP on $NET, published $PUBLISHED; direct target ${DIRECT_ID:0:12} at $DIRECT_IP on $DIRECT_HOST; client ${CLI_ID:0:12} on worker1"

# The poller of 2 (also used to wait until the balancers have settled): runs CMD (or nothing
# for "-"), then polls until SERVICE has N running tasks and every balancer of each NET lists N
# backends for it (on at least MIN_NODES nodes). Prints one line of k=v, ms since the start.
cat >"$BASE/lbpoll.py" <<'PY'
import json, subprocess, sys, threading, time
svc, target, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
nets = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[4:]]
GAP, LIMIT, MAXPOLLS = 0.005, 30.0, 3000   # 5 ms between one thread's polls; at most 30 s
def ctl(*a):
    return subprocess.run(["swarmctl", *a], capture_output=True, text=True, timeout=10).stdout
res, lock = {}, threading.Lock()
def rel():
    return round(time.time() * 1000 - t0)
def poller(key, check):
    polls = 0
    while rel() < LIMIT * 1000 and polls < MAXPOLLS:
        polls += 1
        start = rel()
        try:
            done = check()
        except Exception:
            done = False
        if done:
            with lock:
                res[key], res[key + "_from"] = rel(), start
            break
        time.sleep(GAP)
    with lock:
        res[key + "_polls"] = polls
def running_ok():
    ts = json.loads(ctl("service", "ps", svc, "--format", "json"))
    return sum(t["status"]["state"] == "running" for t in ts) == target
def lb_ok(net, min_nodes):
    first = []
    def check():
        d = json.loads(ctl("network", "inspect", net, "--lb", "--format", "json"))[0]
        ok = [n for n in d["nodes"]
              if not n["error"] and [len(s["backends"]) for s in n["services"] if s["name"] == svc] == [target]]
        if ok and not first:
            first.append(rel())
            with lock:
                res[net + "_first"] = first[0]
        return len(d["nodes"]) >= min_nodes and len(ok) == len(d["nodes"])
    return check
t0 = time.time() * 1000
if cmd != "-":
    r = subprocess.run(["swarmctl", *cmd.split()], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        sys.exit("%s failed: %s" % (cmd, r.stderr.strip()))
res["ack"] = rel()
ths = [threading.Thread(target=poller, args=("running", running_ok))]
ths += [threading.Thread(target=poller, args=(n, lb_ok(n, m))) for n, m in nets]
for t in ths:
    t.start()
for t in ths:
    t.join()
keys = ["ack", "running", "running_from", "running_polls"]
keys += [n + s for n, _ in nets for s in ("_first", "", "_from", "_polls")]
print(" ".join("%s=%s" % (k, res.get(k, "nan")) for k in keys))
if any(n not in res for n, _ in nets) or "running" not in res:
    sys.exit("not converged within %.0f s" % LIMIT)
PY
LP_NODES=$(swarmctl network inspect "$NET" --lb --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["nodes"]))')
poll() { timeout 60 python3 "$BASE/lbpoll.py" web "$1" "$2" "$NET:$LP_NODES" ingress:5 9>&-; }
poll 5 - >/dev/null || die "the balancers did not list web's 5 tasks within 30 s"
log "balancers ready: $NET on $LP_NODES nodes, ingress on 5"

# ------------------------------------------------------------------------------ 1. HTTP
# Sum of the connection counters of web's backends in NET's balancer on NODE.
lb_conns() { # NET NODE
  swarmctl network inspect "$1" --lb --node "$2" --format json 2>/dev/null | python3 -c '
import json, sys
try:
    n = json.load(sys.stdin)[0]["nodes"][0]
    print(sum(b["connections"] for s in n["services"] if s["name"] == "web" for b in s["backends"]))
except Exception:
    print("nan")'
}
wrk_once() { # PATH RUN
  local path=$1 run=$2 url lbnet="" lbnode="" out before=nan after=nan conns=- rps p50 p99 n err bad
  local wrk=(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H 'Connection: close')
  case $path in
    direct) url=http://$DIRECT_IP:8080/name ;;
    vip) url=http://$VIP:8080/name; lbnet=$NET; lbnode=worker1 ;;
    mesh-local) url=http://localhost:$PUBLISHED/name; lbnet=ingress; lbnode=worker1 ;;
    mesh-remote) url=http://${ADDR_OF[worker2]}:$PUBLISHED/name; lbnet=ingress; lbnode=worker2 ;;
    mesh-traffic-local) url=http://${ADDR_OF[worker2]}:$LOCAL_PUBLISHED/name ;;
  esac
  [ -n "$lbnet" ] && before=$(lb_conns "$lbnet" "$lbnode")
  if [ "$path" = direct ] || [ "$path" = vip ]; then
    out=$(timeout $((DURATION + 30)) nsenter --net="$NS_CLI" "${wrk[@]}" "$url" 2>&1 9>&-) || true
  else
    out=$(timeout $((DURATION + 30)) swarmctl lab exec worker1 --name "$LAB" -- "${wrk[@]}" "$url" 2>&1 9>&-) || true
  fi
  [ -n "$lbnet" ] && after=$(lb_conns "$lbnet" "$lbnode") && conns=$(awk -v a="$after" -v b="$before" 'BEGIN { print (a == "nan" || b == "nan") ? "nan" : a - b }')
  sed "s/^/# $path run $run: /" <<<"$out" >>"$RAW"
  read -r rps p50 p99 n err bad < <(wrk_parse <<<"$out")
  echo "WRK path=$path run=$run rps=$rps p50_ms=$p50 p99_ms=$p99 requests=$n errors=$err non2xx=$bad lb_conns=$conns url=$url" >>"$RAW"
  log "  $path run $run: $rps req/s, p50 $p50 ms, p99 $p99 ms ($n requests, $err socket errors, $bad non-2xx; balancer counted $conns connections)"
}
PATHS=(direct vip mesh-local mesh-remote mesh-traffic-local)
log "1. HTTP, a new connection per request: wrk -t1 -c$CONNS -d${DURATION}s, $RUNS rounds of ${PATHS[*]} (order rotated)"
for run in $(seq 1 "$RUNS"); do
  wait_quiet
  for k in "${!PATHS[@]}"; do wrk_once "${PATHS[$(( (k + run - 1) % ${#PATHS[@]} ))]}" "$run"; done
done

# ------------------------------------------------------------------------------ 2. propagation
log "2. one backend change -> every balancer: service scale web=6 / web=5, $RUNS times each"
for run in $(seq 1 "$RUNS"); do
  wait_quiet
  for n in 6 5; do
    line=$(poll "$n" "service scale web=$n -d") || die "scale web=$n: ${line:-no answer}"
    echo "PROP dir=$([ "$n" = 6 ] && echo up || echo down) run=$run $line" >>"$RAW"
    log "  web=$n run $run: $line"
    sleep 1
  done
done
END_NOTE="$(date -u +%FT%TZ), $(machine_note)"

# ------------------------------------------------------------------------------ results
run_info
WRK_VERSION=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2 || true)
export RUNS DURATION CONNS LB_BACKEND LAB SUBNET START_NOTE END_NOTE WRK_VERSION NET
python3 - "$RAW" >"$BASE/lb.md" <<'PY'
import os, sys, statistics as st

E = os.environ
rows = []
for line in open(sys.argv[1]):
    if not line.strip() or line.startswith("#"):
        continue
    kind, rest = line.split(" ", 1)
    if kind == "NETLIB":
        run, cells = rest.split(" ", 1)
        c = [x.strip() for x in cells.strip().strip("|").split("|")]
        rows.append((kind, {"run": run.split("=")[1], "what": c[0], "value": c[1]}))
    else:
        rows.append((kind, dict(p.split("=", 1) for p in rest.split())))
sys.path.insert(0, os.environ["BENCH_DIR"])
from benchfmt import num, med, f0, f2, f3  # noqa: E402
setup = [d for k, d in rows if k == "SETUP"][0]

print("# Service load balancing: VIP and routing mesh (bench/lb.sh)")
print()
print(f"- machine: {E['MACHINE']}; {E['WRK_VERSION']}")
print(f"- Shoal {E['REV']}, release build; lab `{E['LAB']}` on {E['SUBNET']}: 3 managers + 2 workers, "
      f"swarmd --data-plane kernel --lb-backend {E['LB_BACKEND']}, default timings")
print(f"- web: 5 × whoami on {E['NET']} (VIP {setup['vip']}), published {setup['published']}->8080; "
      f"client: whoami on worker1; direct target {setup['direct']} on {setup['direct_node']}")
print(f"- start: {E['START_NOTE']}")
print(f"- end:   {E['END_NOTE']}")
print()

wk = [d for k, d in rows if k == "WRK"]
print(f"## 1. HTTP, a new TCP connection per request (wrk -t1 -c{E['CONNS']} -d{E['DURATION']}s --latency "
      f"-H 'Connection: close', GET /name; {E['RUNS']} rounds, paths interleaved)")
print()
print("| path | req/s per run | req/s (median) | vs direct | p50 (median) | p99 (median) | p50 / p99 vs direct | balancer connections / requests | socket errors, non-2xx |")
print("|---|---|---:|---:|---:|---:|---|---:|---:|")
what = {"direct": "direct: client task → web task on " + setup["direct_node"] + " (overlay, no balancer)",
        "vip": "VIP: client task → web's VIP on " + E["NET"],
        "mesh-local": "routing mesh: worker1 → localhost:" + setup["published"],
        "mesh-remote": "routing mesh: worker1 → worker2's address:" + setup["published"],
        "mesh-traffic-local": "traffic=local: worker1 → worker2's address (its own task, no SNAT)"}
base = {}
for p in ("direct", "vip", "mesh-local", "mesh-remote", "mesh-traffic-local"):
    ds = sorted([d for d in wk if d["path"] == p], key=lambda d: int(d["run"]))
    m = {k: med([num(d[k]) for d in ds]) for k in ("rps", "p50_ms", "p99_ms")}
    if p == "direct":
        base = m
    cr = [num(d["lb_conns"]) / num(d["requests"]) for d in ds if d["lb_conns"] not in ("-", "nan")]
    errs = sum(int(d["errors"]) for d in ds), sum(int(d["non2xx"]) for d in ds)
    print(f"| {what[p]} | {' '.join(f0(num(d['rps'])) for d in ds)} | **{f0(m['rps'])}** | "
          f"**{f2(m['rps'] / base['rps'])}** | {f2(m['p50_ms'])} ms | {f2(m['p99_ms'])} ms | "
          f"{f2(m['p50_ms'] / base['p50_ms'])} / {f2(m['p99_ms'] / base['p99_ms'])} | "
          f"{f2(med(cr)) if cr else '–'} | {errs[0]}, {errs[1]} |")
print()

pr = [d for k, d in rows if k == "PROP"]
print(f"## 2. One backend change → every balancer (`service scale web=6`, then `web=5`; {E['RUNS']} runs each)")
print()
print("Milliseconds from just before the command until the first poll that showed the state returned "
      "(medians; per run in brackets).")
print()
print(f"| change | command acked | task running (up) / stopped (down) | {E['NET']}: first node | {E['NET']}: every node | "
      "ingress: first node | ingress: every node (5) | every balancer − task | one poll of inspect --lb (median) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for dr, label in (("up", "web=5 → 6 (a task starts)"), ("down", "web=6 → 5 (a task stops)")):
    ds = sorted([d for d in pr if d["dir"] == dr], key=lambda d: int(d["run"]))
    def col(k):
        xs = [num(d[k]) for d in ds]
        return f"{f0(med(xs))} ({' '.join(f0(x) for x in xs)})"
    allb = [max(num(d[E["NET"]]), num(d["ingress"])) for d in ds]
    delta = [a - num(d["running"]) for a, d in zip(allb, ds)]
    polld = [num(d[k]) - num(d[k + "_from"]) for d in ds for k in (E["NET"], "ingress")]
    print(f"| {label} | {col('ack')} | {col('running')} | {col(E['NET'] + '_first')} | {col(E['NET'])} | "
          f"{col('ingress_first')} | {col('ingress')} | {f0(med(delta))} ({' '.join(f0(x) for x in delta)}) | {f0(med(polld))} |")
print()

nl = [d for k, d in rows if k == "NETLIB"]
print(f"## 3. netlib: programming the balancer (cargo bench -p shoal-netlib --bench lb_program, {E['RUNS']} runs)")
print()
print("| | per run | median |")
print("|---|---|---:|")
order = []
for d in nl:
    if d["what"] not in order:
        order.append(d["what"])
for w in order:
    vs = [d["value"] for d in nl if d["what"] == w]
    unit = vs[0].split()[-1] if " " in vs[0] else vs[0][-1:]
    m = med([num(v) for v in vs])
    print(f"| {w} | {' '.join(vs)} | {m:.4g} {unit} |" if unit != "x" else f"| {w} | {' '.join(vs)} | {m:.4g}x |")
PY
cp "$RAW" "$RESULTS_DIR/lb.raw"
cp "$BASE/lb.md" "$RESULTS_DIR/lb.md"
cat "$RESULTS_DIR/lb.md"
log "done in $(( $(date +%s) - T_START )) s"
