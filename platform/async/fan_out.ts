import { budgetExceeded, checkCount, checkFunction, checkMs, describe, linkedController } from "./_shared.ts";

/**
 * How one branch of a {@linkcode fanOut} ended: its value, or what it failed with (its own error, or the
 * `TimeoutError` DOMException of an expired budget, or the reason it was cancelled).
 *
 * @example Read a branch
 * ```ts
 * import type { Settled } from "./mod.ts";
 * const show = (price: Settled<number>) => price.ok ? `${price.value} EUR` : "price unavailable";
 * ```
 */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * One unit of work in a {@linkcode fanOut}: it receives the signal that cancels it (its budget, the whole budget, a
 * failed required branch, the caller and the request context) and should pass it to every call it makes.
 *
 * @example A branch that passes its signal on
 * ```ts
 * import type { BranchFn } from "./mod.ts";
 * const page: BranchFn<string> = async (signal) => (await fetch("data:,hi", { signal })).text();
 * ```
 */
export type BranchFn<T> = (signal: AbortSignal) => Promise<T>;

/**
 * A branch with its own settings, for when the fan-out's defaults do not fit it.
 *
 * @example The order is required; the reviews get 200 ms
 * ```ts
 * import type { BranchSpec } from "./mod.ts";
 * const order: BranchSpec<string> = { run: () => Promise.resolve("o-1"), required: true };
 * const reviews: BranchSpec<string[]> = { run: () => Promise.resolve([]), budgetMs: 200 };
 * ```
 */
export interface BranchSpec<T> {
  /** The work. */
  run: BranchFn<T>;
  /**
   * Whether the whole fan-out fails with this branch: its failure (its budget's expiry included) aborts the branches
   * still running and rejects the fan-out with its error. @default {false}
   */
  required?: boolean;
  /** Time this branch may take from its start. @default {the fan-out's `branchBudgetMs`} */
  budgetMs?: number;
}

/**
 * A branch: a function, or a {@linkcode BranchSpec} for one with its own settings.
 *
 * @example Both forms
 * ```ts
 * import type { Branch } from "./mod.ts";
 * const branches: Record<string, Branch<number>> = {
 *   quick: () => Promise.resolve(1),
 *   must: { run: () => Promise.resolve(2), required: true },
 * };
 * ```
 */
export type Branch<T> = BranchFn<T> | BranchSpec<T>;

/**
 * Settings of a {@linkcode fanOut}.
 *
 * @example At most 4 at a time, 1 s for everything, 300 ms for each
 * ```ts
 * import type { FanOutOptions } from "./mod.ts";
 * const options: FanOutOptions = { concurrency: 4, budgetMs: 1_000, branchBudgetMs: 300 };
 * ```
 */
export interface FanOutOptions {
  /** Branches running at once; the others wait for a free slot, in order. @default {Infinity} */
  concurrency?: number;
  /**
   * Time the whole fan-out may take; when it passes, the branches still running or waiting are aborted and settle
   * with a `TimeoutError` DOMException. @default {undefined} (only the caller's and the request context's deadlines)
   */
  budgetMs?: number;
  /** Time each branch may take from its start, unless its {@linkcode BranchSpec} says otherwise. @default {undefined} */
  branchBudgetMs?: number;
  /**
   * Cancels the whole fan-out, beside the current request context's signal (`currentContext()?.signal`), which is
   * always followed. @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * The settled result of each branch, under the branch's own key (or index, for an array of branches). A branch marked
 * `required: true` can only have succeeded (otherwise the fan-out rejected), and its type says so.
 *
 * @example The order is known to be there
 * ```ts
 * import { fanOut, type FanOutResults } from "./mod.ts";
 * const branches = { order: { run: () => Promise.resolve("o-1"), required: true }, tip: () => Promise.resolve(5) } as const;
 * const results: FanOutResults<typeof branches> = await fanOut(branches);
 * const id: string = results.order.value;
 * ```
 */
export type FanOutResults<B> = {
  -readonly [K in keyof B]: B[K] extends { required: true } ? { ok: true; value: BranchValue<B[K]> }
    : Settled<BranchValue<B[K]>>;
};

/**
 * The value a {@linkcode Branch} resolves with.
 *
 * @example
 * ```ts
 * import type { BranchValue } from "./mod.ts";
 * const n: BranchValue<() => Promise<number>> = 1;
 * ```
 */
export type BranchValue<B> = B extends BranchFn<infer T> ? T : B extends BranchSpec<infer T> ? T : never;

/**
 * Runs named branches (a record) or dynamic targets (an array mapped to branches) concurrently and returns how each
 * ended, so a caller can answer with what it got and name what it did not.
 *
 * Budgets and cancellation: each branch runs under a signal that aborts when its own budget passes, when the whole
 * budget passes, when a required branch fails, when `signal` aborts or when the current request context's signal
 * does. A branch settles as soon as its signal aborts (the fan-out does not wait for work that ignores its signal),
 * with the signal's reason as its error. When every branch has settled the fan-out resolves; when a required branch
 * fails it rejects with that branch's error, after aborting the branches still running. Cancelling the fan-out itself
 * (through `signal` or the request context) rejects it with the signal's reason.
 *
 * @example Required order, optional extras with their own budget
 * ```ts
 * import { fanOut } from "./mod.ts";
 * const { order, reviews } = await fanOut({
 *   order: { run: () => Promise.resolve({ id: "o-1" }), required: true },
 *   reviews: () => Promise.reject(new Error("reviews down")),
 * }, { branchBudgetMs: 200 });
 * // A required branch that got here succeeded; an optional one may have failed.
 * const body = { ...order.value, reviews: reviews.ok ? reviews.value : null };
 * ```
 *
 * @example Dynamic targets, two at a time
 * ```ts
 * import { fanOut } from "./mod.ts";
 * const shards = ["a", "b", "c"];
 * const results = await fanOut(shards.map((shard) => (signal: AbortSignal) => Promise.resolve(shard.length)), {
 *   concurrency: 2,
 * });
 * const total = results.reduce((sum, r) => sum + (r.ok ? r.value : 0), 0); // 3
 * ```
 */
export function fanOut<const B extends Readonly<Record<string, Branch<unknown>>> | readonly Branch<unknown>[]>(
  branches: B,
  options: FanOutOptions = {},
): Promise<FanOutResults<B>> {
  if (branches === null || typeof branches !== "object") {
    throw new TypeError(
      `Cannot fan out as branches is not a record or an array: current value is ${describe(branches)}`,
    );
  }
  const { concurrency = Infinity, budgetMs, branchBudgetMs } = options;
  checkCount(concurrency, "fan out", "concurrency", true);
  checkMs(budgetMs, "fan out", "budgetMs");
  checkMs(branchBudgetMs, "fan out", "branchBudgetMs");
  const entries = Object.entries(branches).map(([key, branch]) => {
    const spec: BranchSpec<unknown> = typeof branch === "function" ? { run: branch } : branch;
    if (spec === null || typeof spec !== "object") {
      throw new TypeError(
        `Cannot fan out as branch ${key} is not a function or a branch spec: current value is ${describe(spec)}`,
      );
    }
    checkFunction(spec.run, `fan out branch ${key}`, "run");
    checkMs(spec.budgetMs, `fan out branch ${key}`, "budgetMs");
    return { key, spec };
  });
  return new FanOut(entries, Array.isArray(branches), concurrency, options).run() as Promise<FanOutResults<B>>;
}

/** One run of {@linkcode fanOut}: the queue of branches, the running ones, and the whole budget. */
class FanOut {
  readonly #entries: { key: string; spec: BranchSpec<unknown> }[];
  readonly #results: Record<string, Settled<unknown>> | Settled<unknown>[];
  readonly #concurrency: number;
  readonly #options: FanOutOptions;
  readonly #done = Promise.withResolvers<void>();
  /** Aborts every running branch: the whole budget, a failed required branch, the caller, or the end. */
  readonly #whole = new AbortController();
  #running = 0;
  #next = 0;
  #settled = 0;
  #finished = false;

  constructor(
    entries: { key: string; spec: BranchSpec<unknown> }[],
    isArray: boolean,
    concurrency: number,
    options: FanOutOptions,
  ) {
    this.#entries = entries;
    this.#results = isArray ? new Array(entries.length) : {};
    this.#concurrency = concurrency;
    this.#options = options;
  }

  async run(): Promise<unknown> {
    const caller = linkedController(this.#options.signal);
    const onCancel = () => this.#fail(caller.controller.signal.reason);
    caller.controller.signal.addEventListener("abort", onCancel, { once: true });
    const { budgetMs } = this.#options;
    const timer = budgetMs === undefined ? undefined : setTimeout(
      () => this.#expire(budgetExceeded("the fan-out", budgetMs)),
      budgetMs,
    );
    try {
      if (caller.controller.signal.aborted) throw caller.controller.signal.reason;
      if (this.#entries.length === 0) return this.#results;
      this.#fill();
      await this.#done.promise;
      return this.#results;
    } finally {
      this.#finished = true;
      clearTimeout(timer);
      caller.controller.signal.removeEventListener("abort", onCancel);
      caller.dispose();
      this.#whole.abort(new DOMException("the fan-out ended", "AbortError"));
    }
  }

  /** Starts branches while there are free slots and waiting branches. */
  #fill(): void {
    while (!this.#whole.signal.aborted && this.#running < this.#concurrency && this.#next < this.#entries.length) {
      this.#start(this.#next++);
    }
  }

  #start(index: number): void {
    const { key, spec } = this.#entries[index];
    this.#running++;
    const own = new AbortController();
    const budgetMs = spec.budgetMs ?? this.#options.branchBudgetMs;
    const timer = budgetMs === undefined
      ? undefined
      : setTimeout(() => own.abort(budgetExceeded(`branch ${key}`, budgetMs)), budgetMs);
    const signal = AbortSignal.any([own.signal, this.#whole.signal]);
    let ended = false;
    const end = (result: Settled<unknown>) => {
      if (ended) return;
      ended = true;
      this.#running--;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      this.#settle(index, result);
    };
    const onAbort = () => end({ ok: false, error: signal.reason });
    signal.addEventListener("abort", onAbort, { once: true });
    let work: Promise<unknown>;
    try {
      work = Promise.resolve(spec.run(signal));
    } catch (err) {
      work = Promise.reject(err);
    }
    work.then((value) => end({ ok: true, value }), (error) => end({ ok: false, error }));
  }

  #settle(index: number, result: Settled<unknown>): void {
    const { key, spec } = this.#entries[index];
    (this.#results as Record<string, Settled<unknown>>)[key] = result;
    this.#settled++;
    // The losers are aborted with the required branch's error, so their own errors say why they stopped.
    if (!result.ok && spec.required) this.#fail(result.error);
    else if (this.#settled === this.#entries.length) this.#done.resolve();
    else this.#fill();
  }

  /** The whole budget passed: what waits and what runs settles with `reason`. */
  #expire(reason: DOMException): void {
    if (this.#finished) return;
    this.#whole.abort(reason);
    while (!this.#finished && this.#next < this.#entries.length) {
      this.#settle(this.#next++, { ok: false, error: reason });
    }
  }

  /** Rejects the fan-out with `reason` and aborts the branches still running. */
  #fail(reason: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#done.reject(reason);
    this.#whole.abort(reason);
  }
}
