import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { Admin, Consumer, stringDeserializers } from "@platformatic/kafka";
import { createLogger } from "../../../log/mod.ts";
import { within } from "../../../testing/mod.ts";
import { createKafkaPubSub, kafkaFeatures } from "./kafkajs.ts";
import { createPlatformaticKafkaPubSub } from "./platformatic.ts";
import type { Message } from "../../message.ts";
import {
  type ConformanceTarget,
  startInfraBroker,
  testKafkaAdapterCases,
  testPubSubConformance,
} from "../../testing/mod.ts";

const brokers = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
const logger = createLogger("messaging", { level: Deno.env.get("KAFKA_TEST_LOG") ? "debug" : "error" });

/**
 * A conformance target on `brokerList`, set up as kafka_test.ts sets up the kafkajs adapter's; exported for the crash
 * case's consumer process. The shortest session timeout the broker allows (6 s) lets a restarted consumer take over
 * a killed one's partitions sooner; a short pattern refresh lets the wildcard case see a new topic soon. Closing
 * deletes the case's topics again.
 */
export function platformaticTarget(brokerList: string[] = brokers): Promise<ConformanceTarget> {
  const bus = createPlatformaticKafkaPubSub({
    brokers: brokerList,
    logger,
    consumer: { sessionTimeout: 6000, rebalanceTimeout: 6000, patternRefreshMs: 500 },
  });
  const topics = new Set<string>();
  return Promise.resolve({
    publisher: bus,
    subscriber: bus,
    createTopic(topic, { partitions }) {
      topics.add(topic);
      return bus.ensureTopics([topic], { partitions });
    },
    async close() {
      if (topics.size === 0) return;
      const admin = new Admin({ clientId: "conformance-cleanup", bootstrapBrokers: brokerList });
      try {
        await admin.deleteTopics({ topics: [...topics] });
      } finally {
        await admin.close();
      }
    },
  });
}

testPubSubConformance("kafka-platformatic", () => platformaticTarget(), kafkaFeatures, {
  consumerProcess: { module: import.meta.url, export: "platformaticTarget" },
  async restartableBroker() {
    const broker = await startInfraBroker("kafka");
    return { ...broker, connect: () => platformaticTarget([`127.0.0.1:${broker.port}`]) };
  },
});

testKafkaAdapterCases("createPlatformaticKafkaPubSub()", createPlatformaticKafkaPubSub, brokers, logger);

Deno.test("createPlatformaticKafkaPubSub() commits the offset of a handler that was running when its subscription closed", async () => {
  const bus = createPlatformaticKafkaPubSub({ brokers, logger });
  const topic = `kafka-close-commit.${crypto.randomUUID().slice(0, 8)}`;
  const group = `g.${crypto.randomUUID().slice(0, 8)}`;
  await bus.ensureTopics([topic]);
  const started = Promise.withResolvers<void>();
  const first = await bus.subscribe(topic, async () => {
    started.resolve();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }, { group });
  await bus.publish(topic, { id: "in-flight", payload: new Uint8Array([1]) });
  await within(started.promise, 30_000, "the first handler to start");
  await first.close();
  await bus.publish(topic, { id: "next", payload: new Uint8Array([2]) });
  const firstSeen = Promise.withResolvers<string>();
  await bus.subscribe(topic, (msg) => firstSeen.resolve(msg.id), { group });
  strictEqual(await within(firstSeen.promise, 30_000, "the next message on the same group"), "next");
  await bus.close();
});

Deno.test("createPlatformaticKafkaPubSub() and createKafkaPubSub() read each other's messages with id, key and headers", async () => {
  const platformatic = createPlatformaticKafkaPubSub({ brokers, logger });
  const kafkajs = createKafkaPubSub({ brokers, logger });
  const topic = `kafka-interop.${crypto.randomUUID().slice(0, 8)}`;
  await platformatic.ensureTopics([topic], { partitions: 2 });
  const seen = { kafkajs: new Map<string, Message>(), platformatic: new Map<string, Message>() };
  const both = Promise.withResolvers<void>();
  const collect = (into: Map<string, Message>) => (msg: Message) => {
    into.set(msg.id, msg);
    if (seen.kafkajs.size === 2 && seen.platformatic.size === 2) both.resolve();
  };
  await kafkajs.subscribe(topic, collect(seen.kafkajs), { group: `g.${crypto.randomUUID().slice(0, 8)}` });
  await platformatic.subscribe(topic, collect(seen.platformatic), { group: `g.${crypto.randomUUID().slice(0, 8)}` });
  await kafkajs.publish(topic, { id: "from-kafkajs", key: "k1", headers: { h: "1" }, payload: new Uint8Array([1]) });
  await platformatic.publish(topic, {
    id: "from-platformatic",
    key: "k2",
    headers: { h: "2" },
    payload: new Uint8Array([2]),
  });
  await within(both.promise, 30_000, "both adapters to read both messages");
  for (const [reader, got] of Object.entries(seen)) {
    strictEqual(got.get("from-kafkajs")?.key, "k1", reader);
    strictEqual(got.get("from-kafkajs")?.headers.h, "1", reader);
    deepStrictEqual(got.get("from-kafkajs")?.payload, new Uint8Array([1]), reader);
    strictEqual(got.get("from-platformatic")?.key, "k2", reader);
    strictEqual(got.get("from-platformatic")?.headers.h, "2", reader);
    deepStrictEqual(got.get("from-platformatic")?.payload, new Uint8Array([2]), reader);
  }
  await Promise.all([kafkajs.close(), platformatic.close()]);
});

Deno.test("createPlatformaticKafkaPubSub() puts a key on the same partition as createKafkaPubSub() (murmur2 as in Java)", async () => {
  const platformatic = createPlatformaticKafkaPubSub({ brokers, logger });
  const kafkajs = createKafkaPubSub({ brokers, logger });
  const topic = `kafka-partitioner.${crypto.randomUUID().slice(0, 8)}`;
  // Six partitions: 2^31 mod 6 != 0, so a partitioner that maps negative hashes differently picks another partition.
  await platformatic.ensureTopics([topic], { partitions: 6 });
  const keys = Array.from({ length: 24 }, (_, i) => `order-${i}`);
  for (const key of keys) {
    await kafkajs.publish(topic, { key, headers: { via: "kafkajs" }, payload: new Uint8Array() });
    await platformatic.publish(topic, { key, headers: { via: "platformatic" }, payload: new Uint8Array() });
  }
  await Promise.all([kafkajs.close(), platformatic.close()]);

  const consumer = new Consumer({
    clientId: "partitioner-test",
    bootstrapBrokers: brokers,
    groupId: `g.${crypto.randomUUID().slice(0, 8)}`,
    maxWaitTime: 100,
    deserializers: stringDeserializers,
  });
  const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false });
  const partitionOf = new Map<string, number>();
  try {
    await within(
      (async () => {
        for await (const record of stream) {
          partitionOf.set(`${record.headers.get("via")}:${record.key}`, record.partition);
          if (partitionOf.size === keys.length * 2) break;
        }
      })(),
      30_000,
      "every key's record from both producers",
    );
  } finally {
    await stream.close();
    await consumer.close(true);
  }
  for (const key of keys) strictEqual(partitionOf.get(`platformatic:${key}`), partitionOf.get(`kafkajs:${key}`), key);
});
