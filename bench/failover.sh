#!/usr/bin/env bash
# (c) kill -9 the raft leader -> next acknowledged write, Shoal (3 managers) and etcd (3 members).
#
# Per run: a writer connected to a surviving member writes back to back (Shoal: `CreateService`
# of a fresh 0-replica service, like the Swarm anchor's `service create`; etcd: `Put`), each
# request with a short timeout (100 ms); the leader is killed with SIGKILL; the gap is the time from the
# kill to the first acknowledged write. A watcher polls the survivor every 10 ms for the new
# leader. Then the killed member is restarted on its data and the time until the cluster is
# healthy again is measured (Shoal: every node READY, one leader, the others reachable, as seen
# through the restarted node; etcd: `etcdctl endpoint health` on all three).
#
# Env: RUNS=5 REQUEST_TIMEOUT_MS=100 SYSTEMS="shoal etcd" SHOAL_FAST=1 (also Shoal with --election-timeout 150ms
#      --raft-heartbeat 40ms) ETCD_MATCHED=1 (also etcd with Shoal's default timing: election
#      200 ms, heartbeat 40 ms; etcd wants election >= 5 x heartbeat; ETCD_MATCHED_FLAGS overrides).
#      Output: $RESULTS_DIR/failover.raw and failover.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
SYSTEMS=${SYSTEMS:-"shoal etcd"}
ETCD_MATCHED=${ETCD_MATCHED:-1}
ETCD_MATCHED_FLAGS=${ETCD_MATCHED_FLAGS:-"--election-timeout 200 --heartbeat-interval 40"}
SHOAL_FAST=${SHOAL_FAST:-1}
# The writer's per-request timeout: an attempt stuck in the election is abandoned after this long
# and the next one sent, so the measured gap is quantized by at most this much.
REQUEST_TIMEOUT_MS=${REQUEST_TIMEOUT_MS:-100}
RAW=$RESULTS_DIR/failover.raw

render() {
  local label vals gap lead heal
  col() { (grep "^label=$1 " "$RAW" | field "$2" | tr '\n' ' ') || true; }
  {
    local base; base=$(col etcd gap_ms)
    # shellcheck disable=SC2086
    [ -n "${base// /}" ] && base=$(median $base) || base=n/a
    echo "| system | runs | kill → next acked write, median | max | vs etcd (defaults) | kill → new leader seen, median | restart killed member → healthy, median | write latency before the kill (median) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for label in shoal shoal-150ms etcd etcd-matched; do
      gap=$(col "$label" gap_ms); [ -n "${gap// /}" ] || continue
      lead=$(col "$label" leader_ms); heal=$(col "$label" healthy_ms)
      # shellcheck disable=SC2086
      printf '| %s | %s | %s ms | %s ms | %s | %s ms | %s ms | %s ms |\n' "$label" "$(echo $gap | wc -w)" "$(median $gap)" "$(maxof $gap)" "$(ratio "$(median $gap)" "$base")" \
        "$(median $lead)" "$(median $heal)" "$(median $(col "$label" warm_write_ms))"
    done
    echo
    echo "Per run (ms): $(for label in shoal shoal-150ms etcd etcd-matched; do g=$(col $label gap_ms); [ -n "${g// /}" ] && printf '%s: %s; ' "$label" "$g"; done)"
  } >"$RESULTS_DIR/failover.md"
  cat "$RESULTS_DIR/failover.md"
}
if [ "${1:-}" = render ]; then render; exit 0; fi

bench_init failover
build_bins
mkdir -p "$RESULTS_DIR"
: >"$RAW"
echo "# $(date -u +%FT%TZ) $(machine_note)" >>"$RAW"

shoal_runs() { # LABEL (SWARMD_FLAGS set by the caller)
  local label=$1
  cluster_up 3 0 redb
  local r line leader members pids t0 healthy
  for r in $(seq 1 "$RUNS"); do
    members="m1=$(ep m1),m2=$(ep m2),m3=$(ep m3)"
    pids="m1=${NODE_PID[m1]},m2=${NODE_PID[m2]},m3=${NODE_PID[m3]}"
    wait_quiet
    line=$(LG failover --system shoal --members "$members" --pids "$pids" --run "$r" --request-timeout-ms "$REQUEST_TIMEOUT_MS") || die "shoal failover run $r failed"
    leader=$(echo "$line" | field old_leader)
    { wait "${NODE_PID[$leader]}"; } 2>/dev/null || true   # reap the killed swarmd
    untrack "${NODE_PID[$leader]}"
    t0=$(now_ms)
    swarmd_start "$leader" "${NODE_PORT[$leader]}"
    LG wait-healthy --endpoint "$(ep "$leader")" --nodes 3 --timeout 60 >/dev/null || die "cluster not healthy after restarting $leader"
    healthy=$(( $(now_ms) - t0 ))
    echo "label=$label run=$r $line healthy_ms=$healthy" >>"$RAW"
    log "$label run $r: leader $leader killed; write acked after $(echo "$line" | field gap_ms) ms, new leader seen after $(echo "$line" | field leader_ms) ms; healthy ${healthy} ms after restart"
  done
  cluster_down
}

etcd_runs() { # LABEL
  local label=$1 r line leader members pids t0 healthy eps
  etcd_up
  eps=$(etcd_endpoints)
  for r in $(seq 1 "$RUNS"); do
    members="e1=${ETCD_URL[e1]},e2=${ETCD_URL[e2]},e3=${ETCD_URL[e3]}"
    pids="e1=${ETCD_PID[e1]},e2=${ETCD_PID[e2]},e3=${ETCD_PID[e3]}"
    wait_quiet
    line=$(LG failover --system etcd --members "$members" --pids "$pids" --run "$r" --request-timeout-ms "$REQUEST_TIMEOUT_MS") || die "etcd failover run $r failed"
    leader=$(echo "$line" | field old_leader)
    { wait "${ETCD_PID[$leader]}"; } 2>/dev/null || true
    untrack "${ETCD_PID[$leader]}"
    t0=$(now_ms)
    etcd_start "$leader"
    healthy=""
    for _ in $(seq 1 600); do   # up to 60 s
      if ETCDCTL_API=3 etcdctl --endpoints "$eps" --command-timeout=1s endpoint health >/dev/null 2>&1; then healthy=$(( $(now_ms) - t0 )); break; fi
      sleep 0.05
    done
    [ -n "$healthy" ] || die "etcd not healthy 60 s after restarting $leader"
    echo "label=$label run=$r $line healthy_ms=$healthy" >>"$RAW"
    log "$label run $r: leader $leader killed; write acked after $(echo "$line" | field gap_ms) ms, new leader seen after $(echo "$line" | field leader_ms) ms; healthy ${healthy} ms after restart"
  done
  etcd_down
}

for sys in $SYSTEMS; do
  case $sys in
    shoal)
      shoal_runs shoal
      if [ "$SHOAL_FAST" = 1 ]; then SWARMD_FLAGS="--election-timeout 150ms --raft-heartbeat 40ms" shoal_runs shoal-150ms; fi
      ;;
    etcd)
      etcd_runs etcd
      if [ "$ETCD_MATCHED" = 1 ]; then ETCD_FLAGS="$ETCD_MATCHED_FLAGS" etcd_runs etcd-matched; fi
      ;;
    *) die "unknown system $sys" ;;
  esac
done
echo "# end $(date -u +%FT%TZ) $(machine_note)" >>"$RAW"
render
