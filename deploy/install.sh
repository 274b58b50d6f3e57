#!/usr/bin/env bash
# Builds Shoal in release mode and installs swarmd, swarmctl and the systemd unit on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
bash deploy/deps.sh   # nftables and iproute2, installed when missing
cargo build --locked --release --bins
install -m 0755 "$CARGO_TARGET_DIR/release/swarmd" "$CARGO_TARGET_DIR/release/swarmctl" /usr/local/bin/
install -m 0644 deploy/swarmd.service /etc/systemd/system/swarmd.service
mkdir -p /var/lib/shoal && chmod 0700 /var/lib/shoal
echo "installed; configure /etc/default/swarmd then: systemctl enable --now swarmd"
