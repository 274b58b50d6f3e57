#!/usr/bin/env bash
# (b) raft storage, sled vs redb, (e) the scheduler and (n) encryption at rest: the manager
# crate's own cargo benches, run here so that their tables land next to the cluster numbers.
#
#   cargo bench -p shoal-manager --bench storage     durable append latency, disk after 100k
#                                                     appends + purge of 90k, reopen time
#   cargo bench -p shoal-manager --bench scheduler   10k tasks on 1k nodes (SwarmKit: 1.8 s)
#   cargo bench -p shoal-manager --bench at_rest     raft storage plaintext vs sealed: appends of
#                                                     1 and 64 entries, a 10k-object snapshot
#
# The storage and at_rest benches write under SHOAL_BENCH_DIR (here: this run's directory under
# /var/tmp, on the root disk, not tmpfs). Env: BENCHES="storage scheduler at_rest".
# Output: $RESULTS_DIR/storage.md, scheduler.md, at_rest.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BENCHES=${BENCHES:-"storage scheduler at_rest"}
bench_init cargo
mkdir -p "$RESULTS_DIR"
for b in $BENCHES; do
  log "cargo bench -p shoal-manager --bench $b — $(machine_note)"
  out=""
  for i in 1 2 3; do   # another engineer's half-edited file can break the build: retry
    if out=$(cd "$REPO" && SHOAL_BENCH_DIR="$BASE" cargo bench -q -p shoal-manager --bench "$b" 2>"$BASE/$b.err"); then break; fi
    out=""; log "cargo bench $b failed (attempt $i): $(tail -n 3 "$BASE/$b.err")"; sleep 60
  done
  [ -n "$out" ] || die "cargo bench $b failed"
  { echo "$out" | sed -n '/^|/,$p'; echo; echo "$(date -u +%FT%TZ), $(machine_note)"; } >"$RESULTS_DIR/$b.md"
  cat "$RESULTS_DIR/$b.md"
done
