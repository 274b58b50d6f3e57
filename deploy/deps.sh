#!/usr/bin/env bash
# Installs the system packages Shoal's data plane needs, when they are missing (Debian/Ubuntu):
# nftables (the `nft` program; the load balancer and NAT rules go through it) and iproute2; and
# what the README's tour runs (deploy/tour.py): python3, curl, ping; and the registry tests'
# docker-registry and skopeo (shoal-image).
# Safe to run twice. Needs root to install; without root it only reports what is missing.
set -euo pipefail
missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)    # the lab tests ping between tasks
command -v curl >/dev/null 2>&1 || missing+=(curl)            # the tour curls tasks and the mesh
command -v python3 >/dev/null 2>&1 || missing+=(python3)      # deploy/tour.py
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)  # image pulls from a real registry
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)        # pushes the test images to it
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
