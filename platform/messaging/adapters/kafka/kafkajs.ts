import { Buffer } from "node:buffer";
import {
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import { createLogger, type Logger } from "../../../log/mod.ts";
import { backoffDelay, type BackoffOptions, delay } from "../../../async/mod.ts";
import { handleInContext, outgoingHeaders } from "../../context_propagation.ts";
import type {
  Features,
  Message,
  MessageHandler,
  OutgoingMessage,
  PubSub,
  SubscribeOptions,
  Subscription,
} from "../../message.ts";
import { assertOutgoing, assertPayloadSize, assertTopic, concurrencyOf, positiveInteger } from "../_arguments.ts";
import { sharedProbe } from "../_probe.ts";

/** What the Kafka adapter guarantees; see {@linkcode createKafkaPubSub}. */
export const kafkaFeatures: Features = Object.freeze({
  persistent: true,
  consumerGroups: true,
  orderedPerKey: true,
  redelivery: true,
  requestReply: false,
  wildcards: true,
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
  /**
   * Most messages a subscription holds between fetching and committing them (those in flight included); fetching
   * stops while it holds this many. Never below the subscription's `concurrency`. @default {1000}
   */
  maxBufferedMessages?: number;
  /**
   * Most payload bytes a subscription holds fetched but not yet handled; fetching stops while it holds this many
   * (one message is always let through, however big). Payloads are copied out of the fetch response in blocks of up
   * to 16 KiB shared by consecutive messages, and a block counts whole until all its messages are handled.
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /** Longest a handled message waits for its offset commit; commits are batched within this window. @default {100} */
  commitIntervalMs?: number;
  /** How often a subscription to a topic pattern lists the topics to pick up new matching ones. @default {5000} */
  patternRefreshMs?: number;
}

/**
 * `tuning` with every default filled in and checked (a `RangeError` names a bad value); `client` holds the settings
 * the Kafka client takes itself. Shared by both Kafka adapters, so they accept and default the same options.
 *
 * @example
 * ```ts
 * import { kafkaConsumerSettings } from "./kafkajs.ts";
 * kafkaConsumerSettings({ commitIntervalMs: 50 }).client.sessionTimeout; // 10000
 * ```
 */
export function kafkaConsumerSettings(tuning: KafkaConsumerTuning = {}): {
  joinTimeoutMs: number;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
  commitIntervalMs: number;
  patternRefreshMs: number;
  client: Required<
    Pick<KafkaConsumerTuning, "sessionTimeout" | "heartbeatInterval" | "rebalanceTimeout" | "maxWaitTimeInMs">
  >;
} {
  const {
    joinTimeoutMs = 30_000,
    maxBufferedMessages = 1000,
    maxBufferedBytes = 16 * 1024 * 1024,
    commitIntervalMs = 100,
    patternRefreshMs = 5000,
    ...client
  } = tuning;
  const action = "create a Kafka adapter";
  positiveInteger(maxBufferedMessages, action, "consumer.maxBufferedMessages");
  positiveInteger(maxBufferedBytes, action, "consumer.maxBufferedBytes");
  positiveInteger(patternRefreshMs, action, "consumer.patternRefreshMs");
  if (!Number.isInteger(commitIntervalMs) || commitIntervalMs < 0) {
    throw new RangeError(
      `Cannot ${action} as consumer.commitIntervalMs is not a non-negative integer: current value is ${commitIntervalMs}`,
    );
  }
  return {
    joinTimeoutMs,
    maxBufferedMessages,
    maxBufferedBytes,
    commitIntervalMs,
    patternRefreshMs,
    client: {
      sessionTimeout: 10_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 10_000,
      maxWaitTimeInMs: 100,
      ...client,
    },
  };
}

/** Options for {@linkcode createKafkaPubSub}. */
export interface KafkaPubSubOptions {
  /** Bootstrap brokers. @default {["127.0.0.1:9092"]} */
  brokers?: string[];
  /** Client id the broker logs. @default {"trellis"} */
  clientId?: string;
  /** Receives kafkajs's own log lines (WARN and above) and handler failures. @default {createLogger("messaging")} */
  logger?: Logger;
  /** Backoff between in-place retries of a message whose handler threw. @default {{ baseDelayMs: 100, maxDelayMs: 2000 }} */
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
  /** A metadata round trip to a broker: see {@linkcode PubSub.ping}. */
  ping(signal?: AbortSignal): Promise<void>;
}

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
 *   its partition's commit position stays before it. A rebalance or `close()` during the retries leaves the offset
 *   uncommitted, so the next owner of the partition gets the message again (with `attempt` back at 1).
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
  const logger = options.logger ?? createLogger("messaging");
  const redelivery = { baseDelayMs: 100, maxDelayMs: 2000, ...options.redelivery };
  const { client: consumerTuning, ...buffering } = kafkaConsumerSettings(options.consumer);
  const action = "create a Kafka adapter";
  const kafka = new Kafka({
    clientId: options.clientId ?? "trellis",
    brokers: options.brokers ?? ["127.0.0.1:9092"],
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => logKafka(logger, entry),
  });
  const maxMessageBytes = positiveInteger(
    options.maxMessageBytes ?? kafkaFeatures.maxMessageBytes,
    action,
    "maxMessageBytes",
  );
  const features: Features = Object.freeze({ ...kafkaFeatures, maxMessageBytes });
  const subscriptions = new Set<Subscription>();
  let producer: Promise<Producer> | undefined;
  /** The producer once connected, so `publish` need not await its settled promise (a turn per message). */
  let connectedProducer: Producer | undefined;
  let admin: Promise<Admin> | undefined;
  let closing: Promise<void> | undefined;

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

  const assertOpen = (action: string) => {
    if (closing) throw new Error(`Cannot ${action} as the Kafka adapter is closed`);
  };

  // A metadata request to a broker (kafkajs connects the admin client first if it is not connected).
  const roundTrip = sharedProbe(async () => (await getAdmin()).describeCluster());

  return {
    features,

    ping(signal?: AbortSignal): Promise<void> {
      if (closing) return Promise.reject(new Error("Cannot ping as the Kafka adapter is closed"));
      return roundTrip(signal);
    },

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
      const p = connectedProducer ?? await getProducer();
      // No timestamp: kafkajs stamps the record with the time it encodes it, and parses a given one twice into a Long.
      await p.send({
        topic,
        acks: -1,
        messages: [{
          key: out.key,
          value: Buffer.from(out.payload.buffer, out.payload.byteOffset, out.payload.byteLength),
          headers,
        }],
      });
    },

    async subscribe(topic: string, handler: MessageHandler, opts?: SubscribeOptions): Promise<Subscription> {
      assertTopic(topic, "subscribe");
      const pattern = topicPattern(topic);
      const concurrency = concurrencyOf(opts);
      if (!opts?.group) {
        throw new TypeError(
          `Cannot subscribe to Kafka topic "${topic}" without a consumer group: options.group is required, current value is ${opts?.group}`,
        );
      }
      assertOpen(`subscribe to "${topic}"`);
      const subscription = consume({
        consumer: kafka.consumer({ groupId: opts.group, ...consumerTuning }),
        topic,
        pattern,
        group: opts.group,
        handler,
        concurrency,
        ...buffering,
        maxBufferedMessages: Math.max(buffering.maxBufferedMessages, concurrency),
        heartbeatInterval: consumerTuning.heartbeatInterval,
        redelivery,
        logger,
        listTopics: async () => (await getAdmin()).listTopics(),
        onClosed: () => subscriptions.delete(subscription),
      });
      subscriptions.add(subscription);
      try {
        await subscription.start();
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
 * The RegExp a topic pattern stands for, or `undefined` for a plain topic. `*` matches one dot-separated token and
 * `>` one or more trailing tokens, as in NATS subjects; both must be whole tokens (`*` and `>` are not valid in Kafka
 * topic names, so a pattern can never be mistaken for a topic).
 *
 * @example
 * ```ts
 * import { topicPattern } from "./kafkajs.ts";
 * topicPattern("orders.*.created")?.test("orders.eu.created"); // true
 * topicPattern("orders.>")?.test("orders.eu.created"); // true
 * topicPattern("orders.events"); // undefined
 * ```
 */
export function topicPattern(topic: string): RegExp | undefined {
  if (!/[*>]/.test(topic)) return undefined;
  const tokens = topic.split(".");
  const source = tokens.map((token, i) => {
    if (token === "*") return "[^.]+";
    if (token === ">") {
      if (i !== tokens.length - 1) {
        throw new TypeError(
          `Cannot subscribe to topic pattern "${topic}" as ">" may only be its last token: current position is ${
            i + 1
          } of ${tokens.length}`,
        );
      }
      return ".+";
    }
    if (/[*>]/.test(token)) {
      throw new TypeError(
        `Cannot subscribe to topic pattern "${topic}" as a wildcard must be a whole dot-separated token: current token is "${token}"`,
      );
    }
    return token.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  });
  return new RegExp(`^${source.join("\\.")}$`);
}

interface ConsumeOptions {
  consumer: Consumer;
  topic: string;
  pattern: RegExp | undefined;
  group: string;
  handler: MessageHandler;
  concurrency: number;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
  commitIntervalMs: number;
  patternRefreshMs: number;
  heartbeatInterval: number;
  joinTimeoutMs: number;
  redelivery: BackoffOptions;
  logger: Logger;
  listTopics(): Promise<string[]>;
  onClosed(): void;
}

/** A message between fetch and commit: its place in the partition's commit order. */
interface Slot {
  offset: bigint;
  done: boolean;
}

/** One partition's messages in offset order, for the commit position: the offset after the last done prefix. */
interface PartitionProgress {
  topic: string;
  partition: number;
  slots: Slot[];
  head: number;
  /** Offset after the last message taken from kafkajs in this generation; a refetch below it is skipped. */
  next?: bigint;
  /** Offset to commit: every message before it was handled. */
  position?: bigint;
  committed?: bigint;
}

/**
 * One group generation of a subscription's consumer. A rebalance (or a restart) starts a new one: kafkajs then
 * fetches from the committed offsets again, so the old generation's queued messages are dropped (they come again),
 * its retries stop, and its progress is no longer committed.
 */
interface Generation {
  ended: AbortController;
  partitions: Map<string, PartitionProgress>;
  /** Messages taken in this generation and not yet behind its commit positions. */
  held: number;
}

interface Job {
  msg: Omit<Message, "attempt">;
  slab: Slab;
  /** Its key's lane in {@linkcode consume}'s `lanes`; the job heads it while it runs. `undefined` without a key. */
  lane: string | undefined;
  generation: Generation;
  progress: PartitionProgress;
  slot: Slot;
}

interface ConsumerSubscription extends Subscription {
  start(): Promise<void>;
}

/** One subscription: a kafkajs consumer whose batches are handed to per-key lanes under a concurrency limit. */
function consume(o: ConsumeOptions): ConsumerSubscription {
  const { consumer, group, logger } = o;
  /** Slots taken: handlers running, at most `o.concurrency`. */
  let active = 0;
  /** Who waits for a slot, oldest first: jobs whose turn came, and retries past their backoff. */
  const waiting: (() => void)[] = [];
  const lanes = new Map<string, Job[]>();
  const topics = new Set<string>();
  const roomWaiters = new Set<() => void>();
  let idleWaiters: (() => void)[] = [];
  let generation = newGeneration();
  let unfinished = 0;
  let unfinishedBytes = 0;
  let accepting = false;
  let running = false;
  let closed: Promise<void> | undefined;
  let lifecycle = Promise.resolve();
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let commitTimer: ReturnType<typeof setTimeout> | undefined;
  let committing: Promise<void> | undefined;
  let commitAgain = false;
  let joinWaiter: { resolve(): void; reject(err: unknown): void } | undefined;
  const closing = new AbortController();

  const offJoin = consumer.on(consumer.events.GROUP_JOIN, () => {
    const old = generation;
    generation = newGeneration();
    old.ended.abort();
    joinWaiter?.resolve();
  });
  // Commits from the old generation are still accepted while the group rebalances: fewer messages come again.
  const offRebalancing = consumer.on(consumer.events.REBALANCING, () => void commitNow());
  const offCrash = consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs restarts the consumer itself after errors it deems retriable.
    if (payload.restart) return;
    if (joinWaiter) {
      joinWaiter.reject(payload.error);
      return;
    }
    if (closed) return;
    logger.warn("Kafka consumer stopped after an error kafkajs does not retry; starting it again", {
      topic: o.topic,
      group,
      error: payload.error,
    });
    void serially(recover);
  });

  const full = () =>
    unfinished >= o.maxBufferedMessages || generation.held >= o.maxBufferedMessages ||
    (unfinished > 0 && unfinishedBytes >= o.maxBufferedBytes);

  const wake = () => {
    if (roomWaiters.size > 0 && (!accepting || !full())) { for (const resolve of [...roomWaiters]) resolve(); }
    if (unfinished === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  };

  /** Resolves when there may be room again, or after `ms` (the caller heartbeats then). */
  const roomOrTimeout = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        roomWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      roomWaiters.add(done);
    });

  const idle = () => unfinished === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r));

  const commit = async (): Promise<void> => {
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    const advanced: [PartitionProgress, bigint][] = [];
    for (const p of generation.partitions.values()) {
      if (p.position === undefined || p.position === p.committed) continue;
      offsets.push({ topic: p.topic, partition: p.partition, offset: String(p.position) });
      advanced.push([p, p.position]);
    }
    if (offsets.length === 0) return;
    try {
      await consumer.commitOffsets(offsets);
      for (const [p, position] of advanced) p.committed = position;
    } catch (err) {
      logger.warn("could not commit offsets; the next commit retries, or the partition's next owner redelivers", {
        topic: o.topic,
        group,
        error: err,
      });
    }
  };

  const commitSoon = () => {
    if (commitTimer !== undefined) return;
    if (committing) {
      commitAgain = true;
      return;
    }
    commitTimer = setTimeout(() => {
      commitTimer = undefined;
      committing = commit().finally(() => {
        committing = undefined;
        if (commitAgain) {
          commitAgain = false;
          commitSoon();
        }
      });
    }, o.commitIntervalMs);
  };

  const commitNow = async () => {
    clearTimeout(commitTimer);
    commitTimer = undefined;
    commitAgain = false;
    await committing;
    await commit();
  };

  const complete = (g: Generation, p: PartitionProgress, slot: Slot) => {
    slot.done = true;
    const before = p.head;
    while (p.head < p.slots.length && p.slots[p.head].done) p.position = p.slots[p.head++].offset + 1n;
    if (p.head === before) return;
    g.held -= p.head - before;
    if (p.head > 1024 && p.head * 2 > p.slots.length) {
      p.slots = p.slots.slice(p.head);
      p.head = 0;
    }
    if (g === generation) commitSoon();
  };

  /**
   * Calls `turn` holding a slot: at once when one is free, else when the oldest waiter before it got one and gave it
   * back. A waiting job is a closure in a queue, not a suspended async function: cheaper per message.
   */
  const withSlot = (turn: () => void) => {
    if (active < o.concurrency) {
      active++;
      turn();
    } else waiting.push(turn);
  };

  /** Gives a slot back, handing it to the oldest waiter. */
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };

  /**
   * Handles `job`, called holding a slot: retries it in place (giving the slot back while it backs off) until it
   * succeeds or its generation ends, then lets the next job of its lane, if any, wait for a slot.
   */
  const run = async (job: Job): Promise<void> => {
    const { msg, slab, generation: g, progress, slot } = job;
    try {
      for (let attempt = 1;; attempt++) {
        try {
          if (g.ended.signal.aborted) {
            // Dropped. Returning on a later turn unwinds a queue of dropped jobs one by one; returning now would start
            // the next inside this one's `release`, recursing as deep as the queue is long (thousands overflow).
            await undefined;
            return;
          }
          await handleInContext(o.handler, { ...msg, attempt });
          complete(g, progress, slot);
          return;
        } catch (err) {
          logger.warn("message handler failed; retrying in place", {
            ...fields(progress, slot, msg),
            attempt,
            retryInMs: backoffDelay(attempt, o.redelivery),
            error: err,
          });
        } finally {
          release();
        }
        await delay(backoffDelay(attempt, o.redelivery), g.ended.signal).catch(() => {
          logger.warn("stopped retrying a message as its partition was revoked or the subscription closed", {
            ...fields(progress, slot, msg),
            attempt,
            note: "its offset stays uncommitted, so the partition's next owner gets it again",
          });
        });
        if (g.ended.signal.aborted) return;
        await new Promise<void>((resolve) => withSlot(resolve));
      }
    } finally {
      unfinished--;
      if (--slab.unfinished === 0) unfinishedBytes -= slab.bytes.byteLength;
      wake();
      if (job.lane !== undefined) {
        const jobs = lanes.get(job.lane)!;
        jobs.shift();
        if (jobs.length > 0) start(jobs[0]);
        else lanes.delete(job.lane);
      }
    }
  };

  const start = (job: Job) => withSlot(() => void run(job));

  /** Log fields naming a message; built only when there is something to log. */
  const fields = (p: PartitionProgress, slot: Slot, msg: Job["msg"]) => ({
    topic: p.topic,
    partition: p.partition,
    offset: String(slot.offset),
    group,
    messageId: msg.id,
  });

  /** Queues `m`, its payload copied into `slab`, on its lane (or runs it at once when it has no key). */
  const dispatch = (g: Generation, progress: PartitionProgress, tp: string, m: KafkaMessage, slab: Slab): void => {
    const slot = { offset: BigInt(m.offset), done: false };
    if (progress.next !== undefined && slot.offset < progress.next) return;
    progress.next = slot.offset + 1n;
    progress.slots.push(slot);
    g.held++;
    let payload: Uint8Array;
    if (m.value === null) payload = new Uint8Array(0);
    else {
      payload = slab.bytes.subarray(slab.used, slab.used + m.value.byteLength);
      payload.set(m.value);
      slab.used += m.value.byteLength;
    }
    const msg = toMessage(m, payload);
    unfinished++;
    if (slab.unfinished++ === 0) unfinishedBytes += slab.bytes.byteLength;
    // Lanes outlive generations: a message redelivered after a rebalance queues behind its own still-running copy.
    const lane = msg.key === undefined ? undefined : `${tp}\0${msg.key}`;
    const job = { msg, slab, lane, generation: g, progress, slot };
    if (lane === undefined) return start(job);
    const jobs = lanes.get(lane);
    if (jobs) jobs.push(job);
    else {
      lanes.set(lane, [job]);
      start(job);
    }
  };

  const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }: EachBatchPayload) => {
    const g = generation;
    const { topic, partition } = batch;
    if (!isRunning() || isStale()) return;
    const tp = `${topic}\0${partition}`;
    let progress = g.partitions.get(tp);
    if (!progress) g.partitions.set(tp, progress = { topic, partition, slots: [], head: 0 });
    const { messages } = batch;
    let taken: string | undefined;
    let slab: Slab | undefined;
    try {
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i];
        // Between awaits nothing can stop kafkajs or start a new generation (a handler started by `dispatch` runs only
        // to its first await, and closing or rebalancing act on later turns), so those are checked after waiting.
        if (!accepting || full()) {
          do {
            if (!accepting) {
              // Restarting or closing: fetch nothing more until kafkajs is stopped.
              pause();
              return;
            }
            if (!isRunning() || isStale()) return;
            await roomOrTimeout(o.heartbeatInterval);
            // Throws when the group is rebalancing; kafkajs then rejoins, which starts a new generation.
            await heartbeat();
          } while (!accepting || full());
          if (!isRunning() || isStale() || g !== generation) return;
        }
        const size = message.value?.byteLength ?? 0;
        if (!slab || slab.used + size > slab.bytes.byteLength) {
          slab = newSlab(messages, i, Math.min(SLAB_BYTES, o.maxBufferedBytes - unfinishedBytes));
        }
        dispatch(g, progress, tp, message, slab);
        taken = message.offset;
      }
    } finally {
      // kafkajs fetches a partition again from after its last resolved offset, and only once this batch returned, so
      // resolving the last message taken once is enough (it parses the offset into a Long twice per call).
      if (taken !== undefined) resolveOffset(taken);
    }
  };

  /** Stops dispatching, drops what is queued, waits for running handlers, commits, and stops kafkajs. */
  const drainAndStop = async () => {
    accepting = false;
    generation.ended.abort();
    wake();
    await idle();
    if (running) {
      await commitNow();
      await consumer.stop();
      running = false;
    }
  };

  /** Subscribes kafkajs to `more` topics (if any) and runs it, resolving once it joined the group. */
  const runOn = async (more: string[]) => {
    if (more.length > 0) {
      await consumer.subscribe({ topics: more, fromBeginning: true });
      for (const t of more) topics.add(t);
    }
    const joined = Promise.withResolvers<void>();
    joinWaiter = joined;
    const timer = setTimeout(
      () =>
        joined.reject(
          new Error(`Kafka consumer for "${o.topic}" did not join group "${group}" in ${o.joinTimeoutMs} ms`),
        ),
      o.joinTimeoutMs,
    );
    try {
      accepting = true;
      running = true;
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch });
      await joined.promise;
    } finally {
      clearTimeout(timer);
      joinWaiter = undefined;
    }
  };

  /**
   * Starts a consumer that kafkajs gave up on (after a broker outage, say) again, with backoff, until it joins or the
   * subscription closes. It resumes from the committed offsets, like any new generation.
   */
  const recover = async () => {
    for (let attempt = 1; !closed; attempt++) {
      try {
        await drainAndStop();
        await consumer.connect();
        await runOn([]);
        return;
      } catch (err) {
        if (closed) return;
        const wait = backoffDelay(attempt, { baseDelayMs: 1000, maxDelayMs: 10_000 });
        logger.warn("could not start the Kafka consumer again; retrying", {
          topic: o.topic,
          group,
          attempt,
          retryInMs: wait,
          error: err,
        });
        await delay(wait, closing.signal).catch(() => {});
      }
    }
  };

  const matchingTopics = async (pattern: RegExp) =>
    (await o.listTopics()).filter((t) => pattern.test(t) && !t.startsWith("__") && !topics.has(t)).sort();

  const serially = (step: () => Promise<void>): Promise<void> => {
    const next = lifecycle.then(step);
    lifecycle = next.catch(() => {});
    return next;
  };

  const scheduleRefresh = (pattern: RegExp) => {
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      serially(async () => {
        if (closed) return;
        const fresh = await matchingTopics(pattern);
        if (fresh.length === 0) return;
        logger.info("new topics match the subscription's pattern; restarting its consumer", {
          pattern: o.topic,
          group,
          topics: fresh,
        });
        await drainAndStop();
        await runOn(fresh).catch(async (err) => {
          logger.warn("could not restart the consumer of a pattern subscription; starting it again", {
            pattern: o.topic,
            group,
            error: err,
          });
          await recover();
        });
      }).catch((err) => {
        logger.warn("could not refresh the topics of a pattern subscription; trying again later", {
          pattern: o.topic,
          group,
          error: err,
        });
      }).finally(() => {
        if (!closed) scheduleRefresh(pattern);
      });
    }, o.patternRefreshMs);
  };

  const subscription: ConsumerSubscription = {
    start: () =>
      serially(async () => {
        await consumer.connect();
        const initial = o.pattern ? await matchingTopics(o.pattern) : [o.topic];
        if (initial.length > 0) await runOn(initial);
        if (o.pattern) scheduleRefresh(o.pattern);
      }),

    close() {
      closed ??= (async () => {
        closing.abort();
        joinWaiter?.reject(new Error("the subscription closed"));
        clearTimeout(refreshTimer);
        try {
          await serially(async () => {
            clearTimeout(refreshTimer);
            await drainAndStop().catch((err) => {
              logger.warn("could not stop a Kafka consumer cleanly", { topic: o.topic, group, error: err });
            });
            await consumer.disconnect();
          });
        } finally {
          offJoin();
          offRebalancing();
          offCrash();
          o.onClosed();
        }
      })();
      return closed;
    },
  };
  return subscription;
}

function newGeneration(): Generation {
  return { ended: new AbortController(), partitions: new Map(), held: 0 };
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
interface Slab {
  bytes: Uint8Array;
  used: number;
  /** Dispatched messages of the slab not yet finished; the slab counts towards `maxBufferedBytes` while above 0. */
  unfinished: number;
}

/** A slab for the payload of `messages[i]` and those of as many following ones as fit in `limit` bytes with it. */
function newSlab(messages: KafkaMessage[], i: number, limit: number): Slab {
  let size = messages[i].value?.byteLength ?? 0;
  for (let j = i + 1; j < messages.length; j++) {
    const next = size + (messages[j].value?.byteLength ?? 0);
    if (next > limit) break;
    size = next;
  }
  return { bytes: new Uint8Array(size), used: 0, unfinished: 0 };
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
