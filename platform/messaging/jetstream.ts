import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  StorageType,
} from "@nats-io/jetstream";
import { createLogger, type Logger } from "../log/logger.ts";
import { backoffDelay, type BackoffOptions, delay } from "../async/backoff.ts";
import { handleInContext, outgoingHeaders } from "./context_propagation.ts";
import { createLimiter } from "./limiter.ts";
import type {
  Features,
  Message,
  MessageHandler,
  OutgoingMessage,
  PubSub,
  SubscribeOptions,
  Subscription,
} from "./message.ts";
import { decodeNatsMessage, natsFeatures, NatsMessageHeaders, natsPayloadLimit } from "./nats.ts";
import { assertOutgoing, assertPayloadSize, assertTopic, concurrencyOf, positiveInteger } from "./validate.ts";

/** What the JetStream adapter guarantees; see {@linkcode createJetStreamPubSub}. */
export const jetStreamFeatures: Features = Object.freeze({
  persistent: true,
  consumerGroups: true,
  orderedPerKey: false,
  redelivery: true,
  requestReply: false,
  wildcards: false,
  maxMessageBytes: natsFeatures.maxMessageBytes,
});

/** Why a message was given up on, passed to {@linkcode JetStreamPubSubOptions.onDeadLetter}. */
export interface DeadLetter {
  /** The subject the message was published to. */
  topic: string;
  /** The subscription's group (durable consumer). */
  group: string;
  /** The last handler error, or why the handler was not called again. */
  error: unknown;
}

/** Options for {@linkcode createJetStreamPubSub}. */
export interface JetStreamPubSubOptions {
  /** An open connection to share; `close()` then flushes acknowledgements but leaves the connection open. */
  connection?: NatsConnection;
  /** Servers to connect to when no `connection` is given. @default {"nats://127.0.0.1:4222"} */
  servers?: string | string[];
  /** Connection name the server shows. @default {"trellis-jetstream"} */
  name?: string;
  /** Where handler failures and terminated messages are reported. @default {createLogger("messaging")} */
  logger?: Logger;
  /** Deliveries of a message (first one included) before it is terminated. @default {5} */
  maxDeliver?: number;
  /** How long the server waits for an acknowledgement before it redelivers. @default {30000} */
  ackWaitMs?: number;
  /** Backoff of the `nak` delay after a handler threw. @default {{ initialDelayMs: 100, maxDelayMs: 5000 }} */
  redelivery?: BackoffOptions;
  /** Window in which the stream drops a second message with the same id. @default {120000} */
  duplicateWindowMs?: number;
  /** Longest a pull request waits at the server for messages (at least 1000). @default {5000} */
  fetchExpiresMs?: number;
  /** Largest payload `publish` accepts. @default {the server's max_payload minus NATS_HEADER_HEADROOM} */
  maxMessageBytes?: number;
  /**
   * Called before a message is terminated (its handler failed `maxDeliver` times): the hook for a dead-letter queue.
   * The message is terminated once the hook resolves; if the hook throws, the message is nak'd instead and offered
   * again later (then straight to the hook, without calling the handler). Without it the message is logged and
   * terminated.
   */
  onDeadLetter?: (msg: Message, reason: DeadLetter) => void | Promise<void>;
}

/** The JetStream adapter: a {@linkcode PubSub} plus stream setup. */
export interface JetStreamPubSub extends PubSub {
  /**
   * Returns the name of the stream holding `topic`: an existing stream whose subjects cover it, otherwise a new
   * file-backed stream named after the topic (`.` and other characters not allowed in names become `_`) with the
   * topic as its only subject. `publish` and `subscribe` call it; call it to set up streams ahead of time.
   */
  ensureStream(topic: string): Promise<string>;
}

/**
 * Creates a NATS JetStream publisher/subscriber: **at-least-once**, persistent, with durable consumer groups.
 *
 * - Streams: each topic lives in a stream found or created on first use (see {@linkcode JetStreamPubSub.ensureStream}),
 *   with file storage, limits retention (every group reads every message) and a duplicate window.
 * - `publish` resolves with the stream's acknowledgement (PubAck). The message id is sent as `Nats-Msg-Id`, so a
 *   retried publish with the same id inside the duplicate window is stored once. Id, key and publish time travel in
 *   {@linkcode NatsMessageHeaders}, as with NATS Core.
 * - `subscribe` needs `options.group`: it names a durable pull consumer (characters not allowed in names become `_`)
 *   that starts at the beginning of the stream, so messages published while no subscriber runs wait for it.
 *   Subscriptions sharing a group split the messages.
 * - Backpressure: a subscription never runs more than `concurrency` handlers and only pulls as many messages as it
 *   has free slots, so nothing waits client-side while its ack timer runs.
 * - A handler that returns acks the message; one that throws naks it with an exponential delay (`redelivery`), and
 *   the next delivery has `attempt` (the server's delivery count) + 1. After `maxDeliver` failed attempts the
 *   message is terminated (never redelivered) and logged, after `onDeadLetter` if given. A handler still running
 *   after `ackWaitMs` gets its message redelivered concurrently: keep handlers shorter than that.
 * - Not ordered per key: a nak'd message is redelivered after later ones, and group members pull independently.
 * - `close()` is idempotent: stops pulling, waits for in-flight handlers and their acks, then drains and closes the
 *   connection if the adapter opened it. Messages pulled but not handled are redelivered after `ackWaitMs`.
 *
 * @example Payments consumes order events durably
 * ```ts ignore
 * import { createJetStreamPubSub } from "./jetstream.ts";
 * const bus = await createJetStreamPubSub({ servers: "nats://127.0.0.1:4222", maxDeliver: 5 });
 * const sub = await bus.subscribe("orders.events", async (msg) => {
 *   console.log(msg.id, msg.attempt);
 * }, { group: "payments", concurrency: 8 });
 * await bus.publish("orders.events", { id: "evt-1", key: "order-1", payload: new TextEncoder().encode("{}") });
 * await sub.close();
 * await bus.close();
 * ```
 */
export async function createJetStreamPubSub(options: JetStreamPubSubOptions = {}): Promise<JetStreamPubSub> {
  const logger = options.logger ?? createLogger("messaging");
  const action = "create a JetStream adapter";
  const maxDeliver = positiveInteger(options.maxDeliver ?? 5, action, "maxDeliver");
  const ackWaitMs = positiveInteger(options.ackWaitMs ?? 30_000, action, "ackWaitMs");
  const duplicateWindowMs = positiveInteger(options.duplicateWindowMs ?? 120_000, action, "duplicateWindowMs");
  const fetchExpiresMs = positiveInteger(options.fetchExpiresMs ?? 5_000, action, "fetchExpiresMs");
  if (fetchExpiresMs < 1000) {
    throw new RangeError(`Cannot ${action} as fetchExpiresMs is below 1000: current value is ${fetchExpiresMs}`);
  }
  const redelivery = { initialDelayMs: 100, maxDelayMs: 5000, ...options.redelivery };
  const owned = !options.connection;
  const nc = options.connection ??
    await connect({ servers: options.servers ?? "nats://127.0.0.1:4222", name: options.name ?? "trellis-jetstream" });
  let maxMessageBytes: number;
  let jsm: JetStreamManager;
  try {
    maxMessageBytes = natsPayloadLimit(nc, options.maxMessageBytes, action);
    jsm = await jetstreamManager(nc);
  } catch (err) {
    if (owned) await nc.close();
    throw err;
  }
  const js = jetstream(nc);
  const features: Features = Object.freeze({ ...jetStreamFeatures, maxMessageBytes });
  const streams = new Map<string, Promise<string>>();
  const subscriptions = new Set<Subscription>();
  const publishing = new Set<Promise<unknown>>();
  let closing: Promise<void> | undefined;

  const assertOpen = (what: string) => {
    if (closing) throw new Error(`Cannot ${what} as the JetStream adapter is closed`);
  };

  const findOrCreateStream = async (topic: string): Promise<string> => {
    try {
      return await jsm.streams.find(topic);
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
    }
    if (/[*>]/.test(topic)) {
      throw new TypeError(
        `Cannot use wildcard topic "${topic}" as no stream covers it: create a stream whose subjects include it first`,
      );
    }
    const name = safeName(topic);
    await jsm.streams.add({
      name,
      subjects: [topic],
      storage: StorageType.File,
      duplicate_window: duplicateWindowMs * 1_000_000,
    });
    return name;
  };

  const ensureStream = (topic: string): Promise<string> => {
    let stream = streams.get(topic);
    if (!stream) {
      stream = findOrCreateStream(topic);
      streams.set(topic, stream);
      stream.catch(() => streams.delete(topic));
    }
    return stream;
  };

  const ensureConsumer = async (stream: string, durable: string, topic: string): Promise<void> => {
    const config: Partial<ConsumerConfig> = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ackWaitMs * 1_000_000,
      // Unlimited at the server: the adapter counts attempts itself, so a message whose handler keeps timing out
      // still ends up terminated and logged (or dead-lettered) instead of silently parked by the server.
      max_deliver: -1,
      filter_subject: topic,
    };
    let existing: ConsumerConfig;
    try {
      existing = (await jsm.consumers.info(stream, durable)).config;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(stream, config);
      return;
    }
    if (existing.ack_wait !== config.ack_wait || existing.max_deliver !== config.max_deliver) {
      await jsm.consumers.update(stream, durable, { ack_wait: config.ack_wait, max_deliver: config.max_deliver });
    }
  };

  const settle = (what: string, op: () => void, fields: Record<string, unknown>) => {
    try {
      op();
    } catch (err) {
      logger.warn(`could not ${what} a message; the server redelivers it after ackWait`, { ...fields, error: err });
    }
  };

  const deadLetter = async (m: JsMsg, msg: Message, topic: string, group: string, error: unknown) => {
    const fields = { topic, group, messageId: msg.id, key: msg.key, attempt: msg.attempt, streamSeq: m.seq };
    logger.error("message handler failed maxDeliver times; terminating the message", {
      ...fields,
      maxDeliver,
      headers: msg.headers,
      payloadBytes: msg.payload.byteLength,
      payloadPreview: new TextDecoder().decode(msg.payload.subarray(0, 512)),
      error,
    });
    if (options.onDeadLetter) {
      try {
        await options.onDeadLetter(msg, { topic, group, error });
      } catch (hookError) {
        const wait = backoffDelay(msg.attempt, redelivery);
        logger.error("onDeadLetter failed; the message is kept and offered again", {
          ...fields,
          retryInMs: wait,
          error: hookError,
        });
        return settle("nak", () => m.nak(wait), fields);
      }
    }
    // No reason text: servers before 2.10 do not parse "+TERM <reason>" and would leave the message pending.
    settle("terminate", () => m.term(), fields);
  };

  const handle = async (m: JsMsg, handler: MessageHandler, group: string) => {
    const msg = decodeNatsMessage(m.headers, m.data, m.info.deliveryCount);
    const fields = { topic: m.subject, group, messageId: msg.id, attempt: msg.attempt };
    if (msg.attempt > maxDeliver) {
      return deadLetter(m, msg, m.subject, group, new Error(`attempt ${msg.attempt} is past maxDeliver ${maxDeliver}`));
    }
    try {
      await handleInContext(handler, msg);
    } catch (err) {
      if (msg.attempt >= maxDeliver) return deadLetter(m, msg, m.subject, group, err);
      const wait = backoffDelay(msg.attempt, redelivery);
      logger.warn("message handler failed; redelivering", { ...fields, retryInMs: wait, error: err });
      return settle("nak", () => m.nak(wait), fields);
    }
    settle("ack", () => m.ack(), fields);
  };

  return {
    features,
    ensureStream(topic: string): Promise<string> {
      try {
        assertTopic(topic, "ensure a stream");
        assertOpen("ensure a stream");
      } catch (err) {
        return Promise.reject(err);
      }
      return ensureStream(topic);
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
      const h = natsHeaders();
      for (const [k, v] of Object.entries(outgoingHeaders(out.headers))) h.set(k, v);
      h.set(NatsMessageHeaders.timestamp, String(Date.now()));
      if (out.key !== undefined) h.set(NatsMessageHeaders.key, out.key);
      const msgID = out.id ?? crypto.randomUUID();
      const done = ensureStream(topic).then(() => js.publish(topic, out.payload, { msgID, headers: h }));
      publishing.add(done);
      return done.then(() => {}).finally(() => publishing.delete(done));
    },

    async subscribe(topic: string, handler: MessageHandler, opts?: SubscribeOptions): Promise<Subscription> {
      assertTopic(topic, "subscribe");
      const concurrency = concurrencyOf(opts);
      if (!opts?.group) {
        throw new TypeError(
          `Cannot subscribe to JetStream topic "${topic}" without a consumer group: options.group is required (it names the durable consumer), current value is ${opts?.group}`,
        );
      }
      assertOpen(`subscribe to "${topic}"`);
      const group = opts.group;
      const stream = await ensureStream(topic);
      const durable = safeName(group);
      await ensureConsumer(stream, durable, topic);
      const consumer = await js.consumers.get(stream, durable);
      const limiter = createLimiter(concurrency);
      const stopping = new AbortController();
      let batch: ConsumerMessages | undefined;

      const pull = async () => {
        while (!stopping.signal.aborted && !nc.isClosed()) {
          // Hold every free slot before asking for messages: the server never sends more than can be handled now.
          await limiter.acquire();
          let held = 1;
          while (limiter.active < concurrency) {
            await limiter.acquire();
            held++;
          }
          try {
            if (stopping.signal.aborted) continue;
            batch = await consumer.fetch({ max_messages: held, expires: fetchExpiresMs });
            if (stopping.signal.aborted) batch.stop();
            for await (const m of batch) {
              held--;
              handle(m, handler, group).finally(() => limiter.release());
            }
          } catch (err) {
            if (stopping.signal.aborted || nc.isClosed()) continue;
            logger.warn("JetStream fetch failed; retrying", { topic, group, error: err });
            await delay(1000, stopping.signal).catch(() => {});
          } finally {
            batch = undefined;
            for (; held > 0; held--) limiter.release();
          }
        }
      };
      const loop = pull();

      let closed: Promise<void> | undefined;
      const subscription: Subscription = {
        close() {
          closed ??= (async () => {
            stopping.abort();
            batch?.stop();
            await loop;
            await limiter.idle();
            if (!nc.isClosed()) await nc.flush().catch(() => {});
            subscriptions.delete(subscription);
          })();
          return closed;
        },
      };
      subscriptions.add(subscription);
      return subscription;
    },

    close(): Promise<void> {
      closing ??= (async () => {
        await Promise.allSettled(publishing);
        await Promise.all([...subscriptions].map((s) => s.close()));
        if (owned && !nc.isClosed()) {
          await nc.drain();
          await nc.closed();
        }
      })();
      return closing;
    },
  };
}

function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/** Stream and consumer names may not contain `.`, `*`, `>`, whitespace or path separators. */
function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, "_");
}
