import { type Context, type OpenContext, openContext, runWithContext } from "../context/mod.ts";
import { activeTraceparent, tracingEnabled } from "../telemetry/mod.ts";
import { errorResponse, type Handler, HttpError, invoke, knownBodyBytes, pathnameOf } from "../http/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { AccessLineWriter } from "./access_line.ts";
import type { RedCounters } from "./red_counters.ts";

/** Options for {@linkcode fusedStack}. */
export interface FusedStackOptions {
  /** Where handler failures are logged (inside the request context). */
  logger: Logger;
  /** Writes the access line, or `undefined` when the log level leaves it out. */
  accessLine: AccessLineWriter | undefined;
  /** Where each request's outcome is counted. */
  red: RedCounters;
  /** Budget for requests that carry no deadline. @default {10000} */
  defaultBudgetMs?: number;
}

/** `securityHeaders()` with its defaults: the same pairs in the same order (a test holds them equal). */
const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
  ["x-content-type-options", "nosniff"],
  ["referrer-policy", "no-referrer"],
  ["x-frame-options", "DENY"],
  ["content-security-policy", "default-src 'none'; frame-ancestors 'none'"],
];

/**
 * The service's default HTTP stack as one wrapper: what `chain(requestContext(), tracing(), securityHeaders(),
 * recovery(logger), accessLog(logger), redMetrics(registry))` does, with the same headers, problem bodies, log
 * lines and metrics, at about half the cost per request. The layered chain pays, per request and per layer, a promise,
 * closures and its own clock read, reads the same headers several times and parses `traceparent` twice; here there
 * is one clock read at the start (the deadline, access line and histogram all measure from it), one pass over the
 * request headers, one over the response headers, one promise reaction, and the RED counters and access line have
 * their own cheap paths ({@linkcode RedCounters}, `templateAccessLine`). The composable middleware stays for
 * services that want their own order; `fused_stack_test.ts` runs the same expectations against both.
 *
 * `inner` is everything inside: the body limit, the service's own middleware and its handler.
 */
export function fusedStack(options: FusedStackOptions, inner: Handler): Handler {
  const { logger, accessLine, red } = options;
  const defaultBudgetMs = options.defaultBudgetMs ?? 10_000;
  return function fusedStack(req: Request): Promise<Response> {
    return new Exchange(req, inner, logger, accessLine, red, defaultBudgetMs).answered.promise;
  };
}

/**
 * One request through the stack. A class, not a closure per step: its methods are shared, and its fields have one
 * hidden class (see `WorkContext` in platform/context for why that matters to the garbage collector).
 */
class Exchange {
  readonly answered = Promise.withResolvers<Response>();
  readonly #req: Request;
  readonly #logger: Logger;
  readonly #accessLine: AccessLineWriter | undefined;
  readonly #red: RedCounters;
  readonly #start: number;
  readonly #ctx: OpenContext;
  #settled = false;

  constructor(
    req: Request,
    inner: Handler,
    logger: Logger,
    accessLine: AccessLineWriter | undefined,
    red: RedCounters,
    defaultBudgetMs: number,
  ) {
    this.#start = performance.now();
    this.#req = req;
    this.#logger = logger;
    this.#accessLine = accessLine;
    this.#red = red;
    // The request itself is the parent signal's source: its `signal` is read only if the context's is.
    const ctx = openContext(req.headers, { defaultBudgetMs, signal: req, onEnd: this.#timedOut });
    this.#ctx = ctx;
    // As tracing(): the caller's trace (the context keeps a traceparent's trace id only when it is valid, by the same
    // W3C rules as tracing()) or a new one, and a new span for this hop.
    const spanId = randomHex(8, ZERO_SPAN);
    // With tracing on (OTEL_DENO=true), Deno's server span, which already continued the caller's trace, is this hop.
    const active = tracingEnabled ? activeTraceparent() : undefined;
    const incoming = ctx.traceparent;
    if (active) {
      ctx.traceId = active.slice(3, 35);
      ctx.traceparent = active;
    } else if (ctx.traceId !== undefined && incoming !== undefined) {
      ctx.traceparent = `00-${ctx.traceId}-${spanId}-${sampled(incoming) ? "01" : "00"}`;
    } else {
      ctx.traceId = randomHex(16, ZERO_TRACE);
      ctx.traceparent = `00-${ctx.traceId}-${spanId}-01`;
    }
    runWithContext(ctx, start, this, inner, req);
  }

  /** The handler's outcome, reacted to once. */
  settle(pending: Promise<Response>): void {
    pending.then(this.#onResponse, this.#onError);
  }

  readonly #onResponse = (res: Response): void => {
    try {
      this.#outcome(res.status, knownBodyBytes(res));
    } catch (err) {
      return this.#fail(err);
    }
    this.#answer(res);
  };

  /** As recovery() with accessLog() and redMetrics() inside it: they count the thrown status, then it answers. */
  readonly #onError = (err: unknown): void => {
    const isHttp = err instanceof HttpError;
    let res: Response;
    try {
      this.#outcome(isHttp ? err.status : 500, undefined);
      // A downstream timer can fire a moment before the context's own (coarse) deadline timer does: a failure at or
      // past the deadline is the deadline's, whatever the handler threw.
      const deadline = this.#ctx.deadline;
      if (!isHttp && deadline !== undefined && Date.now() >= deadline) res = errorResponse(deadlineExceeded());
      else {
        if (!isHttp) this.#logger.error("handler failed", { err, path: pathnameOf(this.#req) });
        res = errorResponse(err);
      }
    } catch (failure) {
      return this.#fail(failure);
    }
    this.#answer(res);
  };

  /** The stack itself failed (a log sink threw): the server's `onError` answers 500, and the request never hangs. */
  #fail(err: unknown): void {
    this.#ctx.dispose();
    if (this.#settled) return;
    this.#settled = true;
    this.answered.reject(err);
  }

  /** Counts and logs the outcome the handler produced, also for a request whose deadline already answered it. */
  #outcome(status: number, bytes: number | undefined): void {
    const ms = performance.now() - this.#start;
    const ctx = this.#ctx;
    const route = ctx.route ?? "unmatched";
    const method = this.#req.method;
    this.#red.record(method, route, status, ms / 1000);
    this.#accessLine?.(
      ctx.requestId,
      ctx.traceId,
      ctx.traceparent?.slice(36, 52),
      method,
      route,
      status,
      Math.round(ms * 100) / 100,
      bytes,
    );
  }

  #answer(res: Response): void {
    if (this.#settled) {
      this.#ctx.dispose();
      return;
    }
    this.#settled = true;
    this.#ctx.dispose();
    try {
      this.answered.resolve(withHeaders(res, this.#ctx, true));
    } catch (err) {
      this.answered.reject(err);
    }
  }

  /** The deadline passed (or the client went away) before the handler answered: 504, as `requestContext()` does. */
  readonly #timedOut = (): void => {
    if (this.#settled) return;
    this.#settled = true;
    this.#ctx.dispose();
    const ctx = this.#ctx;
    this.answered.resolve(withHeaders(runWithContext(ctx, () => errorResponse(deadlineExceeded())), ctx, false));
  };
}

/**
 * The response headers of the layered stack in one pass: the security headers a handler did not set itself, this
 * hop's `traceparent` and the request id. A response with immutable headers (`Response.redirect()`, a `fetch()`
 * response) is copied first, sharing its body. `full` is false for the deadline's 504, which `requestContext()`
 * answers from outside the other layers.
 */
/** Runs the handler inside the context: a shared function, not a closure per request. */
function start(exchange: Exchange, inner: Handler, req: Request): void {
  exchange.settle(invoke(inner, req));
}

/** The sampled flag of a valid `traceparent` (its flags are the two hex digits at 53). */
function sampled(traceparent: string): boolean {
  return (parseInt(traceparent.slice(53, 55), 16) & 1) === 1;
}

function withHeaders(res: Response, ctx: Context, full: boolean): Response {
  try {
    setHeaders(res.headers, ctx, full);
    return res;
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const copy = new Response(res.body, res);
    setHeaders(copy.headers, ctx, full);
    return copy;
  }
}

function setHeaders(h: Headers, ctx: Context, full: boolean): void {
  if (full) {
    for (const [name, value] of SECURITY_HEADERS) if (!h.has(name)) h.set(name, value);
    h.set("traceparent", ctx.traceparent!);
  }
  h.set("x-request-id", ctx.requestId);
}

function deadlineExceeded(): HttpError {
  return new HttpError(504, "deadline-exceeded", "Deadline exceeded", {
    detail: "the request did not complete within its deadline",
  });
}

const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
// One getRandomValues call per 4 KiB of ids (hundreds of requests) instead of one per id.
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** `bytes` random bytes as lowercase hex, never `invalid` (the all-zero id W3C forbids). */
function randomHex(bytes: number, invalid: string): string {
  let out: string;
  do {
    if (poolAt + bytes > pool.length) {
      crypto.getRandomValues(pool);
      poolAt = 0;
    }
    out = "";
    for (let i = 0; i < bytes; i++) out += HEX[pool[poolAt++]];
  } while (out === invalid);
  return out;
}
