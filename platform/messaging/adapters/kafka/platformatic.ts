import { Buffer } from "node:buffer";
import {
  Admin,
  compatibilityPartitioner,
  Consumer,
  type ConsumerGroupJoinPayload,
  type Message as KafkaRecord,
  type MessagesStream,
  type Partitioner,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer,
} from "@platformatic/kafka";
import type { Logger } from "../../../log/mod.ts";
import { backoffDelay, delay } from "../../../async/mod.ts";
import type { Message } from "../../message.ts";
import { createKafkaAdapter, type KafkaClientSettings } from "./adapter.ts";
import type { ConsumerDriver, DriverSink, FetchedRecord, KafkaClient, PayloadBlock } from "./driver.ts";
import { KafkaMessageHeaders, type KafkaPubSub, type KafkaPubSubOptions } from "./settings.ts";

/**
 * Creates a Kafka publisher/subscriber on `@platformatic/kafka`, with the contract, options and wire format of
 * {@linkcode createKafkaPubSub} (kafkajs): **at-least-once**, ordered per key. The two can share topics and groups.
 *
 * - `publish` waits for acknowledgement from all in-sync replicas (`acks: -1`); a key picks its partition with
 *   murmur2 as the Java client and kafkajs do (the library's `compatibilityPartitioner`: its default partitioner puts
 *   keys whose hash is negative, about half of them, on another partition); keyless messages go round-robin.
 * - Each subscription is its own consumer in group `options.group`, which is required. A new group starts from the
 *   earliest offset.
 * - Up to `concurrency` handlers run at once, across partitions and within one: messages with the same key are
 *   handled one at a time, in order; messages without a key are not ordered.
 * - Backpressure: a subscription holds at most `maxBufferedMessages` (and `maxBufferedBytes` of payload) between
 *   fetching and committing; when it holds that many its fetch stream pauses. Besides, the stream holds at most one
 *   fetch response (10 MiB, 1 MiB per partition) that arrived after the pause.
 * - An offset is committed (`autocommit: false`) only once the handlers of that message and of every earlier message
 *   of its partition resolved (commits are batched within `commitIntervalMs`), so a crash before the commit means
 *   redelivery.
 * - A handler that throws is retried in place, with backoff and `attempt` + 1; later messages with its key wait, and
 *   its partition's commit position stays before it. If a rebalance gives the partition to another member, or the
 *   subscription closes, during the retries, the offset stays uncommitted and the next owner gets the message again
 *   (with `attempt` back at 1). Partitions a rebalance leaves with this member keep their queue and retries.
 * - The consumer heartbeats on its own timer, so a slow handler does not get its member evicted.
 * - If the consumer fails (its fetch stream errors, or it cannot rejoin its group), the subscription logs it, lets
 *   the running handlers finish, commits, and starts a fresh consumer in the same group after a backoff.
 * - Topic patterns (`*` one token, `>` one or more trailing tokens, as `topicPattern` reads them): the
 *   topics are listed every `patternRefreshMs`; when new matching ones appear, the subscription finishes its
 *   in-flight handlers, commits, and restarts its consumer on the larger set, new topics read from the beginning.
 * - Id travels in the `message-id` header, payload as the record value, headers as UTF-8 record headers.
 * - Payloads over `maxMessageBytes` are rejected by `publish` before anything is sent.
 * - `options.logger` gets handler, commit and consumer failures; the library's own debug output is behind
 *   `DEBUG=plt:kafka:*`.
 * - `ping` is a metadata request for no topic, forced past the cached metadata; the library cannot cancel it, so its
 *   signal only bounds the wait, and a ping still running is shared by the next ones instead of sending another.
 *
 * @example Payments consumes order events
 * ```ts ignore
 * import { createPlatformaticKafkaPubSub } from "./platformatic.ts";
 * const bus = createPlatformaticKafkaPubSub({ brokers: ["127.0.0.1:9092"] });
 * await bus.ensureTopics(["orders.events"], { partitions: 6 });
 * const sub = await bus.subscribe("orders.events", async (msg) => {
 *   console.log(msg.key, msg.attempt);
 * }, { group: "payments", concurrency: 6 });
 * await bus.publish("orders.events", { key: "order-1", payload: new TextEncoder().encode("{}") });
 * await sub.close();
 * await bus.close();
 * ```
 */
export function createPlatformaticKafkaPubSub(options: KafkaPubSubOptions = {}): KafkaPubSub {
  return createKafkaAdapter(options, platformaticClient);
}

type Fetched = KafkaRecord<string, Buffer, string, string>;
type Stream = MessagesStream<string, Buffer, string, string>;

/** Sending, administration and consumers on `@platformatic/kafka`. */
function platformaticClient(settings: KafkaClientSettings): KafkaClient<PlatformaticRecord> {
  const client = {
    clientId: settings.clientId,
    bootstrapBrokers: settings.brokers,
    // The library retries 3 times, 1 s apart, which makes every transient error right after a topic is created (a
    // partition not ready yet for ListOffsets or Produce) cost a full second; back off from 50 ms instead, with
    // about the same 3 s in total before giving up.
    retries: 6,
    retryDelay: (_client: unknown, _operation: string, attempt: number) =>
      backoffDelay(attempt, { baseDelayMs: 50, maxDelayMs: 2000 }),
  };
  const publishing = new Set<Promise<unknown>>();
  let producer: Producer<string, Buffer, string, string> | undefined;
  let admin: Admin | undefined;
  const getProducer = () =>
    producer ??= new Producer({
      ...client,
      acks: ProduceAcks.ALL,
      autocreateTopics: true,
      partitioner: javaCompatiblePartitioner(),
      serializers: { key: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer },
    });
  const getAdmin = () => admin ??= new Admin(client);
  const { consumer: tuning, logger } = settings;

  return {
    send(topic, key, payload, headers) {
      const sent = getProducer().send({
        messages: [{
          topic,
          key,
          value: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
          headers,
          timestamp: BigInt(Date.now()),
        }],
      });
      publishing.add(sent);
      return sent.then(() => {}).finally(() => publishing.delete(sent));
    },
    ensureTopics: (topics, partitions, replicationFactor) =>
      ensureTopics(getAdmin(), topics, partitions, replicationFactor),
    listTopics: () => getAdmin().listTopics(),
    // A metadata request for no topic, sent to the broker even when cached metadata is fresh.
    roundTrip: () => getAdmin().metadata({ topics: [], forceUpdate: true }),
    offsets: (topic) => offsets(getAdmin(), topic),
    consumer: (group, sink) =>
      new PlatformaticDriver(
        new Consumer<string, Buffer, string, string>({
          ...client,
          groupId: group,
          sessionTimeout: tuning.sessionTimeout,
          heartbeatInterval: tuning.heartbeatInterval,
          rebalanceTimeout: tuning.rebalanceTimeout,
          maxWaitTime: tuning.maxWaitTimeInMs,
          autocommit: false,
          autocreateTopics: true,
          // A fetch brings at most this much per partition (a bigger first record still comes whole), so the
          // response that arrives after a pause stays small.
          maxBytes: 10 * 1024 * 1024,
          maxBytesPerPartition: 1024 * 1024,
          deserializers: { key: stringDeserializer, headerKey: stringDeserializer, headerValue: stringDeserializer },
        }),
        sink,
        logger,
      ),
    async close() {
      await Promise.allSettled(publishing);
      await producer?.close();
      await admin?.close();
    },
  };
}

/** Each partition's earliest (`ListOffsets` timestamp -2) and next (-1) offset. */
async function offsets(a: Admin, topic: string): Promise<{ partition: number; low: bigint; high: bigint }[]> {
  const { topics: meta } = await a.metadata({ topics: [topic], forceUpdate: true });
  const count = meta.get(topic)?.partitionsCount ?? 0;
  const at = async (timestamp: bigint) => {
    const partitions = Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp }));
    const [listed] = await a.listOffsets({ topics: [{ name: topic, partitions }] });
    return new Map((listed?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
  };
  const [low, high] = await Promise.all([at(-2n), at(-1n)]);
  return [...high].map(([partition, h]) => ({ partition, low: low.get(partition) ?? 0n, high: h }));
}

async function ensureTopics(a: Admin, topics: string[], partitions: number, replicas: number): Promise<void> {
  const existing = new Set(await a.listTopics());
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length > 0) {
    await a.createTopics({ topics: missing, partitions, replicas }).catch((err) => {
      // Another process created one of them between the listing and now; the growing below covers it.
      if (!isTopicAlreadyExists(err)) throw err;
    });
  }
  const { topics: meta } = await a.metadata({ topics, forceUpdate: true });
  const grow = topics.filter((t) => (meta.get(t)?.partitionsCount ?? partitions) < partitions);
  if (grow.length > 0) await a.createPartitions({ topics: grow.map((name) => ({ name, count: partitions })) });
  await waitForLeaders(a, topics, partitions);
}

/**
 * A fetched record; it is its own payload block (each payload is copied on its own), and keeps the library's record,
 * which commits the offset after it.
 */
class PlatformaticRecord implements FetchedRecord, PayloadBlock {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly message: Omit<Message, "attempt">;
  readonly size: number;
  unfinished = 0;

  constructor(readonly fetched: Fetched) {
    this.topic = fetched.topic;
    this.partition = fetched.partition;
    this.offset = fetched.offset;
    this.message = toMessage(fetched);
    this.size = this.message.payload.byteLength;
  }

  get block(): PayloadBlock {
    return this;
  }
}

/**
 * A `@platformatic/kafka` consumer driven by the consumer engine: its fetch stream pauses and resumes, it heartbeats
 * on its own timer, and a record's `commit()` commits the offset after it (`autocommit: false`).
 */
class PlatformaticDriver implements ConsumerDriver<PlatformaticRecord> {
  readonly #consumer: Consumer<string, Buffer, string, string>;
  readonly #sink: DriverSink<PlatformaticRecord>;
  readonly #logger: Logger;
  #stream: Stream | undefined;
  #paused = false;
  #stopped: Promise<void> | undefined;

  constructor(
    consumer: Consumer<string, Buffer, string, string>,
    sink: DriverSink<PlatformaticRecord>,
    logger: Logger,
  ) {
    this.#consumer = consumer;
    this.#sink = sink;
    this.#logger = logger;
    consumer.on("consumer:group:join", this.#onJoin);
    // The consumer emits "error" when it cannot rejoin its group; without a listener Node would throw it.
    consumer.on("error", (err) => sink.fail(err));
  }

  async start(topics: readonly string[]): Promise<void> {
    const stream = await this.#consumer.consume({
      topics: [...topics],
      mode: "committed",
      fallbackMode: "earliest",
      autocommit: false,
    });
    this.#stream = stream;
    if (this.#paused || this.#stopped) stream.pause();
    stream.on("error", (err) => this.#sink.fail(err));
    stream.on("data", (record: Fetched) => this.#sink.receive(new PlatformaticRecord(record)));
    // Stopped while the stream was on its way: stop closed no stream, so close this one.
    if (this.#stopped) await this.#closeStream(stream);
  }

  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#stream?.resume();
  }

  async commit(records: readonly PlatformaticRecord[]): Promise<void> {
    await Promise.all(records.map((r) => r.fetched.commit() as Promise<void>));
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#consumer.removeListener("consumer:group:join", this.#onJoin);
      if (this.#stream) await this.#closeStream(this.#stream);
      // Forced: leaves the group even if the stream failed and never closed.
      await this.#consumer.close(true).catch((err) =>
        this.#logger.warn("Kafka consumer did not leave its group cleanly", {
          group: this.#consumer.groupId,
          error: err,
        })
      );
    })();
    return this.#stopped;
  }

  readonly #onJoin = ({ assignments }: ConsumerGroupJoinPayload) => {
    this.#sink.assigned(
      (assignments ?? []).flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition }))),
    );
  };

  async #closeStream(stream: Stream): Promise<void> {
    stream.pause();
    await stream.close().catch((err) =>
      this.#logger.warn("Kafka fetch stream did not close cleanly", { group: this.#consumer.groupId, error: err })
    );
  }
}

/** murmur2 as the Java client and kafkajs (`toPositive(murmur2(key)) % partitions`); keyless: round-robin. */
function javaCompatiblePartitioner(): Partitioner<string, Buffer, string, string> {
  let next = 0;
  return (message, key) => {
    if (key !== undefined) return compatibilityPartitioner(message, key);
    next = (next + 1) % 0x7fffffff;
    return next;
  };
}

/** Polls metadata until every partition of `topics` has a leader (createTopics returns before the election). */
async function waitForLeaders(admin: Admin, topics: string[], partitions: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { topics: meta } = await admin.metadata({ topics, forceUpdate: true });
    const pending = topics.filter((t) => {
      const m = meta.get(t);
      return !m || m.partitionsCount < partitions || m.partitions.some((p) => p.leader < 0);
    });
    if (pending.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`Kafka topics ${pending.join(", ")} have no leader for every partition after ${timeoutMs} ms`);
    }
    await delay(50);
  }
}

function isTopicAlreadyExists(err: unknown): boolean {
  const nested = err instanceof AggregateError ? err.errors : [err];
  return nested.some((e) =>
    (e as { apiId?: string })?.apiId === "TOPIC_ALREADY_EXISTS" ||
    (e instanceof AggregateError && isTopicAlreadyExists(e))
  );
}

/** Copies the payload out of the fetch response, so a held message does not pin the whole response. */
function toMessage(record: Fetched): Omit<Message, "attempt"> {
  const headers: Record<string, string> = {};
  let id: string | undefined;
  for (const [k, v] of record.headerEntries) {
    if (k === undefined || v === undefined || Object.hasOwn(headers, k)) continue;
    if (k === KafkaMessageHeaders.id) id ??= v;
    else headers[k] = v;
  }
  return {
    id: id ?? crypto.randomUUID(),
    key: record.key ?? undefined,
    headers,
    // A plain copy, not a view of the Node `Buffer`: every adapter delivers the same type.
    payload: record.value ? new Uint8Array(record.value) : new Uint8Array(0),
    timestamp: Number(record.timestamp),
  };
}
