import { currentContext } from "../context/mod.ts";
import type { HandlerMiddleware } from "../messaging/middleware/mod.ts";
import type { ResiliencePolicy } from "./policy.ts";

/**
 * Consumer middleware running the handler under `policy`: each call asks the breaker first and counts as an outcome
 * of the target, failures are retried in place while the retry budget allows (within the delivery's deadline, stopping
 * when its signal aborts), and an error saying `retryable: false` (a `SchemaError`) is neither retried nor counted.
 * While the circuit is open, messages fail at once with {@linkcode CircuitOpenError}, which is `transient`: the
 * dead-letter middleware never parks them and the broker delivers them again once the target may be back.
 *
 * @example A consumer of payment events that calls a flaky ledger
 * ```ts
 * import { CircuitBreaker, RetryBudget, resiliencePolicy, resilientHandler } from "./mod.ts";
 * const ledger = resiliencePolicy({ budget: new RetryBudget(), breaker: new CircuitBreaker("ledger") });
 * const handler = resilientHandler(ledger)(async (msg) => {
 *   console.log("posting", msg.id);
 * });
 * await handler({ id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 });
 * ```
 */
export function resilientHandler(policy: ResiliencePolicy): HandlerMiddleware {
  return (next) =>
    function resilientHandler(msg) {
      const ctx = currentContext();
      return policy.execute(async () => await next(msg), { deadline: ctx?.deadline, signal: ctx?.signal });
    };
}
