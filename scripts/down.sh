#!/usr/bin/env bash
# `deno task down`: stops the six service processes started by `deno task up` (SIGTERM, so each drains), in order
# from the edge inwards. Infrastructure keeps running; `deno task infra:down` stops what infra.sh started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=.trellis/run
stop() {
  local name=$1 f="$run/$1.pid"
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "$name… killed after 10 s"; else echo "$name… stopped"; fi
  fi
  rm -f "$f"
}
stop gateway
stop orders
stop notifications
stop inventory
stop payments
stop auth
