import { rejects, strictEqual } from "node:assert/strict";
import { createLogger } from "../log/logger.ts";
import { createKafkaPubSub, kafkaFeatures } from "./kafka.ts";
import { testPubSubConformance } from "./testing/conformance.ts";

const brokers = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
const logger = createLogger("messaging", { level: Deno.env.get("KAFKA_TEST_LOG") ? "debug" : "error" });

testPubSubConformance("kafka", () => {
  const bus = createKafkaPubSub({ brokers, logger });
  return Promise.resolve({
    publisher: bus,
    subscriber: bus,
    createTopic: (topic, { partitions }) => bus.ensureTopics([topic], { partitions }),
  });
}, kafkaFeatures);

Deno.test("createKafkaPubSub() rejects a subscription without a consumer group with TypeError", async () => {
  const bus = createKafkaPubSub({ brokers, logger });
  await rejects(bus.subscribe("no-group", async () => {}), TypeError);
  await bus.close();
});

Deno.test("createKafkaPubSub() redelivers a message whose handler never succeeded to the group's next consumer", async () => {
  const bus = createKafkaPubSub({ brokers, logger, redelivery: { initialDelayMs: 20 } });
  const topic = `kafka-uncommitted.${crypto.randomUUID().slice(0, 8)}`;
  const group = `g.${crypto.randomUUID().slice(0, 8)}`;
  await bus.ensureTopics([topic]);
  const failing = Promise.withResolvers<void>();
  const first = await bus.subscribe(topic, (msg) => {
    if (msg.attempt >= 2) failing.resolve();
    throw new Error("still failing");
  }, { group });
  await bus.publish(topic, { id: "stuck", payload: new Uint8Array([1]) });
  await failing.promise;
  await first.close();
  const again = Promise.withResolvers<string>();
  await bus.subscribe(topic, (msg) => again.resolve(msg.id), { group });
  strictEqual(await again.promise, "stuck");
  await bus.close();
});
