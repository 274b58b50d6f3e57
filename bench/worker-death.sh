#!/usr/bin/env bash
# (d) kill -9 a worker -> its task RUNNING elsewhere, and (f) `service create --replicas 50` ->
# 50 RUNNING, on a 3-manager + 2-worker cluster (the Swarm anchor's layout), default timing
# (heartbeat period 500 ms, 3 misses -> DOWN; restart delay 1 s).
#
# (d) per run: service `web` (5 replicas of `sleep 1000`, one per node) is created and RUNNING
#     with one task on w1; w1's swarmd is killed with SIGKILL (its task processes die with it:
#     PR_SET_PDEATHSIG); polling every 20 ms through m1: w1 DOWN, and 5 tasks RUNNING on nodes
#     other than w1. Then w1 is restarted on its state dir and the time until all 5 nodes are
#     READY again is measured; `web` is removed.
# (f) per run: create `conv` with 50 replicas; time to the create's acknowledgement and until 50
#     tasks are RUNNING (polled every 20 ms); then it is removed.
#
# The worker dies two ways: SIGKILL (the kernel closes its connections, so the managers see its
# session end) and SIGSTOP (it goes silent with its connections open, like a hung or cut-off
# host: only the missed heartbeats tell).
#
# Env: RUNS=5 CONV_REPLICAS=50 PARTS="worker converge" SIGNALS="kill stop". Output: $RESULTS_DIR/worker.raw, worker.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
CONV_REPLICAS=${CONV_REPLICAS:-50}
PARTS=${PARTS:-"worker converge"}
SIGNALS=${SIGNALS:-"kill stop"}
RAW=$RESULTS_DIR/worker.raw

render() {
  col() { (grep "^label=$1 " "$RAW" | field "$2" | tr '\n' ' ') || true; }
  row() { # TEXT VALUES...
    local text=$1; shift
    [ $# -gt 0 ] || return 0
    printf '| %s | %s | %s ms | %s ms | %s |\n' "$text" "$#" "$(median "$@")" "$(maxof "$@")" "$*"
  }
  local sig what
  {
    echo "| metric | runs | median | max | per run (ms) |"
    echo "|---|---:|---:|---:|---|"
    for sig in kill stop; do
      case $sig in kill) what="kill -9 worker";; stop) what="SIGSTOP worker (silent)";; esac
      # shellcheck disable=SC2046
      row "$what → node DOWN" $(col "worker-$sig" down_ms)
      # shellcheck disable=SC2046
      row "$what → its task RUNNING elsewhere (5/5 on other nodes)" $(col "worker-$sig" replaced_ms)
      # shellcheck disable=SC2046
      row "restart that worker → all 5 nodes READY" $(col "worker-$sig" healthy_ms)
    done
    # shellcheck disable=SC2046
    row "service create ×$CONV_REPLICAS → create acked" $(col converge ack_ms)
    # shellcheck disable=SC2046
    row "service create ×$CONV_REPLICAS → all RUNNING" $(col converge running_ms)
  } >"$RESULTS_DIR/worker.md"
  cat "$RESULTS_DIR/worker.md"
}
if [ "${1:-}" = render ]; then render; exit 0; fi

bench_init worker
build_bins
mkdir -p "$RESULTS_DIR"
: >"$RAW"
echo "# $(date -u +%FT%TZ) $(machine_note)" >>"$RAW"

cluster_up 3 2 redb

# New nodes get a grace period (2 x 3 heartbeats) before a missing session marks them DOWN; real
# nodes are older than that.
sleep 3
if [[ " $PARTS " == *" worker "* ]]; then
  for sig in $SIGNALS; do
    for r in $(seq 1 "$RUNS"); do
      wait_quiet
      line=$(LG replace --endpoint "$(ep m1)" --service web --replicas 5 --victim w1 --pid "${NODE_PID[w1]}" --signal "$sig" --max 60) || die "worker run $r ($sig) failed"
      # A stopped swarmd is killed now (its task processes die with it), then restarted.
      kill -KILL "${NODE_PID[w1]}" 2>/dev/null || true
      { wait "${NODE_PID[w1]}"; } 2>/dev/null || true
      untrack "${NODE_PID[w1]}"
      t0=$(now_ms)
      swarmd_start w1 "${NODE_PORT[w1]}"
      LG wait-healthy --endpoint "$(ep m1)" --nodes 5 --timeout 60 >/dev/null || die "w1 did not come back"
      healthy=$(( $(now_ms) - t0 ))
      echo "label=worker-$sig run=$r $line healthy_ms=$healthy" >>"$RAW"
      log "worker run $r (SIG$(echo "$sig" | tr a-z A-Z)): w1 DOWN after $(echo "$line" | field down_ms) ms, replaced after $(echo "$line" | field replaced_ms) ms; back READY ${healthy} ms after its restart"
      LG rm-service --endpoint "$(ep m1)" web || die "cannot remove web"
    done
  done
fi

if [[ " $PARTS " == *" converge "* ]]; then
  for r in $(seq 1 "$RUNS"); do
    wait_quiet
    line=$(LG converge --endpoint "$(ep m1)" --name conv --replicas "$CONV_REPLICAS" --max 120) || die "converge run $r failed"
    echo "label=converge run=$r $line" >>"$RAW"
    log "converge run $r: acked after $(echo "$line" | field ack_ms) ms, $CONV_REPLICAS RUNNING after $(echo "$line" | field running_ms) ms"
  done
fi

cluster_down
echo "# end $(date -u +%FT%TZ) $(machine_note)" >>"$RAW"
render
