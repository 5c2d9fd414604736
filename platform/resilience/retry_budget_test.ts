import * as assert from "node:assert/strict";
import { RetryBudget } from "./retry_budget.ts";

function budget(options: { ratio?: number; minPerSec?: number; windowMs?: number }) {
  const clock = { now: 0 };
  return { b: new RetryBudget({ ...options, now: () => clock.now }), clock };
}

function retries(b: RetryBudget, max = 10_000): number {
  let n = 0;
  while (n < max && b.tryRetry()) n++;
  return n;
}

Deno.test("RetryBudget allows ratio × calls retries in the window and no more", () => {
  const { b } = budget({ ratio: 0.1, minPerSec: 0, windowMs: 1_000 });
  assert.equal(b.canRetry(), false);
  for (let i = 0; i < 100; i++) b.recordCall();
  assert.equal(retries(b), 10);
  assert.equal(b.canRetry(), false);
  for (let i = 0; i < 10; i++) b.recordCall();
  assert.equal(retries(b), 1);
});

Deno.test("RetryBudget allows minPerSec × window seconds retries with no calls at all", () => {
  const { b } = budget({ ratio: 0.2, minPerSec: 3, windowMs: 2_000 });
  assert.equal(retries(b), 6);
});

Deno.test("RetryBudget adds the minimum to the ratio", () => {
  const { b } = budget({ ratio: 0.5, minPerSec: 1, windowMs: 1_000 });
  for (let i = 0; i < 10; i++) b.recordCall();
  assert.equal(retries(b), 6);
});

Deno.test("RetryBudget forgets calls and retries that left the window", () => {
  const { b, clock } = budget({ ratio: 0.5, minPerSec: 0, windowMs: 1_000 });
  for (let i = 0; i < 4; i++) b.recordCall();
  assert.equal(retries(b), 2);
  clock.now += 500;
  for (let i = 0; i < 4; i++) b.recordCall();
  assert.equal(retries(b), 2, "the first retries still count against the 8 calls");
  clock.now += 500;
  assert.equal(b.canRetry(), false, "the second half's 4 calls are spent by its 2 retries");
  clock.now += 500;
  assert.equal(b.canRetry(), false, "everything left the window");
  b.recordCall();
  b.recordCall();
  assert.equal(retries(b), 1);
});

Deno.test("canRetry() does not take a retry; tryRetry() does", () => {
  const { b } = budget({ ratio: 1, minPerSec: 0 });
  b.recordCall();
  assert.equal(b.canRetry(), true);
  assert.equal(b.canRetry(), true);
  assert.equal(b.tryRetry(), true);
  assert.equal(b.canRetry(), false);
});

Deno.test("RetryBudget refuses bad options with a RangeError naming them", () => {
  assert.throws(() => new RetryBudget({ ratio: -0.1 }), /ratio.*current value is -0.1/);
  assert.throws(() => new RetryBudget({ minPerSec: -1 }), /minPerSec/);
  assert.throws(() => new RetryBudget({ windowMs: 0 }), /windowMs/);
});
