#!/usr/bin/env bash
# Scale: N simulated nodes (bench/nodesim) against 3 real managers on 127.0.0.1.
#
# The managers are release `swarmd`s (--data-plane none) started here on ports picked at run
# time, each recorded by PID and stopped at exit (bench/lib.sh). `shoal-nodesim` then joins NODES
# simulated workers (each with its own key, CSR and certificate: mutual TLS), holds their
# sessions and heartbeats, creates SERVICES services of REPLICAS replicas each (managers drained,
# so only simulated nodes run tasks), and with KILL_LEADER=1 kills the leader with -9 at the end.
# See bench/nodesim/src/main.rs for the phases and what each RESULT field means.
#
# Env: NODES=1000 SERVICES=30 REPLICAS=NODES KILL_LEADER=1 REST=10 (s per at-rest sample)
#      JOIN_CONCURRENCY=32 FAIL_FRACTION=0 PHASE_MAX=300 DURATION=900 (s, whole nodesim run)
#      LABEL=run name in the results (default "N nodes").  SWARMD_FLAGS: extra swarmd flags.
#      SWARMD_BIN=path of another swarmd to measure (default: the release build of this tree).
# Output: $RESULTS_DIR/scale.raw (appended) and scale.md.  `bench/scale.sh render` redraws it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODES=${NODES:-1000}
SERVICES=${SERVICES:-30}
REPLICAS=${REPLICAS:-$NODES}
KILL_LEADER=${KILL_LEADER:-1}
REST=${REST:-10}
JOIN_CONCURRENCY=${JOIN_CONCURRENCY:-32}
FAIL_FRACTION=${FAIL_FRACTION:-0}
PHASE_MAX=${PHASE_MAX:-300}
DURATION=${DURATION:-900}
LABEL=${LABEL:-"$NODES nodes"}
RAW=$RESULTS_DIR/scale.raw

render() {
  python3 - "$RAW" >"$RESULTS_DIR/scale.md" <<'PY'
import sys
runs = {}
order = []
for line in open(sys.argv[1]):
    if not line.startswith("label="):
        continue
    label, rest = line[len("label="):].split(" RESULT ", 1)
    kv = dict(x.split("=", 1) for x in rest.split() if "=" in x)
    if label not in runs:
        runs[label] = {}
        order.append(label)
    runs[label][kv["phase"]] = kv
def g(r, ph, k, suf=""):
    v = r.get(ph, {}).get(k)
    return (v + suf) if v is not None else "–"
print("| run | nodes | join: all joined / all Ready | leader CPU at join (avg / peak, % of a core) | leader RSS after join | tasks | create → all running | tasks/s | leader CPU (avg / peak) | leader RSS peak | at rest, bytes/s per session (in, no tasks / with tasks) | heartbeats/s | leader CPU at rest (with tasks) | leader kill → all sessions back / all Ready | tasks rescheduled |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label in order:
    r = runs[label]
    print("| %s | %s | %s / %s | %s / %s | %s | %s | %s | %s | %s / %s | %s | %s / %s | %s | %s | %s / %s | %s |" % (
        label, g(r, "join", "nodes"),
        g(r, "join", "joined_s", " s"), g(r, "join", "ready_s", " s"),
        g(r, "join", "leader_cpu_avg_pct"), g(r, "join", "leader_cpu_peak_pct"),
        g(r, "join", "leader_rss_end_mib", " MiB"),
        g(r, "services", "tasks"), g(r, "services", "running_s", " s"), g(r, "services", "tasks_per_s"),
        g(r, "services", "leader_cpu_avg_pct"), g(r, "services", "leader_cpu_peak_pct"),
        g(r, "services", "leader_rss_peak_mib", " MiB"),
        g(r, "rest", "in_bytes_per_s_per_session"), g(r, "rest_tasks", "in_bytes_per_s_per_session"),
        g(r, "rest_tasks", "heartbeats_per_s", "") if "rest_tasks" in r else g(r, "rest", "heartbeats_per_s"),
        g(r, "rest_tasks", "leader_cpu_avg_pct", " %"),
        g(r, "failover", "reconnected_s", " s"), g(r, "failover", "ready_s", " s"),
        g(r, "failover", "rescheduled")))
PY
  cat "$RESULTS_DIR/scale.md"
}
if [ "${1:-}" = render ]; then render; exit 0; fi

bench_init scale
build_bins
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building bench/nodesim"
  cp "$REPO/Cargo.lock" "$BENCH_DIR/nodesim/Cargo.lock"
  (cd "$BENCH_DIR/nodesim" && cargo build --release -q) >&2 || die "cannot build bench/nodesim"
fi
cp "$CARGO_TARGET_DIR/release/shoal-nodesim" "$BASE/bin/" || die "shoal-nodesim missing"
# Another swarmd to measure (e.g. one built from an earlier commit, for a before/after table).
if [ -n "${SWARMD_BIN:-}" ]; then cp "$SWARMD_BIN" "$BASE/bin/swarmd" || die "no $SWARMD_BIN"; fi
mkdir -p "$RESULTS_DIR"
# One TLS connection per simulated node on each side, plus the managers' own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cluster_up 3 0 redb
tok_w=$(LG token --endpoint "$(ep m1)" --role worker) || die "no worker token"
wait_quiet
START_NOTE="$(date -u +%FT%TZ) $(machine_note)"
log "nodesim: $NODES nodes, $SERVICES x $REPLICAS tasks, kill leader: $KILL_LEADER ($START_NOTE)"
args=(--managers "127.0.0.1:${NODE_PORT[m1]},127.0.0.1:${NODE_PORT[m2]},127.0.0.1:${NODE_PORT[m3]}"
      --pids "m1=${NODE_PID[m1]},m2=${NODE_PID[m2]},m3=${NODE_PID[m3]}"
      --nodes "$NODES" --join-concurrency "$JOIN_CONCURRENCY" --services "$SERVICES" --replicas "$REPLICAS"
      --fail-fraction "$FAIL_FRACTION" --rest "$REST" --phase-max "$PHASE_MAX" --duration "$DURATION"
      --dir "$BASE/sim")
[ "$KILL_LEADER" = 1 ] && args+=(--kill-leader)
set +e
SWARM_TOKEN=$tok_w "$BASE/bin/shoal-nodesim" "${args[@]}" >"$BASE/nodesim.out" 2> >(tee "$BASE/nodesim.log" >&2) 9>&- &
SIM=$!
track "$SIM"
wait "$SIM"; rc=$?
set -e
untrack "$SIM"
echo "# $START_NOTE; end $(date -u +%FT%TZ); rev $(git -C "$REPO" rev-parse --short HEAD); nodesim exit $rc" >>"$RAW"
sed "s/^/label=$LABEL /" "$BASE/nodesim.out" >>"$RAW"
cat "$BASE/nodesim.out"
[ "$rc" = 0 ] || log "nodesim exited $rc (partial results kept)"
# Manager logs' last lines, for the record of what went wrong, if anything did.
[ "$rc" = 0 ] || for m in m1 m2 m3; do log "$m: $(tail -n 3 "$BASE/nodes/$m/swarmd.log" | tr '\n' ' ')"; done
render
