import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { createLogger, type Logger } from "../../log/mod.ts";
import type { KafkaPubSub, KafkaPubSubOptions } from "../adapters/kafka/kafkajs.ts";
import type { Message } from "../message.ts";
import { startInfraBroker } from "./infra_broker.ts";
import { waitUntil, within } from "../../testing/mod.ts";

/**
 * Registers the Kafka-specific cases every Kafka adapter must pass beyond the universal suite (consumer groups are
 * required, an unacknowledged message goes to the group's next member, a rebalance loses nothing), named after
 * `factory`, e.g. `"createKafkaPubSub()"`.
 *
 * @example
 * ```ts ignore
 * import { createKafkaPubSub } from "../adapters/kafka/kafkajs.ts";
 * import { createLogger } from "../../log/mod.ts";
 * import { testKafkaAdapterCases } from "./kafka_cases.ts";
 * testKafkaAdapterCases("createKafkaPubSub()", createKafkaPubSub, ["127.0.0.1:9092"], createLogger("test"));
 * ```
 */
export function testKafkaAdapterCases(
  factory: string,
  create: (options: KafkaPubSubOptions) => KafkaPubSub,
  brokers: string[],
  logger: Logger,
): void {
  Deno.test(`${factory} rejects a subscription without a consumer group with TypeError`, async () => {
    const bus = create({ brokers, logger });
    await rejects(bus.subscribe("no-group", async () => {}), TypeError);
    await bus.close();
  });

  Deno.test(`${factory} serves once the broker is up after its first connection failed (nothing remembers the failure)`, async () => {
    await using broker = await startInfraBroker("kafka");
    await broker.stop();
    // Every refused connection of the outage is logged as an error by the client; this case expects them.
    const bus = create({
      brokers: [`127.0.0.1:${broker.port}`],
      logger: createLogger("messaging", { write: () => {} }),
    });
    const topic = `kafka-late-broker.${crypto.randomUUID().slice(0, 8)}`;
    await rejects(bus.publish(topic, { id: "early", payload: new Uint8Array([1]) }));
    await rejects(bus.ensureTopics([topic]));
    await broker.start();
    await bus.ensureTopics([topic]);
    const got = Promise.withResolvers<string>();
    await bus.subscribe(topic, (msg) => got.resolve(msg.id), { group: `g.${crypto.randomUUID().slice(0, 8)}` });
    await bus.publish(topic, { id: "late", payload: new Uint8Array([2]) });
    strictEqual(await within(got.promise, 30_000, "the message published once the broker was up"), "late");
    await bus.close();
  });

  Deno.test(`${factory} redelivers a message whose handler never succeeded to the group's next consumer`, async () => {
    const bus = create({ brokers, logger, redelivery: { baseDelayMs: 20 } });
    const topic = `kafka-uncommitted.${crypto.randomUUID().slice(0, 8)}`;
    const group = `g.${crypto.randomUUID().slice(0, 8)}`;
    await bus.ensureTopics([topic]);
    const failing = Promise.withResolvers<void>();
    const first = await bus.subscribe(topic, (msg) => {
      if (msg.attempt >= 2) failing.resolve();
      throw new Error("still failing");
    }, { group });
    await bus.publish(topic, { id: "stuck", payload: new Uint8Array([1]) });
    await within(failing.promise, 30_000, "the second failed attempt");
    await first.close();
    const again = Promise.withResolvers<string>();
    await bus.subscribe(topic, (msg) => again.resolve(msg.id), { group });
    strictEqual(await within(again.promise, 30_000, "the uncommitted message on the group's next consumer"), "stuck");
    await bus.close();
  });

  Deno.test(`${factory} loses no message while consumers join and leave its group mid-stream`, async () => {
    const bus = create({ brokers, logger, consumer: { sessionTimeout: 6000, rebalanceTimeout: 6000 } });
    const topic = `kafka-rebalance.${crypto.randomUUID().slice(0, 8)}`;
    const group = `g.${crypto.randomUUID().slice(0, 8)}`;
    await bus.ensureTopics([topic], { partitions: 4 });
    const n = 600;
    const handled = new Set<string>();
    const handler = async (msg: Message) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      handled.add(msg.id);
    };
    const until = (count: number) =>
      waitUntil(() => handled.size >= count, 60_000, `${count} of the ${n} messages handled`, 10);
    const first = await bus.subscribe(topic, handler, { group, concurrency: 4 });
    const publishing = (async () => {
      for (let i = 0; i < n; i += 20) {
        await Promise.all(
          Array.from(
            { length: 20 },
            (_, j) => bus.publish(topic, { id: `m${i + j}`, key: `k${(i + j) % 16}`, payload: new Uint8Array() }),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await until(100);
    await bus.subscribe(topic, handler, { group, concurrency: 4 });
    await until(300);
    await first.close();
    await within(publishing, 60_000, `the ${n} publishes`);
    await until(n);
    deepStrictEqual([...handled].sort(), Array.from({ length: n }, (_, i) => `m${i}`).sort());
    await bus.close();
  });
}
