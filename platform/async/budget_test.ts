import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { currentContext, remainingMs, runWithContext } from "../context/mod.ts";
import { within } from "../testing/mod.ts";
import { delay } from "./backoff.ts";
import { withBudget } from "./budget.ts";

Deno.test("withBudget() gives every step of a flow one deadline: the step running when it passes is aborted", async () => {
  const steps: string[] = [];
  let aborted: unknown;
  const started = performance.now();
  await rejects(
    within(
      withBudget(120, async (signal) => {
        await delay(40, signal);
        steps.push("one");
        await delay(40, signal);
        steps.push("two");
        await delay(5_000, signal).catch((err) => {
          aborted = err;
          throw err;
        });
        steps.push("three");
      }),
      2_000,
      "the flow past its budget",
    ),
    (err) => err instanceof DOMException && err.name === "TimeoutError",
  );
  const ms = performance.now() - started;
  deepStrictEqual(steps, ["one", "two"]);
  ok(ms >= 110 && ms < 1_000, `the flow ended after ${Math.round(ms)} ms`);
  strictEqual((aborted as DOMException).name, "TimeoutError");
});

Deno.test("withBudget(): the steps see the budget as the context's deadline, capped by the caller's, with its request id", async () => {
  const inner = await within(withBudget(1_000, () => Promise.resolve(remainingMs())), 1_000, "the flow");
  ok(inner !== undefined && inner > 900 && inner <= 1_000, `remaining ${inner}`);

  const caller = { requestId: "r-7", signal: new AbortController().signal, deadline: Date.now() + 200 };
  const seen = await within(
    runWithContext(caller, () => withBudget(10_000, () => Promise.resolve(currentContext()))),
    1_000,
    "the flow under a caller",
  );
  strictEqual(seen?.requestId, "r-7");
  strictEqual(seen?.deadline, caller.deadline);
  strictEqual(await within(withBudget(50, (signal) => Promise.resolve(signal.aborted)), 1_000, "a quick flow"), false);
});

Deno.test("withBudget() rejects at its deadline even when a step ignores its signal, and with the caller's cancellation", async () => {
  const stuck = Promise.withResolvers<void>();
  await rejects(within(withBudget(30, () => stuck.promise), 2_000, "the stuck flow"), /deadline exceeded/);
  stuck.resolve();

  const request = new AbortController();
  const running = runWithContext(
    { requestId: "r-8", signal: request.signal },
    () => withBudget(10_000, (signal) => delay(5_000, signal)),
  );
  request.abort(new Error("client went away"));
  await rejects(within(running, 2_000, "the cancelled flow"), /client went away/);
});

Deno.test("withBudget() refuses bad arguments with TypeError/RangeError naming the value", () => {
  throws(() => withBudget(-5, () => Promise.resolve()), {
    name: "RangeError",
    message:
      "Cannot run a flow with a budget as budgetMs is not a finite number of milliseconds >= 0: current value is -5",
  });
  throws(() => withBudget(10, undefined as never), {
    name: "TypeError",
    message: "Cannot run a flow with a budget as flow is not a function: current value is undefined",
  });
});
