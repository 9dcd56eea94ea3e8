#!/usr/bin/env bash
# Builds every plugin component from source (wasm32-wasip2) and copies them
# to build/plugins/<name>.wasm, where policies refer to them by name.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
target_dir="${CARGO_TARGET_DIR:-target}"
out=build/plugins
mkdir -p "$out"
# name:package pairs; the name is what policy files use.
plugins=(
  auth:warden-plugin-auth
  task-validation:warden-plugin-task-validation
  quota:warden-plugin-quota
  intent:warden-plugin-intent
  deviation:warden-plugin-deviation
  test-misbehave:warden-fixture-misbehave
  pii-redactor:warden-example-pii-redactor
  max-prompt-length:warden-example-max-prompt-length
)
args=()
for p in "${plugins[@]}"; do args+=(-p "${p#*:}"); done
cargo build --locked --quiet --target wasm32-wasip2 --profile plugin "${args[@]}"
for p in "${plugins[@]}"; do
  name="${p%%:*}"; crate="${p#*:}"
  cp "$target_dir/wasm32-wasip2/plugin/${crate//-/_}.wasm" "$out/$name.wasm.tmp"
  mv "$out/$name.wasm.tmp" "$out/$name.wasm"   # atomic for a running server's watcher
done
echo "plugins built into $out: $(ls "$out" | tr '\n' ' ')"
