#!/usr/bin/env bash
# (a) Raft writes: Shoal (3 managers) vs etcd (3 members, Debian etcd-server), same machine, same
# load generator, same client concurrency, interleaved in rounds.
#
# A Shoal write is one `UpdateService` setting label bench=<n> on the client's own 0-replica
# service (one raft entry; no other client and no leader actor writes that service, so there are
# no version conflicts). An etcd write is one `Put` of the client's own key with a 256-byte value.
# Both fsync every commit (redb/sled flush per append; etcd's WAL fsync).
#
# Each measurement waits for the machine to be quiet first (lib.sh wait_quiet) and is repeated
# (at most twice) when other processes used more than NOISY_PCT % of a core during its window.
#
# TLS: Shoal's managers talk mutual TLS (the default); with TRANSPORTS="tls plain" each engine
# also runs as an --insecure-plaintext cluster in the same rounds, and a second table gives the
# cost of TLS (TLS / plain). ETCD=0 skips etcd (the TLS table needs no etcd).
#
# Env: ROUNDS=3 DURATION=10 WARMUP=2 CLIENTS="1 64" TARGETS="leader all" ENGINES="redb sled"
#      TRANSPORTS="tls" ETCD=1 NAME=writes QUIET_PCT=15 QUIET_MAX=300 NOISY_PCT=25
# Output: $RESULTS_DIR/$NAME.raw (RESULT lines) and $NAME.md (table).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-"1 64"}
TARGETS=${TARGETS:-"leader all"}
ENGINES=${ENGINES:-"redb sled"}
TRANSPORTS=${TRANSPORTS:-"tls"}
ETCD=${ETCD:-1}

NAME=${NAME:-writes}
RAW=$RESULTS_DIR/$NAME.raw
# ------------------------------------------------------------------------------------ table
render() {
get() { # LABEL TARGET CLIENTS KEY -> median over rounds
  local vals
  vals=$( (grep "^label=$1 " "$RAW" | grep " target=$2 clients=$3 " | field "$4" | tr '\n' ' ') || true)
  # shellcheck disable=SC2086
  median $vals
}
maxget() { local vals; vals=$( (grep "^label=$1 " "$RAW" | grep " target=$2 clients=$3 " | field "$4" | tr '\n' ' ') || true); maxof $vals; }
{
  echo "| clients → member | system | writes/s | p50 ms | p99 ms | writes/s vs etcd | p50 vs etcd | p99 vs etcd | server CPU µs/write | errors | other CPU % (max) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for target in $TARGETS; do
    for c in $CLIENTS; do
      er=$(get etcd "$target" "$c" rate); e50=$(get etcd "$target" "$c" p50_ms); e99=$(get etcd "$target" "$c" p99_ms)
      for label in $(for e in $ENGINES; do echo "shoal-$e"; [[ " $TRANSPORTS " == *" plain "* ]] && echo "shoal-$e-plain"; done) etcd; do
        rt=$(get "$label" "$target" "$c" rate); p50=$(get "$label" "$target" "$c" p50_ms); p99=$(get "$label" "$target" "$c" p99_ms)
        cpu=$(get "$label" "$target" "$c" server_cpu_us_per_write); errs=$(maxget "$label" "$target" "$c" errors)
        other=$(maxget "$label" "$target" "$c" other_cpu_pct)
        if [ "$rt" = n/a ]; then continue; fi
        if [ "$label" = etcd ]; then rr="1"; r50="1"; r99="1"; else rr=$(ratio "$rt" "$er"); r50=$(ratio "$p50" "$e50"); r99=$(ratio "$p99" "$e99"); fi
        printf '| %s → %s | %s | %.0f | %.2f | %.2f | %s | %s | %s | %.0f | %s | %s |\n' "$c" "$target" "$label" "$rt" "$p50" "$p99" "$rr" "$r50" "$r99" "$cpu" "$errs" "${other:-n/a}"
      done
    done
  done
  echo
  if [[ " $TRANSPORTS " == *" plain "* ]]; then
    echo "Cost of mutual TLS between the managers and to the client (same rounds; ratio TLS / plain):"
    echo
    echo "| clients → member | engine | writes/s TLS | writes/s plain | writes/s TLS / plain | p50 ms TLS | p50 ms plain | p99 ms TLS / plain |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for target in $TARGETS; do
      for c in $CLIENTS; do
        for e in $ENGINES; do
          rt=$(get "shoal-$e" "$target" "$c" rate); rp=$(get "shoal-$e-plain" "$target" "$c" rate)
          t50=$(get "shoal-$e" "$target" "$c" p50_ms); p50=$(get "shoal-$e-plain" "$target" "$c" p50_ms)
          t99=$(get "shoal-$e" "$target" "$c" p99_ms); p99=$(get "shoal-$e-plain" "$target" "$c" p99_ms)
          if [ "$rt" = n/a ] || [ "$rp" = n/a ]; then continue; fi
          printf '| %s → %s | %s | %.0f | %.0f | %s | %.2f | %.2f | %s |\n' "$c" "$target" "$e" "$rt" "$rp" "$(ratio "$rt" "$rp")" "$t50" "$p50" "$(ratio "$t99" "$p99")"
        done
      done
    done
    echo
  fi
  # shellcheck disable=SC2046
  local $(sed -n 's/^# params //p' "$RAW" | head -1)
  echo "Medians of ${ROUNDS} rounds of ${DURATION} s each (after ${WARMUP} s warm-up), Shoal and etcd interleaved. Errors: the largest count in one round. Other CPU: the largest share of a core used by processes other than the servers and the load generator during a measured window (other people's builds and tests; 100 = one core)."
} >"$RESULTS_DIR/$NAME.md"
cat "$RESULTS_DIR/$NAME.md"
}

if [ "${1:-}" = render ]; then render; exit 0; fi   # re-render the table from writes.raw

bench_init writes
build_bins
mkdir -p "$RESULTS_DIR"
: >"$RAW"
echo "# $(date -u +%FT%TZ) $(machine_note)" >>"$RAW"
echo "# params ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP" >>"$RAW"
echo "# transports $TRANSPORTS" >>"$RAW"

shoal_pids() { local p="" n; for n in m1 m2 m3; do p+="${p:+,}${NODE_PID[$n]}"; done; echo "$p"; }
etcd_pids() { local p="" n; for n in e1 e2 e3; do p+="${p:+,}${ETCD_PID[$n]}"; done; echo "$p"; }

run_one() { # SYSTEM LABEL TARGET CLIENTS ROUND
  local sys=$1 label=$2 target=$3 c=$4 r=$5 eps pids line other try
  if [ "$sys" = shoal ]; then eps="$(ep m1),$(ep m2),$(ep m3)"; pids=$(shoal_pids); else eps=$(etcd_endpoints); pids=$(etcd_pids); fi
  for try in 1 2 3; do
    wait_quiet
    line=$(LG write --system "$sys" --endpoints "$eps" --target "$target" --clients "$c" \
      --duration "$DURATION" --warmup "$WARMUP" --server-pids "$pids") || die "write benchmark failed ($label $target $c)"
    other=$(echo "$line" | field other_cpu_pct)
    # Someone else's work started during the window: measure again (at most twice).
    if [ "${other:-0}" -le "${NOISY_PCT:-25}" ] || [ "$try" = 3 ]; then break; fi
    echo "# discarded (other work used ${other}% of a core): label=$label round=$r $line" >>"$RAW"
    log "  $label $target c=$c: other work used ${other}% of a core during the window; measuring again"
  done
  echo "label=$label round=$r $line" >>"$RAW"
  log "  $label $target c=$c: $(echo "$line" | field rate)/s p50 $(echo "$line" | field p50_ms) ms p99 $(echo "$line" | field p99_ms) ms errors $(echo "$line" | field errors) other-cpu $other%"
}

if [ "$ETCD" = 1 ]; then etcd_up; fi
first=$ETCD
BASE_FLAGS=$SWARMD_FLAGS
for engine in $ENGINES; do
  for transport in $TRANSPORTS; do
    label="shoal-$engine"; SWARMD_FLAGS=$BASE_FLAGS
    if [ "$transport" = plain ]; then label="shoal-$engine-plain"; SWARMD_FLAGS="$BASE_FLAGS --insecure-plaintext"; fi
    cluster_up 3 0 "$engine"
    for r in $(seq 1 "$ROUNDS"); do
      log "round $r/$ROUNDS ($engine, $transport) — $(machine_note)"
      for target in $TARGETS; do
        for c in $CLIENTS; do
          run_one shoal "$label" "$target" "$c" "$r"
          if [ "$first" = 1 ]; then run_one etcd etcd "$target" "$c" "$r"; fi
        done
      done
    done
    cluster_down
    first=0
  done
done
SWARMD_FLAGS=$BASE_FLAGS
if [ "$ETCD" = 1 ]; then etcd_down; fi
echo "# end $(date -u +%FT%TZ) $(machine_note)" >>"$RAW"

render
