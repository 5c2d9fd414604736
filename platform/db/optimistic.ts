import { backoffDelay, delay, type RetryOptions } from "../async/mod.ts";
import { currentContext } from "../context/mod.ts";
import type { Queryable } from "./db.ts";

/**
 * A compare-and-set on a versioned row found another version than the one read (someone changed the row in between,
 * or deleted it). Thrown by {@linkcode updateVersioned} (`attempts` 1) and by {@linkcode retryOnConflict} once its
 * last attempt conflicted too (`attempts` counts them, `cause` is the last conflict).
 *
 * @example Tell a lost race from other failures
 * ```ts
 * import { VersionConflictError } from "./optimistic.ts";
 * const outcome = (error: unknown) =>
 *   error instanceof VersionConflictError ? `busy ${error.table} after ${error.attempts} attempts` : "failed";
 * console.assert(outcome(new VersionConflictError("products", { sku: "a" }, 3, 3)) === "busy products after 3 attempts");
 * ```
 */
export class VersionConflictError extends Error {
  override name = "VersionConflictError";
  /** The table of the row. */
  readonly table: string;
  /** The key columns and values of the row. */
  readonly key: Readonly<Record<string, unknown>>;
  /** The version the writer had read. */
  readonly expected: unknown;
  /** How many attempts conflicted. */
  readonly attempts: number;

  constructor(
    table: string,
    key: Readonly<Record<string, unknown>>,
    expected: unknown,
    attempts = 1,
    options?: ErrorOptions,
  ) {
    super(
      `version conflict on ${table} ${JSON.stringify(key)}: version ${String(expected)} was changed by another writer` +
        (attempts > 1 ? ` (${attempts} attempts)` : ""),
      options,
    );
    this.table = table;
    this.key = key;
    this.expected = expected;
    this.attempts = attempts;
  }
}

/**
 * One compare-and-set for {@linkcode updateVersioned}.
 *
 * @example Take two units off a product read at version 7
 * ```ts
 * import type { VersionedUpdate } from "./optimistic.ts";
 * const update: VersionedUpdate = { table: "products", key: { sku: "apple" }, version: 7, set: { stock: 8 } };
 * ```
 */
export interface VersionedUpdate {
  /** Table name, optionally schema-qualified (`inventory.products`). */
  table: string;
  /** Columns and values identifying the row (usually its primary key); all must match. */
  key: Readonly<Record<string, unknown>>;
  /** The version read before deciding on `set`. */
  version: number | string;
  /** New values by column, decided from what was read at `version`. */
  set: Readonly<Record<string, unknown>>;
  /**
   * The integer column holding the version; incremented by one by every successful update.
   * @default {"version"}
   */
  versionColumn?: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Compare-and-set on a versioned row: `update <table> set <set>, version = version + 1 where <key> and version =
 * <version>`. Resolves with the new version; rejects with a {@linkcode VersionConflictError} when no row matched (the
 * row moved past the version read, or is gone), so the caller can re-read, re-decide and retry (see
 * {@linkcode retryOnConflict}). Inside a transaction, a row another transaction updated but has not committed yet makes
 * the update wait for that one to end, then compare against the committed version.
 *
 * @example Rename a product unless someone changed it since it was read
 * ```ts
 * import type { Queryable } from "./db.ts";
 * import { updateVersioned } from "./optimistic.ts";
 * async function rename(q: Queryable, sku: string, name: string): Promise<number> {
 *   const [row] = await q.query<{ version: number }>("select version from products where sku = $1", [sku]);
 *   return await updateVersioned(q, { table: "products", key: { sku }, version: row.version, set: { name } });
 * }
 * ```
 */
export async function updateVersioned(q: Queryable, update: VersionedUpdate): Promise<number> {
  const { table, key, version, set, versionColumn = "version" } = update;
  const tableName = table.split(".").map((part) => identifier(part, "table", table)).join(".");
  const keys = Object.entries(key);
  const changes = Object.entries(set);
  if (keys.length === 0) {
    throw new TypeError(`Cannot update a versioned row as key must name a column: current value is {}`);
  }
  if (changes.length === 0) {
    throw new TypeError(`Cannot update a versioned row as set must name a column: current value is {}`);
  }
  const versionName = identifier(versionColumn, "versionColumn", versionColumn);
  if (changes.some(([column]) => column === versionColumn)) {
    throw new TypeError(
      `Cannot update a versioned row as set must leave the version column alone: current value is ${
        JSON.stringify(Object.keys(set))
      }`,
    );
  }
  const params: unknown[] = [];
  const placeholder = (value: unknown) => `$${params.push(value)}`;
  const assignments = changes.map(([column, value]) => `${identifier(column, "set", column)} = ${placeholder(value)}`);
  const conditions = keys.map(([column, value]) => `${identifier(column, "key", column)} = ${placeholder(value)}`);
  const sql = `update ${tableName} set ${assignments.join(", ")}, ${versionName} = ${versionName} + 1 where ${
    conditions.join(" and ")
  } and ${versionName} = ${placeholder(version)} returning ${versionName} as version`;
  const [row] = await q.query<{ version: number | string }>(sql, params);
  if (!row) throw new VersionConflictError(table, key, version);
  return Number(row.version);
}

/**
 * Options for {@linkcode retryOnConflict}: the platform's `RetryOptions`, plus the signal that bounds the waits.
 *
 * @example Ten attempts, waits from 5 ms up to 100 ms
 * ```ts
 * import type { ConflictRetryOptions } from "./optimistic.ts";
 * const options: ConflictRetryOptions = { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 100 };
 * ```
 */
export interface ConflictRetryOptions extends RetryOptions {
  /**
   * Attempts in total, the first included.
   * @default {5}
   */
  maxAttempts?: number;
  /**
   * Upper bound of the (fully jittered) wait before the second attempt; it doubles per attempt.
   * @default {10}
   */
  baseDelayMs?: number;
  /**
   * Upper bound of any wait.
   * @default {200}
   */
  maxDelayMs?: number;
  /**
   * Aborts a wait between attempts, rejecting with its reason. Defaults to the current request context's signal.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Runs `attempt` until it does not throw a {@linkcode VersionConflictError}: an attempt re-reads the rows, re-decides
 * and writes them with {@linkcode updateVersioned}. Between attempts it waits a random time up to an exponential
 * backoff, so writers that collided spread out. After `maxAttempts` conflicting attempts it throws a
 * `VersionConflictError` saying how many there were (the last conflict as its `cause`). Any other error is thrown at
 * once. Inside a transaction, make each attempt a `tx.savepoint()`: a conflict on the second row of an attempt then
 * undoes its first row too.
 *
 * @example Retry a read-decide-write until it wins
 * ```ts
 * import { retryOnConflict, VersionConflictError } from "./optimistic.ts";
 * let version = 1;
 * const result = await retryOnConflict(async (attempt) => {
 *   const read = attempt === 1 ? version - 1 : version; // the first attempt read a stale row
 *   if (read !== version) throw new VersionConflictError("products", { sku: "apple" }, read);
 *   version++;
 *   return `won on attempt ${attempt}`;
 * }, { maxAttempts: 3, baseDelayMs: 1 });
 * console.assert(result === "won on attempt 2");
 * ```
 */
export async function retryOnConflict<T>(
  attempt: (attempt: number) => Promise<T>,
  options: ConflictRetryOptions = {},
): Promise<T> {
  const { maxAttempts = 5, baseDelayMs = 10, maxDelayMs = 200 } = options;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(
      `Cannot retry on version conflicts as maxAttempts must be a positive integer: current value is ${maxAttempts}`,
    );
  }
  const signal = options.signal ?? currentContext()?.signal;
  for (let n = 1;; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      if (n >= maxAttempts) {
        throw new VersionConflictError(error.table, error.key, error.expected, n, { cause: error });
      }
    }
    await delay(Math.random() * backoffDelay(n, { baseDelayMs, maxDelayMs }), signal);
  }
}

function identifier(name: string, what: string, value: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new TypeError(
      `Cannot update a versioned row as ${what} must hold plain identifiers: current value is ${JSON.stringify(value)}`,
    );
  }
  return `"${name}"`;
}
