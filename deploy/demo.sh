#!/usr/bin/env bash
# The main job (README "The two commands"): installs what is missing (nftables…), builds Shoal,
# and runs the README's tour on a Play-with-Docker-style lab — 3 managers and 2 workers, each a
# real swarmd in its own network namespace — replaying the reference article's scenarios (the
# default bridge, `none` and `host`, an overlay across the five nodes, the routing mesh, VIPs,
# the embedded DNS, a restart that keeps its tasks), then kills the leader with -9. Needs root
# (namespaces, bridges, VXLAN). The lab is removed at the end unless KEEP=1, which leaves it
# running (`swarmctl lab shell --name demo manager1` to use it, `swarmctl lab down --name demo`
# to remove it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
[ "$(id -u)" -eq 0 ] || { echo "the lab demo needs root (network namespaces); without root: deploy/demo-local.sh" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo is not installed: install Rust first" >&2; exit 1; }
bash deploy/deps.sh
cargo build --locked --workspace --bins
# The demo images the tour runs (shoal/whoami, shoal/busybox, shoal/nginx), built once from
# Debian packages and cached; `lab up` pushes them into the lab's registry.
bash deploy/images.sh
BIN="$CARGO_TARGET_DIR/debug"
export PATH="$BIN:$PATH"
LAB=${LAB:-demo}
SUBNET=${SUBNET:-198.18.0.0/24}
export SHOAL_LAB_DIR=${SHOAL_LAB_DIR:-/var/lib/shoal/labs}

if [ "${KEEP:-0}" != 1 ]; then
  trap 'echo; echo "== lab down"; swarmctl lab down --name "$LAB" || true' EXIT
fi

# The README's tour, command by command (deploy/tour.py reads it from README.md). Commands are
# printed as typed in a shell on the node (`swarmctl lab shell --name $LAB manager1`), host
# commands with `$`. The tour's last step, `lab down`, waits for the drill below.
echo "== The README's tour on lab $LAB ($SUBNET). To type along: swarmctl lab shell --name $LAB manager1"
python3 deploy/tour.py --lab "$LAB" --subnet "$SUBNET" --swarmctl "$BIN/swarmctl" --check \
  --stop-before "swarmctl lab down"

echo
echo "== kill -9 the leader: another manager takes over"
LEADER=$(swarmctl lab exec manager1 --name "$LAB" -- swarmctl node ls --format json |
  python3 -c 'import json,sys; print(next(n["hostname"] for n in json.load(sys.stdin) if n.get("manager_status")=="Leader"))')
OTHER=manager2; [ "$LEADER" = manager2 ] && OTHER=manager3
echo "\$ swarmctl lab stop --name $LAB --kill $LEADER"
swarmctl lab stop --name "$LAB" --kill "$LEADER"
for _ in $(seq 1 50); do
  swarmctl lab exec "$OTHER" --name "$LAB" -- swarmctl network create -d overlay after_failover >/dev/null 2>&1 && break
  sleep 0.2
done
echo "$OTHER\$ swarmctl node ls"
swarmctl lab exec "$OTHER" --name "$LAB" -- swarmctl node ls
echo "\$ swarmctl lab start --name $LAB $LEADER"
swarmctl lab start --name "$LAB" "$LEADER"

if [ "${KEEP:-0}" = 1 ]; then
  echo
  echo "The lab keeps running. Try:"
  echo "  swarmctl lab shell --name $LAB manager1    # then: swarmctl service ps web"
  echo "  swarmctl lab ui --name $LAB                # the lab in a browser"
  echo "  swarmctl lab down --name $LAB              # remove it"
fi
