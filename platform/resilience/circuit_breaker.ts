import { type CounterWindow, CountWindow, TimeWindow } from "./_windows.ts";

/**
 * Where a {@linkcode CircuitBreaker} stands: `closed` lets every call through and watches their outcomes, `open`
 * refuses every call with {@linkcode CircuitOpenError}, `half-open` lets a few probe calls through to learn whether
 * the target is back.
 *
 * @example Map a state to the `circuit_breaker_state` gauge value
 * ```ts
 * import type { CircuitState } from "./circuit_breaker.ts";
 * const gaugeValue = (state: CircuitState) => ({ closed: 0, "half-open": 1, open: 2 })[state];
 * gaugeValue("open"); // 2
 * ```
 */
export type CircuitState = "closed" | "open" | "half-open";

/**
 * One transition of a {@linkcode CircuitBreaker}, given to its `onStateChange`.
 *
 * @example Log transitions
 * ```ts
 * import type { CircuitStateChange } from "./circuit_breaker.ts";
 * const log = (change: CircuitStateChange) => console.log(`${change.target}: ${change.from} -> ${change.to}`);
 * log({ target: "inventory", from: "closed", to: "open", at: 0 });
 * ```
 */
export interface CircuitStateChange {
  /** The breaker's target. */
  readonly target: string;
  /** The state left. */
  readonly from: CircuitState;
  /** The state entered. */
  readonly to: CircuitState;
  /** When, on the breaker's clock (epoch milliseconds by default). */
  readonly at: number;
}

/**
 * The window of recent calls a closed {@linkcode CircuitBreaker} judges the target on: the last `calls` calls, or the
 * calls of the last `ms` milliseconds (kept in `buckets` buckets, so calls leave the window `ms / buckets` at a time).
 *
 * @example A ten-second window
 * ```ts
 * import type { CircuitWindow } from "./circuit_breaker.ts";
 * const window: CircuitWindow = { type: "time", ms: 10_000 };
 * ```
 */
export type CircuitWindow =
  | { type: "count"; calls: number }
  | { type: "time"; ms: number; buckets?: number };

/**
 * Options for {@linkcode CircuitBreaker}.
 *
 * @example Open at 50 % failures or 80 % calls slower than 1 s over the last 20 calls, probe after 5 s
 * ```ts
 * import { CircuitBreaker, type CircuitBreakerOptions } from "./circuit_breaker.ts";
 * const options: CircuitBreakerOptions = {
 *   failureRateThreshold: 0.5,
 *   slowCallMs: 1_000,
 *   slowCallRateThreshold: 0.8,
 *   window: { type: "count", calls: 20 },
 *   minimumCalls: 10,
 *   openMs: 5_000,
 *   halfOpenCalls: 3,
 * };
 * const breaker = new CircuitBreaker("inventory", options);
 * ```
 */
export interface CircuitBreakerOptions {
  /** Share of failed calls in the window, in (0, 1], at which the circuit opens. @default {0.5} */
  failureRateThreshold?: number;
  /** A call taking at least this long counts as slow. @default {Infinity} (no call is slow) */
  slowCallMs?: number;
  /** Share of slow calls in the window, in (0, 1], at which the circuit opens. @default {1} */
  slowCallRateThreshold?: number;
  /** The calls the rates are computed over. @default {{ type: "count", calls: 20 }} */
  window?: CircuitWindow;
  /** Calls the window must hold before a rate can open the circuit. @default {10} */
  minimumCalls?: number;
  /** How long the circuit stays open before letting probes through. @default {5000} */
  openMs?: number;
  /** Probe calls let through while half-open; this many successes close the circuit. @default {3} */
  halfOpenCalls?: number;
  /** Called synchronously on every transition (for logs, metrics, readiness). @default {undefined} */
  onStateChange?: (change: CircuitStateChange) => void;
  /** The clock, in milliseconds; inject a fake one in tests. @default {Date.now} */
  now?: () => number;
}

/**
 * The right to make one call, from {@linkcode CircuitBreaker.acquire}; hand it back with
 * {@linkcode CircuitBreaker.record} once the call is over.
 *
 * @example Time a call from its permit
 * ```ts
 * import { CircuitBreaker, type CircuitPermit } from "./circuit_breaker.ts";
 * const permit: CircuitPermit = new CircuitBreaker("inventory").acquire();
 * const elapsed = Date.now() - permit.startedAt;
 * ```
 */
export interface CircuitPermit {
  /** When the call started, on the breaker's clock. */
  readonly startedAt: number;
  /** The state period the permit was given in; outcomes of calls begun before the last transition are not counted. */
  readonly epoch: number;
}

/**
 * How a call went, for {@linkcode CircuitBreaker.record}: `success` (the target answered, even with a refusal such
 * as not-found), `failure` (the target failed or could not be reached), or `ignore` (says nothing about the target,
 * e.g. the caller cancelled).
 *
 * @example
 * ```ts
 * import type { CallOutcome } from "./circuit_breaker.ts";
 * const outcome: CallOutcome = "failure";
 * ```
 */
export type CallOutcome = "success" | "failure" | "ignore";

/**
 * A call refused because the target's circuit is open (or half-open with its probes taken). `transient: true`, so
 * the messaging dead-letter middleware never parks a message for it: the message is delivered again later.
 * At the edge it becomes a 503 with `Retry-After` (HTTP) or `UNAVAILABLE` (gRPC).
 *
 * @example Tell the caller when to come back
 * ```ts
 * import { CircuitOpenError } from "./circuit_breaker.ts";
 * const err = new CircuitOpenError("inventory", 2_500);
 * err.message; // "circuit for inventory is open; retry in 2500 ms"
 * ```
 */
export class CircuitOpenError extends Error {
  /** The target whose circuit is open. */
  readonly target: string;
  /** Milliseconds until the circuit lets a probe through (0 while half-open probes are in flight). */
  readonly retryAfterMs: number;
  /** The target is down, the request is not at fault: retry later, never dead-letter. */
  readonly transient = true as const;

  /** Creates the error for `target`, which may be tried again after `retryAfterMs`. */
  constructor(target: string, retryAfterMs: number, options?: ErrorOptions) {
    super(`circuit for ${target} is open; retry in ${retryAfterMs} ms`, options);
    this.name = "CircuitOpenError";
    this.target = target;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The {@linkcode CircuitOpenError} that `error` is or was caused by (following `cause`), or `undefined`: what edges
 * use to answer 503 with `Retry-After` however the error was wrapped.
 *
 * @example Find the breaker's refusal behind a wrapper
 * ```ts
 * import { CircuitOpenError, findCircuitOpen } from "./circuit_breaker.ts";
 * const wrapped = new Error("inventory call failed", { cause: new CircuitOpenError("inventory", 1_000) });
 * findCircuitOpen(wrapped)?.retryAfterMs; // 1000
 * ```
 */
export function findCircuitOpen(error: unknown): CircuitOpenError | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 16; e = e.cause, depth++) {
    if (e instanceof CircuitOpenError) return e;
  }
  return undefined;
}

const CALLS = 0;
const FAILURES = 1;
const SLOW = 2;

/**
 * A circuit breaker for one target. Closed, it counts the outcome of every call in a sliding window and opens when,
 * with at least `minimumCalls` in the window, the failure rate reaches `failureRateThreshold` or the slow-call rate
 * reaches `slowCallRateThreshold`. Open, it refuses every call with {@linkcode CircuitOpenError} for `openMs`; then
 * it is half-open and lets `halfOpenCalls` probes through: a probe that fails (or is slow) reopens it, `halfOpenCalls`
 * successful probes close it with an empty window. Outcomes of calls begun before the last transition are not counted.
 *
 * Use {@linkcode CircuitBreaker.run} around a call, or {@linkcode CircuitBreaker.acquire} and
 * {@linkcode CircuitBreaker.record} when the outcome needs judging (a resilience policy does that).
 *
 * @example Open after two failures, probe after a second
 * ```ts
 * import { CircuitBreaker, CircuitOpenError } from "./circuit_breaker.ts";
 * let now = 0;
 * const breaker = new CircuitBreaker("inventory", {
 *   minimumCalls: 2, openMs: 1_000, halfOpenCalls: 1, now: () => now,
 * });
 * const down = () => Promise.reject(new Error("connection refused"));
 * for (let i = 0; i < 2; i++) await breaker.run(down).catch(() => {});
 * breaker.state; // "open"
 * const refused = await breaker.run(down).catch((e) => e);
 * refused instanceof CircuitOpenError; // true: the target was not called
 * now += 1_000;
 * await breaker.run(async () => "back");
 * breaker.state; // "closed"
 * ```
 */
export class CircuitBreaker {
  /** The target this breaker guards, e.g. `inventory`. */
  readonly target: string;
  readonly #failureRate: number;
  readonly #slowMs: number;
  readonly #slowRate: number;
  readonly #minimumCalls: number;
  readonly #openMs: number;
  readonly #halfOpenCalls: number;
  readonly #onStateChange?: (change: CircuitStateChange) => void;
  readonly #now: () => number;
  readonly #window: CounterWindow;
  #state: CircuitState = "closed";
  #epoch = 0;
  #openedAt = 0;
  #probesOut = 0;
  #probesOk = 0;

  /** Creates a closed breaker for `target`. */
  constructor(target: string, options: CircuitBreakerOptions = {}) {
    this.target = target;
    this.#failureRate = rate("failureRateThreshold", options.failureRateThreshold ?? 0.5);
    this.#slowRate = rate("slowCallRateThreshold", options.slowCallRateThreshold ?? 1);
    this.#slowMs = options.slowCallMs ?? Infinity;
    if (!(this.#slowMs > 0)) {
      throw new RangeError(`Cannot use slowCallMs as a duration: current value is ${this.#slowMs}`);
    }
    this.#minimumCalls = count("minimumCalls", options.minimumCalls ?? 10);
    this.#openMs = options.openMs ?? 5_000;
    if (!(this.#openMs >= 0) || !Number.isFinite(this.#openMs)) {
      throw new RangeError(`Cannot use openMs as a duration: current value is ${this.#openMs}`);
    }
    this.#halfOpenCalls = count("halfOpenCalls", options.halfOpenCalls ?? 3);
    this.#onStateChange = options.onStateChange;
    this.#now = options.now ?? Date.now;
    const window = options.window ?? { type: "count", calls: 20 };
    if (window.type === "count") {
      this.#window = new CountWindow(count("window.calls", window.calls), 3);
    } else if (window.type === "time") {
      if (!(window.ms > 0) || !Number.isFinite(window.ms)) {
        throw new RangeError(`Cannot use window.ms as a duration: current value is ${window.ms}`);
      }
      this.#window = new TimeWindow(window.ms, count("window.buckets", window.buckets ?? 10), 3);
    } else {
      throw new TypeError(
        `Cannot use window.type as a window kind: current value is ${
          JSON.stringify((window as { type: unknown }).type)
        }`,
      );
    }
  }

  /** The current state; an open circuit whose `openMs` has passed turns half-open when read. */
  get state(): CircuitState {
    if (this.#state === "open" && this.#now() - this.#openedAt >= this.#openMs) this.#transition("half-open");
    return this.#state;
  }

  /**
   * Asks to make one call: returns a permit to hand back to {@linkcode CircuitBreaker.record}, or throws
   * {@linkcode CircuitOpenError} when the circuit is open, or half-open with all its probes out.
   */
  acquire(): CircuitPermit {
    const state = this.#state === "closed" ? "closed" : this.state;
    if (state === "open") {
      throw new CircuitOpenError(this.target, Math.max(0, this.#openedAt + this.#openMs - this.#now()));
    }
    if (state === "half-open") {
      if (this.#probesOut + this.#probesOk >= this.#halfOpenCalls) throw new CircuitOpenError(this.target, 0);
      this.#probesOut++;
    }
    return { startedAt: this.#now(), epoch: this.#epoch };
  }

  /** Hands back a permit from {@linkcode CircuitBreaker.acquire} with how its call went. */
  record(permit: CircuitPermit, outcome: CallOutcome): void {
    if (permit.epoch !== this.#epoch) return;
    const now = this.#now();
    if (this.#state === "half-open") {
      this.#probesOut--;
      if (outcome === "ignore") return;
      if (outcome === "failure" || now - permit.startedAt >= this.#slowMs) return this.#open(now);
      if (++this.#probesOk >= this.#halfOpenCalls) this.#transition("closed");
      return;
    }
    if (this.#state !== "closed" || outcome === "ignore") return;
    const w = this.#window;
    w.add(CALLS, 1, now);
    if (outcome === "failure") w.add(FAILURES, 1, now);
    if (now - permit.startedAt >= this.#slowMs) w.add(SLOW, 1, now);
    const calls = w.total(CALLS, now);
    if (calls < this.#minimumCalls) return;
    if (w.total(FAILURES, now) >= this.#failureRate * calls || w.total(SLOW, now) >= this.#slowRate * calls) {
      this.#open(now);
    }
  }

  /**
   * Runs `fn` under the breaker: refuses it with {@linkcode CircuitOpenError} when open, else records its outcome, a
   * rejection counting as a failure when `isFailure` says so.
   */
  async run<T>(fn: () => Promise<T>, isFailure: (error: unknown) => boolean = () => true): Promise<T> {
    const permit = this.acquire();
    try {
      const value = await fn();
      this.record(permit, "success");
      return value;
    } catch (err) {
      this.record(permit, isFailure(err) ? "failure" : "success");
      throw err;
    }
  }

  #open(now: number): void {
    this.#openedAt = now;
    this.#transition("open");
  }

  #transition(to: CircuitState): void {
    const from = this.#state;
    this.#state = to;
    this.#epoch++;
    this.#probesOut = 0;
    this.#probesOk = 0;
    this.#window.clear();
    this.#onStateChange?.({ target: this.target, from, to, at: this.#now() });
  }
}

function rate(name: string, value: number): number {
  if (!(value > 0 && value <= 1)) {
    throw new RangeError(`Cannot use ${name} as a rate in (0, 1]: current value is ${value}`);
  }
  return value;
}

function count(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Cannot use ${name} as a count: current value is ${value}`);
  }
  return value;
}
