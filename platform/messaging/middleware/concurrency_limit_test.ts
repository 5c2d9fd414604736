import { ok, rejects, strictEqual, throws } from "node:assert/strict";
import { runWithContext } from "../../context/mod.ts";
import { createLimiter } from "../limiter.ts";
import { createMemoryBroker } from "../adapters/memory.ts";
import type { Message } from "../message.ts";
import { within } from "../../testing/mod.ts";
import { concurrencyLimit } from "./concurrency_limit.ts";

const msg: Message = { id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 };

Deno.test("concurrencyLimit() keeps in-flight handlers at most max across subscriptions sharing it", async () => {
  const bus = createMemoryBroker();
  const limit = concurrencyLimit({ max: 3 });
  let inFlight = 0;
  let peak = 0;
  let handled = 0;
  const all = Promise.withResolvers<void>();
  const handler = async () => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 1));
    inFlight--;
    if (++handled === 40) all.resolve();
  };
  await bus.subscribe("limit.a", limit(handler), { group: "g", concurrency: 10 });
  await bus.subscribe("limit.b", limit(handler), { group: "g", concurrency: 10 });
  for (let i = 0; i < 20; i++) {
    await bus.publish("limit.a", { payload: new Uint8Array([i]) });
    await bus.publish("limit.b", { payload: new Uint8Array([i]) });
  }
  await within(all.promise, 5_000, "all 40 messages handled");
  strictEqual(peak, 3);
  await bus.close();
});

Deno.test("concurrencyLimit() fails a waiting message when its signal aborts, and the slot is not lost", async () => {
  const limiter = createLimiter(1);
  const handler = concurrencyLimit({ limiter })(() => {});
  await limiter.acquire();
  const controller = new AbortController();
  const waiting = runWithContext({ requestId: "r", signal: controller.signal }, () => Promise.resolve(handler(msg)));
  controller.abort(new Error("gone"));
  await rejects(within(waiting, 2_000, "the waiting message to fail when its signal aborted"), /gone/);
  limiter.release();
  await limiter.idle();
  strictEqual(limiter.active, 0);
  await handler(msg);
  ok(limiter.active === 0);
});

Deno.test("concurrencyLimit() needs exactly one of max and limiter", () => {
  throws(() => concurrencyLimit({}), TypeError);
  throws(() => concurrencyLimit({ max: 1, limiter: createLimiter(1) }), TypeError);
  throws(() => concurrencyLimit({ max: 0 }), RangeError);
});
