import { checkCount, checkFunction, linkedController } from "./_shared.ts";

/**
 * Settings of a {@linkcode Group}.
 *
 * @example At most 8 tasks at a time, cancelled with the caller
 * ```ts
 * import type { GroupOptions } from "./mod.ts";
 * const options: GroupOptions = { limit: 8, signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface GroupOptions {
  /** Tasks running at once; the others wait in order for a free slot. @default {Infinity} */
  limit?: number;
  /**
   * Cancels every task, beside the current request context's signal (`currentContext()?.signal`), which is always
   * followed. @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Tasks that succeed or fail together, like Go's errgroup: the first failure aborts the shared {@linkcode signal}
 * (so the other tasks stop) and {@linkcode wait} rejects with it. Tasks that never started are dropped.
 *
 * @example Fetch three pages; one failure cancels the rest
 * ```ts
 * import { Group } from "./mod.ts";
 * const group = new Group({ limit: 2 });
 * const sizes: number[] = [];
 * for (const page of [1, 2, 3]) {
 *   group.go(async (signal) => {
 *     signal.throwIfAborted();
 *     sizes.push(page * 10);
 *   });
 * }
 * await group.wait();
 * ```
 */
export class Group {
  readonly #controller: AbortController;
  readonly #detach: () => void;
  readonly #limit: number;
  readonly #waiting: ((signal: AbortSignal) => Promise<unknown>)[] = [];
  #running = 0;
  #failed = false;
  #error: unknown;
  #idle = Promise.withResolvers<void>();

  /**
   * A group with no task yet, following `options.signal` and the current request context's signal.
   *
   * @example A group under a deadline
   * ```ts
   * import { Group } from "./mod.ts";
   * const group = new Group({ signal: AbortSignal.timeout(1_000) });
   * await group.wait();
   * ```
   */
  constructor(options: GroupOptions = {}) {
    const { limit = Infinity } = options;
    checkCount(limit, "create a group", "limit", true);
    this.#limit = limit;
    const { controller, dispose } = linkedController(options.signal);
    this.#controller = controller;
    this.#detach = dispose;
    this.#idle.resolve();
    const signal = controller.signal;
    if (signal.aborted) this.#fail(signal.reason);
    else signal.addEventListener("abort", () => this.#fail(signal.reason), { once: true });
  }

  /**
   * Aborts when the first task fails (with its error as the reason) or when the group's caller or request context is
   * cancelled. Pass it to every call a task makes.
   *
   * @example
   * ```ts
   * import { Group } from "./mod.ts";
   * const group = new Group();
   * console.log(group.signal.aborted); // false
   * ```
   */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Runs `task` now, or once a slot is free under `limit`. A task given after the group failed is not run.
   *
   * @example
   * ```ts
   * import { Group } from "./mod.ts";
   * const group = new Group();
   * group.go(async (signal) => { signal.throwIfAborted(); });
   * await group.wait();
   * ```
   */
  go(task: (signal: AbortSignal) => Promise<unknown>): void {
    checkFunction(task, "run a task in a group", "task");
    if (this.#failed) return;
    if (this.#running === 0 && this.#waiting.length === 0) this.#idle = Promise.withResolvers<void>();
    this.#waiting.push(task);
    this.#fill();
  }

  /**
   * Resolves once every task given so far has finished; rejects with the first failure once the tasks still running
   * then have returned, as Go's `errgroup.Wait` does (a task that ignores its signal holds it up). Call it after the
   * last {@linkcode go}: it detaches the group from its caller's signal.
   *
   * @example
   * ```ts
   * import { Group } from "./mod.ts";
   * const group = new Group();
   * group.go(() => Promise.reject(new Error("shard 2 down")));
   * const err = await group.wait().catch((e) => e); // Error: shard 2 down
   * ```
   */
  async wait(): Promise<void> {
    try {
      await this.#idle.promise;
    } finally {
      if (this.#running === 0 && this.#waiting.length === 0) this.#detach();
    }
    if (this.#failed) throw this.#error;
  }

  #fill(): void {
    while (!this.#failed && this.#running < this.#limit && this.#waiting.length > 0) {
      const task = this.#waiting.shift()!;
      this.#running++;
      let work: Promise<unknown>;
      try {
        work = Promise.resolve(task(this.signal));
      } catch (err) {
        work = Promise.reject(err);
      }
      work.then(() => this.#end(), (err) => {
        this.#fail(err);
        this.#end();
      });
    }
  }

  #end(): void {
    this.#running--;
    if (this.#failed) this.#waiting.length = 0;
    this.#fill();
    if (this.#running === 0 && this.#waiting.length === 0) this.#idle.resolve();
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#error = error;
    this.#waiting.length = 0;
    this.#controller.abort(error);
    if (this.#running === 0) this.#idle.resolve();
  }
}
