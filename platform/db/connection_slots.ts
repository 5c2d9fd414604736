/**
 * At most `max` calls holding a pooled connection at once; the others wait here, first come first served. Waiting
 * here rather than in a driver's queue is what lets a caller's deadline take its call out before it ever reaches the
 * server, and lets an outage fail every waiting call at once ({@linkcode ConnectionSlots.rejectWaiting}).
 *
 * @example Bound calls to two at a time
 * ```ts
 * import { ConnectionSlots } from "./connection_slots.ts";
 * const slots = new ConnectionSlots(2);
 * if (!slots.tryAcquire()) await slots.acquire(AbortSignal.timeout(1_000));
 * try {
 *   // run one statement
 * } finally {
 *   slots.release();
 * }
 * ```
 */
export class ConnectionSlots {
  #free: number;
  readonly #waiters: Waiter[] = [];
  /** How many slots there are. */
  readonly max: number;

  /** Creates `max` slots. */
  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Cannot create connection slots as max must be a positive integer: current value is ${max}`);
    }
    this.#free = max;
    this.max = max;
  }

  /** Slots taken now. */
  get inUse(): number {
    return this.max - this.#free;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes a free slot and returns true, or returns false (taking nothing) when none is free or others wait. */
  tryAcquire(): boolean {
    if (this.#free === 0 || this.#waiters.length > 0) return false;
    this.#free--;
    return true;
  }

  /**
   * Resolves once a slot is taken for the caller; rejects with `signal`'s reason, leaving the queue, when it aborts
   * first. Pair every resolved call with one {@linkcode ConnectionSlots.release}.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          const at = this.#waiters.indexOf(waiter);
          if (at >= 0) this.#waiters.splice(at, 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  /** Gives a slot back, handing it to the oldest waiter. */
  release(): void {
    const next = this.#waiters.shift();
    if (!next) {
      this.#free++;
      return;
    }
    if (next.onAbort) next.signal!.removeEventListener("abort", next.onAbort);
    next.resolve();
  }

  /** Rejects every waiting call with `error()` (one error each), emptying the queue. */
  rejectWaiting(error: () => unknown): void {
    for (const waiter of this.#waiters.splice(0)) {
      if (waiter.onAbort) waiter.signal!.removeEventListener("abort", waiter.onAbort);
      waiter.reject(error());
    }
  }
}

interface Waiter {
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}
