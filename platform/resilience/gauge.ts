import { Gauge, type Registry } from "prom-client";
import type { CircuitBreaker, CircuitState } from "./circuit_breaker.ts";

const VALUE: Record<CircuitState, number> = { closed: 0, "half-open": 1, open: 2 };

/**
 * Registers `circuit_breaker_state{target}` on `registry`: 0 closed, 1 half-open, 2 open, read from each breaker at
 * every scrape (so an open circuit whose `openMs` has passed shows half-open). Call it once per registry with all
 * the service's breakers: `breakers` is iterated again at every scrape, so a collection breakers are added to later
 * (a `Set`, an array) shows them too.
 *
 * @example Expose two breakers
 * ```ts
 * import { Registry } from "prom-client";
 * import { CircuitBreaker, circuitBreakerGauge } from "./mod.ts";
 * const registry = new Registry();
 * circuitBreakerGauge(registry, [new CircuitBreaker("orders"), new CircuitBreaker("inventory")]);
 * (await registry.metrics()).includes('circuit_breaker_state{target="orders"} 0'); // true
 * ```
 */
export function circuitBreakerGauge(registry: Registry, breakers: Iterable<CircuitBreaker>): Gauge<"target"> {
  return new Gauge({
    name: "circuit_breaker_state",
    help: "State of the circuit breaker of each target: 0 closed, 1 half-open, 2 open.",
    labelNames: ["target"] as const,
    registers: [registry],
    collect() {
      for (const breaker of breakers) this.set({ target: breaker.target }, VALUE[breaker.state]);
    },
  });
}
