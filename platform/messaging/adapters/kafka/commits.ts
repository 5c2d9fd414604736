import type { Logger } from "../../../log/mod.ts";
import type { FetchedRecord } from "./driver.ts";

/**
 * A record taken from a partition, between fetch and commit; `done` once its handler resolved.
 *
 * @example The oldest record not yet handled
 * ```ts
 * import type { FetchedRecord } from "./driver.ts";
 * import type { Taken } from "./commits.ts";
 * const oldest = (taken: Taken<FetchedRecord>[]) => taken.find((t) => !t.done)?.record.offset;
 * ```
 */
export interface Taken<R extends FetchedRecord> {
  readonly record: R;
  readonly partition: PartitionProgress<R>;
  done: boolean;
}

/**
 * One owned partition's records in offset order, for its commit position: the last record of the handled prefix.
 * Records complete in any order; the position only moves past a contiguous run of handled ones.
 *
 * @example Offsets 0 and 1 are taken, 1 finishes first: nothing to commit until 0 finishes too
 * ```ts
 * import { PartitionProgress } from "./commits.ts";
 * const p = new PartitionProgress("t", 0, new AbortController().signal);
 * const record = (offset: bigint) => ({
 *   topic: "t", partition: 0, offset, block: { size: 0, unfinished: 0 },
 *   message: { id: String(offset), headers: {}, payload: new Uint8Array(), timestamp: 0 },
 * });
 * const [a, b] = [p.take(record(0n))!, p.take(record(1n))!];
 * p.complete(b); // 0: offset 0 still runs
 * p.complete(a); // 2
 * p.uncommitted?.offset; // 1n
 * ```
 */
export class PartitionProgress<R extends FetchedRecord> {
  /** Aborted when a rebalance gives the partition to another member. */
  readonly revoked = new AbortController();
  /** Aborted when the partition is revoked or its session stops: no further handler call starts. */
  readonly cancelled: AbortSignal;
  /** The last record of the handled prefix not committed yet: committing it commits everything before it. */
  uncommitted: R | undefined;
  #taken: Taken<R>[] = [];
  #head = 0;
  /** Offset after the last record taken; lower offsets are a refetch after a rejoin, and skipped. */
  #next: bigint | undefined;
  /** The partition's high watermark as the driver last fetched it, when the driver tells. */
  highWatermark: bigint | undefined;

  constructor(readonly topic: string, readonly partition: number, stopping: AbortSignal) {
    this.cancelled = AbortSignal.any([this.revoked.signal, stopping]);
  }

  /** Records taken and not yet behind the commit position. */
  get held(): number {
    return this.#taken.length - this.#head;
  }

  /** Messages of the partition not handled yet: beyond the last taken, plus those taken and still held. */
  get lag(): number | undefined {
    if (this.highWatermark === undefined || this.#next === undefined) return undefined;
    const beyond = this.highWatermark - this.#next;
    return Number(beyond > 0n ? beyond : 0n) + this.held;
  }

  /** Takes `record`, or returns `undefined` when its offset was taken already (the client fetched it again). */
  take(record: R): Taken<R> | undefined {
    if (this.#next !== undefined && record.offset < this.#next) return undefined;
    this.#next = record.offset + 1n;
    const taken = { record, partition: this, done: false };
    this.#taken.push(taken);
    return taken;
  }

  /** Marks `taken` handled; returns how many records moved behind the commit position (0 if it was not the oldest). */
  complete(taken: Taken<R>): number {
    taken.done = true;
    const before = this.#head;
    while (this.#head < this.#taken.length && this.#taken[this.#head].done) {
      this.uncommitted = this.#taken[this.#head++].record;
    }
    const moved = this.#head - before;
    if (this.#head > 1024 && this.#head * 2 > this.#taken.length) {
      this.#taken = this.#taken.slice(this.#head);
      this.#head = 0;
    }
    return moved;
  }
}

/**
 * Options for {@linkcode CommitBatcher}.
 *
 * @example Commit at most every 50 ms
 * ```ts
 * import type { FetchedRecord } from "./driver.ts";
 * import type { CommitBatcherOptions } from "./commits.ts";
 * import { createLogger } from "../../../log/mod.ts";
 * const options: CommitBatcherOptions<FetchedRecord> = {
 *   commit: () => Promise.resolve(),
 *   intervalMs: 50,
 *   logger: createLogger("example"),
 * };
 * ```
 */
export interface CommitBatcherOptions<R extends FetchedRecord> {
  /** Commits, for each record's partition, the offset after it. */
  commit(records: R[]): Promise<void>;
  /** Longest a handled record waits for its commit. @default {100} */
  intervalMs?: number;
  /** Gets commit failures (the next commit retries them). */
  logger: Logger;
  /** Log fields naming the subscription. @default {{}} */
  fields?: Record<string, unknown>;
}

/**
 * Batches commit positions: partitions whose position moved are committed together within `intervalMs`, one commit
 * at a time (one that comes due while another runs follows it). Revoked partitions are never committed: their new
 * owner starts from the last committed offset, and committing now could move it backwards under that owner.
 *
 * @example Commit what a partition handled
 * ```ts
 * import { CommitBatcher, PartitionProgress } from "./commits.ts";
 * import { createLogger } from "../../../log/mod.ts";
 * const committed: bigint[] = [];
 * const commits = new CommitBatcher({
 *   commit: (records) => Promise.resolve(void committed.push(...records.map((r) => r.offset))),
 *   intervalMs: 0,
 *   logger: createLogger("example"),
 * });
 * const p = new PartitionProgress("t", 0, new AbortController().signal);
 * const taken = p.take({
 *   topic: "t", partition: 0, offset: 7n, block: { size: 0, unfinished: 0 },
 *   message: { id: "a", headers: {}, payload: new Uint8Array(), timestamp: 0 },
 * })!;
 * p.complete(taken);
 * commits.moved(p);
 * await commits.now();
 * committed; // [7n]
 * ```
 */
export class CommitBatcher<R extends FetchedRecord> {
  readonly #options: CommitBatcherOptions<R>;
  readonly #dirty = new Set<PartitionProgress<R>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<void> | undefined;
  #again = false;

  constructor(options: CommitBatcherOptions<R>) {
    this.#options = options;
  }

  /** `p`'s commit position moved: commit it within the interval. */
  moved(p: PartitionProgress<R>): void {
    this.#dirty.add(p);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    if (this.#inFlight) {
      this.#again = true;
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, this.#options.intervalMs ?? 100);
  }

  /** Forgets `p` (revoked): its position is not committed. */
  forget(p: PartitionProgress<R>): void {
    this.#dirty.delete(p);
  }

  /** Commits every moved position at once, after the commit under way; resolves when done (failures are logged). */
  async now(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#again = false;
    await this.#inFlight;
    await this.#run();
  }

  #run(): Promise<void> {
    const due: [PartitionProgress<R>, R][] = [];
    for (const p of this.#dirty) {
      if (p.uncommitted && !p.revoked.signal.aborted) due.push([p, p.uncommitted]);
      p.uncommitted = undefined;
    }
    this.#dirty.clear();
    if (due.length === 0) return Promise.resolve();
    const run = this.#options.commit(due.map(([, record]) => record)).catch((err) => {
      this.#options.logger.warn(
        "could not commit offsets; the next commit retries, or the partition's next owner redelivers",
        { ...this.#options.fields, error: err },
      );
      for (const [p, record] of due) {
        if (p.uncommitted !== undefined) continue;
        p.uncommitted = record;
        this.#dirty.add(p);
      }
    }).finally(() => {
      this.#inFlight = undefined;
      if (!this.#again) return;
      this.#again = false;
      this.#schedule();
    });
    this.#inFlight = run;
    return run;
  }
}
