import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { within } from "../testing/mod.ts";
import { delay } from "./backoff.ts";
import { Group } from "./group.ts";

Deno.test("Group.wait() resolves once every task has finished, never running more than limit at once", async () => {
  const group = new Group({ limit: 2 });
  let running = 0;
  let peak = 0;
  const done: number[] = [];
  for (let i = 0; i < 6; i++) {
    group.go(async (signal) => {
      running++;
      peak = Math.max(peak, running);
      await delay(5, signal);
      running--;
      done.push(i);
    });
  }
  await within(group.wait(), 2_000, "the group to finish");
  strictEqual(peak, 2);
  deepStrictEqual(done.sort(), [0, 1, 2, 3, 4, 5]);
  strictEqual(group.signal.aborted, false);
});

Deno.test("Group: the first failure aborts the others through the shared signal, drops waiting tasks, and wait() rejects with it", async () => {
  const group = new Group({ limit: 2 });
  const first = new Error("shard 1 down");
  const aborted: unknown[] = [];
  let ranQueued = false;
  group.go(async (signal) => {
    try {
      await delay(5_000, signal);
    } catch (err) {
      aborted.push(err);
      throw new Error("aborted, a later error");
    }
  });
  group.go(async () => {
    await delay(5);
    throw first;
  });
  group.go(() => Promise.resolve(ranQueued = true));
  await rejects(within(group.wait(), 2_000, "the failed group"), (err) => err === first);
  deepStrictEqual(aborted, [first]);
  strictEqual(group.signal.reason, first);
  strictEqual(ranQueued, false);
  group.go(() => Promise.resolve(ranQueued = true));
  strictEqual(ranQueued, false, "a task given after the failure ran");
});

Deno.test("Group follows the request context's signal", async () => {
  const request = new AbortController();
  const group = runWithContext({ requestId: "r-1", signal: request.signal }, () => new Group());
  group.go((signal) => delay(5_000, signal));
  request.abort(new Error("deadline"));
  await rejects(within(group.wait(), 2_000, "the cancelled group"), /deadline/);
});

Deno.test("Group refuses bad arguments with TypeError/RangeError naming the value", () => {
  throws(() => new Group({ limit: 1.5 }), {
    name: "RangeError",
    message: "Cannot create a group as limit is not an integer >= 1 or Infinity: current value is 1.5",
  });
  throws(() => new Group().go(42 as never), {
    name: "TypeError",
    message: "Cannot run a task in a group as task is not a function: current value is 42",
  });
  ok(true);
});
