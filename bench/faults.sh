#!/usr/bin/env bash
# (q) The fault-injection harness's long form: RUNS seeded fault runs (tests/src/faults) on a lab
# of MANAGERS managers, each SECS seconds of faults — kill -9 and restart on the same state dir,
# SIGSTOP/SIGCONT, nftables partitions between the managers' namespaces, faults aimed at the
# leader, snapshots every 40 entries with 20 kept (so lagging managers are sent snapshots) —
# under seeded clients doing compare-and-set updates and creates. After each run the history is
# checked for linearizability (stateright), acknowledged creates on every manager, equal store
# digests. Runs go on after a failing seed; the seeds to replay are listed.
#
# Env: RUNS=100 SEED=1000 (seeds SEED..SEED+RUNS-1) MANAGERS=5 SECS=40 CLIENTS=4
#      SUBNET=198.19.X.0/24 (default: each lab's own pick) PROFILE=debug|release
#      NO_BUILD=1 (run the test binary already built in $CARGO_TARGET_DIR, no cargo at all).
# Output: $RESULTS_DIR/faults.raw (one line per run) and faults.md (the summary).
# Replay one seed: SHOAL_FAULTS_SEEDS=S SHOAL_FAULTS_MANAGERS=5 SHOAL_FAULTS_SECS=40 \
#   cargo test -p shoal-tests --test faults -- --ignored --nocapture
# Needs root (labs of network namespaces). Each run removes its lab, even when it fails.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
RUNS=${RUNS:-100}
SEED=${SEED:-1000}
MANAGERS=${MANAGERS:-5}
SECS=${SECS:-40}
CLIENTS=${CLIENTS:-4}
PROFILE=${PROFILE:-debug}
RAW=$RESULTS_DIR/faults.raw

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p"; }

render() {
  local runs pass fail acked completed ops unknown installs lost viol errs
  runs=$(grep -c '^PASS \|^FAIL ' "$RAW" || true)
  pass=$(grep -c '^PASS ' "$RAW" || true)
  fail=$(grep '^FAIL ' "$RAW" | field seed | tr '\n' ' ' || true)
  sum() { grep '^PASS \|^FAIL ' "$RAW" | field "$1" | awk '{s+=$1} END{print s+0}'; }
  acked=$(sum acked); completed=$(sum completed); unknown=$(sum unknown)
  installs=$(sum snapshot_installs); lost=$(sum lost); viol=$(sum violations); errs=$(sum errors)
  ops=$(( $(sum ok) + $(sum failed) + unknown ))
  {
    echo "| runs | passed | managers | faults injected | client writes (ok / refused / unknown) | operations checked | acknowledged writes checked | snapshot installs | lost | linearizability violations | other errors | failing seeds |"
    echo "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
    printf '| %s | %s | %s | %s | %s (%s / %s / %s) | %s | %s | %s | %s | %s | %s | %s |\n' \
      "$runs" "$pass" "$MANAGERS" "$(sum faults)" "$ops" "$(sum ok)" "$(sum failed)" "$unknown" \
      "$completed" "$acked" "$installs" "$lost" "$viol" "$errs" "${fail:-none}"
    echo
    echo "Faults by kind: $(grep -o '\[[^]]*\]' "$RAW" | tr -d '[]' | tr ' ' '\n' | awk -F= 'NF==2{s[$1]+=$2} END{for(k in s) printf "%s=%d ", k, s[k]}')"
    echo "Seeds: $(grep '^PASS \|^FAIL ' "$RAW" | field seed | sort -n | sed -n '1p;$p' | tr '\n' ' ' | sed 's/ $//;s/ /../')"
  } >"$RESULTS_DIR/faults.md"
  cat "$RESULTS_DIR/faults.md"
}
if [ "${1:-}" = render ]; then render; exit 0; fi

[ "$(id -u)" -eq 0 ] || { echo "bench/faults.sh needs root: the runs build labs of network namespaces" >&2; exit 1; }
mkdir -p "$RESULTS_DIR"
cd "$REPO"
flag=()
[ "$PROFILE" = release ] && flag=(--release)
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build -q "${flag[@]}" --workspace --bins
  cargo test -q "${flag[@]}" -p shoal-tests --test faults --no-run
fi
target=${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE
# shellcheck disable=SC2012
exe=$(ls -t "$target"/deps/faults-* 2>/dev/null | grep -v '\.d$' | head -1)
[ -x "$exe" ] || { echo "no faults test binary under $target/deps: build it (without NO_BUILD=1)" >&2; exit 1; }
echo "# $(date -u +%FT%TZ) runs=$RUNS seeds=$SEED.. managers=$MANAGERS secs=$SECS clients=$CLIENTS profile=$PROFILE $(nproc) cpus" >>"$RAW"
export SHOAL_FAULTS_SEED=$SEED SHOAL_FAULTS_RUNS=$RUNS SHOAL_FAULTS_MANAGERS=$MANAGERS \
  SHOAL_FAULTS_SECS=$SECS SHOAL_FAULTS_CLIENTS=$CLIENTS SHOAL_FAULTS_KEEP_GOING=1 \
  SHOAL_FAULTS_RESULTS=$RAW
[ -n "${SUBNET:-}" ] && export SHOAL_FAULTS_SUBNET=$SUBNET
rc=0
SHOAL_BIN_DIR=$target "$exe" --ignored --nocapture || rc=$?
render
exit "$rc"
