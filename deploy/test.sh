#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# Builds the binaries the end-to-end tests drive, then runs every test of the workspace.
# Needs no root: tasks run as plain processes (`--data-plane none`) and nodes listen on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; fi
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo build --locked --workspace --bins
cargo test --locked --workspace -- --test-threads "${SHOAL_TEST_THREADS:-2}"
