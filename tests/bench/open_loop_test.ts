import assert from "node:assert/strict";
import { type Clock, quantile, runOpenLoop, stopReason } from "../../scripts/bench/open_loop.ts";
import { within } from "@trellis/platform/testing";

/**
 * A discrete-event clock: time moves only to the earliest pending sleep, once everything runnable has run (a
 * macrotask later), so a run takes no real time however long its fake time is. `oversleep(n)` makes the next sleep
 * wake `n` ms late, as a busy event loop does.
 */
class FakeClock implements Clock {
  #t = 0;
  #timers: { at: number; wake: () => void }[] = [];
  #kicked = false;
  #late = 0;

  now(): number {
    return this.#t;
  }

  sleep(ms: number): Promise<void> {
    const at = this.#t + ms + this.#late;
    this.#late = 0;
    return new Promise((wake) => {
      this.#timers.push({ at, wake });
      this.#kick();
    });
  }

  oversleep(ms: number): void {
    this.#late = ms;
  }

  #kick(): void {
    if (this.#kicked) return;
    this.#kicked = true;
    setTimeout(() => {
      this.#kicked = false;
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers.shift();
      if (!next) return;
      this.#t = Math.max(this.#t, next.at);
      next.wake();
      if (this.#timers.length > 0) this.#kick();
    }, 0);
  }
}

/** A server that handles one request at a time, each taking `serviceMs`. */
function serialServer(clock: Clock, serviceMs: number) {
  let freeAt = 0;
  return () => {
    const done = Math.max(clock.now(), freeAt) + serviceMs;
    freeAt = done;
    return clock.sleep(done - clock.now()).then(() => true);
  };
}

Deno.test("runOpenLoop() keeps sending on schedule while a slow server queues, and counts the queueing as latency", async () => {
  const clock = new FakeClock();
  // 100/s against a server that completes 50/s: request i is sent at 10i ms and answered at 20(i+1) ms.
  const sent = await within(
    runOpenLoop({ ratePerSec: 100, durationMs: 100, send: serialServer(clock, 20), clock }),
    5_000,
    "the open loop to finish",
  );
  assert.deepEqual(sent.map((s) => s.sentAt), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  assert.deepEqual(sent.map((s) => s.latencyMs), [20, 30, 40, 50, 60, 70, 80, 90, 100, 110]);
  assert.ok(sent.every((s) => s.ok));
});

Deno.test("runOpenLoop() counts a late generator's delay from the scheduled time and sends the backlog at once", async () => {
  const clock = new FakeClock();
  const send = () => Promise.resolve(true); // an instant server: all latency here is the generator's
  // Request 0 goes out at once; the wait for request 1 (due at 10 ms) wakes at 60 ms.
  clock.oversleep(50);
  const run = runOpenLoop({ ratePerSec: 100, durationMs: 100, send, clock });
  const sent = await within(run, 5_000, "the open loop to finish");
  assert.equal(sent.length, 10);
  assert.deepEqual(sent.slice(1, 7).map((s) => s.sentAt), [60, 60, 60, 60, 60, 60]);
  assert.deepEqual(sent.map((s) => s.scheduledAt), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  assert.deepEqual(sent.map((s) => s.latencyMs), [0, 50, 40, 30, 20, 10, 0, 0, 0, 0]);
});

Deno.test("runOpenLoop() records a rejected or refused request as not ok without stopping the schedule", async () => {
  const clock = new FakeClock();
  const send = (i: number) => clock.sleep(1).then(() => i % 3 === 0 ? Promise.reject(new Error("refused")) : i !== 4);
  const sent = await within(runOpenLoop({ ratePerSec: 50, durationMs: 200, send, clock }), 5_000, "the loop");
  assert.deepEqual(sent.map((s) => s.ok), [false, true, true, false, false, true, false, true, true, false]);
});

Deno.test("stopReason() goes on below the p99 limit without errors and names every reason to stop", () => {
  assert.equal(stopReason({ p99AcceptMs: 49.9, errors: 0, unfinished: 0 }), undefined);
  assert.equal(stopReason({ p99AcceptMs: 50.1, errors: 0, unfinished: 0 }), "p99 accept 50.1 ms > 50 ms");
  assert.equal(stopReason({ p99AcceptMs: 5, errors: 2, unfinished: 0 }), "2 requests failed");
  assert.equal(
    stopReason({ p99AcceptMs: 80, errors: 1, unfinished: 7 }, 60),
    "1 requests failed; p99 accept 80.0 ms > 60 ms; 7 sagas unfinished after the drain time",
  );
});

Deno.test("quantile() takes the nearest rank and is NaN for no data", () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(quantile(xs, 0.5), 50);
  assert.equal(quantile(xs, 0.99), 99);
  assert.equal(quantile(xs, 1), 100);
  assert.equal(quantile([7], 0.99), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});
