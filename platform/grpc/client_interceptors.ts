import type { RetryOptions } from "../async/mod.ts";
import { ContextHeaders, contextHeaders, currentContext } from "../context/mod.ts";
import { GrpcError, status } from "./errors.ts";
import type { ClientInterceptor } from "./interceptor.ts";
import { abortError } from "./_abort.ts";
import { type Outcome, type ResiliencePolicy, resiliencePolicy, type Verdict } from "../resilience/mod.ts";

/**
 * Options for {@linkcode callContext}.
 *
 * @example Give calls made outside any context 2 s
 * ```ts
 * import { callContext, type CallContextOptions } from "./mod.ts";
 * const options: CallContextOptions = { timeoutMs: 2_000 };
 * const interceptor = callContext(options);
 * ```
 */
export interface CallContextOptions {
  /** Deadline of a call made outside any context or with more budget than this, unless its options set `timeoutMs`. @default {10_000} */
  timeoutMs?: number;
}

/**
 * Carries the current context into the call: its deadline becomes the earlier of `timeoutMs` (the call's own, else
 * this default) and the context's remaining budget; its signal aborts with the context's or the call options'
 * signal; its metadata holds the context headers (request id, traceparent, absolute deadline) and the call options'
 * `metadata`. `createGrpcClient` puts it outermost.
 *
 * @example A call's deadline inside a context with 300 ms left
 * ```ts
 * import { Metadata } from "@grpc/grpc-js";
 * import { runWithContext } from "../context/mod.ts";
 * import { callContext } from "./mod.ts";
 *
 * const send = callContext({ timeoutMs: 5_000 })(async (call) => call.deadline);
 * const ctx = { requestId: "r-1", signal: new AbortController().signal, deadline: Date.now() + 300 };
 * const call = { method: "/m", name: "m", request: {}, metadata: new Metadata(), options: {}, deadline: Infinity };
 * const deadline = await runWithContext(ctx, () => send(call)); // ctx.deadline
 * ```
 */
export function callContext(options: CallContextOptions = {}): ClientInterceptor {
  const { timeoutMs: defaultTimeoutMs = 10_000 } = options;
  return (next) =>
    function callContext(call) {
      const ctx = currentContext();
      const timeoutMs = call.options.timeoutMs ?? defaultTimeoutMs;
      const deadline = Math.min(call.deadline, Date.now() + timeoutMs, ctx?.deadline ?? Infinity);
      const signals = [call.signal, ctx?.signal, call.options.signal].filter((s): s is AbortSignal => s !== undefined);
      const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
      const metadata = call.metadata.clone();
      for (const [key, value] of Object.entries({ ...contextHeaders(ctx), ...call.options.metadata })) {
        metadata.set(key, value);
      }
      if (Number.isFinite(deadline)) metadata.set(ContextHeaders.deadline, String(deadline));
      return next({ ...call, metadata, deadline, signal });
    };
}

/**
 * Sends `authorization: Bearer <token>` with each call, the token from `source` (a cached service token source, as
 * {@linkcode serviceTokens} makes). A failing source fails the call with what it threw.
 *
 * @example Send a fixed token
 * ```ts
 * import { bearerToken, createGrpcClient } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 * using orders = createGrpcClient(OrdersServiceService, "127.0.0.1:50051", {
 *   interceptors: [bearerToken(async () => "service-token")],
 * });
 * ```
 */
export function bearerToken(source: () => Promise<string>): ClientInterceptor {
  return (next) =>
    async function bearerToken(call) {
      const metadata = call.metadata.clone();
      metadata.set("authorization", `Bearer ${await source()}`);
      return await next({ ...call, metadata });
    };
}

/**
 * Forwards the end user's own token (`currentContext().principal.token`, set by HTTP `authenticate`) as
 * `x-end-user-token` beside the service token, so the callee can authorize on the user too (see
 * {@linkcode serviceTokenAuthorizer}). Calls made without an authenticated principal send none.
 *
 * @example A gateway's client to a service that acts for end users
 * ```ts
 * import { createGrpcClient, endUserToken } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 * using orders = createGrpcClient(OrdersServiceService, "127.0.0.1:50051", { interceptors: [endUserToken()] });
 * ```
 */
export function endUserToken(): ClientInterceptor {
  return (next) =>
    function endUserToken(call) {
      const token = currentContext()?.principal?.token;
      if (token === undefined) return next(call);
      const metadata = call.metadata.clone();
      metadata.set(ContextHeaders.endUserToken, token);
      return next({ ...call, metadata });
    };
}

/** Codes saying the server answered as designed (the request was refused), so the target is healthy. */
const ANSWERED = new Set<status>([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.PERMISSION_DENIED,
  status.FAILED_PRECONDITION,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.UNAUTHENTICATED,
]);

/** How a call went for the policy: `UNAVAILABLE` is retried, other server failures count against the breaker. */
function judge(outcome: Outcome<unknown>): Verdict {
  if (outcome.ok) return "success";
  const err = outcome.error;
  if (!(err instanceof GrpcError)) return "failure";
  if (err.code === status.UNAVAILABLE) return "retry";
  if (err.code === status.RESOURCE_EXHAUSTED) return "throttled";
  if (err.code === status.CANCELLED) return "ignore";
  return ANSWERED.has(err.code) ? "success" : "failure";
}

/**
 * Options for {@linkcode retryCalls}: the methods safe to retry, and either a {@linkcode RetryOptions} policy or a
 * whole `ResiliencePolicy` (retries, retry budget, circuit breaker).
 *
 * @example Retry getOrder up to 4 times, backing off from 20 ms to at most 500 ms
 * ```ts
 * import { retryCalls, type RetryCallsOptions } from "./mod.ts";
 * const options: RetryCallsOptions = { idempotent: ["getOrder"], maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 500 };
 * const interceptor = retryCalls(options);
 * ```
 */
export interface RetryCallsOptions extends RetryOptions {
  /** Methods (names in the definition) safe to retry, unless a call's options say otherwise. @default {[]} */
  idempotent?: readonly string[];
  /** The resilience policy calls run under, instead of the `RetryOptions` fields. @default {resiliencePolicy({ retry: { maxAttempts, baseDelayMs, maxDelayMs } })} */
  policy?: ResiliencePolicy;
}

/**
 * Runs each call under a resilience policy: the breaker (if any) is asked before every attempt and counts its
 * outcome (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `INTERNAL`, `UNKNOWN`, ... are failures; refusals such as `NOT_FOUND`
 * are the server working), and idempotent calls that fail with `UNAVAILABLE` or `RESOURCE_EXHAUSTED` are retried with
 * full-jitter exponential backoff while the retry budget (if any) allows, never past the call's deadline and stopping
 * when its signal aborts. A call is idempotent when its options say `idempotent: true`, or say nothing and its method
 * is listed in `idempotent`. While the circuit is open calls reject with `CircuitOpenError` (which a server's
 * `recoverErrors` answers `UNAVAILABLE`, and HTTP's `errorResponse` 503) without reaching the network.
 *
 * @example Retry reads up to 5 times
 * ```ts
 * import { createGrpcClient, retryCalls } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 * using orders = createGrpcClient(OrdersServiceService, "127.0.0.1:50051", {
 *   interceptors: [retryCalls({ idempotent: ["getOrder"], maxAttempts: 5 })],
 * });
 * ```
 */
export function retryCalls(options: RetryCallsOptions = {}): ClientInterceptor {
  const { maxAttempts = 3, baseDelayMs = 50, maxDelayMs = 1_000 } = options;
  if (!(maxAttempts >= 1)) {
    throw new RangeError(`Cannot use retry.maxAttempts as attempts: current value is ${maxAttempts}`);
  }
  const policy = options.policy ?? resiliencePolicy({ retry: { maxAttempts, baseDelayMs, maxDelayMs } });
  const idempotent = new Set(options.idempotent ?? []);
  return (next) =>
    async function retryCalls(call) {
      const { signal } = call;
      try {
        return await policy.execute(
          (attemptSignal) => next(attemptSignal === signal ? call : { ...call, signal: attemptSignal }),
          {
            retryable: call.options.idempotent ?? idempotent.has(call.name),
            deadline: call.deadline,
            signal,
            judge,
          },
        );
      } catch (err) {
        // A backoff cut short by the call's signal.
        if (signal?.aborted && err === signal.reason) throw abortError(signal);
        throw err;
      }
    };
}
