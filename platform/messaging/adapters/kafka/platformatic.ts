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
import { createLogger, type Logger } from "../../../log/mod.ts";
import { backoffDelay, type BackoffOptions, delay } from "../../../async/mod.ts";
import { handleInContext, outgoingHeaders } from "../../context_propagation.ts";
import {
  type EnsureTopicsOptions,
  kafkaConsumerSettings,
  kafkaFeatures,
  KafkaMessageHeaders,
  type KafkaPubSub,
  type KafkaPubSubOptions,
  topicPattern,
} from "./kafkajs.ts";
import { createLimiter, type Limiter } from "../../limiter.ts";
import type {
  Features,
  Message,
  MessageHandler,
  OutgoingMessage,
  SubscribeOptions,
  Subscription,
} from "../../message.ts";
import { assertOutgoing, assertPayloadSize, assertTopic, concurrencyOf, positiveInteger } from "../_arguments.ts";
import { sharedProbe } from "../_probe.ts";

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
 * - Topic patterns (`*` one token, `>` one or more trailing tokens, as {@linkcode topicPattern} reads them): the
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
  const logger = options.logger ?? createLogger("messaging");
  const redelivery = { baseDelayMs: 100, maxDelayMs: 2000, ...options.redelivery };
  const { client: consumerClient, ...buffering } = kafkaConsumerSettings(options.consumer);
  const action = "create a Kafka adapter";
  const maxMessageBytes = positiveInteger(
    options.maxMessageBytes ?? kafkaFeatures.maxMessageBytes,
    action,
    "maxMessageBytes",
  );
  const client = {
    clientId: options.clientId ?? "trellis",
    bootstrapBrokers: options.brokers ?? ["127.0.0.1:9092"],
    // The library retries 3 times, 1 s apart, which makes every transient error right after a topic is created (a
    // partition not ready yet for ListOffsets or Produce) cost a full second; back off from 50 ms instead, with
    // about the same 3 s in total before giving up.
    retries: 6,
    retryDelay: (_client: unknown, _operation: string, attempt: number) =>
      backoffDelay(attempt, { baseDelayMs: 50, maxDelayMs: 2000 }),
  };
  const features: Features = Object.freeze({ ...kafkaFeatures, maxMessageBytes });
  const subscriptions = new Set<Subscription>();
  const publishing = new Set<Promise<unknown>>();
  let producer: Producer<string, Buffer, string, string> | undefined;
  let admin: Admin | undefined;
  let closing: Promise<void> | undefined;

  const getProducer = () =>
    producer ??= new Producer({
      ...client,
      acks: ProduceAcks.ALL,
      autocreateTopics: true,
      partitioner: javaCompatiblePartitioner(),
      serializers: { key: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer },
    });
  const getAdmin = () => admin ??= new Admin(client);

  const assertOpen = (action: string) => {
    if (closing) throw new Error(`Cannot ${action} as the Kafka adapter is closed`);
  };

  // A metadata request for no topic, sent to the broker even when cached metadata is fresh.
  const roundTrip = sharedProbe(() => getAdmin().metadata({ topics: [], forceUpdate: true }));

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
      const a = getAdmin();
      const existing = new Set(await a.listTopics());
      const missing = topics.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        await a.createTopics({ topics: missing, partitions, replicas: opts.replicationFactor ?? 1 }).catch((err) => {
          // Another process created one of them between the listing and now; the growing below covers it.
          if (!isTopicAlreadyExists(err)) throw err;
        });
      }
      const { topics: meta } = await a.metadata({ topics, forceUpdate: true });
      const grow = topics.filter((t) => (meta.get(t)?.partitionsCount ?? partitions) < partitions);
      if (grow.length > 0) await a.createPartitions({ topics: grow.map((name) => ({ name, count: partitions })) });
      await waitForLeaders(a, topics, partitions);
    },

    publish(topic: string, out: OutgoingMessage): Promise<void> {
      try {
        assertTopic(topic, "publish");
        assertOutgoing(out);
        assertPayloadSize(topic, out.payload, maxMessageBytes);
        assertOpen(`publish to "${topic}"`);
      } catch (err) {
        return Promise.reject(err);
      }
      const headers = outgoingHeaders(out.headers);
      headers[KafkaMessageHeaders.id] = out.id ?? crypto.randomUUID();
      const sent = getProducer().send({
        messages: [{
          topic,
          key: out.key,
          value: Buffer.from(out.payload.buffer, out.payload.byteOffset, out.payload.byteLength),
          headers,
          timestamp: BigInt(Date.now()),
        }],
      });
      publishing.add(sent);
      return sent.then(() => {}).finally(() => publishing.delete(sent));
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
      const group = opts.group;
      const subscription = superviseConsumer({
        topic,
        pattern,
        group,
        handler,
        limiter: createLimiter(concurrency),
        ...buffering,
        maxBufferedMessages: Math.max(buffering.maxBufferedMessages, concurrency),
        redelivery,
        logger,
        newConsumer: () =>
          new Consumer<string, Buffer, string, string>({
            ...client,
            groupId: group,
            sessionTimeout: consumerClient.sessionTimeout,
            heartbeatInterval: consumerClient.heartbeatInterval,
            rebalanceTimeout: consumerClient.rebalanceTimeout,
            maxWaitTime: consumerClient.maxWaitTimeInMs,
            autocommit: false,
            autocreateTopics: true,
            // A fetch brings at most this much per partition (a bigger first record still comes whole), so the
            // response that arrives after a pause stays small.
            maxBytes: 10 * 1024 * 1024,
            maxBytesPerPartition: 1024 * 1024,
            deserializers: { key: stringDeserializer, headerKey: stringDeserializer, headerValue: stringDeserializer },
          }),
        listTopics: () => getAdmin().listTopics(),
        onClosed: () => subscriptions.delete(subscription),
      });
      subscriptions.add(subscription);
      try {
        await subscription.ready;
      } catch (err) {
        await subscription.close();
        throw err;
      }
      return subscription;
    },

    close(): Promise<void> {
      closing ??= (async () => {
        await Promise.allSettled(publishing);
        await Promise.all([...subscriptions].map((s) => s.close()));
        await producer?.close();
        await admin?.close();
      })();
      return closing;
    },
  };
}

type Fetched = KafkaRecord<string, Buffer, string, string>;
type Stream = MessagesStream<string, Buffer, string, string>;

interface SupervisorOptions {
  /** The topic or pattern subscribed to, for logs and errors. */
  topic: string;
  pattern: RegExp | undefined;
  group: string;
  handler: MessageHandler;
  /** The subscription's concurrency, shared by the consumers it runs one after the other. */
  limiter: Limiter;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
  commitIntervalMs: number;
  patternRefreshMs: number;
  joinTimeoutMs: number;
  redelivery: BackoffOptions;
  logger: Logger;
  newConsumer(): Consumer<string, Buffer, string, string>;
  listTopics(): Promise<string[]>;
  onClosed(): void;
}

/** Why a consumer's run ended. */
type Outcome = { kind: "stopped" } | { kind: "failed"; error: unknown } | { kind: "topics"; fresh: string[] };

/** Between attempts to replace a failed consumer. */
const RESTART_BACKOFF = { baseDelayMs: 500, maxDelayMs: 5000 };

/**
 * Runs a subscription's consumer, replacing it when it fails (after a backoff) or when a pattern gains topics, until
 * `close()`. `ready` settles once the first consumer joined its group (at once for a pattern matching nothing yet);
 * only that first failure is `subscribe()`'s to report.
 */
function superviseConsumer(o: SupervisorOptions): Subscription & { ready: Promise<void> } {
  const { topic, group, logger } = o;
  const stopping = new AbortController();
  const ready = Promise.withResolvers<void>();
  const topics = new Set<string>(o.pattern ? [] : [topic]);
  /** Matching topics not consumed yet (Kafka's internal `__` topics never match). */
  const unconsumed = async (pattern: RegExp) =>
    (await o.listTopics()).filter((t) => pattern.test(t) && !t.startsWith("__") && !topics.has(t)).sort();

  /** Resolves with the matching topics not consumed yet, once there are some; rejects when `signal` aborts. */
  const newTopics = async (pattern: RegExp, signal: AbortSignal): Promise<string[]> => {
    for (;;) {
      await delay(o.patternRefreshMs, signal);
      try {
        const fresh = await unconsumed(pattern);
        if (fresh.length > 0) return fresh;
      } catch (err) {
        logger.warn("could not list the topics of a pattern subscription; trying again later", {
          pattern: topic,
          group,
          error: err,
        });
      }
    }
  };

  const start = async (): Promise<Session> => {
    const session = createSession(o.newConsumer(), o);
    try {
      const joinTimeout = AbortSignal.timeout(o.joinTimeoutMs);
      const stream = await abortable(
        session.consumer.consume({
          topics: [...topics],
          mode: "committed",
          fallbackMode: "earliest",
          autocommit: false,
        }),
        AbortSignal.any([stopping.signal, joinTimeout]),
      ).catch((err) => {
        if (!joinTimeout.aborted) throw err;
        throw new Error(`Kafka consumer for "${topic}" did not join group "${group}" in ${o.joinTimeoutMs} ms`);
      });
      session.attach(stream);
    } catch (err) {
      await session.stop();
      throw err;
    }
    return session;
  };

  const running = (async () => {
    if (o.pattern) {
      try {
        for (const t of await unconsumed(o.pattern)) topics.add(t);
      } catch (err) {
        return ready.reject(err);
      }
    }
    let live = false;
    let failures = 0;
    while (!stopping.signal.aborted) {
      if (failures > 0) await delay(backoffDelay(failures, RESTART_BACKOFF), stopping.signal).catch(() => {});
      if (stopping.signal.aborted) return;
      let session: Session | undefined;
      if (topics.size > 0) {
        try {
          session = await start();
        } catch (err) {
          if (!live) return ready.reject(err);
          if (!stopping.signal.aborted) logger.error("Kafka consumer did not restart", { topic, group, error: err });
          failures++;
          continue;
        }
      }
      live = true;
      ready.resolve();
      const cycle = new AbortController();
      const until = AbortSignal.any([stopping.signal, cycle.signal]);
      const events: Promise<Outcome>[] = [aborted(until).then(() => ({ kind: "stopped" }))];
      if (session) events.push(session.failed.then((error) => ({ kind: "failed", error })));
      if (o.pattern) {
        events.push(
          newTopics(o.pattern, until).then((fresh) => ({ kind: "topics", fresh }), () => ({ kind: "stopped" })),
        );
      }
      const outcome = await Promise.race(events);
      cycle.abort();
      await session?.stop();
      if (stopping.signal.aborted) return;
      if (outcome.kind === "topics") {
        logger.info("new topics match the subscription's pattern; restarting its consumer", {
          pattern: topic,
          group,
          topics: outcome.fresh,
        });
        for (const t of outcome.fresh) topics.add(t);
        failures = 0;
      } else if (outcome.kind === "failed") {
        logger.error("Kafka consumer failed; restarting it", { topic, group, error: outcome.error });
        failures = 1;
      }
    }
  })();

  let closed: Promise<void> | undefined;
  return {
    ready: ready.promise,
    close() {
      closed ??= (async () => {
        stopping.abort(new Error("subscription closed"));
        await running;
        o.onClosed();
      })();
      return closed;
    },
  };
}

/** One consumer and its fetch stream; the supervisor replaces the whole session. */
interface Session {
  readonly consumer: Consumer<string, Buffer, string, string>;
  /** Resolves with the error that made the session useless (its stream failed, or its group membership). */
  readonly failed: Promise<unknown>;
  /** Starts handling what `stream`, the consumer's fetch stream, delivers. */
  attach(stream: Stream): void;
  /**
   * Stops fetching, drops queued messages, lets running handlers finish (retries stop), commits what was handled,
   * closes the stream and leaves the group.
   */
  stop(): Promise<void>;
}

/** A fetched message on its way to its handler; `done` once the handler resolved. */
interface Job {
  record: Fetched;
  msg: Omit<Message, "attempt">;
  partition: PartitionState;
  done: boolean;
}

/** A partition this session owns: its messages in offset order, for the commit position. */
interface PartitionState {
  /** Messages taken from the stream and not yet behind the commit position, in offset order, from `head`. */
  jobs: Job[];
  head: number;
  /** Offset after the last message taken; lower offsets are the stream refetching after a rejoin, and skipped. */
  next: bigint;
  /** The last message of the handled prefix not committed yet: committing it commits everything before it. */
  uncommitted?: Fetched;
  /** Aborted when a rebalance gives the partition to another member. */
  revoked: AbortController;
  /** Aborted when the partition is revoked or the session stops: no further handler call starts. */
  cancelled: AbortSignal;
}

function createSession(consumer: Consumer<string, Buffer, string, string>, o: SupervisorOptions): Session {
  const { group, logger, limiter } = o;
  const failed = Promise.withResolvers<unknown>();
  const stopping = new AbortController();
  const partitions = new Map<string, PartitionState>();
  const lanes = new Map<string, Job[]>();
  const running = new Set<Promise<void>>();
  const commits = new Set<Promise<void>>();
  const dirty = new Set<PartitionState>();
  let stream: Stream | undefined;
  let assigned = new Set<string>();
  /** Messages taken and not yet behind their partition's commit position. */
  let held = 0;
  /** Payload bytes of messages taken whose handling has not ended. */
  let unfinishedBytes = 0;
  let unfinished = 0;
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped: Promise<void> | undefined;

  const full = () => held >= o.maxBufferedMessages || (unfinished > 0 && unfinishedBytes >= o.maxBufferedBytes);

  const track = (work: Promise<void>) => {
    running.add(work);
    work.finally(() => running.delete(work));
  };

  const flush = () => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    for (const p of dirty) {
      const last = p.uncommitted;
      p.uncommitted = undefined;
      if (!last || p.revoked.signal.aborted) continue;
      const commit = (last.commit() as Promise<void>).catch((err) =>
        logger.warn("could not commit offsets; the next commit retries, or the partition's next owner redelivers", {
          topic: last.topic,
          partition: last.partition,
          offset: String(last.offset),
          group,
          error: err,
        })
      );
      commits.add(commit);
      commit.finally(() => commits.delete(commit));
    }
    dirty.clear();
  };

  const complete = (job: Job) => {
    job.done = true;
    const p = job.partition;
    // A revoked partition left this session's accounting; its new owner starts from the last committed offset, and
    // committing now could move the group's position backwards under it (not committing costs a duplicate only).
    if (p.revoked.signal.aborted) return;
    const before = p.head;
    while (p.head < p.jobs.length && p.jobs[p.head].done) p.uncommitted = p.jobs[p.head++].record;
    if (p.head === before) return;
    held -= p.head - before;
    if (p.head > 1024 && p.head * 2 > p.jobs.length) {
      p.jobs = p.jobs.slice(p.head);
      p.head = 0;
    }
    dirty.add(p);
    flushTimer ??= setTimeout(flush, o.commitIntervalMs);
  };

  const resumeIfRoom = () => {
    if (stream?.isPaused() && !stopping.signal.aborted && !full()) stream.resume();
  };

  /** Handles one message, retrying in place until it succeeds or its partition is given up. */
  const run = async (job: Job): Promise<void> => {
    const { record, msg, partition: p } = job;
    const fields = { topic: record.topic, partition: record.partition, offset: String(record.offset), group };
    try {
      for (let attempt = 1;; attempt++) {
        if (p.cancelled.aborted) return;
        await limiter.acquire();
        let failure: unknown;
        try {
          if (p.cancelled.aborted) return;
          await handleInContext(o.handler, { ...msg, attempt });
          complete(job);
          return;
        } catch (err) {
          failure = err;
        } finally {
          limiter.release();
        }
        const wait = backoffDelay(attempt, o.redelivery);
        if (!p.cancelled.aborted) {
          logger.warn("message handler failed; retrying in place", {
            ...fields,
            messageId: msg.id,
            attempt,
            retryInMs: wait,
            error: failure,
          });
        }
        await delay(wait, p.cancelled).catch(() => {
          logger.warn("stopped retrying a message as its partition was revoked or the subscription closed", {
            ...fields,
            messageId: msg.id,
            attempt,
            error: failure,
            note: "its offset stays uncommitted, so the partition's next owner gets it again",
          });
        });
      }
    } finally {
      unfinished--;
      unfinishedBytes -= msg.payload.byteLength;
      resumeIfRoom();
    }
  };

  const runLane = async (lane: string, jobs: Job[]) => {
    while (jobs.length > 0) {
      await run(jobs[0]);
      jobs.shift();
    }
    lanes.delete(lane);
  };

  const onData = (record: Fetched) => {
    const tp = `${record.topic}\0${record.partition}`;
    if (stopping.signal.aborted || !assigned.has(tp)) return;
    let p = partitions.get(tp);
    if (!p) {
      const revoked = new AbortController();
      p = {
        jobs: [],
        head: 0,
        next: record.offset,
        revoked,
        cancelled: AbortSignal.any([revoked.signal, stopping.signal]),
      };
      partitions.set(tp, p);
    }
    if (record.offset < p.next) return;
    p.next = record.offset + 1n;
    const job: Job = { record, msg: toMessage(record), partition: p, done: false };
    p.jobs.push(job);
    held++;
    unfinished++;
    unfinishedBytes += job.msg.payload.byteLength;
    if (full()) stream?.pause();
    if (job.msg.key === undefined) return track(run(job));
    // Lanes outlive partition ownership: a message redelivered here after its partition came back queues behind its
    // own still-running copy.
    const lane = `${tp}\0${job.msg.key}`;
    const queued = lanes.get(lane);
    if (queued) queued.push(job);
    else {
      const jobs = [job];
      lanes.set(lane, jobs);
      track(runLane(lane, jobs));
    }
  };

  const onJoin = ({ assignments }: ConsumerGroupJoinPayload) => {
    assigned = new Set((assignments ?? []).flatMap((a) => a.partitions.map((n) => `${a.topic}\0${n}`)));
    for (const [tp, p] of partitions) {
      if (assigned.has(tp)) continue;
      p.revoked.abort();
      held -= p.jobs.length - p.head;
      partitions.delete(tp);
      dirty.delete(p);
    }
    resumeIfRoom();
  };

  consumer.on("consumer:group:join", onJoin);
  // The consumer emits "error" when it cannot rejoin its group; without a listener Node would throw it.
  consumer.on("error", (err) => failed.resolve(err));

  return {
    consumer,
    failed: failed.promise,

    attach(s) {
      stream = s;
      s.on("error", (err) => failed.resolve(err));
      s.on("data", onData);
    },

    stop() {
      stopped ??= (async () => {
        stopping.abort();
        stream?.pause();
        while (running.size > 0) await Promise.all(running);
        flush();
        await Promise.all(commits);
        consumer.removeListener("consumer:group:join", onJoin);
        await stream?.close().catch((err) =>
          logger.warn("Kafka fetch stream did not close cleanly", { topic: o.topic, group, error: err })
        );
        // Forced: leaves the group even if the stream failed and never closed.
        await consumer.close(true).catch((err) =>
          logger.warn("Kafka consumer did not leave its group cleanly", { topic: o.topic, group, error: err })
        );
      })();
      return stopped;
    },
  };
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

/** Rejects with the signal's reason once it aborts; `promise` keeps running (its owner cleans it up). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Resolves once `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
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
