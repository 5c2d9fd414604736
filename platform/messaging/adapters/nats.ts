import { headers as natsHeaders, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { currentContext } from "../../context/mod.ts";
import { createLogger, type Logger } from "../../log/mod.ts";
import { handleInContextOrSync, outgoingHeaders, requestHeaders } from "../context_propagation.ts";
import { createLimiter } from "../limiter.ts";
import { sharedProbe } from "./_probe.ts";
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
import { assertSendable, assertTopic, concurrencyOf, positiveInteger } from "./_arguments.ts";
import { assertRequestOptions, requestDeadline, requestExpired } from "./_request.ts";
import {
  awaitNatsReply,
  closeNatsConnection,
  connectNats,
  decodeNatsMessage,
  encodeNatsHeaders,
  NATS_HEADER_HEADROOM,
  NatsMessageHeaders,
  natsPayloadLimit,
  natsResponder,
} from "./_nats.ts";

export { NATS_HEADER_HEADROOM, NatsMessageHeaders } from "./_nats.ts";

/**
 * What the NATS Core adapter guarantees; see {@linkcode createNatsPubSub}.
 *
 * @example NATS Core drops what a handler throws on
 * ```ts
 * import { natsFeatures } from "./nats.ts";
 * natsFeatures.redelivery; // false: at-most-once
 * natsFeatures.wildcards; // true
 * ```
 */
export const natsFeatures: Features = Object.freeze({
  persistent: false,
  consumerGroups: true,
  orderedPerKey: false,
  redelivery: false,
  requestReply: true,
  noResponders: true,
  wildcards: true,
  maxMessageBytes: 1024 * 1024 - NATS_HEADER_HEADROOM,
});

/**
 * The NATS Core adapter: a {@linkcode PubSub} whose `ping` is always there.
 *
 * @example
 * ```ts ignore
 * import { createNatsPubSub, type NatsPubSub } from "./nats.ts";
 * const bus: NatsPubSub = await createNatsPubSub();
 * await bus.ping(AbortSignal.timeout(1000));
 * ```
 */
export interface NatsPubSub extends PubSub {
  /** A PING round trip to the server, refused at once while disconnected: see {@linkcode PubSub.ping}. */
  ping(signal?: AbortSignal): Promise<void>;
  /** A NATS request on a reply inbox: see {@linkcode createNatsPubSub} and `Publisher.request`. */
  request(topic: string, msg: OutgoingMessage, options?: RequestOptions): Promise<Message>;
}

/**
 * Options for {@linkcode createNatsPubSub}.
 *
 * @example Bound what a slow subscriber buffers
 * ```ts
 * import type { NatsPubSubOptions } from "./nats.ts";
 * const options: NatsPubSubOptions = {
 *   servers: ["nats://127.0.0.1:4222"],
 *   name: "notifications",
 *   maxPendingMessages: 1_000,
 *   maxPendingBytes: 16 * 1024 * 1024,
 * };
 * ```
 */
export interface NatsPubSubOptions {
  /** An open connection to share; the adapter drains only its own subscriptions and never closes it. */
  connection?: NatsConnection;
  /** Servers to connect to when no `connection` is given. @default {"nats://127.0.0.1:4222"} */
  servers?: string | string[];
  /** Connection name the server shows. @default {"trellis-messaging"} */
  name?: string;
  /** Where dropped messages (handler errors) are reported. @default {createLogger("messaging")} */
  logger?: Logger;
  /** Largest payload `publish` accepts. @default {the server's max_payload minus NATS_HEADER_HEADROOM} */
  maxMessageBytes?: number;
  /**
   * Most messages a subscription keeps received but not yet handled (all `concurrency` handlers busy); more are
   * dropped and logged, as the server does with a slow consumer. @default {10000}
   */
  maxPendingMessages?: number;
  /** Most payload bytes a subscription keeps received but not yet handled; more are dropped. @default {67108864} */
  maxPendingBytes?: number;
}

/**
 * Creates a NATS Core publisher/subscriber: **at-most-once**. A message reaches the subscriptions that exist when it
 * is published; a handler that throws is logged and the message dropped (NATS Core has no acknowledgements, hence no
 * redelivery; use Kafka or JetStream when losing a message is not acceptable).
 *
 * - `group` maps to a NATS queue group: the group's subscriptions split the messages; each group gets every message.
 * - Topics are NATS subjects; `*` and `>` wildcards work in `subscribe`.
 * - Id, key and publish time travel in {@linkcode NatsMessageHeaders}; payload bytes are sent as is. Payloads over
 *   `maxMessageBytes` (by default the server's `max_payload` minus {@linkcode NATS_HEADER_HEADROOM}) are rejected.
 * - `concurrency` is enforced in process; with concurrency 1 a subscription handles messages from one publisher in
 *   publish order, but ordering per key is not claimed (queue groups spread a key over members).
 * - NATS Core has no flow control: a subscriber whose handlers are all busy keeps up to `maxPendingMessages` (and
 *   `maxPendingBytes`) waiting and drops the rest with a warning, instead of buffering without bound.
 * - `publish` resolves once the server acknowledged a flush covering it (one flush shared by publishes issued in the
 *   same tick).
 * - A connection the adapter opened reconnects without limit (see {@linkcode connectNats}); `ping` is a PING round
 *   trip, refused at once while disconnected.
 * - `close()` drains every subscription (in-flight handlers finish) and then drains and closes the connection if the
 *   adapter opened it.
 *
 * @example Notifications as a queue group
 * ```ts ignore
 * import { createNatsPubSub } from "./nats.ts";
 * const bus = await createNatsPubSub({ servers: "nats://127.0.0.1:4222" });
 * const sub = await bus.subscribe("order.confirmed", async (msg) => {
 *   console.log("receipt for", msg.key);
 * }, { group: "notifications", concurrency: 8 });
 * await bus.publish("order.confirmed", { key: "order-1", payload: new TextEncoder().encode("{}") });
 * await sub.close();
 * await bus.close();
 * ```
 */
export async function createNatsPubSub(options: NatsPubSubOptions = {}): Promise<NatsPubSub> {
  const logger = options.logger ?? createLogger("messaging");
  const owned = !options.connection;
  const nc = options.connection ?? await connectNats(options.servers, options.name ?? "trellis-messaging");
  const maxMessageBytes = natsPayloadLimit(nc, options.maxMessageBytes, "create a NATS adapter");
  const maxPendingMessages = positiveInteger(
    options.maxPendingMessages ?? 10_000,
    "create a NATS adapter",
    "maxPendingMessages",
  );
  const maxPendingBytes = positiveInteger(
    options.maxPendingBytes ?? 64 * 1024 * 1024,
    "create a NATS adapter",
    "maxPendingBytes",
  );
  const features: Features = Object.freeze({ ...natsFeatures, maxMessageBytes });
  const subscriptions = new Set<Subscription>();
  const requests = new Set<(err: unknown) => void>();
  let flushing: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  const flushSoon = (): Promise<void> => {
    flushing ??= Promise.resolve().then(() => {
      flushing = undefined;
      return nc.flush();
    });
    return flushing;
  };

  // rtt() refuses at once while the client is disconnected, where a bare flush() would wait for the reconnection.
  const roundTrip = sharedProbe(() => nc.rtt());

  return {
    features,

    ping(signal?: AbortSignal): Promise<void> {
      if (closing) return Promise.reject(new Error("Cannot ping as the NATS adapter is closed"));
      return roundTrip(signal);
    },

    publish(topic: string, out: OutgoingMessage): Promise<void> {
      try {
        assertSendable("publish", topic, out, maxMessageBytes);
        if (closing) throw new Error(`Cannot publish to "${topic}" as the NATS adapter is closed`);
        const h = natsHeaders();
        let only = true;
        // Outside a context and without headers of its own (a publisher loop, a scheduled job) there is nothing to
        // merge: skip building the merged record.
        if (out.headers !== undefined || currentContext() !== undefined) {
          const extra = outgoingHeaders(out.headers);
          for (const k in extra) {
            h.set(k, extra[k]);
            only = false;
          }
        }
        // set() searches for the name to replace first; with no other header there is nothing to replace.
        const put = only ? h.append : h.set;
        put.call(h, NatsMessageHeaders.id, out.id ?? crypto.randomUUID());
        put.call(h, NatsMessageHeaders.timestamp, String(Date.now()));
        if (out.key !== undefined) put.call(h, NatsMessageHeaders.key, out.key);
        nc.publish(topic, out.payload, { headers: h });
      } catch (err) {
        return Promise.reject(err);
      }
      return flushSoon();
    },

    request(topic: string, out: OutgoingMessage, opts?: RequestOptions): Promise<Message> {
      try {
        assertSendable("send a request", topic, out, maxMessageBytes);
        assertRequestOptions(opts);
        if (closing) throw new Error(`Cannot send a request to "${topic}" as the NATS adapter is closed`);
        const deadline = requestDeadline(opts);
        const headers = encodeNatsHeaders(
          requestHeaders(out.headers, deadline),
          out.id ?? crypto.randomUUID(),
          out.key,
        );
        // Not nats.js's request(): it cannot be cancelled, and its timer would outlive a caller that stopped waiting.
        return awaitNatsReply(nc, topic, opts, deadline, requests, (inbox) => {
          nc.publish(topic, out.payload, { reply: inbox, headers });
        });
      } catch (err) {
        return Promise.reject(err);
      }
    },

    async subscribe(topic: string, handler: MessageHandler, opts?: SubscribeOptions): Promise<Subscription> {
      assertTopic(topic, "subscribe");
      const concurrency = concurrencyOf(opts);
      if (closing) throw new Error(`Cannot subscribe to "${topic}" as the NATS adapter is closed`);
      // Taken off the client at once (its own queue has no bound), so that this one can have one. A queue with a head
      // index: shift() on an array of thousands moves all of them, per message, which profiles showed as the adapter's
      // costliest line under a backlog.
      let pending: (Msg | undefined)[] = [];
      let head = 0;
      let pendingBytes = 0;
      let dropped = 0;
      const slots = createLimiter(concurrency);
      /** The oldest pending message, or `undefined` when none waits. */
      const take = (): Msg | undefined => {
        if (head === pending.length) return undefined;
        const next = pending[head]!;
        pending[head++] = undefined;
        if (head === pending.length) {
          pending = [];
          head = 0;
        } else if (head >= 4096 && head * 2 >= pending.length) {
          pending = pending.slice(head);
          head = 0;
        }
        pendingBytes -= next.data.byteLength;
        return next;
      };
      /**
       * Handles `first` in a slot already taken, then pending messages for as long as their handlers finish
       * synchronously (no promise reaction and queued message per message: the next is handled in the same turn);
       * the slot goes back when none waits, or passes to `finished` once an asynchronous handler settles.
       */
      const run = (first: Msg): void => {
        for (let m: Msg | undefined = first; m !== undefined; m = take()) if (handle(m)) return;
        slots.release();
      };
      /** An asynchronous handler settled: its slot takes the next pending message, or is given back. */
      const finished = (): void => {
        const next = take();
        if (next === undefined) slots.release();
        else run(next);
      };
      /** Handles `m`; true when its handler is still running and will call `finished` when it settles. */
      const handle = (m: Msg): boolean => {
        let msg: Message;
        try {
          msg = decodeNatsMessage(m.headers, m.data, 1);
        } catch (err) {
          logger.warn("undecodable message dropped", { topic: m.subject, group: opts?.group, error: err });
          return false;
        }
        if (m.reply) {
          if (requestExpired(msg.headers)) return false;
          msg.respond = natsResponder(nc, m.reply, msg.id, maxMessageBytes);
        }
        const running = handleInContextOrSync(handler, msg);
        if (running === undefined) return false;
        running.then(finished, (err) => {
          logger.warn("message handler failed; message dropped (NATS Core is at-most-once)", {
            topic: m.subject,
            group: opts?.group,
            messageId: msg.id,
            error: err,
          });
          finished();
        });
        return true;
      };
      const reportDropped = () => {
        if (dropped === 0) return;
        logger.warn("slow consumer: messages were dropped (NATS Core is at-most-once)", {
          topic,
          group: opts?.group,
          dropped,
        });
        dropped = 0;
      };
      // A callback rather than the async iterator: no promise and turn of the event loop per message.
      const sub = nc.subscribe(topic, {
        queue: opts?.group,
        callback: (err, m) => {
          if (err) {
            logger.warn("subscription error", { topic, group: opts?.group, error: err });
            return;
          }
          if (slots.tryAcquire()) {
            reportDropped();
            run(m);
            return;
          }
          if (pending.length - head >= maxPendingMessages || pendingBytes + m.data.byteLength > maxPendingBytes) {
            if (dropped++ === 0) {
              logger.warn("slow consumer: dropping messages while its pending ones fill its limits", {
                topic,
                group: opts?.group,
                maxPendingMessages,
                maxPendingBytes,
              });
            }
            return;
          }
          reportDropped();
          pending.push(m);
          pendingBytes += m.data.byteLength;
        },
      });
      // The server must know the interest before subscribe() resolves, or an immediate publish could miss it.
      await nc.flush();
      let closed: Promise<void> | undefined;
      const subscription: Subscription = {
        close() {
          closed ??= (async () => {
            if (!sub.isClosed() && !nc.isClosed()) await sub.drain().catch(() => sub.unsubscribe());
            await sub.closed.catch(() => {});
            await slots.idle();
            reportDropped();
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
        for (const fail of [...requests]) fail(new Error("Cannot wait for a reply as the NATS adapter is closed"));
        await flushing?.catch(() => {});
        await Promise.all([...subscriptions].map((s) => s.close()));
        if (owned) await closeNatsConnection(nc);
      })();
      return closing;
    },
  };
}
