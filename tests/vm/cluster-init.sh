#!/bin/busybox sh
# cluster-init.sh - /init (PID 1) of the VMs tests/vm/cluster.sh boots: a node of a Shoal cluster.
#
# Mounts the usual filesystems (tmpfs /tmp, /run, /var; cgroup2 on /sys/fs/cgroup), loads the
# networking modules, sets the host name and eth0's address from the kernel command line
# (vmt.name=, vmt.ip=), mounts the ext4 disk /dev/vda on the directory vmt.disk= names (if any;
# with vmt.lazy=1 the kernel writes nothing back on its own: what is not fsynced stays in the
# page cache and is lost with the power, tests/vm/power-loss.sh), prints "VMT-READY name=..." on the console, then serves a line protocol
# on the virtio-serial port "vmt.ctl":
#   host -> guest:  "CMD <id> <base64 of a shell script>\n" | "POWEROFF\n"
#   guest -> host:  "@@VMT-BEGIN <id>\n" <stdout+stderr of the script> "@@VMT-END <id> rc=<rc>\n"
# Scripts run with /bin/sh (dash when the host has it) with `ip`/`bridge` meaning iproute2.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup /var
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
for d in /tmp:1777 /run:0755 /var:0755; do mount -t tmpfs -o "mode=${d#*:}" tmpfs "${d%:*}"; done
mkdir -p /var/lib /var/tmp /var/log
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
cat > /etc/vmt-prelude.sh <<'P'
ip() { /usr/sbin/ip "$@"; }
bridge() { /usr/sbin/bridge "$@"; }
P
. /etc/vmt-prelude.sh
NAME=vm; IP=; DISK=; LAZY=
for a in $(cat /proc/cmdline); do
  case "$a" in
    vmt.name=*) NAME=${a#*=} ;;
    vmt.ip=*) IP=${a#*=} ;;
    vmt.disk=*) DISK=${a#*=} ;;
    vmt.lazy=*) LAZY=${a#*=} ;;
  esac
done
hostname "$NAME"; echo "$NAME" > /etc/hostname
printf '127.0.0.1\tlocalhost\n' > /etc/hosts
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > /etc/nsswitch.conf
# no resolver outside the cluster: the nodes' upstream is none (see cluster.sh)
: > /etc/resolv.conf
for m in crc32c_generic virtio_pci virtio_net virtio_console nf_conntrack nf_nat ip_vs ip_vs_rr \
         veth bridge br_netfilter vxlan nf_tables nft_nat nft_chain_nat nft_ct nft_numgen \
         nft_masq nft_redir nft_hash nft_fib_inet nft_objref; do
  modprobe "$m" 2>/dev/null || echo "VMT: module $m not loaded" > /dev/console
done
ip link set lo up
if [ -n "$IP" ]; then
  n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
  ip addr add "$IP" dev eth0; ip link set eth0 up
fi
if [ -n "$DISK" ]; then
  modprobe virtio_blk; modprobe ext4
  n=0; while [ ! -e /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
  mkdir -p "$DISK"
  if [ "$LAZY" = 1 ]; then
    # No background writeback: dirty pages and ext4's journal reach the disk only on fsync.
    echo 0 > /proc/sys/vm/dirty_writeback_centisecs
    echo 360000 > /proc/sys/vm/dirty_expire_centisecs
    mount -t ext4 -o commit=3600 /dev/vda "$DISK" || echo "VMT: cannot mount /dev/vda" > /dev/console
  else
    mount -t ext4 /dev/vda "$DISK" || echo "VMT: cannot mount /dev/vda" > /dev/console
  fi
fi
CTL=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = vmt.ctl ] && CTL=/dev/${p##*/}
done
n=0; while [ -n "$CTL" ] && [ ! -e "$CTL" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
echo "VMT-READY name=$NAME uptime=$(cut -d' ' -f1 /proc/uptime) ctl=$CTL" > /dev/console
[ -n "$CTL" ] || { echo "VMT: no control port" > /dev/console; sleep 5; poweroff -f; }
cd /tmp || exit 1
export HOME=/root
exec 3<>"$CTL"
while :; do
  if ! read -r kw id arg <&3; then sleep 0.2; continue; fi
  case "$kw" in
    CMD)
      { cat /etc/vmt-prelude.sh; echo "$arg" | base64 -d; } > "/tmp/.cmd.$id" 2>/dev/null
      echo "@@VMT-BEGIN $id" >&3
      timeout 600 /bin/sh "/tmp/.cmd.$id" </dev/null >&3 2>&3
      echo "@@VMT-END $id rc=$?" >&3 ;;
    POWEROFF) echo "@@VMT-BYE" >&3; sync; poweroff -f ;;
    *) echo "@@VMT-ERR bad line" >&3 ;;
  esac
done
