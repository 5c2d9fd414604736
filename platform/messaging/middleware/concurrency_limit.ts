import { currentContext } from "../../context/mod.ts";
import { createLimiter, type Limiter } from "../limiter.ts";
import type { HandlerMiddleware } from "./chain.ts";

/**
 * Options for {@linkcode concurrencyLimit}: give `max` for a limiter of its own, or `limiter` to share one.
 *
 * @example Share two slots between the consumer and a batch job
 * ```ts
 * import { createLimiter } from "../limiter.ts";
 * import { concurrencyLimit, type ConcurrencyLimitOptions } from "./concurrency_limit.ts";
 * const limiter = createLimiter(2);
 * const options: ConcurrencyLimitOptions = { limiter };
 * const handler = concurrencyLimit(options)(() => {});
 * await limiter.acquire(); // the batch job holds one slot
 * await handler({ id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 }); // runs in the other
 * limiter.release();
 * ```
 */
export interface ConcurrencyLimitOptions {
  /** Most handlers running at once, across every handler this middleware instance wraps. */
  max?: number;
  /** A limiter to share with other code instead of a new one with `max` slots; give exactly one of the two. */
  limiter?: Limiter;
}

/**
 * Bounds how many wrapped handlers run at once, in this process, across every subscription that uses the same
 * middleware instance (each subscription's own `concurrency` still applies). A message waits for a slot first come,
 * first served; if its context's signal aborts while it waits, it fails with the signal's reason (and is redelivered).
 *
 * @example At most four payment calls at once over two topics
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { concurrencyLimit } from "./concurrency_limit.ts";
 * const bus = createMemoryBroker();
 * const limit = concurrencyLimit({ max: 4 });
 * const handler = async () => {};
 * await bus.subscribe("orders.created", limit(handler), { group: "payments", concurrency: 4 });
 * await bus.subscribe("orders.updated", limit(handler), { group: "payments", concurrency: 4 });
 * await bus.close();
 * ```
 */
export function concurrencyLimit(options: ConcurrencyLimitOptions): HandlerMiddleware {
  if ((options.max === undefined) === (options.limiter === undefined)) {
    throw new TypeError(
      `Cannot create concurrencyLimit middleware as it needs exactly one of max and limiter: current values are ${options.max} and ${
        options.limiter === undefined ? "undefined" : "a limiter"
      }`,
    );
  }
  const limiter = options.limiter ?? createLimiter(options.max!);
  return (next) =>
    async function concurrencyLimitHandler(msg) {
      await acquire(limiter, currentContext()?.signal);
      try {
        await next(msg);
      } finally {
        limiter.release();
      }
    };
}

function acquire(limiter: Limiter, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return limiter.acquire();
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let waiting = true;
    const onAbort = () => {
      if (!waiting) return;
      waiting = false;
      // The limiter cannot withdraw a waiter: hand the slot back as soon as it is granted.
      slot.then(() => limiter.release());
      reject(signal.reason);
    };
    const slot = limiter.acquire();
    slot.then(() => {
      if (!waiting) return;
      waiting = false;
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
