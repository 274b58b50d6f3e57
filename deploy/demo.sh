#!/usr/bin/env bash
# The main job (README "The two commands"): installs what is missing (nftables…), builds Shoal,
# starts a Play-with-Docker-style lab — 3 managers and 2 workers, each a real swarmd in its own
# network namespace — and replays the reference article's scenarios there: tasks on the default
# bridge reaching each other, `none` and `host`, an overlay network across the five nodes, then
# a leader killed with -9. Needs root (namespaces, bridges, VXLAN). The lab is removed at the
# end unless KEEP=1, which leaves it running (`swarmctl lab shell manager1` to use it,
# `swarmctl lab down --name demo` to remove it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
[ "$(id -u)" -eq 0 ] || { echo "the lab demo needs root (network namespaces); without root: deploy/demo-local.sh" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo is not installed: install Rust first" >&2; exit 1; }
bash deploy/deps.sh
cargo build --locked --workspace --bins
BIN="$CARGO_TARGET_DIR/debug"
export PATH="$BIN:$PATH"
LAB=${LAB:-demo}
SUBNET=${SUBNET:-198.18.0.0/24}
export SHOAL_LAB_DIR=${SHOAL_LAB_DIR:-/var/lib/shoal/labs}

if [ "${KEEP:-0}" != 1 ]; then trap 'echo; echo "== lab down"; swarmctl lab down --name "$LAB" >/dev/null || true' EXIT; fi

say() { echo; echo "== $*"; }
run() { echo "\$ $*"; "$@"; }
# swarmctl inside manager1 (where SWARM_HOST points at manager1's socket)
ctl() { echo "manager1\$ swarmctl $*"; swarmctl lab exec manager1 --name "$LAB" -- swarmctl "$@"; }
on() { local node=$1; shift; echo "$node\$ $*"; swarmctl lab exec "$node" --name "$LAB" -- "$@"; }
# the network namespace file of a task, and a command inside it (what `task exec` will do)
netns_of() { # SERVICE SLOT_INDEX -> "node path"
  swarmctl lab exec manager1 --name "$LAB" -- swarmctl service ps "$1" --format json | python3 -c '
import json, sys
ts = [t for t in json.load(sys.stdin) if t["status"]["state"] == "running"]
ts.sort(key=lambda t: t["slot"])
t = ts[int(sys.argv[1])]
print(t["node_id"], t["id"], (t["networks"][0]["addresses"] or ["-"])[0].split("/")[0] if t["networks"] else "-")' "$2"
}
hostname_of() { swarmctl lab exec manager1 --name "$LAB" -- swarmctl node inspect "$1" --format json | python3 -c 'import json,sys; v=json.load(sys.stdin); print((v[0] if isinstance(v, list) else v)["hostname"])'; }
in_task() { # NODE TASK_ID CMD...
  local node=$1 id=$2; shift 2
  local short; short=$(echo "$id" | tr -cd 'a-z0-9' | cut -c1-12)
  echo "task ${id:0:12} on $node\$ $*"
  nsenter --net="$SHOAL_LAB_DIR/$LAB/nodes/$node/netns/tk_$short" "$@"
}
wait_running() { # SERVICE N
  for _ in $(seq 1 300); do
    n=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl service ps "$1" --format json | grep -o '"state": *"running"' | wc -l)
    [ "$n" -ge "$2" ] && return 0; sleep 0.2
  done
  echo "service $1 did not reach $2 running tasks" >&2; return 1
}

say "A lab: 3 managers + 2 workers, each a swarmd in its own network namespace on $SUBNET"
run swarmctl lab up --name "$LAB" --subnet "$SUBNET"
ctl node ls

say "Section 2: the default bridge network (shoal0, 172.17.0.0/16) on worker1"
ctl service create --name alpine --replicas 2 --constraint node.hostname==worker1 whoami
wait_running alpine 2
ctl service ps alpine
read -r n0 t0 _ < <(netns_of alpine 0)
on worker1 curl -s -m 3 http://172.17.0.2:8080/
in_task worker1 "$t0" curl -s -m 3 http://172.17.0.3:8080/name; echo
ctl service create --name lonely --network none --constraint node.hostname==worker1 sleep 100000
wait_running lonely 1
read -r _ tl _ < <(netns_of lonely 0)
in_task worker1 "$tl" cat /proc/net/dev
ctl service create --name onhost --network host --constraint node.hostname==worker2 whoami --port 8081
wait_running onhost 1
W2=$(python3 -c 'import json,sys; print([n["address"] for n in json.load(open(sys.argv[1]))["nodes"] if n["name"]=="worker2"][0])' "$SHOAL_LAB_DIR/$LAB/lab.json")
on manager1 curl -s -m 3 "http://${W2%%:*}:8081/"

say "Section 3: an overlay network across the five nodes (VXLAN, static FDB from the managers)"
ctl network create -d overlay lp_net
ctl service create --name web --replicas 5 --publish 8080 --network lp_net whoami
wait_running web 5
ctl service ps web
ctl network ls
read -r na ta ipa < <(netns_of web 0)
read -r nb tb ipb < <(netns_of web 4)
ha=$(hostname_of "$na"); hb=$(hostname_of "$nb")
# the first network of a web task is ingress (published ports), its second lp_net
ipb=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl service ps web --format json | python3 -c '
import json, sys
ts = sorted([t for t in json.load(sys.stdin) if t["status"]["state"] == "running"], key=lambda t: t["slot"])
print([n for n in ts[4]["networks"] if n["network"] != "ingress"][0]["addresses"][0].split("/")[0])')
in_task "$ha" "$ta" curl -s -m 3 "http://$ipb:8080/"
echo "(task ${ta:0:12} on $ha reached task ${tb:0:12} on $hb at $ipb through VXLAN)"

say "Section 3.3: the routing mesh and the service's VIP, round robin"
ctl service ls
PORT=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl service inspect web --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ports"][0]["published"])')
on worker1 sh -c "for i in 1 2 3 4 5; do curl -s -m 3 localhost:$PORT/name; echo; done"
on manager2 sh -c "for i in 1 2 3 4 5; do curl -s -m 3 ${W2%%:*}:$PORT/name; echo; done"
ctl service create --name client --network lp_net whoami --port 9000
wait_running client 1
VIP=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl service inspect web --format json | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
print(s["vips"][-1]["addr"].split("/")[0])   # ingress comes first, lp_net last')
CT=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl service ps client -q | head -1)
ctl task exec "$CT" -- sh -c "for i in 1 2 3 4 5; do curl -s -m 3 $VIP:8080/name; echo; done"
CN=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl service ps client --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["node_id"])')
ctl network inspect lp_net --lb --node "$(hostname_of "$CN")"

say "Section 3.4: service discovery by the embedded DNS at 127.0.0.11"
ctl task exec "$CT" -- cat /etc/resolv.conf
ctl task exec "$CT" -- curl -s -m 3 web:8080/name; echo
ctl task exec "$CT" -- getent hosts web
ctl task exec "$CT" -- getent hosts tasks.web
ctl task exec "$CT" -- getent hosts "$ipb"
WNAME=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl task exec "$CT" -- getent hosts "$ipb" | awk '{print $2}')
ctl task exec "$CT" -- ping -c 1 -W 2 "$WNAME"

say "Scale, and kill -9 the leader: another manager takes over"
ctl service scale web=7
LEADER=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl node ls --format json | python3 -c 'import json,sys; print(next(n["hostname"] for n in json.load(sys.stdin) if n.get("manager_status")=="Leader"))')
PID=$(python3 -c 'import json,sys; print([n["pid"] for n in json.load(open(sys.argv[1]))["nodes"] if n["name"]==sys.argv[2]][0])' "$SHOAL_LAB_DIR/$LAB/lab.json" "$LEADER")
OTHER=manager2; [ "$LEADER" = manager2 ] && OTHER=manager3
run kill -9 "$PID"
for _ in $(seq 1 50); do swarmctl lab exec "$OTHER" --name "$LAB" -- swarmctl network create -d overlay after_failover >/dev/null 2>&1 && break; sleep 0.2; done
echo "$OTHER\$ swarmctl node ls"
swarmctl lab exec "$OTHER" --name "$LAB" -- swarmctl node ls

if [ "${KEEP:-0}" = 1 ]; then
  echo
  echo "The lab keeps running. Try: swarmctl lab shell $OTHER --name $LAB   (then: swarmctl service ps web)"
  echo "Remove it with: swarmctl lab down --name $LAB"
fi
