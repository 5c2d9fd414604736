import { ok, rejects, strictEqual, throws } from "node:assert/strict";
import { currentContext } from "../../context/mod.ts";
import { handleInContext } from "../context_propagation.ts";
import { createLogger } from "../../log/mod.ts";
import { createMemoryBroker } from "../adapters/memory.ts";
import type { Message } from "../message.ts";
import { within } from "../../testing/mod.ts";
import { timeout } from "./timeout.ts";

const logger = createLogger("messaging", { level: "error" });
const msg: Message = {
  id: "m-1",
  headers: { "x-request-id": "r-1" },
  payload: new Uint8Array(),
  attempt: 1,
  timestamp: 0,
};

/** A handler's wait for its deadline, bounded so a timeout that never fires fails the test instead of hanging it. */
const untilAborted = (signal: AbortSignal) =>
  within(
    new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true })),
    5_000,
    "the handler's signal to abort at its timeout",
  );

Deno.test("timeout() aborts the handler's context signal at the deadline and fails with TimeoutError", async () => {
  let signal: AbortSignal | undefined;
  let requestId: string | undefined;
  const handler = timeout({ ms: 5 })(async () => {
    signal = currentContext()?.signal;
    requestId = currentContext()?.requestId;
    await untilAborted(signal!);
  });
  await rejects(handleInContext(handler, msg), (err: DOMException) => err.name === "TimeoutError");
  ok(signal?.aborted);
  strictEqual((signal?.reason as DOMException).name, "TimeoutError");
  strictEqual(requestId, "r-1");
});

Deno.test("timeout() sets a deadline no later than the message's own", async () => {
  const earlier = Date.now() + 60_000;
  let deadline: number | undefined;
  const handler = timeout({ ms: 3_600_000 })(() => void (deadline = currentContext()?.deadline));
  await handleInContext(handler, { ...msg, headers: { "x-deadline-ms": String(earlier) } });
  strictEqual(deadline, earlier);
});

Deno.test("timeout() lets a handler that finishes in time acknowledge, and clears its timer", async () => {
  let handled = false;
  await timeout({ ms: 3_600_000 })(() => void (handled = true))(msg);
  ok(handled);
});

Deno.test("timeout() on the memory broker gets a timed-out message redelivered", async () => {
  const bus = createMemoryBroker({ logger, redelivery: { baseDelayMs: 1 } });
  const done = Promise.withResolvers<number>();
  await bus.subscribe(
    "timeout.redelivery",
    timeout({ ms: 5 })(async (m) => {
      if (m.attempt === 1) return await untilAborted(currentContext()!.signal);
      done.resolve(m.attempt);
    }),
    { group: "g" },
  );
  await bus.publish("timeout.redelivery", { payload: new Uint8Array([1]) });
  strictEqual(await within(done.promise, 5_000, "the timed-out message redelivered"), 2);
  await bus.close();
});

Deno.test("timeout() rejects a non-positive budget with RangeError", () => {
  throws(() => timeout({ ms: 0 }), RangeError);
});
