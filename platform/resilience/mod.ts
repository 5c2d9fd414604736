/**
 * One resilience policy for every internal call: a per-target {@linkcode CircuitBreaker} (failure and slow-call
 * rates over a sliding window, half-open probes), a per-service {@linkcode RetryBudget} (retries a fraction of calls,
 * with a minimum rate) and retries with backoff, composed by {@linkcode resiliencePolicy}. The HTTP client
 * (`createHttpClient({ policy })`), gRPC clients (`createGrpcClient(..., { policy })`) and message consumers
 * ({@linkcode resilientHandler}) run it; {@linkcode circuitBreakerGauge} exposes the breakers' states.
 *
 * @example A service's policies: one breaker per target, one budget
 * ```ts
 * import { Registry } from "prom-client";
 * import { CircuitBreaker, circuitBreakerGauge, RetryBudget, resiliencePolicy } from "./mod.ts";
 * const budget = new RetryBudget();
 * const breakers = [new CircuitBreaker("inventory"), new CircuitBreaker("payments")];
 * const [inventory, payments] = breakers.map((breaker) => resiliencePolicy({ budget, breaker }));
 * circuitBreakerGauge(new Registry(), breakers);
 * ```
 * @module
 */
export * from "./circuit_breaker.ts";
export * from "./retry_budget.ts";
export * from "./policy.ts";
export * from "./resilient_handler.ts";
export * from "./gauge.ts";
