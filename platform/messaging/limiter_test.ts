import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { createLimiter } from "./limiter.ts";
import { within } from "../testing/mod.ts";

Deno.test("createLimiter() hands out at most max slots and serves waiters in order", async () => {
  const limiter = createLimiter(2);
  const order: number[] = [];
  await limiter.acquire();
  await limiter.acquire();
  const third = limiter.acquire().then(() => order.push(3));
  const fourth = limiter.acquire().then(() => order.push(4));
  strictEqual(limiter.active, 2);
  limiter.release();
  await within(third, 1_000, "the third acquire() to get a released slot");
  limiter.release();
  await within(fourth, 1_000, "the fourth acquire() to get a released slot");
  deepStrictEqual(order, [3, 4]);
  let idle = false;
  const waiting = limiter.idle().then(() => idle = true);
  limiter.release();
  strictEqual(idle, false);
  limiter.release();
  await within(waiting, 1_000, "idle() once every slot was released");
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
  await within(waiter, 1_000, "the waiter to get the released slot");
  strictEqual(waiterServed, true);
  limiter.release();
  await within(limiter.idle(), 1_000, "idle() with no slot taken");
  strictEqual(limiter.tryAcquire(), true);
  limiter.release();
});
