import { clientTracing } from "./tracing.ts";
import {
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  credentials,
  Metadata,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import type { Duplex } from "node:stream";
import type { RetryOptions } from "../async/mod.ts";
import type { ResiliencePolicy } from "../resilience/mod.ts";
import { abortError } from "./_abort.ts";
import { bearerToken, callContext, retryCalls } from "./client_interceptors.ts";
import { DeadlineExceededError, type GrpcError, grpcError, UnavailableError } from "./errors.ts";
import {
  type CallOptions,
  chainInterceptors,
  type ClientHandler,
  type ClientInterceptor,
  type OutgoingCall,
} from "./interceptor.ts";
import type { RequestOf, ResponseOf } from "./server.ts";

/**
 * Options for {@linkcode createGrpcClient}; `D` is the service definition, so `idempotent` names its methods.
 *
 * @example A client of orders with a service token, a 2 s default deadline and retried reads
 * ```ts
 * import { createGrpcClient, type GrpcClientOptions } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const options: GrpcClientOptions<OrdersServiceService> = {
 *   token: async () => "service-token",
 *   timeoutMs: 2_000,
 *   idempotent: ["getOrder"],
 *   retry: { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 200 },
 * };
 * using orders = createGrpcClient(OrdersServiceService, "127.0.0.1:50051", options);
 * ```
 */
export interface GrpcClientOptions<D> {
  /** Source of a bearer token sent as `authorization: Bearer <token>` on every call. @default {undefined} (none sent) */
  token?: () => Promise<string>;
  /** Deadline of a call made outside any context or with more budget than this. @default {10_000} */
  timeoutMs?: number;
  /** Methods safe to retry (reads, or writes deduplicated by an idempotency key). @default {[]} */
  idempotent?: readonly (keyof D & string)[];
  /** Retry policy for idempotent calls; give it or `policy`, not both. @default {{ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 1000 }} */
  retry?: RetryOptions;
  /**
   * The resilience policy every call runs under (see {@linkcode retryCalls}): its retries instead of `retry`, its
   * retry budget, and its circuit breaker around each attempt. @default {resiliencePolicy({ retry })}
   */
  policy?: ResiliencePolicy;
  /** Channel credentials. @default {credentials.createInsecure()} */
  credentials?: ChannelCredentials;
  /** grpc-js channel options (keepalive, message size). @default {{}} */
  channelOptions?: ChannelOptions;
  /**
   * Interceptors around every call, outermost first. They run after `callContext({ timeoutMs })` and
   * `bearerToken(token)` (so they see the deadline and the full metadata) and before `retryCalls(...)` (so they see
   * each call once, retries included). @default {[]}
   */
  interceptors?: readonly ClientInterceptor[];
}

/**
 * A promise-based client: one async method per method of the service definition `D`, plus `close()`. Failures reject
 * with {@linkcode GrpcError} or its subclasses (`NotFoundError`, `UnavailableError`, …).
 *
 * @example Code that takes an orders client
 * ```ts
 * import { type GrpcClient, NotFoundError } from "./mod.ts";
 * import type { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * async function orderExists(orders: GrpcClient<OrdersServiceService>, id: string): Promise<boolean> {
 *   try {
 *     await orders.getOrder({ id, customerId: "" }, { timeoutMs: 500 });
 *     return true;
 *   } catch (err) {
 *     if (err instanceof NotFoundError) return false;
 *     throw err;
 *   }
 * }
 * ```
 */
export type GrpcClient<D> =
  & { [K in keyof D]: (request: RequestOf<D[K]>, options?: CallOptions) => Promise<ResponseOf<D[K]>> }
  & Disposable
  & {
    /**
     * Closes the channel, dropping its connections without an HTTP/2 GOAWAY; calls in flight fail with
     * `CANCELLED`/`UNAVAILABLE`. Idempotent.
     */
    close(): void;
  };

/**
 * Creates a typed client for a generated service definition at `address`. Each call carries the current context
 * (request id, traceparent, absolute deadline) as metadata; its deadline is the earlier of `timeoutMs` and the
 * context's remaining budget; it is cancelled when the context signal or `options.signal` aborts; idempotent calls
 * are retried on `UNAVAILABLE`/`RESOURCE_EXHAUSTED` within that deadline. Each of those is a client interceptor
 * ({@linkcode callContext}, {@linkcode bearerToken}, {@linkcode retryCalls}); the chain is
 * `callContext → bearerToken → ...interceptors → retryCalls → the network`.
 *
 * @example Call the orders service with a service token
 * ```ts
 * import { createGrpcClient, implement, serveGrpc } from "./mod.ts";
 * import { type Order, OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const order: Order = {
 *   id: "o-1", customerId: "c-1", items: [], status: "PENDING",
 *   totalCents: 0, reason: "", createdAt: "", updatedAt: "",
 * };
 * await using server = await serveGrpc({
 *   services: [implement(OrdersServiceService, { createOrder: async () => order, getOrder: async () => order })],
 * });
 * using orders = createGrpcClient(OrdersServiceService, server.address, {
 *   token: async () => "service-token",
 *   idempotent: ["getOrder"],
 * });
 * const found = await orders.getOrder({ id: "o-1", customerId: "" }, { timeoutMs: 500 });
 * ```
 */
export function createGrpcClient<D extends ServiceDefinition>(
  definition: D,
  address: string,
  options: GrpcClientOptions<D> = {},
): GrpcClient<D> {
  if ("close" in definition) throw new TypeError(`Cannot create a client for ${address}: a method is named "close"`);
  if (options.policy && options.retry) {
    throw new TypeError(`Cannot use retry beside policy: current value is ${JSON.stringify(options.retry)}`);
  }
  const intercept = chainInterceptors<ClientHandler>(
    clientTracing(),
    callContext({ timeoutMs: options.timeoutMs }),
    ...(options.token ? [bearerToken(options.token)] : []),
    ...(options.interceptors ?? []),
    retryCalls({ ...options.retry, idempotent: options.idempotent, policy: options.policy }),
  );
  const sockets = new Set<Duplex>();
  const client = new Client(
    address,
    keepingSockets(options.credentials ?? credentials.createInsecure(), sockets),
    options.channelOptions,
  );
  let closed = false;
  // grpc-js closes a channel's HTTP/2 sessions with session.close(), which sends a GOAWAY; a Deno 2.9 server that
  // receives one answers with its own and can abort in nghttp2 (`find_stream_on_goaway_func` assertion, free(): invalid
  // pointer, or SIGSEGV; https://github.com/denoland/deno/issues/36788) — the called service crashing because its
  // caller stopped. So close() ends the connections plainly first and closes the channel only once every socket (and so
  // its session, which then has nothing left to send) is gone.
  const close = () => {
    if (closed) return;
    closed = true;
    const gone = [...sockets].map(dropSocket);
    sockets.clear();
    Promise.all(gone).then(() => client.close());
  };
  const send = intercept(function send(call: OutgoingCall): Promise<unknown> {
    if (closed) return Promise.reject(new UnavailableError(`client for ${address} is closed`));
    // Checked here rather than left to grpc-js, which would still open a connection for a call that cannot succeed.
    if (Date.now() >= call.deadline) {
      return Promise.reject(new DeadlineExceededError("deadline exceeded before the call was sent"));
    }
    const method = definition[call.name];
    return unary(client, method.path, method.requestSerialize, method.responseDeserialize, call);
  });

  const stub: Record<PropertyKey, unknown> = { close, [Symbol.dispose]: close };
  for (const [name, method] of Object.entries(definition)) {
    stub[name] = (request: unknown, callOptions: CallOptions = {}) =>
      send({
        method: method.path,
        name,
        request,
        metadata: new Metadata(),
        options: callOptions,
        deadline: Infinity,
      });
  }
  return stub as GrpcClient<D>;
}

function unary(
  client: Client,
  path: string,
  serialize: (value: unknown) => Buffer,
  deserialize: (value: Buffer) => unknown,
  { request, metadata, deadline, signal }: OutgoingCall,
): Promise<unknown> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const options: GrpcCallOptions = { deadline };
    const call = client.makeUnaryRequest(path, serialize, deserialize, request, metadata, options, (err, response) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(signal?.aborted ? abortError(signal) : fromServiceError(err));
      else resolve(response);
    });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Wraps `inner` so that every connection its channel opens is added to `sockets` (and leaves it on close), for
 * {@linkcode createGrpcClient}'s close(). Channels with these credentials share no subchannel with other clients'.
 */
function keepingSockets(inner: ChannelCredentials, sockets: Set<Duplex>): ChannelCredentials {
  // grpc-js's internal connector hook (1.14): each subchannel asks its credentials for a connector, which turns the TCP
  // socket into the one the HTTP/2 session runs on.
  type Connector = { connect(socket: Duplex): Promise<{ socket: Duplex; secure: boolean }> };
  type Internals = {
    _createSecureConnector(...args: unknown[]): Connector;
    _equals(other: ChannelCredentials): boolean;
  };
  const base = inner as unknown as Internals;
  const wrapped = Object.create(inner) as Internals;
  wrapped._equals = (other) => other === (wrapped as unknown as ChannelCredentials);
  wrapped._createSecureConnector = (...args) => {
    const connector = base._createSecureConnector.apply(inner, args);
    return Object.assign(Object.create(connector), {
      async connect(socket: Duplex) {
        const result = await connector.connect(socket);
        sockets.add(result.socket);
        result.socket.once("close", () => sockets.delete(result.socket));
        return result;
      },
    });
  };
  return wrapped as unknown as ChannelCredentials;
}

/** Closes a connection without an HTTP/2 frame; resolves once its HTTP/2 session has seen it close. */
function dropSocket(socket: Duplex): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    // The session's own 'close' handlers run after the socket's; let them finish before grpc-js touches it.
    socket.once("close", () => setTimeout(resolve, 0));
    socket.destroy();
  });
}

function fromServiceError(err: ServiceError): GrpcError {
  return grpcError(err.code, err.details || err.message, { cause: err });
}
