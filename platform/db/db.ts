/**
 * A row as returned by a query: column name to value.
 *
 * @example Type the rows of a query
 * ```ts
 * import type { Database, Row } from "./db.ts";
 * interface OrderRow extends Row {
 *   id: string;
 *   total_cents: string; // int8 arrives as a string
 * }
 * const ids = async (db: Database) => (await db.query<OrderRow>("select id, total_cents from orders")).map((r) => r.id);
 * ```
 */
export type Row = Record<string, unknown>;

/**
 * Options of one call: {@linkcode Queryable.query} or {@linkcode Database.transaction}.
 *
 * @example Bound one query by its own deadline
 * ```ts ignore
 * await db.query("select pg_sleep(1)", [], { signal: AbortSignal.timeout(300) });
 * ```
 */
export interface QueryOptions {
  /**
   * Aborts the call: it rejects with the signal's reason at once, and the running statement is cancelled in the
   * server where the adapter can (Postgres sends a CancelRequest). Without one, the current request context's signal
   * (`currentContext()?.signal`) bounds the call.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * A connection pool's occupancy, as {@linkcode Database.pool} reports it.
 *
 * @example A pool at its limit with two calls queued
 * ```ts
 * import type { PoolStats } from "./db.ts";
 * const full: PoolStats = { max: 10, inUse: 10, waiting: 2 };
 * ```
 */
export interface PoolStats {
  /** Connections the pool may hold. */
  max: number;
  /** Connections a query or transaction holds now. */
  inUse: number;
  /** Calls waiting for a connection. */
  waiting: number;
}

/**
 * What both a database and a transaction can do.
 *
 * @example Code that runs on a database or inside a transaction
 * ```ts
 * import type { Queryable } from "./db.ts";
 * async function reserve(q: Queryable, sku: string): Promise<boolean> {
 *   const sql = "update stock set held = held + 1 where sku = $1 and held < on_hand returning sku";
 *   const rows = await q.query(sql, [sku]);
 *   return rows.length === 1;
 * }
 * ```
 */
export interface Queryable {
  /**
   * Runs one statement with positional parameters (`$1`, `$2`, ...) and returns its rows.
   * `bigint`/`int8` columns come back as strings in every adapter; cast in SQL when you need a number. `json`/`jsonb`
   * columns come back parsed (objects, arrays, numbers...) in every adapter, so callers never `JSON.parse` them.
   *
   * Runs under the deadline of the current request context (or `options.signal`): when it aborts, the call rejects
   * with its reason (the context's deadline error, which the HTTP layer answers with 504). Rejects with a
   * `DatabaseUnavailableError` when the database cannot be reached, at once while it is known to be down.
   */
  query<T extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<T[]>;
}

/**
 * A transaction handle; only valid inside the `transaction()` callback (or, for a savepoint's handle, inside the
 * `savepoint()` callback): used after it, every call rejects with "Cannot ...: the transaction has ended" (or "savepoint
 * sp_n has ended").
 *
 * @example Two statements that commit together
 * ```ts
 * import type { Database, Tx } from "./db.ts";
 * const place = (db: Database, id: string) =>
 *   db.transaction(async (tx: Tx) => {
 *     await tx.query("insert into orders (id) values ($1)", [id]);
 *     await tx.query("select pg_notify('orders', $1)", [id]);
 *   });
 * ```
 */
export interface Tx extends Queryable {
  /**
   * Runs `fn` in a nested transaction: `SAVEPOINT sp_n` before it, `RELEASE SAVEPOINT sp_n` when it resolves, and
   * `ROLLBACK TO SAVEPOINT sp_n` when it throws, undoing only what `fn` did before rethrowing its error; the enclosing
   * transaction goes on and decides about the rest. Nests to any depth (`fn`'s handle has `savepoint()` too). A
   * statement that failed inside `fn` rolls the savepoint back and rejects even when `fn` caught its error.
   * Released work is still undone when the enclosing transaction rolls back.
   *
   * While `fn` runs, statements go through its handle: one sent on an enclosing handle rejects (it would land inside
   * the savepoint), and savepoints nest, they do not run side by side. The handle runs under the transaction's
   * deadline. When rolling back to the savepoint fails (the connection was lost, the deadline passed), its work may
   * remain, so every later statement of the transaction rejects and it rolls back instead of committing.
   *
   * @example Try an insert, keep the transaction when it fails
   * ```ts
   * import type { Database } from "./db.ts";
   * const addTag = (db: Database, orderId: string, tag: string) =>
   *   db.transaction(async (tx) => {
   *     await tx.query("update orders set touched_at = now() where id = $1", [orderId]);
   *     try {
   *       await tx.savepoint((sp) => sp.query("insert into tags (order_id, tag) values ($1, $2)", [orderId, tag]));
   *     } catch {
   *       // A duplicate tag: only the insert is undone, the update commits.
   *     }
   *   });
   * ```
   */
  savepoint<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
}

/**
 * A database a service owns. Two adapters implement it (Postgres via `postgres`, embedded via PGlite) and both pass
 * `platform/db/testing/conformance.ts`.
 *
 * Guarantees in every adapter: `transaction(fn)` commits when `fn` resolves and rolls back when it throws (rethrowing
 * the error); `tx.savepoint(fn)` nests a transaction that rolls back alone; `notify` inside a transaction is delivered only on commit; `listen` callbacks run after the notifying
 * transaction committed; `close()` is idempotent.
 *
 * @example Wait for a notification
 * ```ts
 * import type { Database } from "./db.ts";
 * async function nextNotification(db: Database, channel: string): Promise<string> {
 *   const { promise, resolve } = Promise.withResolvers<string>();
 *   const unlisten = await db.listen(channel, resolve);
 *   try {
 *     return await promise;
 *   } finally {
 *     await unlisten();
 *   }
 * }
 * ```
 */
export interface Database extends Queryable {
  /**
   * Runs `fn` in one transaction (READ COMMITTED), under the deadline of the current request context (or
   * `options.signal`, which the `tx` handle's queries then also use): when it aborts, the call rejects with its reason,
   * the running statement is cancelled and the transaction rolls back.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: QueryOptions): Promise<T>;
  /**
   * Subscribes to `NOTIFY channel`; resolves once listening. Returns an unsubscribe function.
   *
   * `onListen` is called every time the subscription is (re)established: once before `listen()` resolves, and again
   * after each reconnect of an adapter that reconnects (Postgres). Notifications sent while the connection was down
   * are lost, so `onListen` is where a consumer sweeps for work whose NOTIFY it may have missed. It should not throw
   * (an exception from it is ignored); it is not called after unsubscribing.
   *
   * @example Sweep for rows whose NOTIFY was lost while disconnected
   * ```ts ignore
   * const unlisten = await db.listen("outbox", (id) => relay(id), () => void sweepPending());
   * ```
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>>;
  /**
   * Cheap liveness probe for readiness checks. It always tries the server, even while queries fail fast, and rejects
   * with the signal's reason when `signal` aborts first.
   */
  ping(signal?: AbortSignal): Promise<void>;
  /** Closes connections; idempotent. */
  close(): Promise<void>;
  /** The connection pool's occupancy now, where the adapter has a pool (Postgres); read by `databaseMetrics`. */
  pool?(): PoolStats;
}
