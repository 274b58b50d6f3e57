# Shared helpers of the control-plane benchmark scripts (sourced, not run).
#
# Everything runs on 127.0.0.1 with ports picked at run time. Every process started here is
# recorded by PID and stopped by PID on exit (TERM, then KILL after 10 s); the run directory is
# removed unless KEEP=1.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BENCH_DIR   # the scripts' Python imports benchfmt from here
REPO=$(cd "$BENCH_DIR/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/shoal-target}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
now_ms() { date +%s%3N; }

# ------------------------------------------------------------------------------ run directory
# BASE holds binaries, state dirs, logs and the pid list of one run.
bench_init() { # NAME
  if [ -n "${BASE:-}" ]; then return 0; fi   # a part run by control-plane.sh: its run, its lock
  # One benchmark at a time on this machine: two runs would measure each other (and write the
  # same result files). The lock is released when this shell exits.
  exec 9>"${BENCH_LOCK:-/var/tmp/shoal-bench.lock}"
  if ! flock -n 9; then
    log "another benchmark run holds ${BENCH_LOCK:-/var/tmp/shoal-bench.lock}; waiting for it (at most ${LOCK_WAIT:-3600} s)"
    flock -w "${LOCK_WAIT:-3600}" 9 || die "still locked after ${LOCK_WAIT:-3600} s"
  fi
  BASE=$(mktemp -d "/var/tmp/shoal-bench-$1.XXXXXX")
  export BASE
  : >"$BASE/pids"
  trap bench_cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM
}

# Stops everything this run started, by PID, then removes BASE.
bench_cleanup() {
  local rc=$? pid
  set +e   # cleanup must run to the end
  if [ -z "${BASE:-}" ] || [ ! -d "$BASE" ]; then return $rc; fi
  if [ -s "$BASE/pids" ]; then
    while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$BASE/pids"
    for _ in $(seq 1 100); do   # up to 10 s
      local alive=0
      while read -r pid; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done <"$BASE/pids"
      [ $alive = 0 ] && break
      sleep 0.1
    done
    while read -r pid; do
      if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored TERM: KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$BASE/pids"
  fi
  # Task processes of the nodes (they die with their swarmd; this catches any that did not):
  # only processes whose working directory is inside this run's directory.
  local p cwd
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$cwd" in "$BASE"/*) log "left-over task process ${p#/proc/} in $cwd: KILL"; kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  if [ "${KEEP:-0}" = 1 ]; then log "kept $BASE"; else rm -rf "$BASE"; fi
  return $rc
}

# Records a PID to stop at exit.
track() { echo "$1" >>"$BASE/pids"; }
untrack() { grep -vx "$1" "$BASE/pids" >"$BASE/pids.new" || true; mv "$BASE/pids.new" "$BASE/pids"; }

# ------------------------------------------------------------------------------------ build
# Builds swarmd (release) and the load generator, then copies both into BASE so that a rebuild
# by someone else during the run cannot swap the binaries under the benchmark.
build_bins() {
  if [ -x "$BASE/bin/swarmd" ]; then return 0; fi
  mkdir -p "$BASE/bin"
  if [ -n "${BENCH_BIN:-}" ] && [ -x "$BENCH_BIN/swarmd" ]; then   # built once by control-plane.sh
    cp "$BENCH_BIN/swarmd" "$BENCH_BIN/shoal-loadgen" "$BASE/bin/"
    return 0
  fi
  if [ "${NO_BUILD:-0}" != 1 ]; then
    log "building swarmd (release) and bench/loadgen"
    local i ok=0
    for i in 1 2 3; do   # another engineer's half-edited file can break a build: retry
      if (cd "$REPO" && cargo build --release -q -p shoal-cli --bin swarmd) >&2; then ok=1; break; fi
      log "build failed (attempt $i); retrying in 60 s"; sleep 60
    done
    [ $ok = 1 ] || die "cannot build swarmd"
    # The loadgen is its own workspace; the workspace's lock file pins the same versions so the
    # release artifacts of swarmd's dependencies are reused.
    cp "$REPO/Cargo.lock" "$BENCH_DIR/loadgen/Cargo.lock"
    (cd "$BENCH_DIR/loadgen" && cargo build --release -q) >&2 || die "cannot build bench/loadgen"
  fi
  cp "$CARGO_TARGET_DIR/release/swarmd" "$CARGO_TARGET_DIR/release/shoal-loadgen" "$BASE/bin/" || die "binaries missing (NO_BUILD=1 without a build?)"
}
LG() { "$BASE/bin/shoal-loadgen" "$@"; }

# Debian packages the measurements need (etcd, iperf3, wrk), installed with apt when missing.
apt_install() { # PACKAGE...
  log "installing $* (Debian)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2 || die "cannot install $*"
}
need_cmd() { command -v "$1" >/dev/null || apt_install "${2:-$1}"; }   # COMMAND [PACKAGE]

# Where the results go: one markdown fragment and one raw file per part.
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}

# Extracts key from a `RESULT k=v ...` line on stdin.
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p"; }

# Machine state, for the notes: load, and the busiest processes that are not ours.
machine_note() {
  local ours; ours=$(tr '\n' '|' <"$BASE/pids" 2>/dev/null || true)
  # top's second sample is the CPU use over the last 0.5 s (ps would give lifetime averages)
  echo "load $(cut -d' ' -f1-3 /proc/loadavg); busiest other processes: $(top -b -n 2 -d 0.5 -w 200 2>/dev/null | awk -v o="|$ours" '
    /^top -/ {blk++} blk==2 && $1 ~ /^[0-9]+$/ && $9+0 >= 5 && index(o, "|"$1"|")==0 {printf "%s %s%%, ", $12, $9}' | head -c 200)"
}

# Percentage of all CPUs busy over the next N seconds (default 2), from /proc/stat.
cpu_busy_pct() {
  local a b
  a=$(head -1 /proc/stat); sleep "${1:-2}"; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%d\n", (t > 0 ? 100 * (t - idle) / t : 0) }'
}

# The machine is shared (other engineers build and test on the same 2 cores). Before each
# measurement, wait until it is mostly idle: below QUIET_PCT % of all CPUs busy (default 15;
# our idle clusters use 1-3 %), at most QUIET_MAX seconds (default 300), then measure anyway.
# QUIET_PCT=100 turns this off.
wait_quiet() {
  local start busy
  [ "${QUIET_PCT:-15}" -ge 100 ] && return 0
  start=$(date +%s)
  while :; do
    busy=$(cpu_busy_pct 2)
    [ "$busy" -lt "${QUIET_PCT:-15}" ] && return 0
    if [ $(( $(date +%s) - start )) -ge "${QUIET_MAX:-300}" ]; then
      log "machine still ${busy}% busy after ${QUIET_MAX:-300} s: measuring anyway"
      return 0
    fi
    log "machine ${busy}% busy with other work ($(machine_note | sed 's/.*busiest other processes: //')): waiting"
    sleep 3
  done
}

# ------------------------------------------------------------------------------------ swarmd
# Node arrays: NODE_PORT[name], NODE_PID[name], NODE_ARGS[name].
declare -A NODE_PORT=() NODE_PID=() NODE_ARGS=()
SWARMD_FLAGS=${SWARMD_FLAGS:-}

swarmd_start() { # NAME PORT [EXTRA ARGS...]   (re)starts a node with its recorded args
  local name=$1 port=$2; shift 2
  local dir="$BASE/nodes/$name"
  mkdir -p "$dir"
  if [ -z "${NODE_ARGS[$name]:-}" ]; then
    # shellcheck disable=SC2206
    NODE_ARGS[$name]="--state-dir $dir --hostname $name --listen-addr 127.0.0.1:$port $SWARMD_FLAGS $*"
  fi
  # shellcheck disable=SC2086
  "$BASE/bin/swarmd" ${NODE_ARGS[$name]} >>"$dir/swarmd.log" 2>&1 9>&- &
  NODE_PID[$name]=$!
  NODE_PORT[$name]=$port
  track "${NODE_PID[$name]}"
}

swarmd_kill9_forget() { untrack "${NODE_PID[$1]}"; }

ep() { echo "tcp://127.0.0.1:${NODE_PORT[$1]}"; }

# Starts a cluster: MANAGERS managers (m1..) and WORKERS workers (w1..), storage engine ENGINE.
cluster_up() { # MANAGERS WORKERS ENGINE
  local nm=$1 nw=$2 engine=$3 ports i tok_m tok_w n=0
  read -r -a ports <<<"$(LG ports $((nm + nw)))"
  swarmd_start m1 "${ports[0]}" --storage-engine "$engine"
  # The load generator talks to the managers over TCP: mutual TLS with m1's (manager)
  # certificate, or plain gRPC for a cluster made with --insecure-plaintext.
  if [[ " $SWARMD_FLAGS " == *" --insecure-plaintext "* ]]; then
    export SWARM_PLAINTEXT=1; unset SWARM_CERT_DIR
  else
    export SWARM_CERT_DIR="$BASE/nodes/m1/certificates"; unset SWARM_PLAINTEXT
  fi
  for i in $(seq 1 200); do   # up to 20 s for the first manager
    tok_m=$(LG token --endpoint "$(ep m1)" --role manager 2>/dev/null) && break
    kill -0 "${NODE_PID[m1]}" 2>/dev/null || die "m1 exited: $(tail -5 "$BASE/nodes/m1/swarmd.log")"
    sleep 0.1
  done
  [ -n "$tok_m" ] || die "m1 did not come up"
  tok_w=$(LG token --endpoint "$(ep m1)" --role worker) || die "no worker token"
  n=1
  for i in $(seq 2 "$nm"); do
    swarmd_start "m$i" "${ports[$((i - 1))]}" --storage-engine "$engine" --join "127.0.0.1:${ports[0]}" --token "$tok_m"
    n=$((n + 1))
    LG wait-healthy --endpoint "$(ep m1)" --nodes $n --timeout 60 >/dev/null || die "m$i did not join"
  done
  for i in $(seq 1 "$nw"); do
    swarmd_start "w$i" "${ports[$((nm + i - 1))]}" --storage-engine "$engine" --join "127.0.0.1:${ports[0]}" --token "$tok_w"
    n=$((n + 1))
    LG wait-healthy --endpoint "$(ep m1)" --nodes $n --timeout 60 >/dev/null || die "w$i did not join"
  done
  log "cluster up: $nm managers + $nw workers ($engine): $(for x in "${!NODE_PID[@]}"; do printf '%s=%s ' "$x" "${NODE_PID[$x]}"; done)"
}

# Stops every node of the cluster (TERM by PID, bounded wait) and forgets it.
cluster_down() {
  local name pid
  for name in "${!NODE_PID[@]}"; do kill -TERM "${NODE_PID[$name]}" 2>/dev/null || true; done
  for name in "${!NODE_PID[@]}"; do
    pid=${NODE_PID[$name]}
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$name (pid $pid) ignored TERM for 15 s: KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    { wait "$pid"; } 2>/dev/null || true
    untrack "$pid"
  done
  NODE_PID=(); NODE_PORT=(); NODE_ARGS=()
  if [ "${KEEP:-0}" = 1 ]; then mv "$BASE/nodes" "$BASE/nodes.$(date +%s%N)"; else rm -rf "$BASE/nodes"; fi
}

# --------------------------------------------------------------------------------------- etcd
declare -A ETCD_PID=() ETCD_URL=() ETCD_ARGS=()

etcd_install() {
  command -v etcd >/dev/null && command -v etcdctl >/dev/null && return 0
  apt_install etcd-server etcd-client
  # The package may start a system etcd on the default ports; that one is not used here.
}

etcd_start() { # NAME (uses ETCD_ARGS[NAME])
  local name=$1
  etcd ${ETCD_ARGS[$name]} >>"$BASE/etcd/$name.log" 2>&1 9>&- &
  ETCD_PID[$name]=$!
  track "${ETCD_PID[$name]}"
}

# Three members e1..e3, default timing (heartbeat 100 ms, election 1000 ms) unless ETCD_FLAGS.
etcd_up() {
  local ports i cluster="" name
  etcd_install
  mkdir -p "$BASE/etcd"
  read -r -a ports <<<"$(LG ports 6)"
  for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${ports[$((2 * i - 1))]}"; done
  for i in 1 2 3; do
    name=e$i
    ETCD_URL[$name]="http://127.0.0.1:${ports[$((2 * i - 2))]}"
    ETCD_ARGS[$name]="--name $name --data-dir $BASE/etcd/$name.data --listen-client-urls ${ETCD_URL[$name]} --advertise-client-urls ${ETCD_URL[$name]} --listen-peer-urls http://127.0.0.1:${ports[$((2 * i - 1))]} --initial-advertise-peer-urls http://127.0.0.1:${ports[$((2 * i - 1))]} --initial-cluster $cluster --initial-cluster-state new --initial-cluster-token shoal-bench-$$ --logger zap --log-level warn ${ETCD_FLAGS:-}"
    etcd_start "$name"
  done
  local eps; eps=$(etcd_endpoints)
  for i in $(seq 1 300); do   # up to 30 s
    ETCDCTL_API=3 etcdctl --endpoints "$eps" --command-timeout=1s endpoint health >/dev/null 2>&1 && break
    for name in e1 e2 e3; do kill -0 "${ETCD_PID[$name]}" 2>/dev/null || die "etcd $name exited: $(tail -n 3 "$BASE/etcd/$name.log")"; done
    sleep 0.1
  done
  ETCDCTL_API=3 etcdctl --endpoints "$eps" --command-timeout=2s endpoint health >/dev/null 2>&1 || die "etcd did not become healthy: $(tail -n 3 "$BASE"/etcd/*.log)"
  log "etcd up ($(etcd --version | head -1)): $(for x in "${!ETCD_PID[@]}"; do printf '%s=%s ' "$x" "${ETCD_PID[$x]}"; done)"
}

etcd_endpoints() { local e=""; for n in e1 e2 e3; do e+="${e:+,}${ETCD_URL[$n]}"; done; echo "$e"; }

etcd_down() {
  local name pid
  for name in "${!ETCD_PID[@]}"; do kill -TERM "${ETCD_PID[$name]}" 2>/dev/null || true; done
  for name in "${!ETCD_PID[@]}"; do
    pid=${ETCD_PID[$name]}
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    { wait "$pid"; } 2>/dev/null || true
    untrack "$pid"
  done
  ETCD_PID=(); ETCD_URL=(); ETCD_ARGS=()
  if [ "${KEEP:-0}" = 1 ]; then mv "$BASE/etcd" "$BASE/etcd.$(date +%s%N)"; else rm -rf "$BASE/etcd"; fi
}

# ------------------------------------------------------------------------------------ numbers
# median and max of the numbers given as arguments ("nan" entries are ignored).
median() { printf '%s\n' "$@" | awk 'NF && tolower($1) != "nan"' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"; exit} if(NR%2){print a[(NR+1)/2]} else {printf "%.6g\n", (a[NR/2]+a[NR/2+1])/2}}'; }
maxof() { printf '%s\n' "$@" | awk 'NF && tolower($1) != "nan"' | sort -g | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0==0 || a=="n/a" || b=="n/a") print "n/a"; else printf "%.2f", a/b }'; }

# wrk's report (--latency) on stdin -> "rps p50_ms p99_ms requests socket_errors non2xx"
wrk_parse() {
  awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return "nan" }
    /^Requests\/sec:/ { rps = $2 }
    /^ +50% / { p50 = ms($2) }
    /^ +99% / { p99 = ms($2) }
    / requests in / { n = $1 }
    /^ +Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    /^ +Non-2xx or 3xx responses:/ { bad = $NF }
    END { printf "%s %s %s %s %d %d\n", (rps == "" ? "nan" : rps), (p50 == "" ? "nan" : p50), (p99 == "" ? "nan" : p99), (n == "" ? "nan" : n), err, bad }'
}

# Shoal revision and machine, for the results' header: sets and exports REV and MACHINE.
run_info() {
  REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
  if [ -n "$(git -C "$REPO" status --porcelain -- . ':!bench' ':!docs' 2>/dev/null | head -1)" ]; then
    REV+=" (with uncommitted changes outside bench/ and docs/)"
  fi
  MACHINE="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Linux $(uname -r)"
  export REV MACHINE
}

# ------------------------------------------------------------------------------------- labs
# For the scripts that measure on a `swarmctl lab` (root; dataplane.sh, lb.sh): 3 managers + 2
# workers, each a release `swarmd --data-plane kernel` in its own network namespace (extra swarmd
# flags: SHOAL_LAB_SWARMD_ARGS), with a unique name (bench + 3 digits), a free /24 in
# 198.18.200-250.0 (or SUBNET) and its state in the run directory. At exit, even on failure or
# Ctrl-C, `swarmctl lab down` removes it, then bench_cleanup stops the script's own processes by
# PID and removes the run directory.
LAB=""
declare -A PID_OF=() ROLE_OF=() ADDR_OF=()

lab_init() { # NAME   (instead of bench_init)
  [ "$(id -u)" -eq 0 ] || die "bench/$1.sh needs root: it builds a lab of network namespaces (run it with sudo)"
  bench_init "$1"
  export SHOAL_LAB_DIR=$BASE/labs
  trap lab_cleanup EXIT
}

lab_cleanup() {
  local rc=$? pid cwd
  set +e
  trap - INT TERM
  if [ -n "$LAB" ] && [ -e "$SHOAL_LAB_DIR/$LAB/lab.json" ]; then
    log "removing lab $LAB"
    if ! timeout 120 swarmctl lab down --name "$LAB" >>"$BASE/lab-down.log" 2>&1; then
      log "lab down failed ($(tail -n 2 "$BASE/lab-down.log" | tr '\n' ' ')); keeping $BASE:" \
        "remove the rest with SHOAL_LAB_DIR=$SHOAL_LAB_DIR $BASE/bin/swarmctl lab down --name $LAB"
      export KEEP=1   # bench_cleanup keeps $BASE
      # the lab's swarmds, if any survived: by pid, only those running in this lab's directory
      for pid in $(cat "$BASE/labpids" 2>/dev/null); do
        cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
        case "$cwd" in "$SHOAL_LAB_DIR/$LAB"/*) log "lab swarmd $pid still running: KILL"; kill -KILL "$pid" 2>/dev/null ;; esac
      done
    fi
  fi
  (exit "$rc")
  bench_cleanup   # the script's processes by PID, left-over task processes in $BASE, then $BASE
  exit "$rc"
}

# Background processes of the script: recorded by PID (stopped by bench_cleanup if still there).
BGPID=""
bg_start() { "$@" 9>&- & BGPID=$!; track "$BGPID"; }
bg_stop() { # PID: lets it end on its own for up to 10 s, then TERM
  local pid=$1
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -TERM "$pid" 2>/dev/null || true
  { wait "$pid"; } 2>/dev/null || true
  untrack "$pid"
}

# The release binaries (swarmd, swarmctl, whoami): built unless NO_BUILD=1, then copied into
# BASE/bin (a rebuild by someone else during the run cannot swap them under the lab) and put
# first on PATH (swarmctl starts the swarmd next to it).
build_release_bins() {
  mkdir -p "$BASE/bin"
  if [ "${NO_BUILD:-0}" != 1 ]; then
    log "building the release binaries (swarmd, swarmctl, whoami)"
    local i ok=0
    for i in 1 2 3; do   # another engineer's half-edited file can break a build: retry
      if (cd "$REPO" && cargo build --locked --release -q --bins) >&2; then ok=1; break; fi
      log "build failed (attempt $i); retrying in 60 s"; sleep 60
    done
    [ $ok = 1 ] || die "cannot build the release binaries"
  fi
  cp "$CARGO_TARGET_DIR/release/swarmd" "$CARGO_TARGET_DIR/release/swarmctl" "$CARGO_TARGET_DIR/release/whoami" "$BASE/bin/" ||
    die "release binaries missing in $CARGO_TARGET_DIR/release (NO_BUILD=1 without a build?)"
  export PATH="$BASE/bin:$PATH"
}

labjson() { python3 -c "import json,sys; d=json.load(open('$LABDIR/lab.json')); $1"; }

# Starts the lab. Sets LAB, LABDIR, SUBNET, SWARM_HOST (manager1's socket), START_NOTE, NODES
# and per node PID_OF (its swarmd), ROLE_OF, ADDR_OF (its lab address).
lab_up() {
  command -v python3 >/dev/null || die "python3 is needed (JSON of swarmctl)"
  command -v nsenter >/dev/null || die "nsenter (util-linux) is needed"
  # A free /24 for the lab's underlay: the host endpoint gets .254 of it in this namespace.
  if [ -z "${SUBNET:-}" ]; then
    local x
    for x in $(seq 200 250); do
      if ! ip -4 -o addr show | grep -q " 198\.18\.$x\." && ! ip -4 route show | grep -q "^198\.18\.$x\."; then
        SUBNET=198.18.$x.0/24; break
      fi
    done
    [ -n "${SUBNET:-}" ] || die "no free /24 in 198.18.200.0-198.18.250.0 (set SUBNET=198.18.X.0/24)"
  fi
  for _ in $(seq 1 20); do
    LAB=$(printf 'bench%03d' $((RANDOM % 1000)))
    ip link show "swlab-$LAB" >/dev/null 2>&1 || break
  done
  LABDIR=$SHOAL_LAB_DIR/$LAB
  export SWARM_HOST=unix://$LABDIR/nodes/manager1/swarmd.sock
  START_NOTE="$(date -u +%FT%TZ), $(machine_note)"
  log "lab $LAB on $SUBNET (state in $LABDIR${SHOAL_LAB_SWARMD_ARGS:+, swarmd $SHOAL_LAB_SWARMD_ARGS}) — $START_NOTE"
  # fd 9 (the bench lock) must not be inherited by the lab's swarmds, which outlive swarmctl.
  # shellcheck disable=SC2086   # LAB_UP_ARGS: extra `lab up` flags (--managers 1 --workers 0, --images DIR)
  timeout 120 swarmctl lab up --name "$LAB" --subnet "$SUBNET" ${LAB_UP_ARGS:-} >"$BASE/lab-up.log" 2>&1 9>&- ||
    die "lab up failed: $(tail -n 5 "$BASE/lab-up.log")"
  labjson 'print("\n".join(str(n["pid"]) for n in d["nodes"]))' >"$BASE/labpids"
  # shellcheck disable=SC2034   # NODES, PID_OF, ROLE_OF, ADDR_OF: for the scripts sourcing this
  NODES=$(labjson 'print(" ".join(n["name"] for n in d["nodes"]))')
  local n p r a
  # shellcheck disable=SC2034
  while read -r n p r a; do PID_OF[$n]=$p; ROLE_OF[$n]=$r; ADDR_OF[$n]=$a; done < <(labjson '
print("\n".join("%s %s %s %s" % (n["name"], n["pid"], n["role"], n["address"]) for n in d["nodes"]))')
  log "lab up: $(tr '\n' ' ' <"$BASE/labpids")(swarmd pids)"
}

# Removes the lab now (for scripts that build several labs in one run); dies if it cannot.
lab_down() {
  [ -n "$LAB" ] || return 0
  log "removing lab $LAB"
  timeout 120 swarmctl lab down --name "$LAB" >>"$BASE/lab-down.log" 2>&1 9>&- ||
    die "lab down $LAB failed: $(tail -n 2 "$BASE/lab-down.log" | tr '\n' ' ')"
  LAB=""
}

node_ids() { swarmctl node ls --format json | python3 -c 'import json,sys; [print(n["id"], n["hostname"]) for n in json.load(sys.stdin)]'; }
running_count() { { swarmctl service ps "$1" --format json 2>/dev/null || true; } | grep -c '"state": "running"' || true; }
wait_running() { # SERVICE N TIMEOUT_S
  local end=$(( $(date +%s) + $3 ))
  for _ in $(seq 1 $(( $3 * 5 ))); do
    [ "$(running_count "$1")" -ge "$2" ] && return 0
    [ "$(date +%s)" -lt "$end" ] || break
    sleep 0.2
  done
  die "service $1 did not reach $2 running tasks in $3 s"
}
# The running tasks of SERVICE, one "ID ADDRESS NODE_ID" line each; ADDRESS on NETWORK (name;
# default: the task's first network).
tasks_of() { # SERVICE [NETWORK]
  swarmctl service ps "$1" --format json | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["status"]["state"] != "running":
        continue
    nets = [n for n in t["networks"] if sys.argv[1] in ("", n["network"])]
    print(t["id"], nets[0]["addresses"][0].split("/")[0] if nets else "-", t["node_id"])' "${2:-}"
}
# The network namespace of task ID on NODE.
tk_ns() { echo "$LABDIR/nodes/$1/netns/tk_$(echo "$2" | tr -cd 'a-z0-9' | cut -c1-12)"; }
