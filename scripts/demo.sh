#!/usr/bin/env bash
# Set-up and demo in one command, offline: builds the plugins and the proxy,
# then runs the mock LLM and Warden with a seeded tenant, user, task and token.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bash scripts/build-plugins.sh
cargo build --locked --release -p warden
exec "$CARGO_TARGET_DIR/release/warden" demo "$@"
