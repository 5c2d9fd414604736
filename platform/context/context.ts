import { AsyncLocalStorage } from "node:async_hooks";
import { DeadlineTimer } from "./deadline_timer.ts";

/**
 * The identity a request acts for, set by authentication middleware.
 *
 * @example What authentication sets for a user token
 * ```ts
 * import type { Principal } from "./context.ts";
 * const principal: Principal = { sub: "u-1", scopes: ["orders:read", "orders:write"] };
 * principal.scopes.includes("orders:write"); // true
 * ```
 */
export interface Principal {
  /** Subject: a user id or a service client id. */
  sub: string;
  /** Granted scopes. */
  scopes: readonly string[];
  /** The raw bearer token, so it can be forwarded where policy allows. */
  token?: string;
  /** Extra verified claims. */
  claims?: Readonly<Record<string, unknown>>;
}

/**
 * Request-scoped data that travels with the work, across `await`s, without globals and without mutating `Request`.
 * HTTP middleware, gRPC handlers and message consumers each open one with {@linkcode runWithContext}.
 *
 * @example A context with a two-second deadline
 * ```ts
 * import { type Context, currentContext, runWithContext } from "./context.ts";
 * const ctx: Context = { requestId: "r-1", signal: AbortSignal.timeout(2_000), deadline: Date.now() + 2_000 };
 * runWithContext(ctx, () => currentContext()?.deadline === ctx.deadline); // true
 * ```
 */
export interface Context {
  /** Correlates log lines and calls across services. */
  requestId: string;
  /** Fires when the work's deadline passes or its caller goes away; every downstream call should receive it. */
  signal: AbortSignal;
  /** Absolute deadline in epoch milliseconds, or `undefined` when the work has none. */
  deadline?: number;
  /**
   * W3C trace context to send downstream: the caller's as it arrived, or, once the HTTP `tracing()` middleware ran,
   * one naming this hop's own span as the parent.
   */
  traceparent?: string;
  /**
   * W3C trace id (32 lowercase hex digits) this work belongs to: the incoming `traceparent`'s, or the one the HTTP
   * `tracing()` middleware started; every log line in the context carries it.
   */
  traceId?: string;
  /** Route template that matched (`/v1/orders/:id`), for logs and metric labels. */
  route?: string;
  /** Authenticated identity, when there is one: on an internal call, the calling service. */
  principal?: Principal;
  /**
   * The end user an internal call acts for, verified from the user's own token, which travels separately from the
   * calling service's token (`x-end-user-token`), so a downstream service can authorize on the user and not only on
   * the service.
   */
  endUser?: Principal;
}

const storage = new AsyncLocalStorage<Context>();

/**
 * Runs `fn` with `ctx` as the current context, passing it `args` (so a hot path can call a shared function instead
 * of making a closure per call).
 *
 * @example Open a context for a unit of work
 * ```ts
 * import { currentContext, runWithContext } from "./context.ts";
 * const ctx = { requestId: "r-1", signal: new AbortController().signal };
 * runWithContext(ctx, () => currentContext()?.requestId); // "r-1"
 * ```
 */
export function runWithContext<T, A extends unknown[] = []>(ctx: Context, fn: (...args: A) => T, ...args: A): T {
  return storage.run(ctx, fn, ...args);
}

/**
 * The current context, or `undefined` outside any.
 *
 * @example
 * ```ts
 * import { currentContext } from "./context.ts";
 * const requestId = currentContext()?.requestId ?? "none";
 * ```
 */
export function currentContext(): Context | undefined {
  return storage.getStore();
}

/**
 * Milliseconds left before the current context's deadline, or `undefined` when there is no deadline.
 *
 * @example
 * ```ts
 * import { remainingMs } from "./context.ts";
 * const budget = remainingMs() ?? 5_000;
 * ```
 */
export function remainingMs(ctx: Context | undefined = currentContext()): number | undefined {
  if (ctx?.deadline === undefined) return undefined;
  return Math.max(0, ctx.deadline - Date.now());
}

/**
 * Header names that carry context between services over HTTP, gRPC metadata and message headers alike.
 *
 * @example Read the request id a caller sent
 * ```ts
 * import { ContextHeaders } from "./context.ts";
 * const req = new Request("http://api/", { headers: { [ContextHeaders.requestId]: "r-42" } });
 * req.headers.get(ContextHeaders.requestId); // "r-42"
 * ```
 */
export const ContextHeaders = {
  requestId: "x-request-id",
  /** The end user's own bearer token, next to the calling service's. */
  endUserToken: "x-end-user-token",
  traceparent: "traceparent",
  /** Absolute deadline, epoch milliseconds. */
  deadline: "x-deadline-ms",
} as const;

/**
 * Context as headers to send downstream (request id, traceparent, remaining deadline).
 *
 * @example
 * ```ts
 * import { contextHeaders } from "./context.ts";
 * const headers = contextHeaders(); // {} outside a context
 * ```
 */
export function contextHeaders(ctx: Context | undefined = currentContext()): Record<string, string> {
  const out: Record<string, string> = {};
  if (!ctx) return out;
  out[ContextHeaders.requestId] = ctx.requestId;
  if (ctx.traceparent) out[ContextHeaders.traceparent] = ctx.traceparent;
  if (ctx.deadline !== undefined) out[ContextHeaders.deadline] = String(ctx.deadline);
  return out;
}

/**
 * Options for {@linkcode contextFromHeaders}.
 *
 * @example Give work without a deadline ten seconds
 * ```ts
 * import { contextFromHeaders, type ContextFromHeadersOptions } from "./context.ts";
 * const options: ContextFromHeadersOptions = { defaultBudgetMs: 10_000 };
 * const { ctx, dispose } = contextFromHeaders(new Headers(), options);
 * ctx.deadline !== undefined; // true
 * dispose();
 * ```
 */
export interface ContextFromHeadersOptions {
  /** Budget for work that arrives without a deadline header. @default {undefined} (no deadline) */
  defaultBudgetMs?: number;
  /**
   * A parent whose abort aborts the context too (the HTTP request's `signal`: the client went away). A function is
   * called, and an object's `signal` (a `Request`'s, a parent context's) read, only when the context's signal is first
   * read: `Request.signal` registers with the server on each read, and most handlers never look at the signal.
   *
   * @example
   * ```ts
   * import { contextFromHeaders } from "./context.ts";
   * const req = new Request("http://api/");
   * contextFromHeaders(req.headers, { signal: () => req.signal }).dispose();
   * ```
   * @default {undefined}
   */
  signal?: AbortSignal | (() => AbortSignal) | { readonly signal: AbortSignal };
  /**
   * Called once when the work is cut short before `dispose()`: its deadline passed, or the parent aborted (noticed
   * only once the signal was read, see `signal`); called after the signal, if read, was aborted. How the HTTP
   * middleware answers 504 without listening on the signal.
   *
   * @example
   * ```ts
   * import { contextFromHeaders } from "./context.ts";
   * contextFromHeaders(new Headers(), { defaultBudgetMs: 10, onEnd: () => console.log("late") }).dispose();
   * ```
   * @default {undefined}
   */
  onEnd?: (reason: unknown) => void;
}

/**
 * Builds a context from incoming headers: the request id (or a fresh one), traceparent and deadline, capped by
 * `defaultBudgetMs` when the caller sent none. The returned `dispose` clears the deadline timer.
 *
 * The context's `signal` is made when first read; one read after the deadline passed or the parent aborted is
 * already aborted, with the same reason an earlier reader would have seen.
 *
 * @example
 * ```ts
 * import { contextFromHeaders, runWithContext } from "./context.ts";
 * const { ctx, dispose } = contextFromHeaders(new Headers({ "x-request-id": "abc" }), { defaultBudgetMs: 1000 });
 * try {
 *   runWithContext(ctx, () => {});
 * } finally {
 *   dispose();
 * }
 * ```
 */
export function contextFromHeaders(
  get: Headers | ((name: string) => string | undefined | null),
  options: ContextFromHeadersOptions = {},
): { ctx: Context; dispose: () => void } {
  const ctx = openContext(get, options);
  return { ctx, dispose: () => ctx.dispose() };
}

/**
 * A context its opener must dispose: what {@linkcode openContext} returns.
 *
 * @example
 * ```ts
 * import { openContext, type OpenContext } from "./context.ts";
 * const ctx: OpenContext = openContext(new Headers(), { defaultBudgetMs: 1000 });
 * ctx.dispose();
 * ```
 */
export interface OpenContext extends Context {
  /**
   * Ends the context's claim on the shared deadline timer and drops its parent link and `onEnd`; a deadline already
   * due still aborts the signal. Idempotent.
   */
  dispose(): void;
}

/**
 * {@linkcode contextFromHeaders} for a server's hot path: the same context, with `dispose()` as its own method
 * instead of a separate function, so opening one allocates the context and nothing else (no result object, no
 * closure, no timer entry).
 *
 * @example Open, run, dispose
 * ```ts
 * import { openContext, runWithContext } from "./context.ts";
 * const req = new Request("http://api/", { headers: { "x-request-id": "abc" } });
 * const ctx = openContext(req.headers, { defaultBudgetMs: 1000, signal: req });
 * try {
 *   runWithContext(ctx, () => {});
 * } finally {
 *   ctx.dispose();
 * }
 * ```
 */
export function openContext(
  get: Headers | ((name: string) => string | undefined | null),
  options: ContextFromHeadersOptions = {},
): OpenContext {
  let rid: string | null | undefined, traceparent: string | null | undefined, rawDeadline: string | null | undefined;
  if (typeof get === "function") {
    rid = get(ContextHeaders.requestId);
    traceparent = get(ContextHeaders.traceparent);
    rawDeadline = get(ContextHeaders.deadline);
  } else {
    rid = get.get(ContextHeaders.requestId);
    traceparent = get.get(ContextHeaders.traceparent);
    rawDeadline = get.get(ContextHeaders.deadline);
  }
  const requestId = rid && isValidRequestId(rid) ? rid : newRequestId();
  const parsed = rawDeadline ? Number(rawDeadline) : NaN;
  let deadline = Number.isFinite(parsed) && parsed > 0 ? parsed : undefined;
  if (deadline === undefined && options.defaultBudgetMs !== undefined) deadline = Date.now() + options.defaultBudgetMs;
  return new WorkContext(requestId, traceparent ?? undefined, deadline, options.signal, options.onEnd);
}

/**
 * A child of `parent` (or of a fresh context when there is none) with a deadline no later than `deadline`: same
 * request id, trace, route and principals; its `signal` aborts when the deadline passes or the parent's signal aborts.
 * `onEnd` is called once, with the abort reason, when either happens before `dispose()`. Deadlines share one coarse
 * timer (a `setTimeout` per unit of work costs far more under load).
 *
 * @example Give one step of the work two seconds at most
 * ```ts
 * import { childContext, currentContext, runWithContext } from "./context.ts";
 * const { ctx, dispose } = childContext(currentContext(), { deadline: Date.now() + 2_000 });
 * try {
 *   await runWithContext(ctx, () => fetch("http://inventory.internal/v1/stock", { signal: ctx.signal }).catch(() => {}));
 * } finally {
 *   dispose();
 * }
 * ```
 */
export function childContext(
  parent: Context | undefined,
  options: { deadline: number; onEnd?: (reason: unknown) => void },
): { ctx: Context; dispose: () => void } {
  const deadline = Math.min(options.deadline, parent?.deadline ?? Infinity);
  const ctx = new WorkContext(
    parent?.requestId ?? newRequestId(),
    parent?.traceparent,
    deadline,
    parent,
    options.onEnd,
  );
  if (parent) {
    ctx.traceId = parent.traceId;
    ctx.route = parent.route;
    ctx.principal = parent.principal;
    ctx.endUser = parent.endUser;
  }
  return { ctx, dispose: () => ctx.dispose() };
}

/** Where a context's parent signal comes from: the signal, or what yields it when first needed. */
type ParentSignal = AbortSignal | (() => AbortSignal) | { readonly signal: AbortSignal };

/**
 * The context {@linkcode openContext} returns. A class, not an object literal with a `signal` getter: a getter
 * in a literal made per request gives every context its own hidden class, which V8 keeps alive until a full mark;
 * under load the young generation then promoted megabytes per scavenge (5-6 ms pauses, p99 from 1 to 8 ms). It is
 * its own entry in the shared deadline timer, and `dispose()` and `expire()` are methods, not per-instance closures:
 * a context costs one object.
 */
class WorkContext implements OpenContext {
  requestId: string;
  deadline: number | undefined;
  traceparent: string | undefined;
  traceId: string | undefined = undefined;
  route: string | undefined = undefined;
  principal: Principal | undefined = undefined;
  endUser: Principal | undefined = undefined;
  #parentOption: ParentSignal | undefined;
  #parent: AbortSignal | undefined = undefined;
  #controller: AbortController | undefined = undefined;
  #onEnd: ((reason: unknown) => void) | undefined;
  /** In the shared deadline timer. */
  #timed = false;
  /** Why the work ended early, for a signal read afterwards. */
  #reason: unknown = undefined;
  #ended = false;
  #onParentAbort: (() => void) | undefined = undefined;

  constructor(
    requestId: string,
    traceparent: string | undefined,
    deadline: number | undefined,
    parent: ParentSignal | undefined,
    onEnd: ((reason: unknown) => void) | undefined,
  ) {
    this.requestId = requestId;
    this.traceparent = traceparent;
    this.traceId = traceIdOf(traceparent);
    this.deadline = deadline;
    this.#parentOption = parent;
    this.#onEnd = onEnd;
    if (parent instanceof AbortSignal) this.#linkParent();
    if (deadline !== undefined && !this.#ended) {
      deadlines.add(this);
      this.#timed = true;
    }
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#ended) this.#controller.abort(this.#reason);
      else this.#linkParent();
    }
    return this.#controller.signal;
  }

  /** Clears the deadline timer and the parent link; a deadline already due still aborts the signal. */
  dispose(): void {
    if (this.#timed) {
      this.#timed = false;
      deadlines.delete(this);
    }
    // The shared timer ticks coarsely: a deadline that is due when the work ends still aborts its signal, so any
    // work left behind is cancelled.
    if (this.deadline !== undefined && Date.now() >= this.deadline) this.expire();
    if (this.#onParentAbort) this.#parent?.removeEventListener("abort", this.#onParentAbort);
    // Drop what the work's callers hang on the context (an HTTP request, the middleware's promises): the runtime's
    // AsyncLocalStorage keeps each store in a WeakMap, and V8's scavenger copies a young WeakMap value with all it
    // reaches even when its key is dead, so a context that still reaches its request makes every minor GC copy the
    // last few thousand requests (scavenges of 5-9 ms instead of 0.1 ms under load).
    this.#onEnd = undefined;
    this.#parentOption = undefined;
    this.#parent = undefined;
    this.#onParentAbort = undefined;
  }

  /** The deadline passed: called by the shared timer, or by `dispose()` when it is already due. */
  expire(): void {
    this.#timed = false;
    this.#end(new DOMException("deadline exceeded", "TimeoutError"));
  }

  #end(why: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#reason = why;
    this.#controller?.abort(why);
    this.#onEnd?.(why);
  }

  #linkParent(): void {
    const option = this.#parentOption;
    if (option === undefined) return;
    this.#parentOption = undefined;
    const parent = option instanceof AbortSignal ? option : typeof option === "function" ? option() : option.signal;
    this.#parent = parent;
    // A signal that is already aborted never fires "abort" again.
    if (parent.aborted) this.#end(parent.reason);
    else {
      this.#onParentAbort = () => this.#end(parent.reason);
      parent.addEventListener("abort", this.#onParentAbort, { once: true });
    }
  }
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/**
 * Parses a `traceparent` header by the W3C rules (version `ff` and all-zero ids are invalid; version `00` has
 * exactly four fields; later versions may append fields), or `undefined` when it is not valid.
 *
 * @example
 * ```ts
 * import { parseTraceparent } from "./context.ts";
 * parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
 * // { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", parentSpanId: "00f067aa0ba902b7", sampled: true }
 * ```
 */
export function parseTraceparent(
  header: string | null | undefined,
): { traceId: string; parentSpanId: string; sampled: boolean } | undefined {
  if (!header || header.length < 55) return undefined;
  const m = TRACEPARENT.exec(header);
  if (!m) return undefined;
  const [, version, traceId, parentSpanId, flags] = m;
  if (version === "ff" || (version === "00" && header.length !== 55)) return undefined;
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return undefined;
  return { traceId, parentSpanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** The trace id of a W3C `traceparent`, or `undefined` when there is none or it is not valid. */
function traceIdOf(traceparent: string | undefined): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}

/** Shared by every context of the process: one coarse timer instead of one per request. */
const deadlines = new DeadlineTimer();

/**
 * Keeps the shared deadline timer ticking until the returned function is called, for a long-lived server. The timer
 * otherwise stops whenever no deadline is pending and starts again with the next one, which under load happens many
 * times a second; a server holding it open pays one cheap tick every 5 ms instead.
 *
 * @example For as long as a server runs
 * ```ts
 * import { holdDeadlineTimer } from "./context.ts";
 * const release = holdDeadlineTimer();
 * release();
 * ```
 */
export function holdDeadlineTimer(): () => void {
  return deadlines.schedule(Infinity, () => {});
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Whether an incoming request id is safe to adopt (bounded length, no spaces or control characters).
 *
 * @example Adopt a caller's request id only when it is safe to log
 * ```ts
 * import { isValidRequestId, newRequestId } from "./context.ts";
 * const incoming = "abc 123\n";
 * const requestId = isValidRequestId(incoming) ? incoming : newRequestId(); // a fresh id: spaces are refused
 * ```
 */
export function isValidRequestId(id: string): boolean {
  return REQUEST_ID.test(id);
}

let counter = 0;
const prefix = crypto.randomUUID().slice(0, 8);

/**
 * A process-unique request id: a random per-process prefix and a counter (cheaper than a UUID per request).
 *
 * @example
 * ```ts
 * import { newRequestId } from "./context.ts";
 * newRequestId(); // "1f3a9c2b-1"
 * ```
 */
export function newRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}
