import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "../../../log/mod.ts";
import { within } from "../../../testing/mod.ts";
import { createKafkaPubSub, kafkaFeatures, topicPattern } from "./kafkajs.ts";
import {
  type ConformanceTarget,
  startInfraBroker,
  testKafkaAdapterCases,
  testPubSubConformance,
} from "../../testing/mod.ts";

const brokers = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
const verbose = Deno.env.get("KAFKA_TEST_LOG") !== undefined;
const logger = createLogger("messaging", { level: verbose ? "debug" : "error" });
/** For the private broker the restart case stops: kafkajs logs every refused connection of the outage as an error. */
const outageLogger = verbose ? logger : createLogger("messaging", { write: () => {} });

/**
 * A conformance target on `brokerList`; exported for the crash case's consumer process. The shortest session timeout
 * the broker allows (6 s) lets a restarted consumer take over a killed one's partitions sooner; a short pattern
 * refresh lets the wildcard case see a new topic soon. Closing deletes the case's topics again.
 *
 * @example
 * ```ts ignore
 * const target = await kafkaTarget(["127.0.0.1:9092"]);
 * await target.createTopic?.("orders.events", { partitions: 3 });
 * ```
 */
export function kafkaTarget(brokerList: string[] = brokers, log = logger): Promise<ConformanceTarget> {
  const bus = createKafkaPubSub({
    brokers: brokerList,
    logger: log,
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
      const admin = new Kafka({ brokers: brokerList, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [...topics] });
      } finally {
        await admin.disconnect();
      }
    },
  });
}

testPubSubConformance("kafka", () => kafkaTarget(), kafkaFeatures, {
  consumerProcess: { module: import.meta.url, export: "kafkaTarget" },
  async restartableBroker() {
    const broker = await startInfraBroker("kafka");
    return { ...broker, connect: () => kafkaTarget([`127.0.0.1:${broker.port}`], outageLogger) };
  },
});

Deno.test("topicPattern() turns * and > tokens into a RegExp over dot-separated topic names", () => {
  const star = topicPattern("orders.*.created")!;
  deepStrictEqual(
    ["orders.eu.created", "orders.eu.x.created", "orders.created", "orders.eu.createdx"].map((t) => star.test(t)),
    [true, false, false, false],
  );
  const tail = topicPattern("orders.>")!;
  deepStrictEqual(["orders.a", "orders.a.b", "orders", "ordersx.a"].map((t) => tail.test(t)), [
    true,
    true,
    false,
    false,
  ]);
  strictEqual(topicPattern("orders.events"), undefined);
  strictEqual(topicPattern("a-b.*")!.test("a-b.c"), true);
  throws(() => topicPattern("orders.>.created"), TypeError);
  throws(() => topicPattern("orders.eu*"), TypeError);
});

testKafkaAdapterCases("createKafkaPubSub()", createKafkaPubSub, brokers, logger);

Deno.test("createKafkaPubSub() delivers every payload of a batch intact, across its 16 KiB copy blocks and with a 1-byte maxBufferedBytes", async () => {
  const topic = `kafka-payloads.${crypto.randomUUID().slice(0, 8)}`;
  const n = 60;
  // Sizes from 0 to about 20 KiB, so consecutive payloads share a block, fill one, or need one of their own.
  const payloadOf = (i: number) => new Uint8Array(i % 7 === 0 ? 0 : (i * 4099) % 20_000 + 1).fill(i);
  const check = async (consumer: { maxBufferedBytes?: number }) => {
    const bus = createKafkaPubSub({ brokers, logger, consumer });
    try {
      const received = new Map<string, Uint8Array>();
      const all = Promise.withResolvers<void>();
      await bus.subscribe(topic, (msg) => {
        received.set(msg.id, msg.payload);
        if (received.size === n) all.resolve();
      }, { group: `g.${crypto.randomUUID().slice(0, 8)}`, concurrency: 4 });
      await within(all.promise, 30_000, `all ${n} messages`).catch((err) => {
        throw new Error(`${err.message}; ${received.size} arrived`, { cause: err });
      });
      // Checked once all are handled: a payload kept past its handler is not overwritten by later messages.
      for (let i = 0; i < n; i++) deepStrictEqual(received.get(`m${i}`), payloadOf(i), `payload of m${i}`);
    } finally {
      await bus.close();
    }
  };
  const publisher = createKafkaPubSub({ brokers, logger });
  try {
    await publisher.ensureTopics([topic]);
    await Promise.all(
      Array.from(
        { length: n },
        (_, i) => publisher.publish(topic, { id: `m${i}`, key: `k${i % 5}`, payload: payloadOf(i) }),
      ),
    );
  } finally {
    await publisher.close();
  }
  await check({});
  await check({ maxBufferedBytes: 1 });
});

Deno.test("createKafkaPubSub() drops thousands of queued messages on close() one after another, without overflowing the stack", async () => {
  const bus = createKafkaPubSub({ brokers, logger, consumer: { maxBufferedMessages: 10_000 } });
  const topic = `kafka-drop.${crypto.randomUUID().slice(0, 8)}`;
  await bus.ensureTopics([topic]);
  const n = 6000;
  // Half without a key (each waits for the one slot) and half on one key (queued in its lane).
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) => bus.publish(topic, { id: `m${i}`, key: i % 2 ? "one" : undefined, payload: new Uint8Array() }),
    ),
  );
  const first = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  let handled = 0;
  const sub = await bus.subscribe(topic, async () => {
    handled++;
    first.resolve();
    await within(gate.promise, 60_000, "the test to open the first handler's gate");
  }, { group: `g.${crypto.randomUUID().slice(0, 8)}`, concurrency: 1 });
  await within(first.promise, 30_000, "the first of the queued messages");
  // Time for kafkajs to fetch the rest (one fetch holds them all) while the first handler holds the only slot.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const closed = sub.close();
  gate.resolve();
  await within(closed, 30_000, "close() to drop the thousands of queued messages");
  strictEqual(handled, 1);
  await bus.close();
});
