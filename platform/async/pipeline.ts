import { checkCount, checkFunction, describe, linkedController, untilAborted } from "./_shared.ts";

/**
 * Settings of one {@linkcode Pipeline.stage}.
 *
 * @example Four items in this stage at once
 * ```ts
 * import type { StageOptions } from "./mod.ts";
 * const options: StageOptions = { concurrency: 4 };
 * ```
 */
export interface StageOptions {
  /**
   * Items this stage works on at once. It is also the stage's buffer: a stage holding this many items, finished or
   * not, takes no more from the stage before it until the next stage takes one. @default {1}
   */
  concurrency?: number;
}

/**
 * Settings of a {@linkcode pipeline}.
 *
 * @example A pipeline that gives up after 5 s
 * ```ts
 * import type { PipelineOptions } from "./mod.ts";
 * const options: PipelineOptions = { signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface PipelineOptions {
  /**
   * Cancels every stage, beside the current request context's signal (`currentContext()?.signal`), which is always
   * followed. @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * A staged flow over a source: each {@linkcode stage} maps items with its own concurrency, keeping the source's
 * order. Items are pulled, so back-pressure runs from the consumer up: nothing runs until the pipeline is iterated,
 * and a stage never holds more than its `concurrency`. A failing stage aborts every stage's signal and the iteration
 * throws its error; so does the pipeline's signal; a consumer that stops iterating early aborts the work in flight.
 * A pipeline is iterated once.
 *
 * @example Fetch, then parse, in order
 * ```ts
 * import { pipeline } from "./mod.ts";
 * const sizes = await pipeline(["a", "bb", "ccc"])
 *   .stage(async (id, signal) => { signal.throwIfAborted(); return id.toUpperCase(); }, { concurrency: 3 })
 *   .stage(async (text) => text.length)
 *   .collect(); // [1, 2, 3]
 * ```
 */
export class Pipeline<T> implements AsyncIterable<T> {
  readonly #items: AsyncIterable<T>;
  readonly #root: PipelineRoot;

  /**
   * Use {@linkcode pipeline} to start one.
   *
   * @example
   * ```ts
   * import { pipeline } from "./mod.ts";
   * const p = pipeline([1, 2]);
   * await p.collect();
   * ```
   */
  constructor(items: AsyncIterable<T>, root: PipelineRoot) {
    this.#items = items;
    this.#root = root;
  }

  /**
   * Aborts when a stage fails (with its error), when the pipeline's signal or request context does, or when the
   * consumer stops early. Every stage function receives it.
   *
   * @example
   * ```ts
   * import { pipeline } from "./mod.ts";
   * const p = pipeline([1]);
   * console.log(p.signal.aborted); // false
   * await p.collect();
   * ```
   */
  get signal(): AbortSignal {
    return this.#root.controller.signal;
  }

  /**
   * A pipeline that also runs `fn` on each item, `concurrency` at a time, keeping their order.
   *
   * @example Double, two at a time
   * ```ts
   * import { pipeline } from "./mod.ts";
   * const doubled = await pipeline([1, 2, 3]).stage((n: number) => Promise.resolve(n * 2), { concurrency: 2 }).collect();
   * ```
   */
  stage<O>(fn: (item: T, signal: AbortSignal) => Promise<O>, options: StageOptions = {}): Pipeline<O> {
    checkFunction(fn, "add a pipeline stage", "fn");
    const { concurrency = 1 } = options;
    checkCount(concurrency, "add a pipeline stage", "concurrency");
    return new Pipeline(mapStage(this.#items, fn, concurrency, this.#root.controller), this.#root);
  }

  /**
   * Iterates the last stage's results in source order.
   *
   * @example
   * ```ts
   * import { pipeline } from "./mod.ts";
   * for await (const n of pipeline([1, 2]).stage((n: number) => Promise.resolve(n + 1))) console.log(n);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    if (this.#root.started) throw new Error("Cannot iterate a pipeline as it was already iterated");
    this.#root.started = true;
    try {
      yield* this.#items;
    } finally {
      this.#root.dispose();
    }
  }

  /**
   * Every result, in source order.
   *
   * @example
   * ```ts
   * import { pipeline } from "./mod.ts";
   * const lengths = await pipeline(["a", "bb"]).stage((s: string) => Promise.resolve(s.length)).collect(); // [1, 2]
   * ```
   */
  async collect(): Promise<T[]> {
    const out: T[] = [];
    for await (const item of this) out.push(item);
    return out;
  }
}

/**
 * The state every stage of one pipeline shares.
 *
 * @example
 * ```ts
 * import type { PipelineRoot } from "./mod.ts";
 * const aborted = (root: PipelineRoot) => root.controller.signal.aborted;
 * ```
 */
export interface PipelineRoot {
  /** Cancels every stage. */
  controller: AbortController;
  /** Detaches the controller from the caller's and the request context's signals. */
  dispose: () => void;
  /** Whether the pipeline has been iterated. */
  started: boolean;
}

/**
 * Starts a {@linkcode Pipeline} over `source`, an iterable or async iterable, pulled one item at a time.
 *
 * @example Upper-case lines three at a time
 * ```ts
 * import { pipeline } from "./mod.ts";
 * const lines = await pipeline(["x", "y"], { signal: AbortSignal.timeout(1_000) })
 *   .stage((line: string) => Promise.resolve(line.toUpperCase()), { concurrency: 3 })
 *   .collect(); // ["X", "Y"]
 * ```
 */
export function pipeline<T>(source: Iterable<T> | AsyncIterable<T>, options: PipelineOptions = {}): Pipeline<T> {
  const iterable = source as Partial<Iterable<T> & AsyncIterable<T>> | null;
  if (
    iterable === null || typeof iterable !== "object" && typeof iterable !== "string" ||
    typeof iterable[Symbol.asyncIterator] !== "function" && typeof iterable[Symbol.iterator] !== "function"
  ) {
    throw new TypeError(
      `Cannot start a pipeline as source is not an iterable or async iterable: current value is ${describe(source)}`,
    );
  }
  const { controller, dispose } = linkedController(options.signal);
  return new Pipeline(fromSource(source, controller.signal), { controller, dispose, started: false });
}

async function* fromSource<T>(source: Iterable<T> | AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  for await (const item of source) {
    signal.throwIfAborted();
    yield item;
  }
}

async function* mapStage<I, O>(
  upstream: AsyncIterable<I>,
  fn: (item: I, signal: AbortSignal) => Promise<O>,
  concurrency: number,
  controller: AbortController,
): AsyncGenerator<O> {
  const signal = controller.signal;
  const it = upstream[Symbol.asyncIterator]();
  const inFlight: Promise<O>[] = [];
  let exhausted = false;
  let completed = false;
  try {
    while (true) {
      while (!exhausted && inFlight.length < concurrency) {
        const next = await untilAborted(it.next(), signal);
        if (next.done) {
          exhausted = true;
          break;
        }
        let work: Promise<O>;
        try {
          work = Promise.resolve(fn(next.value, signal));
        } catch (err) {
          work = Promise.reject(err);
        }
        // Settled later, in order; until then a failure must not count as unhandled.
        work.catch(() => {});
        inFlight.push(work);
      }
      if (inFlight.length === 0) {
        completed = true;
        return;
      }
      yield await untilAborted(inFlight.shift()!, signal);
    }
  } catch (err) {
    controller.abort(err);
    throw err;
  } finally {
    if (!completed) {
      controller.abort(new DOMException("the pipeline was stopped before its end", "AbortError"));
      // Not awaited: an upstream stuck in a call that ignores its signal must not hold up the consumer.
      it.return?.().catch(() => {});
    }
  }
}
