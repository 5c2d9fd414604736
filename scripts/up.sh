#!/usr/bin/env bash
# `deno task up`: distributed mode. Brings up Postgres, NATS and Kafka (scripts/infra.sh), then the six services as six
# processes under a supervisor (scripts/supervise.ts) that restarts any that exits (backoff 1 s doubling to 30 s) and
# logs each restart, and waits until each service answers /readyz. `deno task down` stops them.
#
# Environment (defaults in brackets): TRELLIS_RUN_DIR [.trellis/run] pid files; TRELLIS_LOG_DIR [.trellis/logs] logs;
# <SERVICE>_PORT and <SERVICE>_GRPC_PORT as the services read them; TRELLIS_*_PORT and TRELLIS_PG_UNSAFE for infra.sh;
# DATABASE_URL, NATS_URL, KAFKA_BROKERS, STORAGE_DIR, DATABASE_PREFIX, TOPIC_PREFIX ... pass through to the services.
# Tracing: services run with OTEL_DENO=true (set OTEL_DENO=false to turn it off) and export over OTLP/HTTP to
# OTEL_EXPORTER_OTLP_ENDPOINT, or by default to the trace receiver the supervisor serves on TRACES_PORT [4318]; the
# other OTEL_* variables pass through; each service is named by OTEL_SERVICE_NAME=<service>.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deno_bin=${DENO:-$(command -v deno || echo "npx -y deno@2.9.6")}
run=${TRELLIS_RUN_DIR:-.trellis/run}
logs=${TRELLIS_LOG_DIR:-.trellis/logs}
mkdir -p "$run" "$logs"
# the supervisor resolves relative directories against the repository root, which is where we are
export TRELLIS_RUN_DIR=$run TRELLIS_LOG_DIR=$logs
services=(auth inventory payments orders notifications gateway)

bash scripts/infra.sh up
# Prometheus scraping the six services on their default ports (deploy/prometheus.yml), with deploy/alerts.yml.
bash scripts/infra.sh up prometheus
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:${TRELLIS_PG_PORT:-5432}/postgres}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:${TRELLIS_NATS_PORT:-4222}}
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:${TRELLIS_KAFKA_PORT:-9092}}
export STORAGE_DIR=${STORAGE_DIR:-$PWD/.trellis/storage}

declare -A port=([gateway]=${GATEWAY_PORT:-8080} [auth]=${AUTH_PORT:-8081} [orders]=${ORDERS_PORT:-8082}
  [inventory]=${INVENTORY_PORT:-8083} [payments]=${PAYMENTS_PORT:-8084} [notifications]=${NOTIFICATIONS_PORT:-8085})

# `pid` is alive and its command line contains `what` (guards against a recycled pid).
is_running() {
  local pid=$1 what=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$what"
}
pid_of() { cat "$run/$1.pid" 2>/dev/null || true; }

sup_pid=$(pid_of supervisor)
if is_running "$sup_pid" scripts/supervise.ts; then
  echo "supervisor… already running (pid $sup_pid)"
else
  for s in "${services[@]}"; do
    if is_running "$(pid_of "$s")" "services/$s/main.ts"; then
      echo "up.sh: $s (pid $(pid_of "$s")) still runs from an unsupervised start; run 'deno task down' first" >&2
      exit 1
    fi
  done
  rm -f "$run/supervisor.pid"
  # own session: a Ctrl-C in this terminal must not reach the services; the supervisor writes its own pid file
  # shellcheck disable=SC2086
  # OTEL_DENO goes to the services only (as TRELLIS_OTEL_DENO): an instrumented supervisor would trace its own polls
  TRELLIS_OTEL_DENO=${OTEL_DENO:-true} setsid env -u OTEL_DENO $deno_bin run -A scripts/supervise.ts </dev/null \
    >>"$logs/supervisor.log" 2>&1 &
  for _ in $(seq 1 150); do
    [ -s "$run/supervisor.pid" ] && break
    sleep 0.2
  done
  sup_pid=$(pid_of supervisor)
  if ! is_running "$sup_pid" scripts/supervise.ts; then
    echo "up.sh: the supervisor did not start; last lines of $logs/supervisor.log:" >&2
    tail -n 20 "$logs/supervisor.log" >&2
    exit 1
  fi
  echo "supervisor… started (pid $sup_pid)"
fi

wait_ready() {
  local name=$1 url="http://127.0.0.1:${port[$1]}/readyz" started=$SECONDS
  printf 'waiting for %s on %s… ' "$name" "${url%/readyz}"
  while [ $((SECONDS - started)) -lt 90 ]; do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then echo "ready (pid $(pid_of "$name"))"; return; fi
    if ! kill -0 "$sup_pid" 2>/dev/null; then
      echo "the supervisor exited"; tail -n 20 "$logs/supervisor.log" >&2; exit 1
    fi
    sleep 0.2
  done
  echo "not ready after 90 s"; tail -n 20 "$logs/$name.log" >&2
  echo "up.sh: the supervisor (pid $sup_pid) keeps restarting it; 'deno task down' stops everything" >&2
  exit 1
}

for s in "${services[@]}"; do wait_ready "$s"; done
echo
echo "Trellis is running (distributed mode). Gateway: http://127.0.0.1:${port[gateway]}  Auth: http://127.0.0.1:${port[auth]}"
echo "Processes are supervised (scripts/supervise.ts, pid $sup_pid): a service that exits is restarted after 1 s,"
echo "doubling to 30 s while it keeps failing; restarts are logged to $logs/supervisor.log and the service's log."
if [ "${OTEL_DENO:-true}" != "true" ]; then
  echo "Traces: off (OTEL_DENO=$OTEL_DENO)"
elif [ -n "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ]; then
  echo "Traces: exported to $OTEL_EXPORTER_OTLP_ENDPOINT"
else
  echo "Traces: http://127.0.0.1:${TRACES_PORT:-4318}/api/traces (OTLP/HTTP receiver, last 1000 traces)"
fi
echo "Logs: $logs/<service>.log   Stop: deno task down"
echo "Prometheus: http://127.0.0.1:${TRELLIS_PROMETHEUS_PORT:-9090} (targets and alerts; deno task infra:down stops it)"
