import { childContext, currentContext, runWithContext } from "../../context/mod.ts";
import type { HandlerMiddleware } from "./chain.ts";

/**
 * Options for {@linkcode timeout}.
 *
 * @example A ten-second budget per attempt
 * ```ts
 * import { timeout, type TimeoutOptions } from "./timeout.ts";
 * const options: TimeoutOptions = { ms: 10_000 };
 * const handler = timeout(options)(() => {});
 * await handler({ id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 });
 * ```
 */
export interface TimeoutOptions {
  /** Budget of one attempt, in milliseconds. */
  ms: number;
}

/**
 * Gives each attempt of the handler a deadline. The handler runs in a child of the delivery's context whose `signal`
 * aborts (with a `TimeoutError` `DOMException`) and whose `deadline` is due after `ms` (or earlier, if the message
 * carried an earlier deadline); at that moment the attempt rejects with that `TimeoutError`, so the adapter
 * redelivers the message (and {@linkcode retry} retries it).
 *
 * The handler is cancelled through the signal: pass `currentContext().signal` to every call it makes. A handler that
 * ignores the signal keeps running after the attempt failed, possibly next to the redelivery.
 *
 * @example Fail an attempt that takes longer than two seconds
 * ```ts
 * import { currentContext } from "../../context/mod.ts";
 * import { timeout } from "./timeout.ts";
 * const handler = timeout({ ms: 2_000 })(async (msg) => {
 *   await fetch("https://payments.example/charge", { method: "POST", signal: currentContext()?.signal });
 * });
 * ```
 */
export function timeout(options: TimeoutOptions): HandlerMiddleware {
  const { ms } = options;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(`Cannot create timeout middleware as ms is not a positive number: current value is ${ms}`);
  }
  return (next) =>
    function timeoutHandler(msg) {
      const expired = Promise.withResolvers<never>();
      const { ctx, dispose } = childContext(currentContext(), {
        deadline: Date.now() + ms,
        onEnd: (reason) =>
          expired.reject(
            reason instanceof DOMException && reason.name === "TimeoutError"
              ? new DOMException(`message ${msg.id} was not handled within ${ms} ms`, "TimeoutError")
              : reason,
          ),
      });
      let attempt: Promise<void>;
      try {
        attempt = Promise.resolve(runWithContext(ctx, () => next(msg)));
      } catch (err) {
        attempt = Promise.reject(err);
      }
      return Promise.race([attempt, expired.promise]).finally(dispose);
    };
}
