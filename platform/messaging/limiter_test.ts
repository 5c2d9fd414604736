import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { createLimiter } from "./limiter.ts";

Deno.test("createLimiter() hands out at most max slots and serves waiters in order", async () => {
  const limiter = createLimiter(2);
  const order: number[] = [];
  await limiter.acquire();
  await limiter.acquire();
  const third = limiter.acquire().then(() => order.push(3));
  const fourth = limiter.acquire().then(() => order.push(4));
  strictEqual(limiter.active, 2);
  limiter.release();
  await third;
  limiter.release();
  await fourth;
  deepStrictEqual(order, [3, 4]);
  let idle = false;
  const waiting = limiter.idle().then(() => idle = true);
  limiter.release();
  strictEqual(idle, false);
  limiter.release();
  await waiting;
  strictEqual(limiter.active, 0);
});

Deno.test("createLimiter() throws RangeError for a max that is not a positive integer", () => {
  throws(() => createLimiter(0), RangeError);
  throws(() => createLimiter(1.5), RangeError);
});

Deno.test("tryAcquire() takes a free slot at once, never one a waiter is owed, and nothing when none is free", async () => {
  const limiter = createLimiter(1);
  strictEqual(limiter.tryAcquire(), true);
  strictEqual(limiter.active, 1);
  strictEqual(limiter.tryAcquire(), false);
  strictEqual(limiter.active, 1);
  let waiterServed = false;
  const waiter = limiter.acquire().then(() => (waiterServed = true));
  limiter.release(); // goes to the waiter
  strictEqual(limiter.tryAcquire(), false);
  await waiter;
  strictEqual(waiterServed, true);
  limiter.release();
  await limiter.idle();
  strictEqual(limiter.tryAcquire(), true);
  limiter.release();
});
