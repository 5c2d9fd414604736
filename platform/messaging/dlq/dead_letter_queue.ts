import { delay } from "../../async/mod.ts";
import { ContextHeaders, newRequestId, runWithContext } from "../../context/mod.ts";
import type { Publisher } from "../message.ts";
import { DeadLetterHeaders } from "../middleware/mod.ts";
import { type DeadLetterFilter, matchesDeadLetter } from "./dead_letter_filter.ts";
import type { DeadLetterStore, StoredLetter } from "./dead_letter_store.ts";
import { redrivenHeaders } from "./_redriven.ts";

/**
 * One dead letter with everything needed to judge it: what failed, where, how often, and the message itself.
 *
 * @example Say why a letter was parked
 * ```ts
 * import type { DeadLetter } from "./dead_letter_queue.ts";
 * const why = (l: DeadLetter) => `${l.messageId} failed ${l.attempts} times on ${l.sourceTopic}: ${l.error}`;
 * ```
 */
export interface DeadLetter {
  /** The letter's position in the dead-letter topic (see `StoredLetter.ref`): what `get`, `redrive` and `purge` take. */
  id: string;
  /** The original message's id (`dlq-message-id`), which a redrive restores. */
  messageId: string;
  /** The original message's key. */
  key?: string;
  /** The topic it failed on (`dlq-source-topic`), where a redrive sends it. */
  sourceTopic?: string;
  /** The last error (`dlq-error`). */
  error?: string;
  /** The delivery that failed last (`dlq-attempts`). */
  attempts?: number;
  /** When it was dead-lettered, ISO 8601 (`dlq-failed-at`). */
  failedAt?: string;
  /** How often it was redriven before (`dlq-redrives`), 0 if never. */
  redrives: number;
  /** All headers, the `dlq-*` ones included. */
  headers: Record<string, string>;
  payload: Uint8Array;
  /** When the dead letter was published, epoch milliseconds. */
  timestamp: number;
}

/**
 * Options for {@linkcode DeadLetterQueue.list}.
 *
 * @example The first 20 letters that failed on a timeout
 * ```ts
 * import type { ListLettersOptions } from "./dead_letter_queue.ts";
 * const options: ListLettersOptions = { limit: 20, filter: { error: "TimeoutError" } };
 * ```
 */
export interface ListLettersOptions {
  /** Most letters returned. @default {100} */
  limit?: number;
  /** Which letters. @default {all} */
  filter?: DeadLetterFilter;
  /** Stops reading; rejects with its reason. */
  signal?: AbortSignal;
}

/**
 * How far a redrive got, reported after each letter moved.
 *
 * @example Print a progress line
 * ```ts
 * import type { RedriveProgress } from "./dead_letter_queue.ts";
 * const print = (p: RedriveProgress) => console.log(`${p.redriven}/${p.total}`);
 * ```
 */
export interface RedriveProgress {
  /** Letters moved so far. */
  redriven: number;
  /** Letters selected for the redrive. */
  total: number;
  /** The letter just moved. */
  id: string;
}

/**
 * Options for {@linkcode DeadLetterQueue.redrive}. With neither `ids` nor `filter`, every letter is redriven.
 *
 * @example Redrive the timeouts of the last hour, 5 per second, with a progress callback
 * ```ts
 * import type { RedriveLettersOptions } from "./dead_letter_queue.ts";
 * const options: RedriveLettersOptions = {
 *   filter: { error: "TimeoutError", failedAfter: new Date(Date.now() - 3_600_000).toISOString() },
 *   ratePerSec: 5,
 *   onProgress: (p) => console.log(`${p.redriven}/${p.total}`),
 * };
 * ```
 */
export interface RedriveLettersOptions {
  /** Only these letters (`DeadLetter.id`); unknown ids are skipped. @default {all that match `filter`} */
  ids?: readonly string[];
  /** Only letters matching it (with `ids`: those of them that match). @default {all} */
  filter?: DeadLetterFilter;
  /** Most letters published per second, evenly paced. @default {10} */
  ratePerSec?: number;
  /** Stops the redrive between two letters; the letters not yet moved stay. */
  signal?: AbortSignal;
  /** Called after each letter moved. */
  onProgress?: (progress: RedriveProgress) => void;
}

/**
 * Options for {@linkcode DeadLetterQueue.purge}: one of `ids`, `filter` or `all: true` is required, so that a
 * forgotten argument cannot delete everything.
 *
 * @example Purge the letters of one source topic
 * ```ts
 * import type { PurgeLettersOptions } from "./dead_letter_queue.ts";
 * const options: PurgeLettersOptions = { filter: { source: "orders.events" } };
 * ```
 */
export interface PurgeLettersOptions {
  /** Only these letters; unknown ids are skipped. */
  ids?: readonly string[];
  /** Only letters matching it. */
  filter?: DeadLetterFilter;
  /** Every letter, when neither `ids` nor `filter` is given. @default {false} */
  all?: boolean;
}

/**
 * Time for a redrive's pacing; injectable so that tests need no real sleeps.
 *
 * @example A fake clock whose sleeps only move its own time
 * ```ts
 * import type { DeadLetterClock } from "./dead_letter_queue.ts";
 * let now = 0;
 * const clock: DeadLetterClock = { now: () => now, sleep: (ms) => Promise.resolve(void (now += ms)) };
 * ```
 */
export interface DeadLetterClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Resolves after `ms`, rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Options for {@linkcode openDeadLetterQueue}.
 *
 * @example A queue whose redrives are paced by a fake clock
 * ```ts
 * import type { DeadLetterQueueOptions } from "./dead_letter_queue.ts";
 * let now = 0;
 * const options: DeadLetterQueueOptions = { clock: { now: () => now, sleep: (ms) => Promise.resolve(void (now += ms)) } };
 * ```
 */
export interface DeadLetterQueueOptions {
  /** Time source for redrive pacing. @default {performance.now and setTimeout} */
  clock?: DeadLetterClock;
}

/**
 * The operations on one dead-letter topic (what the `deadLetter` middleware fills): list, inspect, redrive, purge.
 *
 * The contract, checked by one conformance suite on the in-memory broker, JetStream and Kafka:
 * - `list` and `get` move nothing. Letters come oldest first (Kafka: by partition, then offset).
 * - `redrive` picks the letters first (by `ids` and/or `filter`), then for each: publishes it to its
 *   `dlq-source-topic` with its key, payload and original id, the `dlq-*` headers and the stale deadline removed and
 *   `dlq-redrives` incremented, and only once the publish was accepted removes it from the dead-letter topic. A crash
 *   in between leaves the letter in place and the message published: it may be redriven twice (consumers deduplicate
 *   on the id), never lost. A letter without `dlq-source-topic` is skipped and stays. It resolves with the number moved,
 *   also when `signal` stopped it early.
 * - `purge` removes the letters picked the same way and resolves with their number; it throws a `TypeError` when
 *   given neither `ids`, `filter` nor `all: true`.
 * - Letters dead-lettered while an operation runs are not part of it.
 *
 * @example Inspect, redrive and purge on the in-memory broker
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { deadLetter } from "../middleware/mod.ts";
 * import { openDeadLetterQueue } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * await deadLetter("orders.events", { publisher: bus, maxAttempts: 1 })(() => {
 *   throw new Error("no such order");
 * })({ id: "m-1", key: "o-1", headers: {}, payload: new Uint8Array(2), attempt: 1, timestamp: 0 });
 * const dlq = openDeadLetterQueue(bus, "orders.events.dlq");
 * const [letter] = await dlq.list({ filter: { error: "no such order" } });
 * console.log(letter.messageId, letter.sourceTopic, letter.attempts); // m-1 orders.events 1
 * await dlq.redrive({ ids: [letter.id] }); // 1: back on orders.events as m-1
 * await dlq.purge({ all: true }); // 0: nothing left
 * await bus.close();
 * ```
 */
export interface DeadLetterQueue {
  /** The dead-letter topic. */
  readonly topic: string;
  list(options?: ListLettersOptions): Promise<DeadLetter[]>;
  /** The letter with this id, or `undefined`. */
  get(id: string, signal?: AbortSignal): Promise<DeadLetter | undefined>;
  redrive(options?: RedriveLettersOptions): Promise<number>;
  purge(options: PurgeLettersOptions): Promise<number>;
}

/**
 * The retaining side of a bus: its `deadLetters` store, which the in-memory broker, JetStream and Kafka (kafkajs)
 * adapters have.
 *
 * @example Tell whether a bus can hold dead letters
 * ```ts
 * import type { DeadLetterBus } from "./dead_letter_queue.ts";
 * const retains = (bus: DeadLetterBus) => bus.deadLetters !== undefined;
 * ```
 */
export interface DeadLetterBus extends Publisher {
  readonly deadLetters?: DeadLetterStore;
}

/**
 * Opens the {@linkcode DeadLetterQueue} of `topic` (usually `<source>.dlq`) on `bus`, which redrives publish to.
 * Throws a `TypeError` when the bus retains nothing (NATS Core).
 *
 * @example The dead letters of the inventory commands
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { openDeadLetterQueue } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * const dlq = openDeadLetterQueue(bus, "inventory.commands.dlq");
 * console.log((await dlq.list({ limit: 10 })).length); // 0
 * await bus.close();
 * ```
 */
export function openDeadLetterQueue(
  bus: DeadLetterBus,
  topic: string,
  options: DeadLetterQueueOptions = {},
): DeadLetterQueue {
  const store = bus.deadLetters;
  if (!store) {
    throw new TypeError(
      `Cannot open dead-letter queue "${topic}" as the bus retains no messages: current value of bus.deadLetters is undefined`,
    );
  }
  if (typeof topic !== "string" || topic === "") {
    throw new TypeError(
      `Cannot open a dead-letter queue as the topic is not a non-empty string: current value is ${topic}`,
    );
  }
  return new StoreQueue(bus, store, topic, options.clock ?? systemClock);
}

const NEVER = new AbortController().signal;
const systemClock: DeadLetterClock = { now: () => performance.now(), sleep: delay };

class StoreQueue implements DeadLetterQueue {
  readonly topic: string;
  readonly #bus: Publisher;
  readonly #store: DeadLetterStore;
  readonly #clock: DeadLetterClock;

  constructor(bus: Publisher, store: DeadLetterStore, topic: string, clock: DeadLetterClock) {
    this.#bus = bus;
    this.#store = store;
    this.topic = topic;
    this.#clock = clock;
  }

  async list(options: ListLettersOptions = {}): Promise<DeadLetter[]> {
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot list dead letters as limit is not a positive integer: current value is ${limit}`);
    }
    const out: DeadLetter[] = [];
    for await (const stored of this.#store.scan(this.topic, options.signal)) {
      const letter = toLetter(stored);
      if (!matchesDeadLetter(options.filter, letter)) continue;
      out.push(letter);
      if (out.length >= limit) break;
    }
    options.signal?.throwIfAborted();
    return out;
  }

  async get(id: string, signal?: AbortSignal): Promise<DeadLetter | undefined> {
    const stored = await this.#store.get(this.topic, id, signal);
    return stored && toLetter(stored);
  }

  async redrive(options: RedriveLettersOptions = {}): Promise<number> {
    const ratePerSec = options.ratePerSec ?? 10;
    if (!(ratePerSec > 0) || ratePerSec === Infinity) {
      throw new RangeError(`Cannot redrive as ratePerSec is not a positive number: current value is ${ratePerSec}`);
    }
    const { signal } = options;
    let picked: DeadLetter[];
    try {
      picked = (await this.#pick(options.ids, options.filter, signal)).filter((l) => l.sourceTopic);
    } catch (err) {
      if (signal?.aborted) return 0;
      throw err;
    }
    const intervalMs = 1000 / ratePerSec;
    let nextAt = -Infinity;
    let redriven = 0;
    for (const letter of picked) {
      if (signal?.aborted) break;
      const now = this.#clock.now();
      nextAt = Math.max(nextAt, now);
      if (nextAt > now) {
        try {
          await this.#clock.sleep(nextAt - now, signal);
        } catch (err) {
          if (signal?.aborted) break;
          throw err;
        }
      }
      nextAt += intervalMs;
      // A context of its own: the caller's may carry a deadline or a request id that has nothing to do with the letter.
      await runWithContext(
        { requestId: letter.headers[ContextHeaders.requestId] ?? newRequestId(), signal: signal ?? NEVER },
        () =>
          this.#bus.publish(letter.sourceTopic!, {
            id: letter.messageId,
            key: letter.key,
            headers: redrivenHeaders(letter.headers),
            payload: letter.payload,
          }),
      );
      await this.#store.remove(this.topic, [letter.id]);
      redriven++;
      options.onProgress?.({ redriven, total: picked.length, id: letter.id });
    }
    return redriven;
  }

  async purge(options: PurgeLettersOptions): Promise<number> {
    if (options?.ids === undefined && options?.filter === undefined && options?.all !== true) {
      throw new TypeError(
        "Cannot purge dead letters as neither ids, filter nor all: true was given: a purge of everything must say so",
      );
    }
    const picked = await this.#pick(options.ids, options.filter);
    if (picked.length === 0) return 0;
    return await this.#store.remove(this.topic, picked.map((l) => l.id));
  }

  async #pick(
    ids: readonly string[] | undefined,
    filter: DeadLetterFilter | undefined,
    signal?: AbortSignal,
  ): Promise<DeadLetter[]> {
    if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== "string"))) {
      throw new TypeError(`Cannot pick dead letters as ids is not an array of strings: current value is ${ids}`);
    }
    const picked: DeadLetter[] = [];
    const wanted = ids && new Set(ids);
    if (wanted?.size === 1) {
      // One letter: a lookup by position (a sequence on JetStream) instead of a read of the whole topic.
      const letter = await this.get([...wanted][0], signal);
      if (letter && matchesDeadLetter(filter, letter)) picked.push(letter);
    } else if (wanted?.size !== 0) {
      for await (const stored of this.#store.scan(this.topic, signal)) {
        if (wanted && !wanted.has(stored.ref)) continue;
        const letter = toLetter(stored);
        if (matchesDeadLetter(filter, letter)) picked.push(letter);
      }
    }
    signal?.throwIfAborted();
    return picked;
  }
}

function toLetter({ ref, message }: StoredLetter): DeadLetter {
  const h = message.headers;
  const attempts = Number(h[DeadLetterHeaders.attempts]);
  return {
    id: ref,
    messageId: h[DeadLetterHeaders.messageId] ?? message.id,
    key: message.key,
    sourceTopic: h[DeadLetterHeaders.sourceTopic],
    error: h[DeadLetterHeaders.error],
    attempts: Number.isInteger(attempts) ? attempts : undefined,
    failedAt: h[DeadLetterHeaders.failedAt],
    redrives: Number(h[DeadLetterHeaders.redrives]) || 0,
    headers: h,
    payload: message.payload,
    timestamp: message.timestamp,
  };
}
