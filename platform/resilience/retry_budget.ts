import { TimeWindow } from "./_windows.ts";

/**
 * Options for {@linkcode RetryBudget}.
 *
 * @example Retries may add 20 % to the calls of the last 10 s, and 10 a second whatever the traffic
 * ```ts
 * import { RetryBudget, type RetryBudgetOptions } from "./retry_budget.ts";
 * const options: RetryBudgetOptions = { ratio: 0.2, minPerSec: 10, windowMs: 10_000 };
 * const budget = new RetryBudget(options);
 * ```
 */
export interface RetryBudgetOptions {
  /** Retries allowed per call recorded in the window, in [0, 1000]. @default {0.2} */
  ratio?: number;
  /** Retries allowed per second of the window however few the calls, so rare callers can still retry. @default {10} */
  minPerSec?: number;
  /** Length of the sliding window. @default {10_000} */
  windowMs?: number;
  /** The clock, in milliseconds; inject a fake one in tests. @default {Date.now} */
  now?: () => number;
}

const CALLS = 0;
const RETRIES = 1;

/**
 * Caps retries at a share of the calls, so an outage multiplies a caller's load by at most `1 + ratio` instead of by
 * its attempt count (Finagle's retry budget; gRPC's retry throttling has the same aim). Every call deposits `ratio`
 * with {@linkcode RetryBudget.recordCall}; a retry withdraws 1 with {@linkcode RetryBudget.tryRetry}; both expire
 * after `windowMs`. On top, `minPerSec × windowMs / 1000` retries are always allowed per window. Share one budget
 * among all the clients of a service: it bounds the service's total retry load.
 *
 * @example Ten calls earn two retries, on top of the minimum
 * ```ts
 * import { RetryBudget } from "./retry_budget.ts";
 * let now = 0;
 * const budget = new RetryBudget({ ratio: 0.2, minPerSec: 0, windowMs: 1_000, now: () => now });
 * for (let i = 0; i < 10; i++) budget.recordCall();
 * [budget.tryRetry(), budget.tryRetry(), budget.tryRetry()]; // [true, true, false]
 * now += 1_000;
 * budget.canRetry(); // false: the calls left the window
 * ```
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #reserve: number;
  readonly #now: () => number;
  readonly #window: TimeWindow;

  /** Creates an empty budget. */
  constructor(options: RetryBudgetOptions = {}) {
    const { ratio = 0.2, minPerSec = 10, windowMs = 10_000 } = options;
    if (!(ratio >= 0 && ratio <= 1000)) {
      throw new RangeError(`Cannot use ratio as retries per call: current value is ${ratio}`);
    }
    if (!(minPerSec >= 0) || !Number.isFinite(minPerSec)) {
      throw new RangeError(`Cannot use minPerSec as a rate: current value is ${minPerSec}`);
    }
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
      throw new RangeError(`Cannot use windowMs as a duration: current value is ${windowMs}`);
    }
    this.#ratio = ratio;
    this.#reserve = minPerSec * windowMs / 1000;
    this.#now = options.now ?? Date.now;
    this.#window = new TimeWindow(windowMs, 10, 2);
  }

  /** Records one call (a first attempt; retries are recorded by {@linkcode RetryBudget.tryRetry}). */
  recordCall(): void {
    this.#window.add(CALLS, 1, this.#now());
  }

  /** Whether a retry would be allowed now, without taking it. */
  canRetry(): boolean {
    const now = this.#now();
    return this.#window.total(RETRIES, now) + 1 <= this.#reserve + this.#ratio * this.#window.total(CALLS, now);
  }

  /** Takes one retry from the budget: `true` when allowed (and recorded), `false` when the budget is spent. */
  tryRetry(): boolean {
    if (!this.canRetry()) return false;
    this.#window.add(RETRIES, 1, this.#now());
    return true;
  }
}
