#!/usr/bin/env bash
# (l) Containers (issue 17): Shoal running OCI containers of the demo image `shoal/busybox`
# (deploy/images.sh), pulled from a local registry (Debian's docker-registry).
#
# swarm     Docker Swarm's own figure, in this run: /work/shared/anchors/docker-swarm.sh with
#           MEASURE=converge (5 dockerds in namespaces swa-* on 198.18.0.0/24; busybox containers,
#           no network, image already on every node), RUNS runs. Skipped (the recorded anchor,
#           3,042 ms, is shown instead) when the script is missing or its namespaces or underlay
#           are in use.
# replicas  `service create -d --replicas 50 --network none shoal/busybox sleep 100000` -> 50 tasks
#           RUNNING (polled every 50 ms through `service ps --format json`), on a lab of 3
#           managers + 2 workers (the anchor's layout). RUNS rounds, each on a fresh lab: the first
#           run of a round is cold (every node's image store is empty: one pull per node from the
#           lab's registry), then CACHED runs with the image in every store. After each run the
#           service is removed and the script waits until its tasks and task namespaces are gone.
# pull      One cold pull of the same image from the same registry (on 127.0.0.1 here,
#           deploy/registry.sh), PULL_RUNS runs, interleaved: Shoal's image code
#           (`shoal-loadgen pull`: shoal_image::Store::pull into an empty store: manifest, config,
#           layers verified, root unpacked) vs `docker pull` by Debian's dockerd (docker.io,
#           installed with apt when missing; started here with its own data root, exec root,
#           pidfile and socket under the run directory, `--bridge=none --iptables=false
#           --ip6tables=false`: it touches no host networking; `docker rmi` before every pull).
#           Both timed as whole commands; also Shoal's time inside the process and dockerd's
#           through its API (`POST /images/create` with curl, no CLI).
# runtimes  runc vs crun: a 1-node lab per runtime (`swarmd --oci-runtime PATH`), where PATH is a
#           wrapper named like the runtime that runs the real binary and records each call's wall
#           time, CPU time and peak RSS (wait4's rusage). RT_REPLICAS containers (image cached by a
#           warm-up task first); start latency = create + start wall time per container; CPU per
#           container = create + start + the init's CPU before it executed the task; then per
#           container the RSS/PSS of what stays (the container's init; the runtimes do not stay:
#           both run detached), and how many runtime processes are left.
#
# Root only. Labs get a unique name (bench + 3 digits), SUBNET (default: a free /24 in
# 198.18.200-250.0) and their state in the run directory under /var/tmp; at exit, even on failure
# or Ctrl-C, the lab is removed (`swarmctl lab down`), dockerd, the registry and every other
# process the script started are stopped by PID, dockerd's mounts under the run directory are
# unmounted, and the run directory is removed.
#
# Env: PARTS="swarm pull runtimes replicas" RUNS=3 CACHED=2 REPLICAS=50 PULL_RUNS=5
# PULL_IMAGES="shoal/busybox shoal/nginx" RT_REPLICAS=20 RUNTIMES="runc crun" SUBNET=198.18.X.0/24
# NO_BUILD=1 (use the release binaries already in $CARGO_TARGET_DIR/release), CARGO_LOCK=FILE
# (hold this flock, e.g. /tmp/shoal-cargo.lock, during each part so no build competes; released
# between parts (LOCK_ONCE=1: one hold for the run), at most 10 min each; waiting for it at
# most LOCK_WAIT=1800 s),
# SWARM_ANCHOR=PATH, QUIET_PCT/QUIET_MAX (lib.sh; 60 s here), KEEP=1, APPEND=1 (add to the raw
# file instead of starting it anew), OCI_RUNTIME=crun (the replicas part's nodes run
# `swarmd --oci-runtime crun`; its rows are shown apart). Output: $RESULTS_DIR/containers.raw, containers.md.
# `bench/containers.sh render` redoes the table from the raw file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PARTS=${PARTS:-"swarm pull runtimes replicas"}
RUNS=${RUNS:-3}
CACHED=${CACHED:-2}
REPLICAS=${REPLICAS:-50}
PULL_RUNS=${PULL_RUNS:-5}
PULL_IMAGES=${PULL_IMAGES:-"shoal/busybox shoal/nginx"}
RT_REPLICAS=${RT_REPLICAS:-20}
RUNTIMES=${RUNTIMES:-"runc crun"}
SWARM_ANCHOR=${SWARM_ANCHOR:-/work/shared/anchors/docker-swarm.sh}
QUIET_MAX=${QUIET_MAX:-60}
IMAGE=shoal/busybox
IMAGE_CACHE=${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}
RAW=$RESULTS_DIR/containers.raw
SW_RECORDED=3042   # docker-swarm.sh on this machine kind, 2026-11-29, median of 3

render() {
  python3 - "$RAW" >"$RESULTS_DIR/containers.md" <<'PY'
import os, sys
sys.path.insert(0, os.environ["BENCH_DIR"])
from benchfmt import num, med, f0, f2  # noqa: E402

def kv(line):
    parts = line.split()
    return parts[0], dict(p.split("=", 1) for p in parts[1:] if "=" in p)

rows, notes = [], []
for l in open(sys.argv[1]):
    if l.startswith("# "):
        notes.append(l[2:].strip())
    elif l.strip():
        rows.append(kv(l))
info = {k: v for k, d in rows if k == "INFO" for k, v in d.items()}
def of(tag, **f):
    return [d for k, d in rows if k == tag and all(d.get(a) == b for a, b in f.items())]
def col(ds, key):
    return [num(d[key]) for d in ds]
def mx(xs):
    xs = [x for x in xs if x == x]
    return max(xs) if xs else float("nan")

print("# Containers (bench/containers.sh)")
print()
for n in notes:
    print(f"- {n}")
print()

# replicas
for k, d in rows:
    if k == "REPL":
        d.setdefault("runtime", "runc")
cold, cached = of("REPL", kind="cold", runtime="runc"), of("REPL", kind="cached", runtime="runc")
crun_cold, crun_cached = of("REPL", kind="cold", runtime="crun"), of("REPL", kind="cached", runtime="crun")
sw = of("SWARM")
if cold or cached:
    R = (cold or cached)[0]["replicas"]
    swm = med(col(sw, "running_ms")) if sw else num(info.get("swarm_recorded", "nan"))
    swsrc = "this run" if sw else "recorded anchor, 2026-11-29, not this run"
    base = med(col(cached, "running_ms"))
    print(f"## `service create -d --replicas {R} shoal/busybox` → {R} RUNNING (3 managers + 2 workers)")
    print()
    print("| image | runs | per run (ms) | median | max | vs cached | vs Docker Swarm | create acked (median) | `service rm` → gone (median) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for what, ds in (("cached on every node (baseline)", cached), ("cold: every node's store empty, one pull per node", cold),
                     ("cached, swarmd --oci-runtime crun", crun_cached), ("cold, swarmd --oci-runtime crun", crun_cold)):
        xs = col(ds, "running_ms")
        if not xs:
            continue
        m = med(xs)
        print(f"| {what} | {len(xs)} | {' '.join(f0(x) for x in xs)} | {f0(m)} ms | {f0(mx(xs))} ms | "
              f"{f2(m / base) if base == base and base else 'n/a'} | {f2(m / swm) if swm == swm and swm else 'n/a'} | "
              f"{f0(med(col(ds, 'ack_ms')))} ms | {f0(med(col(ds, 'gone_ms')))} ms |")
    xs = col(sw, "running_ms") if sw else []
    print(f"| Docker Swarm, busybox cached ({swsrc}) | {len(xs) or ''} | {' '.join(f0(x) for x in xs)} | {f0(swm)} ms | "
          f"{f0(mx(xs)) + ' ms' if xs else ''} | {f2(swm / base) if base == base and base else 'n/a'} | 1 | "
          f"{f0(med(col(sw, 'ack_ms'))) + ' ms' if sw else ''} | |")
    print()

# pull
pl = of("PULL")
if pl:
    print("## One cold pull from the same local registry (127.0.0.1, plain HTTP)")
    print()
    print("| image | layers, compressed | Shoal `Store::pull` (command) | Shoal inside the process | `docker pull` (CLI) | dockerd API (curl) | Shoal / docker pull | runs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for img in dict.fromkeys(d["image"] for d in pl):
        s = of("PULL", sys="shoal", image=img)
        dk = of("PULL", sys="docker", image=img)
        da = of("PULL", sys="dockerapi", image=img)
        sm, dm = med(col(s, "wall_ms")), med(col(dk, "wall_ms"))
        size = f"{s[0].get('layers', '?')}, {num(s[0].get('bytes', 'nan')) / 1048576:.1f} MiB" if s else "?"
        print(f"| `{img}` | {size} | {f0(sm)} ms | {f0(med(col(s, 'inner_ms')))} ms | {f0(dm)} ms | "
              f"{f0(med(col(da, 'wall_ms')))} ms | {f2(sm / dm) if dm == dm and dm else 'n/a'} | {len(s)} |")
    print()
    print("Per run (ms): " + "; ".join(
        f"{img} {sysn} " + " ".join(f0(x) for x in col(of("PULL", sys=sysn, image=img), "wall_ms"))
        for img in dict.fromkeys(d["image"] for d in pl) for sysn in ("shoal", "docker", "dockerapi")))
    print()

# runtimes
rts = list(dict.fromkeys(d["rt"] for d in of("RTCALL")))
if rts:
    print("## runc vs crun, started by swarmd (1 node)")
    print()
    print("| runtime | containers | create + start, median | p90 | create | start | runtime CPU per container (create + start + init before exec, mean) | runtime peak RSS create / start (median) | init RSS / PSS per container | runtime processes left | N → RUNNING (swarmd) | start vs runc |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|")
    def mean(xs):
        xs = [x for x in xs if x == x]
        return sum(xs) / len(xs) if xs else float("nan")
    def cpu_cell(ids, cr, st, rss):
        c = mean([num(cr[i].get("cpu_ms", "nan")) for i in ids])
        s_ = mean([num(st[i].get("cpu_ms", "nan")) for i in ids])
        n = mean([num(d.get("init_cpu_ms", "nan")) for d in rss])
        if c != c:
            return "n/a"
        return f"{c + s_ + (n if n == n else 0):.0f} ms ({c:.0f} + {s_:.0f} + {n:.0f})"
    base = None
    for rt in rts:
        calls = of("RTCALL", rt=rt)
        cr = {d["id"]: d for d in calls if d["verb"] == "create"}
        st = {d["id"]: d for d in calls if d["verb"] == "start"}
        ids = [i for i in cr if i in st]
        both = sorted(num(cr[i]["wall_ms"]) + num(st[i]["wall_ms"]) for i in ids)
        p90 = both[min(len(both) - 1, int(0.9 * len(both)))] if both else float("nan")
        m = med(both)
        if base is None:
            base = m
        rss = of("RTRSS", rt=rt)
        left = of("RTLEFT", rt=rt)
        conv = of("RTCONV", rt=rt)
        print(f"| {rt} {info.get(rt + '_version', '')} | {len(ids)} | {m:.1f} ms | {p90:.1f} ms | "
              f"{med([num(cr[i]['wall_ms']) for i in ids]):.1f} ms | {med([num(st[i]['wall_ms']) for i in ids]):.1f} ms | "
              f"{cpu_cell(ids, cr, st, rss)} | "
              f"{f0(med([num(cr[i]['maxrss_kb']) for i in ids]))} / {f0(med([num(st[i]['maxrss_kb']) for i in ids]))} KiB | "
              f"{f0(med(col(rss, 'rss_kb')))} / {f0(med(col(rss, 'pss_kb')))} KiB | "
              f"{left[0]['procs'] if left else 'n/a'} | {f0(med(col(conv, 'running_ms')))} ms | "
              f"{f2(m / base) if base else 'n/a'} |")
    print()
PY
  cat "$RESULTS_DIR/containers.md"
}
if [ "${1:-}" = render ]; then render; exit 0; fi

# ------------------------------------------------------------------------ cleanup, lock, build
DOCKERD_PID="" REGDIR=""
containers_cleanup() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ]; then stop_dockerd; fi
  [ -n "$REGDIR" ] && "$REPO/deploy/registry.sh" stop "$REGDIR" >/dev/null 2>&1
  # dockerd's overlay mounts under the run directory, if it left any
  awk -v b="$BASE/" 'index($5, b) == 1 {print $5}' /proc/self/mountinfo 2>/dev/null | sort -r |
    while read -r mp; do umount -l "$mp" 2>/dev/null; done
  (exit "$rc")
  lab_cleanup
}
lab_init containers   # root; at exit: lab down, our processes by PID, $BASE
trap containers_cleanup EXIT   # dockerd and the registry first, then lab_cleanup
mkdir -p "$RESULTS_DIR"
[ "${APPEND:-0}" = 1 ] || : >"$RAW"   # APPEND=1: add a part's rows to an earlier run's

# CARGO_LOCK: a background `flock` holds the lock while a part measures (nothing of ours inherits
# the descriptor); its `sleep 600` bounds the hold to 10 minutes.
LOCK_PID=""
lock_hold() {
  [ -n "${CARGO_LOCK:-}" ] || return 0
  [ -z "$LOCK_PID" ] || return 0   # held already (LOCK_ONCE=1)
  rm -f "$BASE/lock.held"
  local w=${LOCK_WAIT:-1800}
  bg_start flock -o -w "$w" "$CARGO_LOCK" sh -c "touch '$BASE/lock.held'; exec sleep 600"
  LOCK_PID=$BGPID
  for _ in $(seq 1 $((w * 10))); do
    [ -e "$BASE/lock.held" ] && { log "holding $CARGO_LOCK"; return 0; }
    kill -0 "$LOCK_PID" 2>/dev/null || die "could not take $CARGO_LOCK within $w s"
    sleep 0.1
  done
  die "could not take $CARGO_LOCK"
}
lock_release() { # LOCK_ONCE=1: one hold for the whole run (still at most 10 min), not per part
  [ -n "$LOCK_PID" ] || return 0
  [ "${LOCK_ONCE:-0}" = 1 ] && [ "${1:-}" != final ] && return 0
  local c
  for c in $(ps -o pid= --ppid "$LOCK_PID" 2>/dev/null); do kill -TERM "$c" 2>/dev/null || true; done
  kill -TERM "$LOCK_PID" 2>/dev/null || true
  { wait "$LOCK_PID"; } 2>/dev/null || true
  untrack "$LOCK_PID"
  LOCK_PID=""
}

[ -f "$IMAGE_CACHE/oci/index.json" ] || die "no demo images in $IMAGE_CACHE/oci: run deploy/images.sh (as root) first"
for c in skopeo docker-registry runc crun curl python3; do command -v "$c" >/dev/null || die "missing $c: run deploy/deps.sh"; done
build_release_bins
if [[ " $PARTS " == *" pull "* ]]; then
  if [ "${NO_BUILD:-0}" != 1 ]; then
    cp "$REPO/Cargo.lock" "$BENCH_DIR/loadgen/Cargo.lock"
    (cd "$BENCH_DIR/loadgen" && cargo build --release -q) >&2 || die "cannot build bench/loadgen"
  fi
  cp "$CARGO_TARGET_DIR/release/shoal-loadgen" "$BASE/bin/" || die "shoal-loadgen missing (NO_BUILD=1 without a build?)"
fi
# The labs' registry gets the one image measured (lab up pushes a layout's images).
skopeo copy --quiet "oci:$IMAGE_CACHE/oci:$IMAGE:latest" "oci:$BASE/oci:$IMAGE:latest" || die "cannot copy $IMAGE"
export LAB_UP_ARGS="--images $BASE/oci"
run_info
if [ "${APPEND:-0}" != 1 ]; then
  echo "# machine: $MACHINE" >>"$RAW"
  echo "# Shoal $REV, release build; $(runc --version | head -1), $(crun --version | head -1); images from deploy/images.sh" >>"$RAW"
  echo "INFO swarm_recorded=$SW_RECORDED runc_version=$(runc --version | awk 'NR==1{print $3}') crun_version=$(crun --version | awk 'NR==1{print $3}')" >>"$RAW"
fi
echo "# start (parts: $PARTS): $(date -u +%FT%TZ), $(machine_note)" >>"$RAW"

# ------------------------------------------------------------------------------ lab helpers
# After `service rm`: no task in the store and no task namespace on any node; prints the ms.
wait_gone() { # START_MS
  local tasks files
  for _ in $(seq 1 300); do   # 60 s at most
    tasks=$({ swarmctl task ls --format json 2>/dev/null || echo '"service_id"'; } | grep -c '"service_id"' || true)
    files=$(find "$LABDIR/nodes" -maxdepth 3 -path '*/netns/tk_*' 2>/dev/null | wc -l)
    if [ "$tasks" -eq 0 ] && [ "$files" -eq 0 ]; then echo $(( $(now_ms) - $1 )); return 0; fi
    sleep 0.2
  done
  die "tasks still there 60 s after service rm ($tasks in the store, $files namespaces)"
}
# Creates SERVICE with N replicas of the image and polls until N RUNNING; prints
# "ack_ms running_ms polls".
create_wait() { # SERVICE N
  local svc=$1 n=$2 t0 t1 c polls=0
  t0=$(now_ms)
  swarmctl service create -d --name "$svc" --replicas "$n" --network none --stop-grace-period 1s "$IMAGE" sleep 100000 >/dev/null 9>&- ||
    die "service create $svc failed"
  t1=$(now_ms)
  while :; do   # every 50 ms, at most 2400 polls and 120 s
    polls=$((polls + 1))
    c=$(running_count "$svc")
    [ "$c" -ge "$n" ] && break
    if [ $polls -ge 2400 ] || [ $(( $(now_ms) - t0 )) -ge 120000 ]; then
      die "$svc: $c of $n RUNNING after 120 s: $(swarmctl service ps "$svc" 2>&1 | tail -n 3 | tr '\n' '|')"
    fi
    sleep 0.05
  done
  echo "$((t1 - t0)) $(( $(now_ms) - t0 )) $polls"
}
rm_wait() { # SERVICE: prints the ms until its tasks are gone
  local t; t=$(now_ms)
  swarmctl service rm "$1" >/dev/null 9>&- || die "service rm $1 failed"
  wait_gone "$t"
}
store_images() { # NODE: images in its store (index entries)
  python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("refs", {})))' "$LABDIR/nodes/$1/images/index.json" 2>/dev/null || echo 0
}

# ------------------------------------------------------------------------------ swarm
if [[ " $PARTS " == *" swarm "* ]]; then
  if [ ! -x "$SWARM_ANCHOR" ]; then
    log "swarm: $SWARM_ANCHOR not found: the recorded anchor ($SW_RECORDED ms) is shown instead"
    echo "# Docker Swarm: $SWARM_ANCHOR not found, recorded anchor shown" >>"$RAW"
  elif ip netns list | grep -q '^swa-' || ip -4 -o addr show | grep -q ' 198\.18\.0\.' || ip -4 route show | grep -q '^198\.18\.0\.'; then
    log "swarm: swa-* namespaces or 198.18.0.0/24 in use: the recorded anchor is shown instead"
    echo "# Docker Swarm: the anchor's namespaces or underlay were in use, recorded anchor shown" >>"$RAW"
  else
    lock_hold   # then wait for quiet: builds stop while we hold it
    wait_quiet
    log "swarm: $SWARM_ANCHOR, MEASURE=converge RUNS=$RUNS (~2 min)"
    if MEASURE=converge RUNS=$RUNS CONV_REPLICAS=$REPLICAS RESULTS_OUT=$BASE/swarm.txt timeout 900 "$SWARM_ANCHOR" >"$BASE/swarm.log" 2>&1 9>&-; then
      # a row: the label, one value per run, the median
      acks=$(grep -F "create acked" "$BASE/swarm.txt" | awk -v n="$RUNS" '{for (i = NF - n; i < NF; i++) print $i}')
      i=0
      for v in $(grep -F -- "-> all Running" "$BASE/swarm.txt" | awk -v n="$RUNS" '{for (i = NF - n; i < NF; i++) print $i}'); do
        i=$((i + 1)); echo "SWARM run=$i running_ms=$v ack_ms=$(echo "$acks" | sed -n "${i}p")" >>"$RAW"
      done
      echo "# Docker Swarm: $(grep -E '^(engine|tasks) ' "$BASE/swarm.txt" | sed 's/  */ /g' | tr '\n' ';')" >>"$RAW"
      log "swarm: $(grep -F -- '-> all Running' "$BASE/swarm.txt")"
    else
      log "swarm anchor failed ($(tail -n 3 "$BASE/swarm.log" | tr '\n' ' ')): recorded anchor shown"
      echo "# Docker Swarm: the anchor failed in this run, recorded anchor shown" >>"$RAW"
    fi
    lock_release
  fi
fi

# ------------------------------------------------------------------------------ pull
start_dockerd() {
  local d=$BASE/docker
  mkdir -p "$d/data" "$d/exec" "$d/cli"
  export DOCKER_CONFIG=$d/cli   # keep the CLI away from ~/.docker
  bg_start dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
    -H "unix://$d/docker.sock" --insecure-registry "$REG_ADDR" --bridge=none --iptables=false \
    --ip6tables=false --ip-forward=false --ip-masq=false --storage-driver overlay2 --log-level warn \
    >"$d/dockerd.log" 2>&1
  DOCKERD_PID=$BGPID
  for _ in $(seq 1 300); do   # 30 s
    DK version >/dev/null 2>&1 && { log "dockerd up (pid $DOCKERD_PID, $(DK version --format '{{.Server.Version}}'))"; return 0; }
    kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited: $(tail -n 5 "$d/dockerd.log")"
    sleep 0.1
  done
  die "dockerd did not answer in 30 s: $(tail -n 5 "$d/dockerd.log")"
}
stop_dockerd() { # TERM (it stops its containerd), then KILL after 20 s; by PID
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$DOCKERD_PID" 2>/dev/null || true
  { wait "$DOCKERD_PID"; } 2>/dev/null || true
  untrack "$DOCKERD_PID"
  DOCKERD_PID=""
}
DK() { timeout 120 /usr/bin/docker -H "unix://$BASE/docker/docker.sock" "$@"; }

if [[ " $PARTS " == *" pull "* ]]; then
  if ! [ -x /usr/sbin/dockerd ] || ! [ -x /usr/bin/docker ]; then
    # Debian's package would start a host daemon where an init system runs; a policy-rc.d that
    # refuses service starts keeps it from doing so.
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
    apt_install docker.io
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  fi
  REGDIR=$BASE/registry
  REG_ADDR=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$REPO/deploy/registry.sh" start "$REGDIR" "$REG_ADDR" >&2 9>&- || die "cannot start the registry"
  track "$(cat "$REGDIR/registry.pid")"
  for img in $PULL_IMAGES; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$IMAGE_CACHE/oci:$img:latest" "docker://$REG_ADDR/$img:latest" || die "cannot push $img"
  done
  start_dockerd
  echo "# pull: registry docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null) on $REG_ADDR; dockerd $(DK version --format '{{.Server.Version}}') (Debian docker.io), overlay2, data root on $(df -h "$BASE" | awk 'NR==2{print $1}')" >>"$RAW"
  shoal_pull() { # IMAGE RUN
    local st=$BASE/pull/store t0 out
    rm -rf "$st"; mkdir -p "$BASE/pull"
    t0=$(now_ms)
    out=$("$BASE/bin/shoal-loadgen" pull --store "$st" --insecure-registry "$REG_ADDR" "$REG_ADDR/$1:latest") || die "shoal pull of $1 failed"
    echo "PULL sys=shoal image=$1 run=$2 wall_ms=$(( $(now_ms) - t0 )) inner_ms=$(echo "$out" | field pull_ms) layers=$(echo "$out" | field layers) bytes=$(echo "$out" | field bytes)" >>"$RAW"
    rm -rf "$st"
  }
  docker_clean() { # IMAGE: remove it (and its layers) from dockerd
    DK rmi -f "$REG_ADDR/$1:latest" >/dev/null 2>&1 || true
    [ -z "$(DK images -q "$REG_ADDR/$1:latest")" ] || die "docker rmi left $1"
  }
  docker_pull() { # IMAGE RUN
    local t0
    docker_clean "$1"
    t0=$(now_ms)
    DK pull -q "$REG_ADDR/$1:latest" >/dev/null || die "docker pull $1 failed"
    echo "PULL sys=docker image=$1 run=$2 wall_ms=$(( $(now_ms) - t0 ))" >>"$RAW"
    docker_clean "$1"
    t0=$(now_ms)
    curl -sf --max-time 120 --unix-socket "$BASE/docker/docker.sock" -X POST \
      "http://docker/images/create?fromImage=$REG_ADDR/$1&tag=latest" >"$BASE/pull-api.out" || die "dockerd API pull of $1 failed"
    echo "PULL sys=dockerapi image=$1 run=$2 wall_ms=$(( $(now_ms) - t0 ))" >>"$RAW"
    grep -q '"error"' "$BASE/pull-api.out" && die "dockerd API pull of $1: $(tail -c 300 "$BASE/pull-api.out")"
    docker_clean "$1"
  }
  # one untimed pull each first (page cache of the registry's blobs, connections, code paths)
  for img in $PULL_IMAGES; do shoal_pull "$img" 0; docker_pull "$img" 0; done
  sed -i '/^PULL .* run=0 /d' "$RAW"
  lock_hold
  wait_quiet
  log "pull: $PULL_RUNS runs of $PULL_IMAGES, Shoal and dockerd interleaved"
  for run in $(seq 1 "$PULL_RUNS"); do
    for img in $PULL_IMAGES; do
      if [ $((run % 2)) = 1 ]; then shoal_pull "$img" "$run"; docker_pull "$img" "$run"
      else docker_pull "$img" "$run"; shoal_pull "$img" "$run"; fi
    done
    log "  run $run: $(grep " run=$run " "$RAW" | grep '^PULL' | awk '{print $2, $3, $5}' | tr '\n' ';')"
  done
  lock_release
  stop_dockerd
  rm -rf "$BASE/docker"
  "$REPO/deploy/registry.sh" stop "$REGDIR" >/dev/null
  untrack "$(cat "$REGDIR/registry.pid" 2>/dev/null || echo none)"
  REGDIR=""
fi

# ------------------------------------------------------------------------------ runtimes
# A wrapper named like the runtime (swarmd tells runc from crun by the file name): runs the real
# binary and appends one JSON line per call: verb, container id, wall ms, CPU ms (user + system
# of the runtime process), peak RSS (KiB), status, pid file.
make_wrapper() { # NAME REAL
  mkdir -p "$BASE/rt"
  cat >"$BASE/rt/$1" <<EOF
#!/usr/bin/python3 -IS
import json, os, sys, time
REAL, LOG = "$2", "$BASE/rt/$1.calls"
VERBS = ("create", "start", "state", "kill", "delete", "list", "exec", "run", "ps", "features")
args = sys.argv[1:]
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execv(REAL, [REAL] + args)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
ms = (time.monotonic() - t0) * 1e3
verb = next((a for a in args if a in VERBS), "?")
with open(LOG, "a") as f:
    f.write(json.dumps({"verb": verb, "id": args[-1] if args else "", "wall_ms": round(ms, 2),
                        "maxrss_kb": ru.ru_maxrss, "status": os.waitstatus_to_exitcode(status),
                        "cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1e3, 1),
                        "pid_file": args[args.index("--pid-file") + 1] if "--pid-file" in args else ""}) + "\n")
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
EOF
  chmod +x "$BASE/rt/$1"
}
# RSS and PSS (KiB) of a process.
rss_pss() { awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r+0, p+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo "nan nan"; }

if [[ " $PARTS " == *" runtimes "* ]]; then
  for rt in $RUNTIMES; do
    real=$(command -v "$rt") || die "no $rt"
    make_wrapper "$rt" "$real"
    lock_hold   # then wait for quiet: builds stop while we hold it
    wait_quiet
    LAB_UP_ARGS="--images $BASE/oci --managers 1 --workers 0"
    export SHOAL_LAB_SWARMD_ARGS="--oci-runtime $BASE/rt/$rt"
    lab_up
    LAB_UP_ARGS="--images $BASE/oci"
    unset SHOAL_LAB_SWARMD_ARGS
    sleep 2
    create_wait "warm-$rt" 1 >/dev/null   # the image into the node's store
    rm_wait "warm-$rt" >/dev/null
    : >"$BASE/rt/$rt.calls"
    out=$(create_wait "rt-$rt" "$RT_REPLICAS") || exit 1   # (die in the subshell)
    read -r ack running polls <<<"$out"
    echo "RTCONV rt=$rt replicas=$RT_REPLICAS ack_ms=$ack running_ms=$running polls=$polls" >>"$RAW"
    sleep 2
    # the containers' init pids: from the pid files named in the create calls
    python3 - "$BASE/rt/$rt.calls" "$rt" >>"$RAW" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["verb"] in ("create", "start"):
        print(f"RTCALL rt={sys.argv[2]} verb={d['verb']} id={d['id']} wall_ms={d['wall_ms']} cpu_ms={d['cpu_ms']} maxrss_kb={d['maxrss_kb']} status={d['status']}")
PY
    n=0
    while read -r pf; do
      p=$(cat "$pf" 2>/dev/null) || continue
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sleep ] || continue
      read -r rss pss <<<"$(rss_pss "$p")"
      # CPU the init used so far: the runtime's init stage before it exec'd the task (`runc init`)
      cpu=$(awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print ($12 + $13) * 1000 / hz}' "/proc/$p/stat")
      echo "RTRSS rt=$rt pid=$p rss_kb=$rss pss_kb=$pss init_cpu_ms=$cpu" >>"$RAW"
      n=$((n + 1))
    done < <(python3 -c 'import json,sys; [print(d["pid_file"]) for d in map(json.loads, open(sys.argv[1])) if d["verb"] == "create" and d["pid_file"]]' "$BASE/rt/$rt.calls")
    # runtime processes still there (runc, crun, conmon-like) of this lab
    left=0
    for p in /proc/[0-9]*; do
      comm=$(cat "$p/comm" 2>/dev/null) || continue
      case "$comm" in runc*|crun*|conmon*) tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$LABDIR" && left=$((left + 1)) ;; esac
    done
    echo "RTLEFT rt=$rt procs=$left inits=$n" >>"$RAW"
    log "$rt: $RT_REPLICAS RUNNING after $running ms; $n container inits found, $left runtime processes left"
    rm_wait "rt-$rt" >/dev/null
    lab_down
    lock_release
  done
fi

# ------------------------------------------------------------------------------ replicas
if [[ " $PARTS " == *" replicas "* ]]; then
  for round in $(seq 1 "$RUNS"); do
    lock_hold   # then wait for quiet: builds stop while we hold it
    wait_quiet
    [ -z "${OCI_RUNTIME:-}" ] || export SHOAL_LAB_SWARMD_ARGS="--oci-runtime $OCI_RUNTIME"
    lab_up
    unset SHOAL_LAB_SWARMD_ARGS
    sleep 3   # let the fresh cluster settle (joins, first heartbeats)
    for run in $(seq 0 "$CACHED"); do
      kind=cached; [ "$run" = 0 ] && kind=cold
      stores=$(for n in $NODES; do store_images "$n"; done | tr '\n' ' ')
      [ "$kind" = cold ] && [ -n "$(echo "$stores" | tr -d '0 ')" ] && die "cold run but the stores hold images: $stores"
      [ "$run" -gt 0 ] && wait_quiet
      out=$(create_wait "r$round-$run" "$REPLICAS") || exit 1
      read -r ack running polls <<<"$out"
      after=$(for n in $NODES; do store_images "$n"; done | tr '\n' ' ')
      gone=$(rm_wait "r$round-$run")
      echo "REPL kind=$kind runtime=${OCI_RUNTIME:-runc} round=$round run=$run replicas=$REPLICAS ack_ms=$ack running_ms=$running polls=$polls gone_ms=$gone" >>"$RAW"
      log "  round $round, $kind: $REPLICAS RUNNING after $running ms (create acked $ack ms, $polls polls); images per node before/after: $stores/ $after; removed in $gone ms"
    done
    lab_down
    lock_release
  done
fi

lock_release final
echo "# end: $(date -u +%FT%TZ), $(machine_note)" >>"$RAW"
render
