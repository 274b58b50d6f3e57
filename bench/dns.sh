#!/usr/bin/env bash
# (j) The embedded DNS (issue 8): queries/s of the resolver at 127.0.0.11 in a task, against an
# unbound serving the same names, on one `swarmctl lab` (3 managers + 2 workers, each a release
# swarmd --data-plane kernel in its own network namespace; lab nodes run --dns-upstream none).
#
# Set-up: overlay network lp_net; service `web` (5 whoami replicas on lp_net) and service
# `client` (one whoami task on lp_net, pinned to worker1). In the client task's network
# namespace (nsenter --net) the script starts its own unbound on 127.0.0.12:53 (num-threads 1,
# local-zone "." static, no forwarding, no root hints used, no remote control; config, pidfile
# and log in the run directory) serving the same names with the same addresses as Shoal, built
# from `service ps/inspect web --format json` and `network inspect lp_net`: web (the VIP),
# tasks.web (5 addresses), web.<slot>.<id>, web.<slot>.<id>.lp_net, the PTR of each task address,
# all with TTL 0 like Shoal's. Shoal's resolver for that task lives in worker1's swarmd.
#
# 0. Correctness first: every query of the query file, sent to both servers from the task's
#    namespace (a small UDP client in Python), must give NOERROR and exactly the expected
#    answers (retried for up to 20 s while the managers' tables reach worker1); and
#    `swarmctl task exec client -- getent hosts web` (the task's own resolv.conf) gives the VIP.
# 1. Throughput: dnsperf (UDP, 1 thread) in the client task's namespace, the same query file for
#    both servers (per task: web A, tasks.web A, web.<slot>.<id> A, web.<slot>.<id>.lp_net A,
#    PTR of its address, web AAAA: 30 queries, looped), -l DURATION -c CLIENTS -q OUTSTANDING,
#    no rate limit; RUNS rounds, Shoal and unbound interleaved (order alternating). Queries/s,
#    average/min/max/stddev latency (dnsperf 2.10 has no percentiles), lost queries, and the CPU
#    used meanwhile by the server process (worker1's swarmd resp. unbound; /proc/PID/stat), by
#    dnsperf (bash `time`) and by the whole machine (/proc/stat).
# 2. Latency at a fixed rate: dnsperf -v -Q LAT_QPS -l LAT_DURATION (one line per response with
#    its latency): p50/p90/p99/p99.9/max per run, RUNS rounds, interleaved.
#
# dnsperf, unbound, swarmd and everyone else share the machine's cores: dnsperf itself needs
# about one core, so neither server gets the whole machine. Root only. All DNS traffic stays on
# the loopback of the client task's namespace; no query goes to this machine's resolvers. The lab
# gets a unique name, a free /24 in 198.18.200-250.0 (or SUBNET) and its state in the run
# directory; at exit, even on failure or Ctrl-C, `swarmctl lab down` removes it and unbound is
# stopped by PID (lib.sh). Installs dnsperf and unbound with apt when missing (the script never
# uses a system unbound the package may start, nor its configuration).
#
# Env: RUNS=3 DURATION=10 CLIENTS=8 OUTSTANDING=200 LAT_QPS=2000 LAT_DURATION=5
# SUBNET=198.18.X.0/24 NO_BUILD=1 (use the release binaries already in
# $CARGO_TARGET_DIR/release), QUIET_PCT/QUIET_MAX (lib.sh; default 60 s here), KEEP=1.
# Output: $RESULTS_DIR/dns.raw and dns.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
LAT_QPS=${LAT_QPS:-2000}
LAT_DURATION=${LAT_DURATION:-5}
QUIET_MAX=${QUIET_MAX:-60}
NET=lp_net
SHOAL_ADDR=127.0.0.11
UNBOUND_ADDR=127.0.0.12
T_START=$(date +%s)

lab_init dns   # root; at exit: lab down, our processes (unbound) by PID, $BASE
RAW=$BASE/dns.raw
: >"$RAW"
mkdir -p "$RESULTS_DIR" "$BASE/dns"

need_cmd dnsperf
need_cmd unbound
build_release_bins
lab_up
sleep 2   # joins, first heartbeats

# ------------------------------------------------------------------------------ services
swarmctl network create -d overlay "$NET" >/dev/null || die "cannot create overlay network $NET"
swarmctl service create --runtime process -d --name web --replicas 5 --network "$NET" whoami >/dev/null || die "cannot create web"
swarmctl service create --runtime process -d --name client --network "$NET" --constraint node.hostname==worker1 \
  whoami --port 9000 >/dev/null || die "cannot create client"
wait_running web 5 60
wait_running client 1 60
read -r CLI_ID _ < <(tasks_of client "$NET")
NS_CLI=$(tk_ns worker1 "$CLI_ID")
[ -e "$NS_CLI" ] || die "client task namespace not found: $NS_CLI"
SHOAL_PID=${PID_OF[worker1]}
[ "$(cat "/proc/$SHOAL_PID/comm" 2>/dev/null)" = swarmd ] || die "worker1's pid $SHOAL_PID (lab.json) is not a swarmd"

# The names and their answers, from the control plane: the query file, the expected answers and
# unbound's configuration.
swarmctl service ps web --format json >"$BASE/dns/web-ps.json"
swarmctl service inspect web --format json >"$BASE/dns/web-inspect.json"
swarmctl network inspect "$NET" --format json >"$BASE/dns/net.json"
python3 - "$BASE/dns" "$NET" "$UNBOUND_ADDR" <<'PY' || die "cannot derive the names of web"
import ipaddress, json, sys
d, net, ub = sys.argv[1:4]
netid = json.load(open(f"{d}/net.json"))[0]["id"]
vip = [v["addr"].split("/")[0] for v in json.load(open(f"{d}/web-inspect.json"))[0]["vips"]
       if v["network_id"] == netid][0]
tasks = []
for t in json.load(open(f"{d}/web-ps.json")):
    addrs = [n["addresses"][0].split("/")[0] for n in t["networks"] if n["network"] == net and n["addresses"]]
    if t["status"]["state"] == "running" and addrs:
        tasks.append((t["name"].lower(), addrs[0]))
tasks.sort(key=lambda t: ipaddress.ip_address(t[1]))
ips = [ip for _, ip in tasks]
queries = []   # (name, type, expected answers)
for name, ip in tasks:
    queries += [("web", "A", [vip]), ("tasks.web", "A", ips), (name, "A", [ip]), (f"{name}.{net}", "A", [ip]),
                (ipaddress.ip_address(ip).reverse_pointer, "PTR", [f"{name}.{net}."]), ("web", "AAAA", [])]
with open(f"{d}/queries.txt", "w") as f:
    f.writelines(f"{q} {t}\n" for q, t, _ in queries)
json.dump({"vip": vip, "tasks": tasks, "queries": queries}, open(f"{d}/expected.json", "w"))
data = [f"web. 0 IN A {vip}"] + [f"tasks.web. 0 IN A {ip}" for ip in ips]
for name, ip in tasks:
    data += [f"{name}. 0 IN A {ip}", f"{name}.{net}. 0 IN A {ip}"]
with open(f"{d}/unbound.conf", "w") as f:
    f.write(f"""server:
  interface: {ub}
  port: 53
  do-ip6: no
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  chroot: ""
  username: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  logfile: "{d}/unbound.log"
  use-syslog: no
  verbosity: 1
  rrset-roundrobin: yes
  # every other name: NXDOMAIN at once, like the lab's swarmd with --dns-upstream none
  local-zone: "." static
""")
    f.writelines(f'  local-data: "{r}"\n' for r in data)
    f.writelines(f'  local-data-ptr: "{ip} 0 {name}.{net}."\n' for name, ip in tasks)
    f.write("remote-control:\n  control-enable: no\n")
print(f"web: VIP {vip}, tasks {' '.join(ips)}; {len(queries)} queries", file=sys.stderr)
PY
unbound-checkconf "$BASE/dns/unbound.conf" >>"$BASE/dns/checkconf.log" 2>&1 || die "unbound config: $(tail -n 3 "$BASE/dns/checkconf.log")"

# unbound in the client task's namespace (nsenter --net execs it: the PID is unbound's).
bg_start nsenter --net="$NS_CLI" unbound -d -c "$BASE/dns/unbound.conf" >>"$BASE/dns/unbound.out" 2>&1
UB_PID=$BGPID
for _ in $(seq 1 50); do   # 5 s at most
  nsenter --net="$NS_CLI" ss -Hlun "sport = :53" 2>/dev/null | grep -qF "$UNBOUND_ADDR:53" && break
  kill -0 "$UB_PID" 2>/dev/null || die "unbound exited: $(tail -n 3 "$BASE/dns/unbound.log" "$BASE/dns/unbound.out" 2>/dev/null)"
  sleep 0.1
done
[ "$(cat "/proc/$UB_PID/comm" 2>/dev/null)" = unbound ] || die "pid $UB_PID is not unbound"
log "unbound (pid $UB_PID) on $UNBOUND_ADDR:53 and Shoal (worker1's swarmd, pid $SHOAL_PID) on $SHOAL_ADDR:53, in client task ${CLI_ID:0:12}'s namespace"

# ------------------------------------------------------------------------------ 0. correctness
# A minimal UDP DNS client: every query of expected.json to each server; prints one CHECK line
# per server, and the mismatches on stderr; exits 1 on any mismatch.
cat >"$BASE/dns/check.py" <<'PY'
import json, random, socket, struct, sys
exp = json.load(open(sys.argv[1]))["queries"]
TYPES = {"A": 1, "PTR": 12, "AAAA": 28}
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}
def name_at(msg, off):   # (dotted name with the final dot, offset after the name)
    labels, end = [], None
    for _ in range(128):
        n = msg[off]
        if n >= 0xC0:
            end = end or off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
        elif n == 0:
            return ".".join(labels) + ".", end or off + 1
        else:
            labels.append(msg[off + 1:off + 1 + n].decode().lower()); off += 1 + n
    raise ValueError("name loop")
def ask(server, qname, qtype):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in qname.split(".")) + b"\0" + struct.pack(">HH", TYPES[qtype], 1)
    for _ in range(3):
        s.sendto(q, (server, 53))
        try:
            m = s.recv(4096)
        except socket.timeout:
            continue
        if struct.unpack(">H", m[:2])[0] != qid:
            continue
        an = struct.unpack(">H", m[6:8])[0]
        off = name_at(m, 12)[1] + 4
        got = []
        for _ in range(an):
            off = name_at(m, off)[1]
            t, _c, _ttl, ln = struct.unpack(">HHIH", m[off:off + 10]); off += 10
            if t == 1:
                got.append(socket.inet_ntoa(m[off:off + 4]))
            elif t == 12:
                got.append(name_at(m, off)[0])
            off += ln
        return RCODES.get(m[3] & 15, str(m[3] & 15)), got
    return "timeout", []
bad = 0
for server in sys.argv[2:]:
    ok = 0
    for qname, qtype, want in exp:
        rcode, got = ask(server, qname, qtype)
        if rcode == "NOERROR" and sorted(got) == sorted(want):
            ok += 1
        else:
            bad += 1
            print(f"{server}: {qname} {qtype}: {rcode} {sorted(got)}, expected NOERROR {sorted(want)}", file=sys.stderr)
    print(f"CHECK server={server} queries={len(exp)} ok={ok}")
sys.exit(1 if bad else 0)
PY
log "0. correctness: the $(wc -l <"$BASE/dns/queries.txt") queries to both servers, then getent hosts web in the task"
ok=0
for i in $(seq 1 10); do   # the managers' tables may still be on their way to worker1: 20 s at most
  if timeout 60 nsenter --net="$NS_CLI" python3 "$BASE/dns/check.py" "$BASE/dns/expected.json" "$SHOAL_ADDR" "$UNBOUND_ADDR" \
    >"$BASE/dns/check.out" 2>"$BASE/dns/check.err" 9>&-; then ok=1; break; fi
  log "  attempt $i: $(head -n 2 "$BASE/dns/check.err" | tr '\n' ' ')"
  sleep 2
done
cat "$BASE/dns/check.out" >>"$RAW"
[ $ok = 1 ] || die "the resolvers' answers differ from the control plane's: $(head -n 5 "$BASE/dns/check.err")"
VIP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vip"])' "$BASE/dns/expected.json")
GETENT=$(timeout 30 swarmctl task exec "$CLI_ID" -- getent hosts web 2>&1 9>&- | head -n 1 | tr -s ' ' || true)
echo "GETENT out=${GETENT// /_} vip=$VIP" >>"$RAW"
[ "${GETENT%% *}" = "$VIP" ] || die "getent hosts web in the client task: '$GETENT', expected $VIP"
log "  $(awk '{print $2, $4}' "$BASE/dns/check.out" | tr '\n' ' ')(of $(wc -l <"$BASE/dns/queries.txt")); getent hosts web: $GETENT"

# ------------------------------------------------------------------------------ measurements
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo nan; }   # utime+stime of PID
sys_ticks() { awk 'NR == 1 {t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6}' /proc/stat; }   # total idle
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
# dnsperf's statistics on stdin -> k=v words
dnsperf_stats() {
  awk '/Queries sent:/ {s = $3} /Queries completed:/ {c = $3} /Queries lost:/ {l = $3}
    /Response codes:/ {sub(/.*Response codes: */, ""); gsub(/ \([0-9.]*%\),?/, ""); gsub(/ /, ":"); r = $0}
    /Average packet size:/ {rq = $5 + 0; rs = $7 + 0}
    /Queries per second:/ {q = $4}
    /Average Latency/ {a = $4 * 1000; gsub(/[(),]/, ""); mn = $6 * 1000; mx = $8 * 1000}
    /Latency StdDev/ {sd = $4 * 1000}
    END {printf "sent=%s completed=%s lost=%s qps=%s avg_ms=%s min_ms=%s max_ms=%s sd_ms=%s rcodes=%s req_bytes=%s resp_bytes=%s\n",
      s == "" ? "nan" : s, c == "" ? "nan" : c, l == "" ? "nan" : l, q == "" ? "nan" : q, a == "" ? "nan" : a,
      mn == "" ? "nan" : mn, mx == "" ? "nan" : mx, sd == "" ? "nan" : sd, r == "" ? "-" : r, rq == "" ? "nan" : rq, rs == "" ? "nan" : rs}'
}
# One dnsperf run against SERVER (shoal|unbound) in the client task's namespace: KIND perf|lat.
dnsperf_once() { # KIND SERVER RUN
  local kind=$1 srv=$2 run=$3 addr pid out c0 c1 s0 s1 t0 t1 args
  if [ "$srv" = shoal ]; then addr=$SHOAL_ADDR; pid=$SHOAL_PID; else addr=$UNBOUND_ADDR; pid=$UB_PID; fi
  if [ "$kind" = perf ]; then args=(-l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING")
  else args=(-l "$LAT_DURATION" -c "$CLIENTS" -q "$OUTSTANDING" -Q "$LAT_QPS" -v); fi
  out=$BASE/dns/$kind-$srv-$run.out
  c0=$(cpu_ticks "$pid"); s0=$(sys_ticks); t0=$(now_ms)
  local TIMEFORMAT='%U %S'
  { time timeout $((DURATION + LAT_DURATION + 30)) nsenter --net="$NS_CLI" dnsperf -s "$addr" -d "$BASE/dns/queries.txt" "${args[@]}" >"$out" 2>&1 9>&- ; } 2>"$out.time" || true
  t1=$(now_ms); s1=$(sys_ticks); c1=$(cpu_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || die "the $srv server (pid $pid) is gone"
  local cpu
  cpu=$(awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v ms=$((t1 - t0)) -v hz="$HZ" -v n="$NCPU" -v tm="$(tail -n 1 "$out.time")" 'BEGIN {
    split(s0, a, " "); split(s1, b, " "); split(tm, d, " "); dt = b[1] - a[1]
    printf "srv_cores=%.2f dnsperf_cores=%.2f machine_cores=%.2f wall_ms=%d",
      (c1 - c0) / hz / (ms / 1000), (d[1] + d[2]) / (ms / 1000), (dt > 0 ? n * (dt - (b[2] - a[2])) / dt : 0), ms }')
  grep -v '^> ' "$out" | sed "s/^/# $kind $srv run $run: /" >>"$RAW"
  local stats extra=""
  stats=$(dnsperf_stats <"$out")
  if [ "$kind" = lat ]; then   # percentiles of the answered queries' latencies ("T": timed out)
    extra=$(awk '/^> / && $2 != "T" {print $NF * 1000}' "$out" | sort -g | awk '{a[NR] = $1}
      function p(q,  i) { i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; return a[i] }
      END { if (NR == 0) { print "n=0 p50_ms=nan p90_ms=nan p99_ms=nan p999_ms=nan"; exit }
        printf "n=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f", NR, p(0.5), p(0.9), p(0.99), p(0.999) }')
    extra+=" timeouts=$(grep -c '^> T ' "$out" || true)"
  fi
  echo "${kind^^} server=$srv run=$run $stats $extra $cpu" >>"$RAW"
  log "  $kind $srv run $run: $(echo "$stats" | field qps) q/s, avg $(echo "$stats" | field avg_ms) ms, lost $(echo "$stats" | field lost)${extra:+, $(echo " $extra" | field p99_ms | sed 's/^/p99 /') ms}; $cpu"
}

log "1. throughput: dnsperf -l $DURATION -c $CLIENTS -q $OUTSTANDING (no rate limit), $RUNS rounds of shoal / unbound (order alternating)"
for run in $(seq 1 "$RUNS"); do
  wait_quiet
  if [ $((run % 2)) = 1 ]; then order=(shoal unbound); else order=(unbound shoal); fi
  for srv in "${order[@]}"; do dnsperf_once perf "$srv" "$run"; done
done
log "2. latency at $LAT_QPS q/s: dnsperf -v -Q $LAT_QPS -l $LAT_DURATION, $RUNS rounds"
for run in $(seq 1 "$RUNS"); do
  wait_quiet
  if [ $((run % 2)) = 1 ]; then order=(unbound shoal); else order=(shoal unbound); fi
  for srv in "${order[@]}"; do dnsperf_once lat "$srv" "$run"; done
done
END_NOTE="$(date -u +%FT%TZ), $(machine_note)"
kill -TERM "$UB_PID" 2>/dev/null || true
bg_stop "$UB_PID"
grep -h 'server stats' "$BASE/dns/unbound.log" | sed 's/^/# unbound: /' >>"$RAW" || true

# ------------------------------------------------------------------------------ results
run_info
DNSPERF_VERSION="dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p') (Debian $(dpkg-query -W -f '${Version}' dnsperf 2>/dev/null || echo '?'))"
UNBOUND_VERSION="unbound $(unbound -V 2>/dev/null | sed -n 's/^Version //p') (Debian $(dpkg-query -W -f '${Version}' unbound 2>/dev/null || echo '?'))"
HICKORY_VERSION=$(awk '/^name = "hickory-server"$/ {getline; gsub(/"/, "", $3); print $3}' "$REPO/Cargo.lock" | head -n 1)
export RUNS DURATION CLIENTS OUTSTANDING LAT_QPS LAT_DURATION LAB SUBNET START_NOTE END_NOTE DNSPERF_VERSION UNBOUND_VERSION HICKORY_VERSION
python3 - "$RAW" "$BASE/dns/expected.json" >"$BASE/dns.md" <<'PY'
import json, os, statistics as st, sys

E = os.environ
rows = []
for line in open(sys.argv[1]):
    if line.strip() and not line.startswith("#"):
        kind, rest = line.split(" ", 1)
        rows.append((kind, dict(p.split("=", 1) for p in rest.split())))
exp = json.load(open(sys.argv[2]))
sys.path.insert(0, os.environ["BENCH_DIR"])
from benchfmt import num, med, f0, f2, f3  # noqa: E402

print("# Embedded DNS: queries/s vs unbound (bench/dns.sh)")
print()
print(f"- machine: {E['MACHINE']}")
print(f"- Shoal {E['REV']}, release build (hickory-server {E['HICKORY_VERSION']} in swarmd's tokio runtime); lab "
      f"`{E['LAB']}` on {E['SUBNET']}: 3 managers + 2 workers, swarmd --data-plane kernel, --dns-upstream none")
print(f"- {E['UNBOUND_VERSION']}, num-threads 1, the same names as `local-data` (TTL 0), local-zone \".\" static; "
      f"{E['DNSPERF_VERSION']}, UDP, 1 thread")
print(f"- both servers in the namespace of a `client` task on worker1 (Shoal 127.0.0.11, unbound 127.0.0.12); "
      f"web: VIP {exp['vip']}, tasks {' '.join(ip for _, ip in exp['tasks'])}")
print(f"- query file ({len(exp['queries'])} queries, looped): per web task: web A, tasks.web A (5 answers), "
      "web.<slot>.<id> A, web.<slot>.<id>.lp_net A, PTR of its address, web AAAA (empty NOERROR)")
print(f"- start: {E['START_NOTE']}")
print(f"- end:   {E['END_NOTE']}")
print()
ch = [d for k, d in rows if k == "CHECK"]
ge = [d for k, d in rows if k == "GETENT"]
print("Correctness before measuring: " + "; ".join(
    f"{'Shoal' if d['server'] == '127.0.0.11' else 'unbound'} {d['ok']}/{d['queries']} answers as expected" for d in ch)
    + (f"; `getent hosts web` in the task → {ge[0]['out'].replace('_', ' ')}" if ge else ""))
print()

name = {"shoal": "Shoal (127.0.0.11, worker1's swarmd)", "unbound": "unbound 1 thread (127.0.0.12)"}
pf = [d for k, d in rows if k == "PERF"]
print(f"## 1. Throughput: dnsperf -l {E['DURATION']} -c {E['CLIENTS']} -q {E['OUTSTANDING']}, no rate limit "
      f"({E['RUNS']} rounds, interleaved)")
print()
print("| server | q/s per run | q/s (median) | Shoal / unbound | avg latency | min / max | stddev | lost / sent | "
      "answers not NOERROR | server CPU (cores) | dnsperf CPU (cores) | machine busy (cores) | q/s per server core |")
print("|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|")
m = {}
for srv in ("shoal", "unbound"):
    ds = sorted([d for d in pf if d["server"] == srv], key=lambda d: int(d["run"]))
    m[srv] = med([num(d["qps"]) for d in ds])
for srv in ("shoal", "unbound"):
    ds = sorted([d for d in pf if d["server"] == srv], key=lambda d: int(d["run"]))
    g = lambda k: med([num(d[k]) for d in ds])
    per_core = med([num(d["qps"]) / num(d["srv_cores"]) for d in ds if num(d["srv_cores"]) > 0])
    rc = [d["rcodes"].split(":") for d in ds]
    other = sum(int(c[i + 1]) for c in rc for i in range(0, len(c) - 1, 2) if c[i] != "NOERROR")
    print(f"| {name[srv]} | {' '.join(f0(num(d['qps'])) for d in ds)} | **{f0(m[srv])}** | "
          f"{'**' + f2(m['shoal'] / m['unbound']) + '**' if srv == 'shoal' else '1'} | {f3(g('avg_ms'))} ms | "
          f"{f3(g('min_ms'))} / {f3(g('max_ms'))} ms | {f3(g('sd_ms'))} ms | "
          f"{sum(int(num(d['lost'])) for d in ds if num(d['lost']) == num(d['lost']))} / "
          f"{sum(int(num(d['sent'])) for d in ds if num(d['sent']) == num(d['sent'])):,} | {other} | "
          f"{f2(g('srv_cores'))} | {f2(g('dnsperf_cores'))} | {f2(g('machine_cores'))} | {f0(per_core)} |")
rr = []
for r in sorted({d["run"] for d in pf}):
    a = [num(d["qps"]) for d in pf if d["run"] == r and d["server"] == "shoal"]
    b = [num(d["qps"]) for d in pf if d["run"] == r and d["server"] == "unbound"]
    if a and b and b[0]:
        rr.append(a[0] / b[0])
print()
print(f"Shoal / unbound per round: {' '.join(f2(x) for x in rr)}. Medians over the runs except lost (sum). "
      "Latency: dnsperf's average, min, max and stddev per run (dnsperf 2.10 prints no percentiles; "
      "see 2.). CPU: the server process's utime+stime (/proc/PID/stat; for Shoal the whole swarmd of worker1), "
      "dnsperf's (bash `time`) and the whole machine's (/proc/stat), divided by the run's wall time.")
print()
print("Reference figures, not this run: unbound's own figure on this machine kind, 208k q/s on one thread; "
      "CoreDNS about 17k q/s per core.")
print()
lt = [d for k, d in rows if k == "LAT"]
print(f"## 2. Latency at a fixed rate: dnsperf -v -Q {E['LAT_QPS']} -l {E['LAT_DURATION']} -c {E['CLIENTS']} "
      f"({E['RUNS']} rounds, interleaved)")
print()
print("Percentiles over every answered query of a run (dnsperf -v prints each response's latency); medians over the runs.")
print()
print("| server | q/s | p50 | p90 | p99 (per run) | p99 (median) | p99.9 | max | lost / sent | server CPU (cores) |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
for srv in ("shoal", "unbound"):
    ds = sorted([d for d in lt if d["server"] == srv], key=lambda d: int(d["run"]))
    g = lambda k: med([num(d[k]) for d in ds])
    print(f"| {name[srv]} | {f0(g('qps'))} | {f3(g('p50_ms'))} ms | {f3(g('p90_ms'))} ms | "
          f"{' '.join(f3(num(d['p99_ms'])) for d in ds)} | **{f3(g('p99_ms'))} ms** | {f3(g('p999_ms'))} ms | "
          f"{f3(max([num(d['max_ms']) for d in ds] or [float('nan')]))} ms | "
          f"{sum(int(num(d['lost'])) for d in ds if num(d['lost']) == num(d['lost']))} / "
          f"{sum(int(num(d['sent'])) for d in ds if num(d['sent']) == num(d['sent'])):,} | {f2(g('srv_cores'))} |")
PY
cp "$RAW" "$RESULTS_DIR/dns.raw"
cp "$BASE/dns.md" "$RESULTS_DIR/dns.md"
cat "$RESULTS_DIR/dns.md"
mapfile -t S < <(grep '^PERF server=shoal ' "$RAW" | field qps)
mapfile -t U < <(grep '^PERF server=unbound ' "$RAW" | field qps)
log "done in $(( $(date +%s) - T_START )) s: Shoal $(median "${S[@]}") q/s, unbound $(median "${U[@]}") q/s (medians), Shoal / unbound $(ratio "$(median "${S[@]}")" "$(median "${U[@]}")")"
