/**
 * A message as published and delivered. `payload` is bytes; encode and decode at the edges.
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
}

/** What a publisher accepts: everything but the delivery bookkeeping is optional. */
export interface OutgoingMessage {
  id?: string;
  key?: string;
  headers?: Record<string, string>;
  payload: Uint8Array;
}

/** Returns normally to acknowledge; throws to reject (redelivered where the adapter supports it). */
export type MessageHandler = (msg: Message) => Promise<void>;

/** What an adapter can do; the conformance suite skips what an adapter does not claim. */
export interface Features {
  /** Messages survive a broker restart and wait for subscribers that are not running. */
  persistent: boolean;
  /** Subscribers sharing a group split the messages between them. */
  consumerGroups: boolean;
  /** Same-key messages are delivered in publish order. */
  orderedPerKey: boolean;
  /** A thrown handler leads to the message being delivered again. */
  redelivery: boolean;
  requestReply: boolean;
  wildcards: boolean;
}

/** Options for {@linkcode Subscriber.subscribe}. */
export interface SubscribeOptions {
  /** Consumer group / queue group / durable name. Subscribers with the same group share the work. */
  group?: string;
  /** Most messages handled at once by this subscription. @default {1} */
  concurrency?: number;
}

/** A running subscription. */
export interface Subscription {
  /** Stops delivery, waits for in-flight handlers, releases resources; idempotent. */
  close(): Promise<void>;
}

/**
 * Publishes messages to topics.
 *
 * Delivery semantics per adapter:
 * - in-memory: at-least-once within the process, redelivery on throw, ordered per key, not persistent.
 * - NATS Core: at-most-once; no redelivery; queue groups; ordering per publisher connection.
 * - Kafka: at-least-once; offsets committed only after the handler resolved; ordered per key (partition by key);
 *   a thrown handler is retried in place before the partition moves on.
 *
 * `publish` resolves once the broker accepted the message (for Kafka: acks from all in-sync replicas).
 * `close()` flushes pending publishes and is idempotent. Publishers are safe for concurrent use.
 */
export interface Publisher {
  readonly features: Features;
  publish(topic: string, msg: OutgoingMessage): Promise<void>;
  close(): Promise<void>;
}

/** Subscribes handlers to topics. Subscribers are safe for concurrent use; `close()` closes every subscription. */
export interface Subscriber {
  readonly features: Features;
  subscribe(topic: string, handler: MessageHandler, options?: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}
