#!/usr/bin/env bash
# Builds the demo images Shoal uses instead of Docker Hub images, without Docker, from Debian
# packages, as one OCI image layout (issue 17):
#   shoal/busybox:latest  Debian's busybox-static: /bin/busybox and a symlink per applet; Cmd sh
#   shoal/whoami:latest   shoal/busybox + Shoal's own whoami server linked statically (/whoami);
#                         Entrypoint /whoami, ports 8080/tcp+udp
#   shoal/nginx:latest    Debian's nginx installed with mmdebstrap (plus busybox-static);
#                         Cmd nginx -g 'daemon off;', port 80, logs on stdout/stderr
#
# Usage: deploy/images.sh            (as root: mmdebstrap and umoci keep file owners as root)
# Output, under ${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}:
#   oci/                     the OCI layout; refs shoal/busybox:latest, shoal/whoami:latest, ...
#                            (skopeo: oci:DIR/oci:shoal/busybox:latest; umoci: --image DIR/oci:shoal/busybox:latest)
#   archives/shoal-NAME.tar  one OCI archive per image (skopeo: oci-archive:FILE)
#   stamp                    each image's input hash; an image is rebuilt only when it changed
# Inputs hashed: this script, the busybox-static package version and binary, the whoami binary,
# the candidate versions (host apt lists) of the packages the nginx image installs.
# Environment:
#   SHOAL_IMAGE_CACHE     output directory (default /var/tmp/shoal-images)
#   SHOAL_WHOAMI_BIN      a static whoami binary to use instead of building one with cargo
#   CARGO_TARGET_DIR      where cargo builds whoami (default: the repository's target/)
#   SHOAL_CARGO_LOCK      lock file serialising cargo builds (default /tmp/shoal-cargo.lock)
#   SHOAL_DEBIAN_SUITE    Debian release of the nginx image (default bookworm)
#   SHOAL_DEBIAN_MIRROR   mirror for mmdebstrap (default: mmdebstrap's, deb.debian.org + security)
#   SHOAL_IMAGES_FORCE=1  rebuild every image
# Needs: umoci, skopeo, mmdebstrap, busybox-static (deploy/deps.sh installs them), cargo unless
# SHOAL_WHOAMI_BIN is given, and the network to the Debian mirror when the nginx image is built.
set -euo pipefail

die() { echo "images.sh: $*" >&2; exit 1; }
log() { echo "images.sh: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}
suite=${SHOAL_DEBIAN_SUITE:-bookworm}
images=(shoal/busybox shoal/whoami shoal/nginx)
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Applets the demos and tests rely on; the build fails if busybox lacks one.
applets=(sh ls cat echo hostname wget nslookup ping ip ifconfig sleep httpd top ps env id grep
  head tail vi)

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap and umoci record file owners as root)"
for c in umoci skopeo mmdebstrap sha256sum flock; do
  command -v "$c" >/dev/null 2>&1 || die "missing '$c': run deploy/deps.sh (as root) first"
done

mkdir -p "$cache"
# One build at a time per cache directory; then leftovers of a killed build can go.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "waiting for another images.sh using $cache"
  flock 9
fi
# Removes a build directory; mmdebstrap mounts /proc, /sys and /dev inside its root while it
# runs, so a build killed then may leave mounts: unmount those first, never cross into them.
rmtree() {
  awk -v t="$1/" 'index($2, t) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$1"
}
for old in "$cache"/.build.*; do [ ! -e "$old" ] || rmtree "$old"; done
tmp=$(mktemp -d "$cache/.build.XXXXXX")
cleanup() { rmtree "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
start=$(date +%s)

sha() { sha256sum "$@" | cut -d' ' -f1; }
is_static() { local o; o=$(ldd "$1" 2>&1 || true); [[ $o == *"statically linked"* || $o == *"not a dynamic executable"* ]]; }
upstream() { local v=${1#*:}; echo "${v%%-*}"; }   # 1:1.35.0-4+deb12u1 -> 1.35.0

# ---- inputs ---------------------------------------------------------------------------------
bb_ver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null) \
  || die "busybox-static is not installed: run deploy/deps.sh (as root) first"
bb_bin=$(dpkg -L busybox-static | grep -E '^(/usr)?/bin/busybox$' | head -n1) \
  || die "busybox-static ships no /bin/busybox?"
is_static "$bb_bin" || die "$bb_bin is not static"
bb_list=" $("$bb_bin" --list | tr '\n' ' ') "
for a in "${applets[@]}"; do
  [[ $bb_list == *" $a "* ]] || die "busybox $bb_ver lacks the applet '$a'"
done

if [ -n "${SHOAL_WHOAMI_BIN:-}" ]; then
  whoami_bin=$SHOAL_WHOAMI_BIN
  [ -x "$whoami_bin" ] || die "SHOAL_WHOAMI_BIN=$whoami_bin is not an executable file"
else
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust or set SHOAL_WHOAMI_BIN"
  triple=$(rustc -vV | sed -n 's/^host: //p')
  case $triple in *-linux-gnu) ;; *) die "whoami is linked statically with glibc: host $triple is not *-linux-gnu" ;; esac
  target_dir=${CARGO_TARGET_DIR:-$repo/target}
  whoami_bin=$target_dir/$triple/release/whoami
  # Cargo only when whoami's sources, manifests or lock file are newer than the binary: the
  # shared build lock may be held for minutes by other builds.
  if [ ! -x "$whoami_bin" ] || [ -n "$(find "$repo/whoami" \
      "$repo/Cargo.toml" "$repo/Cargo.lock" -newer "$whoami_bin" -print -quit)" ]; then
    log "building whoami (static, $triple)"
    # crt-static through RUSTFLAGS with an explicit --target applies to the target only, not to
    # build scripts and proc macros; the musl target cannot be installed offline.
    RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$target_dir \
      flock "${SHOAL_CARGO_LOCK:-/tmp/shoal-cargo.lock}" \
      cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p shoal-whoami --bin whoami --target "$triple" \
      || die "cargo build of whoami failed"
  fi
fi
is_static "$whoami_bin" || die "$whoami_bin is dynamically linked: build it with RUSTFLAGS='-C target-feature=+crt-static' and --target"

nginx_pkg=nginx
apt-cache show "$nginx_pkg" >/dev/null 2>&1 || nginx_pkg=nginx-light
nginx_pkgs=("$nginx_pkg" nginx-common busybox-static base-files libc6 libssl3 libpcre2-8-0 zlib1g
  libcrypt1 iproute2 dpkg)
# The host's candidates stand for what the mirror serves (refresh them with apt-get update).
nginx_versions=$(apt-cache policy "${nginx_pkgs[@]}" 2>/dev/null \
  | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')
nginx_ver=$(echo "$nginx_versions" | awk -v p="$nginx_pkg:" '$1 == p {print $2}')
if [ -z "$nginx_ver" ] || [ "$nginx_ver" = "(none)" ]; then
  die "no '$nginx_pkg' package known to apt (apt-get update?)"
fi

self=$(sha "${BASH_SOURCE[0]}")
declare -A want
want[shoal/busybox]=$(printf '%s\n' "$self" "$bb_ver" "$(sha "$bb_bin")" | sha256sum | cut -c1-64)
want[shoal/whoami]=$(printf '%s\n' "${want[shoal/busybox]}" "$(sha "$whoami_bin")" | sha256sum | cut -c1-64)
want[shoal/nginx]=$(printf '%s\n' "$self" "$suite" "${SHOAL_DEBIAN_MIRROR:-}" "$nginx_versions" \
  | sha256sum | cut -c1-64)

declare -A have
if [ -f "$cache/stamp" ] && [ -f "$cache/oci/index.json" ] && [ -z "${SHOAL_IMAGES_FORCE:-}" ]; then
  while read -r name hash; do have[$name]=$hash; done <"$cache/stamp"
fi
todo=()
for i in "${images[@]}"; do
  [ "${have[$i]:-}" = "${want[$i]}" ] || todo+=("$i")
done

# ---- builders -------------------------------------------------------------------------------
L=$tmp/oci
labels() { # NAME VERSION DESCRIPTION -> umoci config arguments
  printf '%s\n' "--config.label=org.opencontainers.image.title=$1" \
    "--config.label=org.opencontainers.image.version=$2" \
    "--config.label=org.opencontainers.image.description=$3" \
    "--config.label=org.opencontainers.image.vendor=Shoal (built by deploy/images.sh)"
}

# Adds SRC (a directory's content, or a file) at DEST (/ or /PATH) as a new layer of image REF.
# Not `umoci insert`: umoci 0.4.7 writes its layer's tar without the last file's padding and the
# end-of-archive blocks, which strict readers (Go's archive/tar, Rust's tar) refuse as
# truncated. `umoci unpack` + `umoci repack` writes complete archives.
add_layer() {
  local ref=$1 src=$2 dest=$3 created_by=$4 b
  b=$(mktemp -d "$tmp/bundle.XXXXXX")
  rmdir "$b"
  umoci unpack --image "$L:$ref" "$b" >/dev/null
  if [ -d "$src" ]; then
    cp -a "$src/." "$b/rootfs$dest"
  else
    cp -a "$src" "$b/rootfs$dest"
  fi
  umoci repack --image "$L:$ref" --history.created_by "$created_by" "$b"
  rm -rf --one-file-system "$b"
}

build_busybox() {
  local r=$tmp/busybox-rootfs v p
  v=$(upstream "$bb_ver")
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,tmp,home,var/www,proc,sys,dev,run}
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  install -m 0755 "$bb_bin" "$r/bin/busybox"
  "$bb_bin" --list-full | while read -r p; do
    [ "$p" = bin/busybox ] || [ -e "$r/$p" ] || ln -s /bin/busybox "$r/$p"
  done
  cat >"$r/etc/os-release" <<EOF
NAME="Shoal busybox"
ID=shoal-busybox
VERSION="$v (Debian busybox-static $bb_ver)"
VERSION_ID=$v
PRETTY_NAME="Shoal busybox $v (Debian busybox-static $bb_ver)"
EOF
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
    >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$r/etc/group"
  : >"$r/etc/hostname"
  : >"$r/etc/resolv.conf"
  printf '%s\n' '127.0.0.1 localhost' '::1 localhost ip6-localhost ip6-loopback' >"$r/etc/hosts"
  umoci new --image "$L:shoal/busybox:latest"
  add_layer shoal/busybox:latest "$r" / "deploy/images.sh: busybox-static $bb_ver"
  mapfile -t lab < <(labels shoal/busybox "$v" "Debian's busybox-static $bb_ver with an applet symlink each")
  umoci config --image "$L:shoal/busybox:latest" --history.created_by "deploy/images.sh: config" \
    --config.env="$PATH_ENV" --config.workingdir=/ --config.cmd=sh "${lab[@]}"
}

build_whoami() {
  local b=$tmp/whoami
  cp "$whoami_bin" "$b"
  if command -v strip >/dev/null 2>&1; then strip "$b"; fi
  mapfile -t lab < <(labels shoal/whoami "$(sha "$whoami_bin" | cut -c1-12)" \
    "Shoal's whoami demo server (HTTP and UDP on 8080), static, on shoal/busybox")
  # On top of shoal/busybox: the layer is shared, and `task exec ... sh` works.
  umoci config --image "$L:shoal/busybox:latest" --tag shoal/whoami:latest \
    --history.created_by "deploy/images.sh: config" \
    --clear=config.labels --clear=config.cmd \
    --config.entrypoint=/whoami --config.exposedports=8080/tcp --config.exposedports=8080/udp \
    --config.stopsignal=SIGTERM "${lab[@]}"
  add_layer shoal/whoami:latest "$b" /whoami "deploy/images.sh: whoami"
}

build_nginx() {
  local r=$tmp/nginx-rootfs hooks=/usr/share/mmdebstrap/hooks/merged-usr mirror=() v f
  [ -d "$hooks" ] || die "mmdebstrap's merged-usr hooks are missing ($hooks)"
  [ -z "${SHOAL_DEBIAN_MIRROR:-}" ] || mirror=("$SHOAL_DEBIAN_MIRROR")
  log "installing $nginx_pkg $nginx_ver with mmdebstrap ($suite; needs the Debian mirror)"
  # essential: dpkg, a shell and coreutils, so the packages are really installed (maintainer
  # scripts ran, dpkg knows them); the merged-usr hook keeps usrmerge (and perl) out.
  mmdebstrap --quiet --variant=essential --hook-dir="$hooks" \
    --include="$nginx_pkg,busybox-static" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    "$suite" "$r" "${mirror[@]}" >"$tmp/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed (is the Debian mirror reachable?)"; }
  # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
  v=$(chroot "$r" dpkg-query -W -f='${Version}' "$nginx_pkg")
  # No device nodes in a layer (the runtime makes /dev); nothing of the build host.
  find "$r/dev" -mindepth 1 -delete
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/cache/ldconfig/aux-cache \
    "$r"/var/lib/dpkg/*-old "$r"/var/cache/debconf/*-old "$r"/etc/*-
  find "$r/var/log" -type f -delete
  : >"$r/etc/hostname"
  : >"$r/etc/resolv.conf"
  # Like the official image: logs to the container's stdout/stderr.
  ln -sf /dev/stdout "$r/var/log/nginx/access.log"
  ln -sf /dev/stderr "$r/var/log/nginx/error.log"
  cat >"$r/var/www/html/index.html" <<EOF
<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>shoal/nginx: Debian $suite's nginx $v, built by Shoal's deploy/images.sh.</p>
</body>
</html>
EOF
  for f in etc/nginx/nginx.conf etc/nginx/sites-enabled/default usr/sbin/nginx bin/sh usr/bin/busybox \
      etc/os-release; do
    [ -e "$r/$f" ] || [ -L "$r/$f" ] || die "nginx rootfs lacks /$f"
  done
  chroot "$r" /usr/sbin/nginx -t -q || die "nginx -t failed in the built root"
  umoci new --image "$L:shoal/nginx:latest"
  add_layer shoal/nginx:latest "$r" / "deploy/images.sh: mmdebstrap --variant=essential $suite $nginx_pkg $v"
  mapfile -t lab < <(labels shoal/nginx "$(upstream "$v")" "Debian $suite's $nginx_pkg $v (mmdebstrap)")
  umoci config --image "$L:shoal/nginx:latest" --history.created_by "deploy/images.sh: config" \
    --config.env="$PATH_ENV" --config.workingdir=/ \
    --config.cmd=nginx --config.cmd=-g --config.cmd='daemon off;' \
    --config.exposedports=80/tcp --config.stopsignal=SIGQUIT "${lab[@]}"
}

# ---- build what changed, keep the rest ------------------------------------------------------
if [ ${#todo[@]} -eq 0 ]; then
  log "up to date: $cache/oci"
  mkdir -p "$cache/archives"
  for i in "${images[@]}"; do
    a=archives/${i//\//-}.tar
    [ ! -f "$cache/$a" ] || continue
    { skopeo copy --quiet "oci:$cache/oci:$i:latest" "oci-archive:$tmp/${a#archives/}:$i:latest" \
      && mv "$tmp/${a#archives/}" "$cache/$a"; } || die "cannot write $cache/$a"
  done
else
  log "building: ${todo[*]}"
  umoci init --layout "$L"
  for i in "${images[@]}"; do
    case " ${todo[*]} " in
      *" $i "*)
        # whoami sits on busybox: make sure it is in the new layout first.
        if [ "$i" = shoal/whoami ] && [ "${have[shoal/busybox]:-}" = "${want[shoal/busybox]}" ]; then
          skopeo copy --quiet "oci:$cache/oci:shoal/busybox:latest" "oci:$L:shoal/busybox:latest"
        fi
        case $i in
          shoal/busybox) build_busybox ;;
          shoal/whoami) build_whoami ;;
          shoal/nginx) build_nginx ;;
        esac ;;
      *) # unchanged: copied blob for blob (same digests)
        skopeo copy --quiet "oci:$cache/oci:$i:latest" "oci:$L:$i:latest" \
          || die "cannot copy unchanged $i from $cache/oci (SHOAL_IMAGES_FORCE=1 rebuilds all)" ;;
    esac
  done
  umoci gc --layout "$L"
  # Every layer must read back as a complete archive (a truncated one is refused by every pull).
  for f in "$L"/blobs/sha256/*; do
    if [ "$(head -c 2 "$f" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
      tar -tzf "$f" >/dev/null 2>&1 || die "layer ${f##*/} is not a complete tar archive"
    fi
  done
  mkdir -p "$tmp/archives"
  for i in "${images[@]}"; do
    a=archives/${i//\//-}.tar
    case " ${todo[*]} " in
      *" $i "*) skopeo copy --quiet "oci:$L:$i:latest" "oci-archive:$tmp/$a:$i:latest" ;;
      *) cp "$cache/$a" "$tmp/$a" 2>/dev/null \
           || skopeo copy --quiet "oci:$L:$i:latest" "oci-archive:$tmp/$a:$i:latest" ;;
    esac
  done
  for i in "${images[@]}"; do echo "$i ${want[$i]}"; done >"$tmp/stamp"
  # Swap in: the old layout stays whole until the new one is complete.
  rm -rf "$cache/oci.old" "$cache/archives.old"
  [ ! -d "$cache/oci" ] || mv "$cache/oci" "$cache/oci.old"
  [ ! -d "$cache/archives" ] || mv "$cache/archives" "$cache/archives.old"
  mv "$tmp/oci" "$cache/oci"
  mv "$tmp/archives" "$cache/archives"
  mv "$tmp/stamp" "$cache/stamp"
  rm -rf "$cache/oci.old" "$cache/archives.old"
fi

for i in "${images[@]}"; do
  d=$(skopeo inspect --format '{{.Digest}}' "oci:$cache/oci:$i:latest") || die "cannot inspect $i"
  # The manifest's layer sizes (what a pull transfers).
  z=$(skopeo inspect --raw "oci:$cache/oci:$i:latest" | sed 's/.*"layers"://' | grep -o '"size": *[0-9]*' \
    | awk -F: '{s += $2} END {printf "%.1f MB", s / 1e6}')
  printf '%-22s %s  (%s compressed)\n' "$i:latest" "$d" "$z"
done
log "layout $cache/oci, archives $cache/archives, $(($(date +%s) - start)) s"
