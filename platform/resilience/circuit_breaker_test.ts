import * as assert from "node:assert/strict";
import {
  CircuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError,
  type CircuitStateChange,
  findCircuitOpen,
} from "./circuit_breaker.ts";

function breaker(options: CircuitBreakerOptions = {}) {
  const clock = { now: 0 };
  const changes: string[] = [];
  const b = new CircuitBreaker("inventory", {
    now: () => clock.now,
    onStateChange: (c: CircuitStateChange) => changes.push(`${c.from}->${c.to}@${c.at}`),
    ...options,
  });
  const call = (outcome: "success" | "failure", ms = 0) => {
    const permit = b.acquire();
    clock.now += ms;
    b.record(permit, outcome);
  };
  return { b, clock, changes, call };
}

function refusal(fn: () => unknown): CircuitOpenError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CircuitOpenError) return err;
    throw err;
  }
  throw new assert.AssertionError({ message: "expected a CircuitOpenError, got none" });
}

Deno.test("CircuitBreaker stays closed below minimumCalls however many fail, then opens at the failure rate", () => {
  const { b, call, changes } = breaker({ minimumCalls: 4, failureRateThreshold: 0.5 });
  for (let i = 0; i < 3; i++) call("failure");
  assert.equal(b.state, "closed");
  call("success");
  assert.equal(b.state, "open");
  assert.deepEqual(changes, ["closed->open@0"]);
});

Deno.test("CircuitBreaker stays closed while the failure rate is below the threshold", () => {
  const { b, call } = breaker({ minimumCalls: 4, failureRateThreshold: 0.5, window: { type: "count", calls: 4 } });
  for (let i = 0; i < 20; i++) call(i % 4 === 0 ? "failure" : "success");
  assert.equal(b.state, "closed");
});

Deno.test("CircuitBreaker's count window forgets calls older than its size", () => {
  const { b, call } = breaker({ minimumCalls: 4, failureRateThreshold: 0.75, window: { type: "count", calls: 4 } });
  for (let i = 0; i < 2; i++) call("failure");
  for (let i = 0; i < 4; i++) call("success");
  // The two early failures left the window: two more make 2 of 4, under 75 %.
  for (let i = 0; i < 2; i++) call("failure");
  assert.equal(b.state, "closed");
  call("failure");
  assert.equal(b.state, "open");
});

Deno.test("CircuitBreaker's time window forgets calls older than its length", () => {
  const { b, clock, call } = breaker({ minimumCalls: 4, window: { type: "time", ms: 1_000, buckets: 10 } });
  for (let i = 0; i < 3; i++) call("failure");
  clock.now += 1_000;
  call("failure");
  assert.equal(b.state, "closed", "three failures left the window, one is below minimumCalls");
  for (let i = 0; i < 3; i++) call("failure");
  assert.equal(b.state, "open");
});

Deno.test("CircuitBreaker opens on the slow-call rate even when every call succeeds", () => {
  const { b, call } = breaker({ minimumCalls: 4, slowCallMs: 100, slowCallRateThreshold: 0.5 });
  call("success", 150);
  call("success", 10);
  call("success", 150);
  assert.equal(b.state, "closed");
  call("success", 10);
  assert.equal(b.state, "open");
});

Deno.test("CircuitBreaker refuses calls while open with the time left, then lets probes through", () => {
  const { b, clock, call, changes } = breaker({ minimumCalls: 2, openMs: 1_000, halfOpenCalls: 2 });
  call("failure");
  call("failure");
  clock.now += 400;
  const err = refusal(() => b.acquire());
  assert.equal(err.target, "inventory");
  assert.equal(err.retryAfterMs, 600);
  assert.equal(err.transient, true);
  clock.now += 600;
  assert.equal(b.state, "half-open");
  const probes = [b.acquire(), b.acquire()];
  const third = refusal(() => b.acquire());
  assert.equal(third.retryAfterMs, 0);
  b.record(probes[0], "success");
  assert.equal(b.state, "half-open");
  b.record(probes[1], "success");
  assert.equal(b.state, "closed");
  assert.deepEqual(changes, ["closed->open@0", "open->half-open@1000", "half-open->closed@1000"]);
});

Deno.test("CircuitBreaker reopens on a failed or slow probe, for another openMs", () => {
  const { b, clock, call, changes } = breaker({ minimumCalls: 1, openMs: 100, halfOpenCalls: 1, slowCallMs: 50 });
  call("failure");
  clock.now += 100;
  call("failure");
  assert.equal(b.state, "open");
  clock.now += 99;
  assert.equal(b.state, "open");
  clock.now += 1;
  call("success", 60);
  assert.equal(b.state, "open", "a slow probe reopens");
  assert.deepEqual(changes, [
    "closed->open@0",
    "open->half-open@100",
    "half-open->open@100",
    "open->half-open@200",
    "half-open->open@260",
  ]);
});

Deno.test("CircuitBreaker gives an ignored probe's slot back and does not count calls begun before a transition", () => {
  const { b, clock, call } = breaker({ minimumCalls: 2, openMs: 100, halfOpenCalls: 1 });
  const early = b.acquire();
  call("failure");
  call("failure");
  b.record(early, "failure");
  clock.now += 100;
  const probe = b.acquire();
  b.record(probe, "ignore");
  assert.equal(b.state, "half-open");
  b.record(b.acquire(), "success");
  assert.equal(b.state, "closed");
  call("failure");
  assert.equal(b.state, "closed", "the window started empty when the circuit closed");
});

Deno.test("CircuitBreaker.run() counts rejections as failures unless isFailure says otherwise", async () => {
  const { b } = breaker({ minimumCalls: 2, window: { type: "count", calls: 2 } });
  const notFound = () => Promise.reject(Object.assign(new Error("no such order"), { code: 5 }));
  for (let i = 0; i < 4; i++) await b.run(notFound, () => false).catch(() => {});
  assert.equal(b.state, "closed");
  for (let i = 0; i < 2; i++) await b.run(notFound).catch(() => {});
  assert.equal(b.state, "open");
  await assert.rejects(b.run(() => Promise.resolve(1)), CircuitOpenError);
});

Deno.test("findCircuitOpen() finds the error in a cause chain and nothing elsewhere", () => {
  const open = new CircuitOpenError("payments", 10);
  assert.equal(findCircuitOpen(new Error("a", { cause: new Error("b", { cause: open }) })), open);
  assert.equal(findCircuitOpen(new Error("a")), undefined);
  assert.equal(findCircuitOpen("text"), undefined);
});

Deno.test("CircuitBreaker refuses bad options with a RangeError naming them", () => {
  assert.throws(() => new CircuitBreaker("t", { failureRateThreshold: 0 }), /failureRateThreshold.*current value is 0/);
  assert.throws(() => new CircuitBreaker("t", { slowCallRateThreshold: 1.5 }), RangeError);
  assert.throws(() => new CircuitBreaker("t", { minimumCalls: 0 }), /minimumCalls/);
  assert.throws(() => new CircuitBreaker("t", { halfOpenCalls: 1.5 }), /halfOpenCalls/);
  assert.throws(() => new CircuitBreaker("t", { openMs: -1 }), /openMs/);
  assert.throws(() => new CircuitBreaker("t", { slowCallMs: 0 }), /slowCallMs/);
  assert.throws(() => new CircuitBreaker("t", { window: { type: "count", calls: 0 } }), /window.calls/);
  assert.throws(() => new CircuitBreaker("t", { window: { type: "time", ms: 0 } }), /window.ms/);
});
