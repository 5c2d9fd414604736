import { createLogger } from "../../log/mod.ts";
import { createKafkaPubSub } from "../adapters/kafka/kafkajs.ts";
import { createPlatformaticKafkaPubSub } from "../adapters/kafka/platformatic.ts";
import { testDeadLetterQueueConformance } from "./_conformance.ts";

const brokers = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");

testDeadLetterQueueConformance("openDeadLetterQueue() on Kafka (kafkajs)", () => {
  const bus = createKafkaPubSub({ brokers, logger: createLogger("messaging", { level: "error" }) });
  return Promise.resolve({
    bus,
    prepare: (topics) => bus.ensureTopics(topics),
    close: () => bus.close(),
  });
});

testDeadLetterQueueConformance("openDeadLetterQueue() on Kafka (@platformatic/kafka)", () => {
  const bus = createPlatformaticKafkaPubSub({ brokers, logger: createLogger("messaging", { level: "error" }) });
  return Promise.resolve({
    bus,
    prepare: (topics) => bus.ensureTopics(topics),
    close: () => bus.close(),
  });
});
