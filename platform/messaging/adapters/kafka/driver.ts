import type { Message } from "../../message.ts";

/**
 * Payload bytes shared by one or more fetched records: the consumer engine counts `size` towards
 * `maxBufferedBytes` from the first of its records taken until the last of them is handled. A driver that copies each
 * payload on its own gives every record its own block.
 *
 * @example One block per payload
 * ```ts
 * import type { PayloadBlock } from "./driver.ts";
 * const payload = new Uint8Array(256);
 * const block: PayloadBlock = { size: payload.byteLength, unfinished: 0 };
 * ```
 */
export interface PayloadBlock {
  readonly size: number;
  /** Records of the block taken and not yet handled; kept by the engine. */
  unfinished: number;
}

/**
 * A record as a driver decoded it for the consumer engine. A driver may hand the engine a subtype carrying its
 * client's own record, and gets the same objects back in {@linkcode ConsumerDriver.commit}.
 *
 * @example A decoded record
 * ```ts
 * import type { FetchedRecord } from "./driver.ts";
 * const payload = new TextEncoder().encode("{}");
 * const record: FetchedRecord = {
 *   topic: "orders.events",
 *   partition: 0,
 *   offset: 41n,
 *   message: { id: "evt-1", key: "order-1", headers: {}, payload, timestamp: Date.now() },
 *   block: { size: payload.byteLength, unfinished: 0 },
 * };
 * ```
 */
export interface FetchedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  /** The message without `attempt`, its payload already copied out of the client's fetch buffers. */
  readonly message: Omit<Message, "attempt">;
  readonly block: PayloadBlock;
}

/**
 * What a driver reports to the consumer engine while it runs. Every method is cheap and synchronous; the driver calls
 * them from its client's callbacks.
 *
 * @example A driver's fetch loop feeding the engine
 * ```ts
 * import type { DriverSink, FetchedRecord } from "./driver.ts";
 * function deliver(sink: DriverSink<FetchedRecord>, batch: FetchedRecord[]): void {
 *   for (const record of batch) sink.receive(record);
 * }
 * ```
 */
export interface DriverSink<R extends FetchedRecord> {
  /** Takes a fetched record; records of a partition come in offset order (a refetch of older ones is skipped). */
  receive(record: R): void;
  /** The group (re)assigned partitions: `topic` and `partition` of every one this member owns now. */
  assigned(partitions: Iterable<{ topic: string; partition: number }>): void;
  /** The group started rebalancing: a good time to commit what was handled. */
  rebalancing(): void;
  /** The consumer cannot go on (its fetch failed for good, or it lost its group); the engine replaces it. */
  fail(error: unknown): void;
  /** Payload bytes the engine can still take before `maxBufferedBytes` (at least 1). */
  byteRoom(): number;
  /** The partition's high watermark as last fetched, for the consumer's lag; drivers that cannot tell never call it. */
  highWatermark?(topic: string, partition: number, offset: bigint): void;
}

/**
 * One Kafka consumer of one client library, driven by the consumer engine (`engine.ts`), which owns every policy
 * (lanes, commit order, retries, buffering, patterns, supervision). A driver is used once: started, then stopped.
 *
 * @example The smallest driver: one that never fetches anything
 * ```ts
 * import type { ConsumerDriver, FetchedRecord } from "./driver.ts";
 * const idle: ConsumerDriver<FetchedRecord> = {
 *   start: () => Promise.resolve(),
 *   pause() {},
 *   resume() {},
 *   commit: () => Promise.resolve(),
 *   stop: () => Promise.resolve(),
 * };
 * ```
 */
export interface ConsumerDriver<R extends FetchedRecord> {
  /**
   * Connects, subscribes to `topics` (reading a partition from its committed offset, else from the earliest), starts
   * fetching and resolves once the consumer joined its group. The engine stops the driver when this rejects.
   */
  start(topics: readonly string[]): Promise<void>;
  /** Stops handing records to the sink soon (a few more may come); idempotent. */
  pause(): void;
  /** Hands records to the sink again after {@linkcode ConsumerDriver.pause}. */
  resume(): void;
  /** Commits, for each record's partition, the offset after that record. */
  commit(records: readonly R[]): Promise<void>;
  /** Stops fetching and leaves the group; the sink gets nothing more. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The client side a Kafka adapter needs besides its consumers: sending, topic administration, a probe, and making
 * consumer drivers. `createKafkaAdapter` (`adapter.ts`) builds the public {@linkcode PubSub} on it.
 *
 * @example The methods an adapter's client provides
 * ```ts
 * import type { KafkaClient } from "./driver.ts";
 * type Sending = Pick<KafkaClient, "send" | "close">;
 * ```
 */
export interface KafkaClient<R extends FetchedRecord = FetchedRecord> {
  /** Sends one message with `acks: -1`; `headers` already carry the message id. */
  send(topic: string, key: string | undefined, payload: Uint8Array, headers: Record<string, string>): Promise<void>;
  /** Creates missing topics and grows ones with fewer partitions, waiting for their leaders. */
  ensureTopics(topics: string[], partitions: number, replicationFactor: number): Promise<void>;
  listTopics(): Promise<string[]>;
  /** One metadata round trip to a broker. */
  roundTrip(): Promise<unknown>;
  /** Each partition's earliest retained offset (`low`) and the offset the next record gets (`high`). */
  offsets(topic: string): Promise<{ partition: number; low: bigint; high: bigint }[]>;
  /** A fresh consumer in `group` reporting to `sink`. */
  consumer(group: string, sink: DriverSink<R>): ConsumerDriver<R>;
  /** Flushes sends under way and disconnects the producer and admin client. */
  close(): Promise<void>;
}
