# lib.sh - shell functions shared by run-in-vm.sh, cluster.sh and power-loss.sh (source it).

# copy_with_libs ROOT FILE [DEST]: FILE at ROOT/DEST (default its own path) and the shared
# libraries `ldd` lists for it, at their own paths under ROOT.
copy_with_libs() {
  local root=$1 f=$2 dest=${3:-$2} l
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$f" "$root$dest"
  { ldd "$f" 2>/dev/null || true; } | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]*ld-linux/{print $1}' |
    while read -r l; do
      [ -e "$root$l" ] && continue
      mkdir -p "$root$(dirname "$l")"; cp -L "$l" "$root$l"
    done
}

# vmx I TIMEOUT 'script': runs the script in VM I (control socket $RUN/vmI.ctl, served by
# cluster-init.sh), prints its output, returns its exit code (124: no answer in time).
vmx() {
  python3 - "$RUN/vm$1.ctl" "$2" "$3" <<'PY'
import base64, random, socket, sys, time
path, tmo, script = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rid = str(random.randrange(10**9))
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.settimeout(1.0)
s.sendall(("CMD %s %s\n" % (rid, base64.b64encode(script.encode()).decode())).encode())
buf, end = b"", time.time() + tmo
begin, fin = ("@@VMT-BEGIN %s\n" % rid).encode(), ("@@VMT-END %s rc=" % rid).encode()
while time.time() < end:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        continue
    if not chunk:
        break
    buf += chunk
    if fin in buf and buf.endswith(b"\n"):
        out = buf.split(begin, 1)[-1]
        body, rc = out.split(fin, 1)
        sys.stdout.write(body.decode(errors="replace"))
        sys.exit(int(rc.split(b"\n")[0]))
sys.stdout.write(buf.decode(errors="replace"))
print("[no answer within %ss]" % tmo)
sys.exit(124)
PY
}

wait_for() {   # wait_for SECONDS DESC CMD...: until CMD succeeds
  local t=$1 desc=$2; shift 2
  local end=$(( $(date +%s) + t ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "timed out after ${t}s waiting for $desc"
  return 1
}

# script_checks NAME: log/pass/fail/die for a script that prints PASS/FAIL lines, each line
# "[NAME <seconds since this call>s] ..."; fail counts in FAILS, die exits 1; now and since too.
script_checks() {
  CHECKS_NAME=$1
  T_START=$(date +%s.%N)
  FAILS=0
  now() { date +%s.%N; }
  since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
  log() { echo "[$CHECKS_NAME $(since "$T_START")s] $*"; }
  pass() { log "PASS $*"; }
  fail() { log "FAIL $*"; FAILS=$((FAILS + 1)); }
  die() { log "FATAL $*"; exit 1; }
}

# ------------------------------------------------------------------ a cluster of VMs
# For cluster.sh and bench/vm-lb.sh: N VMs booted with cluster-init.sh as /init on a bridge in a
# network namespace of the caller's own (no route anywhere else), swarmd from the deploy kit.
# The caller sets N, NET (first three octets: VM i is NET.(10+i), the bridge NET.1), NS (the
# namespace's name), RUN (its run directory), MEM, ACCEL, HB (heartbeat period), REPO, and
# defines log and die; `trap vmc_cleanup EXIT` removes everything, even on failure.
VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# vmc_initrd BIN_DIR [HOST_FILE...]: $RUN/initrd.img = run-in-vm.sh's cached base + swarmd,
# swarmctl, whoami from BIN_DIR, the kit (deploy/), bash, curl, and each HOST_FILE at its own
# path, all with their `ldd` closures. Sets VMLINUX.
vmc_initrd() {
  local bin_dir=$1 base b f r=$RUN/root; shift
  read -r VMLINUX base < <(SHOAL_VM_PREPARE=1 bash "$VM_LIB_DIR/run-in-vm.sh") || die "cannot prepare the VM kernel"
  [ -s "$VMLINUX" ] && [ -s "$base" ] || die "no kernel/base initramfs from run-in-vm.sh"
  local launcher=${SHOAL_VM_LAUNCHER:-$REPO/deploy/swarmd-start}
  [ -x "$launcher" ] || die "no $launcher (the deploy kit's launcher)"
  mkdir -p "$r/opt/shoal/bin" "$r/opt/shoal/deploy"
  # What a node gets from the kit: the binaries and deploy/ (install.sh puts them in place in
  # the VM); bash for install.sh.
  for b in swarmd swarmctl whoami; do
    copy_with_libs "$r" "$bin_dir/$b" "/opt/shoal/bin/$b"
    strip "$r/opt/shoal/bin/$b" 2>/dev/null || true
  done
  for f in install.sh deps.sh swarmd.service swarmd.conf; do cp "$REPO/deploy/$f" "$r/opt/shoal/deploy/"; done
  cp "$launcher" "$r/opt/shoal/deploy/swarmd-start"
  copy_with_libs "$r" "$(command -v bash)" /bin/bash
  # An HTTP client that resolves through the tasks' resolver (busybox's static wget cannot use
  # NSS); glibc asks DNS when nsswitch.conf says so (cluster-init.sh).
  if ! command -v curl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends curl >&2 ||
      die "curl is needed on this host (it is shipped into the VMs)"
  fi
  copy_with_libs "$r" "$(command -v curl)" /usr/bin/curl
  for f in "$@"; do copy_with_libs "$r" "$f"; done
  cp "$VM_LIB_DIR/cluster-init.sh" "$r/init"; chmod 755 "$r/init"
  (cd "$r" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$RUN/run.cpio.gz"
  cat "$base" "$RUN/run.cpio.gz" > "$RUN/initrd.img"
  rm -rf "$r" "$RUN/run.cpio.gz"
}

# vmc_cleanup: stops the VMs of $RUN (by the PIDs QEMU wrote), deletes $NS, removes $RUN
# (KEEP=1 keeps it).
vmc_cleanup() {
  local i p
  for i in $(seq 1 "$N"); do
    p=$(cat "$RUN/vm$i.pid" 2>/dev/null) || continue
    kill "$p" 2>/dev/null
  done
  sleep 0.5
  for i in $(seq 1 "$N"); do
    p=$(cat "$RUN/vm$i.pid" 2>/dev/null) || continue
    kill -9 "$p" 2>/dev/null
  done
  ip netns del "$NS" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}

# vmc_up: the namespace $NS (a bridge, one tap per VM), then boots the N VMs from
# $VMLINUX/$RUN/initrd.img and waits until each is ready; sets BOOTED (seconds).
vmc_up() {
  local i t0
  ip netns add "$NS" || die "cannot create namespace $NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add br0 type bridge
  ip -n "$NS" addr add "$NET.1/24" dev br0
  ip -n "$NS" link set br0 up
  for i in $(seq 1 "$N"); do
    ip -n "$NS" tuntap add dev "tap$i" mode tap
    ip -n "$NS" link set "tap$i" master br0 up
  done
  t0=$(date +%s.%N)
  for i in $(seq 1 "$N"); do
    ip netns exec "$NS" qemu-system-x86_64 -name "shoal-vm$i" -accel "$ACCEL" -cpu max -m "$MEM" -smp 1 \
      -nodefaults -no-user-config -display none -no-reboot \
      -kernel "$VMLINUX" -initrd "$RUN/initrd.img" \
      -append "console=ttyS0 panic=-1 quiet rdinit=/init vmt.name=vm$i vmt.ip=$NET.$((10 + i))/24" \
      -chardev file,id=con,path="$RUN/vm$i.console" -serial chardev:con \
      -chardev socket,id=ctl,path="$RUN/vm$i.ctl",server=on,wait=off \
      -device virtio-serial-pci,id=vser0 -device virtserialport,bus=vser0.0,chardev=ctl,name=vmt.ctl \
      -netdev "tap,id=n0,ifname=tap$i,script=no,downscript=no" \
      -device virtio-net-pci,netdev=n0,mac=52:54:00:12:09:$((10 + i)) \
      -pidfile "$RUN/vm$i.pid" </dev/null >"$RUN/vm$i.qemu.log" 2>&1 9>&- &
  done
  for i in $(seq 1 "$N"); do
    for _ in $(seq 1 1800); do grep -qa VMT-READY "$RUN/vm$i.console" 2>/dev/null && break; sleep 0.1; done
    grep -qa VMT-READY "$RUN/vm$i.console" || { tail -20 "$RUN/vm$i.console"; cat "$RUN/vm$i.qemu.log"; die "vm$i did not boot"; }
  done
  BOOTED=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
}

# The swarmctl of VM I (root, the manager's unix socket).
ctl() { local i=$1; shift; vmx "$i" 120 "swarmctl --host unix:///var/lib/shoal/swarmd.sock $*"; }

# vmc_conf I ROLE [TOKEN]: VM I's /etc/shoal/swarmd.conf (base64), LB_BACKEND=auto.
vmc_conf() {
  local i=$1 role=$2 token=${3:-}
  local extra="--election-timeout 1s --raft-heartbeat 250ms --heartbeat-period $HB --dns-upstream none"
  {
    echo "ROLE=$role"
    echo "ADVERTISE_ADDR=$NET.$((10 + i)):2377"
    echo "LISTEN_ADDR=$NET.$((10 + i)):2377"
    echo "HOSTNAME=vm$i"
    echo "LB_BACKEND=auto"
    echo "EXTRA_ARGS=\"$extra\""
    if [ "$role" = join ]; then echo "JOIN_ADDR=$NET.11:2377"; echo "TOKEN=$token"; fi
  } | base64 -w0
}

# vmc_install_kit I: the kit's install.sh in VM I, twice; the second run must change nothing.
vmc_install_kit() {
  vmx "$1" 120 '
    k=/opt/shoal/deploy/install.sh
    bash $k --no-deps --bin-dir /opt/shoal/bin > /tmp/install1.log 2>&1 || { cat /tmp/install1.log; exit 1; }
    bash $k --no-deps --bin-dir /opt/shoal/bin > /tmp/install2.log 2>&1 || { cat /tmp/install2.log; exit 1; }
    cat /tmp/install2.log
    grep -q "nothing changed" /tmp/install2.log && swarmd --version && swarmctl --version &&
      [ -x /usr/local/lib/shoal/swarmd-start ] && [ "$(stat -c %a /var/lib/shoal)" = 700 ]'
}

# vmc_start_swarmd I ROLE [TOKEN]: swarmd in VM I from the kit's config.
vmc_start_swarmd() {
  vmx "$1" 30 "
    echo $(vmc_conf "$@") | base64 -d > /etc/shoal/swarmd.conf && chmod 600 /etc/shoal/swarmd.conf
    # As a systemd unit with Delegate=yes: swarmd in a cgroup of its own, memory and cpu
    # delegated to it (on cgroup v2 it then moves itself into a leaf to pass them on to tasks).
    c=/sys/fs/cgroup
    mkdir -p \$c/swarmd.service && echo +memory > \$c/cgroup.subtree_control && echo +cpu > \$c/cgroup.subtree_control
    setsid sh -c 'echo \$\$ > /sys/fs/cgroup/swarmd.service/cgroup.procs && exec /usr/local/lib/shoal/swarmd-start' \
      > /var/log/swarmd.log 2>&1 3>&- < /dev/null &
    echo started"
}

# vmc_swarm: the kit installed in every VM (dies if install.sh fails), vm1 initialises the
# swarm, the others join as workers with the token; waits until N nodes are Ready (dies
# otherwise, with the swarmd logs). Sets READY (seconds from the first start to N Ready).
vmc_swarm() {
  local i out wtoken t0
  for i in $(seq 1 "$N"); do
    out=$(vmc_install_kit "$i") || { echo "$out"; die "install.sh failed in vm$i"; }
  done
  t0=$(date +%s.%N)
  vmc_start_swarmd 1 init >/dev/null
  wait_for 90 "vm1's manager" ctl 1 node ls || { vmx 1 10 'tail -30 /var/log/swarmd.log'; die "vm1 did not initialise"; }
  wtoken=$(ctl 1 swarm join-token worker -q | tr -d '\r' | tail -1)
  case "$wtoken" in SWMTKN-1-*) ;; *) die "no worker token: $wtoken" ;; esac
  for i in $(seq 2 "$N"); do vmc_start_swarmd "$i" join "$wtoken" >/dev/null; done
  if ! wait_for 120 "$N Ready nodes" vmc_ready; then
    for i in $(seq 1 "$N"); do vmx "$i" 10 'tail -20 /var/log/swarmd.log'; done
    die "the cluster did not form"
  fi
  READY=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
}
vmc_ready() { [ "$(ctl 1 node ls | grep -c ' Ready ')" = "$N" ]; }

# vmc_running SERVICE N: exactly N tasks of SERVICE seen running (observed state, not desired).
vmc_running() {
  [ "$(ctl 1 service ps "$1" --format json | python3 -c 'import json,sys; print(sum(1 for t in json.load(sys.stdin) if t["status"]["state"] == "running" and t["desired_state"] == "running"))')" = "$2" ]
}
