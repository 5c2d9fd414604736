import type { RetryOptions } from "../async/mod.ts";
import { readUpTo } from "./_bytes.ts";
import { ContextHeaders, contextHeaders, currentContext } from "../context/mod.ts";
import { tracingEnabled } from "../telemetry/mod.ts";
import type { Problem } from "./problem.ts";
import {
  CircuitOpenError,
  type Outcome,
  type ResiliencePolicy,
  resiliencePolicy,
  type Verdict,
} from "../resilience/mod.ts";

/**
 * Options for {@linkcode createHttpClient}.
 *
 * @example A client with a test double for fetch
 * ```ts
 * import { createHttpClient, type HttpClientOptions } from "./client.ts";
 * const options: HttpClientOptions = {
 *   baseUrl: "http://inventory.internal",
 *   timeoutMs: 2_000,
 *   retry: { maxAttempts: 2 },
 *   fetch: () => Promise.resolve(Response.json({ sku: "kettle", available: 3 })),
 * };
 * await createHttpClient(options).requestJson("GET", "/v1/stock/kettle"); // { sku: "kettle", available: 3 }
 * ```
 */
export interface HttpClientOptions {
  /** Origin (and optional base path) every request path is appended to, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Source of a bearer token sent as `authorization: Bearer <token>`. @default {undefined} (none sent) */
  token?: () => Promise<string>;
  /** Budget of a call, retries included, when the context has more or none; the earlier of the two wins. @default {5000} */
  timeoutMs?: number;
  /** Retry policy for idempotent requests; give it or `policy`, not both. @default {{ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 1000 }} */
  retry?: RetryOptions;
  /**
   * The resilience policy every call runs under: its retries (instead of `retry`), its retry budget, and its circuit
   * breaker around each attempt (a 5xx other than 429 and a connection failure count as failures). While the circuit
   * is open, calls reject with {@linkcode UnavailableError} caused by a `CircuitOpenError`, sending nothing.
   * @default {resiliencePolicy({ retry })}
   */
  policy?: ResiliencePolicy;
  /** The `fetch` to send with (a test double, or one bound to a custom `Deno.HttpClient`). @default {globalThis.fetch} */
  fetch?: typeof fetch;
}

/**
 * Options of one call.
 *
 * @example A POST that is safe to retry
 * ```ts
 * import type { HttpRequestOptions } from "./client.ts";
 * const options: HttpRequestOptions = {
 *   body: "{}",
 *   headers: { "content-type": "application/json", "idempotency-key": "order-o-1" },
 *   idempotent: true,
 *   timeoutMs: 1_000,
 * };
 * ```
 */
export interface HttpRequestOptions {
  /** Request body. A `ReadableStream` body can be sent only once, so it turns retries off. @default {undefined} */
  body?: BodyInit | null;
  /** Extra headers; they win over the propagated context headers. @default {{}} */
  headers?: HeadersInit;
  /** Cancels the call, retries and backoff included; the call rejects with this signal's reason. @default {undefined} */
  signal?: AbortSignal;
  /** Budget of this call, capped by the context's remaining budget. @default {the client's timeoutMs} */
  timeoutMs?: number;
  /** Whether the call may be retried. @default {true for GET, HEAD, PUT, DELETE and OPTIONS} */
  idempotent?: boolean;
}

/**
 * Options of a {@linkcode HttpClient.requestJson} call.
 *
 * @example Send a JSON body
 * ```ts
 * import type { HttpJsonRequestOptions } from "./client.ts";
 * const options: HttpJsonRequestOptions = {
 *   json: { sku: "kettle", quantity: 1 },
 *   headers: { "idempotency-key": "r-1" },
 * };
 * ```
 */
export interface HttpJsonRequestOptions extends Omit<HttpRequestOptions, "body"> {
  /** Value sent as an `application/json` body. @default {undefined} (no body) */
  json?: unknown;
}

/**
 * A service-to-service HTTP client made by {@linkcode createHttpClient}.
 *
 * @example Read a 404 without an exception
 * ```ts
 * import { createHttpClient, type HttpClient } from "./client.ts";
 * const client: HttpClient = createHttpClient({
 *   baseUrl: "http://orders.internal",
 *   fetch: () => Promise.resolve(new Response(null, { status: 404 })),
 * });
 * const res = await client.request("GET", "/v1/orders/o-404");
 * res.status; // 404: 4xx responses are the caller's to read
 * ```
 */
export interface HttpClient {
  /**
   * Sends `method path`, retrying idempotent calls on retryable failures, and resolves with the final response when
   * its status is below 500 (4xx responses are the caller's to read). Rejects with {@linkcode TimeoutError},
   * {@linkcode UnavailableError} or {@linkcode UpstreamError}, or with the caller's `signal` reason.
   */
  request(method: string, path: string, options?: HttpRequestOptions): Promise<Response>;
  /**
   * Like `request`, with a JSON body in and out: resolves with the decoded 2xx body (`undefined` when empty) and
   * rejects with {@linkcode HttpStatusError}, carrying the problem body, for any other status.
   */
  requestJson<T = unknown>(method: string, path: string, options?: HttpJsonRequestOptions): Promise<T>;
}

/**
 * Base of the failures the HTTP client rejects with. Catch a subclass to act on one kind of failure.
 *
 * @example
 * ```ts
 * import { HttpClientError } from "./client.ts";
 * const err = new HttpClientError("GET http://x/ failed", { method: "GET", url: "http://x/", attempts: 1 });
 * ```
 */
export class HttpClientError extends Error {
  /** Method of the failed call. */
  readonly method: string;
  /** Full URL of the failed call. */
  readonly url: string;
  /** Attempts made, 0 when the budget was spent before the first one. */
  readonly attempts: number;

  /** Creates an error for the call `method url` after `attempts` attempts. */
  constructor(message: string, call: { method: string; url: string; attempts: number }, options?: ErrorOptions) {
    super(message, options);
    this.name = "HttpClientError";
    this.method = call.method;
    this.url = call.url;
    this.attempts = call.attempts;
  }
}

/**
 * The call's deadline (its own `timeoutMs` or the context's, whichever came first) passed before a response arrived.
 * Not retried: the budget is spent.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "./client.ts";
 * const err = new TimeoutError("deadline exceeded", { method: "GET", url: "http://x/", attempts: 1 });
 * ```
 */
export class TimeoutError extends HttpClientError {
  /** Creates a deadline-exceeded error. */
  constructor(message: string, call: { method: string; url: string; attempts: number }, options?: ErrorOptions) {
    super(message, call, options);
    this.name = "TimeoutError";
  }
}

/**
 * The service could not be reached (connection refused or reset) or answered 503, after every allowed attempt.
 *
 * @example
 * ```ts
 * import { UnavailableError } from "./client.ts";
 * const err = new UnavailableError("connection refused", { method: "GET", url: "http://x/", attempts: 3 });
 * ```
 */
export class UnavailableError extends HttpClientError {
  /** The last status, when the service answered (503); `undefined` when it could not be reached. */
  readonly status?: number;

  /** Creates an unavailable error, with the status the service last answered with when it did. */
  constructor(
    message: string,
    call: { method: string; url: string; attempts: number; status?: number },
    options?: ErrorOptions,
  ) {
    super(message, call, options);
    this.name = "UnavailableError";
    this.status = call.status;
  }
}

/**
 * The service answered with a 5xx other than 503 (after retries for 502 and 504 on idempotent calls).
 *
 * @example
 * ```ts
 * import { UpstreamError } from "./client.ts";
 * const err = new UpstreamError("upstream answered 500", { method: "GET", url: "http://x/", attempts: 1, status: 500 });
 * err.status; // 500
 * ```
 */
export class UpstreamError extends HttpClientError {
  /** The HTTP status the service answered with. */
  readonly status: number;
  /** The problem+json body it sent, when it sent one. */
  readonly problem?: Problem;

  /** Creates an error for the upstream `status`, with its problem body when there was one. */
  constructor(
    message: string,
    call: { method: string; url: string; attempts: number; status: number; problem?: Problem },
    options?: ErrorOptions,
  ) {
    super(message, call, options);
    this.name = "UpstreamError";
    this.status = call.status;
    this.problem = call.problem;
  }
}

/**
 * A {@linkcode HttpClient.requestJson} call got a non-2xx status below 500; `problem` is the RFC 9457 body when the
 * service sent one.
 *
 * @example
 * ```ts
 * import { HttpStatusError } from "./client.ts";
 * const err = new HttpStatusError("GET http://x/ answered 404", {
 *   method: "GET", url: "http://x/", attempts: 1, status: 404, headers: new Headers(),
 * });
 * ```
 */
export class HttpStatusError extends HttpClientError {
  /** The HTTP status. */
  readonly status: number;
  /** The response headers (`retry-after`, `www-authenticate`, ...). */
  readonly headers: Headers;
  /** The problem+json body, when the service sent one. */
  readonly problem?: Problem;

  /** Creates an error for a response with `status`. */
  constructor(
    message: string,
    call: { method: string; url: string; attempts: number; status: number; headers: Headers; problem?: Problem },
    options?: ErrorOptions,
  ) {
    super(message, call, options);
    this.name = "HttpStatusError";
    this.status = call.status;
    this.headers = call.headers;
    this.problem = call.problem;
  }
}

const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Largest error body read for its problem details; the rest is discarded. */
const MAX_PROBLEM_BYTES = 64 * 1024;

/**
 * Creates a service-to-service HTTP client on `fetch`. Every call carries the current context (request id,
 * traceparent, and its own absolute deadline as `x-deadline-ms`) and a bearer token from `token`. Its deadline is
 * the earlier of `timeoutMs` and the context's remaining budget; it covers every attempt and backoff, and until the
 * response headers arrive a passing deadline aborts the fetch (the body stays bound to the context's and the
 * caller's signals). Idempotent calls are retried on connection failures and on 429/502/503/504 with exponential
 * backoff and full jitter, or after the `Retry-After` the service asked for, never past the deadline. Bodies of
 * responses that are retried or turned into errors are cancelled. The retries are those of `policy` (a
 * `ResiliencePolicy`), which may also hold a retry budget that caps them and a circuit breaker asked before every
 * attempt.
 *
 * @example Call the notifications service with a service token
 * ```ts
 * import { createHttpClient, UnavailableError } from "./client.ts";
 *
 * const notifications = createHttpClient({
 *   baseUrl: "http://127.0.0.1:1",
 *   token: async () => "service-token",
 *   timeoutMs: 200,
 *   retry: { maxAttempts: 2 },
 * });
 * try {
 *   const res = await notifications.request("GET", "/receipts/o-1");
 *   await res.body?.cancel();
 * } catch (err) {
 *   if (!(err instanceof UnavailableError)) throw err;
 * }
 * ```
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const { token, timeoutMs: defaultTimeoutMs = 5_000 } = options;
  if (options.policy && options.retry) {
    throw new TypeError(`Cannot use retry beside policy: current value is ${JSON.stringify(options.retry)}`);
  }
  const { maxAttempts = 3, baseDelayMs = 50, maxDelayMs = 1_000 } = options.retry ?? {};
  const policy = options.policy ?? resiliencePolicy({ retry: { maxAttempts, baseDelayMs, maxDelayMs } });
  const send = options.fetch ?? fetch;
  let base: URL;
  try {
    base = new URL(options.baseUrl);
  } catch {
    throw new TypeError(`Cannot use baseUrl as a URL: current value is ${JSON.stringify(options.baseUrl)}`);
  }
  const prefix = base.href.replace(/\/+$/, "");
  checkTimeout(defaultTimeoutMs);

  async function exchange(
    method: string,
    path: string,
    callOptions: HttpRequestOptions,
  ): Promise<{ res: Response; method: string; url: string; attempts: number }> {
    method = method.toUpperCase();
    const url = prefix + (path.startsWith("/") ? path : `/${path}`);
    const ctx = currentContext();
    const timeoutMs = checkTimeout(callOptions.timeoutMs ?? defaultTimeoutMs);
    const deadline = Math.min(Date.now() + timeoutMs, ctx?.deadline ?? Infinity);
    const retryable = (callOptions.idempotent ?? IDEMPOTENT_METHODS.has(method)) &&
      !(callOptions.body instanceof ReadableStream);
    let attempts = 0;
    const call = () => ({ method, url, attempts });

    const timer = new AbortController();
    const signals = [ctx?.signal, callOptions.signal, timer.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal = AbortSignal.any(signals);
    let timeout: ReturnType<typeof setTimeout> | undefined;
    const aborted = (cause?: unknown): Error => {
      // The caller's own cancellation is theirs to recognise; a passed deadline, ours or the context's, is typed.
      if (callOptions.signal?.aborted) return callOptions.signal.reason;
      const reason = signal.reason;
      if (reason instanceof DOMException && reason.name === "TimeoutError") {
        return new TimeoutError(`${method} ${url}: deadline exceeded`, call(), { cause: cause ?? reason });
      }
      return reason instanceof Error ? reason : new Error(String(reason));
    };

    try {
      const headers = new Headers(contextHeaders(ctx));
      // Deno's fetch span adds its own traceparent (appending to one already set): leave it that one.
      if (tracingEnabled) headers.delete(ContextHeaders.traceparent);
      if (Number.isFinite(deadline)) headers.set(ContextHeaders.deadline, String(deadline));
      new Headers(callOptions.headers).forEach((value, name) => headers.set(name, value));
      if (token && !headers.has("authorization")) headers.set("authorization", `Bearer ${await token()}`);
      if (Number.isFinite(deadline)) {
        timeout = setTimeout(
          () => timer.abort(new DOMException("deadline exceeded", "TimeoutError")),
          Math.min(MAX_TIMER_MS, Math.max(0, deadline - Date.now())),
        );
      }

      let sent = false;
      const attempt = async (_signal: AbortSignal | undefined, n: number): Promise<Response> => {
        sent = false;
        if (signal.aborted) throw aborted();
        if (Date.now() >= deadline) {
          throw new TimeoutError(`${method} ${url}: deadline exceeded before attempt ${n}`, call());
        }
        attempts = n;
        sent = true;
        try {
          return await send(url, { method, headers, body: callOptions.body, signal });
        } catch (err) {
          if (signal.aborted) throw aborted(err);
          throw new UnavailableError(`${method} ${url}: ${describe(err)}`, call(), { cause: err });
        }
      };
      let res: Response;
      try {
        res = await policy.execute(attempt, {
          retryable,
          deadline,
          signal,
          judge: (outcome) => judge(outcome, sent),
          retryAfterMs: (outcome) => outcome.ok ? retryAfterMs(outcome.value.headers.get("retry-after")) : undefined,
          discard: (res) => res.body?.cancel(),
        });
      } catch (err) {
        if (err instanceof CircuitOpenError) {
          throw new UnavailableError(`${method} ${url}: ${err.message}`, call(), { cause: err });
        }
        // A backoff cut short by a cancellation or a passed deadline.
        if (signal.aborted && !(err instanceof HttpClientError) && err !== callOptions.signal?.reason) {
          throw aborted(err);
        }
        throw err;
      }
      // Out of attempts, or the wait would pass the deadline: the last answer stands.
      if (res.status < 500 || res.status === 429) return { res, ...call() };
      const problem = await readProblem(res);
      if (res.status === 503) {
        throw new UnavailableError(`${method} ${url}: service unavailable (503)`, { ...call(), status: 503 });
      }
      throw new UpstreamError(`${method} ${url}: upstream answered ${res.status}`, {
        ...call(),
        status: res.status,
        problem,
      });
    } finally {
      clearTimeout(timeout);
    }
  }

  async function request(method: string, path: string, callOptions: HttpRequestOptions = {}): Promise<Response> {
    return (await exchange(method, path, callOptions)).res;
  }

  async function requestJson<T>(method: string, path: string, callOptions: HttpJsonRequestOptions = {}): Promise<T> {
    const { json, ...rest } = callOptions;
    const headers = new Headers(rest.headers);
    if (!headers.has("accept")) headers.set("accept", "application/json, application/problem+json");
    let body: string | undefined;
    if (json !== undefined) {
      body = JSON.stringify(json);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
    }
    const { res, ...call } = await exchange(method, path, { ...rest, headers, body });
    if (!res.ok) {
      const problem = await readProblem(res);
      throw new HttpStatusError(`${call.method} ${call.url} answered ${res.status}`, {
        ...call,
        status: res.status,
        headers: res.headers,
        problem,
      });
    }
    const text = await res.text();
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  return { request, requestJson };
}

/** How an attempt went for the policy: `sent` says whether the request left (a deadline before it blames no one). */
function judge(outcome: Outcome<Response>, sent: boolean): Verdict {
  if (outcome.ok) {
    const { status } = outcome.value;
    if (status === 429) return "throttled";
    if (status < 500) return "success";
    return RETRYABLE_STATUS.has(status) ? "retry" : "failure";
  }
  if (outcome.error instanceof UnavailableError) return "retry";
  if (outcome.error instanceof TimeoutError) return sent ? "failure" : "ignore";
  return "ignore";
}

function checkTimeout(ms: number): number {
  if (!(ms > 0)) throw new RangeError(`Cannot use timeoutMs as a budget: current value is ${ms}`);
  return ms;
}

/**
 * A `Retry-After` value in milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3); `undefined` when absent
 * or unreadable, so the usual backoff applies.
 *
 * @example
 * ```ts
 * import { retryAfterMs } from "./client.ts";
 * retryAfterMs("2"); // 2000
 * ```
 */
export function retryAfterMs(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Reads a problem+json (or JSON) error body, at most 64 KiB of it, and discards the rest. */
async function readProblem(res: Response): Promise<Problem | undefined> {
  if (!res.body) return undefined;
  const type = (res.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/problem+json" && type !== "application/json") {
    await res.body.cancel();
    return undefined;
  }
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readUpTo(res.body, MAX_PROBLEM_BYTES);
  } catch {
    return undefined;
  }
  if (!bytes) return undefined;
  try {
    const body = JSON.parse(new TextDecoder().decode(bytes));
    return typeof body === "object" && body !== null && !Array.isArray(body) ? body as Problem : undefined;
  } catch {
    return undefined;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
