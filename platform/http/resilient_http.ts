import { currentContext } from "../context/mod.ts";
import type { Outcome, ResiliencePolicy, Verdict } from "../resilience/mod.ts";
import { retryAfterMs } from "./client.ts";
import type { Handler, Middleware } from "./handler.ts";

/** Methods a retry cannot apply twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

/**
 * Options for {@linkcode resilientHttp}.
 *
 * @example Retry a POST that carries an idempotency key
 * ```ts
 * import type { ResilientHttpOptions } from "./resilient_http.ts";
 * const options: ResilientHttpOptions = { retryable: (req) => req.headers.has("idempotency-key") };
 * ```
 */
export interface ResilientHttpOptions {
  /**
   * Whether a request may be sent more than once.
   * @default {(req) => an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE)}
   */
  retryable?: (req: Request) => boolean;
}

/**
 * HTTP middleware running each outgoing request under `policy`: the target's circuit breaker is asked first (an open
 * circuit rejects at once with `CircuitOpenError`, which the edge answers 503 with `Retry-After`), a network error or
 * a 502/503/504 is retried with backoff (or the `Retry-After` the target sent) while the retry budget allows and the
 * context's deadline leaves time, a 429 is retried without counting against the breaker, and every attempt's outcome
 * is counted by the breaker. It wraps the `fetch`-shaped {@linkcode Handler} of a client (see {@linkcode fetchOf}), so
 * code that takes a `fetch` option (the JWKS and service-token fetchers of `platform/auth`) gets the same policy as
 * `createHttpClient({ policy })`. Each attempt sends a clone of the request, so a body can be sent again.
 *
 * @example The auth service's token endpoint behind a breaker
 * ```ts
 * import { CircuitBreaker, resiliencePolicy } from "../resilience/mod.ts";
 * import { fetchOf, resilientHttp } from "./resilient_http.ts";
 * const policy = resiliencePolicy({ breaker: new CircuitBreaker("auth") });
 * const guardedFetch = fetchOf(resilientHttp(policy)((req) => fetch(req)));
 * console.log(typeof guardedFetch); // "function": pass it as the `fetch` option of serviceTokenSource()
 * ```
 */
export function resilientHttp(policy: ResiliencePolicy, options: ResilientHttpOptions = {}): Middleware {
  const retryable = options.retryable ?? ((req: Request) => IDEMPOTENT.has(req.method));
  return (next) =>
    function resilientHttp(req) {
      const ctx = currentContext();
      const signal = ctx?.signal && req.signal ? AbortSignal.any([ctx.signal, req.signal]) : ctx?.signal ?? req.signal;
      // Only a request that may be sent again needs a fresh copy (of its body) per attempt.
      const again = retryable(req);
      return policy.execute(
        (attemptSignal) =>
          next(new Request(again ? req.clone() : req, attemptSignal ? { signal: attemptSignal } : undefined)),
        {
          retryable: again,
          deadline: ctx?.deadline,
          signal,
          judge,
          retryAfterMs: (o) => o.ok ? retryAfterMs(o.value.headers.get("retry-after")) : undefined,
          discard: (res) => res.body?.cancel(),
        },
      );
    };
}

/**
 * A `fetch` function that sends through `handler` (a client-side {@linkcode Handler} chain, e.g. one built with
 * {@linkcode resilientHttp}), for APIs that take a `fetch` option.
 *
 * @example Count the requests a fetch-taking API makes
 * ```ts
 * import { fetchOf } from "./resilient_http.ts";
 * let sent = 0;
 * const counting = fetchOf((req) => {
 *   sent++;
 *   return Promise.resolve(new Response(`you asked for ${new URL(req.url).pathname}`));
 * });
 * console.log(await (await counting("http://example.test/jwks")).text(), sent);
 * ```
 */
export function fetchOf(handler: Handler): typeof fetch {
  return (input, init) => handler(new Request(input, init));
}

function judge(outcome: Outcome<Response>): Verdict {
  if (outcome.ok) {
    const { status } = outcome.value;
    if (status === 429) return "throttled";
    if (status === 502 || status === 503 || status === 504) return "retry";
    return status >= 500 ? "failure" : "success";
  }
  const name = (outcome.error as Error | null)?.name;
  if (name === "TimeoutError") return "failure";
  if (name === "AbortError") return "ignore";
  // fetch rejects with a TypeError when the connection fails: the target is unreachable.
  return "retry";
}
