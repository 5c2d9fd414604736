/**
 * Shared by the messaging benchmarks: raw kafkajs driven as a careful user would, one consumer group member feeding a
 * {@linkcode Recorder} and one producer sending one message per `send` with `acks: -1`.
 */
import { Buffer } from "node:buffer";
import { type ConsumerConfig, Kafka, logLevel, Partitioners } from "kafkajs";
import { KafkaMessageHeaders } from "@trellis/platform/messaging";
import type { Recorder } from "./recorder.ts";

/** What {@linkcode rawKafkajs} runs against. */
export interface RawKafkajsOptions {
  clientId: string;
  brokers: string[];
  topic: string;
  group: string;
  /** Consumer settings besides the group id. */
  consumer: Omit<ConsumerConfig, "groupId">;
  /** Partitions consumed concurrently. */
  partitions: number;
  rec: Recorder;
  /** Send and read back the adapter's message-id header (the envelope reference), or send bare messages. */
  envelope?: boolean;
}

/** A joined consumer and a connected producer; `publish` resolves once the broker confirmed the send. */
export interface RawKafkajsRig {
  publish(payload: Uint8Array, key: string): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Connects a consumer (resolving once it joined its group) and a producer on `o.topic`.
 *
 * @example
 * ```ts ignore
 * import { Recorder } from "./recorder.ts";
 * import { rawKafkajs } from "./raw_kafkajs.ts";
 * const rec = new Recorder(1000);
 * const rig = await rawKafkajs({ clientId: "bench", brokers: ["127.0.0.1:9092"], topic: "t", group: "g",
 *   consumer: {}, partitions: 3, rec });
 * ```
 */
export async function rawKafkajs(o: RawKafkajsOptions): Promise<RawKafkajsRig> {
  const kafka = new Kafka({ clientId: o.clientId, brokers: o.brokers, logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: o.group, ...o.consumer });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: true });
  try {
    const joined = Promise.withResolvers<void>();
    consumer.on(consumer.events.GROUP_JOIN, () => joined.resolve());
    consumer.on(consumer.events.CRASH, (e) => joined.reject(e.payload.error));
    await consumer.connect();
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: o.partitions,
      eachMessage: ({ message }) => {
        if (o.envelope && !message.headers?.[KafkaMessageHeaders.id]?.toString()) throw new Error("no envelope");
        if (message.value) o.rec.record(message.value);
        return Promise.resolve();
      },
    });
    await joined.promise;
    await producer.connect();
  } catch (err) {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    throw err;
  }
  return {
    publish: (payload, key) =>
      producer.send({
        topic: o.topic,
        acks: -1,
        messages: [{
          key,
          value: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
          headers: o.envelope ? { [KafkaMessageHeaders.id]: crypto.randomUUID() } : undefined,
        }],
      }),
    async close() {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}
