#!/usr/bin/env bash
# Runs each image deploy/images.sh built with runc, briefly, in a throwaway network namespace
# (loopback only: the host's interfaces are never touched), and checks it works:
#   shoal/busybox  prints its /etc/os-release, id and hostname
#   shoal/whoami   answers HTTP on 8080 (curl from inside the namespace); `runc exec` runs
#                  busybox's wget in it
#   shoal/nginx    answers HTTP on 80, logs the request on stdout; `runc exec` runs sh in it
# Everything made here (namespace, containers, cgroups, bundles) is removed at the end, also on
# failure. Usage (root): deploy/check-images.sh   [SHOAL_IMAGE_CACHE, SHOAL_OCI_RUNTIME=runc|crun]
set -euo pipefail

die() { echo "check-images.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (runc, ip netns)"
rt=${SHOAL_OCI_RUNTIME:-runc}
for c in "$rt" umoci ip curl python3; do
  command -v "$c" >/dev/null 2>&1 || die "missing '$c': run deploy/deps.sh (as root)"
done
layout=${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}/oci
[ -f "$layout/index.json" ] || die "no image layout at $layout: run deploy/images.sh first"

id=imgchk-$$
ns=shoal-$id
tmp=$(mktemp -d "/var/tmp/shoal-$id.XXXXXX")
state=$tmp/runtime   # the runtime's own state root: `list` and `delete` only see our containers
containers=()
# Containers' cgroups: beneath this process's own memory cgroup (never a hierarchy's root); the
# same absolute path is created in every v1 hierarchy, so remember which parents existed.
mine=$(sed -n 's/^[0-9]*:memory:\(\/.*\)$/\1/p' /proc/self/cgroup | head -n1)
mine=${mine%/}
made_parents=()
if [ -n "$mine" ]; then
  for h in /sys/fs/cgroup/*/; do
    p=$mine
    while [ -n "$p" ] && [ "$p" != / ]; do
      [ -d "$h${p#/}" ] || made_parents+=("$h${p#/}")
      p=$(dirname "$p")
    done
  done
fi

cleanup() {
  local c d
  set +e
  for c in "${containers[@]}"; do
    "$rt" --root "$state" kill "$c" KILL >/dev/null 2>&1
  done
  for c in "${pids[@]}"; do
    timeout 5 tail --pid "$c" -f /dev/null
    kill -0 "$c" 2>/dev/null && kill -KILL "$c"
    wait "$c" 2>/dev/null
  done
  for c in "${containers[@]}"; do
    "$rt" --root "$state" delete -f "$c" >/dev/null 2>&1
  done
  for c in "${containers[@]}"; do
    for d in /sys/fs/cgroup/*/"${mine#/}/$c"; do
      [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
  done
  # Parents the runtime created for us, deepest first (rmdir: only if empty).
  if [ ${#made_parents[@]} -gt 0 ]; then
    printf '%s\n' "${made_parents[@]}" | awk '{print length($0), $0}' | sort -rn | cut -d' ' -f2- \
      | while read -r d; do [ ! -d "$d" ] || rmdir "$d" 2>/dev/null; done
  fi
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up

bundle() { # IMAGE NAME [ARGS...]: unpack, then point the config at our netns and cgroup
  local image=$1 name=$2
  shift 2
  umoci unpack --image "$layout:$image:latest" "$tmp/$name" >/dev/null
  python3 - "$tmp/$name/config.json" "/run/netns/$ns" "${mine:+$mine/}$id-$name" "$id-$name" "$@" <<'EOF'
import json, sys
path, netns, cgroup, host, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
c = json.load(open(path))
c["process"]["terminal"] = False
if args:
    c["process"]["args"] = args
c["hostname"] = host
lin = c.setdefault("linux", {})
lin["namespaces"] = [n for n in lin.get("namespaces", []) if n["type"] != "network"] + \
    [{"type": "network", "path": netns}]
# Docker's default capabilities (nginx's master switches its workers to www-data).
caps = ["CAP_" + n for n in "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP "
        "SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE".split()]
c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
lin["cgroupsPath"] = cgroup if cgroup.startswith("/") else "/" + cgroup
json.dump(c, open(path, "w"), indent=2)
EOF
}

pids=()
run_bg() { # NAME: the runtime stays in the foreground of a background job, so it reaps the
  # container's process (no orphans) and its PID is ours to wait for.
  containers+=("$id-$1")
  "$rt" --root "$state" run --bundle "$tmp/$1" "$id-$1" </dev/null >"$tmp/$1.log" 2>&1 &
  pids+=($!)
}

wait_http() { # URL NAME
  local i
  for ((i = 0; i < 50; i++)); do
    if ip netns exec "$ns" curl -sf -o /dev/null --max-time 1 "$1"; then return 0; fi
    sleep 0.1
  done
  cat "$tmp/$2.log" >&2
  die "$2 did not answer on $1 within 5 s"
}

echo "== shoal/busybox: cat /etc/os-release; id; hostname ($rt, netns $ns)"
bundle shoal/busybox busybox sh -c 'cat /etc/os-release; id; hostname; ls /bin | wc -l'
containers+=("$id-busybox")
timeout 30 "$rt" --root "$state" run --bundle "$tmp/busybox" "$id-busybox" </dev/null \
  || die "shoal/busybox failed"
grep -q '^ID=shoal-busybox$' "$tmp/busybox/rootfs/etc/os-release" || die "busybox os-release"

echo "== shoal/whoami: curl http://127.0.0.1:8080/ inside the netns"
bundle shoal/whoami whoami
run_bg whoami
wait_http http://127.0.0.1:8080/health whoami
out=$(ip netns exec "$ns" curl -sf --max-time 2 http://127.0.0.1:8080/)
echo "$out"
grep -q "$id-whoami" <<<"$out" || die "whoami does not report its container's hostname"
echo "-- $rt exec whoami: wget -qO- http://127.0.0.1:8080/name (busybox inside)"
"$rt" --root "$state" exec "$id-whoami" wget -qO- http://127.0.0.1:8080/name || die "exec in whoami failed"
echo

echo "== shoal/nginx: curl http://127.0.0.1/ inside the netns"
bundle shoal/nginx nginx
run_bg nginx
wait_http http://127.0.0.1/ nginx
ip netns exec "$ns" curl -si --max-time 2 http://127.0.0.1/ | sed -n '1p;/^Server/p;/<h1>/p;/<p>/p'
echo "-- $rt exec nginx: sh -c '. /etc/os-release; echo \$PRETTY_NAME'"
# shellcheck disable=SC2016 # expanded by the container's shell
"$rt" --root "$state" exec "$id-nginx" sh -c '. /etc/os-release; echo "$PRETTY_NAME"' \
  || die "exec in nginx failed"
sleep 0.2
echo "-- nginx stdout/stderr (access log):"
cat "$tmp/nginx.log"
grep -q '"GET / HTTP/1.1" 200' "$tmp/nginx.log" || die "nginx's access log is not on stdout"

echo "all three images run ($rt)"
