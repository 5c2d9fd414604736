import { delay } from "../../async/mod.ts";
import { ContextHeaders, newRequestId, runWithContext } from "../../context/mod.ts";
import type { Message, Publisher, Subscriber } from "../message.ts";
import { redrivenHeaders } from "../dlq/_redriven.ts";

/**
 * Headers the `deadLetter()` middleware adds to a dead letter, and {@linkcode redrive} counts redrives in.
 *
 * @example Say why a dead letter was parked
 * ```ts
 * import type { Message } from "../message.ts";
 * import { DeadLetterHeaders } from "./dead_letter_queue.ts";
 * const why = (letter: Message) =>
 *   `${letter.headers[DeadLetterHeaders.sourceTopic]} after ${letter.headers[DeadLetterHeaders.attempts]} ` +
 *   `deliveries: ${letter.headers[DeadLetterHeaders.error]}`;
 * why({
 *   id: "m-1",
 *   headers: { "dlq-source-topic": "orders.events", "dlq-attempts": "5", "dlq-error": "Error: no such order" },
 *   payload: new Uint8Array(),
 *   attempt: 1,
 *   timestamp: 0,
 * }); // "orders.events after 5 deliveries: Error: no such order"
 * ```
 */
export const DeadLetterHeaders = Object.freeze({
  /** The last error, `Name: message`, on one line and truncated. */
  error: "dlq-error",
  /** The delivery (`msg.attempt`) that failed last. */
  attempts: "dlq-attempts",
  /** The topic the message failed on, where {@linkcode redrive} sends it back by default. */
  sourceTopic: "dlq-source-topic",
  /** When it was dead-lettered, ISO 8601. */
  failedAt: "dlq-failed-at",
  /** The original message's id, which a redriven message gets back. */
  messageId: "dlq-message-id",
  /** How often the message was redriven; kept across dead-lettering. */
  redrives: "dlq-redrives",
});

/**
 * Time for {@linkcode redrive}'s pacing; injectable so tests need no real sleeps.
 *
 * @example A fake clock whose sleeps only move its own time
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { redrive, type RedriveClock } from "./dead_letter_queue.ts";
 * let now = 0;
 * const clock: RedriveClock = { now: () => now, sleep: (ms) => Promise.resolve(void (now += ms)) };
 * const bus = createMemoryBroker();
 * await redrive({ from: "orders.events.dlq", to: "orders.events", subscriber: bus, publisher: bus, idleMs: 10, clock });
 * await bus.close();
 * ```
 */
export interface RedriveClock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/**
 * Options for {@linkcode redrive}.
 *
 * @example Send at most 100 dead letters to a retry topic, 5 per second
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { redrive, type RedriveOptions } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * const options: RedriveOptions = {
 *   from: "orders.events.dlq",
 *   to: "orders.events.retry",
 *   subscriber: bus,
 *   publisher: bus,
 *   ratePerSec: 5,
 *   limit: 100,
 *   idleMs: 10,
 * };
 * await redrive(options);
 * await bus.close();
 * ```
 */
export interface RedriveOptions {
  /** The dead-letter topic to read. */
  from: string;
  /** Where every message goes. @default {each message's `dlq-source-topic` header} */
  to?: string;
  /** Reads `from`. */
  subscriber: Subscriber;
  /** Publishes the redriven messages. */
  publisher: Publisher;
  /** Consumer group reading `from`; its position is where the next redrive continues. @default {`${from}.redrive`} */
  group?: string;
  /** Most messages published per second. @default {10} */
  ratePerSec?: number;
  /** Most messages moved. @default {Infinity} */
  limit?: number;
  /** Stops once no message arrived for this long (real time), as the topic is then taken to be drained. @default {2000} */
  idleMs?: number;
  /** Stops the redrive; messages not yet published stay on `from`. */
  signal?: AbortSignal;
  /** Time source for the pacing. @default {the system clock and setTimeout} */
  clock?: RedriveClock;
}

/**
 * What {@linkcode redrive} did.
 *
 * @example Tell a drained topic from a redrive cut short
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { redrive, type RedriveResult } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * const result: RedriveResult = await redrive({
 *   from: "orders.events.dlq",
 *   to: "orders.events",
 *   subscriber: bus,
 *   publisher: bus,
 *   idleMs: 10,
 * });
 * if (result.stoppedBy === "idle") console.log(`drained: ${result.moved} moved`);
 * await bus.close();
 * ```
 */
export interface RedriveResult {
  /** Messages published back and acknowledged on the dead-letter topic. */
  moved: number;
  /** Why it stopped. */
  stoppedBy: "limit" | "idle" | "signal";
}

/**
 * Moves dead letters back to their source topic (or `to`), one at a time, at most `ratePerSec` per second (evenly
 * paced), through consumer group `group` on `from`. Each message is republished with its key, payload and original id
 * (`dlq-message-id`); its `dlq-*` headers and `x-deadline-ms` (the original deadline has long passed) are removed,
 * and `dlq-redrives` is incremented. It is acknowledged on `from` only after the publish
 * succeeded (at-least-once: a crash in between publishes it twice, and consumers deduplicate on the id).
 *
 * Stops after `limit` messages, after `idleMs` without a message, or when `signal` aborts, and resolves with the
 * count. Rejects (after closing its subscription) when a message has no `dlq-source-topic` header and no `to` was
 * given, or a publish fails; that message stays on `from`.
 *
 * What "drained" means depends on the adapter: on Kafka and the in-memory broker the group resumes where the last
 * redrive stopped, so each dead letter is moved once; on JetStream the group is a durable consumer doing the same; NATS
 * Core keeps nothing, so there is nothing to redrive.
 *
 * @example Send up to 100 dead letters back, 5 per second
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { redrive } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * const { moved } = await redrive({
 *   from: "orders.events.dlq",
 *   subscriber: bus,
 *   publisher: bus,
 *   ratePerSec: 5,
 *   limit: 100,
 *   idleMs: 10,
 * });
 * await bus.close();
 * ```
 */
export async function redrive(options: RedriveOptions): Promise<RedriveResult> {
  const { from, to, subscriber, publisher, signal } = options;
  const ratePerSec = options.ratePerSec ?? 10;
  if (!(ratePerSec > 0) || ratePerSec === Infinity) {
    throw new RangeError(`Cannot redrive as ratePerSec is not a positive number: current value is ${ratePerSec}`);
  }
  const limit = options.limit ?? Infinity;
  if (!(limit >= 1) || (limit !== Infinity && !Number.isInteger(limit))) {
    throw new RangeError(`Cannot redrive as limit is not a positive integer: current value is ${limit}`);
  }
  const idleMs = options.idleMs ?? 2000;
  const clock = options.clock ?? systemClock;
  const intervalMs = 1000 / ratePerSec;
  const stop = new AbortController();
  const done = Promise.withResolvers<RedriveResult["stoppedBy"]>();
  const finish = (reason: RedriveResult["stoppedBy"] | Error) => {
    if (stop.signal.aborted) return;
    stop.abort(reason);
    if (reason instanceof Error) done.reject(reason);
    else done.resolve(reason);
  };
  let moved = 0;
  let nextAt = -Infinity;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const resetIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => finish("idle"), idleMs);
  };
  const onAbort = () => finish("signal");
  if (signal?.aborted) return { moved, stoppedBy: "signal" };
  signal?.addEventListener("abort", onAbort, { once: true });

  const handler = async (msg: Message) => {
    // Messages delivered after the redrive stopped stay on `from`.
    if (stop.signal.aborted) throw new Error(`redrive from "${from}" stopped`);
    clearTimeout(idle);
    const destination = to ?? msg.headers[DeadLetterHeaders.sourceTopic];
    if (!destination) {
      const err = new TypeError(
        `Cannot redrive message ${msg.id} from "${from}" as it has no ${DeadLetterHeaders.sourceTopic} header and no "to" topic was given`,
      );
      finish(err);
      throw err;
    }
    const now = clock.now();
    nextAt = Math.max(nextAt, now);
    const wait = nextAt - now;
    nextAt += intervalMs;
    if (wait > 0) await clock.sleep(wait, stop.signal);
    const headers = redrivenHeaders(msg.headers);
    try {
      // A context of its own: the delivery's context may carry the original, expired deadline into the headers.
      await runWithContext(
        { requestId: msg.headers[ContextHeaders.requestId] ?? newRequestId(), signal: stop.signal },
        () =>
          publisher.publish(destination, {
            id: msg.headers[DeadLetterHeaders.messageId] ?? msg.id,
            key: msg.key,
            headers,
            payload: msg.payload,
          }),
      );
    } catch (err) {
      finish(new Error(`Cannot redrive message ${msg.id} from "${from}" to "${destination}"`, { cause: err }));
      throw err;
    }
    moved++;
    if (moved >= limit) finish("limit");
    else resetIdle();
  };

  try {
    const sub = await subscriber.subscribe(from, handler, { group: options.group ?? `${from}.redrive` });
    try {
      if (!stop.signal.aborted) resetIdle();
      const stoppedBy = await done.promise;
      return { moved, stoppedBy };
    } finally {
      clearTimeout(idle);
      await sub.close();
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

const systemClock: RedriveClock = { now: () => Date.now(), sleep: delay };

/**
 * A dead letter as {@linkcode listDeadLetters} reports it.
 *
 * @example Summarize what the deadLetter middleware parked
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { deadLetter } from "./dead_letter.ts";
 * import { type DeadLetterSummary, listDeadLetters } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * await deadLetter("orders.events", { publisher: bus, maxAttempts: 1 })(() => {
 *   throw new Error("no such order");
 * })({ id: "m-1", key: "o-1", headers: {}, payload: new Uint8Array(2), attempt: 1, timestamp: 0 });
 * const [letter]: DeadLetterSummary[] = await listDeadLetters(bus, "orders.events.dlq", { idleMs: 10 });
 * console.log(letter.id, letter.sourceTopic, letter.attempts, letter.error); // m-1 orders.events 1 Error: no such order
 * await bus.close();
 * ```
 */
export interface DeadLetterSummary {
  /** The original message's id (`dlq-message-id`, else the dead letter's own). */
  id: string;
  /** The original message's key. */
  key?: string;
  /** The topic it failed on (`dlq-source-topic`). */
  sourceTopic?: string;
  /** The last error (`dlq-error`). */
  error?: string;
  /** The delivery that failed last (`dlq-attempts`). */
  attempts?: number;
  /** When it was dead-lettered, ISO 8601 (`dlq-failed-at`). */
  failedAt?: string;
  /** How often it was redriven before (`dlq-redrives`), 0 if never. */
  redrives: number;
  /** Payload size in bytes. */
  bytes: number;
  /** When the dead letter was published, epoch milliseconds. */
  timestamp: number;
}

/**
 * Options for {@linkcode listDeadLetters}.
 *
 * @example List at most 20, stopping early on the caller's signal
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { listDeadLetters, type ListDeadLettersOptions } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * const stop = new AbortController();
 * const options: ListDeadLettersOptions = { limit: 20, idleMs: 10, signal: stop.signal };
 * const letters = await listDeadLetters(bus, "orders.events.dlq", options);
 * console.log(letters.length); // 0: nothing was dead-lettered
 * await bus.close();
 * ```
 */
export interface ListDeadLettersOptions {
  /** Most summaries returned. @default {100} */
  limit?: number;
  /** Stops once no message arrived for this long, as the topic is then taken to be read to its end. @default {2000} */
  idleMs?: number;
  /** Stops the listing early, returning what was read. */
  signal?: AbortSignal;
}

/**
 * Summarizes up to `limit` dead letters on `topic` without moving them, by reading through a temporary consumer group
 * of its own (`dlq-list.<uuid>`), which does not disturb other groups' positions. What it sees depends on the adapter:
 * - Kafka and the in-memory broker: a new group starts at the earliest retained message, so this lists from the
 *   beginning of the topic. Kafka keeps the group's (committed, now unused) offsets until the broker expires them
 *   (`offsets.retention.minutes`).
 * - JetStream: a new durable consumer delivering from the start of the stream; it is left on the server.
 * - NATS Core: nothing is retained, so only dead letters published while listing show up.
 *
 * @example List the first ten dead letters of a topic
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { listDeadLetters } from "./dead_letter_queue.ts";
 * const bus = createMemoryBroker();
 * const letters = await listDeadLetters(bus, "orders.events.dlq", { limit: 10, idleMs: 10 });
 * for (const l of letters) console.log(l.id, l.attempts, l.error);
 * await bus.close();
 * ```
 */
export async function listDeadLetters(
  subscriber: Subscriber,
  topic: string,
  options: ListDeadLettersOptions = {},
): Promise<DeadLetterSummary[]> {
  const limit = options.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`Cannot list dead letters as limit is not a positive integer: current value is ${limit}`);
  }
  const idleMs = options.idleMs ?? 2000;
  const { signal } = options;
  const out: DeadLetterSummary[] = [];
  if (signal?.aborted) return out;
  const done = Promise.withResolvers<void>();
  let idle: ReturnType<typeof setTimeout> | undefined;
  const resetIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(done.resolve, idleMs);
  };
  const onAbort = () => done.resolve();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const sub = await subscriber.subscribe(topic, (msg) => {
      if (out.length >= limit) return;
      out.push(summarize(msg));
      if (out.length >= limit) done.resolve();
      else resetIdle();
    }, { group: `dlq-list.${crypto.randomUUID()}` });
    try {
      resetIdle();
      await done.promise;
    } finally {
      clearTimeout(idle);
      await sub.close();
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  return out;
}

function summarize(msg: Message): DeadLetterSummary {
  const h = msg.headers;
  const attempts = Number(h[DeadLetterHeaders.attempts]);
  return {
    id: h[DeadLetterHeaders.messageId] ?? msg.id,
    key: msg.key,
    sourceTopic: h[DeadLetterHeaders.sourceTopic],
    error: h[DeadLetterHeaders.error],
    attempts: Number.isInteger(attempts) ? attempts : undefined,
    failedAt: h[DeadLetterHeaders.failedAt],
    redrives: Number(h[DeadLetterHeaders.redrives]) || 0,
    bytes: msg.payload.byteLength,
    timestamp: msg.timestamp,
  };
}
