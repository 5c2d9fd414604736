import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Database, QueryOptions, Row, Tx } from "./db.ts";
import { findDatabaseUnavailable } from "./errors.ts";

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const OPERATIONS = new Set(["select", "insert", "update", "delete", "with"]);

/** The statement's leading keyword when it is a common one, else `other`: a bounded label, never the text. */
function operationOf(text: string): string {
  const word = /^\s*([a-zA-Z]+)/.exec(text)?.[1]?.toLowerCase() ?? "";
  return OPERATIONS.has(word) ? word : "other";
}

interface DbMetrics {
  duration: Histogram<"operation">;
  errors: Counter<"operation" | "kind">;
}

/**
 * `db`, measured on `registry`: `db_client_operation_duration_seconds{operation}` (each statement, inside
 * transactions too, `operation` being its leading keyword: select, insert, update, delete, with or other),
 * `db_client_errors_total{operation,kind}` (`kind`: `unavailable` when the database cannot be reached, `aborted` when
 * the deadline passed, `statement` otherwise) and, where the adapter has a pool, `db_client_connections_max`,
 * `db_client_connections_in_use` and `db_client_connections_waiting`. Parameters never reach a label.
 *
 * @example Measure a service's database
 * ```ts
 * import { Registry } from "prom-client";
 * import { createPglite, databaseMetrics } from "./mod.ts";
 * const registry = new Registry();
 * await using pglite = await createPglite();
 * const db = databaseMetrics(registry, pglite.database("orders"));
 * await db.query("select 1");
 * (await registry.metrics()).includes('db_client_operation_duration_seconds_count{operation="select"} 1'); // true
 * ```
 */
export function databaseMetrics(registry: Registry, db: Database): Database {
  const m: DbMetrics = {
    duration: new Histogram({
      name: "db_client_operation_duration_seconds",
      help: "Duration of database statements, by operation (leading SQL keyword).",
      labelNames: ["operation"] as const,
      buckets: BUCKETS,
      registers: [registry],
    }),
    errors: new Counter({
      name: "db_client_errors_total",
      help: "Database statements that failed, by operation and kind (unavailable, aborted, statement).",
      labelNames: ["operation", "kind"] as const,
      registers: [registry],
    }),
  };
  if (db.pool) {
    const pool = () => db.pool!();
    // Read at every scrape, so they show the pool as it is then.
    new Gauge({
      name: "db_client_connections_max",
      help: "Connections the database pool may hold.",
      registers: [registry],
      collect() {
        this.set(pool().max);
      },
    });
    new Gauge({
      name: "db_client_connections_in_use",
      help: "Database pool connections held by a statement or transaction now.",
      registers: [registry],
      collect() {
        this.set(pool().inUse);
      },
    });
    new Gauge({
      name: "db_client_connections_waiting",
      help: "Calls waiting for a database pool connection now.",
      registers: [registry],
      collect() {
        this.set(pool().waiting);
      },
    });
  }
  const measured: Database = {
    query: <T extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions) =>
      timed(m, text, () => db.query<T>(text, params, options)),
    transaction: <T>(fn: (tx: Tx) => Promise<T>, options?: QueryOptions) =>
      db.transaction((tx) => fn(measuredTx(m, tx)), options),
    listen: (channel, onNotify, onListen) => db.listen(channel, onNotify, onListen),
    ping: (signal) => db.ping(signal),
    close: () => db.close(),
  };
  if (db.pool) measured.pool = () => db.pool!();
  return measured;
}

function measuredTx(m: DbMetrics, tx: Tx): Tx {
  return {
    query: <T extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions) =>
      timed(m, text, () => tx.query<T>(text, params, options)),
    savepoint: <T>(fn: (sp: Tx) => Promise<T>) => tx.savepoint((sp) => fn(measuredTx(m, sp))),
  };
}

async function timed<T>(m: DbMetrics, text: string, run: () => Promise<T>): Promise<T> {
  const operation = operationOf(text);
  const start = performance.now();
  try {
    return await run();
  } catch (err) {
    const kind = findDatabaseUnavailable(err)
      ? "unavailable"
      : (err as Error)?.name === "TimeoutError" || (err as Error)?.name === "AbortError"
      ? "aborted"
      : "statement";
    m.errors.inc({ operation, kind });
    throw err;
  } finally {
    m.duration.observe({ operation }, (performance.now() - start) / 1000);
  }
}
