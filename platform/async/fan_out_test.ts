import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { within } from "../testing/mod.ts";
import { delay } from "./backoff.ts";
import { fanOut } from "./fan_out.ts";

/** A branch that resolves with `value` after `ms`, honouring its signal, and records whether it was aborted. */
function slow<T>(ms: number, value: T, seen: { aborted?: unknown } = {}) {
  return async (signal: AbortSignal) => {
    try {
      await delay(ms, signal);
    } catch (err) {
      seen.aborted = err;
      throw err;
    }
    return value;
  };
}

Deno.test("fanOut() returns each named branch's value or error, keyed by name", async () => {
  const results = await within(
    fanOut({
      a: () => Promise.resolve(1),
      b: () => Promise.reject(new Error("b down")),
      c: { run: () => Promise.resolve("three") },
    }),
    2_000,
    "the fan-out",
  );
  deepStrictEqual(results.a, { ok: true, value: 1 });
  strictEqual(results.b.ok, false);
  strictEqual(!results.b.ok && (results.b.error as Error).message, "b down");
  deepStrictEqual(results.c, { ok: true, value: "three" });
});

Deno.test("fanOut() over an array of dynamic targets keeps their order and never runs more than concurrency at once", async () => {
  let running = 0;
  let peak = 0;
  const targets = Array.from({ length: 10 }, (_, i) => i);
  const results = await within(
    fanOut(
      targets.map((n) => async (signal: AbortSignal) => {
        running++;
        peak = Math.max(peak, running);
        await delay(5 + (n % 3) * 5, signal);
        running--;
        return n * n;
      }),
      { concurrency: 3 },
    ),
    5_000,
    "the fan-out over ten targets",
  );
  strictEqual(peak, 3);
  deepStrictEqual(results.map((r) => r.ok && r.value), targets.map((n) => n * n));
});

Deno.test("fanOut() fails a branch past its own budget with a TimeoutError and aborts its signal", async () => {
  const seen: { aborted?: unknown } = {};
  const started = Date.now();
  const results = await within(
    fanOut({
      fast: () => Promise.resolve("ok"),
      late: { run: slow(5_000, "never", seen), budgetMs: 30 },
    }, { branchBudgetMs: 5_000 }),
    2_000,
    "the fan-out with a late branch",
  );
  ok(Date.now() - started < 1_000, "the fan-out waited for the late branch");
  deepStrictEqual(results.fast, { ok: true, value: "ok" });
  strictEqual(results.late.ok, false);
  strictEqual(!results.late.ok && (results.late.error as DOMException).name, "TimeoutError");
  strictEqual((seen.aborted as DOMException).name, "TimeoutError");
});

Deno.test("fanOut() settles what is still running or waiting when the whole budget passes, aborting the losers", async () => {
  const seen: { aborted?: unknown } = {};
  let startedWaiting = false;
  const results = await within(
    fanOut({
      quick: () => Promise.resolve(1),
      loser: slow(5_000, 2, seen),
      waiting: () => {
        startedWaiting = true;
        return Promise.resolve(3);
      },
    }, { budgetMs: 40, concurrency: 2 }),
    2_000,
    "the fan-out under a 40 ms budget",
  );
  deepStrictEqual(results.quick, { ok: true, value: 1 });
  ok(!results.loser.ok && (results.loser.error as DOMException).name === "TimeoutError");
  strictEqual((seen.aborted as DOMException).name, "TimeoutError");
  // `waiting` got quick's slot as soon as quick finished, so it ran.
  ok(startedWaiting);
  deepStrictEqual(results.waiting, { ok: true, value: 3 });
});

Deno.test("fanOut() settles branches that never got a slot with the whole budget's TimeoutError", async () => {
  let ranSecond = false;
  const results = await within(
    fanOut([slow(5_000, 1), () => {
      ranSecond = true;
      return Promise.resolve(2);
    }], { budgetMs: 30, concurrency: 1 }),
    2_000,
    "the fan-out with a queued branch",
  );
  strictEqual(ranSecond, false);
  ok(!results[0].ok && (results[0].error as DOMException).name === "TimeoutError");
  ok(!results[1].ok && (results[1].error as DOMException).name === "TimeoutError");
});

Deno.test("fanOut() rejects with a required branch's error and aborts the branches still running", async () => {
  const seen: { aborted?: unknown } = {};
  const failure = new Error("order store down");
  const started = Date.now();
  await rejects(
    within(
      fanOut({
        order: {
          run: async () => {
            await delay(10);
            throw failure;
          },
          required: true,
        },
        extra: slow(5_000, "x", seen),
      }),
      2_000,
      "the fan-out with a failing required branch",
    ),
    (err) => err === failure,
  );
  ok(Date.now() - started < 1_000);
  strictEqual(seen.aborted, failure);
});

Deno.test("fanOut() rejects when a required branch outlives its budget", async () => {
  await rejects(
    within(fanOut({ order: { run: slow(5_000, 1), required: true, budgetMs: 20 } }), 2_000, "the fan-out"),
    (err) => err instanceof DOMException && err.name === "TimeoutError",
  );
});

Deno.test("fanOut() follows the request context's signal and its own: cancelled, it rejects and aborts every branch", async () => {
  const request = new AbortController();
  const seen: { aborted?: unknown } = {};
  const running = runWithContext(
    { requestId: "r-1", signal: request.signal },
    () => fanOut({ a: slow(5_000, 1, seen) }),
  );
  setTimeout(() => request.abort(new Error("client went away")), 10);
  await rejects(within(running, 2_000, "the cancelled fan-out"), /client went away/);
  strictEqual((seen.aborted as Error).message, "client went away");

  const caller = new AbortController();
  caller.abort(new Error("already cancelled"));
  let ran = false;
  await rejects(
    within(fanOut({ a: () => Promise.resolve(ran = true) }, { signal: caller.signal }), 1_000, "the fan-out"),
    /already cancelled/,
  );
  strictEqual(ran, false);
});

Deno.test("fanOut() counts a branch that throws synchronously as failed", async () => {
  const results = await within(
    fanOut({
      sync: () => {
        throw new Error("sync");
      },
    }),
    1_000,
    "the fan-out",
  );
  ok(!results.sync.ok && (results.sync.error as Error).message === "sync");
  deepStrictEqual(await within(fanOut({}), 1_000, "an empty fan-out"), {});
});

Deno.test("fanOut() refuses bad arguments with TypeError/RangeError naming the value", () => {
  throws(() => fanOut(null as never), {
    name: "TypeError",
    message: "Cannot fan out as branches is not a record or an array: current value is null",
  });
  throws(() => fanOut({}, { concurrency: 0 }), {
    name: "RangeError",
    message: "Cannot fan out as concurrency is not an integer >= 1 or Infinity: current value is 0",
  });
  throws(() => fanOut({}, { budgetMs: -1 }), /Cannot fan out as budgetMs .*: current value is -1/);
  throws(() => fanOut({ a: { run: "x" as never } }), {
    name: "TypeError",
    message: 'Cannot fan out branch a as run is not a function: current value is "x"',
  });
  throws(() => fanOut({ a: { run: () => Promise.resolve(), budgetMs: NaN } }), RangeError);
});
