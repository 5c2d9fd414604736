import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { within } from "../testing/mod.ts";
import { delay } from "./backoff.ts";
import { pipeline } from "./pipeline.ts";

/** Counts how many calls of a stage run at once. */
function counter() {
  let running = 0;
  let peak = 0;
  return {
    enter: () => peak = Math.max(peak, ++running),
    leave: () => running--,
    peak: () => peak,
  };
}

Deno.test("pipeline() keeps source order through stages of different concurrency, each within its limit", async () => {
  const first = counter();
  const second = counter();
  const out = await within(
    pipeline(Array.from({ length: 12 }, (_, i) => i))
      .stage(async (n, signal) => {
        first.enter();
        // Later items finish sooner, so order is kept by the stage, not by timing.
        await delay(24 - n * 2, signal);
        first.leave();
        return n * 10;
      }, { concurrency: 4 })
      .stage(async (n, signal) => {
        second.enter();
        await delay(2, signal);
        second.leave();
        return `#${n}`;
      }, { concurrency: 2 })
      .collect(),
    5_000,
    "the pipeline to finish",
  );
  deepStrictEqual(out, Array.from({ length: 12 }, (_, i) => `#${i * 10}`));
  strictEqual(first.peak(), 4);
  ok(second.peak() <= 2 && second.peak() >= 1);
});

Deno.test("pipeline(): a slow consumer holds the stages back (back-pressure), so nothing runs ahead unbounded", async () => {
  let pulled = 0;
  function* source() {
    for (let i = 0; i < 100; i++) {
      pulled++;
      yield i;
    }
  }
  let started = 0;
  const p = pipeline(source())
    .stage((n: number) => Promise.resolve(started++ + n * 0), { concurrency: 3 })
    .stage((n: number) => Promise.resolve(n), { concurrency: 2 });
  const it = p[Symbol.asyncIterator]();
  await within(it.next(), 1_000, "the first result");
  await within(delay(20), 1_000, "a pause with the consumer idle");
  // The consumer took one item: the last stage holds at most 2, the first at most 3, plus the item in hand.
  ok(started <= 6, `the first stage started ${started} items`);
  ok(pulled <= 7, `the source gave ${pulled} items`);
  await within(it.return(undefined), 1_000, "the iteration to stop");
  strictEqual(p.signal.aborted, true, "stopping early did not abort the stages");
});

Deno.test("pipeline(): a failing stage aborts the work in flight in every stage and the iteration throws its error", async () => {
  const failure = new Error("parse failed");
  const aborted: unknown[] = [];
  const p = pipeline([1, 2, 3, 4, 5, 6])
    .stage(async (n: number, signal) => {
      try {
        await delay(n === 1 ? 1 : 5_000, signal);
      } catch (err) {
        aborted.push(err);
        throw err;
      }
      return n;
    }, { concurrency: 3 })
    .stage(async (n: number) => {
      await delay(1);
      if (n === 1) throw failure;
      return n;
    });
  await rejects(within(p.collect(), 2_000, "the failing pipeline"), (err) => err === failure);
  strictEqual(p.signal.reason, failure);
  ok(aborted.length >= 1 && aborted.every((err) => err === failure), `aborted with ${aborted}`);
});

Deno.test("pipeline() stops with its signal or the request context's, aborting what is in flight", async () => {
  const request = new AbortController();
  const aborted: unknown[] = [];
  const p = runWithContext(
    { requestId: "r-1", signal: request.signal },
    () =>
      pipeline([1, 2, 3]).stage(async (_n: number, signal) => {
        await delay(5_000, signal).catch((err) => {
          aborted.push(err);
          throw err;
        });
      }, { concurrency: 2 }),
  );
  const running = p.collect();
  setTimeout(() => request.abort(new Error("request over")), 10);
  await rejects(within(running, 2_000, "the cancelled pipeline"), /request over/);
  await within(delay(1), 1_000, "the aborted calls to record their error");
  strictEqual(aborted.length, 2);

  const cancelled = new AbortController();
  cancelled.abort(new Error("never mind"));
  await rejects(
    within(pipeline([1], { signal: cancelled.signal }).collect(), 1_000, "the pre-cancelled pipeline"),
    /never mind/,
  );
});

Deno.test("pipeline() over an async source, and a pipeline is iterated only once", async () => {
  async function* source() {
    yield "a";
    await delay(1);
    yield "b";
  }
  const p = pipeline(source()).stage((s: string) => Promise.resolve(s.toUpperCase()));
  deepStrictEqual(await within(p.collect(), 1_000, "the pipeline"), ["A", "B"]);
  await rejects(
    within(p.collect(), 1_000, "a second iteration"),
    /Cannot iterate a pipeline as it was already iterated/,
  );
});

Deno.test("pipeline() refuses bad arguments with TypeError/RangeError naming the value", () => {
  throws(() => pipeline(42 as never), {
    name: "TypeError",
    message: "Cannot start a pipeline as source is not an iterable or async iterable: current value is 42",
  });
  throws(() => pipeline([1]).stage((n) => Promise.resolve(n), { concurrency: 0 }), {
    name: "RangeError",
    message: "Cannot add a pipeline stage as concurrency is not an integer >= 1: current value is 0",
  });
  throws(() => pipeline([1]).stage(null as never), TypeError);
});
