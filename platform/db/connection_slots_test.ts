import assert from "node:assert/strict";
import { ConnectionSlots } from "./connection_slots.ts";
import { within } from "../testing/mod.ts";

Deno.test("ConnectionSlots hands freed slots to waiters first come, first served", async () => {
  const slots = new ConnectionSlots(1);
  assert.equal(slots.tryAcquire(), true);
  assert.equal(slots.tryAcquire(), false);
  const order: number[] = [];
  const first = slots.acquire().then(() => order.push(1));
  const second = slots.acquire().then(() => order.push(2));
  assert.equal(slots.waiting, 2);
  slots.release();
  await within(first, 1_000, "the first waiter to get the freed slot");
  slots.release();
  await within(second, 1_000, "the second waiter to get the freed slot");
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
  await assert.rejects(within(waiting, 1_000, "the aborted waiter to reject"), (error) => error === reason);
  assert.equal(slots.waiting, 1);
  slots.release();
  await within(next, 1_000, "the waiter behind the aborted one to get the slot");
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
