import { checkCount, checkFunction, linkedController } from "./_shared.ts";

/**
 * Settings of a {@linkcode WorkerPool}.
 *
 * @example Four workers, sixteen queued items at most, failures logged instead of stopping the pool
 * ```ts
 * import type { WorkerPoolOptions } from "./mod.ts";
 * const options: WorkerPoolOptions<string> = {
 *   workers: 4,
 *   queueSize: 16,
 *   onError: (err, item) => console.error(`resize ${item} failed`, err),
 * };
 * ```
 */
export interface WorkerPoolOptions<T> {
  /** Items handled at once. @default {1} */
  workers?: number;
  /** Items waiting for a worker; past it {@linkcode WorkerPool.submit} waits for room. @default {the `workers` count} */
  queueSize?: number;
  /**
   * Stops the pool, beside the current request context's signal (`currentContext()?.signal`) at construction, which
   * is always followed. @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Called with each failure, the pool carrying on. Without it the first failure stops the pool: running items are
   * aborted, queued ones dropped, and `submit` and `close` reject with it. @default {undefined}
   */
  onError?: (error: unknown, item: T) => void;
}

/** A submit waiting for room in the queue. */
interface Blocked<T> {
  item: T;
  admitted: PromiseWithResolvers<void>;
}

/**
 * A fixed number of workers over a bounded queue. Back-pressure: {@linkcode submit} resolves once the item is queued,
 * so a producer awaiting it never runs ahead of the workers by more than `queueSize`. {@linkcode close} stops new
 * submissions and resolves when everything submitted has been handled.
 *
 * @example Resize images two at a time
 * ```ts
 * import { WorkerPool } from "./mod.ts";
 * const done: string[] = [];
 * const pool = new WorkerPool(async (name: string, signal) => {
 *   signal.throwIfAborted();
 *   done.push(name);
 * }, { workers: 2, queueSize: 4 });
 * for (const name of ["a.png", "b.png", "c.png"]) await pool.submit(name);
 * await pool.close();
 * ```
 */
export class WorkerPool<T> {
  readonly #handle: (item: T, signal: AbortSignal) => Promise<void>;
  readonly #workers: number;
  readonly #queueSize: number;
  readonly #onError?: (error: unknown, item: T) => void;
  readonly #controller: AbortController;
  readonly #detach: () => void;
  readonly #queue: T[] = [];
  readonly #blocked: Blocked<T>[] = [];
  readonly #drained = Promise.withResolvers<void>();
  #running = 0;
  #closed = false;
  #failed = false;
  #error: unknown;

  /**
   * A pool whose workers run `handle` on each submitted item, with the item's signal (the pool's).
   *
   * @example A pool that handles one item at a time
   * ```ts
   * import { WorkerPool } from "./mod.ts";
   * const pool = new WorkerPool((n: number) => Promise.resolve(void n));
   * await pool.close();
   * ```
   */
  constructor(handle: (item: T, signal: AbortSignal) => Promise<void>, options: WorkerPoolOptions<T> = {}) {
    checkFunction(handle, "create a worker pool", "handle");
    const { workers = 1, queueSize = workers } = options;
    checkCount(workers, "create a worker pool", "workers");
    checkCount(queueSize, "create a worker pool", "queueSize");
    if (options.onError !== undefined) checkFunction(options.onError, "create a worker pool", "onError");
    this.#handle = handle;
    this.#workers = workers;
    this.#queueSize = queueSize;
    this.#onError = options.onError;
    const { controller, dispose } = linkedController(options.signal);
    this.#controller = controller;
    this.#detach = dispose;
    this.#drained.promise.catch(() => {});
    const signal = controller.signal;
    if (signal.aborted) this.#fail(signal.reason);
    else signal.addEventListener("abort", () => this.#fail(signal.reason), { once: true });
  }

  /**
   * Aborts when the pool stops: its first failure (without `onError`) or its caller's cancellation. Every item's
   * handler receives it.
   *
   * @example
   * ```ts
   * import { WorkerPool } from "./mod.ts";
   * const pool = new WorkerPool((n: number) => Promise.resolve(void n));
   * console.log(pool.signal.aborted); // false
   * await pool.close();
   * ```
   */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Items queued or running, not counting submits still waiting for room.
   *
   * @example
   * ```ts
   * import { WorkerPool } from "./mod.ts";
   * const pool = new WorkerPool((n: number) => Promise.resolve(void n));
   * console.log(pool.pending); // 0
   * await pool.close();
   * ```
   */
  get pending(): number {
    return this.#queue.length + this.#running;
  }

  /**
   * Queues `item`: resolves at once while a worker or queue slot is free, otherwise once one frees up (or rejects
   * when `signal` aborts first). Rejects when the pool is closed or has stopped.
   *
   * @example Stop waiting for room after 1 s
   * ```ts
   * import { WorkerPool } from "./mod.ts";
   * const pool = new WorkerPool((n: number) => Promise.resolve(void n));
   * await pool.submit(1, AbortSignal.timeout(1_000));
   * await pool.close();
   * ```
   */
  submit(item: T, signal?: AbortSignal): Promise<void> {
    if (this.#failed) return Promise.reject(this.#error);
    if (this.#closed) return Promise.reject(new Error("Cannot submit to a worker pool as it is closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#workers) {
      this.#run(item);
      return Promise.resolve();
    }
    if (this.#queue.length < this.#queueSize) {
      this.#queue.push(item);
      return Promise.resolve();
    }
    const blocked: Blocked<T> = { item, admitted: Promise.withResolvers<void>() };
    this.#blocked.push(blocked);
    if (!signal) return blocked.admitted.promise;
    const onAbort = () => {
      const at = this.#blocked.indexOf(blocked);
      if (at >= 0) this.#blocked.splice(at, 1);
      blocked.admitted.reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return blocked.admitted.promise.finally(() => signal.removeEventListener("abort", onAbort));
  }

  /**
   * Refuses new items and resolves once everything submitted (queued, running, and waiting for room) has been
   * handled; rejects with the failure that stopped the pool, once its running handlers have returned.
   *
   * @example
   * ```ts
   * import { WorkerPool } from "./mod.ts";
   * const pool = new WorkerPool((n: number) => Promise.resolve(void n), { workers: 2 });
   * await pool.submit(1);
   * await pool.close();
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#settleIfIdle();
    try {
      await this.#drained.promise;
    } finally {
      this.#detach();
    }
  }

  /**
   * Same as {@linkcode close}, for `await using`.
   *
   * @example
   * ```ts
   * import { WorkerPool } from "./mod.ts";
   * await using pool = new WorkerPool((n: number) => Promise.resolve(void n));
   * await pool.submit(1);
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #run(item: T): void {
    this.#running++;
    let work: Promise<void>;
    try {
      work = Promise.resolve(this.#handle(item, this.signal));
    } catch (err) {
      work = Promise.reject(err);
    }
    work.then(() => this.#next(), (err) => {
      if (this.#onError && !this.#failed) {
        try {
          this.#onError(err, item);
        } catch (thrown) {
          this.#fail(thrown);
        }
      } else this.#fail(err);
      this.#next();
    });
  }

  /** A worker is free: it takes the next queued item, and the first blocked submit gets its place in the queue. */
  #next(): void {
    this.#running--;
    if (!this.#failed && this.#queue.length > 0) this.#run(this.#queue.shift()!);
    while (!this.#failed && this.#blocked.length > 0 && this.#queue.length < this.#queueSize) {
      const blocked = this.#blocked.shift()!;
      this.#queue.push(blocked.item);
      blocked.admitted.resolve();
    }
    this.#settleIfIdle();
  }

  #settleIfIdle(): void {
    if (this.#running > 0) return;
    if (this.#failed) this.#drained.reject(this.#error);
    else if (this.#closed && this.#queue.length === 0 && this.#blocked.length === 0) this.#drained.resolve();
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#error = error;
    this.#queue.length = 0;
    for (const blocked of this.#blocked.splice(0)) blocked.admitted.reject(error);
    this.#controller.abort(error);
    this.#settleIfIdle();
  }
}
