import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { runWithContext } from "../../context/mod.ts";
import type { Message } from "../message.ts";
import { retry } from "./retry.ts";

const msg: Message = { id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 };

function fakeSleep() {
  const waits: number[] = [];
  return { waits, sleep: (ms: number) => Promise.resolve(void waits.push(ms)) };
}

Deno.test("retry() calls the handler again after exponential backoff with full jitter until it succeeds", async () => {
  const { waits, sleep } = fakeSleep();
  let calls = 0;
  await retry({ maxAttempts: 4, baseDelayMs: 100, random: () => 0.5, sleep })(() => {
    if (++calls < 4) throw new Error(`fail ${calls}`);
  })(msg);
  strictEqual(calls, 4);
  deepStrictEqual(waits, [50, 100, 200]);
});

Deno.test("retry() gives up after attempts and rethrows the last error, passing the same message each time", async () => {
  const { waits, sleep } = fakeSleep();
  const seen: number[] = [];
  const handler = retry({ maxAttempts: 3, sleep, random: () => 0.999 })((m) => {
    seen.push(m.attempt);
    throw new Error(`fail ${seen.length}`);
  });
  await rejects(Promise.resolve(handler(msg)), /fail 3/);
  deepStrictEqual(seen, [1, 1, 1]);
  deepStrictEqual(waits, [49, 99]);
});

Deno.test("retry() stops retrying once the context's signal aborted", async () => {
  const { waits, sleep } = fakeSleep();
  const controller = new AbortController();
  let calls = 0;
  const handler = retry({ maxAttempts: 5, sleep })(() => {
    calls++;
    controller.abort();
    throw new Error("fail");
  });
  await rejects(runWithContext({ requestId: "r", signal: controller.signal }, () => Promise.resolve(handler(msg))));
  strictEqual(calls, 1);
  deepStrictEqual(waits, []);
});

Deno.test("retry() rejects attempts that are not a positive integer with RangeError", () => {
  throws(() => retry({ maxAttempts: 0 }), RangeError);
  throws(() => retry({ maxAttempts: 1.5 }), RangeError);
});

Deno.test("retry() does not retry an error marked retryable: false", async () => {
  const { waits, sleep } = fakeSleep();
  let calls = 0;
  const hopeless = Object.assign(new Error("payload breaks its schema"), { retryable: false });
  const handler = retry({ maxAttempts: 5, sleep })(() => {
    calls++;
    throw hopeless;
  });
  await rejects(Promise.resolve(handler(msg)), (err) => err === hopeless);
  strictEqual(calls, 1);
  deepStrictEqual(waits, []);
});
