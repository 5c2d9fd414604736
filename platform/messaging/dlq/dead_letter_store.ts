import type { Message } from "../message.ts";

/**
 * A dead letter as a broker keeps it: the message and its position in the dead-letter topic.
 *
 * @example A letter at JetStream stream sequence 17
 * ```ts
 * import type { StoredLetter } from "./dead_letter_store.ts";
 * const letter: StoredLetter = {
 *   ref: "17",
 *   message: { id: "d-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 },
 * };
 * ```
 */
export interface StoredLetter {
  /**
   * Where the letter sits in its topic, unique there and stable until it is removed: the stream sequence on
   * JetStream, `<partition>-<offset>` on Kafka, the log offset in the in-memory broker.
   */
  ref: string;
  message: Message;
}

/**
 * The broker primitive the dead-letter operations (`openDeadLetterQueue`) stand on: reading what a topic retains
 * without a consumer group, and removing single messages from it. An adapter that retains messages offers one as its
 * `deadLetters` property (in-memory broker, JetStream, Kafka on kafkajs); NATS Core retains nothing and has none.
 *
 * - `scan` yields the letters retained when it was called, oldest first, and ends; letters published later are not
 *   chased, so redriving a letter that fails again cannot loop. Removed letters are not yielded.
 * - `remove` is idempotent per ref and resolves once the removal is durable.
 *
 * @example Count the letters a broker holds on a topic
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import type { DeadLetterStore } from "./dead_letter_store.ts";
 * async function count(store: DeadLetterStore, topic: string): Promise<number> {
 *   let n = 0;
 *   for await (const _ of store.scan(topic)) n++;
 *   return n;
 * }
 * const bus = createMemoryBroker();
 * await bus.publish("orders.events.dlq", { payload: new Uint8Array(1) });
 * await count(bus.deadLetters, "orders.events.dlq"); // 1
 * await bus.close();
 * ```
 */
export interface DeadLetterStore {
  /** The letters `topic` retains now, oldest first; stops early when `signal` aborts. */
  scan(topic: string, signal?: AbortSignal): AsyncIterable<StoredLetter>;
  /** The letter at `ref`, or `undefined` when there is none (never was, or removed). */
  get(topic: string, ref: string, signal?: AbortSignal): Promise<StoredLetter | undefined>;
  /** Removes the letters at `refs`; resolves with how many were there to remove. */
  remove(topic: string, refs: readonly string[]): Promise<number>;
}
