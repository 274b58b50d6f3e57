#!/usr/bin/env bash
# (k) Three VMs under emulation (issue #9): tests/vm/cluster.sh RUNS times (default 3), each a
# fresh boot of 3 QEMU/TCG VMs; medians of: QEMU start -> 3 VMs booted, booted -> 3 nodes Ready
# (swarmd started from the deploy kit's config, two joins with tokens), `service create` of web
# (3 replicas, published port, overlay) + client -> all running. These are emulated-CPU figures
# (TCG, no KVM: every guest instruction is translated), not what the same steps take on VMs with
# hardware virtualisation. Output: $RESULTS_DIR/vm-cluster.md (and .raw).
# Env: RUNS=3; the binaries of $CARGO_TARGET_DIR/debug (build the workspace first).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || die "bench/vm-cluster.sh needs root (it boots VMs on a private bridge)"
RUNS=${RUNS:-3}
bench_init vm-cluster
mkdir -p "$RESULTS_DIR"
RAW=$RESULTS_DIR/vm-cluster.raw
echo "# $(date -u +%FT%TZ) $(machine_note)" >"$RAW"
for r in $(seq 1 "$RUNS"); do
  wait_quiet
  line=$(bash "$REPO/tests/vm/cluster.sh" "${CARGO_TARGET_DIR}/debug" 2>&1 | tee "$BASE/run$r.log" | grep '^CLUSTER-TIMINGS' || true)
  grep -q 'all checks passed' "$BASE/run$r.log" || die "run $r: the cluster test failed (see $BASE/run$r.log)"
  echo "run=$r ${line#CLUSTER-TIMINGS }" >>"$RAW"
  log "run $r: ${line#CLUSTER-TIMINGS }"
done
get() { median $(sed -n "s/.* $1=\([0-9.]*\).*/\1/p" "$RAW" | tr '\n' ' '); }
{
  echo "| step (3 VMs, 1 vCPU and ${SHOAL_VM_MEM:-768} MiB each, QEMU TCG) | median s | runs |"
  echo "|---|---:|---|"
  echo "| QEMU start → 3 VMs booted (init ready) | $(get booted) | $(sed -n 's/.* booted=\([0-9.]*\).*/\1/p' "$RAW" | tr '\n' ' ') |"
  echo "| booted → 3 nodes Ready (init + 2 joins from the kit's config) | $(get ready) | $(sed -n 's/.* ready=\([0-9.]*\).*/\1/p' "$RAW" | tr '\n' ' ') |"
  echo "| service create (web ×3 + client) → all running | $(get converged) | $(sed -n 's/.* converged=\([0-9.]*\).*/\1/p' "$RAW" | tr '\n' ' ') |"
} >"$RESULTS_DIR/vm-cluster.md"
cat "$RESULTS_DIR/vm-cluster.md"
