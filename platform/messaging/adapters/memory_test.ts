import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { createLogger } from "../../log/mod.ts";
import { createMemoryBroker, memoryFeatures } from "./memory.ts";
import type { Message } from "../message.ts";
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
