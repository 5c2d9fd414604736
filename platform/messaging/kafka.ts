import { Buffer } from "node:buffer";
import {
  type Admin,
  type Consumer,
  type IHeaders,
  Kafka,
  type KafkaJSError,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import kafkajs from "kafkajs";
import { createLogger, type Logger } from "../log/logger.ts";
import { backoffDelay, type BackoffOptions, delay } from "../async/backoff.ts";
import { handleInContext, outgoingHeaders } from "./context_propagation.ts";
import type {
  Features,
  Message,
  MessageHandler,
  OutgoingMessage,
  PubSub,
  SubscribeOptions,
  Subscription,
} from "./message.ts";
import { assertOutgoing, assertPayloadSize, assertTopic, concurrencyOf, positiveInteger } from "./validate.ts";

/** What the Kafka adapter guarantees; see {@linkcode createKafkaPubSub}. */
export const kafkaFeatures: Features = Object.freeze({
  persistent: true,
  consumerGroups: true,
  orderedPerKey: true,
  redelivery: true,
  requestReply: false,
  wildcards: false,
  maxMessageBytes: 1024 * 1024 - 8 * 1024,
});

/** Kafka record headers that carry message fields Kafka has no slot for (key and timestamp travel natively). */
export const KafkaMessageHeaders = Object.freeze({ id: "message-id" });

/** Consumer tuning; the defaults favour fast group joins and low latency on a local broker. */
export interface KafkaConsumerTuning {
  /** Broker evicts a member silent for this long; must lie within the broker's group session bounds. @default {10000} */
  sessionTimeout?: number;
  /** How often members heartbeat, which is also how fast they notice a rebalance. @default {500} */
  heartbeatInterval?: number;
  /** How long the coordinator waits for members to rejoin during a rebalance. @default {10000} */
  rebalanceTimeout?: number;
  /** Longest a fetch waits for new data at the broker. @default {100} */
  maxWaitTimeInMs?: number;
  /** How long `subscribe` waits for the consumer to join its group before it fails. @default {30000} */
  joinTimeoutMs?: number;
}

/** Options for {@linkcode createKafkaPubSub}. */
export interface KafkaPubSubOptions {
  /** Bootstrap brokers. @default {["127.0.0.1:9092"]} */
  brokers?: string[];
  /** Client id the broker logs. @default {"trellis"} */
  clientId?: string;
  /** Receives kafkajs's own log lines (WARN and above) and handler failures. @default {createLogger("messaging")} */
  logger?: Logger;
  /** Backoff between in-place retries of a message whose handler threw. @default {{ initialDelayMs: 100, maxDelayMs: 2000 }} */
  redelivery?: BackoffOptions;
  /** Consumer settings. */
  consumer?: KafkaConsumerTuning;
  /**
   * Largest payload `publish` accepts. The default fits the broker's default `message.max.bytes` (1 MiB + 12 bytes
   * per record batch) with room for the key, headers and batch overhead; raise it only together with the broker's
   * and topic's limits. @default {1040384}
   */
  maxMessageBytes?: number;
}

/** Options for {@linkcode KafkaPubSub.ensureTopics}. */
export interface EnsureTopicsOptions {
  /** Partitions each topic has at least; an existing topic with fewer is grown. @default {1} */
  partitions?: number;
  /** Replicas per partition. @default {1} */
  replicationFactor?: number;
}

/** The Kafka adapter: a {@linkcode PubSub} plus topic administration. */
export interface KafkaPubSub extends PubSub {
  /** Creates the topics that do not exist yet (and grows ones with too few partitions), waiting for their leaders. */
  ensureTopics(topics: string[], options?: EnsureTopicsOptions): Promise<void>;
}

/**
 * Creates a Kafka publisher/subscriber on kafkajs: **at-least-once**, ordered per key.
 *
 * - `publish` waits for acknowledgement from all in-sync replicas (`acks: -1`); the key picks the partition
 *   (kafkajs `DefaultPartitioner`, murmur2 as in the Java client), so same-key messages keep their order.
 * - Each subscription is its own consumer in group `options.group`, which is required. A new group starts from the
 *   earliest offset. `concurrency` is how many partitions are handled at once; within a partition messages are handled
 *   one at a time, in order.
 * - An offset is committed only after the handler resolved (kafkajs `eachMessage` resolves it, auto-commit writes it
 *   after each batch), so a crash before the commit means redelivery.
 * - A handler that throws is retried in place, with backoff and `attempt` + 1, before its partition moves on; the
 *   consumer keeps heartbeating between retries. A rebalance or `close()` during the retries leaves the offset
 *   uncommitted, so the next owner of the partition gets the message again (with `attempt` back at 1).
 * - Handlers must finish within `sessionTimeout`: kafkajs heartbeats between messages only.
 * - Id travels in the `message-id` header, payload as the record value, headers as UTF-8 record headers.
 * - Payloads over `maxMessageBytes` are rejected by `publish` before anything is sent.
 *
 * @example Payments consumes order events
 * ```ts ignore
 * import { createKafkaPubSub } from "./kafka.ts";
 * const bus = createKafkaPubSub({ brokers: ["127.0.0.1:9092"] });
 * await bus.ensureTopics(["orders.events"], { partitions: 6 });
 * const sub = await bus.subscribe("orders.events", async (msg) => {
 *   console.log(msg.key, msg.attempt);
 * }, { group: "payments", concurrency: 6 });
 * await bus.publish("orders.events", { key: "order-1", payload: new TextEncoder().encode("{}") });
 * await sub.close();
 * await bus.close();
 * ```
 */
export function createKafkaPubSub(options: KafkaPubSubOptions = {}): KafkaPubSub {
  const logger = options.logger ?? createLogger("messaging");
  const redelivery = { initialDelayMs: 100, maxDelayMs: 2000, ...options.redelivery };
  const tuning = {
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    rebalanceTimeout: 10_000,
    maxWaitTimeInMs: 100,
    ...options.consumer,
  };
  const { joinTimeoutMs = 30_000, ...consumerTuning } = tuning;
  const kafka = new Kafka({
    clientId: options.clientId ?? "trellis",
    brokers: options.brokers ?? ["127.0.0.1:9092"],
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => logKafka(logger, entry),
  });
  const maxMessageBytes = positiveInteger(
    options.maxMessageBytes ?? kafkaFeatures.maxMessageBytes,
    "create a Kafka adapter",
    "maxMessageBytes",
  );
  const features: Features = Object.freeze({ ...kafkaFeatures, maxMessageBytes });
  const subscriptions = new Set<Subscription>();
  let producer: Promise<Producer> | undefined;
  let admin: Promise<Admin> | undefined;
  let closing: Promise<void> | undefined;

  const connected = <T extends { connect(): Promise<void> }>(client: T): Promise<T> =>
    client.connect().then(() => client);

  const getProducer = () =>
    producer ??= connected(
      kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: true }),
    );
  const getAdmin = () => admin ??= connected(kafka.admin());

  const assertOpen = (action: string) => {
    if (closing) throw new Error(`Cannot ${action} as the Kafka adapter is closed`);
  };

  return {
    features,

    async ensureTopics(topics: string[], opts: EnsureTopicsOptions = {}): Promise<void> {
      for (const topic of topics) assertTopic(topic, "ensure topics");
      assertOpen("ensure topics");
      const partitions = opts.partitions ?? 1;
      const a = await getAdmin();
      const existing = new Set(await a.listTopics());
      const missing = topics.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        await a.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({
            topic,
            numPartitions: partitions,
            replicationFactor: opts.replicationFactor ?? 1,
          })),
        });
      }
      const present = topics.filter((t) => existing.has(t));
      if (present.length > 0) {
        const { topics: meta } = await a.fetchTopicMetadata({ topics: present });
        const grow = meta.filter((m) => m.partitions.length < partitions);
        if (grow.length > 0) {
          await a.createPartitions({ topicPartitions: grow.map((m) => ({ topic: m.name, count: partitions })) });
        }
      }
    },

    async publish(topic: string, out: OutgoingMessage): Promise<void> {
      assertTopic(topic, "publish");
      assertOutgoing(out);
      assertPayloadSize(topic, out.payload, maxMessageBytes);
      assertOpen(`publish to "${topic}"`);
      const headers: IHeaders = outgoingHeaders(out.headers);
      headers[KafkaMessageHeaders.id] = out.id ?? crypto.randomUUID();
      const p = await getProducer();
      await p.send({
        topic,
        acks: -1,
        messages: [{
          key: out.key,
          value: Buffer.from(out.payload.buffer, out.payload.byteOffset, out.payload.byteLength),
          headers,
          timestamp: String(Date.now()),
        }],
      });
    },

    async subscribe(topic: string, handler: MessageHandler, opts?: SubscribeOptions): Promise<Subscription> {
      assertTopic(topic, "subscribe");
      const concurrency = concurrencyOf(opts);
      if (!opts?.group) {
        throw new TypeError(
          `Cannot subscribe to Kafka topic "${topic}" without a consumer group: options.group is required, current value is ${opts?.group}`,
        );
      }
      assertOpen(`subscribe to "${topic}"`);
      const group = opts.group;
      const stopping = new AbortController();
      const consumer: Consumer = kafka.consumer({ groupId: group, ...consumerTuning });
      const joined = Promise.withResolvers<void>();
      const offJoin = consumer.on(consumer.events.GROUP_JOIN, () => joined.resolve());
      const offCrash = consumer.on(consumer.events.CRASH, (e) => {
        if (!e.payload.restart) joined.reject(e.payload.error);
      });
      let closed: Promise<void> | undefined;
      const subscription: Subscription = {
        close() {
          closed ??= (async () => {
            stopping.abort(new Error("subscription closed"));
            // disconnect() stops fetching, waits for the running eachMessage calls, commits, and leaves the group.
            await consumer.disconnect();
            offJoin();
            offCrash();
            subscriptions.delete(subscription);
          })();
          return closed;
        },
      };
      subscriptions.add(subscription);
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run({
          partitionsConsumedConcurrently: concurrency,
          eachMessage: async ({ topic, partition, message, heartbeat }) => {
            const base = toMessage(message);
            for (let attempt = 1;; attempt++) {
              try {
                await handleInContext(handler, { ...base, attempt });
                return;
              } catch (err) {
                if (stopping.signal.aborted) throw closedWhileRetrying(base.id, err);
                const wait = backoffDelay(attempt, redelivery);
                logger.warn("message handler failed; retrying in place", {
                  topic,
                  partition,
                  offset: message.offset,
                  group,
                  messageId: base.id,
                  attempt,
                  retryInMs: wait,
                  error: err,
                });
                await delay(wait, stopping.signal).catch(() => {
                  throw closedWhileRetrying(base.id, err);
                });
                // Throws when the group is rebalancing: the offset stays uncommitted and the new owner redelivers.
                await heartbeat();
              }
            }
          },
        });
        const timer = setTimeout(
          () =>
            joined.reject(
              new Error(`Kafka consumer for "${topic}" did not join group "${group}" in ${joinTimeoutMs} ms`),
            ),
          joinTimeoutMs,
        );
        await joined.promise.finally(() => clearTimeout(timer));
      } catch (err) {
        await subscription.close();
        throw err;
      }
      return subscription;
    },

    close(): Promise<void> {
      closing ??= (async () => {
        await Promise.all([...subscriptions].map((s) => s.close()));
        const [p, a] = await Promise.allSettled([producer, admin]);
        if (p.status === "fulfilled") await p.value?.disconnect();
        if (a.status === "fulfilled") await a.value?.disconnect();
      })();
      return closing;
    },
  };
}

/**
 * Leaves the offset uncommitted when a subscription closes during retries. A `KafkaJSError` because kafkajs logs any
 * other error from `eachMessage` as a failure, and this is an orderly stop; retriable (the default) because the
 * stopping runner then simply exits, while a non-retriable one is reported as a consumer crash.
 */
function closedWhileRetrying(id: string, cause: unknown): KafkaJSError {
  const last = cause instanceof Error ? cause.message : String(cause);
  // Reached through the default export: kafkajs spreads its error classes into its CommonJS exports, which Deno
  // cannot detect as named ESM exports.
  return new kafkajs.KafkaJSError(
    `subscription closed while message ${id} was being retried (last error: ${last}); its offset stays uncommitted`,
  );
}

function toMessage(m: KafkaMessage): Omit<Message, "attempt"> {
  const headers: Record<string, string> = {};
  let id: string | undefined;
  for (const [k, raw] of Object.entries(m.headers ?? {})) {
    const first = Array.isArray(raw) ? raw[0] : raw;
    if (first === undefined) continue;
    const v = first.toString();
    if (k === KafkaMessageHeaders.id) id = v;
    else headers[k] = v;
  }
  const value = m.value ?? Buffer.alloc(0);
  return {
    id: id ?? crypto.randomUUID(),
    key: m.key === null ? undefined : m.key.toString(),
    headers,
    // A plain view, not the Node `Buffer` subclass, so every adapter delivers the same type.
    payload: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    timestamp: Number(m.timestamp),
  };
}

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

function logKafka(logger: Logger, { namespace, level, log }: LogEntry): void {
  const { message, timestamp: _ts, logger: _name, ...fields } = log;
  logger[kafkaLevel(namespace, level, message)](`kafkajs: ${message}`, { namespace, ...fields });
}

/**
 * kafkajs logs every error response at ERROR, including the transient ones it handles itself (coordinator not yet
 * available, group rebalancing); those are debug noise. Failures that matter surface as thrown errors or crashes.
 */
function kafkaLevel(namespace: string, level: number, message: string): "error" | "warn" | "info" | "debug" {
  if (namespace === "Connection" && message.startsWith("Response ")) return "debug";
  if (message.startsWith("The group is rebalancing")) return "info";
  return LEVELS[level] ?? "error";
}
