#!/usr/bin/env bash
# `deno task down`: stops what `deno task up` started. SIGTERM to the supervisor (scripts/supervise.ts), which stops
# the six services edge inwards (each drains and exits) and then exits itself; waits for it. Service pid files left
# by an older, unsupervised `up` are stopped the same way directly. Infrastructure keeps running; `deno task
# infra:down` stops what infra.sh started.
#
# Environment: TRELLIS_RUN_DIR [.trellis/run], TRELLIS_STOP_GRACE_S [10] (per service, as the supervisor uses it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=${TRELLIS_RUN_DIR:-.trellis/run}
grace=${TRELLIS_STOP_GRACE_S:-10}

# `pid` is alive and its command line contains `what` (guards against a recycled pid).
is_running() {
  local pid=$1 what=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$what"
}

# SIGTERM, wait up to `wait_s` seconds, then SIGKILL; says which.
stop_pid() {
  local name=$1 pid=$2 wait_s=$3 t0=$SECONDS
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait_s * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "$name… stopped (pid $pid) in $((SECONDS - t0)) s"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  echo "$name… killed (pid $pid) after ${wait_s} s"
}

f=$run/supervisor.pid
if [ -f "$f" ]; then
  pid=$(cat "$f")
  # four stop waves of up to `grace` seconds each, plus slack for the supervisor itself
  if is_running "$pid" scripts/supervise.ts; then stop_pid supervisor "$pid" $((4 * grace + 5)); fi
  rm -f "$f"
fi

# Whatever is still there: an unsupervised run, or children of a supervisor that had to be killed.
for name in gateway orders notifications inventory payments auth; do
  f=$run/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if is_running "$pid" "services/$name/main.ts"; then stop_pid "$name" "$pid" "$grace"; fi
  rm -f "$f"
done
