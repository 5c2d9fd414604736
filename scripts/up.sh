#!/usr/bin/env bash
# `deno task up`: distributed mode. Brings up Postgres, NATS and Kafka (scripts/infra.sh), then the six services as
# six background processes with logs in .trellis/logs/, and waits until each answers /readyz. `deno task down` stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deno_bin=${DENO:-$(command -v deno || echo "npx -y deno@2.9.6")}
run=.trellis/run
logs=.trellis/logs
mkdir -p "$run" "$logs"

bash scripts/infra.sh up
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:${TRELLIS_PG_PORT:-5432}/postgres}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:${TRELLIS_NATS_PORT:-4222}}
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:${TRELLIS_KAFKA_PORT:-9092}}
export STORAGE_DIR=${STORAGE_DIR:-$PWD/.trellis/storage}

declare -A port=([gateway]=${GATEWAY_PORT:-8080} [auth]=${AUTH_PORT:-8081} [orders]=${ORDERS_PORT:-8082}
  [inventory]=${INVENTORY_PORT:-8083} [payments]=${PAYMENTS_PORT:-8084} [notifications]=${NOTIFICATIONS_PORT:-8085})

start() {
  local name=$1
  if [ -f "$run/$name.pid" ] && kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then
    echo "$name… already running (pid $(cat "$run/$name.pid"))"
    return
  fi
  # shellcheck disable=SC2086
  nohup $deno_bin run -A "services/$name/main.ts" >>"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

wait_ready() {
  local name=$1 url="http://127.0.0.1:${port[$1]}/readyz" started=$SECONDS
  printf 'waiting for %s on %s… ' "$name" "${url%/readyz}"
  while [ $((SECONDS - started)) -lt 90 ]; do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then echo "ready"; return; fi
    if ! kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then
      echo "exited"; tail -n 20 "$logs/$name.log" >&2; exit 1
    fi
    sleep 0.2
  done
  echo "not ready after 90 s"; tail -n 20 "$logs/$name.log" >&2; exit 1
}

start auth
wait_ready auth
for s in inventory payments orders notifications gateway; do start "$s"; done
for s in inventory payments orders notifications gateway; do wait_ready "$s"; done
echo
echo "Trellis is running (distributed mode). Gateway: http://127.0.0.1:${port[gateway]}  Auth: http://127.0.0.1:${port[auth]}"
echo "Logs: $logs/<service>.log   Stop: deno task down"
