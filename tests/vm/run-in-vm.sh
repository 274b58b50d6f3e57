#!/bin/bash
# run-in-vm.sh BINARY [ARGS...] - run one test binary inside a throwaway QEMU VM whose kernel
# has IPVS, and exit with the test binary's exit code.
#
# The VM: Debian's own kernel (the package `linux-image-amd64` depends on, fetched with
# `apt-get download`), booted directly as an uncompressed PVH `vmlinux` under QEMU TCG, with a
# busybox initramfs holding iproute2 `ip`/`bridge`, `nft`, `ipvsadm` and the IPVS / nftables /
# bridge / VXLAN / veth modules. The VM has NO network card: whatever the test builds (network
# namespaces, veths, bridges, IPVS services) stays inside it. See tests/vm/README.md.
#
# Exit status: the test's (from the guest's "@@VMTEST rc=N" line); 2 when no such line
# appeared (boot failure, overall timeout, qemu error); 64 on bad usage.
#
# Environment:
#   SHOAL_VM_CACHE         cache directory (default /var/tmp/shoal-vm)
#   SHOAL_VM_ACCEL         QEMU accelerator (default tcg; kvm only where KVM really works)
#   SHOAL_VM_MEM           guest memory in MiB (default 512)
#   SHOAL_VM_TIMEOUT       overall limit for the VM in seconds (default 600)
#   SHOAL_VM_TEST_TIMEOUT  limit for the test inside the VM (default 300; then rc=143)
#   SHOAL_VM_SHELL_CMD     run this shell command in the guest instead of the binary (BINARY is
#                          then optional; if given it is shipped, as $VMT_BIN, with "$@" = ARGS)
#   SHOAL_VM_FILES         extra host files (space separated absolute paths) to ship at the same
#                          path, with their ldd closure (e.g. the swarmd binary)
#   SHOAL_VM_ENV           extra variables for the test, NAME=VALUE separated by newlines
#   SHOAL_VM_DMESG=1       print the guest's kernel log after the test
#   SHOAL_VM_KERNEL_PKG    pin the kernel package (default: what linux-image-amd64 depends on)
#   SHOAL_VM_PREPARE=1     only build (or find) the cached kernel and base initramfs and print
#                          "VMLINUX BASE_CPIO" (what tests/vm/cluster.sh boots its VMs with)
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SHOAL_VM_CACHE:-/var/tmp/shoal-vm}
ACCEL=${SHOAL_VM_ACCEL:-tcg}
MEM=${SHOAL_VM_MEM:-512}
TIMEOUT=${SHOAL_VM_TIMEOUT:-600}
TEST_TIMEOUT=${SHOAL_VM_TEST_TIMEOUT:-300}
SHELL_CMD=${SHOAL_VM_SHELL_CMD:-}
# Bump when the base initramfs recipe below changes: cached bases with another stamp are rebuilt.
RECIPE=7
MODS="crc32c_generic virtio_pci virtio_net virtio_console virtio_blk ext4 ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_lc veth bridge br_netfilter vxlan
  nf_conntrack nf_nat nf_tables nft_nat nft_chain_nat nft_ct nft_numgen nft_masq nft_redir
  nft_hash nft_fib_inet nft_reject_inet nft_objref dummy"
# ... and every nftables / conntrack / NAT / IPVS module (3 MB, autoloaded on first use through
# /sbin/modprobe, e.g. nft_objref for `counter name ... map`): paths in modules.dep matching
MOD_PATHS='kernel/net/(netfilter|ipv4/netfilter|ipv6/netfilter|bridge/netfilter)/(nft?_|nfnetlink)[^/]*\.ko|kernel/net/netfilter/ipvs/'
TOOLS="ip bridge nft ipvsadm"   # host binaries shipped at /usr/sbin/NAME (ipvsadm optional)

log() { echo "run-in-vm: $*" >&2 || true; }
die() { log "error: $1"; exit "${2:-2}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

if [ $# -eq 0 ] && [ -z "$SHELL_CMD" ] && [ "${SHOAL_VM_PREPARE:-0}" != 1 ]; then
  echo "usage: $0 BINARY [ARGS...]   (or SHOAL_VM_SHELL_CMD='cmd' $0 [BINARY [ARGS...]])" >&2
  exit 64
fi
BIN=
if [ $# -gt 0 ]; then
  if [ ! -f "$1" ] || [ ! -x "$1" ]; then die "not an executable file: $1" 64; fi
  BIN=$(readlink -f "$1"); shift
  [[ $BIN != *[[:space:]]* ]] || die "the binary's path must not contain spaces: $BIN" 64
fi
for v in MEM TIMEOUT TEST_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "SHOAL_VM_$v must be a number (got '${!v}')" 64
done
T_START=$(now)

# Host set-up and cache builds run one at a time (lock released before the VM starts).
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

# ---------------------------------------------------------------- 1. host packages
APT_UPDATED=
apt_update_once() {
  [ -n "$APT_UPDATED" ] && return 0
  log "apt-get update"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  APT_UPDATED=1
}
static_busybox() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
static_busybox || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
command -v xz >/dev/null || need+=(xz-utils)
command -v nft >/dev/null || need+=(nftables)
command -v ipvsadm >/dev/null || need+=(ipvsadm)
{ command -v ip && command -v bridge; } >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing host packages (${need[*]}); run as root or install them"
  apt_update_once
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${need[@]}" >&2
  static_busybox || die "/bin/busybox is not the static busybox (busybox-static)"
fi

# ---------------------------------------------------------------- 2. kernel (cached)
kernel_pkg() { { apt-cache depends linux-image-amd64 2>/dev/null || true; } |
               awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true; }
KPKG=${SHOAL_VM_KERNEL_PKG:-$(kernel_pkg)}
if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ]; then apt_update_once; KPKG=$(kernel_pkg); fi
if [ -z "$KPKG" ]; then   # no package lists (offline?): fall back to the newest cached kernel
  last=$(ls -d "$CACHE"/*/vmlinux 2>/dev/null | sort -V | tail -1)
  [ -n "$last" ] || die "cannot tell which kernel linux-image-amd64 depends on (apt-get update?)"
  KPKG=linux-image-$(basename "$(dirname "$last")")
  log "no apt lists: using the cached $KPKG"
fi
KV=${KPKG#linux-image-}
KDIR=$CACHE/$KV
mkdir -p "$KDIR"

deb() { ls "$KDIR"/"${KPKG}"_*.deb 2>/dev/null | head -1; }
fetch_deb() {
  [ -n "$(deb)" ] && return 0
  local t0; t0=$(now)
  if ! (cd "$KDIR" && apt-get download "$KPKG" 2>&1 | grep -v 'Download is performed unsandboxed' >&2) ||
     [ -z "$(deb)" ]; then   # stale lists name a version the mirror no longer has
    apt_update_once
    (cd "$KDIR" && apt-get download "$KPKG" 2>&1 | grep -v 'Download is performed unsandboxed' >&2)
  fi
  [ -n "$(deb)" ] || die "apt-get download $KPKG failed"
  log "downloaded $(basename "$(deb)") in $(since "$t0")s"
}

rm -rf "$KDIR"/.w.*          # work dirs of an interrupted build (we hold the lock)
W=
kernel_tree() {   # the package unpacked once (with a modules.dep: the .deb ships none) -> $W/k
  [ -n "$W" ] && return 0
  local t0; t0=$(now)
  fetch_deb
  W=$(mktemp -d "$KDIR/.w.XXXXXX")
  dpkg-deb -x "$(deb)" "$W/k"
  depmod -b "$W/k" "$KV"
  log "kernel package unpacked, depmod done in $(since "$t0")s"
}

if [ ! -s "$KDIR/vmlinux" ]; then
  kernel_tree
  t0=$(now)
  # The bzImage's payload is XZ (CONFIG_KERNEL_XZ): unpack it to the ELF vmlinux, which QEMU boots
  # directly through its PVH note (CONFIG_PVH) and saves ~3.5 s of in-guest decompression under TCG.
  z=$W/k/boot/vmlinuz-$KV
  off=$(grep -aobP '\xfd7zXZ\x00' "$z" | head -1 | cut -d: -f1 || true)
  [ -n "$off" ] || die "no XZ payload in $z"
  # a pipe here would let tail die of SIGPIPE (pipefail): use a process substitution
  xz -dc --single-stream < <(tail -c +$((off + 1)) "$z" 2>/dev/null) > "$W/vmlinux"
  [ "$(head -c 4 "$W/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "extracted vmlinux is not an ELF"
  mv "$W/vmlinux" "$KDIR/vmlinux"
  log "vmlinux extracted in $(since "$t0")s"
fi

# ---------------------------------------------------------------- 3a. base initramfs (cached)
# shellcheck source=lib.sh
. "$HERE/lib.sh"   # copy_with_libs

STAMP="recipe=$RECIPE kv=$KV mods=$(tr -s ' \n' ' ' <<<"$MODS") paths=$MOD_PATHS tools=$TOOLS"
BASE=$KDIR/base.cpio.gz
if [ ! -s "$BASE" ] || [ "$(cat "$KDIR/base.stamp" 2>/dev/null)" != "$STAMP" ]; then
  t0=$(now)
  kernel_tree
  R=$W/root KP=$W/k/lib/modules/$KV
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,etc,mnt,opt,var/tmp,vmt}
  ln -s ../run "$R/var/run"
  cp /bin/busybox "$R/bin/busybox"
  # applet links (bin/sh, sbin/modprobe, ...), except those the real tools replace
  /bin/busybox --list-full | while read -r a; do
    case " $TOOLS " in *" ${a##*/} "*) continue ;; esac
    [ "$a" = bin/busybox ] || [ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"
  done
  ln -sf /bin/busybox "$R/sbin/modprobe"   # the kernel's request_module() runs /sbin/modprobe
  # /bin/sh = dash: busybox's shell runs its own applets before $PATH, so `sh -c 'ip ...'` from a
  # test would get busybox's tiny `ip` instead of iproute2's
  if d=$(command -v dash); then copy_with_libs "$R" "$d" /bin/dash; ln -sf dash "$R/bin/sh"
  else log "note: no dash on this host: /bin/sh is busybox (its applets shadow ip in scripts)"; fi
  for t in $TOOLS; do
    p=$(command -v "$t") || { log "note: $t not on this host, not shipped"; continue; }
    copy_with_libs "$R" "$p" "/usr/sbin/$t"
    ln -sf "/usr/sbin/$t" "$R/sbin/$t"
  done
  # libgcc_s for Rust binaries (normally also in the test binary's own closure)
  l=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/{print $NF; exit}' || true)
  [ -n "$l" ] && { mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; }
  # the dynamic loader must also exist at the ELF interpreter path
  [ -e "$R/lib64/ld-linux-x86-64.so.2" ] || { mkdir -p "$R/lib64"; cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"; }
  # modules: each requested one plus its modules.dep closure (the line lists all dependencies)
  nmod=0
  allmods="$MODS $(grep -oE "^($MOD_PATHS)[^:]*" "$KP/modules.dep" | sed -E 's|.*/||; s|\.ko.*||')"
  for m in $allmods; do
    line=$(grep -E "/$m\.ko(\.[gx]z|\.zst)?:" "$KP/modules.dep") ||
      { grep -qE "/$m\.ko" "$KP/modules.builtin" || log "note: module $m not in $KV, skipped"; continue; }
    for f in ${line%%:*} ${line#*:}; do
      [ -e "$R/lib/modules/$KV/$f" ] && continue
      mkdir -p "$R/lib/modules/$KV/$(dirname "$f")"; cp "$KP/$f" "$R/lib/modules/$KV/$f"
      nmod=$((nmod + 1))
    done
  done
  cp "$KP"/modules.order "$KP"/modules.builtin* "$R/lib/modules/$KV/" 2>/dev/null || true
  depmod -b "$R" "$KV"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$R/etc/hosts"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
  echo 'root:x:0:' > "$R/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files\n' > "$R/etc/nsswitch.conf"
  ln -s /proc/self/mounts "$R/etc/mtab"
  (cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$W/base.cpio.gz"
  mv "$W/base.cpio.gz" "$BASE"
  echo "$STAMP" > "$KDIR/base.stamp"
  log "base initramfs: $nmod modules, $(($(stat -c %s "$BASE") / 1024)) KiB, built in $(since "$t0")s"
fi
if [ -n "$W" ]; then rm -rf "$W"; fi
exec 9>&-          # cache ready: let other runs in
# SHOAL_VM_PREPARE=1: only the cached kernel and base initramfs, for tests/vm/cluster.sh.
if [ "${SHOAL_VM_PREPARE:-0}" = 1 ]; then echo "$KDIR/vmlinux $BASE"; exit 0; fi

# ---------------------------------------------------------------- 3b. per-run initramfs
TMP=$(mktemp -d /tmp/shoal-vm-run.XXXXXX)
QPID='' TOPID='' TAILPID=''
# shellcheck disable=SC2317  # (called through the trap)
cleanup() {   # kill only what this script started (by PID), remove its temp files
  local p
  if [ -n "$TOPID" ] && [ -z "$QPID" ]; then QPID=$(cat "$TMP/qemu.pid" 2>/dev/null || true); fi
  for p in $TOPID $QPID; do kill "$p" 2>/dev/null || true; done
  if [ -n "$QPID" ]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$QPID" 2>/dev/null || true
  fi
  if [ -n "$TAILPID" ]; then kill "$TAILPID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

R=$TMP/root
mkdir -p "$R/vmt"
cp "$HERE/guest-init.sh" "$R/init"; chmod 755 "$R/init"
[ -n "$BIN" ] && copy_with_libs "$R" "$BIN"
for f in ${SHOAL_VM_FILES:-}; do
  [ -e "$f" ] || die "SHOAL_VM_FILES: no such file: $f" 64
  f=$(readlink -f "$f")
  if [ -d "$f" ]; then mkdir -p "$R$f"; cp -a "$f/." "$R$f/"; else copy_with_libs "$R" "$f"; fi
done

sq() { local s=$1; s=${s//"'"/"'\\''"}; printf "'%s' " "$s"; }   # POSIX single-quoting
b64() { base64 -w0; }
APPEND="console=ttyS0 panic=-1 quiet rdinit=/init vmt.timeout=$TEST_TIMEOUT"
[ -n "$BIN" ] && APPEND+=" vmt.bin=$BIN"
if [ $# -gt 0 ]; then
  args=$(for a in "$@"; do sq "$a"; done | b64)
  if [ ${#args} -gt 1000 ]; then echo "$args" > "$R/vmt/args.b64"; APPEND+=" vmt.args=@"
  else APPEND+=" vmt.args=$args"; fi
fi
if [ -n "${SHOAL_VM_ENV:-}" ]; then
  envs=$(while IFS= read -r kv; do
           [ -n "$kv" ] || continue
           [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "SHOAL_VM_ENV: not NAME=VALUE: $kv" 64
           printf '%s=' "${kv%%=*}"; sq "${kv#*=}"
         done <<< "$SHOAL_VM_ENV" | b64)
  APPEND+=" vmt.env=$envs"
fi
[ -n "$SHELL_CMD" ] && APPEND+=" vmt.cmd=$(printf '%s\n' "$SHELL_CMD" | b64)"
[ "${SHOAL_VM_DMESG:-0}" = 1 ] && APPEND+=" vmt.dmesg=1"
[ ${#APPEND} -lt 2000 ] || die "kernel command line too long (${#APPEND} chars; limit 2048)" 64

(cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$TMP/run.cpio.gz"
cat "$BASE" "$TMP/run.cpio.gz" > "$TMP/initrd.img"   # the kernel unpacks concatenated archives
rm -rf "$R" "$TMP/run.cpio.gz"
log "kernel $KV, initrd $(($(stat -c %s "$TMP/initrd.img") / 1024)) KiB, prepared in $(since "$T_START")s; booting (accel=$ACCEL, ${MEM} MiB)"

# ---------------------------------------------------------------- 5. run the VM
trap '' PIPE     # a closed stdout (`| head`) must not turn the test's exit code into 141
CON=$TMP/console.log
: > "$CON"
T_BOOT=$(now)
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -name shoal-vmtest -accel "$ACCEL" -cpu max \
  -m "$MEM" -smp 1 -nodefaults -no-user-config -display none -no-reboot -nic none \
  -kernel "$KDIR/vmlinux" -initrd "$TMP/initrd.img" -append "$APPEND" \
  -chardev file,id=con,path="$CON" -serial chardev:con \
  -pidfile "$TMP/qemu.pid" </dev/null >"$TMP/qemu.log" 2>&1 &
TOPID=$!
# stream the console to stdout while the VM runs (tail reads the rest once timeout/qemu exits)
tail -n +1 -s 0.2 -F --pid="$TOPID" "$CON" 2>/dev/null | tr -d '\r' 2>/dev/null &
TAILPID=$!
for _ in $(seq 50); do [ -s "$TMP/qemu.pid" ] && break; kill -0 "$TOPID" 2>/dev/null || break; sleep 0.1; done
QPID=$(cat "$TMP/qemu.pid" 2>/dev/null || true)
qrc=0; wait "$TOPID" || qrc=$?
TOPID='' QPID=''
wait "$TAILPID" 2>/dev/null || true
TAILPID=''
[ -z "$(tail -c 1 "$CON" | tr -d '\r\n')" ] || echo || true   # end the last console line

rc=$(tr -d '\r' < "$CON" | sed -n 's/^@@VMTEST rc=\([0-9][0-9]*\)$/\1/p' | tail -1)
if [ -z "$rc" ]; then
  if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    log "error: no '@@VMTEST rc=' marker: the VM did not finish within SHOAL_VM_TIMEOUT=${TIMEOUT}s"
  else
    log "error: no '@@VMTEST rc=' marker: the VM stopped (qemu exit $qrc) before the test ended (boot failure? panic?)"
  fi
  [ -s "$TMP/qemu.log" ] && { log "qemu said:"; sed 's/^/  /' "$TMP/qemu.log" >&2; }
  exit 2
fi
log "test exit code $rc; VM ran $(since "$T_BOOT")s, total $(since "$T_START")s"
exit "$rc"
