#!/bin/busybox sh
# guest-init.sh - /init (PID 1) of the throwaway test VM started by run-in-vm.sh.
#
# It mounts the usual filesystems, loads the networking modules (IPVS, nftables, bridge,
# VXLAN, veth ...), runs ONE test binary (or a shell command) with SHOAL_IN_VM=1 and
# RUST_BACKTRACE=1, prints its output on the console (ttyS0), then the marker line
#     @@VMTEST rc=<exit code>
# and powers the VM off. The host script takes the exit code from that marker.
#
# Parameters (kernel command line, set by run-in-vm.sh; values without spaces):
#   vmt.bin=PATH        the test binary (shipped in the initramfs at its host path)
#   vmt.args=B64        base64 of its arguments, shell-quoted ('a' 'b c' ...);
#                       vmt.args=@ : read the base64 text from /vmt/args.b64 instead
#   vmt.env=B64         base64 of extra NAME='value' assignments to export (optional)
#   vmt.cmd=B64         base64 of a shell command to run INSTEAD of the binary (debugging);
#                       it gets the binary as $VMT_BIN and the arguments as "$@"
#   vmt.timeout=SECS    kill the test after SECS seconds (default 300; marker rc=143)
#   vmt.dmesg=1         print the kernel log after the test
# Nothing here touches a network interface other than lo: the VM has no NIC.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# devtmpfs has no /dev/fd, /dev/stdin ... (udev makes them): `nft -f -` opens /dev/stdin
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# tmpfs on /tmp and /run, keeping what the initramfs put there (a test binary under /tmp ...)
for d in /tmp:1777 /run:0755; do
  p=${d%:*}
  if [ -n "$(ls -A "$p" 2>/dev/null)" ]; then
    mkdir -p "/.keep$p"; cp -a "$p/." "/.keep$p/"
    mount -t tmpfs -o "mode=${d#*:}" tmpfs "$p"; cp -a "/.keep$p/." "$p/"; rm -rf "/.keep$p"
  else
    mount -t tmpfs -o "mode=${d#*:}" tmpfs "$p"
  fi
done
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
hostname vmtest

# This busybox shell runs its own applets before $PATH ("standalone shell"): make `ip` and
# `bridge` mean iproute2 here (and in the debug command, run by /bin/sh = dash anyway).
cat > /etc/vmt-prelude.sh <<'EOF'
ip() { /usr/sbin/ip "$@"; }
bridge() { /usr/sbin/bridge "$@"; }
EOF
# shellcheck disable=SC1091
. /etc/vmt-prelude.sh

say() { echo "@@VMTEST $*"; }

BIN=; ARGS=; ENVS=; CMD=; TMO=300; DMESG=
# shellcheck disable=SC2013  # words, not lines
for a in $(cat /proc/cmdline); do
  case "$a" in
    vmt.bin=*)     BIN=${a#*=} ;;
    vmt.args=*)    ARGS=${a#*=} ;;
    vmt.env=*)     ENVS=${a#*=} ;;
    vmt.cmd=*)     CMD=${a#*=} ;;
    vmt.timeout=*) TMO=${a#*=} ;;
    vmt.dmesg=*)   DMESG=${a#*=} ;;
  esac
done
[ "$ARGS" = @ ] && ARGS=$(cat /vmt/args.b64)

# Modules. crc32c_generic first: libcrc32c (needed by nf_conntrack, ip_vs) has only a softdep
# on crc32c, which busybox modprobe ignores. /sbin/modprobe -> busybox also serves the kernel's
# on-demand loading (request_module) for anything else the closure contains.
MISSING=
for m in crc32c_generic nf_conntrack nf_nat ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_lc \
         veth bridge br_netfilter vxlan nf_tables nft_nat nft_chain_nat nft_ct nft_numgen \
         nft_masq nft_redir nft_hash nft_fib_inet nft_reject_inet nft_objref; do
  modprobe "$m" 2>/dev/null || MISSING="$MISSING $m"
done
[ -n "$MISSING" ] && say "warning: modules not loaded:$MISSING"
ip link set lo up

cd /tmp || exit 1
export HOME=/root USER=root LOGNAME=root SHOAL_IN_VM=1 RUST_BACKTRACE=1
if [ -n "$ENVS" ]; then eval "export $(echo "$ENVS" | base64 -d)"; fi
if [ -n "$ARGS" ]; then eval "set -- $(echo "$ARGS" | base64 -d)"; else set --; fi
export VMT_BIN="$BIN"

say "start uptime=$(cut -d' ' -f1 /proc/uptime)s kernel=$(uname -r) timeout=${TMO}s"
T0=$(cut -d. -f1 /proc/uptime)
if [ -n "$CMD" ]; then
  { cat /etc/vmt-prelude.sh; echo "$CMD" | base64 -d; } > /tmp/.vmt-cmd.sh
  timeout "$TMO" /bin/sh /tmp/.vmt-cmd.sh "$@" </dev/null 2>&1
  rc=$?
elif [ -n "$BIN" ] && [ -x "$BIN" ]; then
  timeout "$TMO" "$BIN" "$@" </dev/null 2>&1
  rc=$?
else
  say "error: no test binary (vmt.bin=$BIN)"
  rc=127
fi
T1=$(cut -d. -f1 /proc/uptime)
# from here on only the markers: no kernel message may split the rc line
echo 1 > /proc/sys/kernel/printk
[ "$rc" = 143 ] && [ $((T1 - T0)) -ge "$TMO" ] && say "timeout: killed after ${TMO}s"
if [ "$DMESG" = 1 ]; then say "dmesg:"; dmesg; say "dmesg end"; fi
say "end uptime=$(cut -d' ' -f1 /proc/uptime)s"
say "rc=$rc"
# Wait until the UART has sent everything (stty's tcsetattr uses TCSADRAIN), then power off.
stty -F /dev/console onlcr 2>/dev/null
sleep 0.1
poweroff -f
