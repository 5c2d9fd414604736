import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { createLogger } from "../../log/mod.ts";
import { createMemoryBroker, memoryFeatures } from "./memory.ts";
import { type Message, reply } from "../message.ts";
import { RequestTimeoutError } from "../request_errors.ts";
import { MessageRouter } from "../router.ts";
import type { HandlerMiddleware } from "../middleware/mod.ts";
import { delay } from "../../async/mod.ts";
import { testPubSubConformance } from "../testing/mod.ts";
import { within } from "../../testing/mod.ts";

const quiet = createLogger("messaging", { write: () => {} });

testPubSubConformance(
  "memory",
  () => {
    const bus = createMemoryBroker({ logger: quiet });
    return Promise.resolve({ publisher: bus, subscriber: bus });
  },
  memoryFeatures,
  { inProcessBroker: true },
);

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("createMemoryBroker() retains messages for a group that subscribes later, from the earliest kept", async () => {
  const bus = createMemoryBroker({ retention: 4, logger: quiet });
  for (let i = 0; i < 10; i++) await bus.publish("t", { id: `m${i}`, payload: enc("") });
  const got: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  await bus.subscribe("t", (m) => {
    got.push(m.id);
    if (m.id === "m9") resolve();
  }, { group: "late" });
  await within(promise, 2_000, "the late group to reach m9");
  await bus.close();
  strictEqual(got.at(-1), "m9");
  strictEqual(got.length >= 4 && got.length <= 5, true, `kept ${got.length}`);
});

Deno.test("createMemoryBroker() gives a subscription without group only messages published after it", async () => {
  const bus = createMemoryBroker({ logger: quiet });
  await bus.publish("t", { id: "before", payload: enc("") });
  const got: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  await bus.subscribe("t", (m) => {
    got.push(m.id);
    resolve();
  });
  await bus.publish("t", { id: "after", payload: enc("") });
  await within(promise, 2_000, "the message published after the subscription");
  await bus.close();
  deepStrictEqual(got, ["after"]);
});

Deno.test("createMemoryBroker() resumes a group where it stopped after its subscriptions closed", async () => {
  const bus = createMemoryBroker({ logger: quiet });
  const got: string[] = [];
  let next = Promise.withResolvers<void>();
  const handler = (m: Message) => {
    got.push(m.id);
    next.resolve();
  };
  const first = await bus.subscribe("t", handler, { group: "g" });
  await bus.publish("t", { id: "a", payload: enc("") });
  await within(next.promise, 2_000, "message a on the first subscription");
  await first.close();
  next = Promise.withResolvers<void>();
  await bus.publish("t", { id: "b", payload: enc("") });
  await bus.subscribe("t", handler, { group: "g" });
  await within(next.promise, 2_000, "message b on the group's new subscription");
  await bus.close();
  deepStrictEqual(got, ["a", "b"]);
});

Deno.test("createMemoryBroker() blocks only the failing key while a message is redelivered", async () => {
  const bus = createMemoryBroker({ logger: quiet, redelivery: { baseDelayMs: 30 } });
  const order: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  await bus.subscribe("t", (m) => {
    if (m.id === "a1" && m.attempt === 1) throw new Error("once");
    order.push(m.id);
    if (order.length === 3) resolve();
  }, { group: "g", concurrency: 2 });
  await bus.publish("t", { id: "a1", key: "a", payload: enc("") });
  await bus.publish("t", { id: "a2", key: "a", payload: enc("") });
  await bus.publish("t", { id: "b1", key: "b", payload: enc("") });
  await within(promise, 2_000, "all three messages, a1 redelivered");
  await bus.close();
  deepStrictEqual(order, ["b1", "a1", "a2"]);
});

Deno.test("createMemoryBroker() rejects bad arguments with TypeError and RangeError", async () => {
  const bus = createMemoryBroker({ logger: quiet });
  await rejects(bus.publish("", { payload: enc("") }), TypeError);
  await rejects(bus.publish("t", { payload: "x" as unknown as Uint8Array }), TypeError);
  await rejects(bus.subscribe("t", async () => {}, { concurrency: 0 }), RangeError);
  await bus.close();
});

Deno.test("createMemoryBroker() lets a MessageRouter responder answer, its middleware wrapping the reply", async () => {
  const bus = createMemoryBroker({ logger: quiet });
  const via: HandlerMiddleware = (next) => (msg) =>
    next({
      ...msg,
      respond: msg.respond && ((r) => msg.respond!({ ...r, headers: { ...r.headers, "x-via": "middleware" } })),
    });
  const router = new MessageRouter({ bus, logger: quiet, middleware: [via] })
    .subscribe("quotes", (msg) => reply(msg, { payload: enc("42") }), { group: "pricing" });
  await router.start();
  const answer = await within(bus.request("quotes", { id: "q-1", payload: enc("sku") }), 2_000, "the reply");
  await router.close();
  await bus.close();
  strictEqual(new TextDecoder().decode(answer.payload), "42");
  strictEqual(answer.headers["x-via"], "middleware");
  strictEqual(answer.headers["x-correlation-id"], "q-1");
});

Deno.test("createMemoryBroker() drops a request's redelivery once its caller stopped waiting", async () => {
  const bus = createMemoryBroker({ logger: quiet, redelivery: { baseDelayMs: 150, maxDelayMs: 150 } });
  let calls = 0;
  await bus.subscribe("slow", () => {
    calls++;
    throw new Error("not now");
  }, { group: "g" });
  await rejects(bus.request("slow", { payload: enc("") }, { timeoutMs: 50 }), RequestTimeoutError);
  await delay(300);
  await bus.close();
  strictEqual(calls, 1);
});

Deno.test("createMemoryBroker() request() and reply() reject bad arguments, and close() ends a waiting request", async () => {
  const bus = createMemoryBroker({ logger: quiet });
  await bus.subscribe("t", () => {}, { group: "g" });
  await rejects(bus.request("t", { payload: enc("") }, { timeoutMs: 0 }), RangeError);
  await rejects(bus.request("t", { payload: enc("") }, { signal: "x" as unknown as AbortSignal }), TypeError);
  const msg: Message = { id: "m", headers: {}, payload: enc(""), attempt: 1, timestamp: 0 };
  await rejects(reply(msg, { payload: enc("") }), TypeError);
  const waiting = bus.request("t", { payload: enc("") }, { timeoutMs: 5_000 });
  const closed = bus.close();
  await rejects(within(waiting, 1_000, "the request to end"), /closed/);
  await within(closed, 1_000, "the broker to close");
});
