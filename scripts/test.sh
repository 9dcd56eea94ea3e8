#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, builds
# the plugins and the host, runs the Rust tests (unit + integration over real
# HTTP), the intent classifier's quality gate, the official openai Python SDK
# against the real binary, then the web console in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

# The demo test runs the printed curl line.
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

bash scripts/build-plugins.sh
cargo build --locked --release -p warden
cargo test --locked --release -p warden -p warden-intent-model

# The intent classifier's quality gate on the evaluation set (tasks the model
# never trained on): major-deviation precision and recall >= 0.9.
"$CARGO_TARGET_DIR/release/warden" eval intent --min-precision 0.9 --min-recall 0.9
# Benign and abusive users through the real proxy (fixed seed): no benign
# user blocked, every abuser blocked within 5 unrelated requests.
"$CARGO_TARGET_DIR/release/warden" eval workload --check

python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
python3 -m pytest -q tests/python

# The web console end to end in a real browser: Debian's Chromium, driven by
# playwright-core (which never downloads a browser of its own).
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
WARDEN_BIN="$CARGO_TARGET_DIR/release/warden" npm test --prefix tests/e2e
