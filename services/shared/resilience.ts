import { fetchOf, resilientHttp } from "@trellis/platform/http";
import {
  CircuitBreaker,
  circuitBreakerGauge,
  type ResiliencePolicy,
  resiliencePolicy,
  RetryBudget,
} from "@trellis/platform/resilience";
import type { Service } from "@trellis/platform/service";

/** The resilience of one service's outgoing calls: made by {@linkcode resilienceFor}. */
export interface ServiceResilience {
  /** A policy for calls to `target`: that target's circuit breaker and the service's one retry budget. */
  policyFor(target: string): ResiliencePolicy;
  /**
   * A `fetch` for APIs that take one, under {@linkcode policyFor}`(target)`: for calls without side effects (the JWKS
   * and client-credentials token fetches), so every request, POST included, may be retried.
   */
  fetchFor(target: string): typeof fetch;
}

/**
 * One retry budget per service, bounding its retry load on all targets together, and one circuit breaker per target,
 * shared by every client of that target (the JWKS and token fetches to auth share "auth"). Breaker state changes are
 * logged and exposed as `circuit_breaker_state{target}` on the service's `/metrics`. One per service: every call
 * with the same `svc` returns the same one.
 */
export function resilienceFor(svc: Service): ServiceResilience {
  let made = ofService.get(svc);
  if (!made) ofService.set(svc, made = makeResilience(svc));
  return made;
}

const ofService = new WeakMap<Service, ServiceResilience>();

function makeResilience(svc: Service): ServiceResilience {
  const budget = new RetryBudget();
  const breakers = new Map<string, CircuitBreaker>();
  circuitBreakerGauge(svc.registry, { [Symbol.iterator]: () => breakers.values() });
  const breakerOf = (target: string) => {
    let breaker = breakers.get(target);
    if (!breaker) {
      breaker = new CircuitBreaker(target, {
        onStateChange: (c) => svc.logger.warn("circuit breaker state changed", { target, from: c.from, to: c.to }),
      });
      breakers.set(target, breaker);
    }
    return breaker;
  };
  const policyFor = (target: string) => resiliencePolicy({ budget, breaker: breakerOf(target) });
  return {
    policyFor,
    fetchFor: (target) => fetchOf(resilientHttp(policyFor(target), { retryable: () => true })((req) => fetch(req))),
  };
}
