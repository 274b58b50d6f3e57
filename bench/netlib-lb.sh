#!/usr/bin/env bash
# netlib's load balancer: time to program 1,000 services x 10 backends from empty, and the
# latency of one backend change with those present, against two baselines measured in the same
# process (the same change with 1 service present; a full reload of the whole table, what a
# balancer without incremental updates pays per change). nftables only: this kernel has no IPVS.
#
#   cargo bench -p shoal-netlib --bench lb_program      (root: it builds one throwaway namespace)
#
# Output: $RESULTS_DIR/netlib-lb.md (3 runs).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_init netlib-lb
mkdir -p "$RESULTS_DIR"
bash "$REPO/deploy/deps.sh"
{
  for i in 1 2 3; do
    log "cargo bench -p shoal-netlib --bench lb_program (run $i) — $(machine_note)"
    (cd "$REPO" && cargo bench -q -p shoal-netlib --bench lb_program 2>"$BASE/lb.err") | grep '^|'
    echo
  done
  echo "$(date -u +%FT%TZ), $(machine_note)"
} >"$RESULTS_DIR/netlib-lb.md"
cat "$RESULTS_DIR/netlib-lb.md"
