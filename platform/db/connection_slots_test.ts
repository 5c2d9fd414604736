import assert from "node:assert/strict";
import { ConnectionSlots } from "./connection_slots.ts";

Deno.test("ConnectionSlots hands freed slots to waiters first come, first served", async () => {
  const slots = new ConnectionSlots(1);
  assert.equal(slots.tryAcquire(), true);
  assert.equal(slots.tryAcquire(), false);
  const order: number[] = [];
  const first = slots.acquire().then(() => order.push(1));
  const second = slots.acquire().then(() => order.push(2));
  assert.equal(slots.waiting, 2);
  slots.release();
  await first;
  slots.release();
  await second;
  assert.deepEqual(order, [1, 2]);
  slots.release();
  assert.equal(slots.tryAcquire(), true);
});

Deno.test("ConnectionSlots takes a waiter whose signal aborts out of the queue with the signal's reason", async () => {
  const slots = new ConnectionSlots(1);
  slots.tryAcquire();
  const controller = new AbortController();
  const reason = new Error("deadline");
  const waiting = slots.acquire(controller.signal);
  const next = slots.acquire();
  controller.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
  assert.equal(slots.waiting, 1);
  slots.release();
  await next;
  await assert.rejects(slots.acquire(AbortSignal.abort(reason)), (error) => error === reason);
});

Deno.test("ConnectionSlots.rejectWaiting() fails every waiter and leaves taken slots alone", async () => {
  const slots = new ConnectionSlots(1);
  slots.tryAcquire();
  const waiters = [slots.acquire(AbortSignal.timeout(5_000)), slots.acquire()];
  slots.rejectWaiting(() => new Error("down"));
  for (const waiter of waiters) await assert.rejects(waiter, /down/);
  assert.equal(slots.waiting, 0);
  assert.equal(slots.tryAcquire(), false);
  slots.release();
  assert.equal(slots.tryAcquire(), true);
  assert.throws(() => new ConnectionSlots(0), RangeError);
});
