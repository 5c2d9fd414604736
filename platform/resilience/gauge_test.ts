import * as assert from "node:assert/strict";
import { Registry } from "prom-client";
import { CircuitBreaker } from "./circuit_breaker.ts";
import { circuitBreakerGauge } from "./gauge.ts";

Deno.test("circuitBreakerGauge() shows each target's state at scrape time: 0 closed, 1 half-open, 2 open", async () => {
  let now = 0;
  const registry = new Registry();
  const orders = new CircuitBreaker("orders", { minimumCalls: 1, openMs: 100, now: () => now });
  const inventory = new CircuitBreaker("inventory", { now: () => now });
  circuitBreakerGauge(registry, [orders, inventory]);
  const value = async (target: string) => {
    const metric = await registry.getSingleMetric("circuit_breaker_state")!.get();
    return metric.values.find((v) => v.labels.target === target)?.value;
  };
  assert.equal(await value("orders"), 0);
  orders.record(orders.acquire(), "failure");
  assert.equal(await value("orders"), 2);
  assert.equal(await value("inventory"), 0);
  now += 100;
  assert.equal(await value("orders"), 1, "a scrape after openMs sees the circuit half-open");
});
