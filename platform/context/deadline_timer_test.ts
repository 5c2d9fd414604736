import assert from "node:assert/strict";
import { DeadlineTimer } from "./deadline_timer.ts";
import { within } from "../testing/mod.ts";

Deno.test("DeadlineTimer fires each deadline once, not before it, and stops ticking when none is pending", async () => {
  const timer = new DeadlineTimer(2);
  const fired: string[] = [];
  const start = Date.now();
  timer.schedule(start + 10, () => fired.push("a"));
  timer.schedule(start + 30, () => fired.push("b"));
  const cancel = timer.schedule(start + 20, () => fired.push("cancelled"));
  cancel();
  cancel();
  await new Promise((r) => setTimeout(r, 15));
  assert.deepEqual(fired, ["a"]);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(fired, ["a", "b"]);
  assert.equal(timer.size, 0);
});

Deno.test("DeadlineTimer fires a deadline already in the past on the next tick", async () => {
  const timer = new DeadlineTimer(1);
  const done = new Promise<void>((resolve) => timer.schedule(Date.now() - 1000, resolve));
  await within(done, 1_000, "the past deadline to fire");
  assert.equal(timer.size, 0);
});

Deno.test("DeadlineTimer refuses a tick that is not positive", () => {
  assert.throws(() => new DeadlineTimer(0), RangeError);
});

Deno.test("DeadlineTimer.add() expires an entry once at its deadline, and delete() removes one before it", async () => {
  const timer = new DeadlineTimer(2);
  const expired: string[] = [];
  const due = { deadline: Date.now() + 10, expire: () => expired.push("due") };
  const removed = { deadline: Date.now() + 10, expire: () => expired.push("removed") };
  timer.add(due);
  timer.add(removed);
  assert.equal(timer.delete(removed), true);
  assert.equal(timer.delete(removed), false);
  await within(new Promise((r) => setTimeout(r, 30)), 1_000, "the deadline to pass");
  assert.deepEqual(expired, ["due"]);
  assert.equal(timer.delete(due), false);
  assert.equal(timer.size, 0);
});
