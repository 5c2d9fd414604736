import { isHopeless } from "./_hopeless.ts";
import { currentContext } from "../../context/mod.ts";
import { backoffDelay, delay, type RetryOptions } from "../../async/mod.ts";
import type { HandlerMiddleware } from "./chain.ts";

/**
 * Options for {@linkcode retry}: the platform's one {@linkcode RetryOptions} shape (`maxAttempts` = calls of the handler
 * per delivery, the first included, @default {3}; each wait is drawn uniformly from zero to the exponential backoff's
 * cap, full jitter, @default {{ baseDelayMs: 50, maxDelayMs: 2000 }}), plus test seams.
 *
 * @example A handler that fails twice succeeds on its third call, with no real sleep
 * ```ts
 * import { retry, type RetryMiddlewareOptions } from "./retry.ts";
 * const waits: number[] = [];
 * const options: RetryMiddlewareOptions = {
 *   maxAttempts: 3,
 *   baseDelayMs: 100,
 *   random: () => 1,
 *   sleep: (ms) => Promise.resolve(void waits.push(ms)),
 * };
 * let calls = 0;
 * const handler = retry(options)(() => {
 *   if (++calls < 3) throw new Error("brief fault");
 * });
 * await handler({ id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 });
 * console.log(calls, waits); // 3 [ 100, 200 ]
 * ```
 */
export interface RetryMiddlewareOptions extends RetryOptions {
  /** Source of randomness in [0, 1), injectable for tests. @default {Math.random} */
  random?: () => number;
  /** Waits `ms` or rejects when `signal` aborts; injectable for tests. @default {delay} */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Retries a failing handler in place, before the failure reaches the adapter (which then redelivers the message as
 * usual): up to `maxAttempts` calls, waiting `random() * backoffDelay(n, options)` after the n-th failure (exponential
 * backoff with full jitter). The message passed to every call is the same, `attempt` included: `attempt` counts
 * deliveries, not in-place calls. A retry stops early, rethrowing the last error, once the context's signal aborts or
 * for an error with `retryable: false` (a `SchemaError`: no retry can fix the message).
 *
 * @example Three calls per delivery
 * ```ts
 * import { retry } from "./retry.ts";
 * const handler = retry({ maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1_000 })(async (msg) => {
 *   console.log(msg.id);
 * });
 * ```
 */
export function retry(options: RetryMiddlewareOptions = {}): HandlerMiddleware {
  const attempts = options.maxAttempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(
      `Cannot create retry middleware as maxAttempts is not a positive integer: current value is ${attempts}`,
    );
  }
  const backoff = { baseDelayMs: options.baseDelayMs ?? 50, maxDelayMs: options.maxDelayMs ?? 2000 };
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? delay;
  return (next) =>
    async function retryHandler(msg) {
      for (let call = 1;; call++) {
        try {
          return await next(msg);
        } catch (err) {
          const signal = currentContext()?.signal;
          if (call >= attempts || isHopeless(err) || signal?.aborted) throw err;
          await sleep(Math.floor(random() * backoffDelay(call, backoff)), signal).catch(() => {
            throw err;
          });
        }
      }
    };
}
