#!/usr/bin/env bash
# Installs the system packages Shoal's data plane needs, when they are missing (Debian/Ubuntu):
# nftables (the `nft` program; the load balancer and NAT rules go through it) and iproute2; and
# what the README's tour runs (deploy/tour.py): python3, curl, ping; the OCI runtimes that run
# containers (runc, crun) and tini (its static `tini-static` is `--init`'s PID 1, as Docker's
# docker-init); and what builds and serves the demo images (deploy/images.sh,
# deploy/registry.sh) and the image tests: umoci, skopeo, docker-registry, busybox-static,
# mmdebstrap; the docker CLI (Debian's docker.io) the Engine API tests drive; and `promtool`
# (Debian's prometheus) that checks `swarmd --metrics-addr`'s output.
# Safe to run twice. Needs root to install; without root it only reports what is missing.
set -euo pipefail
missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)    # the lab tests ping between tasks
command -v curl >/dev/null 2>&1 || missing+=(curl)            # the tour curls tasks and the mesh
command -v python3 >/dev/null 2>&1 || missing+=(python3)      # deploy/tour.py
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)  # pulls over HTTPS
command -v runc >/dev/null 2>&1 || missing+=(runc)            # the default OCI runtime
command -v crun >/dev/null 2>&1 || missing+=(crun)            # swarmd --oci-runtime crun
[ -x /usr/bin/tini-static ] || missing+=(tini)                # --init: the containers' PID 1
command -v umoci >/dev/null 2>&1 || missing+=(umoci)          # deploy/images.sh: OCI layouts
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)        # images.sh, registry.sh push
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry) # registry.sh, labs
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap) # images.sh: the nginx image's root
command -v strip >/dev/null 2>&1 || missing+=(binutils)       # images.sh strips whoami
[ -x /usr/bin/docker ] || missing+=(docker.io)                # the docker CLI the Engine API tests drive
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # `promtool check metrics` (tests/tests/metrics.rs)
# images.sh copies busybox-static's /bin/busybox; the `busybox` package's binary is dynamic.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q ' installed$' \
  || missing+=(busybox-static)
# mmdebstrap checks the Debian mirror's signatures (already there on Debian, not on Ubuntu).
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing packages: ${missing[*]}: install them with your distribution's package manager" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's docker.io package starts a dockerd of its own; Shoal's tests need only its CLI (and
# run dockerd themselves, in a namespace, when they compare against it): the packaged service is
# stopped and disabled when this script installed it.
if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null 2>&1 &&
  systemctl cat docker.service >/dev/null 2>&1; then
  echo "stopping and disabling the packaged docker.service (only the docker CLI is needed)" >&2
  systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
fi
# Debian's docker-registry package starts a registry of its own on :5000 (htpasswd auth); Shoal
# runs its own instances (deploy/registry.sh), so the packaged service is stopped and disabled
# when this script installed it.
if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null 2>&1 &&
  systemctl cat docker-registry.service >/dev/null 2>&1; then
  echo "stopping and disabling the packaged docker-registry.service (deploy/registry.sh runs its own)" >&2
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
# Debian's prometheus package starts a Prometheus server of its own (:9090); the tests need only
# its `promtool`: the packaged service is stopped and disabled when this script installed it.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 &&
  systemctl cat prometheus.service >/dev/null 2>&1; then
  echo "stopping and disabling the packaged prometheus.service (only promtool is needed)" >&2
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
