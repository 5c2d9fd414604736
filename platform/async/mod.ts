/**
 * Waiting and concurrency: exponential backoff and an abortable delay, shared by every client and consumer that
 * retries; {@linkcode fanOut} for scatter-gather reads with budgets and partial results; {@linkcode withBudget} for one
 * deadline across a multi-step flow; {@linkcode Group} (errgroup), {@linkcode WorkerPool} (bounded queue with
 * back-pressure) and {@linkcode pipeline} (staged flows). All of them hand their work an `AbortSignal` and follow the
 * current request context's signal.
 * @module
 */
export * from "./backoff.ts";
export * from "./budget.ts";
export * from "./fan_out.ts";
export * from "./group.ts";
export * from "./pipeline.ts";
export * from "./worker_pool.ts";
