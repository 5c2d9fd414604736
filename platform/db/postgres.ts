import postgres from "postgres";
import type { Database, Row, Tx } from "./db.ts";

/** Options for {@linkcode connectPostgres}. */
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
}

type Sql = postgres.Sql<Record<string, never>>;

/**
 * Connects a {@linkcode Database} to a real Postgres through the `postgres` driver. Connections open lazily, so call
 * `ping()` to find out whether the server answers.
 *
 * Types: int8 and numeric come back as strings, timestamptz/timestamp/date as `Date`, bytea as a `Buffer` (a
 * `Uint8Array`), json/jsonb parsed. A query without parameters runs through the simple protocol and may hold several
 * statements; the rows of the last one are returned. Server notices are dropped.
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
  const { max = 10, connectTimeout = 10_000, applicationName = "trellis" } = options;
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`Cannot connect to Postgres as max must be a positive integer: current value is ${max}`);
  }
  if (!(connectTimeout > 0)) {
    throw new RangeError(
      `Cannot connect to Postgres as connectTimeout must be positive: current value is ${connectTimeout}`,
    );
  }
  const sql: Sql = postgres(url, {
    max,
    connect_timeout: connectTimeout / 1000,
    connection: { application_name: applicationName },
    onnotice: () => {},
    backoff: reconnectDelaySeconds,
  });
  const channels = new Map<string, Channel>();
  let closing: Promise<void> | undefined;

  return {
    query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]> {
      return runQuery<T>(sql, text, params);
    },

    async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return await sql.begin(async (txSql) => {
        let done = false;
        const tx: Tx = {
          query<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<R[]> {
            if (done) return Promise.reject(new Error("Cannot run a query: the transaction has ended"));
            return runQuery<R>(txSql, text, params);
          },
        };
        try {
          return await fn(tx);
        } finally {
          done = true;
        }
      }) as T;
    },

    async listen(
      channel: string,
      onNotify: (payload: string) => void,
      onListen?: () => void,
    ): Promise<() => Promise<void>> {
      let entry = channels.get(channel);
      if (!entry) {
        entry = subscribeChannel(sql, channels, channel);
        channels.set(channel, entry);
      }
      try {
        await entry.ready;
      } catch (error) {
        if (channels.get(channel) === entry && entry.subscribers.size === 0) channels.delete(channel);
        throw error;
      }
      const subscriber: Subscriber = { onNotify, onListen };
      entry.subscribers.add(subscriber);
      callQuietly(onListen);
      const subscribed = entry;
      return async () => {
        if (!subscribed.subscribers.delete(subscriber)) return;
        if (subscribed.subscribers.size > 0 || channels.get(channel) !== subscribed) return;
        channels.delete(channel);
        await subscribed.unlisten?.();
      };
    },

    async ping(signal?: AbortSignal): Promise<void> {
      signal?.throwIfAborted();
      const pending = sql.unsafe("select 1");
      const onAbort = () => pending.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        await pending;
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        throw error;
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
    },

    close(): Promise<void> {
      closing ??= sql.end({ timeout: 5 });
      return closing;
    },
  };
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

async function runQuery<T>(sql: postgres.Sql | postgres.TransactionSql, text: string, params?: readonly unknown[]) {
  const result = await sql.unsafe(text, (params ?? []) as postgres.ParameterOrJSON<never>[]);
  const last = isMultiStatement(result) ? result.at(-1) ?? [] : result;
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
