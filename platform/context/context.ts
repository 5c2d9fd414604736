import { AsyncLocalStorage } from "node:async_hooks";
import { DeadlineTimer } from "./deadline_timer.ts";

/** The identity a request acts for, set by authentication middleware. */
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
  /** W3C trace id (32 lowercase hex digits) this work belongs to, when tracing set one. */
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
 * Runs `fn` with `ctx` as the current context.
 *
 * @example Open a context for a unit of work
 * ```ts
 * import { currentContext, runWithContext } from "./context.ts";
 * const ctx = { requestId: "r-1", signal: new AbortController().signal };
 * runWithContext(ctx, () => currentContext()?.requestId); // "r-1"
 * ```
 */
export function runWithContext<T>(ctx: Context, fn: () => T): T {
  return storage.run(ctx, fn);
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

/** Header names that carry context between services over HTTP, gRPC metadata and message headers alike. */
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
 * Builds a context from incoming headers: the request id (or a fresh one), traceparent and deadline, capped by
 * `defaultBudgetMs` when the caller sent none. The returned `dispose` clears the deadline timer.
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
  options: { defaultBudgetMs?: number; signal?: AbortSignal } = {},
): { ctx: Context; dispose: () => void } {
  const read = typeof get === "function" ? get : (n: string) => get.get(n);
  const rid = read(ContextHeaders.requestId);
  const requestId = rid && isValidRequestId(rid) ? rid : newRequestId();
  const traceparent = read(ContextHeaders.traceparent) ?? undefined;
  const rawDeadline = Number(read(ContextHeaders.deadline));
  let deadline = Number.isFinite(rawDeadline) && rawDeadline > 0 ? rawDeadline : undefined;
  if (deadline === undefined && options.defaultBudgetMs !== undefined) deadline = Date.now() + options.defaultBudgetMs;
  const controller = new AbortController();
  const cancelDeadline = deadline === undefined
    ? undefined
    : deadlines.schedule(deadline, () => controller.abort(new DOMException("deadline exceeded", "TimeoutError")));
  const onParentAbort = () => controller.abort(options.signal?.reason);
  // A signal that is already aborted never fires "abort" again.
  if (options.signal?.aborted) onParentAbort();
  else options.signal?.addEventListener("abort", onParentAbort, { once: true });
  return {
    ctx: { requestId, traceparent, deadline, signal: controller.signal },
    dispose: () => {
      cancelDeadline?.();
      // The shared timer ticks coarsely: a deadline that is due when the work ends still aborts its signal, so any
      // work left behind is cancelled.
      if (deadline !== undefined && Date.now() >= deadline && !controller.signal.aborted) {
        controller.abort(new DOMException("deadline exceeded", "TimeoutError"));
      }
      options.signal?.removeEventListener("abort", onParentAbort);
    },
  };
}

/** Shared by every context of the process: one coarse timer instead of one per request. */
const deadlines = new DeadlineTimer();

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Whether an incoming request id is safe to adopt (bounded length, no spaces or control characters). */
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
