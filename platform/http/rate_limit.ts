import { currentContext } from "../context/mod.ts";
import { editHeaders } from "./_headers.ts";
import type { Middleware } from "./handler.ts";
import { problemResponse } from "./problem.ts";

/**
 * What a {@linkcode RateLimitStore} decided for one request.
 *
 * @example Answer a refused request
 * ```ts
 * import type { RateLimitDecision } from "./rate_limit.ts";
 * const decision: RateLimitDecision = { allowed: false, remaining: 0, retryAfterMs: 1_500 };
 * const retryAfterSec = Math.ceil(decision.retryAfterMs / 1000); // 2
 * ```
 */
export interface RateLimitDecision {
  /** Whether the request may proceed (a token was taken). */
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** When refused, milliseconds until a token is available; 0 when allowed. */
  retryAfterMs: number;
}

/**
 * Token buckets by key. Contract: `take` refills the key's bucket for the time since its last call (at most to
 * `capacity`; a key never seen starts full), then takes one token if there is a whole one. `now` is epoch or
 * monotonic milliseconds, the same clock on every call. A store may forget a bucket only when forgetting cannot
 * let a client exceed the limit (a full bucket), or under memory pressure, which it documents.
 *
 * @example A store that never refuses, for load tests
 * ```ts
 * import { rateLimit, type RateLimitStore } from "./rate_limit.ts";
 * const unlimited: RateLimitStore = {
 *   take: (_key, _now, capacity) => ({ allowed: true, remaining: capacity, retryAfterMs: 0 }),
 * };
 * const middleware = rateLimit({ key: () => "all", capacity: 10, refillPerSec: 1, store: unlimited });
 * ```
 */
export interface RateLimitStore {
  /** Takes one token from `key`'s bucket, if there is one. */
  take(
    key: string,
    now: number,
    capacity: number,
    refillPerSec: number,
  ): RateLimitDecision | Promise<RateLimitDecision>;
}

/**
 * Options for {@linkcode MemoryRateLimitStore}.
 *
 * @example A bigger store, swept every ten seconds
 * ```ts
 * import { MemoryRateLimitStore, type MemoryRateLimitStoreOptions } from "./rate_limit.ts";
 * const options: MemoryRateLimitStoreOptions = { maxKeys: 100_000, sweepEveryMs: 10_000 };
 * const store = new MemoryRateLimitStore(options);
 * store.take("client-1", 0, 5, 1).allowed; // true
 * ```
 */
export interface MemoryRateLimitStoreOptions {
  /**
   * Most keys held. When a new key arrives at the cap, the least recently used bucket is dropped; if it was not yet
   * full, its client starts again with a full bucket, so under a flood of new keys a limit is best effort.
   *
   * @example
   * ```ts
   * import { MemoryRateLimitStore } from "./rate_limit.ts";
   * new MemoryRateLimitStore({ maxKeys: 100_000 });
   * ```
   * @default {10000}
   */
  maxKeys?: number;
  /**
   * How often, at most, to drop buckets that have refilled (idle clients), in milliseconds of the `now` passed to
   * `take`.
   *
   * @example
   * ```ts
   * import { MemoryRateLimitStore } from "./rate_limit.ts";
   * new MemoryRateLimitStore({ sweepEveryMs: 10_000 });
   * ```
   * @default {60000}
   */
  sweepEveryMs?: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * An in-process {@linkcode RateLimitStore} with bounded memory: idle buckets that have refilled are dropped (a
 * full bucket is the same as no bucket) by a sweep at most every `sweepEveryMs`, and at most `maxKeys` are held.
 * Each process limits on its own. Use one store per limiter: the sweep judges fullness by the capacity and rate of
 * the call that triggers it.
 *
 * @example
 * ```ts
 * import { MemoryRateLimitStore } from "./rate_limit.ts";
 * const store = new MemoryRateLimitStore({ maxKeys: 2 });
 * store.take("client-1", 0, 5, 1); // { allowed: true, remaining: 4, retryAfterMs: 0 }
 * ```
 */
export class MemoryRateLimitStore implements RateLimitStore {
  readonly #maxKeys: number;
  readonly #sweepEveryMs: number;
  // Map order is least recently used first: take() moves a key to the end.
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep: number | undefined;

  constructor(options: MemoryRateLimitStoreOptions = {}) {
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#sweepEveryMs = options.sweepEveryMs ?? 60_000;
    if (!Number.isSafeInteger(this.#maxKeys) || this.#maxKeys < 1) {
      throw new RangeError(`Cannot hold rate limit buckets for maxKeys: current value is ${this.#maxKeys}`);
    }
    if (!(this.#sweepEveryMs >= 0)) {
      throw new RangeError(`Cannot sweep idle buckets every sweepEveryMs: current value is ${this.#sweepEveryMs}`);
    }
  }

  /** Number of buckets held. */
  get size(): number {
    return this.#buckets.size;
  }

  take(key: string, now: number, capacity: number, refillPerSec: number): RateLimitDecision {
    this.#lastSweep ??= now;
    if (now - this.#lastSweep >= this.#sweepEveryMs) this.#sweep(now, capacity, refillPerSec);
    let bucket = this.#buckets.get(key);
    if (bucket) {
      this.#buckets.delete(key);
      bucket.tokens = Math.min(capacity, bucket.tokens + Math.max(0, now - bucket.last) * refillPerSec / 1000);
      bucket.last = now;
    } else {
      // O(1) under a flood of new keys: the least recently used bucket goes, likely an idle and so full one.
      if (this.#buckets.size >= this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value as string);
      bucket = { tokens: capacity, last: now };
    }
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens), retryAfterMs: 0 };
    }
    return { allowed: false, remaining: 0, retryAfterMs: Math.ceil((1 - bucket.tokens) * 1000 / refillPerSec) };
  }

  #sweep(now: number, capacity: number, refillPerSec: number): void {
    this.#lastSweep = now;
    for (const [key, b] of this.#buckets) {
      if (b.tokens + (now - b.last) * refillPerSec / 1000 >= capacity) this.#buckets.delete(key);
    }
  }
}

/**
 * Options for {@linkcode rateLimit}.
 *
 * @example Five requests a second per client, bursts of ten
 * ```ts
 * import { principalKey, rateLimit, type RateLimitOptions } from "./rate_limit.ts";
 * const options: RateLimitOptions = { key: principalKey(), capacity: 10, refillPerSec: 5 };
 * const middleware = rateLimit(options);
 * ```
 */
export interface RateLimitOptions {
  /**
   * The bucket a request counts against, or `undefined` to let it through unlimited. {@linkcode principalKey}
   * covers the usual case: the authenticated client, else an address the caller knows how to find.
   *
   * @example One bucket per API key header
   * ```ts
   * import { rateLimit } from "./rate_limit.ts";
   * rateLimit({ key: (req) => req.headers.get("x-api-key") ?? undefined, capacity: 10, refillPerSec: 5 });
   * ```
   */
  key: (req: Request) => string | undefined;
  /**
   * Burst size: tokens a bucket holds when full.
   *
   * @example
   * ```ts
   * import { principalKey, rateLimit } from "./rate_limit.ts";
   * rateLimit({ key: principalKey(), capacity: 20, refillPerSec: 10 });
   * ```
   */
  capacity: number;
  /**
   * Sustained rate: tokens added per second.
   *
   * @example One request per second on average
   * ```ts
   * import { principalKey, rateLimit } from "./rate_limit.ts";
   * rateLimit({ key: principalKey(), capacity: 5, refillPerSec: 1 });
   * ```
   */
  refillPerSec: number;
  /**
   * Where buckets live.
   *
   * @example
   * ```ts
   * import { MemoryRateLimitStore, principalKey, rateLimit } from "./rate_limit.ts";
   * rateLimit({ key: principalKey(), capacity: 5, refillPerSec: 1, store: new MemoryRateLimitStore({ maxKeys: 1000 }) });
   * ```
   * @default {new MemoryRateLimitStore()}
   */
  store?: RateLimitStore;
  /**
   * Clock in milliseconds; tests pass a fake one.
   *
   * @example
   * ```ts
   * import { principalKey, rateLimit } from "./rate_limit.ts";
   * let t = 0;
   * rateLimit({ key: principalKey(), capacity: 5, refillPerSec: 1, now: () => t });
   * ```
   * @default {Date.now}
   */
  now?: () => number;
}

/**
 * A key function for {@linkcode rateLimit}: the authenticated principal (`principal:<sub>` from the current
 * context), else `fallback(req)` (for example the client address, which `Deno.serve` hands to the serve callback,
 * not to the `Request`), else `undefined` (unlimited).
 *
 * @example Limit by client id, else by the remote address captured at the serve callback
 * ```ts
 * import { principalKey } from "./rate_limit.ts";
 * const remote = new WeakMap<Request, string>();
 * const key = principalKey((req) => remote.get(req));
 * ```
 */
export function principalKey(fallback?: (req: Request) => string | undefined): (req: Request) => string | undefined {
  return (req) => {
    const sub = currentContext()?.principal?.sub;
    if (sub !== undefined) return `principal:${sub}`;
    const other = fallback?.(req);
    return other === undefined ? undefined : `addr:${other}`;
  };
}

/**
 * Token-bucket rate limiting per key. Every limited response carries `RateLimit-Limit` and `RateLimit-Remaining`;
 * a request over the limit is answered 429 problem+json with `Retry-After` in whole seconds (rounded up) without
 * calling the handler. Place it after authentication when keying by principal.
 *
 * @example Ten requests of burst, five per second sustained, per client
 * ```ts
 * import { chain } from "./handler.ts";
 * import { principalKey, rateLimit } from "./rate_limit.ts";
 * const h = chain(rateLimit({ key: principalKey(() => "anonymous"), capacity: 10, refillPerSec: 5 }))(
 *   async () => new Response("ok"),
 * );
 * (await h(new Request("http://api/"))).headers.get("ratelimit-remaining"); // "9"
 * ```
 */
export function rateLimit(options: RateLimitOptions): Middleware {
  const { key, capacity, refillPerSec, store = new MemoryRateLimitStore(), now = Date.now } = options;
  if (typeof key !== "function") {
    throw new TypeError(`Cannot rate limit with key as a function: current value is ${typeof key}`);
  }
  if (!Number.isSafeInteger(capacity) || capacity < 1) {
    throw new RangeError(`Cannot rate limit with capacity as a positive integer: current value is ${capacity}`);
  }
  if (!(refillPerSec > 0) || !Number.isFinite(refillPerSec)) {
    throw new RangeError(`Cannot rate limit with refillPerSec as a positive number: current value is ${refillPerSec}`);
  }
  const limit = String(capacity);
  return (next) => {
    const decide = (d: RateLimitDecision, req: Request): Promise<Response> => {
      if (!d.allowed) {
        const retryAfterSec = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
        return Promise.resolve(problemResponse(429, "rate-limited", "Too many requests", {
          detail: `rate limit of ${capacity} requests, refilled at ${refillPerSec}/s, exceeded`,
          extensions: { retryAfterSeconds: retryAfterSec },
          headers: { "retry-after": String(retryAfterSec), "ratelimit-limit": limit, "ratelimit-remaining": "0" },
        }));
      }
      const remaining = String(d.remaining);
      return next(req).then((res) =>
        editHeaders(res, (h) => {
          h.set("ratelimit-limit", limit);
          h.set("ratelimit-remaining", remaining);
        })
      );
    };
    return function rateLimit(req) {
      try {
        const k = key(req);
        if (k === undefined) return next(req);
        const taken = store.take(k, now(), capacity, refillPerSec);
        // The in-memory store answers synchronously; awaiting it anyway would cost a turn of the microtask queue.
        return taken instanceof Promise ? taken.then((d) => decide(d, req)) : decide(taken, req);
      } catch (err) {
        return Promise.reject(err);
      }
    };
  };
}
