import { Buffer } from "node:buffer";
import {
  type Admin,
  type Consumer,
  type ConsumerConfig,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import type { Logger } from "../../../log/mod.ts";
import type { Message } from "../../message.ts";
import { createKafkaAdapter, type KafkaClientSettings } from "./adapter.ts";
import type { ConsumerDriver, DriverSink, FetchedRecord, KafkaClient, PayloadBlock } from "./driver.ts";
import { KafkaMessageHeaders, type KafkaPubSub, type KafkaPubSubOptions } from "./settings.ts";

export * from "./settings.ts";

/**
 * Creates a Kafka publisher/subscriber on kafkajs: **at-least-once**, ordered per key.
 *
 * - `publish` waits for acknowledgement from all in-sync replicas (`acks: -1`); the key picks the partition
 *   (kafkajs `DefaultPartitioner`, murmur2 as in the Java client), so same-key messages keep their order.
 * - Each subscription is its own consumer in group `options.group`, which is required. A new group starts from the
 *   earliest offset.
 * - Up to `concurrency` handlers run at once, across partitions and within one: messages with the same key are
 *   handled one at a time, in order; messages without a key are not ordered.
 * - Backpressure: a subscription holds at most `maxBufferedMessages` (and `maxBufferedBytes` of payload) between
 *   fetching and committing; when it holds that many, the consumer stops fetching (it waits, heartbeating, inside the
 *   batch kafkajs handed it, and kafkajs fetches again only once that returns). Besides, kafkajs keeps at most one
 *   fetch response (10 MiB by default) in memory.
 * - An offset is committed only once the handlers of that message and of every earlier message of its partition
 *   resolved (commits are batched within `commitIntervalMs`, and made at once when the group starts rebalancing),
 *   so a crash before the commit means redelivery.
 * - A handler that throws is retried in place, with backoff and `attempt` + 1; later messages with its key wait, and
 *   its partition's commit position stays before it. If a rebalance gives the partition to another member, or the
 *   subscription closes, during the retries, the offset stays uncommitted and the next owner gets the message again
 *   (with `attempt` back at 1). Partitions a rebalance leaves with this member keep their queue and retries.
 * - If the consumer fails for good (kafkajs crashes with an error it does not retry itself), the subscription logs
 *   it, lets the running handlers finish, commits, and starts a fresh consumer in the same group after a backoff.
 * - The consumer keeps heartbeating while handlers run, so a slow handler does not get its member evicted.
 * - Topic patterns: a topic with `*` (exactly one dot-separated token) or `>` (one or more trailing tokens) as whole
 *   tokens, as NATS subjects have them, subscribes to every matching topic (internal `__` topics excluded). The
 *   topics are listed every `patternRefreshMs`; when new matching ones appear, the subscription finishes its
 *   in-flight handlers, commits, and restarts its consumer on the larger set, new topics read from the beginning.
 * - Id travels in the `message-id` header, payload as the record value, headers as UTF-8 record headers.
 * - A delivered payload is a copy, not a view of kafkajs's fetch response, but it shares its `ArrayBuffer` with
 *   the payloads of neighbouring messages of its batch (at most 16 KiB together): read it through its `byteOffset`
 *   and `byteLength`, and copy it to keep it past the handler without keeping the others.
 * - Payloads over `maxMessageBytes` are rejected by `publish` before anything is sent.
 * - `ping` is a metadata request (`describeCluster`) on the admin client; kafkajs cannot cancel it, so its signal
 *   only bounds the wait, and a ping still running is shared by the next ones instead of sending another.
 *
 * @example Payments consumes order events
 * ```ts ignore
 * import { createKafkaPubSub } from "./kafkajs.ts";
 * const bus = createKafkaPubSub({ brokers: ["127.0.0.1:9092"] });
 * await bus.ensureTopics(["orders.events"], { partitions: 6 });
 * const sub = await bus.subscribe("orders.events", async (msg) => {
 *   console.log(msg.key, msg.attempt);
 * }, { group: "payments", concurrency: 6 });
 * await bus.publish("orders.events", { key: "order-1", payload: new TextEncoder().encode("{}") });
 * await sub.close();
 * await bus.close();
 * ```
 *
 * @example Audit every order topic, including ones created later
 * ```ts ignore
 * import { createKafkaPubSub } from "./kafkajs.ts";
 * const bus = createKafkaPubSub({ consumer: { patternRefreshMs: 10_000 } });
 * await bus.subscribe("orders.>", (msg) => console.log(msg.id), { group: "audit", concurrency: 4 });
 * ```
 */
export function createKafkaPubSub(options: KafkaPubSubOptions = {}): KafkaPubSub {
  return createKafkaAdapter(options, kafkajsClient);
}

/** Sending, administration and consumers on one kafkajs client. */
function kafkajsClient(settings: KafkaClientSettings): KafkaClient {
  const { logger } = settings;
  const kafka = new Kafka({
    clientId: settings.clientId,
    brokers: settings.brokers,
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => logKafka(logger, entry),
  });
  let producer: Promise<Producer> | undefined;
  /** The producer once connected, so `send` need not await its settled promise (a turn per message). */
  let connectedProducer: Producer | undefined;
  let admin: Promise<Admin> | undefined;
  const connected = <T extends { connect(): Promise<void> }>(client: T): Promise<T> =>
    client.connect().then(() => client);
  // A client whose first connection failed is forgotten, so the next call connects again: the broker may be up by then.
  const getProducer = () =>
    producer ??= connected(
      kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: true }),
    ).then((p) => connectedProducer = p, (err) => {
      producer = undefined;
      throw err;
    });
  const getAdmin = () =>
    admin ??= connected(kafka.admin()).catch((err) => {
      admin = undefined;
      throw err;
    });

  return {
    async send(topic, key, payload, headers) {
      const p = connectedProducer ?? await getProducer();
      // No timestamp: kafkajs stamps the record with the time it encodes it, and parses a given one twice into a Long.
      await p.send({
        topic,
        acks: -1,
        messages: [{
          key,
          value: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
          headers: headers as IHeaders,
        }],
      });
    },
    ensureTopics: async (topics, partitions, replicationFactor) =>
      ensureTopics(await getAdmin(), topics, partitions, replicationFactor),
    listTopics: async () => (await getAdmin()).listTopics(),
    // A metadata request to a broker (kafkajs connects the admin client first if it is not connected).
    roundTrip: async () => (await getAdmin()).describeCluster(),
    offsets: async (topic) =>
      (await (await getAdmin()).fetchTopicOffsets(topic)).map((p) => ({
        partition: p.partition,
        low: BigInt(p.low),
        high: BigInt(p.high),
      })),
    consumer: (group, sink) =>
      new KafkajsDriver(kafka.consumer({ groupId: group, ...settings.consumer }), sink, settings.consumer),
    async close() {
      const [p, a] = await Promise.allSettled([producer, admin]);
      if (p.status === "fulfilled") await p.value?.disconnect();
      if (a.status === "fulfilled") await a.value?.disconnect();
    },
  };
}

async function ensureTopics(a: Admin, topics: string[], partitions: number, replicationFactor: number): Promise<void> {
  const existing = new Set(await a.listTopics());
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    await a.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor })),
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
}

/**
 * A kafkajs consumer driven by the consumer engine. kafkajs pushes batches into `eachBatch` and fetches a partition
 * again only once that returns, so pausing means waiting inside the batch (heartbeating every `heartbeatInterval`)
 * until the engine resumes; offsets are committed explicitly (`autoCommit: false`).
 */
class KafkajsDriver implements ConsumerDriver<FetchedRecord> {
  readonly #consumer: Consumer;
  readonly #sink: DriverSink<FetchedRecord>;
  readonly #heartbeatMs: number;
  readonly #off: (() => void)[];
  /** Set while the engine wants no records; resolved by `resume` (or `stop`). */
  #paused: PromiseWithResolvers<void> | undefined;
  /** Pending until the consumer first joined its group. */
  #joined: PromiseWithResolvers<void> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(consumer: Consumer, sink: DriverSink<FetchedRecord>, tuning: Pick<ConsumerConfig, "heartbeatInterval">) {
    this.#consumer = consumer;
    this.#sink = sink;
    this.#heartbeatMs = tuning.heartbeatInterval ?? 500;
    const { events } = consumer;
    this.#off = [
      consumer.on(events.GROUP_JOIN, ({ payload }) => {
        sink.assigned(
          Object.entries(payload.memberAssignment).flatMap(([topic, ps]) =>
            ps.map((partition) => ({ topic, partition }))
          ),
        );
        this.#joined?.resolve();
        this.#joined = undefined;
      }),
      // Commits are still accepted while the group rebalances: fewer messages come again.
      consumer.on(events.REBALANCING, () => sink.rebalancing()),
      consumer.on(events.CRASH, ({ payload }) => {
        // kafkajs restarts the consumer itself after errors it deems retriable.
        if (payload.restart) return;
        if (this.#joined) this.#joined.reject(payload.error);
        else sink.fail(payload.error);
      }),
    ];
  }

  async start(topics: readonly string[]): Promise<void> {
    const joined = this.#joined = Promise.withResolvers<void>();
    // Rejected by a crash or a stop before anyone awaits it.
    joined.promise.catch(() => {});
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    await joined.promise;
  }

  pause(): void {
    this.#paused ??= Promise.withResolvers();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }

  async commit(records: readonly FetchedRecord[]): Promise<void> {
    await this.#consumer.commitOffsets(
      records.map((r) => ({ topic: r.topic, partition: r.partition, offset: String(r.offset + 1n) })),
    );
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#paused?.resolve();
      this.#joined?.reject(new Error("the consumer stopped"));
      try {
        await this.#consumer.stop();
      } finally {
        for (const off of this.#off) off();
        await this.#consumer.disconnect();
      }
    })();
    return this.#stopped;
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, isRunning, isStale } = payload;
    if (!isRunning() || isStale()) return;
    const { topic, partition, messages } = batch;
    this.#sink.highWatermark?.(topic, partition, BigInt(batch.highWatermark));
    let taken: string | undefined;
    let slab: Slab | undefined;
    try {
      for (let i = 0; i < messages.length; i++) {
        // Between awaits nothing can stop kafkajs or pause the driver (a handler the engine starts runs only to its
        // first await), so that is checked only here.
        if (this.#paused && !await this.#waitForRoom(payload)) return;
        const message = messages[i];
        const size = message.value?.byteLength ?? 0;
        if (!slab || slab.used + size > slab.bytes.byteLength) {
          slab = newSlab(messages, i, Math.min(SLAB_BYTES, this.#sink.byteRoom()));
        }
        this.#sink.receive(toRecord(topic, partition, message, slab));
        taken = message.offset;
      }
    } finally {
      // kafkajs fetches a partition again from after its last resolved offset, and only once this batch returned, so
      // resolving the last message taken once is enough (it parses the offset into a Long twice per call).
      if (taken !== undefined) resolveOffset(taken);
    }
  }

  /** Waits, heartbeating, while paused; false when the batch is to be given up (stopping, stale, kafkajs stopped). */
  async #waitForRoom({ heartbeat, isRunning, isStale, pause }: EachBatchPayload): Promise<boolean> {
    while (this.#paused) {
      if (this.#stopping) {
        // Fetch nothing more until kafkajs is stopped.
        pause();
        return false;
      }
      if (!isRunning() || isStale()) return false;
      await resolvedOrTimeout(this.#paused.promise, this.#heartbeatMs);
      // Throws when the group is rebalancing; kafkajs then rejoins.
      await heartbeat();
    }
    return isRunning() && !isStale();
  }
}

/** Resolves when `promise` does, or after `ms`. */
function resolvedOrTimeout(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** `m` as the engine takes it, its payload copied into `slab`. */
function toRecord(topic: string, partition: number, m: KafkaMessage, slab: Slab): FetchedRecord {
  let payload: Uint8Array;
  if (m.value === null) payload = new Uint8Array(0);
  else {
    payload = slab.bytes.subarray(slab.used, slab.used + m.value.byteLength);
    payload.set(m.value);
    slab.used += m.value.byteLength;
  }
  return { topic, partition, offset: BigInt(m.offset), message: toMessage(m, payload), block: slab };
}

/** The message kafkajs decoded, with `payload` already copied out of the fetch response. */
function toMessage(m: KafkaMessage, payload: Uint8Array): Omit<Message, "attempt"> {
  const headers: Record<string, string> = {};
  let id: string | undefined;
  const raw = m.headers;
  for (const k in raw) {
    const value = raw[k];
    const first = Array.isArray(value) ? value[0] : value;
    if (first === undefined) continue;
    const v = first.toString();
    if (k === KafkaMessageHeaders.id) id = v;
    else headers[k] = v;
  }
  return {
    id: id ?? crypto.randomUUID(),
    key: m.key === null ? undefined : m.key.toString(),
    headers,
    payload,
    timestamp: Number(m.timestamp),
  };
}

/** Most bytes one {@linkcode Slab} takes; a bigger payload gets a slab of its own. */
const SLAB_BYTES = 16 * 1024;

/**
 * Payload bytes of consecutive messages of one batch, copied out of kafkajs's fetch response together: a held
 * message pins at most its slab, not the whole response, and a batch costs one allocation per slab instead of one per
 * message (each is about a microsecond in Deno, and more for the GC later).
 */
interface Slab extends PayloadBlock {
  bytes: Uint8Array;
  used: number;
}

/** A slab for the payload of `messages[i]` and those of as many following ones as fit in `limit` bytes with it. */
function newSlab(messages: KafkaMessage[], i: number, limit: number): Slab {
  let size = messages[i].value?.byteLength ?? 0;
  for (let j = i + 1; j < messages.length; j++) {
    const next = size + (messages[j].value?.byteLength ?? 0);
    if (next > limit) break;
    size = next;
  }
  return { bytes: new Uint8Array(size), size, used: 0, unfinished: 0 };
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
