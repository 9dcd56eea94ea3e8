#!/usr/bin/env bash
# One command for the benchmark: installs wrk and nginx-light (Debian),
# builds Warden and its plugins, then measures in one run, against the same
# mock LLM on loopback: the mock directly, nginx proxy_pass, Warden with the
# chain disabled, and Warden with the full five-stage chain and logging on.
#   bash bench/run.sh            # 10 s per measurement
#   DURATION=30 bash bench/run.sh
#   bash bench/run.sh isolation  # another tenant's latency beside a looping plugin
#   bash bench/run.sh reload     # plugin file written → new version serving
#   bash bench/run.sh replicas   # sled against PostgreSQL + Redis, one replica against two
#   bash bench/run.sh sentence   # the sentence encoder beside the provider call, new prompts
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
bash scripts/build-plugins.sh
cargo build --locked --release -p warden
# `bash bench/run.sh isolation`: one tenant's looping plugin beside another's calls.
exec python3 "bench/${1:-run}.py" "$CARGO_TARGET_DIR/release/warden"
