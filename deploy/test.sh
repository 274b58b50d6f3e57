#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# Builds the binaries the end-to-end tests drive, then runs every test of the workspace.
# The tests that build namespaces are marked `#[ignore = "needs root"]`: without root cargo
# reports them as ignored; as root this script runs them too (`-- --include-ignored`). CI runs
# as root: with CI set, a missing root is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
root=false
if [ "$(id -u)" -eq 0 ]; then
  root=true
elif [ -n "${CI:-}" ]; then
  echo "CI is set but this is not root: CI must run the root tests (network namespaces), run as root" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
# System packages the root tests use (nftables), installed when missing and running as root.
bash deploy/deps.sh
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; fi
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo build --locked --workspace --bins
# The demo images (shoal/busybox, shoal/whoami, shoal/nginx) the lab tests push into their
# labs' registries, as an OCI layout in ${SHOAL_IMAGE_CACHE:-/var/tmp/shoal-images}/oci. Rebuilt
# only when an input changed; the first build needs the Debian mirror (nginx, with mmdebstrap)
# and builds whoami statically with cargo in release mode.
if $root; then bash deploy/images.sh; fi
test_args=(--test-threads "${SHOAL_TEST_THREADS:-2}")
if $root; then test_args+=(--include-ignored); fi
cargo test --locked --workspace -- "${test_args[@]}"
# The deploy kit: launcher, unit (systemd-analyze verify), install.sh twice, cloud-init.
bash deploy/check-kit.sh
# netlib's IPVS balancer against a real IPVS: this machine's kernel may have none, so the same
# load-balancer suite runs inside a throwaway VM booted with Debian's kernel (tests/vm/README.md).
if $root; then
  exe=$(cargo test --locked -p shoal-netlib --test lb_ipvs --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [ -n "$exe" ] || { echo "could not find the lb_ipvs test binary" >&2; exit 1; }
  bash tests/vm/run-in-vm.sh "$exe" --include-ignored --test-threads 1
  # The agent's service balancers with --lb-backend ipvs: VIP and routing mesh, strict round
  # robin, and `ipvsadm -Ln` in the lb_ namespace as the reference article shows it.
  exe=$(cargo test --locked -p shoal-agent --lib --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
  [ -n "$exe" ] || { echo "could not find the agent's test binary" >&2; exit 1; }
  SHOAL_VM_ENV="SHOAL_REQUIRE_IPVS=1" bash tests/vm/run-in-vm.sh "$exe" \
    network::lb_tests::vip_and_mesh_ipvs --exact --include-ignored --nocapture
  # The article across three VMs (issue #9): swarmd from the deploy kit's config, IPVS chosen
  # by --lb-backend auto, a worker VM powered off.
  bash tests/vm/cluster.sh "$CARGO_TARGET_DIR/debug"
  # A power cut of three managers in the middle of acknowledged writes (issue #21): after the
  # reboot every acknowledged write is on every manager.
  bash tests/vm/power-loss.sh "$CARGO_TARGET_DIR/debug"
  # `swarmctl lab ui` in headless Chromium (Debian's, driven by playwright-core) on a 3+2 lab.
  SWARMCTL="$CARGO_TARGET_DIR/debug/swarmctl" bash tests/ui/run.sh
else
  echo "skipped: the IPVS suite in a VM needs root (tests/vm/run-in-vm.sh)" >&2
fi
