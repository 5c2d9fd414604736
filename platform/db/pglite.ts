import { PGlite } from "@electric-sql/pglite";
import { AsyncLocalStorage } from "node:async_hooks";
import { currentContext } from "../context/mod.ts";
import { querySpan } from "../telemetry/mod.ts";
import type { Database, QueryOptions, Row, Tx } from "./db.ts";
import { Savepoints } from "./savepoint.ts";

/**
 * Options for {@linkcode createPglite}.
 *
 * @example Keep the data between runs
 * ```ts
 * import { createPglite, type PgliteOptions } from "./pglite.ts";
 * const options: PgliteOptions = { dataDir: ".trellis/pglite" };
 * const start = () => createPglite(options);
 * ```
 */
export interface PgliteOptions {
  /**
   * Directory holding the data files; omit for an in-memory database that vanishes on close.
   * @default {undefined}
   */
  dataDir?: string;
}

/**
 * One embedded Postgres shared by several services, each confined to its own schema.
 * Owning it means closing it: {@linkcode SharedPglite.close} (or `await using`) closes every view and the instance.
 *
 * @example Hand each service its schema
 * ```ts
 * import type { Database } from "./db.ts";
 * import type { SharedPglite } from "./pglite.ts";
 * function databases(pglite: SharedPglite): Record<string, Database> {
 *   return { orders: pglite.database("orders"), payments: pglite.database("payments") };
 * }
 * ```
 */
export interface SharedPglite extends AsyncDisposable {
  /**
   * A {@linkcode Database} whose queries and transactions all run with `search_path` set to `schema` (created on first
   * use), and whose `listen` channels and `pg_notify()` calls are namespaced by the schema.
   */
  database(schema: string): Database;
  /** Closes every view and the embedded instance; idempotent. */
  close(): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Statements that would move a view out of its schema for everyone after it; views refuse them. */
const CHANGES_SEARCH_PATH =
  /\bset\s+(?:session\s+|local\s+)?search_path\b|\bset_config\s*\(\s*'search_path'|\breset\s+(?:all|search_path)\b|\bdiscard\s+all\b/i;
const MAX_CHANNEL_BYTES = 63;
const INT8 = 20;

/**
 * Starts one embedded Postgres (PGlite, WebAssembly) that several services share, each through a schema-confined
 * {@linkcode Database} view. Starting costs about 2–3 s and 500 MB, hence one instance per process.
 *
 * How the views stay apart on PGlite's single connection:
 * - every statement of every view runs under one queue, so a transaction of one view never interleaves with another
 *   view's statements (all transactions of all views are serialized: do not hold a transaction across a call to
 *   another service sharing the instance, and use the `tx` handle, not the database, inside `transaction()`;
 *   doing otherwise within the same async context throws instead of deadlocking);
 * - before a view's work runs, the session `search_path` is switched to `"<schema>", pg_catalog` when it is not
 *   already (outside any transaction, so a rollback cannot undo it); statements that would change `search_path`
 *   themselves are refused;
 * - `listen(channel)` subscribes to the global channel `<schema>:<channel>`, and each schema gets a `pg_notify(text,
 *   text)` function that shadows the built-in and prefixes the channel, so `select pg_notify('orders', $1)` works
 *   unchanged in both adapters (the `NOTIFY` command is not rewritten: use `pg_notify()`).
 *
 * Deadlines: queries and transactions run under the current request context's signal (or `options.signal`) like on
 * Postgres, but PGlite cannot interrupt a statement running inside WebAssembly: the signal is checked before each
 * statement (and while waiting for the shared connection), so an abort rejects the call at once and stops the work at
 * the next statement; a transaction whose signal aborted then rolls back.
 *
 * Types: int8 comes back as a string, numeric as a string, timestamptz as a `Date`, bytea as a `Uint8Array`,
 * json/jsonb parsed. A query without parameters runs through the simple protocol and may hold several statements;
 * the rows of the last one are returned.
 *
 * @example Two services, one embedded Postgres
 * ```ts
 * import { createPglite } from "./pglite.ts";
 * await using pglite = await createPglite();
 * const orders = pglite.database("orders");
 * const inventory = pglite.database("inventory");
 * await orders.query("create table items (id int)");
 * await inventory.query("create table items (sku text)"); // no collision
 * ```
 */
export async function createPglite(options: PgliteOptions = {}): Promise<SharedPglite> {
  const pg = new PGlite({ dataDir: options.dataDir, parsers: { [INT8]: (value: string) => value } });
  await pg.waitReady;

  const queue = new Queue();
  const inTransaction = new AsyncLocalStorage<true>();
  const listeners = new Map<string, Set<(payload: string) => void>>();
  const preparedSchemas = new Set<string>();
  const views = new Set<Database>();
  let searchPath = "";
  let closed = false;

  pg.onNotification((channel, payload) => {
    for (const callback of listeners.get(channel) ?? []) queueMicrotask(() => callback(payload));
  });

  function assertOpen(what: string): void {
    if (closed) throw new Error(`Cannot ${what}: the shared PGlite is closed`);
  }

  /** Runs `fn` alone on the connection with the session confined to `schema`. */
  function confined<T>(schema: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (inTransaction.getStore()) {
      return Promise.reject(
        new Error(
          "Cannot use a PGlite database while a transaction on the same shared PGlite runs in this async context: use the tx handle",
        ),
      );
    }
    return queue.run(async () => {
      assertOpen("run a query");
      if (!preparedSchemas.has(schema)) {
        const quoted = quoteIdent(schema);
        await pg.exec(
          `create schema if not exists ${quoted};
           create or replace function ${quoted}.pg_notify(channel text, payload text) returns void language sql
             as $$ select pg_catalog.pg_notify(${quoteLiteral(`${schema}:`)} || channel, payload) $$;`,
        );
        preparedSchemas.add(schema);
      }
      if (searchPath !== schema) {
        await pg.exec(`set search_path to ${quoteIdent(schema)}, pg_catalog`);
        searchPath = schema;
      }
      return await fn();
    }, signal);
  }

  function database(schema: string): Database {
    if (!SCHEMA_NAME.test(schema)) {
      throw new TypeError(
        `Cannot create a PGlite database view as schema must match ${SCHEMA_NAME}: current value is ${
          JSON.stringify(schema)
        }`,
      );
    }
    assertOpen("create a database view");
    const subscriptions = new Set<() => Promise<void>>();
    let viewClosed = false;
    const assertViewOpen = (what: string) => {
      if (viewClosed) throw new Error(`Cannot ${what}: the database view for schema "${schema}" is closed`);
    };

    const view: Database = {
      async query<T extends Row = Row>(
        text: string,
        params?: readonly unknown[],
        options?: QueryOptions,
      ): Promise<T[]> {
        assertViewOpen("run a query");
        assertConfined(text);
        const signal = options?.signal ?? currentContext()?.signal;
        signal?.throwIfAborted();
        return await confined(schema, () => {
          signal?.throwIfAborted();
          return runQuery<T>(pg, text, params);
        }, signal);
      },

      async transaction<T>(fn: (tx: Tx) => Promise<T>, options?: QueryOptions): Promise<T> {
        assertViewOpen("start a transaction");
        const txSignal = options?.signal ?? currentContext()?.signal;
        txSignal?.throwIfAborted();
        return await confined(schema, () =>
          pg.transaction(async (raw) => {
            let done = false;
            const savepoints = new Savepoints(async (text, params, options) => {
              if (done) throw new Error("Cannot run a query: the transaction has ended");
              assertConfined(text);
              // PGlite runs a statement to its end inside WebAssembly; a deadline stops the next statement only.
              (options?.signal ?? txSignal)?.throwIfAborted();
              return await runQuery(raw, text, params);
            });
            const tx: Tx = {
              async query<R extends Row = Row>(
                text: string,
                params?: readonly unknown[],
                options?: QueryOptions,
              ): Promise<R[]> {
                if (done) throw new Error("Cannot run a query: the transaction has ended");
                savepoints.check(tx, "run a query");
                return await savepoints.run(text, params, options) as R[];
              },
              async savepoint<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
                if (done) throw new Error("Cannot open a savepoint: the transaction has ended");
                return await savepoints.open(tx, fn);
              },
            };
            try {
              txSignal?.throwIfAborted();
              const value = await inTransaction.run(true, () => fn(tx));
              savepoints.checkCommit();
              return value;
            } finally {
              done = true;
            }
          }), txSignal);
      },

      async listen(
        channel: string,
        onNotify: (payload: string) => void,
        onListen?: () => void,
      ): Promise<() => Promise<void>> {
        assertViewOpen("listen");
        const global = `${schema}:${channel}`;
        if (new TextEncoder().encode(global).length > MAX_CHANNEL_BYTES) {
          throw new RangeError(
            `Cannot listen as "<schema>:<channel>" must fit in ${MAX_CHANNEL_BYTES} bytes: current value is "${global}"`,
          );
        }
        await confined(schema, async () => {
          let callbacks = listeners.get(global);
          if (!callbacks) {
            await pg.exec(`listen ${quoteIdent(global)}`);
            callbacks = new Set();
            listeners.set(global, callbacks);
          }
          callbacks.add(onNotify);
        });
        // The embedded instance never loses its connection, so the subscription is established exactly once.
        try {
          onListen?.();
        } catch {
          // Documented on Database.listen: an exception from onListen is ignored.
        }
        let subscribed = true;
        const unlisten = async () => {
          if (!subscribed) return;
          subscribed = false;
          subscriptions.delete(unlisten);
          if (closed) return;
          await confined(schema, async () => {
            const callbacks = listeners.get(global);
            callbacks?.delete(onNotify);
            if (callbacks?.size === 0) {
              listeners.delete(global);
              await pg.exec(`unlisten ${quoteIdent(global)}`);
            }
          });
        };
        subscriptions.add(unlisten);
        return unlisten;
      },

      async ping(signal?: AbortSignal): Promise<void> {
        assertViewOpen("ping");
        signal?.throwIfAborted();
        await confined(schema, () => pg.exec("select 1"), signal);
      },

      async close(): Promise<void> {
        if (viewClosed) return;
        viewClosed = true;
        views.delete(view);
        await Promise.all([...subscriptions].map((unlisten) => unlisten()));
      },
    };
    views.add(view);
    return view;
  }

  async function close(): Promise<void> {
    if (closed) return;
    await Promise.all([...views].map((view) => view.close()));
    await queue.run(async () => {
      closed = true;
      listeners.clear();
      await pg.close();
    });
  }

  return { database, close, [Symbol.asyncDispose]: close };
}

interface RawQueryable {
  query<T>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(text: string): Promise<Array<{ rows: unknown[] }>>;
}

/** Parameterless text goes through the simple protocol, like `postgres` does, so it may hold several statements. */
function runQuery<T>(pg: RawQueryable, text: string, params?: readonly unknown[]): Promise<T[]> {
  return querySpan("pglite", text, () => runQueryNow<T>(pg, text, params));
}

async function runQueryNow<T>(pg: RawQueryable, text: string, params?: readonly unknown[]): Promise<T[]> {
  if (params === undefined || params.length === 0) {
    const results = await pg.exec(text);
    return (results.at(-1)?.rows ?? []) as T[];
  }
  return (await pg.query<T>(text, [...params])).rows;
}

function assertConfined(text: string): void {
  if (CHANGES_SEARCH_PATH.test(text)) {
    throw new TypeError(
      `Cannot run a statement that changes search_path on a schema-confined PGlite database: current value is ${
        JSON.stringify(text.slice(0, 80))
      }`,
    );
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A FIFO of async jobs run one at a time; a job whose signal aborts before it starts is dropped. */
class Queue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const job = this.#tail.then(() => {
      signal?.throwIfAborted();
      return fn();
    });
    this.#tail = job.catch(() => {});
    if (!signal) return job;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      job.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }
}
