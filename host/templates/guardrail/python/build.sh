#!/usr/bin/env bash
# Builds {{name}}.wasm (Python → component with componentize-py).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --quiet --disable-pip-version-check -r requirements.txt
componentize-py -d wit -w guardrail-plugin componentize app -o {{name}}.wasm
