#!/usr/bin/env bash
# A local image registry for labs and tests: Debian's docker-registry (the CNCF distribution
# server), plain HTTP, no auth, storage on the filesystem (issue 17).
#
# Usage:
#   deploy/registry.sh start DIR ADDR   write DIR/config.yml, start the registry in the background
#                                       (PID in DIR/registry.pid, log in DIR/registry.log), wait
#                                       until http://ADDR/v2/ answers (at most 10 s)
#   deploy/registry.sh stop DIR         stop the registry started with DIR (that PID only)
#   deploy/registry.sh push DIR ADDR    push the images deploy/images.sh built
#                                       (${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}/oci) to
#                                       ADDR/shoal/NAME:latest; DIR is unused but kept for symmetry
# ADDR is HOST:PORT, e.g. 127.0.0.1:5000, or a lab's host endpoint (.254 of its subnet).
# Blobs live in DIR/data; `stop` keeps them, so a restart serves the same images.
set -euo pipefail

die() { echo "registry.sh: $*" >&2; exit 1; }
usage() { sed -n '5,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
images=(shoal/busybox shoal/whoami shoal/nginx)

pid_of() { # DIR -> the recorded PID, if that process is still our registry
  local pid
  pid=$(cat "$1/registry.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # Guard against a recycled PID: it must still be docker-registry serving DIR's config.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "serve $1/config.yml" || return 1
  echo "$pid"
}

check_addr() {
  [[ $1 =~ ^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]+$ ]] || die "ADDR must be HOST:PORT, not '$1'"
}

start() {
  local dir=$1 addr=$2 bin pid i
  check_addr "$addr"
  bin=$(command -v docker-registry) || die "docker-registry not found: run deploy/deps.sh (as root)"
  command -v curl >/dev/null 2>&1 || die "curl not found: run deploy/deps.sh (as root)"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  if pid=$(pid_of "$dir"); then die "already running in $dir (pid $pid)"; fi
  if curl -s -o /dev/null --max-time 2 "http://$addr/v2/"; then
    die "something already answers on http://$addr/"
  fi
  # Our own config: the packaged /etc/docker/registry/config.yml turns htpasswd auth on.
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
EOF
  # setsid: its own session, so a terminal's Ctrl-C or the caller's exit does not reach it.
  setsid "$bin" serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/registry.pid"
  for ((i = 0; i < 100; i++)); do
    if curl -sf -o /dev/null --max-time 1 "http://$addr/v2/"; then
      echo "registry on http://$addr/ (pid $pid, data $dir/data)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  rm -f "$dir/registry.pid"
  tail -n 20 "$dir/registry.log" >&2
  die "the registry did not answer on http://$addr/v2/ within 10 s (log: $dir/registry.log)"
}

stop() {
  local dir=$1 pid i
  [ -d "$dir" ] || die "no directory $dir"
  dir=$(cd "$dir" && pwd)
  if ! pid=$(pid_of "$dir"); then
    rm -f "$dir/registry.pid"
    echo "no registry running for $dir"
    return 0
  fi
  kill -TERM "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$dir/registry.pid"
  echo "registry stopped (pid $pid)"
}

push() {
  local addr=$2 layout=${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}/oci i
  check_addr "$addr"
  command -v skopeo >/dev/null 2>&1 || die "skopeo not found: run deploy/deps.sh (as root)"
  [ -f "$layout/index.json" ] || die "no image layout at $layout: run deploy/images.sh first"
  for i in "${images[@]}"; do
    # oci:PATH:REF picks the manifest whose org.opencontainers.image.ref.name is REF (the path
    # ends at the first colon).
    skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$i:latest" "docker://$addr/$i:latest" \
      || die "pushing $i to $addr failed"
    echo "$addr/$i:latest"
  done
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
  start) [ $# -eq 2 ] || usage; start "$1" "$2" ;;
  stop) [ $# -eq 1 ] || usage; stop "$1" ;;
  push) [ $# -eq 2 ] || usage; push "$1" "$2" ;;
  *) usage ;;
esac
