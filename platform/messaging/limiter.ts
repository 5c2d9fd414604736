/**
 * Bounds how many tasks run at once; waiters are served first come, first served.
 *
 * @example Skip work when every slot is busy
 * ```ts
 * import { createLimiter, type Limiter } from "./limiter.ts";
 * const limiter: Limiter = createLimiter(1);
 * limiter.tryAcquire(); // true
 * limiter.tryAcquire(); // false: the one slot is taken
 * limiter.release();
 * limiter.active; // 0
 * ```
 */
export interface Limiter {
  /** Resolves once a slot is free and taken; pair every call with one {@linkcode Limiter.release}. */
  acquire(): Promise<void>;
  /** Takes a free slot at once and returns true, or returns false when none is free (and takes nothing). */
  tryAcquire(): boolean;
  /** Gives a slot back, handing it to the oldest waiter. */
  release(): void;
  /** Slots currently taken. */
  readonly active: number;
  /** Resolves when no slot is taken (immediately if none is). */
  idle(): Promise<void>;
}

/**
 * Creates a counting semaphore with `max` slots.
 *
 * @example Run at most two handlers at once
 * ```ts
 * import { createLimiter } from "./limiter.ts";
 * const limiter = createLimiter(2);
 * await limiter.acquire();
 * try {
 *   // handle one message
 * } finally {
 *   limiter.release();
 * }
 * await limiter.idle();
 * ```
 */
export function createLimiter(max: number): Limiter {
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`Cannot create a limiter as max is not a positive integer: current value is ${max}`);
  }
  let active = 0;
  const waiters: (() => void)[] = [];
  let idleWaiters: (() => void)[] = [];
  return {
    get active() {
      return active;
    },
    acquire() {
      if (active < max) {
        active++;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
    tryAcquire() {
      if (active >= max || waiters.length > 0) return false;
      active++;
      return true;
    },
    release() {
      const next = waiters.shift();
      if (next) return next();
      active--;
      if (active === 0) {
        const done = idleWaiters;
        idleWaiters = [];
        for (const resolve of done) resolve();
      }
    },
    idle() {
      if (active === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
