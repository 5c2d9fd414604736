import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { createLogger } from "../../log/mod.ts";
import { openDeadLetterQueue } from "../dlq/dead_letter_queue.ts";
import { createKafkaPubSub } from "../adapters/kafka/kafkajs.ts";
import { createMemoryBroker } from "../adapters/memory.ts";
import type { Message, Publisher } from "../message.ts";
import { deadLetter } from "./dead_letter.ts";
import { DatabaseUnavailableError } from "../../db/mod.ts";
import { within } from "../../testing/mod.ts";

const logger = createLogger("messaging", { level: Deno.env.get("KAFKA_TEST_LOG") ? "debug" : "error" });
const unique = (name: string) => `${name}.${crypto.randomUUID().slice(0, 8)}`;
const text = (s: string) => new TextEncoder().encode(s);
const msg = (attempt: number): Message => ({
  id: "m-1",
  key: "k-1",
  headers: { "x-request-id": "r-1" },
  payload: text("poison"),
  attempt,
  timestamp: 0,
});
const recorder = () => {
  const sent: { topic: string; msg: Parameters<Publisher["publish"]>[1] }[] = [];
  const publisher = {
    publish: (topic: string, m: (typeof sent)[0]["msg"]) => Promise.resolve(void sent.push({ topic, msg: m })),
  };
  return { sent, publisher: publisher as unknown as Publisher };
};

Deno.test("deadLetter() publishes the original message with dlq headers at maxAttempts and acknowledges", async () => {
  const { sent, publisher } = recorder();
  const handler = deadLetter("orders", { publisher, maxAttempts: 3, now: () => Date.UTC(2026, 0, 2) })(() => {
    throw new TypeError("bad\npayload");
  });
  await handler(msg(3));
  strictEqual(sent.length, 1);
  strictEqual(sent[0].topic, "orders.dlq");
  strictEqual(sent[0].msg.key, "k-1");
  deepStrictEqual(sent[0].msg.payload, text("poison"));
  deepStrictEqual(sent[0].msg.headers, {
    "x-request-id": "r-1",
    "dlq-error": "TypeError: bad payload",
    "dlq-attempts": "3",
    "dlq-source-topic": "orders",
    "dlq-failed-at": "2026-01-02T00:00:00.000Z",
    "dlq-message-id": "m-1",
  });
});

Deno.test("deadLetter() rethrows failures before maxAttempts and leaves successes alone", async () => {
  const { sent, publisher } = recorder();
  await rejects(
    Promise.resolve(
      deadLetter("orders", { publisher, maxAttempts: 3 })(() => {
        throw new Error("boom");
      })(msg(2)),
    ),
    /boom/,
  );
  await deadLetter("orders", { publisher, maxAttempts: 1 })(() => {})(msg(1));
  strictEqual(sent.length, 0);
});

Deno.test("deadLetter() truncates the error and names the topic with the topic option", async () => {
  const { sent, publisher } = recorder();
  await deadLetter("orders", { publisher, maxAttempts: 1, maxErrorLength: 10, topic: (s) => `dead.${s}` })(() => {
    throw new Error("x".repeat(100));
  })(msg(1));
  strictEqual(sent[0].topic, "dead.orders");
  strictEqual(sent[0].msg.headers?.["dlq-error"], "Error: xx…");
});

Deno.test("deadLetter() throws when the dead letter cannot be published, so the message is redelivered", async () => {
  const publisher = { publish: () => Promise.reject(new Error("broker down")) } as unknown as Publisher;
  const handler = deadLetter("orders", { publisher, maxAttempts: 1 })(() => {
    throw new Error("boom");
  });
  await rejects(Promise.resolve(handler(msg(1))), (err: Error) => (err.cause as Error).message === "broker down");
});

Deno.test("deadLetter() rejects bad arguments", () => {
  const { publisher } = recorder();
  throws(() => deadLetter("", { publisher }), TypeError);
  throws(() => deadLetter("orders", { publisher, maxAttempts: 0 }), RangeError);
});

Deno.test("deadLetter() on the memory broker unblocks the key after a poison message", async () => {
  const bus = createMemoryBroker({ logger, redelivery: { baseDelayMs: 1 } });
  const topic = unique("dlq-memory");
  const handled = Promise.withResolvers<string>();
  const dead = Promise.withResolvers<Message>();
  await bus.subscribe(`${topic}.dlq`, (m) => dead.resolve(m), { group: "ops" });
  await bus.subscribe(
    topic,
    deadLetter(topic, { publisher: bus, maxAttempts: 3 })((m) => {
      if (m.id === "poison") throw new Error("cannot parse");
      handled.resolve(m.id);
    }),
    { group: "g" },
  );
  await bus.publish(topic, { id: "poison", key: "k", payload: text("{") });
  await bus.publish(topic, { id: "next", key: "k", payload: text("{}") });
  strictEqual(await within(handled.promise, 5_000, "the message behind the poison one handled"), "next");
  const letter = await within(dead.promise, 5_000, "the poison message on <topic>.dlq");
  strictEqual(letter.headers["dlq-attempts"], "3");
  strictEqual(letter.headers["dlq-message-id"], "poison");
  await bus.close();
});

Deno.test({
  name: "deadLetter() on Kafka moves a message that always fails to <topic>.dlq and the partition moves on",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const brokers = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
    const bus = createKafkaPubSub({ brokers, logger, redelivery: { baseDelayMs: 20, maxDelayMs: 50 } });
    try {
      const topic = unique("dlq-kafka");
      await bus.ensureTopics([topic, `${topic}.dlq`], { partitions: 1 });
      const attempts: number[] = [];
      const next = Promise.withResolvers<string>();
      await bus.subscribe(
        topic,
        deadLetter(topic, { publisher: bus, maxAttempts: 3 })((m) => {
          if (m.id !== "poison") return next.resolve(m.id);
          attempts.push(m.attempt);
          throw new Error("always fails");
        }),
        { group: unique("g") },
      );
      await bus.publish(topic, { id: "poison", key: "order-1", headers: { tenant: "t-1" }, payload: text("{") });
      await bus.publish(topic, { id: "after", key: "order-1", payload: text("{}") });
      strictEqual(await within(next.promise, 30_000, "the message behind the poison one on Kafka"), "after");
      deepStrictEqual(attempts, [1, 2, 3]);
      const [letter, ...rest] = await openDeadLetterQueue(bus, `${topic}.dlq`).list();
      strictEqual(rest.length, 0);
      strictEqual(letter.messageId, "poison");
      strictEqual(letter.key, "order-1");
      strictEqual(letter.sourceTopic, topic);
      strictEqual(letter.attempts, 3);
      strictEqual(letter.error, "Error: always fails");
      ok(letter.failedAt && !Number.isNaN(Date.parse(letter.failedAt)));
      strictEqual(letter.payload.byteLength, 1);
    } finally {
      await bus.close();
    }
  },
});

Deno.test("deadLetter() dead-letters at once an error that says retrying cannot help (retryable: false)", async () => {
  const { sent, publisher } = recorder();
  const hopeless = Object.assign(new Error("does not match the schema"), { retryable: false });
  await deadLetter("orders", { publisher, maxAttempts: 5 })(() => Promise.reject(hopeless))(msg(1));
  strictEqual(sent.length, 1);
  strictEqual(sent[0].msg.headers?.["dlq-attempts"], "1");
});

Deno.test("deadLetter() never parks a message whose failure is an outage (transient: true), however often it fails", async () => {
  const { sent, publisher } = recorder();
  const outage = new DatabaseUnavailableError("database unavailable: connect ECONNREFUSED");
  const handler = deadLetter("orders", { publisher, maxAttempts: 5 })(() => Promise.reject(outage));
  for (const attempt of [1, 5, 6, 50]) {
    await rejects(Promise.resolve(handler(msg(attempt))), (err) => err === outage);
  }
  strictEqual(sent.length, 0);
  // The same failure count with an ordinary error is parked at maxAttempts.
  await deadLetter("orders", { publisher, maxAttempts: 5 })(() => Promise.reject(new Error("bug")))(msg(5));
  strictEqual(sent.length, 1);
});
