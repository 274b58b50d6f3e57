#!/usr/bin/env bash
# The control-plane tour without root (README "A tour without root"): builds Shoal, starts a
# 3-manager + 2-worker cluster
# of real swarmd processes on 127.0.0.1 (no root: tasks are plain processes) and replays the
# tour. Everything it starts is stopped by PID and its directory removed when it ends, unless
# KEEP=1, which leaves the cluster running and prints how to use and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
command -v cargo >/dev/null || { echo "cargo is not installed: install Rust first" >&2; exit 1; }
cargo build --locked --workspace --bins
BIN="$CARGO_TARGET_DIR/debug"
export PATH="$BIN:$PATH"

DIR=$(mktemp -d /tmp/shoal-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
if [ "${KEEP:-0}" != 1 ]; then trap cleanup EXIT; fi

# A free port range: the kernel picks a base, we use base..base+4.
BASE=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 24100)
NAMES=(manager1 manager2 manager3 worker1 worker2)
port() { echo $((BASE + $1)); }
FAST=()

run() { echo; echo "\$ $*"; "$@"; }
wait_for() { # wait_for DESC SECONDS CMD...
  local desc=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $desc" >&2; return 1
}
start() { # start INDEX [join args]
  local i=$1; shift
  local name=${NAMES[$i]}
  mkdir -p "$DIR/$name"
  swarmd --state-dir "$DIR/$name" --hostname "$name" --listen-addr "127.0.0.1:$(port "$i")" "${FAST[@]}" "$@" \
    >"$DIR/$name/stdout.log" 2>"$DIR/$name/swarmd.log" &
  PIDS[$i]=$!
}

echo "== Starting manager1 (initialises the cluster)"
start 0
export SWARM_HOST="unix://$DIR/manager1/swarmd.sock"
wait_for "manager1" 15 swarmctl swarm inspect
WORKER_TOKEN=$(swarmctl swarm join-token worker -q)
MANAGER_TOKEN=$(swarmctl swarm join-token manager -q)
echo "== Joining manager2, manager3 with the manager token and worker1, worker2 with the worker token"
start 1 --join "127.0.0.1:$(port 0)" --token "$MANAGER_TOKEN"
start 2 --join "127.0.0.1:$(port 0)" --token "$MANAGER_TOKEN"
start 3 --join "127.0.0.1:$(port 0)" --token "$WORKER_TOKEN"
start 4 --join "127.0.0.1:$(port 0)" --token "$WORKER_TOKEN"
ready() { [ "$(swarmctl node ls --format json | grep -o '"state": *"ready"' | wc -l)" -ge 5 ]; }
wait_for "5 ready nodes" 30 ready
run swarmctl node ls

run swarmctl network create -d overlay lp_net
run swarmctl network ls
run swarmctl service create --runtime process --name web --replicas 5 --publish 8080 --network lp_net sleep 100000
run swarmctl service ls
run swarmctl service ps web
run swarmctl service scale web=10
run swarmctl service scale web=2
run swarmctl service create --runtime process --name hello --replicas 2 -d sh -c 'echo "hello from task $SHOAL_TASK_NAME"; sleep 100000'
sleep 1
run swarmctl service logs hello

LEADER=$(swarmctl node ls --format json | python3 -c 'import json,sys; print(next(n["hostname"] for n in json.load(sys.stdin) if n.get("manager_status")=="Leader"))' 2>/dev/null || echo manager1)
for i in 0 1 2; do [ "${NAMES[$i]}" = "$LEADER" ] && L=$i; done
OTHER=$(( (L + 1) % 3 ))
export SWARM_HOST="unix://$DIR/${NAMES[$OTHER]}/swarmd.sock"
echo; echo "== kill -9 the leader ($LEADER); talking to ${NAMES[$OTHER]} now"
kill -9 "${PIDS[$L]}"; wait "${PIDS[$L]}" 2>/dev/null || true
run swarmctl network create -d overlay after_failover
run swarmctl node ls
down() { swarmctl node ls --format json | grep -q '"state": *"down"'; }
wait_for "$LEADER to be marked down" 15 down
run swarmctl node ls
run swarmctl service ps web
run swarmctl service ls

if [ "${KEEP:-0}" = 1 ]; then
  echo
  echo "The cluster keeps running (except $LEADER, which was killed). Use it with:"
  echo "  export PATH=$BIN:\$PATH SWARM_HOST=$SWARM_HOST"
  echo "Stop it with: kill ${PIDS[*]}; rm -rf $DIR"
else
  echo; echo "== Done; stopping the cluster"
fi
