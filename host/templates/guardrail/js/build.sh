#!/usr/bin/env bash
# Builds {{name}}.wasm (JavaScript → component with componentize-js).
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
