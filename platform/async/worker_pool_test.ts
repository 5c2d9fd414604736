import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { within } from "../testing/mod.ts";
import { delay } from "./backoff.ts";
import { WorkerPool } from "./worker_pool.ts";

/** A handler whose items finish only when the test releases them. */
function gated() {
  const gates = new Map<number, PromiseWithResolvers<void>>();
  const handled: number[] = [];
  let running = 0;
  let peak = 0;
  const gate = (n: number) => {
    if (!gates.has(n)) gates.set(n, Promise.withResolvers<void>());
    return gates.get(n)!;
  };
  const handle = async (n: number, signal: AbortSignal) => {
    running++;
    peak = Math.max(peak, running);
    const onAbort = () => gate(n).reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await gate(n).promise;
      handled.push(n);
    } finally {
      signal.removeEventListener("abort", onAbort);
      running--;
    }
  };
  return {
    handle,
    handled,
    release: (n: number) => gate(n).resolve(),
    fail: (n: number, err: Error) => gate(n).reject(err),
    peak: () => peak,
    running: () => running,
  };
}

Deno.test("WorkerPool.submit() waits while the workers and the queue are full, and resumes as a worker frees up", async () => {
  const work = gated();
  const pool = new WorkerPool(work.handle, { workers: 2, queueSize: 1 });
  await within(pool.submit(1), 1_000, "submit 1");
  await within(pool.submit(2), 1_000, "submit 2");
  await within(pool.submit(3), 1_000, "submit 3 (queued)");
  strictEqual(pool.pending, 3);
  let admitted = false;
  const fourth = pool.submit(4).then(() => admitted = true);
  await within(delay(20), 1_000, "a short pause");
  strictEqual(admitted, false, "submit resolved with the workers and the queue full");
  work.release(1);
  await within(fourth, 1_000, "submit 4 to be admitted once item 1 is done");
  for (const n of [2, 3, 4]) work.release(n);
  await within(pool.close(), 1_000, "the pool to drain");
  deepStrictEqual(work.handled, [1, 2, 3, 4]);
  strictEqual(work.peak(), 2);
});

Deno.test("WorkerPool.close() drains queued and blocked items, then refuses new ones", async () => {
  const work = gated();
  const pool = new WorkerPool(work.handle, { workers: 1, queueSize: 1 });
  await within(pool.submit(1), 1_000, "submit 1");
  await within(pool.submit(2), 1_000, "submit 2");
  const blocked = pool.submit(3);
  let closed = false;
  const closing = pool.close().then(() => closed = true);
  await rejects(
    within(pool.submit(9), 1_000, "a submit after close"),
    /Cannot submit to a worker pool as it is closed/,
  );
  for (const n of [1, 2]) work.release(n);
  await within(blocked, 1_000, "the blocked submit to be admitted");
  strictEqual(closed, false);
  work.release(3);
  await within(closing, 1_000, "close() to resolve");
  deepStrictEqual(work.handled, [1, 2, 3]);
});

Deno.test("WorkerPool: the first failure aborts running items, drops queued ones, rejects blocked submits and close()", async () => {
  const work = gated();
  const failure = new Error("bad item");
  const pool = new WorkerPool(work.handle, { workers: 2, queueSize: 1 });
  await within(pool.submit(0), 1_000, "submit 0");
  await within(pool.submit(1), 1_000, "submit 1");
  await within(pool.submit(2), 1_000, "submit 2 (queued)");
  const blocked = pool.submit(3);
  work.fail(0, failure);
  await rejects(within(blocked, 1_000, "the blocked submit"), (err) => err === failure);
  strictEqual(pool.signal.reason, failure);
  await rejects(within(pool.close(), 1_000, "close() of the failed pool"), (err) => err === failure);
  await rejects(within(pool.submit(5), 1_000, "a submit to the failed pool"), (err) => err === failure);
  strictEqual(work.running(), 0);
  deepStrictEqual(work.handled, []);
});

Deno.test("WorkerPool with onError reports each failure and carries on", async () => {
  const errors: [string, number][] = [];
  const pool = new WorkerPool((n: number) => n % 2 ? Promise.reject(new Error(`odd ${n}`)) : Promise.resolve(), {
    workers: 2,
    onError: (err, n) => errors.push([(err as Error).message, n]),
  });
  for (let n = 0; n < 5; n++) await within(pool.submit(n), 1_000, `submit ${n}`);
  await within(pool.close(), 1_000, "the pool to drain");
  deepStrictEqual(errors.sort(), [["odd 1", 1], ["odd 3", 3]]);
});

Deno.test("WorkerPool: a blocked submit gives up when its signal aborts; the pool stops with the request context", async () => {
  const work = gated();
  const request = new AbortController();
  const pool = runWithContext(
    { requestId: "r-1", signal: request.signal },
    () => new WorkerPool(work.handle, { workers: 1, queueSize: 1 }),
  );
  await within(pool.submit(1), 1_000, "submit 1");
  await within(pool.submit(2), 1_000, "submit 2");
  const giveUp = new AbortController();
  const blocked = pool.submit(3, giveUp.signal);
  giveUp.abort(new Error("no room in time"));
  await rejects(within(blocked, 1_000, "the abandoned submit"), /no room in time/);
  request.abort(new Error("request over"));
  await rejects(within(pool.close(), 1_000, "close() of the cancelled pool"), /request over/);
  deepStrictEqual(work.handled, []);
});

Deno.test("WorkerPool refuses bad arguments with TypeError/RangeError naming the value", () => {
  throws(() => new WorkerPool(null as never), {
    name: "TypeError",
    message: "Cannot create a worker pool as handle is not a function: current value is null",
  });
  throws(() => new WorkerPool(() => Promise.resolve(), { workers: 0 }), {
    name: "RangeError",
    message: "Cannot create a worker pool as workers is not an integer >= 1: current value is 0",
  });
  throws(() => new WorkerPool(() => Promise.resolve(), { queueSize: Infinity }), RangeError);
});
