import { backoffDelay, type BackoffOptions } from "../async/mod.ts";
import type { Database } from "../db/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { OutgoingMessage } from "../messaging/mod.ts";
import { OUTBOX_CHANNEL } from "./enqueue.ts";
import { ContextHeaders } from "../context/mod.ts";
import { currentService, inSpan, SpanKind, tracingEnabled } from "../telemetry/mod.ts";

/**
 * A row read back for publishing: the {@linkcode OutgoingMessage} that was enqueued, byte for byte, and its topic.
 *
 * @example Publish a pending message as it is
 * ```ts
 * import type { PendingMessage } from "./relay.ts";
 * import type { Publisher } from "../messaging/mod.ts";
 * const publish = (bus: Publisher) => (m: PendingMessage) => bus.publish(m.topic, m);
 * ```
 */
export interface PendingMessage extends OutgoingMessage {
  id: string;
  topic: string;
  headers: Record<string, string>;
}

/**
 * Options for {@linkcode startRelay}. `baseDelayMs` and `maxDelayMs` (the platform's one backoff shape, from
 * `platform/async`) pace the retries of a failing topic, and of the relay while the database does not answer; each
 * delay is jittered between half and all of it. @default {{ baseDelayMs: 100, maxDelayMs: 5000 }}
 *
 * @example A relay that retries a failing topic after 50 ms, doubling up to 1 s
 * ```ts
 * import type { RelayOptions } from "./relay.ts";
 * import { createLogger } from "../log/mod.ts";
 * const options: RelayOptions = {
 *   publish: async (m) => console.log(m.topic, m.id),
 *   logger: createLogger("relay"),
 *   baseDelayMs: 50,
 *   maxDelayMs: 1_000,
 * };
 * ```
 */
export interface RelayOptions extends BackoffOptions {
  /**
   * Publishes one message. A rejection leaves the row, and every later row of the same topic and key, for a later
   * attempt, and backs the topic off; other topics keep flowing. Calls for different keys may run concurrently;
   * calls for one topic and key never do.
   */
  publish: (msg: PendingMessage) => Promise<void>;
  logger: Logger;
  /** Rows selected (and locked) per transaction. @default {100} */
  batchSize?: number;
  /**
   * Interval of the safety sweep. Sweeps also run on start, on every NOTIFY and every time the LISTEN is
   * (re)established, so this only bounds how long a row waits when a notification is lost some other way.
   * @default {5000}
   */
  pollMs?: number;
  /** How long published rows are kept. @default {3600000} */
  retainMs?: number;
  /** Keys (topic and key) published at the same time within a batch. @default {16} */
  concurrency?: number;
  /**
   * How long a batch waits for a slow `publish` before it commits without it. The slow publish keeps running; its
   * row is marked once it resolves and its topic is left out of batches until then, so one hanging destination
   * holds neither the transaction nor the other topics.
   * @default {2000}
   */
  stallMs?: number;
}

/**
 * The last error the relay saw.
 *
 * @example Log where the relay last failed
 * ```ts
 * import type { RelayError } from "./relay.ts";
 * const describe = (e: RelayError) => `${e.topic ?? "database"}: ${e.message} at ${e.at.toISOString()}`;
 * ```
 */
export interface RelayError {
  message: string;
  /** The topic whose publish failed; absent for a database error. */
  topic?: string;
  at: Date;
}

/**
 * What a relay reports for readiness checks and metrics.
 *
 * @example Report the relay on a health endpoint
 * ```ts ignore
 * const { backlog, failingTopics, databaseReachable } = await relay.status({ signal: AbortSignal.timeout(500) });
 * return json({ backlog, failingTopics, databaseReachable }, databaseReachable ? 200 : 503);
 * ```
 */
export interface RelayStatus {
  /** Unpublished rows; absent when not asked for, when the database is unreachable or did not answer in time. */
  backlog?: number;
  /** Age in seconds of the oldest unpublished row (0 when none); asked for and absent as `backlog` is. */
  oldestAgeSeconds?: number;
  /** Topics whose last publish failed (backed off or being retried) or is stalled, sorted. */
  failingTopics: string[];
  /** False from a failed sweep until the next one succeeds. */
  databaseReachable: boolean;
  lastError?: RelayError;
}

/**
 * Options for {@linkcode Relay.status}.
 *
 * @example A cheap status for a metrics scrape, without the count query
 * ```ts
 * import type { RelayStatusOptions } from "./relay.ts";
 * const cheap: RelayStatusOptions = { backlog: false };
 * ```
 */
export interface RelayStatusOptions {
  /** Count the unpublished rows (one `count(*)` query). @default {true} */
  backlog?: boolean;
  /** Gives up waiting for the count (the status then has no `backlog`); the query itself still runs to its end. */
  signal?: AbortSignal;
}

/**
 * A running relay.
 *
 * @example Stop the relay when the process ends
 * ```ts ignore
 * const relay: Relay = await startRelay(db, { publish, logger });
 * Deno.addSignalListener("SIGTERM", () => relay.stop());
 * ```
 */
export interface Relay {
  /** Stops after the batch in flight and any stalled publish; idempotent. */
  stop(): Promise<void>;
  /** The relay's health; cheap without the backlog, one count query with it. */
  status(options?: RelayStatusOptions): Promise<RelayStatus>;
}

/**
 * Publishes outbox rows, keeping order per topic and key: rows of other topics, or other keys, do not wait for each
 * other. A topic whose publish fails is backed off (exponential, jittered) and left out of the batches until its
 * backoff expires, while the others flow. The relay sweeps on start, on every NOTIFY, every time the LISTEN is
 * (re)established and on a safety timer, so no row waits for a lost notification; while the database is down it
 * backs off, logs one warning for the outage and resumes by itself.
 *
 * A row is marked published only after `publish` resolved (at-least-once: a crash between the two publishes it
 * again, and consumers deduplicate on the id). Several relays may run on one database: a transaction-scoped advisory
 * lock lets one publish at a time, so per-key order holds across them (a stalled publish aside, see `stallMs`).
 *
 * @example Start, read its status, stop
 * ```ts ignore
 * const relay = await startRelay(db, { publish: (m) => publisher.publish(m.topic, m), logger });
 * const { backlog, failingTopics } = await relay.status();
 * await relay.stop();
 * ```
 */
export function startRelay(db: Database, options: RelayOptions): Promise<Relay> {
  return Promise.resolve(new OutboxRelay(db, options));
}

type OutboxRow = {
  seq: string;
  id: string;
  topic: string;
  key: string | null;
  headers: Record<string, string>;
  payload: string;
};

/** The oldest unpublished rows. */
const SELECT_ALL = `select seq, id, topic, key, headers, payload from outbox where published_at is null
  order by seq limit $1 for update skip locked`;

/**
 * The oldest unpublished rows of the topics not in `$2`. A plain `topic <> all($2)` filter on the seq index reads
 * through a dead topic's whole backlog for every batch (36 ms per batch behind 200k rows), so this walks the topics
 * that have unpublished rows (a loose index scan of outbox_unpublished_topic) and takes each one's oldest rows.
 */
const SELECT_EXCLUDING = `with recursive topics (topic) as (
    select min(topic) from outbox where published_at is null
    union all
    select (select min(o.topic) from outbox o where o.published_at is null and o.topic > t.topic)
    from topics t where t.topic is not null
  )
  select r.seq, r.id, r.topic, r.key, r.headers, r.payload
  from topics t cross join lateral (
    select seq, id, topic, key, headers, payload from outbox
    where published_at is null and topic = t.topic
    order by seq limit $1 for update skip locked
  ) r
  where t.topic is not null and t.topic <> all($2::text[])
  order by r.seq limit $1`;

const PURGE_EVERY_MS = 60_000;
const encoder = new TextEncoder();

class OutboxRelay implements Relay {
  readonly #db: Database;
  readonly #publish: (msg: PendingMessage) => Promise<void>;
  readonly #logger: Logger;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #retainMs: number;
  readonly #concurrency: number;
  readonly #stallMs: number;
  readonly #backoff: BackoffOptions;
  readonly #topics: TopicHealth;
  readonly #stopping = new AbortController();
  /** Publishes that outlived their batch (see `stallMs`), each settling into a late mark. */
  readonly #late = new Set<Promise<void>>();
  readonly #loop: Promise<void>;
  #pending = true;
  #wake?: () => void;
  #unlisten?: () => Promise<void>;
  #sweepStartedAt = 0;
  #dbFailures = 0;
  #dbDownSince = 0;
  #lastError?: RelayError;
  #lastPurge = 0;
  #stopped?: Promise<void>;
  readonly #service = currentService();

  constructor(db: Database, options: RelayOptions) {
    this.#db = db;
    this.#publish = options.publish;
    this.#logger = options.logger;
    this.#batchSize = positiveInteger("batchSize", options.batchSize ?? 100);
    this.#concurrency = positiveInteger("concurrency", options.concurrency ?? 16);
    this.#pollMs = positive("pollMs", options.pollMs ?? 5_000);
    this.#retainMs = positive("retainMs", options.retainMs ?? 3_600_000);
    this.#stallMs = positive("stallMs", options.stallMs ?? 2_000);
    this.#backoff = { baseDelayMs: options.baseDelayMs ?? 100, maxDelayMs: options.maxDelayMs ?? 5_000 };
    this.#topics = new TopicHealth(this.#backoff);
    this.#loop = this.#run();
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping.abort();
      this.#wake?.();
      await this.#loop;
      await Promise.all(this.#late);
      await this.#unlisten?.().catch((err) => this.#logger.debug("outbox relay could not unlisten", { err }));
    })();
    return this.#stopped;
  }

  async status(options: RelayStatusOptions = {}): Promise<RelayStatus> {
    const status: RelayStatus = { failingTopics: this.#topics.failing(), databaseReachable: this.#dbFailures === 0 };
    if (this.#lastError) status.lastError = { ...this.#lastError };
    if ((options.backlog ?? true) && status.databaseReachable) {
      const backlog = await this.#countBacklog(options.signal);
      if (backlog !== undefined) {
        status.backlog = backlog.rows;
        status.oldestAgeSeconds = backlog.oldestAgeSeconds;
      }
    }
    return status;
  }

  readonly #poke = () => {
    this.#pending = true;
    this.#wake?.();
  };

  async #run(): Promise<void> {
    while (!this.#stopping.signal.aborted) {
      let more: boolean;
      try {
        await this.#listen();
        // Cleared just before the sweep reads: a poke from here on may be for a row it does not see, so it sweeps again.
        this.#pending = false;
        more = await this.#sweep();
        if (!more) await this.#purgeIfDue();
        this.#databaseAnswered();
      } catch (err) {
        if (this.#stopping.signal.aborted) break;
        this.#pending = false; // the backoff holds, unless a poke comes while it runs (the LISTEN is back)
        await this.#sleep(this.#databaseFailed(err));
        continue;
      }
      if (!more) await this.#sleep(this.#idleMs());
    }
  }

  /** Subscribes once; from then on the adapter re-establishes the LISTEN and calls `onListen`, which sweeps. */
  async #listen(): Promise<void> {
    if (this.#unlisten) return;
    this.#unlisten = await this.#db.listen(OUTBOX_CHANNEL, this.#poke, this.#poke);
  }

  /** One batch in one transaction; true when it was full, so more rows are probably waiting. */
  #sweep(): Promise<boolean> {
    this.#sweepStartedAt = Date.now();
    const excluded = this.#topics.excluded(this.#sweepStartedAt);
    return this.#db.transaction(async (tx) => {
      // One relay publishes at a time: with two, SKIP LOCKED would let the second publish a key's next row while
      // the first still publishes the one before it.
      const [lock] = await tx.query<{ ok: boolean }>("select pg_try_advisory_xact_lock(hashtext($1)) as ok", [
        OUTBOX_CHANNEL,
      ]);
      if (!lock.ok) return false;
      const rows = excluded.length === 0
        ? await tx.query<OutboxRow>(SELECT_ALL, [this.#batchSize])
        : await tx.query<OutboxRow>(SELECT_EXCLUDING, [this.#batchSize, excluded]);
      if (rows.length === 0) return false;
      const published = await this.#publishBatch(rows);
      if (published.length > 0) {
        await tx.query("update outbox set published_at = now() where seq = any($1::bigint[])", [published]);
      }
      return rows.length === this.#batchSize;
    });
  }

  /**
   * Publishes a batch, each topic+key in seq order and up to `concurrency` keys at once; returns the seqs whose
   * publish resolved before the batch ended (a stalled publish marks its row itself, later).
   */
  async #publishBatch(rows: OutboxRow[]): Promise<string[]> {
    const lanes = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const lane = JSON.stringify([row.topic, row.key]);
      const queued = lanes.get(lane);
      if (queued) queued.push(row);
      else lanes.set(lane, [row]);
    }
    const queue = [...lanes.values()];
    const failed = new Set<string>();
    const published: string[] = [];
    const inFlight = new Map<OutboxRow, Promise<boolean>>();
    let open = true;
    const work = async () => {
      for (let lane = queue.shift(); lane && open; lane = queue.shift()) {
        for (const row of lane) {
          if (!open || failed.has(row.topic) || this.#stopping.signal.aborted) break;
          const attempt = this.#attempt(row, failed);
          inFlight.set(row, attempt);
          const ok = await attempt;
          inFlight.delete(row);
          if (!open) return;
          if (!ok) break;
          published.push(row.seq);
        }
      }
    };
    const workers = Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, work));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), this.#stallMs));
    const stall = await Promise.race([workers.then(() => false), stalled]);
    clearTimeout(timer);
    if (stall) {
      open = false;
      for (const [row, attempt] of inFlight) this.#abandon(row, attempt);
    }
    return [...published];
  }

  /** `publish`, in a span continuing the trace that enqueued the row (its `traceparent` header, kept in the row). */
  #publishTraced(msg: PendingMessage): Promise<void> {
    if (!tracingEnabled) return this.#publish(msg);
    return inSpan(`outbox relay ${msg.topic}`, {
      kind: SpanKind.INTERNAL,
      parent: msg.headers[ContextHeaders.traceparent] ?? "",
      service: this.#service,
      attributes: { "messaging.destination.name": msg.topic, "messaging.message.id": msg.id },
    }, () => this.#publish(msg));
  }

  /** Publishes one row; resolves whether it worked, recording the topic's failure or recovery. */
  #attempt(row: OutboxRow, failedInBatch: Set<string>): Promise<boolean> {
    const msg: PendingMessage = {
      id: row.id,
      topic: row.topic,
      key: row.key ?? undefined,
      headers: row.headers,
      payload: encoder.encode(row.payload),
    };
    return new Promise<void>((resolve) => resolve(this.#publishTraced(msg))).then(
      () => {
        // A sibling key's failure in the same batch wins: the topic stays backed off.
        if (!failedInBatch.has(row.topic)) this.#topicAnswered(row.topic);
        return true;
      },
      (err) => {
        if (!failedInBatch.has(row.topic)) {
          failedInBatch.add(row.topic);
          this.#topicFailed(row.topic, err);
        }
        return false;
      },
    );
  }

  /** Leaves a slow publish behind its committed batch: its topic sits out until it settles, then its row is marked. */
  #abandon(row: OutboxRow, attempt: Promise<boolean>): void {
    if (this.#topics.stall(row.topic) === 1) {
      this.#logger.warn("outbox publish is slow; its topic waits while the others flow", {
        topic: row.topic,
        stallMs: this.#stallMs,
      });
    }
    const late: Promise<void> = attempt
      .then(async (ok) => {
        if (!ok) return;
        // Not marked means published again later: at-least-once, the same as a crash before the commit.
        await this.#db.query("update outbox set published_at = now() where seq = $1 and published_at is null", [
          row.seq,
        ]).catch((err) => this.#logger.debug("outbox could not mark a late publish", { seq: row.seq, err }));
      })
      .finally(() => {
        this.#topics.unstall(row.topic);
        this.#late.delete(late);
        this.#poke();
      });
    this.#late.add(late);
  }

  #topicFailed(topic: string, err: unknown): void {
    const { failures, delayMs } = this.#topics.failed(topic, Date.now());
    this.#lastError = { message: messageOf(err), topic, at: new Date() };
    const fields = { topic, err, failures, retryInMs: Math.round(delayMs) };
    if (failures === 1) this.#logger.warn("outbox publish failing; the topic is backed off, others flow", fields);
    else this.#logger.debug("outbox publish still failing", fields);
  }

  #topicAnswered(topic: string): void {
    const episode = this.#topics.succeeded(topic);
    if (episode) {
      this.#logger.info("outbox publish recovered", { topic, failures: episode.failures, downMs: episode.downMs });
    }
  }

  /** Records a failed sweep; returns how long to wait before the next. */
  #databaseFailed(err: unknown): number {
    this.#dbFailures++;
    this.#lastError = { message: messageOf(err), at: new Date() };
    const delayMs = jittered(backoffDelay(this.#dbFailures, this.#backoff));
    const fields = { err, failures: this.#dbFailures, retryInMs: Math.round(delayMs) };
    if (this.#dbFailures === 1) {
      this.#dbDownSince = Date.now();
      this.#logger.warn("outbox relay cannot reach the database; retrying with backoff", fields);
    } else {
      this.#logger.debug("outbox relay still cannot reach the database", fields);
    }
    return delayMs;
  }

  #databaseAnswered(): void {
    if (this.#dbFailures === 0) return;
    this.#logger.info("outbox relay reached the database again", {
      failures: this.#dbFailures,
      downMs: Date.now() - this.#dbDownSince,
    });
    this.#dbFailures = 0;
  }

  /**
   * Until the safety sweep, or sooner when a topic the last sweep could not publish (left out, or failed during it)
   * may be retried. A topic whose retry time had come before that sweep started was in it: no wake-up for it.
   */
  #idleMs(): number {
    const retryAt = this.#topics.nextRetryAfter(this.#sweepStartedAt);
    return Math.max(0, Math.min(this.#pollMs, (retryAt ?? Infinity) - Date.now()));
  }

  /** Resolves after `ms`, or at once on a poke or stop. */
  #sleep(ms: number): Promise<void> {
    if (this.#pending || this.#stopping.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#wake?.(), ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  async #purgeIfDue(): Promise<void> {
    if (Date.now() - this.#lastPurge < PURGE_EVERY_MS) return;
    await this.#db.query("delete from outbox where published_at < now() - $1::interval", [
      `${this.#retainMs} milliseconds`,
    ]);
    this.#lastPurge = Date.now();
  }

  #countBacklog(signal?: AbortSignal): Promise<{ rows: number; oldestAgeSeconds: number } | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined);
    const count = this.#db.query<{ n: string; age: number | null }>(
      `select count(*) as n, extract(epoch from now() - min(created_at))::float8 as age
         from outbox where published_at is null`,
    ).then(([row]) => ({ rows: Number(row.n), oldestAgeSeconds: Math.max(0, Number(row.age ?? 0)) }), () => undefined);
    if (!signal) return count;
    return new Promise((resolve) => {
      const onAbort = () => resolve(undefined);
      signal.addEventListener("abort", onAbort, { once: true });
      count.then((n) => {
        signal.removeEventListener("abort", onAbort);
        resolve(n);
      });
    });
  }
}

/** Per topic: its failure episode and backoff, and how many of its publishes outlived their batch. */
class TopicHealth {
  readonly #backoff: BackoffOptions;
  readonly #failing = new Map<string, { failures: number; since: number; retryAt: number }>();
  readonly #stalled = new Map<string, number>();

  constructor(backoff: BackoffOptions) {
    this.#backoff = backoff;
  }

  /** Records a failure and backs the topic off; `failures` is 1 for the first of an episode. */
  failed(topic: string, now: number): { failures: number; delayMs: number } {
    const previous = this.#failing.get(topic);
    const failures = (previous?.failures ?? 0) + 1;
    const delayMs = jittered(backoffDelay(failures, this.#backoff));
    this.#failing.set(topic, { failures, since: previous?.since ?? now, retryAt: now + delayMs });
    return { failures, delayMs };
  }

  /** Ends the topic's failure episode, returning it when there was one. */
  succeeded(topic: string): { failures: number; downMs: number } | undefined {
    const episode = this.#failing.get(topic);
    if (!episode) return undefined;
    this.#failing.delete(topic);
    return { failures: episode.failures, downMs: Date.now() - episode.since };
  }

  /** Counts one more stalled publish of the topic; returns how many there are now. */
  stall(topic: string): number {
    const n = (this.#stalled.get(topic) ?? 0) + 1;
    this.#stalled.set(topic, n);
    return n;
  }

  unstall(topic: string): void {
    const n = (this.#stalled.get(topic) ?? 0) - 1;
    if (n > 0) this.#stalled.set(topic, n);
    else this.#stalled.delete(topic);
  }

  /** Topics to leave out of a batch selected at `now`. */
  excluded(now: number): string[] {
    const out = new Set(this.#stalled.keys());
    for (const [topic, { retryAt }] of this.#failing) if (retryAt > now) out.add(topic);
    return [...out];
  }

  /** The earliest retry time later than `time` of any failing topic. */
  nextRetryAfter(time: number): number | undefined {
    let next: number | undefined;
    for (const { retryAt } of this.#failing.values()) {
      if (retryAt > time && (next === undefined || retryAt < next)) next = retryAt;
    }
    return next;
  }

  failing(): string[] {
    return [...new Set([...this.#failing.keys(), ...this.#stalled.keys()])].sort();
  }
}

/** Between half and all of `ms`, so relays that failed together do not retry together. */
function jittered(ms: number): number {
  return ms / 2 + Math.random() * ms / 2;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function positive(name: string, value: number): number {
  if (!(value > 0)) {
    throw new RangeError(`Cannot start the outbox relay as ${name} must be positive: current value is ${value}`);
  }
  return value;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot start the outbox relay as ${name} must be a positive integer: current value is ${value}`,
    );
  }
  return value;
}
