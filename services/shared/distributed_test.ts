import assert from "node:assert/strict";
import { createLogger } from "@trellis/platform/log";
import { createMemoryBroker, type PubSub } from "@trellis/platform/messaging";
import { distributedOptionsFromEnv, prefixTopics } from "./distributed.ts";

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

Deno.test("distributedOptionsFromEnv() reads KAFKA_FETCH_MAX_WAIT_MS, defaults it to 500 ms and refuses a bad one", () => {
  assert.equal(distributedOptionsFromEnv({}, "t", log).kafkaFetchMaxWaitMs, 500);
  assert.equal(distributedOptionsFromEnv({ KAFKA_FETCH_MAX_WAIT_MS: "100" }, "t", log).kafkaFetchMaxWaitMs, 100);
  for (const bad of ["0", "1.5", "fast", "20000"]) {
    assert.throws(
      () => distributedOptionsFromEnv({ KAFKA_FETCH_MAX_WAIT_MS: bad }, "t", log),
      (err) => err instanceof RangeError && err.message.includes("KAFKA_FETCH_MAX_WAIT_MS"),
    );
  }
});

Deno.test("prefixTopics() prefixes consumer groups as well as topics, so runs sharing a broker never share a group", async () => {
  const seen: unknown[] = [];
  const bus = createMemoryBroker();
  const spy: PubSub = {
    ...bus,
    subscribe: (topic, handler, options) => (seen.push([topic, options]), bus.subscribe(topic, handler, options)),
  };
  const view = prefixTopics(spy, "t1-");
  const sub = await view.subscribe("orders.events", () => {}, { group: "inventory" });
  await view.subscribe("orders.events", () => {});
  assert.deepEqual(seen, [["t1-orders.events", { group: "t1-inventory" }], ["t1-orders.events", undefined]]);
  await sub.close();
  await bus.close();
});
