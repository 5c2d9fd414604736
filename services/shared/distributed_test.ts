import assert from "node:assert/strict";
import { createLogger } from "@trellis/platform/log";
import { distributedOptionsFromEnv } from "./distributed.ts";

const log = createLogger("test", { write: () => {} });

Deno.test("distributedOptionsFromEnv() picks the Kafka client from KAFKA_CLIENT and refuses an unknown one", () => {
  assert.equal(distributedOptionsFromEnv({}, "t", log).kafkaClient, "kafkajs");
  assert.equal(distributedOptionsFromEnv({ KAFKA_CLIENT: "kafkajs" }, "t", log).kafkaClient, "kafkajs");
  assert.equal(distributedOptionsFromEnv({ KAFKA_CLIENT: "platformatic" }, "t", log).kafkaClient, "platformatic");
  assert.throws(
    () => distributedOptionsFromEnv({ KAFKA_CLIENT: "rdkafka" }, "t", log),
    (err) => err instanceof RangeError && err.message.includes("KAFKA_CLIENT"),
  );
});
