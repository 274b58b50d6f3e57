#!/usr/bin/env bash
# (m) Rolling updates (issue 18): `service update --env-add V=<run> --update-parallelism 2
# --update-delay 0s --update-order start-first` of REPLICAS (20) replicas, timed from the
# command's acknowledgement until the managers report the update `completed` (both Shoal and
# Docker Swarm wait out the default 5 s `--update-monitor` after the last new task runs before
# they say so), and until every replica runs the new spec.
#
# swarm     Docker Swarm itself, in this run: the rig of /work/shared/anchors/docker-swarm.sh
#           (sourced for its functions: 5 dockerds in namespaces swa-* on 198.18.0.0/24, busybox
#           `sleep 3600`, no network, --endpoint-mode dnsrr, --stop-grace-period 1s), RUNS updates
#           of a fresh service each. Skipped when the anchor is missing or its namespaces or
#           underlay are in use.
# same      Shoal, the same workload on a lab of 3 managers + 2 workers (the anchor's layout):
#           shoal/busybox `sleep 3600`, --network none, --endpoint-mode dnsrr,
#           --stop-grace-period 1s, image cached on every node. RUNS updates.
# mesh      Shoal, the case users care about: shoal/whoami published on 8080 through the routing
#           mesh, on an overlay network, with a health check (`wget` of its own port, every 1 s),
#           while a bounded loop of HTTP requests runs from worker1 to the published port on
#           127.0.0.1 (one connection per request, 2 s timeout each, at most UPDATE_MAX s):
#           time to complete, and requests answered / failed during the update. Docker Swarm's
#           routing mesh needs IPVS, which this kernel lacks: no Swarm row for it here.
#
# Root only. The lab and the Swarm rig are removed at exit, even on failure or Ctrl-C.
# Env: PARTS="swarm same mesh" RUNS=3 REPLICAS=20 UPDATE_MAX=300 NO_BUILD=1 SUBNET=198.18.X.0/24
# SWARM_ANCHOR=PATH KEEP=1 APPEND=1 (add to the raw file instead of starting it anew). Output: $RESULTS_DIR/update.raw, update.md; `bench/update.sh render`
# redoes the table from the raw file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PARTS=${PARTS:-"swarm same mesh"}
RUNS=${RUNS:-3}
REPLICAS=${REPLICAS:-20}
UPDATE_MAX=${UPDATE_MAX:-300}
SWARM_ANCHOR=${SWARM_ANCHOR:-/work/shared/anchors/docker-swarm.sh}
IMAGE_CACHE=${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
RAW=$RESULTS_DIR/update.raw
FLAGS=(--update-parallelism 2 --update-delay 0s --update-order start-first)
mkdir -p "$RESULTS_DIR"

render() {
  python3 - "$RAW" >"$RESULTS_DIR/update.md" <<'PY'
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from benchfmt import num, med, f0, f2  # noqa: E402
rows, notes = [], []
for l in open(sys.argv[1]):
    if l.startswith("# "):
        notes.append(l[2:].strip())
    elif l.strip():
        p = l.split()
        rows.append((p[0], dict(x.split("=", 1) for x in p[1:] if "=" in x)))
def of(tag):
    return [d for k, d in rows if k == tag]
def col(ds, key):
    return [num(d.get(key, "nan")) for d in ds]
print("# Rolling updates (bench/update.sh)")
print()
for n in notes:
    print(f"- {n}")
print()
sw, same, mesh = of("SWARM"), of("SAME"), of("MESH")
base = med(col(sw, "completed_ms"))
R = next((d["replicas"] for d in sw + same + mesh), "?")
print(f"## `service update --env-add V=N --update-parallelism 2 --update-delay 0s --update-order start-first`, {R} replicas")
print()
print("| system, workload | runs | completed, per run (ms) | completed (median) | vs Docker Swarm | all new tasks running (median) | requests answered / failed during the update |")
print("|---|---:|---|---:|---:|---:|---|")
for what, ds in (("Docker Swarm: busybox sleep, no network (baseline)", sw),
                 ("Shoal: busybox sleep, no network (same workload)", same),
                 ("Shoal: whoami, routing mesh, health check, requests running", mesh)):
    if not ds:
        continue
    xs = col(ds, "completed_ms")
    m = med(xs)
    req = ""
    if ds is mesh:
        req = " ".join(f"{d.get('ok', '?')}/{d.get('failed', '?')}" for d in ds)
    print(f"| {what} | {len(xs)} | {' '.join(f0(x) for x in xs)} | {f0(m)} ms | "
          f"{f2(m / base) if base == base and base else 'n/a'} | {f0(med(col(ds, 'running_ms')))} ms | {req} |")
print()
PY
  log "wrote $RESULTS_DIR/update.md"
}
if [ "${1:-}" = render ]; then render; cat "$RESULTS_DIR/update.md"; exit 0; fi

[ "$(id -u)" -eq 0 ] || die "bench/update.sh needs root (labs and dockerd in namespaces)"
[ "${APPEND:-0}" = 1 ] || : >"$RAW"
echo "# $(date -u +%FT%TZ), $(nproc) CPUs, Linux $(uname -r); REPLICAS=$REPLICAS RUNS=$RUNS; flags ${FLAGS[*]}; monitor 5 s (the default) on both" >>"$RAW"

# ------------------------------------------------------------------------------ Docker Swarm
# In a subshell: the anchor's functions and variables (its own BASE, traps, cleanup) stay there.
swarm_part() (
  # shellcheck disable=SC1090   # everything but its last line (`main "$@"`)
  source <(sed '$d' "$SWARM_ANCHOR")
  set +e
  install_packages
  BASE=$(mktemp -d /tmp/swarm-anchor.XXXXXX)
  export DOCKER_CONFIG=$BASE/cli
  trap cleanup EXIT
  note_cg_parent_dirs
  setup_network
  make_wrapper
  for n in "${NODES[@]}"; do start_daemon "$n"; done
  for n in "${NODES[@]}"; do wait_daemon "$n"; done
  build_image
  setup_swarm
  ver=$(dk manager1 version --format '{{.Server.Version}}')
  echo "# Docker Swarm: Docker $ver (Debian docker.io), 3 managers + 2 workers, one dockerd per netns (the anchor's rig)" >>"$RAW"
  for r in $(seq 1 "$RUNS"); do
    M=$(leader_of manager1); [ -n "$M" ] || M=manager1
    svc_create "$M" upd "$REPLICAS" >/dev/null || die "swarm: service create failed"
    wait_until 300 sh -c "[ \$(docker -H unix://$BASE/$M/docker.sock service ps upd --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running') -ge $REPLICAS ]" ||
      die "swarm: $REPLICAS replicas not running"
    # The old tasks: during a start-first update they run (desired running) next to the new.
    dk "$M" service ps upd --filter desired-state=running --format '{{.ID}}' >"$BASE/old-tasks"
    t0=$(now_ms)
    dk "$M" service update --detach --quiet --env-add "V=$r" "${FLAGS[@]}" upd >/dev/null || die "swarm: update failed"
    running="" done_ms=""
    for _ in $(seq 1 $((UPDATE_MAX * 10))); do
      if [ -z "$running" ]; then
        c=$(dk "$M" service ps upd --filter desired-state=running --format '{{.ID}} {{.CurrentState}}' |
          grep -vFf "$BASE/old-tasks" | grep -c ' Running')
        [ "$c" -ge "$REPLICAS" ] && running=$(( $(now_ms) - t0 ))
      fi
      st=$(dk "$M" service inspect upd --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}')
      [ "$st" = completed ] && { done_ms=$(( $(now_ms) - t0 )); break; }
      [ $(( $(now_ms) - t0 )) -gt $((UPDATE_MAX * 1000)) ] && break
      sleep 0.1
    done
    [ -n "$done_ms" ] || die "swarm: update not completed after $UPDATE_MAX s (state $st)"
    echo "SWARM run=$r replicas=$REPLICAS completed_ms=$done_ms running_ms=${running:-nan}" >>"$RAW"
    log "swarm run $r: completed after $done_ms ms (all new running after ${running:-?} ms)"
    svc_rm_wait "$M" upd
  done
)

if [[ " $PARTS " == *" swarm "* ]]; then
  if [ ! -r "$SWARM_ANCHOR" ]; then
    echo "# Docker Swarm: $SWARM_ANCHOR not found: no Swarm row" >>"$RAW"
  elif ip netns list | grep -q '^swa-' || ip -4 -o addr show | grep -q ' 198\.18\.0\.'; then
    echo "# Docker Swarm: the anchor's namespaces or underlay were in use: no Swarm row" >>"$RAW"
  else
    log "swarm: the anchor's rig, $RUNS updates of $REPLICAS replicas"
    swarm_part >"$RESULTS_DIR/update-swarm.log" 2>&1 || log "swarm part failed: $(tail -n 3 "$RESULTS_DIR/update-swarm.log" | tr '\n' ' ')"
  fi
fi

# ------------------------------------------------------------------------------ Shoal
[[ " $PARTS " == *" same "* || " $PARTS " == *" mesh "* ]] || { render; exit 0; }
[ -f "$IMAGE_CACHE/oci/index.json" ] || die "no demo images in $IMAGE_CACHE/oci: run deploy/images.sh (as root) first"
lab_init update
build_release_bins
LAB_UP_ARGS="--images $IMAGE_CACHE/oci" lab_up
# Every node pulls both images once: the measured updates start from cached images.
swarmctl service create -d --name warm1 --mode global --network none shoal/busybox sleep 100000 >/dev/null 9>&- ||
  die "warm-up service failed"
swarmctl service create -d --name warm2 --mode global --network none shoal/whoami >/dev/null 9>&- ||
  die "warm-up service failed"
wait_running warm1 5 180
wait_running warm2 5 180
swarmctl service rm warm1 warm2 >/dev/null 9>&-

state_of() { swarmctl service inspect "$1" --format json 2>/dev/null | python3 -c 'import json,sys; print((json.load(sys.stdin)[0].get("update_status") or {}).get("state", ""))' 2>/dev/null || true; }
new_running() { # SERVICE MARKER: running tasks whose spec has MARKER in its env
  swarmctl service ps "$1" --format json 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin) if t["status"]["state"] == "running" and t["desired_state"] == "running" and sys.argv[1] in t["spec"]["env"]))' "$2" 2>/dev/null || echo 0
}
# One update of SERVICE: prints "completed_ms running_ms".
timed_update() { # SERVICE RUN
  local t0 running="" done_ms="" st=""
  t0=$(now_ms)
  swarmctl service update -d --env-add "V=$2" "${FLAGS[@]}" "$1" >/dev/null 9>&- || die "update of $1 failed"
  while [ $(( $(now_ms) - t0 )) -lt $((UPDATE_MAX * 1000)) ]; do
    if [ -z "$running" ] && [ "$(new_running "$1" "V=$2")" -ge "$REPLICAS" ]; then running=$(( $(now_ms) - t0 )); fi
    st=$(state_of "$1")
    [ "$st" = completed ] && { done_ms=$(( $(now_ms) - t0 )); break; }
    sleep 0.1
  done
  [ -n "$done_ms" ] || die "$1: update not completed after $UPDATE_MAX s (state $st)"
  echo "$done_ms ${running:-nan}"
}

if [[ " $PARTS " == *" same "* ]]; then
  swarmctl service create -d --name upd --replicas "$REPLICAS" --network none --endpoint-mode dnsrr \
    --stop-grace-period 1s shoal/busybox sleep 3600 >/dev/null 9>&- || die "create upd failed"
  wait_running upd "$REPLICAS" 180
  for r in $(seq 1 "$RUNS"); do
    read -r c run < <(timed_update upd "$r")
    echo "SAME run=$r replicas=$REPLICAS completed_ms=$c running_ms=$run" >>"$RAW"
    log "same run $r: completed after $c ms (all new running after $run ms)"
  done
  swarmctl service rm upd >/dev/null 9>&-
fi

if [[ " $PARTS " == *" mesh "* ]]; then
  swarmctl network create -d overlay bench_net >/dev/null 9>&-
  swarmctl service create -d --name web --replicas "$REPLICAS" --publish 8080 --network bench_net \
    --health-cmd "wget -q -O /dev/null http://127.0.0.1:8080/name" --health-interval 1s \
    shoal/whoami >/dev/null 9>&- || die "create web failed"
  wait_running web "$REPLICAS" 180
  port=$(swarmctl service inspect web --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ports"][0]["published"])')
  for r in $(seq 1 "$RUNS"); do
    stop=$BASE/stop-$r
    # Bounded: until the stop file, UPDATE_MAX s or 50,000 requests.
    loop="end=\$(( \$(date +%s) + $UPDATE_MAX )); n=0; while [ ! -e $stop ] && [ \$(date +%s) -lt \$end ] && [ \$n -lt 50000 ]; do n=\$((n+1)); curl -s -m 2 -o /dev/null http://127.0.0.1:$port/name && echo OK || echo FAIL; done"
    bg_start swarmctl lab exec --name "$LAB" worker1 -- sh -c "$loop" >"$BASE/requests-$r.txt" 2>&1
    looper=$BGPID
    sleep 1
    read -r c run < <(timed_update web "$r")
    touch "$stop"
    bg_stop "$looper"
    ok=$(grep -c '^OK$' "$BASE/requests-$r.txt" || true)
    failed=$(grep -c '^FAIL$' "$BASE/requests-$r.txt" || true)
    echo "MESH run=$r replicas=$REPLICAS completed_ms=$c running_ms=$run ok=$ok failed=$failed" >>"$RAW"
    log "mesh run $r: completed after $c ms; requests $ok answered, $failed failed"
  done
fi
render
cat "$RESULTS_DIR/update.md"
