#!/usr/bin/env bash
# netlib's load balancer: time to program 1,000 services x 10 backends from empty, and the
# latency of one backend change with those present, against two baselines measured in the same
# process (the same change with 1 service present; a full reload of the whole table, what a
# balancer without incremental updates pays per change). This machine's kernel has no IPVS, so
# the same bench binary then runs once more inside a throwaway VM (tests/vm/run-in-vm.sh, Debian's
# kernel under QEMU TCG), which measures IPVS and nftables side by side in one process (both
# slowed alike by the emulation: compare them with each other, not with the host rows).
#
#   cargo bench -p shoal-netlib --bench lb_program      (root: it builds one throwaway namespace)
#
# Output: $RESULTS_DIR/netlib-lb.md (3 host runs, 1 VM run). VM=0 skips the VM run.
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
  if [ "${VM:-1}" = 1 ]; then
    exe=$(cd "$REPO" && cargo bench -q -p shoal-netlib --bench lb_program --no-run --message-format=json 2>/dev/null |
      sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    log "the same bench in a VM (IPVS and nftables, QEMU TCG) — $(machine_note)"
    echo "In a VM (Debian kernel, QEMU TCG, 1 vCPU):"
    echo
    SHOAL_VM_TEST_TIMEOUT=500 SHOAL_VM_TIMEOUT=600 bash "$REPO/tests/vm/run-in-vm.sh" "$exe" 2>>"$BASE/lb.err" | grep '^|'
    echo
  fi
  echo "$(date -u +%FT%TZ), $(machine_note)"
} >"$RESULTS_DIR/netlib-lb.md"
cat "$RESULTS_DIR/netlib-lb.md"
