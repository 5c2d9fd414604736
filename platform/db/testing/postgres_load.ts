/**
 * A load of queries and transactions against the Postgres at `Deno.args[0]`, run as a child process by
 * `postgres_faults_test.ts` so that a crash of the driver ends this process and not the test runner. Every 100 ms it
 * prints one JSON line: `{ "ok": <calls that succeeded>, "failed": { "<error name>": <count> } }` (cumulative).
 * Four workers run transactions that pause 20 ms between their two statements, so a kill most likely finds one in that
 * pause, its connection gone with no statement in flight; four more run single queries. With `--raw` only the
 * transactions run, through the `postgres` driver's `sql.begin()` directly, without the adapter's guard, to show what
 * the guard prevents.
 *
 * @example Run it by hand
 * ```sh
 * deno run -A platform/db/testing/postgres_load.ts postgres://postgres@127.0.0.1:5432/postgres
 * ```
 * @module
 */
import postgres from "postgres";
import { connectPostgres } from "../postgres.ts";

const [url, mode] = Deno.args;
const RAW = mode === "--raw";
const TX_WORKERS = 4;
const QUERY_WORKERS = RAW ? 0 : 4;
const GAP_MS = 20;
const AFTER_FAILURE_MS = 200;
const db = connectPostgres(url, { max: 6, connectTimeout: 2_000 });
// A short reconnect backoff, so that the raw load recovers as fast as the adapter (the default grows to 20 s).
const raw = RAW ? postgres(url, { max: 4, connect_timeout: 2, onnotice: () => {}, backoff: () => 0.05 }) : undefined;
let ok = 0;
const failed: Record<string, number> = {};

await db.query("create table if not exists load_rows (worker int, at timestamptz default now())");

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function transaction(worker: number): Promise<void> {
  if (raw) {
    await raw.begin(async (tx) => {
      await tx.unsafe("insert into load_rows (worker) values ($1)", [worker]);
      await pause(GAP_MS);
      await tx.unsafe("select count(*) from load_rows where worker = $1", [worker]);
    });
    return;
  }
  await db.transaction(async (tx) => {
    await tx.query("insert into load_rows (worker) values ($1)", [worker]);
    // Work between two statements: the connection may die while no statement is in flight.
    await pause(GAP_MS);
    await tx.query("select count(*) from load_rows where worker = $1", [worker]);
  });
}

async function work(worker: number): Promise<never> {
  for (;;) {
    try {
      if (worker >= TX_WORKERS) await db.query("select $1::int as worker, pg_sleep(0.002)", [worker]);
      else await transaction(worker);
      ok++;
    } catch (error) {
      const name = (error as Error).name;
      failed[name] = (failed[name] ?? 0) + 1;
      await pause(AFTER_FAILURE_MS);
    }
  }
}

for (let worker = 0; worker < TX_WORKERS + QUERY_WORKERS; worker++) work(worker);
setInterval(() => console.log(JSON.stringify({ ok, failed })), 100);
