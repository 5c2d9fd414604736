import type { DeadLetterStore } from "./dlq/dead_letter_store.ts";

/**
 * A message as published and delivered. `payload` is bytes; encode and decode at the edges.
 *
 * @example Decode a JSON payload in a handler
 * ```ts
 * import type { Message } from "./message.ts";
 * function orderId(msg: Message): string {
 *   return JSON.parse(new TextDecoder().decode(msg.payload)).orderId;
 * }
 * ```
 */
export interface Message {
  /** Unique id, set by the publisher (a UUID when omitted); consumers deduplicate on it. */
  id: string;
  /** Partition/ordering key: messages with the same key are delivered in publish order where the adapter declares `orderedPerKey`. */
  key?: string;
  /** String headers; context (request id, traceparent, deadline) travels here. */
  headers: Record<string, string>;
  payload: Uint8Array;
  /** 1 on first delivery, incremented on each redelivery (where the adapter can tell). */
  attempt: number;
  /** Publish time, epoch milliseconds. */
  timestamp: number;
  /**
   * Set by the adapter on a request (see {@linkcode Publisher.request}), absent on a plain message: sends `response`
   * to the waiting caller. Call it through {@linkcode reply}. The first call sends; later calls, on this delivery or a
   * redelivery of the same request, reject. It resolves once the reply left for the broker, which does not mean the
   * caller still waits for it: a reply after the caller's deadline is dropped.
   */
  respond?: (response: OutgoingMessage) => Promise<void>;
}

/**
 * What a publisher accepts: everything but the delivery bookkeeping is optional.
 *
 * @example
 * ```ts
 * import type { OutgoingMessage } from "./message.ts";
 * const msg: OutgoingMessage = {
 *   id: "evt-1",
 *   key: "order-1",
 *   headers: { "content-type": "application/json" },
 *   payload: new TextEncoder().encode('{"orderId":"order-1"}'),
 * };
 * ```
 */
export interface OutgoingMessage {
  id?: string;
  key?: string;
  headers?: Record<string, string>;
  payload: Uint8Array;
}

/**
 * Returns (or resolves) normally to acknowledge; throws (or rejects) to reject: redelivered where the adapter
 * declares `redelivery`, logged and dropped where it does not.
 *
 * @example
 * ```ts
 * import type { MessageHandler } from "./message.ts";
 * const handler: MessageHandler = async (msg) => {
 *   if (msg.attempt > 5) console.warn("giving this one a last try", msg.id);
 * };
 * ```
 */
export type MessageHandler = (msg: Message) => void | Promise<void>;

/**
 * What an adapter can do; the conformance suite skips what an adapter does not claim.
 *
 * @example Refuse an adapter that could lose messages
 * ```ts
 * import type { Features } from "./message.ts";
 * function requireAtLeastOnce(features: Features): void {
 *   if (!features.redelivery) throw new TypeError("this consumer needs an adapter with redelivery");
 * }
 * ```
 */
export interface Features {
  /** Messages survive a broker restart and wait for subscribers that are not running. */
  persistent: boolean;
  /** Subscribers sharing a group split the messages between them. */
  consumerGroups: boolean;
  /** Same-key messages are delivered in publish order. */
  orderedPerKey: boolean;
  /** A thrown handler leads to the message being delivered again. */
  redelivery: boolean;
  /** `request` and {@linkcode reply} work: see {@linkcode Publisher.request}. */
  requestReply: boolean;
  /**
   * A request to a topic nobody subscribes to rejects at once with `NoRespondersError`; without it, such a request
   * waits out its deadline and rejects with `RequestTimeoutError`. Only meaningful with `requestReply`.
   * @default {false}
   */
  noResponders?: boolean;
  wildcards: boolean;
  /**
   * Largest payload, in bytes, that `publish` accepts (with default broker settings for the adapter's `features`
   * constant; an adapter instance reports the limit of the broker it is connected to). A bigger payload is rejected
   * by `publish` with a `RangeError` before anything is sent.
   */
  maxMessageBytes: number;
}

/**
 * Options for {@linkcode Subscriber.subscribe}.
 *
 * @example
 * ```ts
 * import type { SubscribeOptions } from "./message.ts";
 * const options: SubscribeOptions = { group: "payments", concurrency: 8 };
 * ```
 */
export interface SubscribeOptions {
  /** Consumer group / queue group / durable name. Subscribers with the same group share the work. */
  group?: string;
  /** Most messages handled at once by this subscription. @default {1} */
  concurrency?: number;
}

/**
 * A running subscription.
 *
 * @example Stop consuming on shutdown
 * ```ts
 * import type { Subscription } from "./message.ts";
 * async function stop(subs: Subscription[]): Promise<void> {
 *   await Promise.all(subs.map((s) => s.close()));
 * }
 * ```
 */
export interface Subscription {
  /** Stops delivery, waits for in-flight handlers, releases resources; idempotent. */
  close(): Promise<void>;
  /**
   * How far this consumer is behind, where the adapter can tell: one entry per partition it owns (Kafka: the
   * partition's high watermark less what was handled) or one for the whole consumer (JetStream: messages pending,
   * `partition` empty). The router reports it as `messaging_consumer_lag_messages`.
   */
  lag?(): Promise<readonly ConsumerLag[]>;
}

/**
 * Messages a consumer has yet to handle, for one partition (`""` where the broker has none).
 *
 * @example A Kafka consumer three messages behind on partition 2
 * ```ts
 * import type { ConsumerLag } from "./message.ts";
 * const lag: ConsumerLag = { topic: "orders.events", partition: "2", messages: 3 };
 * ```
 */
export interface ConsumerLag {
  topic: string;
  partition: string;
  messages: number;
}

/**
 * Options for {@linkcode Publisher.request}.
 *
 * @example Ask for a quote, giving up after 500 ms or when the user leaves
 * ```ts
 * import type { RequestOptions } from "./message.ts";
 * const leaving = new AbortController();
 * const options: RequestOptions = { timeoutMs: 500, signal: leaving.signal };
 * ```
 */
export interface RequestOptions {
  /**
   * Longest wait for the reply, from the call. The deadline the request carries is the earliest of this and the
   * current context's deadline. When neither this, `signal` nor a context deadline bounds the wait, 5000 ms.
   * @default {5000 when nothing else bounds the wait; otherwise none}
   */
  timeoutMs?: number;
  /**
   * Cancels the wait: the request rejects with `signal.reason` (with `RequestTimeoutError` when the reason is a
   * `TimeoutError`, as from `AbortSignal.timeout`). The current context's signal cancels it too, without being passed.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Sends `response` to the caller of the request `msg` (see {@linkcode Publisher.request}); rejects with a `TypeError`
 * when `msg` is not a request, and with an `Error` when the request was already answered. A responder is a plain
 * {@linkcode MessageHandler} subscribed with `subscribe` (or through a `MessageRouter`, whose middleware then wraps
 * it), so it replies from inside the handler, in the caller's context: the reply carries the caller's request id.
 *
 * @example A responder that quotes a price
 * ```ts
 * import { createMemoryBroker } from "./adapters/memory.ts";
 * import { reply } from "./message.ts";
 * const bus = createMemoryBroker();
 * await bus.subscribe("pricing.quote", async (msg) => {
 *   await reply(msg, { payload: new TextEncoder().encode("42") });
 * }, { group: "pricing" });
 * const answer = await bus.request("pricing.quote", { payload: new TextEncoder().encode("sku-1") });
 * new TextDecoder().decode(answer.payload); // "42"
 * await bus.close();
 * ```
 */
export function reply(msg: Message, response: OutgoingMessage): Promise<void> {
  if (typeof msg?.respond !== "function") {
    return Promise.reject(
      new TypeError(`Cannot reply to message "${msg?.id}" as it is not a request: current value has no reply channel`),
    );
  }
  return msg.respond(response);
}

/**
 * Publishes messages to topics.
 *
 * Delivery semantics per adapter:
 * - in-memory: at-least-once within the process, redelivery on throw, ordered per key, not persistent.
 * - NATS Core: at-most-once; no redelivery; queue groups; ordering per publisher connection.
 * - NATS JetStream: at-least-once; persistent; durable consumer groups; redelivery on nak with backoff, terminated
 *   after `maxDeliver` attempts; not ordered per key.
 * - Kafka: at-least-once; offsets committed only after the handler resolved; ordered per key (partition by key);
 *   a thrown handler is retried in place before the partition moves on.
 *
 * `publish` resolves once the broker accepted the message (for Kafka: acks from all in-sync replicas).
 * `close()` flushes pending publishes and is idempotent; `publish` after `close()` rejects. Publishers are safe for
 * concurrent use.
 *
 * @example Publish an event for an order
 * ```ts
 * import type { Publisher } from "./message.ts";
 * async function orderCreated(pub: Publisher, orderId: string): Promise<void> {
 *   await pub.publish("orders.events", { key: orderId, payload: new TextEncoder().encode(orderId) });
 * }
 * ```
 */
export interface Publisher {
  readonly features: Features;
  publish(topic: string, msg: OutgoingMessage): Promise<void>;
  /**
   * Sends `msg` to `topic` as a request and resolves with the first reply, where `features.requestReply` (in-memory,
   * NATS Core, JetStream, whose replies travel over core NATS on the same connection; absent on Kafka). The contract:
   *
   * - Responders are ordinary subscriptions: a handler answers with {@linkcode reply}. Every subscription on the topic
   *   gets the request as it gets a message (one member per group); the caller takes the **first** reply and the
   *   others are dropped, so run one group of responders per topic.
   * - Correlation: the reply's `x-correlation-id` header is the request's message id, and its `x-request-id` the
   *   caller's request id (the responder runs in the caller's context, restored from the request's headers).
   * - The caller owns the deadline: the earliest of `options.timeoutMs` and the current context's deadline (5000 ms
   *   when neither, nor `options.signal`, bounds the wait). It travels as `x-deadline-ms` (replacing one in
   *   `msg.headers`), so the responder's context signal aborts when the caller stops waiting. When it passes the
   *   request rejects with `RequestTimeoutError`; when `options.signal` or the context's signal aborts for another
   *   reason, with that reason. Either way the wait is cancelled (the reply subscription is removed) and a late reply
   *   is dropped.
   * - At most once: `request` never resends, a request is answered at most once (a second {@linkcode reply} rejects),
   *   and a request whose deadline passed before a responder took it is dropped unhandled (the in-memory broker also
   *   drops one whose caller stopped waiting for another reason). Until then, an adapter with `redelivery` may deliver
   *   a request whose responder threw again; a responder that never replies leaves its caller to time out.
   * - Nobody subscribed: `NoRespondersError` at once where `features.noResponders`, else `RequestTimeoutError`.
   * - Bad arguments reject with `TypeError`/`RangeError` before anything is sent; after `close()`, with an `Error`,
   *   and `close()` rejects requests still waiting with one.
   *
   * @example Ask the pricing service for a quote within 500 ms
   * ```ts ignore
   * import type { Publisher } from "./message.ts";
   * async function quote(pub: Publisher, sku: string): Promise<string> {
   *   if (!pub.request) throw new TypeError("this bus cannot do request/reply");
   *   const answer = await pub.request("pricing.quote", { payload: new TextEncoder().encode(sku) }, { timeoutMs: 500 });
   *   return new TextDecoder().decode(answer.payload);
   * }
   * ```
   */
  request?(topic: string, msg: OutgoingMessage, options?: RequestOptions): Promise<Message>;
  close(): Promise<void>;
}

/**
 * Subscribes handlers to topics. Subscribers are safe for concurrent use; `close()` closes every subscription.
 *
 * `subscribe` resolves once the subscription is live: a message published after it resolves reaches the handler
 * (for Kafka: once the consumer joined its group and got its partitions).
 *
 * Every adapter runs the handler inside a `Context` (`platform/context`) restored from the message headers (request id,
 * traceparent, deadline), and `publish` copies the current context into headers the caller did not set.
 *
 * @example Consume in a group
 * ```ts
 * import type { Subscriber, Subscription } from "./message.ts";
 * function consume(sub: Subscriber): Promise<Subscription> {
 *   return sub.subscribe("orders.events", (msg) => console.log(msg.id), { group: "inventory", concurrency: 4 });
 * }
 * ```
 */
export interface Subscriber {
  readonly features: Features;
  subscribe(topic: string, handler: MessageHandler, options?: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/**
 * An adapter that both publishes and subscribes (in-memory, NATS, JetStream, Kafka); `close()` closes both sides.
 *
 * @example Round trip through any adapter
 * ```ts
 * import type { PubSub } from "./message.ts";
 * async function ping(bus: PubSub): Promise<void> {
 *   const sub = await bus.subscribe("pings", async (msg) => console.log(msg.id), { group: "pinger" });
 *   await bus.publish("pings", { payload: new TextEncoder().encode("ping") });
 *   await sub.close();
 * }
 * ```
 */
export interface PubSub extends Publisher, Subscriber {
  readonly features: Features;
  /**
   * A cheap liveness probe for readiness checks: resolves once the broker answered one round trip (NATS: a PING;
   * JetStream: also the JetStream API; Kafka: a metadata request; in-memory: at once), rejects when it cannot, when
   * the adapter is closed, or with `signal.reason` as soon as `signal` aborts. It never waits longer than `signal`
   * allows, and concurrent pings share one round trip, so a probe that outlives its signal cannot pile up.
   * Optional so that wrappers written before it still type-check; every adapter here has it.
   *
   * @example A readiness check on a bus
   * ```ts
   * import type { PubSub } from "./message.ts";
   * async function busReady(bus: PubSub): Promise<void> {
   *   await bus.ping?.(AbortSignal.timeout(1000));
   * }
   * ```
   */
  ping?(signal?: AbortSignal): Promise<void>;
  /**
   * Reads and removes what a topic retains, for the dead-letter operations (`openDeadLetterQueue`): present on the
   * in-memory broker, JetStream and Kafka on kafkajs; absent where nothing is retained (NATS Core). A wrapper of a bus
   * passes it on (with its topic mapping) so the dead letters stay reachable.
   */
  readonly deadLetters?: DeadLetterStore;
  close(): Promise<void>;
}
