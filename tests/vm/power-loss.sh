#!/bin/bash
# power-loss.sh - every acknowledged write survives a power cut of the whole cluster (issue #21).
#
# Boots one QEMU VM (Debian's kernel; the cached kernel and base initramfs of run-in-vm.sh) whose
# /var/lib/shoal is an ext4 disk image on this host, mounted so that the guest kernel writes
# nothing back on its own (cluster-init.sh, vmt.lazy=1): a page that is not fsynced stays in the
# guest's page cache. Three managers run in it (swarmd --data-plane none on 127.0.0.1:2377-2379,
# their state dirs on that disk). A writer in the VM creates services pl-1, pl-2, ... back to back
# and prints "PL-ACK n" on the console once swarmctl returned success for pl-n. After ACKS
# acknowledged creates and a seeded random delay, this script kills QEMU with SIGKILL: the power
# of all three managers is cut at once, mid-write, and whatever they did not fsync is gone. A
# second VM boots from the same disk image, restarts the three managers on their state dirs, and
# each of them must list every acknowledged pl-n. A file written without fsync just before the
# writes began must have lost its data: otherwise the cut lost nothing and proves nothing.
#
# Usage: tests/vm/power-loss.sh [BIN_DIR]   (root; BIN_DIR holds swarmd and swarmctl, default
#        $CARGO_TARGET_DIR/debug). Prints PASS/FAIL lines; exit 0 only if all pass.
# Env: ACKS (acknowledged writes before the cut, default 40), SEED (the delay after them, 0-1.5 s;
#      default random, printed for a replay), SHOAL_VM_MEM (MiB, 1024), SHOAL_VM_ACCEL (tcg),
#      KEEP=1 (keep the run dir: disk image, consoles).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=${1:-${CARGO_TARGET_DIR:-/var/tmp/shoal-target}/debug}
MEM=${SHOAL_VM_MEM:-1024}
ACCEL=${SHOAL_VM_ACCEL:-tcg}
ACKS=${ACKS:-40}
SEED=${SEED:-$((RANDOM % 1000))}
[[ $ACKS =~ ^[0-9]+$ && $SEED =~ ^[0-9]+$ ]] || { echo "ACKS and SEED must be numbers" >&2; exit 64; }
DIR=/var/lib/shoal   # in the VM: the disk
TIMERS="--election-timeout 1s --raft-heartbeat 250ms --heartbeat-period 1s"

# shellcheck source=lib.sh
. "$HERE/lib.sh"   # copy_with_libs ROOT FILE DEST, vmx I TIMEOUT SCRIPT, wait_for SECS DESC CMD...
script_checks power-loss   # log, pass, fail (counted in FAILS), die; now, since

[ "$(id -u)" = 0 ] || die "needs root (QEMU, the VM's kernel cache)"
for b in swarmd swarmctl; do [ -x "$BIN_DIR/$b" ] || die "no $BIN_DIR/$b (build the workspace first)"; done
command -v python3 >/dev/null || die "python3 is needed (the control channel client)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 is needed (e2fsprogs)"
read -r VMLINUX BASE < <(SHOAL_VM_PREPARE=1 bash "$HERE/run-in-vm.sh") || die "cannot prepare the VM kernel"
[ -s "$VMLINUX" ] && [ -s "$BASE" ] || die "no kernel/base initramfs from run-in-vm.sh"

RUN=$(mktemp -d /tmp/shoal-powerloss.XXXXXX)
cleanup() {
  local i p
  for i in 1 2; do
    p=$(cat "$RUN/vm$i.pid" 2>/dev/null) || continue
    kill -9 "$p" 2>/dev/null
  done
  if [ "${KEEP:-0}" = 1 ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ disk and initramfs
truncate -s 512M "$RUN/disk.img"
mkfs.ext4 -q -F "$RUN/disk.img" || die "mkfs.ext4 failed"
R=$RUN/root
for b in swarmd swarmctl; do
  copy_with_libs "$R" "$BIN_DIR/$b" "/usr/local/bin/$b"
  strip "$R/usr/local/bin/$b" 2>/dev/null || true
done
cp "$HERE/cluster-init.sh" "$R/init"; chmod 755 "$R/init"
(cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$RUN/run.cpio.gz"
cat "$BASE" "$RUN/run.cpio.gz" > "$RUN/initrd.img"
rm -rf "$R" "$RUN/run.cpio.gz"

boot() {   # boot I: the VM's I-th life, on the same disk image; waits until its /init serves
  local i=$1
  qemu-system-x86_64 -name "shoal-powerloss$i" -accel "$ACCEL" -cpu max -m "$MEM" -smp 2 \
    -nodefaults -no-user-config -display none -no-reboot -nic none \
    -kernel "$VMLINUX" -initrd "$RUN/initrd.img" \
    -append "console=ttyS0 panic=-1 quiet rdinit=/init vmt.name=pl vmt.disk=$DIR vmt.lazy=1" \
    -drive "file=$RUN/disk.img,format=raw,if=virtio" \
    -chardev file,id=con,path="$RUN/vm$i.console" -serial chardev:con \
    -chardev socket,id=ctl,path="$RUN/vm$i.ctl",server=on,wait=off \
    -device virtio-serial-pci,id=vser0 -device virtserialport,bus=vser0.0,chardev=ctl,name=vmt.ctl \
    -pidfile "$RUN/vm$i.pid" </dev/null >"$RUN/vm$i.qemu.log" 2>&1 &
  local _
  for _ in $(seq 1 1800); do grep -qa VMT-READY "$RUN/vm$i.console" 2>/dev/null && break; sleep 0.1; done
  grep -qa VMT-READY "$RUN/vm$i.console" || { tail -20 "$RUN/vm$i.console"; cat "$RUN/vm$i.qemu.log"; die "boot $i: the VM did not come up"; }
  vmx "$i" 10 "grep -q ' $DIR ext4 ' /proc/mounts" >/dev/null || die "boot $i: $DIR is not the ext4 disk"
}
# start_managers I: the three managers in VM life I (first life: m1 initialises, m2 and m3 join
# it; later lives: each restarts from its state dir). Logs in the VM's /tmp (gone with the power).
start_managers() {
  vmx "$1" 60 "
    start() {   # start N [--join ADDR --token T]
      n=\$1; shift
      mkdir -p $DIR/m\$n
      setsid swarmd --state-dir $DIR/m\$n --hostname m\$n --listen-addr 127.0.0.1:\$((2376 + n)) \
        --data-plane none $TIMERS \"\$@\" > /tmp/m\$n.log 2>&1 < /dev/null &
    }
    up() { for _ in \$(seq 1 600); do swarmctl --host unix://$DIR/m\$1/swarmd.sock node ls >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
    if [ -e $DIR/m1/node.json ]; then
      start 1; start 2; start 3
    else
      start 1; up 1 || { tail -20 /tmp/m1.log; exit 1; }
      t=\$(swarmctl --host unix://$DIR/m1/swarmd.sock swarm join-token manager -q)
      start 2 --join 127.0.0.1:2377 --token \$t
      start 3 --join 127.0.0.1:2377 --token \$t
    fi
    echo started"
}
ctl() { local i=$1 m=$2; shift 2; vmx "$i" 60 "swarmctl --host unix://$DIR/m$m/swarmd.sock $*"; }
three_ready() { [ "$(ctl "$1" 1 node ls | grep -c ' Ready ')" = 3 ]; }
dump() { vmx "$1" 20 'for n in 1 2 3; do echo "--- m$n"; tail -15 /tmp/m$n.log; done'; }

# ------------------------------------------------------------------ first life: writes, then the cut
boot 1
log "VM up"
start_managers 1 >/dev/null || { dump 1; die "the managers did not start"; }
wait_for 180 "3 managers Ready" three_ready 1 || { dump 1; die "the cluster did not form"; }
pass "3 managers on the VM's disk, formed in $(since "$T_START")s"
# Unsynced on purpose: the cut must lose it (a check that the cut is real).
vmx 1 10 "echo control-data > $DIR/unsynced-control" >/dev/null
vmx 1 10 "
  setsid sh -c '
    n=0
    while [ \$n -lt 100000 ]; do
      n=\$((n + 1))
      if swarmctl --host unix://$DIR/m1/swarmd.sock service create --runtime process -d \
           --name pl-\$n --replicas 0 sleep 1 >/dev/null 2>/tmp/writer.err; then
        echo PL-ACK \$n > /dev/console
      else
        echo PL-FAIL \$n > /dev/console
      fi
    done' > /dev/null 2>&1 < /dev/null &
  echo writer started" >/dev/null
acked() { grep -ao 'PL-ACK [0-9]*' "$RUN/vm1.console" | awk '{print $2}'; }
enough() { [ "$(acked | wc -l)" -ge "$ACKS" ]; }
wait_for 600 "$ACKS acknowledged writes" enough || { dump 1; die "the writer did not get $ACKS writes acknowledged"; }
DELAY=$(awk -v s="$SEED" 'BEGIN{printf "%.3f", (s % 1000) * 1.5 / 1000}')
sleep "$DELAY"
QEMU1=$(cat "$RUN/vm1.pid")
kill -9 "$QEMU1"
wait "$QEMU1" 2>/dev/null   # our child: reaped here, quietly
ACKED=$(acked | sort -n | uniq)
N_ACKED=$(echo "$ACKED" | grep -c .)
N_FAILED=$(grep -ao 'PL-FAIL [0-9]*' "$RUN/vm1.console" | wc -l)
log "power cut ${DELAY}s (seed $SEED) after the ${ACKS}th acknowledged write: $N_ACKED acknowledged, $N_FAILED refused"

# ------------------------------------------------------------------ second life: all there?
boot 2
if [ "$(vmx 2 10 "cat $DIR/unsynced-control 2>/dev/null")" = control-data ]; then
  fail "a file written without fsync survived the cut: the cut lost nothing, so this run proves nothing"
else
  pass "the cut lost what was not fsynced (the control file's data is gone)"
fi
start_managers 2 >/dev/null || { dump 2; die "the managers did not restart"; }
wait_for 180 "3 managers Ready after the cut" three_ready 2 || { dump 2; die "the cluster did not come back"; }
pass "3 managers back on their state dirs in $(since "$T_START")s"
missing() {   # missing I M: the acknowledged pl-n that manager M does not list (follower-local read)
  local have
  have=$(ctl "$1" "$2" service ls | awk 'NR > 1 && $2 ~ /^pl-/ {sub(/^pl-/, "", $2); print $2}' | sort -n | uniq)
  comm -23 <(echo "$ACKED") <(echo "$have")
}
for m in 1 2 3; do
  none_missing() { [ -z "$(missing 2 "$m")" ]; }
  if wait_for 60 "m$m to list every acknowledged write" none_missing; then
    pass "m$m lists all $N_ACKED acknowledged writes after the power cut"
  else
    fail "m$m lost acknowledged writes: $(missing 2 "$m" | tr '\n' ' ')(seed $SEED)"
  fi
done
# A write after the restart: the cluster takes new writes.
if ctl 2 2 service create --runtime process -d --name pl-after --replicas 0 sleep 1 >/dev/null; then
  pass "a new write is acknowledged after the restart"
else
  fail "no write acknowledged after the restart"
fi
[ "$FAILS" -gt 0 ] && dump 2
log "seed $SEED, $N_ACKED acknowledged writes before the cut; replay: SEED=$SEED ACKS=$ACKS $0"
if [ "$FAILS" -gt 0 ]; then log "$FAILS check(s) failed"; exit 1; fi
log "all checks passed"
