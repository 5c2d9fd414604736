/**
 * The database cannot be reached right now: the connection was refused, reset or closed, connecting timed out, the
 * server is shutting down or starting up (SQLSTATE 57P01/57P02/57P03), or another connection exception (class 08).
 * Also what a query gets at once, without trying, while the database is known to be down (see `failFastMs` of
 * `connectPostgres`). Retrying later may succeed; the HTTP layer answers 503 with `Retry-After`, the gRPC server
 * `UNAVAILABLE`.
 *
 * @example Tell a caller to come back later
 * ```ts
 * import { DatabaseUnavailableError } from "./errors.ts";
 * const err = new DatabaseUnavailableError("database unavailable: connect ECONNREFUSED", { retryAfterMs: 500 });
 * err.retryAfterMs; // 500
 * ```
 */
export class DatabaseUnavailableError extends Error {
  /** The underlying error code (`ECONNREFUSED`, `CONNECT_TIMEOUT`, `57P01`, ...), when there was one. */
  readonly code: string | undefined;
  /** How long the caller should wait before trying again, in milliseconds. */
  readonly retryAfterMs: number;
  /**
   * Marks an outage rather than a fault of the work itself: message consumers keep retrying such a failure instead
   * of counting it toward dead-lettering (see `isTransient` in platform/messaging).
   */
  readonly transient = true;

  /** Creates the error; `cause` is the driver's error when there was one. */
  constructor(message: string, options: ErrorOptions & { code?: string; retryAfterMs?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = "DatabaseUnavailableError";
    this.code = options.code;
    this.retryAfterMs = options.retryAfterMs ?? 1_000;
  }
}

/** Socket-level and driver-level codes that mean the server could not be reached or the connection broke. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
]);
/** SQLSTATEs of a server going away or not there yet: admin_shutdown, crash_shutdown, cannot_connect_now. */
const SERVER_GONE = new Set(["57P01", "57P02", "57P03"]);
/**
 * The codes among those that mean a new connection could not be made at all (as opposed to an established one
 * breaking, which a single terminated backend also causes): the server is known to be unreachable.
 */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "57P03",
  "08001",
  "08004",
]);

/**
 * Whether `error` (a driver's error, or a {@linkcode DatabaseUnavailableError}) says the database could not be
 * reached or the connection to it broke, rather than that a statement failed.
 *
 * @example
 * ```ts
 * import { isConnectionError } from "./errors.ts";
 * isConnectionError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })); // true
 * isConnectionError(Object.assign(new Error("duplicate key"), { code: "23505" })); // false
 * ```
 */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  const code = codeOf(error);
  if (code === undefined) return false;
  return CONNECTION_CODES.has(code) || SERVER_GONE.has(code) || (code.length === 5 && code.startsWith("08"));
}

/**
 * Whether `error` says a new connection could not be made (the server is down, not merely one connection broke).
 *
 * @example
 * ```ts
 * import { isUnreachableError } from "./errors.ts";
 * isUnreachableError(Object.assign(new Error("write CONNECT_TIMEOUT"), { code: "CONNECT_TIMEOUT" })); // true
 * isUnreachableError(Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" })); // false
 * ```
 */
export function isUnreachableError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/**
 * Whether `error`, or an error in its `cause` chain, is a {@linkcode DatabaseUnavailableError}: how the HTTP and gRPC
 * layers find one that a handler wrapped.
 *
 * @example
 * ```ts
 * import { DatabaseUnavailableError, findDatabaseUnavailable } from "./errors.ts";
 * const wrapped = new Error("cannot place order", { cause: new DatabaseUnavailableError("down") });
 * findDatabaseUnavailable(wrapped)?.retryAfterMs; // 1000
 * ```
 */
export function findDatabaseUnavailable(error: unknown): DatabaseUnavailableError | undefined {
  for (let depth = 0; depth < 8 && error instanceof Error; depth++) {
    if (error instanceof DatabaseUnavailableError) return error;
    error = error.cause;
  }
  return undefined;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}
