import postgres from "postgres";
import { currentContext } from "../context/mod.ts";
import { querySpan, tracingEnabled } from "../telemetry/mod.ts";
import type { Database, PoolStats, QueryOptions, Row, Tx } from "./db.ts";
import { DatabaseUnavailableError, isConnectionError } from "./errors.ts";
import { ConnectionSlots } from "./connection_slots.ts";
import { FailFast } from "./fail_fast.ts";
import { Savepoints } from "./savepoint.ts";

/**
 * Options for {@linkcode connectPostgres}.
 *
 * @example A small pool that names itself
 * ```ts
 * import { connectPostgres, type PostgresOptions } from "./postgres.ts";
 * const options: PostgresOptions = { max: 4, applicationName: "orders", connectTimeout: 2_000 };
 * const open = (url: string) => connectPostgres(url, options);
 * ```
 */
export interface PostgresOptions {
  /**
   * Largest number of pooled connections (a `listen` uses one more, dedicated connection).
   * @default {10}
   */
  max?: number;
  /**
   * Milliseconds to wait for a connection to be established.
   * @default {10_000}
   */
  connectTimeout?: number;
  /**
   * `application_name` reported to the server (visible in `pg_stat_activity`).
   * @default {"trellis"}
   */
  applicationName?: string;
  /**
   * Once connecting to the server failed, how long queries and transactions reject at once with a
   * `DatabaseUnavailableError` instead of each waiting for a connect attempt; then one call probes the server again.
   * `ping()` always tries. 0 turns failing fast off.
   * @default {1_000}
   */
  failFastMs?: number;
  /**
   * Idle time after which TCP keepalive probes a pooled connection. Short, because a connection whose peer vanished
   * or whose answer was lost in a network partition otherwise waits for its first probe with every statement queued
   * behind it: the chaos suite's partition between orders and Postgres left all ten connections silent until the
   * driver's default probe at 60 s (orders all terminal 59-61 s after the partition healed); with 5 s, 12.5 s.
   * @default {5_000}
   */
  keepAliveMs?: number;
  /**
   * How long a statement may stay unanswered after its caller's deadline passed and a CancelRequest was sent before
   * its connection is presumed dead. The driver cannot drop one connection, so the adapter then replaces its whole
   * pool: calls go to fresh connections, the old ones are destroyed (rejecting what still waits on them), and `listen`
   * subscriptions LISTEN again on the new pool and call their `onListen`. A cancelled statement is normally answered
   * within a round trip; one that is not sits on a connection whose peer vanished or whose answers are lost (a
   * partition healed after a middlebox dropped the connection), and without this every later call would queue behind
   * it until the kernel's keepalive gives up, minutes later with default settings.
   * @default {5_000}
   */
  cancelGraceMs?: number;
}

type Sql = postgres.Sql<Record<string, never>>;
type TxSql = postgres.TransactionSql<Record<string, never>>;
// deno-lint-ignore no-explicit-any
type Pending = postgres.PendingQuery<any>;

/**
 * Connects a {@linkcode Database} to a real Postgres through the `postgres` driver. Connections open lazily, so call
 * `ping()` to find out whether the server answers.
 *
 * Types: int8 and numeric come back as strings, timestamptz/timestamp/date as `Date`, bytea as a `Buffer` (a
 * `Uint8Array`), json/jsonb parsed. A query without parameters runs through the simple protocol and may hold several
 * statements; the rows of the last one are returned. Server notices are dropped.
 *
 * Failures: a server that cannot be reached, or a connection that breaks, rejects calls with a
 * {@linkcode DatabaseUnavailableError}; once a connect failed, calls fail fast for `failFastMs`. The pool reconnects by
 * itself (within about a second of the server coming back), and `listen` subscriptions LISTEN again and call their
 * `onListen`. A call whose signal (or request context) aborts rejects at once with the abort reason, and its running
 * statement is cancelled in the server; a call still waiting for a connection (at most `max` calls hold one; the
 * others wait in the adapter, not in the driver) leaves the queue and never runs.
 *
 * @example Connect, query, close
 * ```ts ignore
 * import { connectPostgres } from "./postgres.ts";
 * const db = connectPostgres("postgres://postgres@127.0.0.1:5432/orders", { max: 5 });
 * const [row] = await db.query<{ n: string }>("select count(*) as n from pg_class where relkind = $1", ["r"]);
 * await db.close();
 * ```
 */
export function connectPostgres(url: string, options: PostgresOptions = {}): Database {
  const {
    max = 10,
    connectTimeout = 10_000,
    applicationName = "trellis",
    failFastMs = 1_000,
    keepAliveMs = 5_000,
    cancelGraceMs = 5_000,
  } = options;
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`Cannot connect to Postgres as max must be a positive integer: current value is ${max}`);
  }
  if (!(connectTimeout > 0)) {
    throw new RangeError(
      `Cannot connect to Postgres as connectTimeout must be positive: current value is ${connectTimeout}`,
    );
  }
  if (!(failFastMs >= 0) || !Number.isFinite(failFastMs)) {
    throw new RangeError(
      `Cannot connect to Postgres as failFastMs must be a finite number >= 0: current value is ${failFastMs}`,
    );
  }
  if (!(keepAliveMs >= 1_000) || !Number.isFinite(keepAliveMs)) {
    throw new RangeError(
      `Cannot connect to Postgres as keepAliveMs must be a finite number >= 1000: current value is ${keepAliveMs}`,
    );
  }
  if (!(cancelGraceMs > 0) || !Number.isFinite(cancelGraceMs)) {
    throw new RangeError(
      `Cannot connect to Postgres as cancelGraceMs must be a finite number > 0: current value is ${cancelGraceMs}`,
    );
  }
  return new PostgresDatabase(url, { max, connectTimeout, applicationName, failFastMs, keepAliveMs, cancelGraceMs });
}

class PostgresDatabase implements Database {
  /** The current pool; replaced by {@linkcode PostgresDatabase.recycle} when a connection turned silent. */
  sql: Sql;
  /** How often the pool was replaced (see `cancelGraceMs`). */
  recycles = 0;
  readonly failFast: FailFast;
  /**
   * Bumped synchronously by the driver whenever one of its pool connections closes, before any promise reaction of
   * that close runs; a transaction that sees it move waits one macrotask before touching its connection again (see
   * {@linkcode PostgresTransaction}).
   */
  closures = 0;
  /** When a pool connection last closed (`performance.now()`), so close() can outwait the driver's reconnect timer. */
  #lastClosureAt = Number.NEGATIVE_INFINITY;
  readonly #channels = new Map<string, Channel>();
  /**
   * One per pooled connection: a pool query or a transaction holds one while the driver runs it, so the driver
   * neither queues nor pipelines (a queued statement could not be taken back, see `cancel()`).
   */
  readonly slots: ConnectionSlots;
  readonly #release = () => this.slots.release();
  /** CancelRequests under way, awaited by close() so none outlives the database. */
  readonly #cancels = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  readonly #connect: () => Sql;
  readonly #cancelGraceMs: number;
  /** Pools replaced by `recycle()`, ending; awaited by close(). */
  readonly #retired = new Set<Promise<unknown>>();
  /** Timers of cancelled statements not answered yet, by statement. */
  readonly #silent = new Map<Pending, ReturnType<typeof setTimeout>>();
  /** Pending retries of a LISTEN on a replaced pool. */
  readonly #retries = new Set<ReturnType<typeof setTimeout>>();

  constructor(url: string, options: Required<PostgresOptions>) {
    this.failFast = new FailFast(options.failFastMs);
    this.slots = new ConnectionSlots(options.max);
    this.#cancelGraceMs = options.cancelGraceMs;
    this.#connect = () =>
      postgres(url, {
        max: options.max,
        connect_timeout: options.connectTimeout / 1000,
        connection: { application_name: options.applicationName },
        onnotice: () => {},
        onclose: () => {
          this.closures++;
          this.#lastClosureAt = performance.now();
        },
        backoff: reconnectDelaySeconds,
        keep_alive: options.keepAliveMs / 1000,
      });
    this.sql = this.#connect();
  }

  query<T extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<T[]> {
    if (tracingEnabled) return querySpan("postgresql", text, () => this.#query<T>(text, params, options));
    return this.#query<T>(text, params, options);
  }

  #query<T extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<T[]> {
    const signal = options?.signal ?? currentContext()?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.failFast.tryAcquire()) return Promise.reject(this.failFast.error());
    const run = () => {
      // The signal may have aborted between the slot being handed over and this continuation.
      if (signal?.aborted) {
        this.slots.release();
        return Promise.reject(signal.reason);
      }
      const pending = this.sql.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[]);
      // The slot is the connection: it is free once the driver is done with the statement, not when the caller
      // stopped waiting for it.
      pending.then(this.#release, this.#release);
      return this.settle<unknown>(pending, signal).then(lastRows<T>);
    };
    if (this.slots.tryAcquire()) return run();
    return this.slots.acquire(signal).then(run);
  }

  pool(): PoolStats {
    return { max: this.slots.max, inUse: this.slots.inUse, waiting: this.slots.waiting };
  }

  async transaction<T>(fn: (tx: Tx) => Promise<T>, options?: QueryOptions): Promise<T> {
    const signal = options?.signal ?? currentContext()?.signal;
    signal?.throwIfAborted();
    if (!this.failFast.tryAcquire()) throw this.failFast.error();
    if (!this.slots.tryAcquire()) {
      await this.slots.acquire(signal);
      if (signal?.aborted) {
        this.slots.release();
        throw signal.reason;
      }
    }
    const tx = new PostgresTransaction(this, signal);
    const outcome = this.sql.begin((txSql) => tx.run(txSql, fn)).then((value) => {
      this.slots.release();
      this.failFast.succeeded();
      return value as T;
    }, (error) => {
      this.slots.release();
      tx.ended();
      throw this.failed(error);
    });
    if (!signal) return await outcome;
    return await new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason);
        tx.abort();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      outcome.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  async listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>> {
    const channels = this.#channels;
    let entry = channels.get(channel);
    if (!entry) {
      entry = subscribeChannel(this.sql, channels, channel);
      channels.set(channel, entry);
    }
    try {
      await entry.ready;
    } catch (error) {
      if (channels.get(channel) === entry && entry.subscribers.size === 0) channels.delete(channel);
      throw this.failed(error);
    }
    const subscriber: Subscriber = { onNotify, onListen };
    entry.subscribers.add(subscriber);
    callQuietly(onListen);
    const subscribed = entry;
    return async () => {
      if (!subscribed.subscribers.delete(subscriber)) return;
      // After a recycle the channel's entry is a new one sharing the same subscriber set.
      const current = channels.get(channel);
      if (subscribed.subscribers.size > 0 || current?.subscribers !== subscribed.subscribers) return;
      channels.delete(channel);
      await current.unlisten?.();
    };
  }

  async ping(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    await this.settle(this.sql.unsafe("select 1"), signal);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const timer of [...this.#silent.values(), ...this.#retries]) clearTimeout(timer);
      this.#silent.clear();
      this.#retries.clear();
      // After an outage the driver may hold a reconnect (at most reconnectDelaySeconds' 1 s away) on a timer it keeps
      // to itself and end() does not clear; it fires once and finds the pool ended. When a pool connection closed in
      // the last 10 s (not counting the closes end() itself causes), outwait that timer, so a database closed soon
      // after an outage leaves none behind. A database that saw no outage closes at once.
      const recentOutage = performance.now() - this.#lastClosureAt < 10_000;
      await this.sql.end({ timeout: 5 });
      await Promise.all([...this.#cancels, ...this.#retired]);
      if (recentOutage) await new Promise((resolve) => setTimeout(resolve, 1_050));
    })();
    return this.#closing;
  }

  /**
   * Waits for `pending` or for `signal`, whichever comes first, recording the outcome in `failFast`. On abort it
   * rejects at once with the reason (a hung server would otherwise hold the caller until the TCP keepalive gives up)
   * and cancels the statement in the server.
   */
  settle<R>(pending: Pending, signal: AbortSignal | undefined, onError?: (error: unknown) => void): Promise<R> {
    if (!signal) {
      return pending.then((rows) => {
        this.failFast.succeeded();
        return rows as R;
      }, (error) => {
        onError?.(error);
        throw this.failed(error);
      });
    }
    return new Promise<R>((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason);
        this.failFast.released();
        this.cancel(pending);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      pending.then((rows) => {
        signal.removeEventListener("abort", onAbort);
        this.failFast.succeeded();
        resolve(rows as R);
      }, (error) => {
        signal.removeEventListener("abort", onAbort);
        onError?.(error);
        reject(this.failed(error));
      });
    });
  }

  /** Records a failure in `failFast` and turns a connection-class one into a {@linkcode DatabaseUnavailableError}. */
  failed(error: unknown): unknown {
    // Calls waiting for a connection would each wait for a connect attempt of their own: fail them now too.
    if (this.failFast.failed(error)) this.slots.rejectWaiting(() => this.failFast.error());
    if (error instanceof DatabaseUnavailableError || !isConnectionError(error)) return error;
    const code = (error as { code?: string }).code;
    return new DatabaseUnavailableError(`database unavailable: ${(error as Error).message}`, { cause: error, code });
  }

  /**
   * Sends a CancelRequest for `pending` when it is the statement its connection runs now. The driver's own `cancel()`
   * is not used as is, for three bugs of postgres 3.4.9: it drops the promise of the CancelRequest, whose rejection
   * (the server is down) is then unhandled and ends the process; for a query not yet on a connection it marks the
   * query cancelled without taking it out of a connection's hands, and that connection never returns to the pool; and
   * for a query pipelined behind another it skips the query when its turn comes although the server still answers
   * it, so its rows go to the next query (seen in postgres_faults_test.ts after a SIGSTOP). So a queued or pipelined
   * statement is left to run when its turn comes (its caller has its rejection already), and the driver's canceller
   * is called only for the active one, keeping its promise.
   */
  cancel(pending: Pending): void {
    const query = pending as unknown as DriverQuery;
    if (!query.active || query.state === null || typeof query.canceller !== "function") return;
    const canceller = query.canceller;
    query.canceller = null;
    // Bounded by connectTimeout: the driver gives up on the cancel connection then.
    const sent = Promise.resolve(canceller(query)).catch(() => {});
    this.#cancels.add(sent);
    sent.finally(() => this.#cancels.delete(sent));
    if (this.#closing || this.#silent.has(pending)) return;
    const pool = this.sql;
    const timer = setTimeout(() => {
      this.#silent.delete(pending);
      // Only the pool the statement ran on is suspect; it may have been replaced meanwhile.
      if (this.sql === pool) this.recycle();
    }, this.#cancelGraceMs);
    Deno.unrefTimer(timer);
    this.#silent.set(pending, timer);
    const answered = () => {
      clearTimeout(timer);
      this.#silent.delete(pending);
    };
    pending.then(answered, answered);
  }

  /**
   * Replaces the pool after a cancelled statement stayed unanswered (see `cancelGraceMs`): new calls get fresh
   * connections, the old pool's connections are destroyed (what still waits on them rejects, freeing its slot), and
   * every `listen` channel subscribes again on the new pool, calling `onListen` once it is established so a relay can
   * sweep for what it missed.
   */
  recycle(): void {
    if (this.#closing) return;
    const old = this.sql;
    this.sql = this.#connect();
    this.recycles++;
    const ended = old.end({ timeout: 0 }).catch(() => {});
    this.#retired.add(ended);
    ended.finally(() => this.#retired.delete(ended));
    for (const [channel, entry] of this.#channels) this.#resubscribe(channel, entry);
  }

  /** Moves the subscribers of `entry` to a subscription on the current pool, retrying every second until it holds. */
  #resubscribe(channel: string, entry: Channel): void {
    const fresh = subscribeChannel(this.sql, this.#channels, channel);
    fresh.subscribers = entry.subscribers;
    this.#channels.set(channel, fresh);
    fresh.ready.then(() => {
      for (const subscriber of fresh.subscribers) callQuietly(subscriber.onListen);
    }, () => {
      if (this.#closing || this.#channels.get(channel) !== fresh || fresh.subscribers.size === 0) return;
      const timer = setTimeout(() => {
        this.#retries.delete(timer);
        if (!this.#closing && this.#channels.get(channel) === fresh) this.#resubscribe(channel, fresh);
      }, 1_000);
      Deno.unrefTimer(timer);
      this.#retries.add(timer);
    });
  }
}

/** The driver's query object beyond its typings: what {@linkcode PostgresDatabase.cancel} needs. */
interface DriverQuery {
  /** The connection's backend key once the query was handed to a connection, else null. */
  state: unknown;
  /** Whether it is the statement the connection is running now. */
  active: boolean;
  canceller: ((query: DriverQuery) => Promise<void>) | null;
}

/**
 * A promise that never settles: what a transaction callback returns to the driver once the connection is gone (see
 * below). A fresh one each time: a shared one would keep every reaction the driver attaches to it, and with them the
 * lost transactions' closures, reachable forever.
 */
function never(): Promise<never> {
  return new Promise<never>(() => {});
}

/**
 * A transaction's handle and the guard against the driver's crash on a lost connection.
 *
 * The crash (postgres 3.4.9, upstream issues #1066, #1154, #1208): `sql.begin()` rejects as soon as its connection
 * closes, but the callback keeps running, and every statement issued for it afterwards goes to that connection, now
 * without a socket: `execute()` buffers the bytes and `setImmediate(nextWrite)` calls `socket.write` on `null`, an
 * uncaught TypeError ("Cannot read properties of null (reading 'write')") in connection.js that ends the process.
 * Such statements come from the callback (its next `tx.query`) and from the driver itself: it sends `rollback` when
 * the callback rejects (or a swallowed statement failed) and `commit` when it resolves. Reproduced by
 * postgres_faults_test.ts: SIGKILL under a load of transactions that pause between statements kills the process
 * through the bare driver (11 runs of 11, usually at the first kill), and killed this adapter too with the checks on
 * `#lost` below removed (2 runs of 2); with them it survived every run (3 kills each).
 *
 * The guard, here rather than a patched or swapped driver: once the connection is known lost (a statement failed
 * with a connection error, or `begin()` rejected), `tx.query` rejects without touching the driver, and the callback
 * handed to the driver never settles, so the driver never sends its rollback or commit (the pending callback is
 * garbage once unreachable; no timer or socket holds it). The connection is known lost one macrotask after its close
 * at the latest; a transaction that sees any pool connection close (`closures` moved) waits that macrotask before
 * sending anything else.
 */
class PostgresTransaction implements Tx {
  readonly #db: PostgresDatabase;
  readonly #signal: AbortSignal | undefined;
  readonly #inFlight = new Set<Pending>();
  readonly #savepoints = new Savepoints(
    (text, params, options) => this.#run(text, params, options),
    (name, body) => this.#nest(name, body),
  );
  /** The driver's handle of the transaction, then one per open savepoint: statements go to the innermost. */
  readonly #scopes: TxSql[] = [];
  #epoch: number;
  #done = false;
  #lost = false;

  constructor(db: PostgresDatabase, signal: AbortSignal | undefined) {
    this.#db = db;
    this.#signal = signal;
    this.#epoch = db.closures;
  }

  /** The callback given to `sql.begin()`. */
  run<T>(txSql: TxSql, fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.#scopes.push(txSql);
    this.#epoch = this.#db.closures;
    // begin() may have waited for a connection past the caller's deadline: roll back without running fn.
    if (this.#signal?.aborted) return Promise.reject(this.#signal.reason);
    let result: Promise<T>;
    try {
      result = Promise.resolve(fn(this));
    } catch (error) {
      result = Promise.reject(error);
    }
    return result.then(async (value) => {
      this.#done = true;
      await this.#settled();
      if (this.#lost) return never();
      this.#savepoints.checkCommit();
      return value;
    }, async (error) => {
      this.#done = true;
      await this.#settled();
      if (this.#lost) return never();
      throw error;
    });
  }

  query<R extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> {
    if (this.#done) return Promise.reject(new Error("Cannot run a query: the transaction has ended"));
    try {
      this.#savepoints.check(this, "run a query");
    } catch (error) {
      return Promise.reject(error);
    }
    if (tracingEnabled) return querySpan("postgresql", text, () => this.#run<R>(text, params, options));
    return this.#run<R>(text, params, options);
  }

  async savepoint<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.#done) throw new Error("Cannot open a savepoint: the transaction has ended");
    return await this.#savepoints.open(this, fn);
  }

  #run<R extends Row = Row>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]> {
    if (this.#done) return Promise.reject(new Error("Cannot run a query: the transaction has ended"));
    if (this.#lost) return Promise.reject(lostConnection());
    const signal = options?.signal ?? this.#signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#db.closures !== this.#epoch) {
      return this.#settled().then(() => this.#run<R>(text, params, options));
    }
    const pending = this.#scopes.at(-1)!.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[]);
    this.#inFlight.add(pending);
    return this.#db.settle<R[]>(pending, signal, (error) => {
      if (isConnectionError(error)) this.#lost = true;
    }).then((rows) => {
      this.#inFlight.delete(pending);
      return lastRows<R>(rows);
    }, (error) => {
      this.#inFlight.delete(pending);
      throw error;
    });
  }

  /**
   * Opens a savepoint through the driver's `savepoint()`, not with statements of our own: the driver fails a
   * transaction scope in which any statement failed, even one the callback caught, so the statements of a savepoint
   * must run in the driver's scope of that savepoint. The driver sends `SAVEPOINT` itself and `ROLLBACK TO` when the
   * callback throws, so the crash guard applies as for `begin()`: nothing is handed to the driver once the connection
   * is known lost, and the callback never settles then.
   */
  async #nest<T>(name: string, body: () => Promise<T>): Promise<T> {
    if (this.#lost) throw lostConnection();
    this.#signal?.throwIfAborted();
    await this.#settled();
    if (this.#lost) throw lostConnection();
    const parent = this.#scopes.at(-1)!;
    // Once the connection is lost the driver's savepoint promise never settles (its callback is left pending, see the
    // class), so the caller learns it from this one.
    const { promise: lost, reject: abandon } = Promise.withResolvers<never>();
    const driven = parent.savepoint(name, (scope) => {
      this.#scopes.push(scope);
      const left = async () => {
        this.#scopes.splice(this.#scopes.indexOf(scope));
        await this.#settled();
      };
      return body().then(async (value) => {
        await left();
        if (!this.#lost) return value;
        abandon(lostConnection());
        return never();
      }, async (error) => {
        await left();
        if (!this.#lost) throw error;
        abandon(error instanceof DatabaseUnavailableError ? error : lostConnection());
        return never();
      });
    }) as Promise<T>;
    try {
      return await Promise.race([driven, lost]);
    } catch (error) {
      if (isConnectionError(error)) this.#lost = true;
      throw this.#db.failed(error);
    }
  }

  /** The transaction's signal aborted: cancel its statements (the callback then fails and the driver rolls back). */
  abort(): void {
    for (const pending of this.#inFlight) this.#db.cancel(pending);
  }

  /** `begin()` rejected: the transaction is over, whatever the callback still does. */
  ended(): void {
    this.#lost = true;
  }

  /** Waits, when a pool connection closed since last looked, for the driver to have reported it (see the class). */
  async #settled(): Promise<void> {
    if (this.#db.closures === this.#epoch) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#epoch = this.#db.closures;
  }
}

function lostConnection(): DatabaseUnavailableError {
  return new DatabaseUnavailableError("database unavailable: the connection of this transaction was lost");
}

/**
 * Creates the database named in `url` when it does not exist yet, connecting to the `postgres` maintenance database of
 * the same server. Safe to race with another creator. Resolves `true` when this call created it.
 *
 * @example Make sure a service's database exists before connecting
 * ```ts ignore
 * import { connectPostgres, ensureDatabase } from "./postgres.ts";
 * const url = "postgres://postgres@127.0.0.1:5432/orders";
 * await ensureDatabase(url);
 * const db = connectPostgres(url);
 * ```
 */
export async function ensureDatabase(url: string): Promise<boolean> {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (name === "") {
    throw new TypeError(`Cannot ensure a database as the URL names none: current value is ${redact(parsed)}`);
  }
  parsed.pathname = "/postgres";
  const sql = postgres(parsed.href, { max: 1, onnotice: () => {} });
  try {
    const existing = await sql.unsafe("select 1 from pg_database where datname = $1", [name]);
    if (existing.length > 0) return false;
    try {
      await sql.unsafe(`create database "${name.replaceAll('"', '""')}"`);
      return true;
    } catch (error) {
      // 42P04 duplicate_database; 23505 when the concurrent creator wins the race inside the catalog index.
      const code = (error as { code?: string }).code;
      if (code === "42P04" || code === "23505") return false;
      throw error;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Seconds before a pool connection retries after a failed connect. The driver's default grows to 10-20 s after a few
 * failures, so a listener (which reconnects on its own) and the pool came back up to 20 s after the server did; this
 * caps it at 1 s.
 */
function reconnectDelaySeconds(attempt: number): number {
  return Math.min(0.05 * 2 ** attempt, 1);
}

interface Subscriber {
  onNotify: (payload: string) => void;
  onListen: (() => void) | undefined;
}

/** One driver-level LISTEN per channel, shared by every subscriber of this database to it. */
interface Channel {
  subscribers: Set<Subscriber>;
  ready: Promise<void>;
  unlisten?: () => Promise<unknown>;
}

/**
 * LISTENs on `channel` through the driver's dedicated connection, which LISTENs again after each reconnect and then
 * calls its `onlisten` again. The driver forgets its own unlisten handle across a reconnect (it re-registers a new
 * listener object, so the old `unlisten()` finds nothing to remove), hence a stale registration must stay inert: the
 * callbacks deliver only while this `Channel` is still the current one for its name.
 */
function subscribeChannel(sql: Sql, channels: Map<string, Channel>, channel: string): Channel {
  let established = false;
  const entry: Channel = { subscribers: new Set(), ready: Promise.resolve() };
  const current = () => channels.get(channel) === entry;
  entry.ready = sql.listen(
    channel,
    (payload) => {
      if (current()) { for (const subscriber of entry.subscribers) subscriber.onNotify(payload); }
    },
    () => {
      // The first LISTEN is reported by listen() itself, to each subscriber as it joins.
      if (!established || !current()) return;
      for (const subscriber of entry.subscribers) callQuietly(subscriber.onListen);
    },
  ).then(({ unlisten }) => {
    established = true;
    entry.unlisten = unlisten;
  });
  return entry;
}

function callQuietly(fn: (() => void) | undefined): void {
  if (!fn) return;
  try {
    fn();
  } catch {
    // Documented on Database.listen: an exception from onListen is ignored, it must not break the reconnect.
  }
}

/** The rows of the last statement: a parameterless query may hold several. */
function lastRows<T>(result: unknown): T[] {
  const rows = result as readonly unknown[];
  const last = isMultiStatement(rows) ? rows.at(-1) ?? [] : rows;
  return [...last] as T[];
}

/** The simple protocol with several statements yields one result per statement. */
function isMultiStatement(result: readonly unknown[]): result is unknown[][] {
  return result.length > 0 && Array.isArray(result[0]) && "command" in result[0];
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = "***";
  return copy.href;
}
