#!/usr/bin/env bash
# install.sh - installs a Shoal node: swarmd, swarmctl and whoami in /usr/local/bin, the launcher
# in /usr/local/lib/shoal/swarmd-start, the systemd unit (when the system has systemd), an example
# /etc/shoal/swarmd.conf (only if there is none: the config is never overwritten) and the state
# dir /var/lib/shoal (0700). Safe to run again: what is already in place is left as it is and
# reported "already installed"; changed files are replaced atomically. See docs/operations.md.
#
# Usage: deploy/install.sh [--root DIR] [--no-build] [--bin-dir DIR] [--no-deps]
#   --root DIR, --prefix DIR  install under DIR instead of / (an image being built, tests):
#                             DIR/usr/local/bin, DIR/etc/shoal...; the files' contents still name
#                             the final paths. Packages are then not installed (nothing in DIR).
#   --bin-dir DIR             take swarmd, swarmctl, whoami from DIR (prebuilt); implies --no-build
#   --no-build                do not build; binaries from --bin-dir, or from ../bin next to this
#                             deploy/ directory (a release tarball's layout)
#   --no-deps                 do not install packages (nftables, iproute2: deploy/deps.sh)
# Default: from a source checkout, `cargo build --locked --release --bins` (CARGO_TARGET_DIR,
# default /var/tmp/shoal-target) and install those; elsewhere, the binaries in ../bin.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)

say() { printf 'install: %s\n' "$*"; }
die() {
  printf 'install: error: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

ROOT=/
BIN_DIR=
BUILD=auto
DEPS=yes
while [ $# -gt 0 ]; do
  case $1 in
    --root | --prefix | --bin-dir)
      if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a directory"; fi
      if [ "$1" = --bin-dir ]; then BIN_DIR=$2; else ROOT=$2; fi
      shift 2
      ;;
    --root=* | --prefix=*) ROOT=${1#*=}; shift ;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
    --no-build) BUILD=no; shift ;;
    --no-deps) DEPS=no; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[ -d "$ROOT" ] || die "--root $ROOT: no such directory"
ROOT=$(cd "$ROOT" && pwd -P)
R=${ROOT%/}   # prefix of every path written: empty for /
if [ -z "$R" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo $0 ...), or install into another root with --root DIR"
fi
for f in swarmd-start swarmd.service swarmd.conf deps.sh; do
  [ -f "$HERE/$f" ] || die "$HERE/$f is missing: run this script from Shoal's deploy/ directory"
done

# ---------------------------------------------------------------- the binaries
if [ -n "$BIN_DIR" ]; then
  BUILD=no
elif [ -f "$SRC/Cargo.toml" ] && [ -f "$SRC/cli/Cargo.toml" ] && [ "$BUILD" = auto ]; then
  command -v cargo >/dev/null 2>&1 ||
    die "no cargo to build with: install Rust (https://rustup.rs), or pass --bin-dir DIR with prebuilt swarmd, swarmctl, whoami"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
  say "building: cargo build --locked --release --bins (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd "$SRC" && cargo build --locked --release --bins)
  BIN_DIR=$CARGO_TARGET_DIR/release
elif [ -x "$SRC/bin/swarmd" ]; then
  BIN_DIR=$SRC/bin
else
  die "no binaries: pass --bin-dir DIR (a directory with swarmd, swarmctl and whoami)"
fi
[ -d "$BIN_DIR" ] || die "--bin-dir $BIN_DIR: no such directory"
BIN_DIR=$(cd "$BIN_DIR" && pwd -P)
for b in swarmd swarmctl whoami; do
  if [ ! -f "$BIN_DIR/$b" ] || [ ! -x "$BIN_DIR/$b" ]; then die "no executable $BIN_DIR/$b"; fi
done

# ---------------------------------------------------------------- packages
if [ "$DEPS" = no ]; then
  say "packages: skipped (--no-deps)"
elif [ -n "$R" ]; then
  say "packages: not installed (--root $ROOT): that system needs nftables and iproute2"
else
  bash "$HERE/deps.sh" ||
    die "could not install nftables/iproute2 (deploy/deps.sh): install them yourself, then run again with --no-deps"
  say "packages: nftables and iproute2 present"
fi

# ---------------------------------------------------------------- files
CHANGED=0
SWARMD_CHANGED=no
UNIT_CHANGED=no
PENDING=
trap 'if [ -n "$PENDING" ]; then rm -f "$PENDING"; fi' EXIT

mode_of() { stat -c %a "$1"; }
# dir PATH MODE: PATH exists with MODE. mkdir -p alone for shared dirs (MODE "-": left as is).
dir() {
  local d=$R$1 mode=$2
  if [ ! -d "$d" ]; then
    mkdir -p "$d"
    if [ "$mode" = - ]; then
      say "$1: created"
    else
      chmod "$mode" "$d"
      say "$1: created (mode $mode)"
    fi
    CHANGED=$((CHANGED + 1))
  elif [ "$mode" != - ] && [ "$(mode_of "$d")" != "${mode#0}" ]; then
    local was
    was=$(mode_of "$d")
    chmod "$mode" "$d"
    say "$1: mode set to $mode (was $was)"
    CHANGED=$((CHANGED + 1))
  elif [ "$mode" != - ]; then
    say "$1: already there (mode $mode)"
  fi
}
# put SRC PATH MODE: PATH has SRC's content and MODE; replaced atomically (rename in the same
# directory: a running swarmd keeps its old file, nothing ever sees half a binary).
put() {
  local src=$1 path=$2 mode=$3
  local dest=$R$path
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    if [ "$(mode_of "$dest")" != "${mode#0}" ]; then
      chmod "$mode" "$dest"
      say "$path: already installed (mode set to $mode)"
      CHANGED=$((CHANGED + 1))
    else
      say "$path: already installed"
    fi
    return 1
  fi
  local verb=installed
  [ -e "$dest" ] && verb=updated
  PENDING=$dest.shoal-new
  # Checked explicitly: put runs inside `if`, where `set -e` does not stop on a failure. cp and
  # chmod, not install(1), which minimal systems (busybox) may lack.
  cp "$src" "$PENDING" || die "cannot write $PENDING"
  chmod "$mode" "$PENDING" || die "cannot set the mode of $PENDING"
  mv -f "$PENDING" "$dest" || die "cannot move $PENDING to $dest"
  PENDING=
  say "$path: $verb"
  CHANGED=$((CHANGED + 1))
}

dir /usr/local/bin -
for b in swarmd swarmctl whoami; do
  if put "$BIN_DIR/$b" "/usr/local/bin/$b" 0755 && [ "$b" = swarmd ]; then SWARMD_CHANGED=yes; fi
done
dir /usr/local/lib/shoal 0755
put "$HERE/swarmd-start" /usr/local/lib/shoal/swarmd-start 0755 || true

SYSTEMD=no
for d in /etc/systemd /run/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
  if [ -d "$R$d" ]; then SYSTEMD=yes; fi
done
if [ "$SYSTEMD" = yes ]; then
  dir /etc/systemd/system -
  if put "$HERE/swarmd.service" /etc/systemd/system/swarmd.service 0644; then UNIT_CHANGED=yes; fi
else
  say "/etc/systemd/system/swarmd.service: not installed (no systemd in $ROOT): run /usr/local/lib/shoal/swarmd-start under your service manager"
fi

dir /etc/shoal 0700
CONF=/etc/shoal/swarmd.conf
if [ -e "$R$CONF" ] || [ -L "$R$CONF" ]; then
  m=$(mode_of "$R$CONF")
  case $m in
    600 | 400) say "$CONF: already there, kept as it is (never overwritten)" ;;
    *)
      chmod go-rwx "$R$CONF"
      say "$CONF: already there, kept; its mode was $m: now $(mode_of "$R$CONF") (it may hold a join token)"
      CHANGED=$((CHANGED + 1))
      ;;
  esac
else
  put "$HERE/swarmd.conf" "$CONF" 0600 || true
  FRESH_CONF=yes
fi
dir /var/lib/shoal 0700

if [ -e "$R/etc/default/swarmd" ]; then
  say "note: $R/etc/default/swarmd (SWARMD_ARGS of the old unit) is no longer read: move its settings into $CONF (EXTRA_ARGS for plain flags)"
fi

# ---------------------------------------------------------------- what next
if [ "$CHANGED" -eq 0 ]; then
  say "Shoal is already installed in $ROOT: nothing changed"
else
  say "Shoal installed in $ROOT ($CHANGED change(s))"
fi
[ -n "$R" ] && exit 0

if [ -d /run/systemd/system ] && [ "$SYSTEMD" = yes ]; then
  if [ "$UNIT_CHANGED" = yes ]; then
    systemctl daemon-reload
    say "systemctl daemon-reload: done"
  fi
  if systemctl is-active --quiet swarmd; then
    if [ "$SWARMD_CHANGED" = yes ] || [ "$UNIT_CHANGED" = yes ]; then
      say "swarmd is running the old version: systemctl restart swarmd (its tasks keep running and are adopted)"
    fi
  elif [ "${FRESH_CONF:-no}" = yes ]; then
    say "next: edit $CONF (ROLE, ADVERTISE_ADDR; JOIN_ADDR and TOKEN to join), then: systemctl enable --now swarmd"
  else
    say "next: systemctl enable --now swarmd"
  fi
elif [ "$SYSTEMD" = yes ]; then
  say "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo '?')): once it is, run"
  say "  systemctl daemon-reload && systemctl enable --now swarmd"
  say "or start the node by hand: /usr/local/lib/shoal/swarmd-start (after editing $CONF)"
else
  say "next: edit $CONF, then run /usr/local/lib/shoal/swarmd-start under your service manager"
fi
