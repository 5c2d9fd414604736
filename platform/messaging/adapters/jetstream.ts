import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
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
import { setImmediate } from "node:timers";
import { createLogger, type Logger } from "../../log/mod.ts";
import { backoffDelay, type BackoffOptions, delay } from "../../async/mod.ts";
import { handleInContext, outgoingHeaders, requestHeaders } from "../context_propagation.ts";
import type {
  Features,
  Message,
  MessageHandler,
  OutgoingMessage,
  PubSub,
  RequestOptions,
  SubscribeOptions,
  Subscription,
} from "../message.ts";
import {
  awaitNatsReply,
  closeNatsConnection,
  connectNats,
  decodeNatsMessage,
  NatsMessageHeaders,
  natsPayloadLimit,
  natsResponder,
} from "./_nats.ts";
import { natsFeatures } from "./nats.ts";
import { assertRequestOptions, requestDeadline, requestExpired } from "./_request.ts";
import { sharedProbe } from "./_probe.ts";
import type { DeadLetterStore } from "../dlq/dead_letter_store.ts";
import { jetStreamDeadLetterStore } from "../dlq/jetstream_store.ts";
import { assertSendable, assertTopic, concurrencyOf, positiveInteger } from "./_arguments.ts";

/**
 * What the JetStream adapter guarantees; see {@linkcode createJetStreamPubSub}.
 *
 * @example JetStream keeps and redelivers what NATS Core drops
 * ```ts
 * import { jetStreamFeatures } from "./jetstream.ts";
 * jetStreamFeatures.persistent; // true: messages published while no subscriber runs wait for it
 * jetStreamFeatures.redelivery; // true: a handler that throws gets its message again
 * jetStreamFeatures.orderedPerKey; // false: a nak'd message comes back after later ones
 * ```
 */
export const jetStreamFeatures: Features = Object.freeze({
  persistent: true,
  consumerGroups: true,
  orderedPerKey: false,
  redelivery: true,
  requestReply: true,
  noResponders: false,
  wildcards: false,
  maxMessageBytes: natsFeatures.maxMessageBytes,
});

/**
 * Options for {@linkcode createJetStreamPubSub}.
 *
 * @example Handlers that may run for a minute, redelivered with a gentle backoff
 * ```ts
 * import type { JetStreamPubSubOptions } from "./jetstream.ts";
 * const options: JetStreamPubSubOptions = {
 *   servers: ["nats://127.0.0.1:4222"],
 *   name: "payments",
 *   ackWaitMs: 120_000,
 *   maxDeliver: 10,
 *   redelivery: { baseDelayMs: 500, maxDelayMs: 30_000 },
 * };
 * ```
 */
export interface JetStreamPubSubOptions {
  /** An open connection to share; `close()` then flushes acknowledgements but leaves the connection open. */
  connection?: NatsConnection;
  /** Servers to connect to when no `connection` is given. @default {"nats://127.0.0.1:4222"} */
  servers?: string | string[];
  /** Connection name the server shows. @default {"trellis-jetstream"} */
  name?: string;
  /** Where handler failures and terminated messages are reported. @default {createLogger("messaging")} */
  logger?: Logger;
  /**
   * Deliveries of a message (first one included) whose failure terminates it: a last-resort bound, logged as an
   * error, for a message nothing else took care of. Dead-lettering is the `deadLetter` middleware's job (the
   * `MessageRouter` parks a message after 5 deliveries), so keep this above that threshold: a dead letter whose
   * publish failed is then delivered, and dead-lettered, again instead of being terminated. @default {10}
   */
  maxDeliver?: number;
  /** How long the server waits for an acknowledgement before it redelivers. @default {30000} */
  ackWaitMs?: number;
  /** Backoff of the `nak` delay after a handler threw. @default {{ baseDelayMs: 100, maxDelayMs: 5000 }} */
  redelivery?: BackoffOptions;
  /** Window in which the stream drops a second message with the same id. @default {120000} */
  duplicateWindowMs?: number;
  /** Longest a pull request waits at the server for messages (at least 1000). @default {5000} */
  fetchExpiresMs?: number;
  /** Largest payload `publish` accepts. @default {the server's max_payload minus NATS_HEADER_HEADROOM} */
  maxMessageBytes?: number;
}

/**
 * The JetStream adapter: a {@linkcode PubSub} plus stream setup.
 *
 * @example Create the stream before the first publish
 * ```ts ignore
 * import { createJetStreamPubSub, type JetStreamPubSub } from "./jetstream.ts";
 * const bus: JetStreamPubSub = await createJetStreamPubSub({ servers: "nats://127.0.0.1:4222" });
 * const stream = await bus.ensureStream("orders.events"); // "orders_events" unless a stream already covers it
 * await bus.ping(AbortSignal.timeout(1_000));
 * await bus.close();
 * ```
 */
export interface JetStreamPubSub extends PubSub {
  /**
   * Returns the name of the stream holding `topic`: an existing stream whose subjects cover it, otherwise a new
   * file-backed stream named after the topic (`.` and other characters not allowed in names become `_`) with the
   * topic as its only subject. `publish` and `subscribe` call it; call it to set up streams ahead of time.
   */
  ensureStream(topic: string): Promise<string>;
  /** A PING round trip, then a JetStream account info request: see {@linkcode PubSub.ping}. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Reads a topic's stream by sequence and deletes messages from it, for the dead-letter operations. */
  readonly deadLetters: DeadLetterStore;
  /** A request stored in the stream, answered over core NATS: see {@linkcode createJetStreamPubSub}. */
  request(topic: string, msg: OutgoingMessage, options?: RequestOptions): Promise<Message>;
}

/**
 * Creates a NATS JetStream publisher/subscriber: **at-least-once**, persistent, with durable consumer groups.
 *
 * - Streams: each topic lives in a stream found or created on first use (see {@linkcode JetStreamPubSub.ensureStream}),
 *   with file storage, limits retention (every group reads every message) and a duplicate window.
 * - `publish` resolves with the stream's acknowledgement (PubAck). The message id is sent as `Nats-Msg-Id`, so a
 *   retried publish with the same id inside the duplicate window is stored once. Id, key and publish time travel in
 *   {@linkcode NatsMessageHeaders}, as with NATS Core.
 * - Publishes and acks made during one turn of the event loop go out together when it ends (`setImmediate`), in one
 *   socket write instead of one each.
 * - `subscribe` needs `options.group`: it names a durable pull consumer (characters not allowed in names become `_`)
 *   that starts at the beginning of the stream, so messages published while no subscriber runs wait for it.
 *   Subscriptions sharing a group split the messages.
 * - Backpressure: a subscription never runs more than `concurrency` handlers, and holds at most `concurrency` more
 *   messages pulled ahead of them, so the next ones are at hand when a handler finishes. A message pulled ahead waits
 *   for at most about one handler's run; one that waited longer than a tenth of `ackWaitMs` is marked in progress
 *   (`+WPI`) as its handler starts, so its ack wait starts over and the handler has all of it.
 * - A handler that returns acks the message; one that throws naks it with an exponential delay (`redelivery`), and
 *   the next delivery has `attempt` (the server's delivery count) + 1. After `maxDeliver` failed attempts the
 *   message is terminated (never redelivered) and logged as an error; dead-lettering it before that is the
 *   `deadLetter` middleware's job (see `maxDeliver`). A handler still running
 *   after `ackWaitMs` gets its message redelivered concurrently: keep handlers shorter than that.
 * - Not ordered per key: a nak'd message is redelivered after later ones, and group members pull independently.
 * - Request/reply: a request is published to the stream like a message (so the topic's durable groups answer it,
 *   with redelivery to a responder that threw), carrying a fresh inbox in {@linkcode NatsMessageHeaders}`.replyTo`;
 *   the reply travels over core NATS on the same connection to that inbox, which the caller subscribes to for one
 *   message. A request whose deadline passed before a responder took it is acked unhandled. The stream stores a
 *   request whether or not a group consumes it, so a request nobody answers times out with `RequestTimeoutError`
 *   (no `noResponders`), and, as with `publish`, a request id reused inside the duplicate window is dropped.
 * - `ping` is a PING round trip followed by a JetStream account info request, so it fails when the server answers
 *   but JetStream does not. A connection the adapter opened reconnects without limit, as NATS Core's does.
 * - `close()` is idempotent: rejects requests still waiting for a reply, stops pulling, waits for in-flight handlers and their acks, then drains and closes the
 *   connection if the adapter opened it. Messages pulled but not handled are redelivered after `ackWaitMs`.
 *
 * @example Payments consumes order events durably
 * ```ts ignore
 * import { createJetStreamPubSub } from "./jetstream.ts";
 * const bus = await createJetStreamPubSub({ servers: "nats://127.0.0.1:4222", maxDeliver: 10 });
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
  const maxDeliver = positiveInteger(options.maxDeliver ?? 10, action, "maxDeliver");
  const ackWaitMs = positiveInteger(options.ackWaitMs ?? 30_000, action, "ackWaitMs");
  const duplicateWindowMs = positiveInteger(options.duplicateWindowMs ?? 120_000, action, "duplicateWindowMs");
  const fetchExpiresMs = positiveInteger(options.fetchExpiresMs ?? 5_000, action, "fetchExpiresMs");
  if (fetchExpiresMs < 1000) {
    throw new RangeError(`Cannot ${action} as fetchExpiresMs is below 1000: current value is ${fetchExpiresMs}`);
  }
  const redelivery = { baseDelayMs: 100, maxDelayMs: 5000, ...options.redelivery };
  const owned = !options.connection;
  const nc = options.connection ?? await connectNats(options.servers, options.name ?? "trellis-jetstream");
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
  /** Topics whose stream is known to exist, so a publish to them goes out without waiting a turn for `streams`. */
  const ready = new Set<string>();
  const subscriptions = new Set<Subscription>();
  const requests = new Set<(err: unknown) => void>();
  let publishing = 0;
  let published: PromiseWithResolvers<void> | undefined;
  const publishSettled = () => {
    if (--publishing === 0) published?.resolve();
  };
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
      stream.then(() => ready.add(topic), () => streams.delete(topic));
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
      // still ends up terminated and logged instead of silently parked by the server.
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

  const terminate = (m: JsMsg, msg: Message, topic: string, group: string, error: unknown) => {
    const fields = { topic, group, messageId: msg.id, key: msg.key, attempt: msg.attempt, streamSeq: m.seq };
    logger.error("message handler failed maxDeliver times; terminating the message", {
      ...fields,
      maxDeliver,
      headers: msg.headers,
      payloadBytes: msg.payload.byteLength,
      payloadPreview: new TextDecoder().decode(msg.payload.subarray(0, 512)),
      error,
    });
    // No reason text: servers before 2.10 do not parse "+TERM <reason>" and would leave the message pending.
    settle("terminate", () => m.term(), fields);
  };

  const failed = (m: JsMsg, msg: Message, group: string, err: unknown): void => {
    if (msg.attempt >= maxDeliver) return terminate(m, msg, m.subject, group, err);
    const wait = backoffDelay(msg.attempt, redelivery);
    const fields = { topic: m.subject, group, messageId: msg.id, attempt: msg.attempt };
    logger.warn("message handler failed; redelivering", { ...fields, retryInMs: wait, error: err });
    settle("nak", () => m.nak(wait), fields);
  };

  /** Runs the handler for one delivery; resolves once the message is nak'd, terminated or its ack is queued. */
  const handle = (m: JsMsg, handler: MessageHandler, group: string): Promise<void> => {
    const msg = decodeNatsMessage(m.headers, m.data, m.info.deliveryCount);
    if (msg.attempt > maxDeliver) {
      terminate(m, msg, m.subject, group, new Error(`attempt ${msg.attempt} is past maxDeliver ${maxDeliver}`));
      return Promise.resolve();
    }
    const replyTo = m.headers?.get(NatsMessageHeaders.replyTo);
    if (replyTo) {
      if (requestExpired(msg.headers)) {
        ack(m);
        return Promise.resolve();
      }
      msg.respond = natsResponder(nc, replyTo, msg.id, maxMessageBytes);
    }
    return handleInContext(handler, msg).then(() => ack(m), (err) => failed(m, msg, group, err));
  };

  // What one turn of the event loop sends goes out in one socket write. nats.js writes once per microtask checkpoint,
  // and handlers and publishers finishing one by one each landed in a checkpoint, and a write, of their own: a write
  // per message, the largest single part of a message's CPU cost in Deno. So acks and publishes wait for the end of
  // the turn (`setImmediate`, which runs right after it; `setTimeout(0)` waits a millisecond or more in Deno).
  let acks: JsMsg[] = [];
  let turn: PromiseWithResolvers<void> | undefined;
  const sendAcks = () => {
    const batch = acks;
    acks = [];
    let failures = 0;
    let error: unknown;
    for (const m of batch) {
      try {
        m.ack();
      } catch (err) {
        failures++;
        error = err;
      }
    }
    if (failures > 0) {
      logger.warn("could not ack messages; the server redelivers them after ackWait", { count: failures, error });
    }
  };
  const endTurn = () => {
    const ended = turn;
    turn = undefined;
    // Publishes waiting on the turn run as microtasks after this function, before nats.js's flush, which the
    // first ack (or, without acks, the first publish) schedules: all share one write.
    ended?.resolve();
    sendAcks();
  };
  const endOfTurn = (): Promise<void> => {
    if (!turn) {
      turn = Promise.withResolvers<void>();
      setImmediate(endTurn);
    }
    return turn.promise;
  };
  const ack = (m: JsMsg) => {
    acks.push(m);
    endOfTurn();
  };

  /** Publishes `out` with `headers` to the stream of `topic`; resolves with the stream's acknowledgement. */
  const store = (topic: string, out: OutgoingMessage, headers: Record<string, string>): Promise<void> => {
    const h = natsHeaders();
    for (const k in headers) h.set(k, headers[k]);
    h.set(NatsMessageHeaders.timestamp, String(Date.now()));
    if (out.key !== undefined) h.set(NatsMessageHeaders.key, out.key);
    let msgID = out.id ?? crypto.randomUUID();
    const redrives = headers["dlq-redrives"];
    if (redrives !== undefined) {
      // A redriven message keeps its id, but the stream would drop it as a duplicate within the duplicate window:
      // the stream deduplicates on a per-redrive id, and the message's own id travels beside it.
      h.set(NatsMessageHeaders.messageId, msgID);
      msgID = `${msgID}.redrive-${redrives}`;
    }
    const options = { msgID, headers: h };
    const send = () => js.publish(topic, out.payload, options);
    const acked = (ready.has(topic) ? endOfTurn() : ensureStream(topic)).then(send);
    publishing++;
    return acked.then(publishSettled, (err) => {
      publishSettled();
      throw err;
    });
  };

  // The connection answering is not enough: JetStream may be disabled, out of resources or without a meta leader.
  const roundTrip = sharedProbe(async () => {
    await nc.rtt();
    await jsm.getAccountInfo();
  });

  return {
    features,
    deadLetters: jetStreamDeadLetterStore(jsm),
    ping(signal?: AbortSignal): Promise<void> {
      if (closing) return Promise.reject(new Error("Cannot ping as the JetStream adapter is closed"));
      return roundTrip(signal);
    },
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
        assertSendable("publish", topic, out, maxMessageBytes);
        assertOpen(`publish to "${topic}"`);
      } catch (err) {
        return Promise.reject(err);
      }
      return store(topic, out, outgoingHeaders(out.headers));
    },

    request(topic: string, out: OutgoingMessage, opts?: RequestOptions): Promise<Message> {
      let deadline: number | undefined;
      try {
        assertSendable("send a request", topic, out, maxMessageBytes);
        assertRequestOptions(opts);
        assertOpen(`send a request to "${topic}"`);
        deadline = requestDeadline(opts);
      } catch (err) {
        return Promise.reject(err);
      }
      const headers = requestHeaders(out.headers, deadline);
      return awaitNatsReply(nc, topic, opts, deadline, requests, (inbox) => {
        headers[NatsMessageHeaders.replyTo] = inbox;
        return store(topic, out, headers);
      });
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
      const stopping = new AbortController();
      // Handlers running; the reader waits on `slotFree` while all `concurrency` slots are taken.
      let active = 0;
      let slotFree: (() => void) | undefined;
      let idle: PromiseWithResolvers<void> | undefined;
      const finish = () => {
        active--;
        const wake = slotFree;
        slotFree = undefined;
        wake?.();
        if (active === 0) idle?.resolve();
      };
      const failedToSettle = (err: unknown) => {
        finish();
        throw err;
      };
      const start = (m: JsMsg) => {
        active++;
        let settled: Promise<void>;
        try {
          settled = handle(m, handler, group);
        } catch (err) {
          settled = Promise.reject(err);
        }
        settled.then(finish, failedToSettle);
      };
      // A message that waited this long for a free slot is marked in progress (+WPI) as its handler starts, so its
      // ack wait starts over and the handler gets all of it, as if the message had not been pulled ahead.
      const staleMs = ackWaitMs / 10;

      const read = async (messages: ConsumerMessages) => {
        const iterator = messages[Symbol.asyncIterator]();
        // When the reader last fell behind (all slots taken): a message read now arrived no earlier. Cleared once
        // it has caught up with what nats.js holds.
        let behindSince: number | undefined;
        while (!stopping.signal.aborted) {
          if (active >= concurrency) {
            behindSince ??= performance.now();
            await new Promise<void>((resolve) => slotFree = resolve);
            continue;
          }
          // Nothing left in hand, so the reader is about to wait for the server: the acks so far go out now, in the
          // same write as the pull request nats.js may send next.
          if (acks.length > 0 && messages.getPending() === 0) sendAcks();
          const next = await iterator.next();
          // Closing: a message read but not handled is redelivered after ackWait, like those still held by nats.js.
          if (next.done || stopping.signal.aborted || nc.isClosed()) return;
          const m = next.value;
          if (behindSince !== undefined) {
            if (performance.now() - behindSince > staleMs) {
              settle("restart the ack wait of", () => m.working(), { topic, group, streamSeq: m.seq });
            }
            if (messages.getPending() === 0) behindSince = undefined;
          }
          start(m);
        }
      };

      // The running `consume()`, stopped at most once: nats.js sends an UNSUB for every stop() until it has run.
      let current: ConsumerMessages | undefined;
      const stopMessages = () => {
        current?.stop();
        current = undefined;
      };
      const consume = async () => {
        while (!stopping.signal.aborted && !nc.isClosed()) {
          try {
            // nats.js queues each further pull request behind the messages already received and sends it when the
            // reader gets there, and the reader reads only while a slot is free: at most `concurrency` messages wait
            // here beyond those being handled.
            current = await consumer.consume({ max_messages: concurrency, expires: fetchExpiresMs });
            await read(current);
          } catch (err) {
            if (stopping.signal.aborted || nc.isClosed()) break;
            logger.warn("JetStream consume failed; retrying", { topic, group, error: err });
          } finally {
            stopMessages();
          }
          if (!stopping.signal.aborted && !nc.isClosed()) await delay(1000, stopping.signal).catch(() => {});
        }
      };
      const loop = consume();

      let closed: Promise<void> | undefined;
      const subscription: Subscription = {
        async lag() {
          // Messages the durable consumer has not delivered yet plus those delivered and not acknowledged.
          const info = await consumer.info(true);
          return [{ topic, partition: "", messages: info.num_pending + info.num_ack_pending }];
        },
        close() {
          closed ??= (async () => {
            stopping.abort();
            stopMessages();
            await loop;
            if (active > 0) {
              idle = Promise.withResolvers<void>();
              await idle.promise;
            }
            if (turn) await turn.promise;
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
        for (const fail of [...requests]) fail(new Error("Cannot wait for a reply as the JetStream adapter is closed"));
        if (publishing > 0) {
          published = Promise.withResolvers<void>();
          await published.promise;
        }
        await Promise.all([...subscriptions].map((s) => s.close()));
        if (owned) await closeNatsConnection(nc);
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
