#!/usr/bin/env bash
# An example deployment of several replicas, as the tests run them
# (tests/it/replicas.rs): one PostgreSQL, one Redis, N Warden replicas each
# with its own local directory, nginx in front on 127.0.0.1:8080, and the
# mock LLM as the provider. Everything lives in a throw-away directory and
# stops with Ctrl-C.
#
#   bash examples/replicas/run.sh          # 3 replicas
#   bash examples/replicas/run.sh 2
#
# In production: PostgreSQL and Redis are your managed servers (give their
# URLs as WARDEN_STATE and WARDEN_COUNTERS), each replica runs on its own
# machine with a stable --replica name, and the load balancer checks
# /readyz. See README, Running several replicas.
set -euo pipefail
cd "$(dirname "$0")/../.."
replicas="${1:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
warden="$CARGO_TARGET_DIR/release/warden"
[ -x "$warden" ] || { bash scripts/build-plugins.sh && cargo build --locked --release -p warden; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq postgresql redis-server >/dev/null
fi

work="$(mktemp -d /tmp/warden-replicas.XXXX)"
pids=()
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# PostgreSQL (the source of truth) and Redis (the counters), on loopback.
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work" "$work/pg"
as_postgres "$pg_bin/initdb" -D "$work/pg" -U warden --auth=trust >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p 15432 -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
export WARDEN_STATE="postgres://warden@127.0.0.1:15432/postgres"
export WARDEN_COUNTERS="redis://127.0.0.1:16379/"
redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null & pids+=($!)
"$warden" mock-llm --listen 127.0.0.1:18090 >/dev/null 2>&1 & pids+=($!)

# A tenant made once on one machine, then copied into PostgreSQL.
seed="$work/seed"
"$warden" tenant create acme --state-dir "$seed" >/dev/null
"$warden" user create --tenant acme ali --state-dir "$seed" >/dev/null
"$warden" task create --tenant acme invoice-backend --title "Invoice backend" --keyword invoice \
  --state-dir "$seed" >/dev/null
token="$("$warden" token issue --tenant acme --user ali --task invoice-backend --state-dir "$seed")"
"$warden" migrate --state-dir "$seed" --to "$WARDEN_STATE"

# N replicas, each with its own local directory (a cache of PostgreSQL and
# its request journal) and a stable name.
upstreams=""
for n in $(seq 1 "$replicas"); do
  port=$((18100 + n))
  cat > "$work/replica-$n.toml" <<EOF
listen = "127.0.0.1:$port"
state_dir = "$work/replica-$n"
plugin_dir = "$PWD/build/plugins"
policy_dir = "$PWD/policies"
[upstream]
base_url = "http://127.0.0.1:18090/v1"
api_key_env = "MOCK_KEY"
EOF
  MOCK_KEY=unused "$warden" serve --config "$work/replica-$n.toml" --replica "replica-$n" \
    2>"$work/replica-$n.log" & pids+=($!)
  upstreams="$upstreams server 127.0.0.1:$port;"
done

# nginx in front: round robin, keep-alive to the replicas.
cat > "$work/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.log;
events { worker_connections 1024; }
http { access_log off;
  # One replica per token: plugins' own key-value stores are per replica (README).
  upstream warden { hash \$http_authorization consistent; $upstreams keepalive 64; }
  server { listen 127.0.0.1:8080;
    location / { proxy_pass http://warden; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; } } }
EOF
for n in $(seq 1 "$replicas"); do
  until curl -sf "http://127.0.0.1:$((18100 + n))/readyz" >/dev/null; do sleep 0.2; done
done
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
sleep 0.5

echo "$replicas replicas behind http://127.0.0.1:8080 (Ctrl-C stops everything):"
echo "curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Authorization: Bearer $token' \\"
echo "  -H 'X-Task-Id: invoice-backend' -H 'Content-Type: application/json' \\"
echo "  -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Write the invoice total function\"}]}'"
wait
