#!/usr/bin/env bash
# check-kit.sh - tests Shoal's deploy kit (issue #9) without touching this machine's system:
#   1. the launcher deploy/swarmd-start parses with sh -n under every shell here (sh, dash, bash,
#      busybox sh) and shellcheck (when installed);
#   2. the launcher's config handling, under each of those shells, with a stub swarmd that
#      prints the argv it was exec'd with: valid init/join/restart configs, every error
#      (exit 78 and a message naming the file and line), no shell code run from the file, exec;
#   3. deploy/swarmd.service: the options the kit relies on, and `systemd-analyze verify`;
#   4. deploy/install.sh twice into a temporary root (--root TMP --no-build --bin-dir BIN
#      --no-deps): one working install, same files after the second run, config kept, modes;
#      an upgrade replaces only what changed; a root without systemd gets no unit;
#   5. deploy/cloud-init/*.yaml: valid YAML, #cloud-config, their config and script check out.
# Binaries: $CARGO_TARGET_DIR/debug/{swarmd,swarmctl,whoami} (default /var/tmp/shoal-target),
# built with `cargo build --locked --bins` when missing. Exit 0 only if every check passes.
# Usage: deploy/check-kit.sh   (a few seconds once the binaries are built; root not needed)
#
# `A && pass ... || fail ...` below: pass always returns 0, so fail runs exactly when A fails.
# shellcheck disable=SC2015
set -uo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LAUNCHER=$HERE/swarmd-start
UNIT=$HERE/swarmd.service
INSTALL=$HERE/install.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/shoal-target}

PASSES=0
FAILS=0
SKIPS=0
pass() { PASSES=$((PASSES + 1)); echo "PASS $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }
skip() { SKIPS=$((SKIPS + 1)); echo "SKIP $*"; }
section() { echo "== $*"; }

TMP=$(mktemp -d /tmp/shoal-check-kit.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ 1. syntax
section "launcher syntax"
SHELLS=(sh bash)
command -v dash >/dev/null 2>&1 && SHELLS+=(dash)
command -v busybox >/dev/null 2>&1 && busybox sh -c : 2>/dev/null && SHELLS+=("busybox sh")
for s in "${SHELLS[@]}"; do
  read -ra cmd <<<"$s"
  if out=$("${cmd[@]}" -n "$LAUNCHER" 2>&1); then pass "$s -n swarmd-start"; else fail "$s -n swarmd-start: $out"; fi
done
command -v busybox >/dev/null 2>&1 || skip "busybox sh -n: no busybox here"
if command -v shellcheck >/dev/null 2>&1; then
  if out=$(shellcheck -s sh "$LAUNCHER" 2>&1); then pass "shellcheck -s sh swarmd-start"; else fail "shellcheck swarmd-start: $out"; fi
  if out=$(shellcheck "$INSTALL" "$HERE/check-kit.sh" 2>&1); then pass "shellcheck install.sh check-kit.sh"; else fail "shellcheck: $out"; fi
else
  skip "shellcheck: not installed"
fi
if out=$(bash -n "$INSTALL" 2>&1); then pass "bash -n install.sh"; else fail "bash -n install.sh: $out"; fi
[ -x "$LAUNCHER" ] && [ -x "$INSTALL" ] && pass "launcher and install.sh are executable" || fail "launcher or install.sh not executable"

# ------------------------------------------------------------------ 2. the launcher's config
section "launcher config handling (each case under: ${SHELLS[*]})"
STUB=$TMP/stub-swarmd
cat >"$STUB" <<'EOF'
#!/bin/sh
# Prints how it was started: pid, then one argument per line, then the token in the environment.
echo "pid=$$"
for a; do printf '%s\n' "$a"; done
echo "SWARM_TOKEN=${SWARM_TOKEN-unset}"
EOF
chmod 755 "$STUB"
TOK=SWMTKN-1-3f2a9c0d1e-s3cr3tv4lu3
NEW=$TMP/state-new      # no node.json: first start
OLD=$TMP/state-joined   # node.json: restart
mkdir -p "$NEW" "$OLD"
echo '{"node_id":"n1","manager":false,"raft_id":0,"cluster_id":"c1"}' >"$OLD/node.json"
printf '%s\n' "$TOK" >"$TMP/token"
chmod 600 "$TMP/token"
NCASE=0
# conf TEXT: writes TEXT to the 0600 config file of case NCASE (bumped by the caller: conf runs
# in a subshell), prints its path.
conf() {
  local f=$TMP/case$NCASE.conf
  printf '%s' "$1" >"$f"
  chmod 600 "$f"
  echo "$f"
}
# launch SHELL CONF [ARG]: runs the launcher; sets RC, OUT (stdout without the pid line), ERR.
launch() {
  local -a cmd
  read -ra cmd <<<"$1"
  SWARM_TOKEN=from-the-environment SHOAL_CONF=$2 timeout 10 "${cmd[@]}" "$LAUNCHER" "${@:3}" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  OUT=$(grep -v '^pid=' "$TMP/out")
  ERR=$(cat "$TMP/err")
}
lines() { printf '%s\n' "$@"; }
# ok NAME CONF EXPECTED: under every shell, exit 0 and exactly EXPECTED as argv (+ no token env).
ok() {
  local name=$1 f=$2 want bad=""
  want=$(printf '%s\nSWARM_TOKEN=unset' "$3")
  for s in "${SHELLS[@]}"; do
    launch "$s" "$f"
    if [ "$RC" != 0 ] || [ "$OUT" != "$want" ]; then
      bad="$bad
  [$s] rc=$RC stderr: $ERR
$(diff <(echo "$want") <(echo "$OUT") | sed 's/^/    /')"
    fi
  done
  if [ -z "$bad" ]; then pass "launcher: $name"; else fail "launcher: $name:$bad"; fi
}
# err NAME CONF REGEX: under every shell, exit 78, swarmd not started, stderr matches REGEX.
err() {
  local name=$1 f=$2 re=$3 bad=""
  for s in "${SHELLS[@]}"; do
    launch "$s" "$f"
    if [ "$RC" != 78 ] || [ -s "$TMP/out" ] || ! grep -Eq -- "$re" <<<"$ERR"; then
      bad="$bad
  [$s] rc=$RC (want 78) stdout: $(head -c 200 "$TMP/out") stderr: $ERR (want /$re/)"
    fi
  done
  if [ -z "$bad" ]; then pass "launcher: $name -> exit 78: $(head -1 <<<"$ERR" | cut -c1-150)"; else fail "launcher: $name:$bad"; fi
}

BASE="SWARMD=$STUB
STATE_DIR=$NEW
"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
$BASE")
ok "valid init (defaults: listen 0.0.0.0:2377, data plane kernel, lb auto)" "$f" "$(lines --state-dir "$NEW" \
  --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.11:2377 --data-plane kernel --lb-backend auto)"

NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN=$TOK
$BASE")
ok "valid join: --join and --token, token not in the environment" "$f" "$(lines --state-dir "$NEW" \
  --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.12:2377 --data-plane kernel --lb-backend auto \
  --join 192.0.2.11:2377 --token "$TOK")"

# (conf's $(...) drops the final newline: the last line has none; HOSTNAME's line ends in CRLF)
NCASE=$((NCASE + 1)); f=$(conf "$(printf '%s\n' "# every key: comments, quotes, spaces around '=', a CRLF line, no final newline" \
  "ROLE = 'join'   # a comment" \
  "ADVERTISE_ADDR=\"[2001:db8::12]:2377\"" \
  "LISTEN_ADDR=[::]:2377" \
  "	JOIN_ADDR=manager1.example:2377" \
  "TOKEN_FILE=$TMP/token" \
  "STATE_DIR='$NEW'" \
  "HOSTNAME=node-2.example"$'\r' \
  "DATA_PLANE=none" \
  "" \
  "   # an indented comment" \
  "LB_BACKEND=nftables" \
  "SWARMD=$STUB" \
  "EXTRA_ARGS=\"--label zone=a   --dns-upstream none\"   # two flags")")
ok "valid join with every key (TOKEN_FILE, IPv6, quotes, comments, CRLF, EXTRA_ARGS split)" "$f" "$(lines \
  --state-dir "$NEW" --listen-addr '[::]:2377' --advertise-addr '[2001:db8::12]:2377' --hostname node-2.example \
  --data-plane none --lb-backend nftables --join manager1.example:2377 --token "$TOK" \
  --label zone=a --dns-upstream none)"

NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
SWARMD=$STUB
STATE_DIR=$OLD
")
ok "join restart (node.json there): no --join/--token, TOKEN no longer needed" "$f" "$(lines --state-dir "$OLD" \
  --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.12:2377 --data-plane kernel --lb-backend auto)"

NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN=$TOK
SWARMD=$STUB
STATE_DIR=$OLD
")
ok "join restart with the token still in the file: not passed again" "$f" "$(lines --state-dir "$OLD" \
  --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.12:2377 --data-plane kernel --lb-backend auto)"

NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
LISTEN_ADDR=192.0.2.11:2377
$BASE")
ok "no ADVERTISE_ADDR with a concrete LISTEN_ADDR: swarmd advertises it" "$f" "$(lines --state-dir "$NEW" \
  --listen-addr 192.0.2.11:2377 --data-plane kernel --lb-backend auto)"

# The VM harness's config (tests/vm/cluster.sh writes this shape).
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=198.18.9.12:2377
LISTEN_ADDR=198.18.9.12:2377
HOSTNAME=vm2
LB_BACKEND=auto
EXTRA_ARGS=\"--election-timeout 1s --raft-heartbeat 250ms --heartbeat-period 1s --dns-upstream none\"
JOIN_ADDR=198.18.9.11:2377
TOKEN=$TOK
$BASE")
ok "tests/vm/cluster.sh's config" "$f" "$(lines --state-dir "$NEW" --listen-addr 198.18.9.12:2377 \
  --advertise-addr 198.18.9.12:2377 --hostname vm2 --data-plane kernel --lb-backend auto \
  --join 198.18.9.11:2377 --token "$TOK" --election-timeout 1s --raft-heartbeat 250ms --heartbeat-period 1s \
  --dns-upstream none)"

NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
EXTRA_ARGS='--label x=\$(touch $TMP/pwned1) *'
$BASE")
ok "a '\$(...)' in single quotes is a literal argument, not run; no globbing" "$f" "$(lines --state-dir "$NEW" \
  --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.11:2377 --data-plane kernel --lb-backend auto \
  --label "x=\$(touch" "$TMP/pwned1)" '*')"

# exec: swarmd gets the launcher's PID (signals from systemd reach swarmd itself).
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
$BASE")
bad=""
for s in "${SHELLS[@]}"; do
  read -ra cmd <<<"$s"
  SHOAL_CONF=$f "${cmd[@]}" "$LAUNCHER" >"$TMP/exec.out" 2>/dev/null &
  p=$!
  wait "$p"
  got=$(sed -n 's/^pid=//p' "$TMP/exec.out")
  [ "$got" = "$p" ] || bad="$bad [$s] launcher pid $p, swarmd pid ${got:-none}"
done
if [ -z "$bad" ]; then pass "launcher: execs swarmd (same PID)"; else fail "launcher: exec:$bad"; fi

# --check: prints the command line, token masked, starts nothing.
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN=$TOK
$BASE")
bad=""
for s in "${SHELLS[@]}"; do
  launch "$s" "$f" --check
  want="$STUB --state-dir $NEW --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.12:2377 --data-plane kernel --lb-backend auto --join 192.0.2.11:2377 --token <token>"
  [ "$RC" = 0 ] && [ "$(cat "$TMP/out")" = "$want" ] || bad="$bad [$s] rc=$RC out=$(cat "$TMP/out") err=$ERR"
done
if [ -z "$bad" ]; then pass "launcher: --check prints the command line with the token masked"; else fail "launcher: --check:$bad"; fi

# A readable config holding a token: started, with a warning.
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN=$TOK
$BASE")
chmod 644 "$f"
bad=""
for s in "${SHELLS[@]}"; do
  launch "$s" "$f"
  [ "$RC" = 0 ] && grep -q 'chmod 600' <<<"$ERR" || bad="$bad [$s] rc=$RC err=$ERR"
done
if [ -z "$bad" ]; then pass "launcher: warns about a token in a file others can read"; else fail "launcher: permission warning:$bad"; fi

# Errors.
err "config file missing" "$TMP/nonexistent.conf" "nonexistent.conf not found"
err "the example deploy/swarmd.conf as shipped (nothing set)" "$HERE/swarmd.conf" "swarmd.conf: ROLE is not set"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
$BASE")
err "join without a token" "$f" "case$NCASE.conf: ROLE=join needs TOKEN"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
TOKEN=$TOK
$BASE")
err "join without JOIN_ADDR" "$f" "ROLE=join needs JOIN_ADDR"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
# a comment
ROLES=init
$BASE")
err "unknown key (named with file and line)" "$f" "case$NCASE.conf:4: unknown key 'ROLES'"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=master
ADVERTISE_ADDR=192.0.2.11:2377
$BASE")
err "bad ROLE" "$f" "case$NCASE.conf:1: ROLE must be init .* not 'master'"
NCASE=$((NCASE + 1)); f=$(conf "ADVERTISE_ADDR=192.0.2.11:2377
$BASE")
err "ROLE missing" "$f" "ROLE is not set"
for a in 192.0.2.11 192.0.2.256:2377 manager1:2377 192.0.2.11:0 192.0.2.11:65536 010.0.2.11:2377 \
  192.0.2:2377 192.0.2.11.:2377 '[2001:db8::1]' 0.0.0.0:2377; do
  NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=$a
$BASE")
  err "ADVERTISE_ADDR=$a" "$f" "case$NCASE.conf:2: ADVERTISE_ADDR (must be IP:PORT|cannot be a wildcard)"
done
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
$BASE")
err "no ADVERTISE_ADDR with the wildcard LISTEN_ADDR" "$f" "ADVERTISE_ADDR is not set"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
LISTEN_ADDR=2377
$BASE")
err "bad LISTEN_ADDR" "$f" "LISTEN_ADDR must be IP:PORT"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11
TOKEN=$TOK
$BASE")
err "bad JOIN_ADDR" "$f" "JOIN_ADDR must be"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN=SWMTKN-1-abc-secret-with-dashes
$BASE")
err "malformed token (and the message does not show it)" "$f" "TOKEN is not a join token"
grep -q secret-with-dashes <<<"$ERR" && fail "launcher: the error message shows the token: $ERR"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN=$TOK
TOKEN_FILE=$TMP/token
$BASE")
err "TOKEN and TOKEN_FILE both" "$f" "not both"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=join
ADVERTISE_ADDR=192.0.2.12:2377
JOIN_ADDR=192.0.2.11:2377
TOKEN_FILE=$TMP/no-such-token
$BASE")
err "unreadable TOKEN_FILE" "$f" "cannot read the token file"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
HOSTNAME=\$(touch $TMP/pwned2)
$BASE")
err "\$(...) outside single quotes is refused, not run" "$f" "case$NCASE.conf:3: HOSTNAME: .* not expanded"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
HOSTNAME=\"\`touch $TMP/pwned3\`\"
$BASE")
err "backquotes in double quotes are refused, not run" "$f" "HOSTNAME: .* not expanded"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
touch $TMP/pwned4
$BASE")
err "a command line is not run" "$f" "case$NCASE.conf:2: expected KEY=value"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
ROLE=join
$BASE")
err "a key set twice" "$f" "case$NCASE.conf:3: ROLE is already set on line 1"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=\"192.0.2.11:2377
$BASE")
err "unterminated quote" "$f" "case$NCASE.conf:2: ADVERTISE_ADDR: no closing"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
EXTRA_ARGS=--label a=b
$BASE")
err "unquoted value with spaces" "$f" "case$NCASE.conf:3: EXTRA_ARGS: a value with spaces must be quoted"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
EXTRA_ARGS=\"--log debug --token=x\"
$BASE")
err "EXTRA_ARGS with a flag that has its own key" "$f" "EXTRA_ARGS has --token=x"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
DATA_PLANE=full
$BASE")
err "bad DATA_PLANE" "$f" "DATA_PLANE must be kernel or none"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
LB_BACKEND=haproxy
$BASE")
err "bad LB_BACKEND" "$f" "LB_BACKEND must be auto, ipvs or nftables"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
STATE_DIR=var/lib/shoal
SWARMD=$STUB
")
err "relative STATE_DIR" "$f" "STATE_DIR must be an absolute path"
NCASE=$((NCASE + 1)); f=$(conf "ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
SWARMD=$TMP/no-swarmd
STATE_DIR=$NEW
")
err "SWARMD not executable" "$f" "no executable swarmd at $TMP/no-swarmd"
if ls "$TMP"/pwned* >/dev/null 2>&1; then
  fail "launcher: a command from a config file was run ($(ls "$TMP"/pwned*))"
else
  pass "launcher: no command from any config file was run"
fi

# ------------------------------------------------------------------ 3. the unit
section "systemd unit"
bad=""
for want in '^ExecStart=/usr/local/lib/shoal/swarmd-start$' '^After=.*network-online\.target' \
  '^Wants=.*network-online\.target' '^Restart=on-failure$' '^RestartSec=' '^RestartPreventExitStatus=78$' \
  '^KillMode=process$' '^Delegate=yes$' '^StateDirectory=shoal$' '^StateDirectoryMode=0700$' \
  '^LimitNOFILE=' '^TasksMax=infinity$' '^WantedBy=multi-user\.target$'; do
  grep -Eq "$want" "$UNIT" || bad="$bad missing /$want/;"
done
for no in ProtectSystem ProtectHome PrivateTmp PrivateNetwork PrivateDevices PrivateMounts \
  CapabilityBoundingSet AmbientCapabilities RestrictNamespaces SystemCallFilter NoNewPrivileges \
  ProtectKernelModules ProtectKernelTunables ProtectControlGroups RestrictAddressFamilies User DynamicUser; do
  grep -Eq "^$no=" "$UNIT" && bad="$bad has $no= (it would stop swarmd from building namespaces/networks);"
done
if [ -z "$bad" ]; then pass "unit: ExecStart launcher, network-online, Restart, KillMode=process, Delegate, StateDirectory 0700, limits, no sandboxing"; else fail "unit:$bad"; fi

# verify_unit NAME FILE [systemd-analyze args]: exit 0 AND no output (verify only warns, exit 0,
# about unknown or misspelled settings).
verify_unit() {
  local name=$1 out rc
  out=$(timeout 60 systemd-analyze verify "${@:2}" 2>&1)
  rc=$?
  if [ $rc = 0 ] && [ -z "$out" ]; then pass "systemd-analyze verify: $name"; else fail "systemd-analyze verify: $name: rc=$rc $out"; fi
}
HAVE_ANALYZE=no
if command -v systemd-analyze >/dev/null 2>&1; then
  HAVE_ANALYZE=yes
  # The unit as written, its paths moved into a temporary root: verify checks that the
  # ExecStart program exists and is executable, and this machine has no /usr/local/lib/shoal.
  V=$TMP/verify
  mkdir -p "$V/root/usr/local/lib/shoal"
  cp "$LAUNCHER" "$V/root/usr/local/lib/shoal/swarmd-start"
  sed "s#^ExecStart=/#ExecStart=$V/root/#" "$UNIT" >"$V/swarmd.service"
  verify_unit "deploy/swarmd.service (ExecStart moved into a temporary root)" "$V/swarmd.service"
  # The check must be able to fail: a misspelled setting is reported.
  mkdir -p "$V/bad"
  sed 's/^KillMode=process$/KillMode=proces/' "$V/swarmd.service" >"$V/bad/swarmd.service"
  out=$(systemd-analyze verify "$V/bad/swarmd.service" 2>&1)
  if grep -q 'kill mode' <<<"$out"; then pass "systemd-analyze verify reports a bad setting (negative control)"; else fail "systemd-analyze verify did not report KillMode=proces: $out"; fi
else
  skip "systemd-analyze: not installed"
fi

# ------------------------------------------------------------------ 4. install.sh
section "install.sh into a temporary root"
BIN=$CARGO_TARGET_DIR/debug
if [ ! -x "$BIN/swarmd" ] || [ ! -x "$BIN/swarmctl" ] || [ ! -x "$BIN/whoami" ]; then
  echo "building the binaries: cargo build --locked --bins (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$REPO" && timeout 3600 cargo build --locked --bins) || fail "cargo build --locked --bins"
fi
# snapshot ROOT: every path with its type, mode and content hash.
snapshot() {
  (cd "$1" && find . -printf '%y %m %p\n' | sort -k3 | while read -r t m p; do
    if [ "$t" = f ]; then echo "$t $m $p $(sha256sum <"$p" | cut -c1-16)"; else echo "$t $m $p"; fi
  done)
}
# mode_is PATH MODE
mode_is() { [ "$(stat -c %a "$1" 2>/dev/null)" = "$2" ]; }
R=$TMP/root
mkdir -p "$R/etc/systemd"   # a system with systemd: the unit is installed
if timeout 300 bash "$INSTALL" --root "$R" --no-build --bin-dir "$BIN" --no-deps >"$TMP/install1.out" 2>&1; then
  pass "install.sh --root TMP --no-build --bin-dir BIN --no-deps: first run"
else
  fail "install.sh first run: $(cat "$TMP/install1.out")"
fi
sed 's/^/    /' "$TMP/install1.out"
bad=""
for b in swarmd swarmctl whoami; do
  cmp -s "$BIN/$b" "$R/usr/local/bin/$b" && mode_is "$R/usr/local/bin/$b" 755 || bad="$bad /usr/local/bin/$b;"
done
cmp -s "$LAUNCHER" "$R/usr/local/lib/shoal/swarmd-start" && mode_is "$R/usr/local/lib/shoal/swarmd-start" 755 || bad="$bad launcher;"
cmp -s "$UNIT" "$R/etc/systemd/system/swarmd.service" && mode_is "$R/etc/systemd/system/swarmd.service" 644 || bad="$bad unit;"
cmp -s "$HERE/swarmd.conf" "$R/etc/shoal/swarmd.conf" && mode_is "$R/etc/shoal/swarmd.conf" 600 || bad="$bad config (0600);"
mode_is "$R/etc/shoal" 700 || bad="$bad /etc/shoal (0700);"
mode_is "$R/var/lib/shoal" 700 || bad="$bad /var/lib/shoal (0700);"
if [ -z "$bad" ]; then pass "first install: binaries 0755, launcher 0755, unit 0644, config 0600, /etc/shoal and /var/lib/shoal 0700"; else fail "first install:$bad"; fi

# The operator writes the config; then install.sh runs again.
cat >"$R/etc/shoal/swarmd.conf" <<EOF
# edited by the operator
ROLE=init
ADVERTISE_ADDR=192.0.2.11:2377
SWARMD=$R/usr/local/bin/swarmd
STATE_DIR=$R/var/lib/shoal
EOF
before=$(snapshot "$R")
if timeout 300 bash "$INSTALL" --root "$R" --no-build --bin-dir "$BIN" --no-deps >"$TMP/install2.out" 2>&1; then
  pass "install.sh: second run"
else
  fail "install.sh second run: $(cat "$TMP/install2.out")"
fi
sed 's/^/    /' "$TMP/install2.out"
after=$(snapshot "$R")
if [ "$before" = "$after" ]; then
  pass "second run: exactly the same files, modes and contents ($(wc -l <<<"$after") entries; nothing added, nothing duplicated)"
else
  fail "second run changed the install: $(diff <(echo "$before") <(echo "$after"))"
fi
grep -q 'edited by the operator' "$R/etc/shoal/swarmd.conf" && pass "second run: the operator's config was kept" || fail "the config was overwritten"
n=$(grep -c 'already installed' "$TMP/install2.out")
if [ "$n" -ge 5 ] && grep -q 'nothing changed' "$TMP/install2.out" && grep -q 'never overwritten' "$TMP/install2.out"; then
  pass "second run reports 'already installed' ($n files), config kept, 'nothing changed'"
else
  fail "second run's report: $(cat "$TMP/install2.out")"
fi
leftovers=$(find "$R" -name '*.shoal-new' -o -name '*~' | head -5)
[ -z "$leftovers" ] && pass "no temporary files left in the root" || fail "leftovers: $leftovers"

# One working install: the installed launcher runs the installed swarmd with the config.
out=$(SHOAL_CONF=$R/etc/shoal/swarmd.conf timeout 10 sh "$R/usr/local/lib/shoal/swarmd-start" --check 2>/dev/null)
want="$R/usr/local/bin/swarmd --state-dir $R/var/lib/shoal --listen-addr 0.0.0.0:2377 --advertise-addr 192.0.2.11:2377 --data-plane kernel --lb-backend auto"
[ "$out" = "$want" ] && pass "installed launcher --check: $out" || fail "installed launcher --check: '$out' (want '$want')"
echo 'EXTRA_ARGS=--version' >>"$R/etc/shoal/swarmd.conf"
out=$(SHOAL_CONF=$R/etc/shoal/swarmd.conf timeout 20 "$R/usr/local/lib/shoal/swarmd-start" 2>/dev/null)
case $out in swarmd\ *) pass "installed launcher execs the installed swarmd: '$out'" ;; *) fail "installed launcher + swarmd --version: '$out'" ;; esac
v1=$(timeout 20 "$R/usr/local/bin/swarmctl" --version 2>&1)
v2=$(timeout 20 "$R/usr/local/bin/whoami" --help 2>&1 | head -1)
[ -n "$v1" ] && [ -n "$v2" ] && pass "installed swarmctl and whoami run: '$v1' / '$v2'" || fail "installed swarmctl/whoami: $v1 / $v2"
# A config others can read is tightened (never rewritten).
chmod 644 "$R/etc/shoal/swarmd.conf"
sum=$(sha256sum <"$R/etc/shoal/swarmd.conf")
timeout 300 bash "$INSTALL" --root "$R" --bin-dir "$BIN" --no-deps >"$TMP/install3.out" 2>&1
if mode_is "$R/etc/shoal/swarmd.conf" 600 && [ "$(sha256sum <"$R/etc/shoal/swarmd.conf")" = "$sum" ]; then
  pass "a config readable by others: mode back to 0600, content untouched"
else
  fail "config mode fix: $(stat -c %a "$R/etc/shoal/swarmd.conf") $(cat "$TMP/install3.out")"
fi
if [ "$HAVE_ANALYZE" = yes ]; then
  # The installed unit, in the install root: systemd-analyze --root needs the system's own
  # units there too (sysinit.target, network-online.target...): copy this machine's.
  sys=""
  for d in /usr/lib/systemd/system /lib/systemd/system; do [ -d "$d" ] && { sys=$d; break; }; done
  if [ -n "$sys" ]; then
    mkdir -p "$R/usr/lib/systemd"
    cp -a "$sys" "$R/usr/lib/systemd/system"
    verify_unit "the installed unit, systemd-analyze verify --root=TMP swarmd.service" --root="$R" swarmd.service
  else
    skip "systemd-analyze --root: no system unit directory to copy"
  fi
fi

section "install.sh: upgrade, no systemd, errors"
# Small stand-ins for the binaries: an upgrade replaces only what changed.
FB=$TMP/fakebin
mkdir -p "$FB"
for b in swarmd swarmctl whoami; do printf '#!/bin/sh\necho %s v1\n' "$b" >"$FB/$b"; chmod 755 "$FB/$b"; done
R2=$TMP/root-nosystemd
mkdir -p "$R2"
timeout 60 bash "$INSTALL" --prefix "$R2" --bin-dir "$FB" --no-deps >"$TMP/i4.out" 2>&1 || fail "install into a root without systemd: $(cat "$TMP/i4.out")"
if [ ! -e "$R2/etc/systemd" ] && grep -q 'swarmd.service: not installed (no systemd' "$TMP/i4.out" && [ -x "$R2/usr/local/lib/shoal/swarmd-start" ]; then
  pass "a root without systemd: no unit (and no /etc/systemd made), the rest installed (--prefix)"
else
  fail "root without systemd: $(cat "$TMP/i4.out")"
fi
printf '#!/bin/sh\necho swarmd v2\n' >"$FB/swarmd"
timeout 60 bash "$INSTALL" --root "$R2" --bin-dir "$FB" --no-deps >"$TMP/i5.out" 2>&1
if grep -q '/usr/local/bin/swarmd: updated' "$TMP/i5.out" && grep -q 'swarmctl: already installed' "$TMP/i5.out" &&
  [ "$("$R2/usr/local/bin/swarmd")" = "swarmd v2" ] && grep -q '(1 change(s))' "$TMP/i5.out"; then
  pass "upgrade: only swarmd replaced ('updated'), the rest 'already installed'"
else
  fail "upgrade: $(cat "$TMP/i5.out")"
fi
rm "$FB/whoami"
if timeout 60 bash "$INSTALL" --root "$R2" --bin-dir "$FB" --no-deps >"$TMP/i6.out" 2>&1; then
  fail "install.sh accepted a --bin-dir without whoami"
else
  grep -q "no executable $FB/whoami" "$TMP/i6.out" && pass "install.sh refuses a --bin-dir missing a binary" || fail "missing binary message: $(cat "$TMP/i6.out")"
fi
if timeout 60 bash "$INSTALL" --root "$TMP/no-such-root" --bin-dir "$BIN" >"$TMP/i7.out" 2>&1 ||
  timeout 60 bash "$INSTALL" --frobnicate >>"$TMP/i7.out" 2>&1; then
  fail "install.sh accepted a bad --root or option"
else
  pass "install.sh refuses a missing --root and an unknown option"
fi

# ------------------------------------------------------------------ 5. cloud-init
section "cloud-init user-data"
if command -v python3 >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null; then
  for y in "$HERE"/cloud-init/manager.yaml "$HERE"/cloud-init/join.yaml; do
    name=cloud-init/${y##*/}
    if ! out=$(python3 - "$y" "$TMP/ci" <<'PY' 2>&1
import os, sys, yaml
path, out = sys.argv[1], sys.argv[2]
text = open(path).read()
assert text.startswith("#cloud-config\n"), "first line is not #cloud-config"
d = yaml.safe_load(text)
assert isinstance(d, dict), "not a mapping"
files = {w["path"]: w for w in d["write_files"]}
conf = files["/etc/shoal/swarmd.conf"]
assert str(conf["permissions"]) == "0600", "config not 0600"
assert any("bash" in str(c) and "shoal-bootstrap" in str(c) for c in d["runcmd"]), "runcmd does not run the bootstrap"
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "swarmd.conf"), "w").write(conf["content"])
open(os.path.join(out, "bootstrap.sh"), "w").write(files["/root/shoal-bootstrap.sh"]["content"])
PY
    ); then
      fail "$name: $out"
      continue
    fi
    pass "$name: valid YAML, #cloud-config, config 0600, runcmd runs the bootstrap"
    if out=$(bash -n "$TMP/ci/bootstrap.sh" 2>&1) && grep -q 'install.sh --no-build' "$TMP/ci/bootstrap.sh" &&
      grep -q 'systemctl enable --now swarmd' "$TMP/ci/bootstrap.sh"; then
      pass "$name: bootstrap script parses, runs install.sh --no-build and systemctl enable --now swarmd"
    else
      fail "$name: bootstrap: $out"
    fi
    # Its config, placeholders filled in, is accepted by the launcher.
    sed -e 's/__ADVERTISE_ADDR__/192.0.2.12:2377/; s/__JOIN_ADDR__/192.0.2.11:2377/' \
      -e "s/__TOKEN__/$TOK/" "$TMP/ci/swarmd.conf" >"$TMP/ci/filled.conf"
    printf 'SWARMD=%s\nSTATE_DIR=%s\n' "$STUB" "$NEW" >>"$TMP/ci/filled.conf"
    chmod 600 "$TMP/ci/filled.conf"
    if out=$(SHOAL_CONF=$TMP/ci/filled.conf sh "$LAUNCHER" --check 2>&1); then pass "$name: its swarmd.conf, placeholders filled, passes swarmd-start --check"; else fail "$name: config: $out"; fi
    out=$(SHOAL_CONF=$TMP/ci/swarmd.conf sh "$LAUNCHER" --check 2>&1)
    if grep -q '__ADVERTISE_ADDR__' <<<"$out"; then pass "$name: with placeholders left in, the launcher refuses to start ($(tail -1 <<<"$out" | cut -c1-90)...)"; else fail "$name: placeholder not caught: $out"; fi
  done
else
  skip "cloud-init YAML: python3 with PyYAML not available"
fi

echo "== check-kit: $PASSES passed, $FAILS failed, $SKIPS skipped"
[ "$FAILS" -eq 0 ]
