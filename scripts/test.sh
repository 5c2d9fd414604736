#!/usr/bin/env bash
# `deno task test`: brings up the Postgres, NATS and Kafka the suite needs on loopback (using running ones, starting
# or installing what is missing), then runs every test tier with Deno's sanitizers on, together with the doc examples
# (`--doc`: each ```ts block in a JSDoc comment or Markdown file under the targets is type-checked and run as a test of
# its own; ```ts ignore blocks are skipped), two test files at a time. Extra arguments go to `deno test` (e.g. a path
# to run one file and its examples).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deno_bin=${DENO:-$(command -v deno || echo "npx -y deno@2.9.6")}

bash scripts/infra.sh up
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:${TRELLIS_PG_PORT:-5432}/postgres}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:${TRELLIS_NATS_PORT:-4222}}
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:${TRELLIS_KAFKA_PORT:-9092}}
export LOG_LEVEL=${LOG_LEVEL:-warn}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(platform/ services/ tests/)
# One run, so the examples count in its one summary line; Deno collects each file once however many targets hold it.
# --parallel runs DENO_JOBS test files at once (default 2, this machine's cores; tests inside a file still run one
# after another). Every file isolates what it shares (unique databases, topics, groups and streams; private servers
# for faults), most of a run is waiting on servers and timers, and Deno spends ~0.25 s of CPU starting each of the
# ~700 modules (~550 are doc examples): 18 min one file at a time, 10.5 min two at a time.
export DENO_JOBS=${DENO_JOBS:-2}
# shellcheck disable=SC2086
exec $deno_bin test -A --parallel --sanitize-ops --sanitize-resources --doc "${targets[@]}"
