import { backoffDelay, delay, type RetryOptions } from "../async/mod.ts";
import type { CallOutcome, CircuitBreaker } from "./circuit_breaker.ts";
import type { RetryBudget } from "./retry_budget.ts";

/**
 * How one attempt went, as a transport judges it for {@linkcode ResiliencePolicy.execute}:
 * - `success`: the target answered (a refusal such as not-found included); the outcome stands.
 * - `failure`: the target failed; counts against the breaker; the outcome stands (not retried).
 * - `retry`: the target failed in a way another attempt may fix; counts against the breaker; retried when allowed.
 * - `throttled`: the target is up but asked to slow down (429, `RESOURCE_EXHAUSTED`); not a breaker failure; retried
 *   when allowed.
 * - `ignore`: says nothing about the target (the request was hopeless); not counted, not retried.
 *
 * @example
 * ```ts
 * import type { Verdict } from "./policy.ts";
 * const forStatus = (status: number): Verdict => status === 503 ? "retry" : status >= 500 ? "failure" : "success";
 * forStatus(503); // "retry"
 * ```
 */
export type Verdict = "success" | "failure" | "retry" | "throttled" | "ignore";

/**
 * A settled attempt: its value, or what it threw.
 *
 * @example
 * ```ts
 * import type { Outcome } from "./policy.ts";
 * const outcome: Outcome<Response> = { ok: false, error: new TypeError("connection refused") };
 * ```
 */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Options of one {@linkcode ResiliencePolicy.execute}: what the transport knows of the call.
 *
 * @example An HTTP-like call: a 503 value is retried, its body discarded first
 * ```ts
 * import type { ExecuteOptions } from "./policy.ts";
 * const options: ExecuteOptions<Response> = {
 *   retryable: true,
 *   deadline: Date.now() + 2_000,
 *   judge: (o) => !o.ok || o.value.status === 503 ? "retry" : "success",
 *   discard: (res) => res.body?.cancel(),
 * };
 * ```
 */
export interface ExecuteOptions<T> {
  /** Whether the call may be attempted more than once (idempotent). @default {true} */
  retryable?: boolean;
  /** Absolute deadline (epoch ms) no backoff may pass; the policy's `timeoutMs` may make it earlier. @default {Infinity} */
  deadline?: number;
  /** The caller's cancellation: stops the backoff (rejecting with its reason); an attempt settled after it aborted for a reason other than a `TimeoutError` is judged `ignore`. @default {undefined} */
  signal?: AbortSignal;
  /** Judges each attempt. @default {a value is a success; an error is `retry`, a `TimeoutError` `failure`, one saying `retryable: false` `ignore`} */
  judge?: (outcome: Outcome<T>) => Verdict;
  /** The wait the target asked for before the next attempt (`Retry-After`), instead of the backoff. @default {undefined} */
  retryAfterMs?: (outcome: Outcome<T>) => number | undefined;
  /** Releases a value that is about to be retried (cancel a response body). @default {undefined} */
  discard?: (value: T) => unknown;
}

/**
 * Options for {@linkcode resiliencePolicy}.
 *
 * @example A breaker per target, a budget per service
 * ```ts
 * import { CircuitBreaker, RetryBudget, resiliencePolicy, type ResiliencePolicyOptions } from "./mod.ts";
 * const budget = new RetryBudget();
 * const options: ResiliencePolicyOptions = {
 *   retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 1_000 },
 *   budget,
 *   breaker: new CircuitBreaker("inventory"),
 * };
 * const inventory = resiliencePolicy(options);
 * ```
 */
export interface ResiliencePolicyOptions {
  /** Budget of one execution, retries included; the earlier of this and the call's own deadline wins. Each attempt gets a signal that aborts when it passes. @default {undefined} (the call's deadline only) */
  timeoutMs?: number;
  /** Attempts and backoff (full jitter) between them. @default {{ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 1000 }} */
  retry?: RetryOptions;
  /** Retry budget, shared by the policies of one service; a retry it refuses is not made. @default {undefined} (only maxAttempts limits retries) */
  budget?: RetryBudget;
  /** Circuit breaker of the target; each attempt asks it first, and it counts each attempt's verdict. @default {undefined} */
  breaker?: CircuitBreaker;
  /** Source of jitter in [0, 1), injectable for tests. @default {Math.random} */
  random?: () => number;
  /** Waits `ms` or rejects when `signal` aborts; injectable for tests. @default {delay from platform/async} */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** What each verdict tells the breaker: a throttled target is up, so it counts as a success. */
const BREAKER_OUTCOME: Readonly<Record<Verdict, CallOutcome>> = {
  success: "success",
  throttled: "success",
  ignore: "ignore",
  failure: "failure",
  retry: "failure",
};

function defaultJudge(outcome: Outcome<unknown>): Verdict {
  if (outcome.ok) return "success";
  const error = outcome.error as { retryable?: unknown; name?: unknown } | null;
  if (error?.retryable === false) return "ignore";
  // A timed-out attempt is the target's failure, but another attempt would run past the same deadline.
  return error?.name === "TimeoutError" ? "failure" : "retry";
}

/**
 * One resilience policy: a timeout, retries with full-jitter backoff limited by a shared {@linkcode RetryBudget},
 * and a {@linkcode CircuitBreaker} around every attempt. The transports adapt it, each in a few lines: the HTTP
 * client (`createHttpClient({ policy })`), gRPC clients (`createGrpcClient(def, address, { policy })`, through
 * `retryCalls`) and message consumers ({@linkcode resilientHandler}). Made by {@linkcode resiliencePolicy}.
 *
 * @example Run a call under a policy
 * ```ts
 * import { resiliencePolicy, type ResiliencePolicy } from "./mod.ts";
 * const policy: ResiliencePolicy = resiliencePolicy({ retry: { maxAttempts: 2, baseDelayMs: 1 } });
 * let calls = 0;
 * const value = await policy.execute(async () => {
 *   if (++calls === 1) throw new Error("brief fault");
 *   return "ok";
 * });
 * console.log(value, calls); // "ok" 2
 * ```
 */
export class ResiliencePolicy {
  /** The breaker each attempt goes through, if any. */
  readonly breaker?: CircuitBreaker;
  /** The retry budget retries draw from, if any. */
  readonly budget?: RetryBudget;
  readonly #timeoutMs?: number;
  readonly #maxAttempts: number;
  readonly #backoff: { baseDelayMs: number; maxDelayMs: number };
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  /** Creates a policy; prefer {@linkcode resiliencePolicy}. */
  constructor(options: ResiliencePolicyOptions = {}) {
    const { maxAttempts = 3, baseDelayMs = 50, maxDelayMs = 1_000 } = options.retry ?? {};
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new RangeError(`Cannot use retry.maxAttempts as attempts: current value is ${maxAttempts}`);
    }
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
      throw new RangeError(`Cannot use timeoutMs as a budget: current value is ${options.timeoutMs}`);
    }
    this.#timeoutMs = options.timeoutMs;
    this.#maxAttempts = maxAttempts;
    this.#backoff = { baseDelayMs, maxDelayMs };
    this.breaker = options.breaker;
    this.budget = options.budget;
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? delay;
  }

  /** Attempts per call, the first included. */
  get maxAttempts(): number {
    return this.#maxAttempts;
  }

  /**
   * Runs `attempt` until an attempt's verdict is not `retry`/`throttled`, or no further attempt is allowed (the call
   * is not retryable, `maxAttempts` is reached, the wait would pass the deadline, or the budget refuses); then the
   * last outcome stands: its value is returned, its error thrown. Each attempt first asks the breaker, which may throw
   * {@linkcode CircuitOpenError} instead. `attempt` gets the attempt's signal (the caller's, ended by the policy's
   * `timeoutMs` too) and its number, from 1.
   */
  async execute<T>(
    attempt: (signal: AbortSignal | undefined, n: number) => Promise<T>,
    options: ExecuteOptions<T> = {},
  ): Promise<T> {
    const { breaker, budget } = this;
    const judge = (options.judge ?? defaultJudge) as (outcome: Outcome<T>) => Verdict;
    let deadline = options.deadline ?? Infinity;
    let signal = options.signal;
    if (this.#timeoutMs !== undefined && Date.now() + this.#timeoutMs < deadline) {
      deadline = Date.now() + this.#timeoutMs;
      // Unlike setTimeout + clearTimeout (about 1.5 µs a call here), AbortSignal.timeout is cheap and needs no
      // clearing: its timer is unref'd, so it neither keeps the process alive nor trips the test sanitizers.
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      signal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    }
    budget?.recordCall();
    for (let n = 1;; n++) {
      const permit = breaker?.acquire();
      let outcome: Outcome<T>;
      try {
        outcome = { ok: true, value: await attempt(signal, n) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      // The caller's cancellation says nothing of the target; a passed deadline (a TimeoutError) does.
      const cancelled = options.signal?.aborted &&
        (options.signal.reason as Error | undefined)?.name !== "TimeoutError";
      const verdict = cancelled ? "ignore" : judge(outcome);
      if (permit) breaker!.record(permit, BREAKER_OUTCOME[verdict]);
      if (
        (verdict === "retry" || verdict === "throttled") && options.retryable !== false && n < this.#maxAttempts &&
        !signal?.aborted
      ) {
        const wait = options.retryAfterMs?.(outcome) ?? this.#random() * backoffDelay(n, this.#backoff);
        if (Date.now() + wait < deadline && (!budget || budget.tryRetry())) {
          try {
            await this.#sleep(wait, signal);
          } catch (err) {
            if (outcome.ok) await options.discard?.(outcome.value);
            throw err;
          }
          // A timer may fire late: an attempt that would start past the deadline is not made.
          if (Date.now() < deadline) {
            if (outcome.ok) await options.discard?.(outcome.value);
            continue;
          }
        }
      }
      if (outcome.ok) return outcome.value;
      throw outcome.error;
    }
  }
}

/**
 * Creates a {@linkcode ResiliencePolicy}: give one per target (its own breaker), all sharing the service's budget.
 *
 * @example Stop calling a target that keeps failing
 * ```ts
 * import { CircuitBreaker, CircuitOpenError, RetryBudget, resiliencePolicy } from "./mod.ts";
 * const policy = resiliencePolicy({
 *   retry: { maxAttempts: 1 },
 *   budget: new RetryBudget(),
 *   breaker: new CircuitBreaker("payments", { minimumCalls: 3 }),
 * });
 * const down = () => Promise.reject(new Error("connection refused"));
 * for (let i = 0; i < 3; i++) await policy.execute(down).catch(() => {});
 * const err = await policy.execute(down).catch((e) => e);
 * err instanceof CircuitOpenError; // true
 * ```
 */
export function resiliencePolicy(options: ResiliencePolicyOptions = {}): ResiliencePolicy {
  return new ResiliencePolicy(options);
}
