import type { Logger } from "../../../log/mod.ts";
import { backoffDelay, type BackoffOptions, delay } from "../../../async/mod.ts";
import { handleInContext } from "../../context_propagation.ts";
import type { Limiter } from "../../limiter.ts";
import type { ConsumerLag, MessageHandler, Subscription } from "../../message.ts";
import { CommitBatcher, PartitionProgress, type Taken } from "./commits.ts";
import type { ConsumerDriver, DriverSink, FetchedRecord } from "./driver.ts";
import { Lanes } from "./lanes.ts";

/**
 * Options for {@linkcode superviseConsumer}: one subscription's policies, and how to make its consumers.
 *
 * @example The options both Kafka adapters pass
 * ```ts
 * import type { ConsumerEngineOptions } from "./engine.ts";
 * import type { FetchedRecord } from "./driver.ts";
 * type Policies = Omit<ConsumerEngineOptions<FetchedRecord>, "driver" | "listTopics" | "handler">;
 * ```
 */
export interface ConsumerEngineOptions<R extends FetchedRecord> {
  /** The topic or pattern subscribed to, for logs and errors. */
  topic: string;
  /** What `topic` matches when it is a pattern (see `topicPattern`), else `undefined`. */
  pattern: RegExp | undefined;
  group: string;
  handler: MessageHandler;
  /** The subscription's concurrency, shared by the consumers it runs one after the other. */
  limiter: Limiter;
  /** Most records held between fetch and commit; fetching pauses while this many are held. */
  maxBufferedMessages: number;
  /** Most payload bytes held fetched and not yet handled; fetching pauses while this many are held. */
  maxBufferedBytes: number;
  /** Longest a handled record waits for its commit. */
  commitIntervalMs: number;
  /** How often a pattern subscription lists topics for new matching ones. */
  patternRefreshMs: number;
  /** How long a consumer may take to join its group before its start fails. */
  joinTimeoutMs: number;
  /** Backoff between in-place retries of a failed handler. */
  redelivery: BackoffOptions;
  /** Backoff between attempts to replace a failed consumer. @default {{ baseDelayMs: 500, maxDelayMs: 5000 }} */
  restart?: BackoffOptions;
  logger: Logger;
  /** A fresh consumer reporting to `sink`; called once per consumer the subscription runs. */
  driver(sink: DriverSink<R>): ConsumerDriver<R>;
  /** Every topic of the cluster, for a pattern subscription. */
  listTopics(): Promise<string[]>;
  /** Called once the subscription closed. @default {() => {}} */
  onClosed?(): void;
}

const RESTART_BACKOFF: BackoffOptions = { baseDelayMs: 500, maxDelayMs: 5000 };

/** Why a consumer's run ended. */
type Outcome = { kind: "stopped" } | { kind: "failed"; error: unknown } | { kind: "topics"; fresh: string[] };

/**
 * Runs a Kafka subscription with its consumers made by `options.driver`, replacing a consumer when it fails (after a
 * backoff) or when a pattern gains topics, until `close()`. `ready` settles once the first consumer joined its group
 * (at once for a pattern matching nothing yet); only that first failure is `subscribe()`'s to report.
 *
 * @example A subscription on a driver (here one that never fetches)
 * ```ts
 * import { superviseConsumer } from "./engine.ts";
 * import { createLimiter } from "../../limiter.ts";
 * import { createLogger } from "../../../log/mod.ts";
 * const sub = superviseConsumer({
 *   topic: "orders.events", pattern: undefined, group: "payments", handler: () => {},
 *   limiter: createLimiter(4), maxBufferedMessages: 1000, maxBufferedBytes: 1 << 24, commitIntervalMs: 100,
 *   patternRefreshMs: 5000, joinTimeoutMs: 1000, redelivery: {}, logger: createLogger("example"),
 *   driver: () => ({
 *     start: () => Promise.resolve(), pause() {}, resume() {},
 *     commit: () => Promise.resolve(), stop: () => Promise.resolve(),
 *   }),
 *   listTopics: () => Promise.resolve([]),
 * });
 * await sub.ready;
 * await sub.close();
 * ```
 */
export function superviseConsumer<R extends FetchedRecord>(
  options: ConsumerEngineOptions<R>,
): Subscription & { ready: Promise<void> } {
  return new Supervisor(options);
}

class Supervisor<R extends FetchedRecord> implements Subscription {
  readonly ready: Promise<void>;
  readonly #o: ConsumerEngineOptions<R>;
  readonly #ready = Promise.withResolvers<void>();
  readonly #stopping = new AbortController();
  readonly #topics: Set<string>;
  readonly #running: Promise<void>;
  #closed: Promise<void> | undefined;
  /** The consumer running now, whose partitions' lag {@linkcode Supervisor.lag} reports. */
  #session: ConsumerSession<R> | undefined;

  constructor(options: ConsumerEngineOptions<R>) {
    this.#o = options;
    this.ready = this.#ready.promise;
    this.#topics = new Set(options.pattern ? [] : [options.topic]);
    this.#running = this.#supervise();
  }

  lag(): Promise<readonly ConsumerLag[]> {
    return Promise.resolve(this.#session?.lag() ?? []);
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stopping.abort(new Error("the subscription closed"));
      await this.#running;
      this.#o.onClosed?.();
    })();
    return this.#closed;
  }

  async #supervise(): Promise<void> {
    const { topic, group, logger, pattern } = this.#o;
    if (pattern) {
      try {
        for (const t of await this.#unconsumed(pattern)) this.#topics.add(t);
      } catch (err) {
        return this.#ready.reject(err);
      }
    }
    let live = false;
    let failures = 0;
    const stopping = this.#stopping.signal;
    while (!stopping.aborted) {
      if (failures > 0) {
        await delay(backoffDelay(failures, this.#o.restart ?? RESTART_BACKOFF), stopping).catch(() => {});
      }
      if (stopping.aborted) return;
      let session: ConsumerSession<R> | undefined;
      if (this.#topics.size > 0) {
        session = new ConsumerSession(this.#o, stopping);
        try {
          await session.start([...this.#topics]);
        } catch (err) {
          await session.stop();
          if (!live) return this.#ready.reject(err);
          if (!stopping.aborted) logger.error("Kafka consumer did not restart", { topic, group, error: err });
          failures++;
          continue;
        }
      }
      live = true;
      this.#ready.resolve();
      this.#session = session;
      const outcome = await this.#watch(session);
      this.#session = undefined;
      await session?.stop();
      if (stopping.aborted) return;
      if (outcome.kind === "topics") {
        logger.info("new topics match the subscription's pattern; restarting its consumer", {
          pattern: topic,
          group,
          topics: outcome.fresh,
        });
        for (const t of outcome.fresh) this.#topics.add(t);
        failures = 0;
      } else if (outcome.kind === "failed") {
        logger.error("Kafka consumer failed; restarting it", { topic, group, error: outcome.error });
        failures = 1;
      }
    }
  }

  /** Resolves once the session fails, a pattern gains topics, or the subscription closes. */
  async #watch(session: ConsumerSession<R> | undefined): Promise<Outcome> {
    const cycle = new AbortController();
    const until = AbortSignal.any([this.#stopping.signal, cycle.signal]);
    const events: Promise<Outcome>[] = [aborted(until).then(() => ({ kind: "stopped" }))];
    if (session) events.push(session.failure.then((error) => ({ kind: "failed", error })));
    const { pattern } = this.#o;
    if (pattern) {
      events.push(
        this.#newTopics(pattern, until).then((fresh) => ({ kind: "topics", fresh }), () => ({ kind: "stopped" })),
      );
    }
    try {
      return await Promise.race(events);
    } finally {
      cycle.abort();
    }
  }

  /** Matching topics not consumed yet (Kafka's internal `__` topics never match). */
  async #unconsumed(pattern: RegExp): Promise<string[]> {
    return (await this.#o.listTopics()).filter((t) => pattern.test(t) && !t.startsWith("__") && !this.#topics.has(t))
      .sort();
  }

  /** Resolves with the matching topics not consumed yet, once there are some; rejects when `signal` aborts. */
  async #newTopics(pattern: RegExp, signal: AbortSignal): Promise<string[]> {
    for (;;) {
      await delay(this.#o.patternRefreshMs, signal);
      try {
        const fresh = await this.#unconsumed(pattern);
        if (fresh.length > 0) return fresh;
      } catch (err) {
        this.#o.logger.warn("could not list the topics of a pattern subscription; trying again later", {
          pattern: this.#o.topic,
          group: this.#o.group,
          error: err,
        });
      }
    }
  }
}

/**
 * One consumer (a driver) of a subscription, from its start to its stop: takes what the driver fetches, runs it on
 * per-key lanes under the subscription's limiter with in-place retries, keeps each partition's commit position, and
 * pauses the driver while too much is held.
 */
class ConsumerSession<R extends FetchedRecord> implements DriverSink<R> {
  /** Resolves with the error that made the driver useless. */
  readonly failure: Promise<unknown>;
  readonly #o: ConsumerEngineOptions<R>;
  readonly #driver: ConsumerDriver<R>;
  readonly #failure = Promise.withResolvers<unknown>();
  readonly #stopping = new AbortController();
  /** The subscription closing: cuts a join short. */
  readonly #closing: AbortSignal;
  readonly #partitions = new Map<string, PartitionProgress<R>>();
  /** The partition of the last record received: the next one is most likely of the same. */
  #last: PartitionProgress<R> | undefined;
  readonly #lanes: Lanes<Taken<R>>;
  readonly #commits: CommitBatcher<R>;
  /** Records taken and not yet behind their partition's commit position (revoked partitions excluded). */
  #held = 0;
  /** Records taken whose handling has not ended. */
  #unfinished = 0;
  /** Payload bytes of the blocks of unfinished records. */
  #unfinishedBytes = 0;
  #paused = false;
  #idle: PromiseWithResolvers<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(options: ConsumerEngineOptions<R>, closing: AbortSignal) {
    this.#o = options;
    this.#closing = closing;
    this.failure = this.#failure.promise;
    this.#lanes = new Lanes((taken) => this.#handle(taken));
    this.#commits = new CommitBatcher({
      commit: (records) => this.#driver.commit(records),
      intervalMs: options.commitIntervalMs,
      logger: options.logger,
      fields: { topic: options.topic, group: options.group },
    });
    this.#driver = options.driver(this);
  }

  /** Starts the driver on `topics`; rejects when it does not join in time or the subscription closes first. */
  async start(topics: string[]): Promise<void> {
    const { topic, group, joinTimeoutMs } = this.#o;
    const joinTimeout = new AbortController();
    const timer = setTimeout(() => joinTimeout.abort(), joinTimeoutMs);
    try {
      await abortable(this.#driver.start(topics), AbortSignal.any([this.#closing, joinTimeout.signal]));
    } catch (err) {
      if (!joinTimeout.signal.aborted || this.#closing.aborted) throw err;
      throw new Error(`Kafka consumer for "${topic}" did not join group "${group}" in ${joinTimeoutMs} ms`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops taking records, drops queued ones, lets running handlers finish (retries stop), commits what was handled
   * and stops the driver. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping.abort();
      this.#pause();
      if (this.#unfinished > 0) {
        this.#idle = Promise.withResolvers();
        await this.#idle.promise;
      }
      await this.#commits.now();
      await this.#driver.stop().catch((err) =>
        this.#o.logger.warn("could not stop a Kafka consumer cleanly", {
          topic: this.#o.topic,
          group: this.#o.group,
          error: err,
        })
      );
    })();
    return this.#stopped;
  }

  receive(record: R): void {
    if (this.#stopping.signal.aborted) return;
    let p = this.#last;
    if (p?.partition !== record.partition || p.topic !== record.topic || p.revoked.signal.aborted) {
      p = this.#last = this.#partitions.get(`${record.topic}\0${record.partition}`);
    }
    const taken = p?.take(record);
    if (!taken) return;
    this.#held++;
    this.#unfinished++;
    if (record.block.unfinished++ === 0) this.#unfinishedBytes += record.block.size;
    if (this.#full()) this.#pause();
    const key = record.message.key;
    // Lanes outlive partition ownership: a record fetched again after its partition came back queues behind its
    // own still-running copy.
    this.#lanes.push(key === undefined ? undefined : `${record.topic}\0${record.partition}\0${key}`, taken);
  }

  highWatermark(topic: string, partition: number, offset: bigint): void {
    const p = this.#partitions.get(`${topic}\0${partition}`);
    if (p) p.highWatermark = offset;
  }

  /** The lag of every owned partition whose high watermark the driver told. */
  lag(): ConsumerLag[] {
    const out: ConsumerLag[] = [];
    for (const p of this.#partitions.values()) {
      const messages = p.lag;
      if (messages !== undefined) out.push({ topic: p.topic, partition: String(p.partition), messages });
    }
    return out;
  }

  assigned(partitions: Iterable<{ topic: string; partition: number }>): void {
    const now = new Map<string, { topic: string; partition: number }>();
    for (const p of partitions) now.set(`${p.topic}\0${p.partition}`, p);
    for (const [tp, p] of this.#partitions) {
      if (now.has(tp)) continue;
      p.revoked.abort();
      this.#held -= p.held;
      this.#partitions.delete(tp);
      this.#commits.forget(p);
    }
    for (const [tp, { topic, partition }] of now) {
      if (!this.#partitions.has(tp)) {
        this.#partitions.set(tp, new PartitionProgress(topic, partition, this.#stopping.signal));
      }
    }
    this.#resumeIfRoom();
  }

  rebalancing(): void {
    void this.#commits.now();
  }

  // Several reports keep the first error, the one that broke the consumer.
  fail(error: unknown): void {
    this.#failure.resolve(error);
  }

  byteRoom(): number {
    return Math.max(1, this.#o.maxBufferedBytes - this.#unfinishedBytes);
  }

  #full(): boolean {
    const max = this.#o.maxBufferedMessages;
    return this.#held >= max || this.#unfinished >= max ||
      (this.#unfinished > 0 && this.#unfinishedBytes >= this.#o.maxBufferedBytes);
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#driver.pause();
  }

  #resumeIfRoom(): void {
    if (!this.#paused || this.#stopping.signal.aborted || this.#full()) return;
    this.#paused = false;
    this.#driver.resume();
  }

  /** Handles one record, retrying in place until it succeeds or its partition is given up. */
  async #handle(taken: Taken<R>): Promise<void> {
    const { record, partition: p } = taken;
    const { limiter, redelivery, logger } = this.#o;
    try {
      for (let attempt = 1;; attempt++) {
        if (p.cancelled.aborted) return;
        if (!limiter.tryAcquire()) await limiter.acquire();
        let failure: unknown;
        try {
          if (p.cancelled.aborted) return;
          await handleInContext(this.#o.handler, { ...record.message, attempt });
          this.#completed(taken);
          return;
        } catch (err) {
          failure = err;
        } finally {
          limiter.release();
        }
        const wait = backoffDelay(attempt, redelivery);
        if (!p.cancelled.aborted) {
          logger.warn("message handler failed; retrying in place", {
            ...this.#fields(record),
            attempt,
            retryInMs: wait,
            error: failure,
          });
        }
        await delay(wait, p.cancelled).catch(() => {
          logger.warn("stopped retrying a message as its partition was revoked or the subscription closed", {
            ...this.#fields(record),
            attempt,
            error: failure,
            note: "its offset stays uncommitted, so the partition's next owner gets it again",
          });
        });
      }
    } finally {
      this.#finished(record);
    }
  }

  #completed(taken: Taken<R>): void {
    const p = taken.partition;
    // A revoked partition left this session's accounting and is never committed.
    if (p.revoked.signal.aborted) return;
    const moved = p.complete(taken);
    if (moved === 0) return;
    this.#held -= moved;
    this.#commits.moved(p);
  }

  #finished(record: R): void {
    this.#unfinished--;
    if (--record.block.unfinished === 0) this.#unfinishedBytes -= record.block.size;
    if (this.#unfinished === 0) this.#idle?.resolve();
    this.#resumeIfRoom();
  }

  /** Log fields naming a record; built only when there is something to log. */
  #fields(record: R) {
    return {
      topic: record.topic,
      partition: record.partition,
      offset: String(record.offset),
      group: this.#o.group,
      messageId: record.message.id,
    };
  }
}

/** Rejects with the signal's reason once it aborts; `promise` keeps running (its owner cleans it up). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Resolves once `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}
