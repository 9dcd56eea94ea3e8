#!/usr/bin/env bash
# Builds every plugin component from source:
#  - the Rust stages, fixtures and Rust example guardrails (wasm32-wasip2)
#    into build/plugins/<name>.wasm, where policies refer to them by name;
#  - the Python (componentize-py) and JavaScript (componentize-js) example
#    guardrails into build/examples/<name>.wasm. They are tenant plugins, to
#    be uploaded (`warden plugin upload`), not shared ones every server loads.
# Installs the toolchains it needs (rustup target, pip, npm packages).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
target_dir="${CARGO_TARGET_DIR:-target}"

# A file is written under a temporary name, then renamed: a running server's
# watcher never sees half a component.
publish() { cp "$1" "$2.tmp" && mv "$2.tmp" "$2"; }

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
  test-oversize:warden-fixture-oversize
  test-hostile:warden-fixture-hostile
  pii-redactor:warden-example-pii-redactor
  max-prompt-length:warden-example-max-prompt-length
)
args=()
for p in "${plugins[@]}"; do args+=(-p "${p#*:}"); done
cargo build --locked --quiet --target wasm32-wasip2 --profile plugin "${args[@]}"
for p in "${plugins[@]}"; do
  name="${p%%:*}"; crate="${p#*:}"
  publish "$target_dir/wasm32-wasip2/plugin/${crate//-/_}.wasm" "$out/$name.wasm"
done
echo "plugins built into $out: $(ls "$out" | tr '\n' ' ')"

# --- Example guardrails in other languages --------------------------------
examples=build/examples
mkdir -p "$examples"
# True when $1 is missing or older than any of the other paths' files.
stale() {
  local target=$1; shift
  [[ ! -f $target ]] || [[ -n $(find "$@" -type f -newer "$target" -not -path '*/node_modules/*' -not -path '*/__pycache__/*' | head -1) ]]
}

py=examples/guardrails/secret-scanner-py
python3 -m pip install --quiet --disable-pip-version-check -r "$py/requirements.txt"
if stale "$examples/secret-scanner.wasm" "$py" wit; then
  (cd "$py" && componentize-py -d ../../../wit -w guardrail-plugin componentize app -o secret-scanner.wasm >/dev/null)
  publish "$py/secret-scanner.wasm" "$examples/secret-scanner.wasm" && rm "$py/secret-scanner.wasm"
fi

js=examples/guardrails/blocked-words-js
command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
if [[ ! -f $js/node_modules/.package-lock.json || $js/package-lock.json -nt $js/node_modules/.package-lock.json ]]; then
  # `npm install` honours the lock file; `npm ci` refuses it because npm
  # leaves other platforms' optional native packages out of lock files.
  # `--no-save` keeps it from writing those back into the tracked lock file
  # (a fresh clone stays clean after a build).
  npm install --no-save --prefix "$js" --no-audit --no-fund --loglevel=error >/dev/null
fi
# `warden plugin new --lang js` projects install the same packages offline
# without a lock file, which needs npm's full metadata of the whole tree (a
# lock-file install caches only the abbreviated one): fetch it once.
npm_warm=$target_dir/npm-full-metadata.stamp
if [[ ! -f $npm_warm || $js/package.json -nt $npm_warm ]]; then
  warm=$(mktemp -d)
  cp "$js/package.json" "$warm/"
  npm install --prefix "$warm" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  rm -rf "$warm"
  mkdir -p "$(dirname "$npm_warm")" && touch "$npm_warm"
fi
if stale "$examples/blocked-words.wasm" "$js" wit; then
  npm run --prefix "$js" --silent build >/dev/null
  publish "$js/blocked-words.wasm" "$examples/blocked-words.wasm" && rm "$js/blocked-words.wasm"
fi
echo "examples built into $examples: $(ls "$examples" | tr '\n' ' ')"
