/**
 * Exponential backoff: the delay before a retry. The one shape every retrying part of the platform takes.
 *
 * @example Waits from 20 ms doubling up to 1 s
 * ```ts
 * import { backoffDelay, type BackoffOptions } from "./backoff.ts";
 * const backoff: BackoffOptions = { baseDelayMs: 20, maxDelayMs: 1_000 };
 * backoffDelay(3, backoff); // 80
 * ```
 */
export interface BackoffOptions {
  /** Delay before the second attempt. @default {50} */
  baseDelayMs?: number;
  /** Upper bound of any delay. @default {2000} */
  maxDelayMs?: number;
}

/**
 * A retry policy: how many attempts, and the exponential backoff between them. HTTP and gRPC clients, the messaging
 * retry middleware and the outbox relay all take this one shape (defaults differ per use and are documented there).
 *
 * @example Five attempts, waits from 100 ms doubling up to 2 s
 * ```ts
 * import type { RetryOptions } from "./backoff.ts";
 * const policy: RetryOptions = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 2_000 };
 * console.log(policy.maxAttempts);
 * ```
 */
export interface RetryOptions extends BackoffOptions {
  /** Attempts in total, the first included. */
  maxAttempts?: number;
}

/**
 * Milliseconds to wait before attempt `attempt + 1` after attempt `attempt` failed: `baseDelayMs` doubling per
 * attempt, capped at `maxDelayMs`. Multiply by `Math.random()` for full jitter.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 * backoffDelay(1); // 50
 * backoffDelay(3, { baseDelayMs: 10 }); // 40
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const initial = options.baseDelayMs ?? 50;
  const max = options.maxDelayMs ?? 2000;
  return Math.min(max, initial * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
}

/**
 * Resolves after `ms`, or rejects with the signal's reason as soon as `signal` aborts (clearing the timer).
 *
 * @example Wait, unless shutting down
 * ```ts
 * import { delay } from "./backoff.ts";
 * const stop = new AbortController();
 * await delay(10, stop.signal);
 * ```
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
