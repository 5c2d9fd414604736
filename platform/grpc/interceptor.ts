import type { Metadata } from "@grpc/grpc-js";
import type { Context } from "../context/mod.ts";

/**
 * One incoming unary call as server interceptors see it, inside its platform {@linkcode Context} (opened by
 * `serveGrpc` from the metadata and the gRPC deadline before any interceptor runs).
 *
 * @example Read the method and the caller's request id
 * ```ts
 * import type { UnaryCall } from "./mod.ts";
 * const describe = (call: UnaryCall) => `${call.method} for request ${call.ctx.requestId}`;
 * ```
 */
export interface UnaryCall {
  /** The full method path, e.g. `/trellis.orders.v1.OrdersService/GetOrder`. */
  readonly method: string;
  /** The decoded request message. */
  readonly request: unknown;
  /** The metadata the client sent. */
  readonly metadata: Metadata;
  /** The call's context: request id, trace, deadline signal, principal once authorized. */
  readonly ctx: Context;
}

/**
 * Answers an incoming call with the response message, or rejects (a {@linkcode GrpcError} keeps its code).
 *
 * @example A handler answering every call with an empty message
 * ```ts
 * import type { ServerHandler } from "./mod.ts";
 * const empty: ServerHandler = async () => ({});
 * ```
 */
export type ServerHandler = (call: UnaryCall) => Promise<unknown>;

/**
 * Decorates a {@linkcode ServerHandler}: the gRPC counterpart of HTTP's `Middleware` (go-kit's shape). Give them to
 * `serveGrpc({ interceptors })`.
 *
 * @example Refuse calls without a request id header
 * ```ts
 * import { InvalidArgumentError, type ServerInterceptor } from "./mod.ts";
 * const requireRequestId: ServerInterceptor = (next) =>
 *   function requireRequestId(call) {
 *     if (call.metadata.get("x-request-id").length === 0) {
 *       return Promise.reject(new InvalidArgumentError("x-request-id is required"));
 *     }
 *     return next(call);
 *   };
 * ```
 */
export type ServerInterceptor = (next: ServerHandler) => ServerHandler;

/**
 * Per-call options for a `GrpcClient` method, its second argument.
 *
 * @example A call with its own timeout, a cancel signal, no retries and a tenant header
 * ```ts
 * import type { CallOptions } from "./mod.ts";
 * const controller = new AbortController();
 * const options: CallOptions = {
 *   timeoutMs: 500,
 *   signal: controller.signal,
 *   idempotent: false,
 *   metadata: { "x-tenant": "acme" },
 * };
 * ```
 */
export interface CallOptions {
  /** Time allowed for the call, retries included; the context's remaining budget caps it. @default {the client's `timeoutMs`} */
  timeoutMs?: number;
  /** Cancels the call, in addition to the current context's signal. @default {undefined} */
  signal?: AbortSignal;
  /** Whether the call may be retried on `UNAVAILABLE`/`RESOURCE_EXHAUSTED`. @default {whether the method is listed in the client's `idempotent`} */
  idempotent?: boolean;
  /** Extra metadata to send. @default {{}} */
  metadata?: Readonly<Record<string, string>>;
}

/**
 * One outgoing unary call as client interceptors see it. An interceptor that changes it passes a changed copy to
 * `next` (`{ ...call, metadata }` with `call.metadata.clone()`), so a retry further out starts from the same call.
 *
 * @example Read the method and the deadline
 * ```ts
 * import type { OutgoingCall } from "./mod.ts";
 * const remainingMs = (call: OutgoingCall) => call.deadline - Date.now();
 * ```
 */
export interface OutgoingCall {
  /** The full method path, e.g. `/trellis.orders.v1.OrdersService/GetOrder`. */
  readonly method: string;
  /** The method's name in the service definition, e.g. `getOrder`. */
  readonly name: string;
  /** The request message. */
  readonly request: unknown;
  /** The metadata to send. */
  readonly metadata: Metadata;
  /** The options the caller passed for this call. */
  readonly options: CallOptions;
  /** Absolute deadline in epoch milliseconds (`Infinity` for none); set by `callContext`. */
  readonly deadline: number;
  /** Cancels the call when it aborts; set by `callContext`. */
  readonly signal?: AbortSignal;
}

/**
 * Sends an outgoing call and resolves with the response message, or rejects with a {@linkcode GrpcError}.
 *
 * @example A handler that answers without a network, for testing an interceptor
 * ```ts
 * import type { ClientHandler } from "./mod.ts";
 * const echo: ClientHandler = async (call) => call.request;
 * ```
 */
export type ClientHandler = (call: OutgoingCall) => Promise<unknown>;

/**
 * Decorates a {@linkcode ClientHandler}. Give them to `createGrpcClient(def, address, { interceptors })`.
 *
 * @example Send a tenant header on every call
 * ```ts
 * import type { ClientInterceptor } from "./mod.ts";
 * const tenant = (id: string): ClientInterceptor => (next) =>
 *   function tenant(call) {
 *     const metadata = call.metadata.clone();
 *     metadata.set("x-tenant", id);
 *     return next({ ...call, metadata });
 *   };
 * ```
 */
export type ClientInterceptor = (next: ClientHandler) => ClientHandler;

/**
 * Composes interceptors, outermost first: `chainInterceptors(a, b)(h)` runs `a`, then `b`, then `h`. Works for
 * server and client interceptors alike.
 *
 * @example Wrap a handler in two interceptors
 * ```ts
 * import { chainInterceptors, type ServerHandler, type ServerInterceptor } from "./mod.ts";
 * const order: string[] = [];
 * const mark = (name: string): ServerInterceptor => (next) => (call) => {
 *   order.push(name);
 *   return next(call);
 * };
 * const handler: ServerHandler = chainInterceptors(mark("outer"), mark("inner"))(async () => ({}));
 * ```
 */
export function chainInterceptors<H extends (call: never) => Promise<unknown>>(
  ...interceptors: readonly ((next: H) => H)[]
): (handler: H) => H {
  return (handler) => interceptors.reduceRight((next, interceptor) => interceptor(next), handler);
}
