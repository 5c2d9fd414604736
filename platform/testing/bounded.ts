/**
 * Bounded waits for tests: every wait a test does (a promise, a message, a process, a port) goes through
 * {@linkcode within} or {@linkcode waitUntil}, so a regression fails with a message naming what did not happen
 * instead of hanging the run.
 *
 * @module
 */

/**
 * The error a bounded wait rejects with when its bound passes; `what` names what did not happen.
 *
 * @example Tell a timeout from another failure
 * ```ts
 * import { waitUntil, WaitTimeoutError } from "./bounded.ts";
 * const err = await waitUntil(() => false, 20, "a flag that is never set", 5).catch((e) => e);
 * err instanceof WaitTimeoutError && err.what === "a flag that is never set"; // true
 * ```
 */
export class WaitTimeoutError extends Error {
  /** What the test waited for. */
  readonly what: string;
  /** The bound that passed, in milliseconds. */
  readonly timeoutMs: number;

  /**
   * @example
   * ```ts
   * import { WaitTimeoutError } from "./bounded.ts";
   * const err = new WaitTimeoutError("the order to be confirmed", 5_000);
   * console.log(err.message); // "Timed out after 5000 ms waiting for the order to be confirmed"
   * ```
   */
  constructor(what: string, timeoutMs: number) {
    super(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    this.name = "WaitTimeoutError";
    this.what = what;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Settles as `promise` does, or rejects with {@linkcode WaitTimeoutError} naming `what` once `timeoutMs` passed. The
 * timer is cleared either way, so it never trips Deno's op sanitizer. The promise itself is not cancelled: pass an
 * abortable one (or abort its work after the rejection) when it holds resources.
 *
 * @example Wait for a message, at most 5 s
 * ```ts
 * import { within } from "./bounded.ts";
 * const got = Promise.withResolvers<string>();
 * setTimeout(() => got.resolve("o-1"), 10);
 * const id = await within(got.promise, 5_000, "the order.confirmed message");
 * console.log(id);
 * ```
 */
export function within<T>(promise: PromiseLike<T>, timeoutMs: number, what: string): Promise<T> {
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(
      `Cannot wait for ${what} as timeoutMs is not a finite number >= 0: current value is ${timeoutMs}`,
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(what, timeoutMs)), timeoutMs);
  });
  return Promise.race([Promise.resolve(promise), expired]).finally(() => clearTimeout(timer));
}

/**
 * Polls `done` every `intervalMs` until it returns true, or rejects with {@linkcode WaitTimeoutError} naming `what`
 * once `timeoutMs` passed. A `done` that throws ends the wait with its error.
 *
 * @example Wait for a port to accept connections
 * ```ts
 * import { waitUntil } from "./bounded.ts";
 * let ready = false;
 * setTimeout(() => ready = true, 20);
 * await waitUntil(() => ready, 2_000, "the flag to be set");
 * ```
 */
export async function waitUntil(
  done: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new WaitTimeoutError(what, timeoutMs);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
