import * as assert from "node:assert/strict";
import { CircuitBreaker, CircuitOpenError } from "./circuit_breaker.ts";
import { resiliencePolicy, type ResiliencePolicyOptions, type Verdict } from "./policy.ts";
import { RetryBudget } from "./retry_budget.ts";

/** A policy whose waits are recorded instead of slept, with jitter fixed at its cap. */
function policy(options: ResiliencePolicyOptions = {}) {
  const waits: number[] = [];
  const p = resiliencePolicy({
    random: () => 1,
    sleep: (ms) => Promise.resolve(void waits.push(ms)),
    ...options,
  });
  return { p, waits };
}

/** An attempt failing `failures` times, then answering "ok"; counts its calls. */
function flaky(failures: number, error: () => unknown = () => new Error("connection refused")) {
  const state = { calls: 0 };
  const attempt = () => ++state.calls <= failures ? Promise.reject(error()) : Promise.resolve("ok");
  return Object.assign(state, { attempt });
}

Deno.test("execute() retries a failing attempt with exponential backoff until it succeeds", async () => {
  const { p, waits } = policy({ retry: { maxAttempts: 4, baseDelayMs: 10, maxDelayMs: 25 } });
  const target = flaky(3);
  assert.equal(await p.execute(target.attempt), "ok");
  assert.equal(target.calls, 4);
  assert.deepEqual(waits, [10, 20, 25]);
});

Deno.test("execute() throws the last error after maxAttempts, and makes one attempt of a non-retryable call", async () => {
  const { p } = policy({ retry: { maxAttempts: 3 } });
  const target = flaky(10);
  await assert.rejects(p.execute(target.attempt), /connection refused/);
  assert.equal(target.calls, 3);
  const once = flaky(10);
  await assert.rejects(p.execute(once.attempt, { retryable: false }), /connection refused/);
  assert.equal(once.calls, 1);
});

Deno.test("execute() stops retrying when the retry budget is spent, and the last outcome stands", async () => {
  const budget = new RetryBudget({ ratio: 0.5, minPerSec: 0, now: () => 0 });
  const { p } = policy({ retry: { maxAttempts: 5 }, budget });
  const calls = [flaky(100), flaky(100), flaky(100), flaky(100)];
  for (const target of calls) await p.execute(target.attempt).catch(() => {});
  // Each call deposits half a retry, so every second call may retry once, though maxAttempts would allow four.
  assert.deepEqual(calls.map((c) => c.calls), [1, 2, 1, 2]);
});

Deno.test("execute() asks the breaker before each attempt and throws CircuitOpenError without attempting", async () => {
  const breaker = new CircuitBreaker("inventory", { minimumCalls: 3, now: () => 0 });
  const { p } = policy({ retry: { maxAttempts: 5 }, breaker });
  const target = flaky(100);
  const err = await p.execute(target.attempt).catch((e) => e);
  assert.ok(err instanceof CircuitOpenError, `expected CircuitOpenError, got ${err}`);
  assert.equal(target.calls, 3, "the third failure opened the circuit; no fourth attempt");
  await assert.rejects(p.execute(target.attempt), CircuitOpenError);
  assert.equal(target.calls, 3);
});

Deno.test("execute() follows the judge: values may be retried and discarded, throttling is no breaker failure", async () => {
  const breaker = new CircuitBreaker("notifications", { minimumCalls: 1, now: () => 0 });
  const { p, waits } = policy({ retry: { maxAttempts: 3 }, breaker });
  const discarded: number[] = [];
  let n = 0;
  const statuses = [429, 429, 200];
  const status = await p.execute(() => Promise.resolve(statuses[n++]), {
    judge: (o): Verdict => o.ok && o.value === 429 ? "throttled" : "success",
    retryAfterMs: (o) => o.ok && o.value === 429 ? 7 : undefined,
    discard: (v) => discarded.push(v),
  });
  assert.equal(status, 200);
  assert.deepEqual(waits, [7, 7], "the wait the target asked for replaces the backoff");
  assert.deepEqual(discarded, [429, 429]);
  assert.equal(breaker.state, "closed");
  const last = await p.execute(() => Promise.resolve(503), { judge: () => "retry" });
  assert.equal(last, 503, "out of attempts, the last value is returned");
  assert.equal(breaker.state, "open");
});

Deno.test("execute() does not wait past the deadline: the last outcome stands", async () => {
  const { p, waits } = policy({ retry: { maxAttempts: 5, baseDelayMs: 1_000 } });
  const target = flaky(10);
  await assert.rejects(p.execute(target.attempt, { deadline: Date.now() + 500 }), /connection refused/);
  assert.equal(target.calls, 1);
  assert.deepEqual(waits, []);
});

Deno.test("execute() neither retries nor counts an attempt the caller cancelled", async () => {
  const breaker = new CircuitBreaker("payments", { minimumCalls: 1, now: () => 0 });
  const { p } = policy({ breaker });
  const controller = new AbortController();
  let calls = 0;
  const err = await p.execute(() => {
    calls++;
    controller.abort(new Error("client went away"));
    return Promise.reject(new Error("cancelled"));
  }, { signal: controller.signal }).catch((e) => e);
  assert.equal(err.message, "cancelled");
  assert.equal(calls, 1);
  assert.equal(breaker.state, "closed");
});

Deno.test("execute() neither retries nor counts an error saying retryable: false", async () => {
  const breaker = new CircuitBreaker("ledger", { minimumCalls: 1, now: () => 0 });
  const { p } = policy({ breaker });
  const target = flaky(10, () => Object.assign(new Error("bad message"), { retryable: false }));
  await assert.rejects(p.execute(target.attempt), /bad message/);
  assert.equal(target.calls, 1);
  assert.equal(breaker.state, "closed");
});

Deno.test("execute() with timeoutMs aborts the attempt's signal and counts the timeout as a failure", async () => {
  const breaker = new CircuitBreaker("slow", { minimumCalls: 1 });
  const p = resiliencePolicy({ timeoutMs: 20, breaker });
  const err = await p.execute((signal) =>
    new Promise<never>((_, reject) => signal!.addEventListener("abort", () => reject(signal!.reason), { once: true }))
  ).catch((e: Error) => e);
  assert.equal(err.name, "TimeoutError");
  assert.equal(breaker.state, "open");
});

Deno.test("resiliencePolicy() refuses a bad maxAttempts or timeoutMs", () => {
  assert.throws(() => resiliencePolicy({ retry: { maxAttempts: 0 } }), /maxAttempts.*current value is 0/);
  assert.throws(() => resiliencePolicy({ timeoutMs: 0 }), /timeoutMs/);
});

Deno.test("execute() rejects with the signal's reason when it aborts during the backoff, discarding the value", async () => {
  const controller = new AbortController();
  const discarded: number[] = [];
  const p = resiliencePolicy({
    sleep: (_ms, signal) => {
      controller.abort(new Error("shutting down"));
      return Promise.reject(signal!.reason);
    },
  });
  const err = await p.execute(() => Promise.resolve(503), {
    signal: controller.signal,
    judge: () => "retry",
    discard: (v) => discarded.push(v),
  }).catch((e: Error) => e);
  assert.equal((err as Error).message, "shutting down");
  assert.deepEqual(discarded, [503]);
});
