import { AsyncLocalStorage } from "node:async_hooks";
import { createLogger, type Logger } from "../../log/mod.ts";
import { backoffDelay, type BackoffOptions } from "../../async/mod.ts";
import { handleInContext, outgoingHeaders, replyHeaders, requestHeaders } from "../context_propagation.ts";
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
import { NoRespondersError } from "../request_errors.ts";
import { assertRequestOptions, awaitReply, requestDeadline, respondOnce } from "./_request.ts";
import {
  assertOutgoing,
  assertPayloadSize,
  assertSendable,
  assertTopic,
  concurrencyOf,
  positiveInteger,
} from "./_arguments.ts";
import type { DeadLetterStore } from "../dlq/dead_letter_store.ts";
import { memoryDeadLetterStore } from "../dlq/memory_store.ts";

/**
 * What the in-memory broker guarantees; see {@linkcode createMemoryBroker}.
 *
 * @example Check a guarantee before wiring a consumer
 * ```ts
 * import { memoryFeatures } from "./memory.ts";
 * memoryFeatures.orderedPerKey; // true
 * memoryFeatures.persistent; // false: lost when the process exits
 * ```
 */
export const memoryFeatures: Features = Object.freeze({
  persistent: false,
  consumerGroups: true,
  orderedPerKey: true,
  redelivery: true,
  requestReply: true,
  noResponders: true,
  wildcards: false,
  maxMessageBytes: 1024 * 1024,
});

/**
 * Options for {@linkcode createMemoryBroker}.
 *
 * @example Short retention and fast redelivery, for a test
 * ```ts
 * import { createMemoryBroker, type MemoryBrokerOptions } from "./memory.ts";
 * const options: MemoryBrokerOptions = { retention: 100, redelivery: { baseDelayMs: 1, maxDelayMs: 5 } };
 * const bus = createMemoryBroker(options);
 * await bus.close();
 * ```
 */
export interface MemoryBrokerOptions {
  /**
   * Messages kept per topic (at least this many, trimmed in batches) for consumer groups that subscribe later.
   * Messages a subscribed group has not taken yet are never trimmed.
   * @default {10000}
   */
  retention?: number;
  /** Backoff between redeliveries after a handler threw. @default {{ baseDelayMs: 10, maxDelayMs: 1000 }} */
  redelivery?: BackoffOptions;
  /** Where handler failures are reported. @default {createLogger("messaging")} */
  logger?: Logger;
  /**
   * Largest payload `publish` accepts, so code that runs against the in-memory broker in tests hits the same limit
   * as against NATS or Kafka. @default {1048576}
   */
  maxMessageBytes?: number;
}

/**
 * The in-memory broker: a {@linkcode PubSub} living in this process, whose `ping` is always there.
 *
 * @example A readiness check on the in-memory broker
 * ```ts
 * import { createMemoryBroker, type MemoryBroker } from "./memory.ts";
 * const bus: MemoryBroker = createMemoryBroker();
 * await bus.ping(AbortSignal.timeout(100)); // resolves at once until the broker is closed
 * await bus.close();
 * ```
 */
export interface MemoryBroker extends PubSub {
  /** Resolves at once unless the broker is closed: see {@linkcode PubSub.ping}. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Sends a request through the topic's groups: see {@linkcode createMemoryBroker} and `Publisher.request`. */
  request(topic: string, msg: OutgoingMessage, options?: RequestOptions): Promise<Message>;
  /** Reads and removes retained messages, for the dead-letter operations (`openDeadLetterQueue`). */
  readonly deadLetters: DeadLetterStore;
}

interface Delivery {
  msg: Message;
  attempt: number;
}

interface Member {
  handler: MessageHandler;
  /**
   * Runs a delivery in the async context the subscription was made in, not the publisher's: a publisher inside a
   * database transaction must not hand its transaction context (or its request context) to the consumer.
   */
  inSubscriberContext: <R>(fn: () => R) => R;
  concurrency: number;
  inFlight: number;
  closing: boolean;
  onIdle: (() => void)[];
}

interface Group {
  name: string;
  anonymous: boolean;
  /** Offset of the next message this group has not taken from the topic log. */
  cursor: number;
  members: Member[];
  next: number;
  /** Redeliveries and same-key messages that became unblocked; served before new messages. */
  ready: Delivery[];
  /** Keys with a message in flight (or waiting for redelivery), and the same-key messages queued behind it. */
  busyKeys: Map<string, Delivery[]>;
}

interface Topic {
  name: string;
  /** Offset of `log[0]`. */
  base: number;
  log: Message[];
  groups: Map<string, Group>;
}

/**
 * Creates an in-memory broker for unit tests and the embedded run mode (all services in one process).
 *
 * Semantics, checked by the conformance suite:
 * - At-least-once within the process: a handler that throws gets the message again (`attempt` + 1) after a backoff.
 * - Consumer groups: every group gets every message once; the subscriptions in a group split the messages between
 *   them. A subscription without `group` is a group of its own that starts at the end of the topic.
 * - Ordered per key within a group: a same-key message waits until the previous one was handled (including its
 *   redeliveries), so a failing message blocks later messages with its key in that group, and only those.
 * - Kafka-like retention, because services start in any order: each topic keeps a bounded log, and a named group
 *   that subscribes for the first time starts from the earliest retained message. A group whose subscriptions all
 *   closed keeps its position and resumes from it (messages it had not finished are delivered again).
 * - Not persistent: everything is lost when the process exits.
 * - Payloads over `maxMessageBytes` (1 MiB by default, like the NATS and Kafka defaults) are rejected by `publish`.
 *
 * - Request/reply (`request`, `reply`): a request goes through the topic like a message (every group, ordered by key,
 *   redelivered to a responder that threw) until it is answered or its caller stops waiting; after that, deliveries
 *   of it still queued or due are dropped unhandled. A request to a topic with no subscription rejects at once with
 *   `NoRespondersError` (`noResponders`).
 *
 * `ping` resolves at once (there is no broker to lose) until the broker is closed. `close()` stops delivery, waits
 * for in-flight handlers, drops pending redeliveries, and rejects requests still waiting for a reply.
 *
 * @example Publish to a group that subscribes later
 * ```ts
 * import { createMemoryBroker } from "./memory.ts";
 * const bus = createMemoryBroker();
 * await bus.publish("orders.events", { key: "order-1", payload: new TextEncoder().encode("created") });
 * const sub = await bus.subscribe("orders.events", async (msg) => {
 *   console.log(msg.key, new TextDecoder().decode(msg.payload), msg.attempt);
 * }, { group: "payments", concurrency: 4 });
 * await sub.close();
 * await bus.close();
 * ```
 */
export function createMemoryBroker(options: MemoryBrokerOptions = {}): MemoryBroker {
  const retention = options.retention ?? 10_000;
  if (!Number.isInteger(retention) || retention < 0) {
    throw new RangeError(
      `Cannot create a memory broker as retention is not a non-negative integer: current value is ${retention}`,
    );
  }
  const maxMessageBytes = positiveInteger(
    options.maxMessageBytes ?? memoryFeatures.maxMessageBytes,
    "create a memory broker",
    "maxMessageBytes",
  );
  const features: Features = Object.freeze({ ...memoryFeatures, maxMessageBytes });
  const trimBatch = Math.max(1, Math.floor(retention / 4));
  const redelivery = { baseDelayMs: 10, maxDelayMs: 1000, ...options.redelivery };
  const logger = options.logger ?? createLogger("messaging");
  const topics = new Map<string, Topic>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const subscriptions = new Set<Subscription>();
  /** Requests in the topic logs whose caller still waits, by their log entry: the others are dropped unhandled. */
  const waiting = new WeakSet<Message>();
  /** Messages removed from their topic by the dead-letter operations: kept in the log (offsets stay), never delivered. */
  const removed = new WeakSet<Message>();
  const requests = new Set<(err: unknown) => void>();
  let anonymous = 0;
  let closing: Promise<void> | undefined;

  const topicOf = (name: string): Topic => {
    let t = topics.get(name);
    if (!t) topics.set(name, t = { name, base: 0, log: [], groups: new Map() });
    return t;
  };

  const trim = (t: Topic) => {
    let keepFrom = t.base + t.log.length - retention;
    for (const g of t.groups.values()) if (g.members.length > 0) keepFrom = Math.min(keepFrom, g.cursor);
    const excess = keepFrom - t.base;
    if (excess >= trimBatch) {
      t.log.splice(0, excess);
      t.base += excess;
    }
  };

  const pickMember = (g: Group): Member | undefined => {
    for (let i = 0; i < g.members.length; i++) {
      const m = g.members[(g.next + i) % g.members.length];
      if (!m.closing && m.inFlight < m.concurrency) {
        g.next = (g.next + i + 1) % g.members.length;
        return m;
      }
    }
    return undefined;
  };

  const releaseKey = (g: Group, d: Delivery) => {
    if (d.msg.key === undefined) return;
    const queue = g.busyKeys.get(d.msg.key);
    const following = queue?.shift();
    if (following) g.ready.push(following);
    else g.busyKeys.delete(d.msg.key);
  };

  const settle = (t: Topic, g: Group, m: Member) => {
    m.inFlight--;
    if (m.inFlight === 0) { for (const resolve of m.onIdle.splice(0)) resolve(); }
    pump(t, g);
  };

  const run = (t: Topic, g: Group, m: Member, d: Delivery) => {
    m.inFlight++;
    const msg: Message = {
      ...d.msg,
      headers: { ...d.msg.headers },
      payload: d.msg.payload.slice(),
      attempt: d.attempt,
    };
    // Deferred so a handler never runs inside publish()'s call stack (no re-entrant pumping).
    queueMicrotask(() => {
      const answered = d.msg.respond !== undefined && !waiting.has(d.msg);
      (answered ? DONE : m.inSubscriberContext(() => handleInContext(m.handler, msg))).then(
        () => {
          releaseKey(g, d);
          settle(t, g, m);
        },
        (err) => {
          const wait = backoffDelay(d.attempt, redelivery);
          logger.warn("message handler failed; redelivering", {
            topic: t.name,
            group: g.anonymous ? undefined : g.name,
            messageId: d.msg.id,
            attempt: d.attempt,
            retryInMs: wait,
            error: err,
          });
          if (closing) return settle(t, g, m);
          const timer = setTimeout(() => {
            timers.delete(timer);
            g.ready.push({ msg: d.msg, attempt: d.attempt + 1 });
            pump(t, g);
          }, wait);
          timers.add(timer);
          settle(t, g, m);
        },
      );
    });
  };

  const pump = (t: Topic, g: Group) => {
    if (closing) return;
    const from = g.cursor;
    for (;;) {
      const m = pickMember(g);
      if (!m) break;
      let d = g.ready.shift();
      if (!d) {
        if (g.cursor < t.base) g.cursor = t.base;
        if (g.cursor >= t.base + t.log.length) break;
        const msg = t.log[g.cursor++ - t.base];
        if (removed.has(msg)) continue;
        d = { msg, attempt: 1 };
        if (msg.key !== undefined) {
          const queue = g.busyKeys.get(msg.key);
          if (queue) {
            queue.push(d);
            continue;
          }
          g.busyKeys.set(msg.key, []);
        }
      }
      run(t, g, m, d);
    }
    if (g.cursor !== from) trim(t);
  };

  const append = (t: Topic, msg: Message) => {
    t.log.push(msg);
    for (const g of t.groups.values()) if (g.members.length > 0) pump(t, g);
    trim(t);
  };

  const broker: MemoryBroker = {
    features,
    deadLetters: memoryDeadLetterStore((name) => topics.get(name), removed),

    ping(signal?: AbortSignal): Promise<void> {
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (closing) return Promise.reject(new Error("Cannot ping as the memory broker is closed"));
      return Promise.resolve();
    },

    publish(topic: string, out: OutgoingMessage): Promise<void> {
      try {
        assertSendable("publish", topic, out, maxMessageBytes);
        if (closing) throw new Error(`Cannot publish to "${topic}" as the memory broker is closed`);
      } catch (err) {
        return Promise.reject(err);
      }
      append(topicOf(topic), {
        id: out.id ?? crypto.randomUUID(),
        key: out.key,
        headers: outgoingHeaders(out.headers),
        payload: out.payload.slice(),
        attempt: 1,
        timestamp: Date.now(),
      });
      return Promise.resolve();
    },

    request(topic: string, out: OutgoingMessage, opts?: RequestOptions): Promise<Message> {
      try {
        assertSendable("send a request", topic, out, maxMessageBytes);
        assertRequestOptions(opts);
        if (closing) throw new Error(`Cannot send a request to "${topic}" as the memory broker is closed`);
      } catch (err) {
        return Promise.reject(err);
      }
      const t = topics.get(topic);
      if (!t || ![...t.groups.values()].some((g) => g.members.length > 0)) {
        return Promise.reject(new NoRespondersError(topic));
      }
      const deadline = requestDeadline(opts);
      return awaitReply(topic, opts, deadline, requests, (answered) => {
        const id = out.id ?? crypto.randomUUID();
        const request: Message = {
          id,
          key: out.key,
          headers: requestHeaders(out.headers, deadline),
          payload: out.payload.slice(),
          attempt: 1,
          timestamp: Date.now(),
          respond: respondOnce(id, (response) => {
            assertOutgoing(response);
            assertPayloadSize(topic, response.payload, maxMessageBytes);
            if (waiting.has(request)) {
              answered({
                id: response.id ?? crypto.randomUUID(),
                key: response.key,
                headers: replyHeaders(id, response.headers),
                payload: response.payload.slice(),
                attempt: 1,
                timestamp: Date.now(),
              });
            }
            return Promise.resolve();
          }),
        };
        waiting.add(request);
        append(t, request);
        return () => waiting.delete(request);
      });
    },

    subscribe(topic: string, handler: MessageHandler, opts?: SubscribeOptions): Promise<Subscription> {
      let concurrency: number;
      try {
        assertTopic(topic, "subscribe");
        if (typeof handler !== "function") {
          throw new TypeError(`Cannot subscribe as the handler is not a function: current value is ${typeof handler}`);
        }
        if (closing) throw new Error(`Cannot subscribe to "${topic}" as the memory broker is closed`);
        concurrency = concurrencyOf(opts);
      } catch (err) {
        return Promise.reject(err);
      }
      const t = topicOf(topic);
      const name = opts?.group ?? `\0anonymous-${++anonymous}`;
      let g = t.groups.get(name);
      if (!g) {
        g = {
          name,
          anonymous: opts?.group === undefined,
          cursor: opts?.group === undefined ? t.base + t.log.length : t.base,
          members: [],
          next: 0,
          ready: [],
          busyKeys: new Map(),
        };
        t.groups.set(name, g);
      }
      const group = g;
      const member: Member = {
        handler,
        inSubscriberContext: AsyncLocalStorage.snapshot(),
        concurrency,
        inFlight: 0,
        closing: false,
        onIdle: [],
      };
      group.members.push(member);
      let closed: Promise<void> | undefined;
      const subscription: Subscription = {
        close() {
          closed ??= (async () => {
            member.closing = true;
            group.members.splice(group.members.indexOf(member), 1);
            if (member.inFlight > 0) await new Promise<void>((resolve) => member.onIdle.push(resolve));
            if (group.anonymous) t.groups.delete(group.name);
            subscriptions.delete(subscription);
          })();
          return closed;
        },
      };
      subscriptions.add(subscription);
      pump(t, group);
      return Promise.resolve(subscription);
    },

    close(): Promise<void> {
      closing ??= (async () => {
        for (const fail of [...requests]) fail(new Error("Cannot wait for a reply as the memory broker is closed"));
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        await Promise.all([...subscriptions].map((s) => s.close()));
      })();
      return closing;
    },
  };
  return broker;
}

const DONE = Promise.resolve();
