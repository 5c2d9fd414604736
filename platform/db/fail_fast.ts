import { DatabaseUnavailableError, isConnectionError, isUnreachableError } from "./errors.ts";

/**
 * Remembers that the database could not be reached, so calls fail at once for `intervalMs` instead of each waiting
 * for its own connect attempt (and the driver's reconnect backoff) while it is down. After the interval one call goes
 * through as a probe; its outcome decides whether the others go through again or fail fast for another interval.
 *
 * Only a failed connect (refused, timed out, unknown host, "the database system is starting up") marks the database
 * down: an established connection that breaks (reset, closed, one backend terminated) makes that call fail with a
 * {@linkcode DatabaseUnavailableError} but lets the next call try to reconnect, which tells whether the server is gone.
 *
 * @example Guard calls to a database
 * ```ts
 * import { FailFast } from "./fail_fast.ts";
 * const failFast = new FailFast(1_000);
 * async function guarded<T>(call: () => Promise<T>): Promise<T> {
 *   if (!failFast.tryAcquire()) throw failFast.error();
 *   try {
 *     const value = await call();
 *     failFast.succeeded();
 *     return value;
 *   } catch (error) {
 *     failFast.failed(error);
 *     throw error;
 *   }
 * }
 * await guarded(() => Promise.resolve(1));
 * ```
 */
export class FailFast {
  /** Whether the database is known to be unreachable; read on every call, so a plain field. */
  down = false;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #until = 0;
  #probing = false;
  #cause: unknown = undefined;

  /** `intervalMs` 0 turns failing fast off; `now` is the clock (epoch milliseconds). */
  constructor(intervalMs: number, now: () => number = Date.now) {
    if (!(intervalMs >= 0) || !Number.isFinite(intervalMs)) {
      throw new RangeError(
        `Cannot fail fast as intervalMs must be a finite number >= 0: current value is ${intervalMs}`,
      );
    }
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /**
   * Whether a call may go to the server now: always while it is not known to be down; while it is, only once the
   * interval has passed and no other probe is under way.
   */
  tryAcquire(): boolean {
    if (!this.down) return true;
    if (this.#probing || this.#now() < this.#until) return false;
    this.#probing = true;
    return true;
  }

  /** Reports that a call got an answer from the server (rows or an SQL error): it is reachable. */
  succeeded(): void {
    if (!this.down) return;
    this.down = false;
    this.#probing = false;
    this.#cause = undefined;
  }

  /**
   * Reports a call's failure; only a connection-class failure changes anything. Returns true when the failure marked
   * the database down (again), so calls that wait for a connection can be failed too.
   */
  failed(error: unknown): boolean {
    if (!isConnectionError(error)) {
      this.succeeded();
      return false;
    }
    this.#probing = false;
    if (this.#intervalMs === 0 || !isUnreachableError(error)) return false;
    this.down = true;
    this.#until = this.#now() + this.#intervalMs;
    this.#cause = error;
    return true;
  }

  /** Reports that a call ended without an answer (its caller gave up): another probe may go. */
  released(): void {
    this.#probing = false;
  }

  /** The error a call that may not go fails with, naming the failure that marked the database down. */
  error(): DatabaseUnavailableError {
    const retryAfterMs = Math.max(this.#until - this.#now(), 100);
    const reason = (this.#cause as Error | undefined)?.message ?? "unreachable";
    return new DatabaseUnavailableError(`database unavailable (failing fast after: ${reason})`, {
      cause: this.#cause,
      code: (this.#cause as { code?: string } | undefined)?.code,
      retryAfterMs,
    });
  }
}
