import { childContext, currentContext, runWithContext } from "../context/mod.ts";
import { checkFunction, checkMs, untilAborted } from "./_shared.ts";

/**
 * Runs a multi-step flow under one time budget: `flow` runs in a child of the current request context whose deadline
 * is `budgetMs` from now (or the caller's, when that is sooner), so every step shares what is left of it. The steps'
 * gRPC and HTTP calls take their deadline from that context, and `signal` aborts when the budget passes or the caller
 * is cancelled. The returned promise settles as `flow` does, or rejects with the `TimeoutError` DOMException as soon
 * as the budget passes, without waiting for a step that ignores its signal.
 *
 * @example Three steps, one second between them all
 * ```ts
 * import { remainingMs } from "../context/mod.ts";
 * import { withBudget } from "./mod.ts";
 * const receipt = await withBudget(1_000, async (signal) => {
 *   const order = await Promise.resolve({ id: "o-1" }); // a call that takes what it needs of the budget
 *   signal.throwIfAborted();
 *   const left = remainingMs(); // what the next step's calls get as their deadline
 *   return `${order.id}: ${left! > 0 ? "in time" : "late"}`;
 * });
 * ```
 */
export function withBudget<T>(budgetMs: number, flow: (signal: AbortSignal) => Promise<T>): Promise<T> {
  checkMs(budgetMs, "run a flow with a budget", "budgetMs");
  checkFunction(flow, "run a flow with a budget", "flow");
  const { ctx, dispose } = childContext(currentContext(), { deadline: Date.now() + budgetMs });
  return untilAborted(runWithContext(ctx, async () => await flow(ctx.signal)), ctx.signal).finally(dispose);
}
