import {
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerOptions,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { type Context, contextFromHeaders, ContextHeaders, runWithContext } from "../context/mod.ts";
import type { Logger } from "../log/mod.ts";
import { createServer as createNetServer, type Socket } from "node:net";
import { authorization, type Authorize } from "./authorization.ts";
import { status } from "./errors.ts";
import { chainInterceptors, type ServerHandler, type ServerInterceptor } from "./interceptor.ts";
import { recoverErrors, toGrpcError } from "./recover_errors.ts";

/**
 * The request type of a method in a generated service definition.
 *
 * @example The request of OrdersService.GetOrder
 * ```ts
 * import type { RequestOf } from "./mod.ts";
 * import type { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 * const request: RequestOf<OrdersServiceService["getOrder"]> = { id: "o-1", customerId: "c-1" };
 * ```
 */
export type RequestOf<M> = M extends { requestDeserialize: (value: Buffer) => infer Req } ? Req : never;
/**
 * The response type of a method in a generated service definition.
 *
 * @example The response of OrdersService.GetOrder
 * ```ts
 * import type { ResponseOf } from "./mod.ts";
 * import type { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 * const order: ResponseOf<OrdersServiceService["getOrder"]> = {
 *   id: "o-1", customerId: "c-1", items: [], status: "PENDING",
 *   totalCents: 0, reason: "", createdAt: "", updatedAt: "",
 * };
 * ```
 */
export type ResponseOf<M> = M extends { responseDeserialize: (value: Buffer) => infer Res } ? Res : never;

/**
 * A unary method written as a plain async function. `ctx` is the call's platform {@linkcode Context} (also
 * available through `currentContext()`); pass `ctx.signal` to downstream work so a deadline or a client cancel stops it.
 *
 * @example A getOrder handler that stops once its call is cancelled
 * ```ts
 * import { NotFoundError, type UnaryHandler } from "./mod.ts";
 * import type { GetOrderRequest, Order } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const stored = new Map<string, Order>();
 * const getOrder: UnaryHandler<GetOrderRequest, Order> = async (req, ctx) => {
 *   ctx.signal.throwIfAborted();
 *   const order = stored.get(req.id);
 *   if (!order) throw new NotFoundError(`order ${req.id} not found`);
 *   return order;
 * };
 * ```
 */
export type UnaryHandler<Req, Res> = (request: Req, ctx: Context) => Promise<Res>;

/**
 * One {@linkcode UnaryHandler} per method of the service definition `D`.
 *
 * @example The orders handlers, written apart from implement()
 * ```ts
 * import { implement, NotFoundError, type UnaryHandlers } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const handlers: UnaryHandlers<OrdersServiceService> = {
 *   createOrder: async (req) => ({
 *     id: "o-1", customerId: req.customerId, items: req.items, status: "PENDING",
 *     totalCents: 0, reason: "", createdAt: "", updatedAt: "",
 *   }),
 *   getOrder: async (req) => { throw new NotFoundError(`order ${req.id} not found`); },
 * };
 * const orders = implement(OrdersServiceService, handlers);
 * ```
 */
export type UnaryHandlers<D> = { [K in keyof D]: UnaryHandler<RequestOf<D[K]>, ResponseOf<D[K]>> };

/**
 * A service definition paired with its handlers, ready for {@linkcode serveGrpc}; build it with {@linkcode implement}.
 *
 * @example The services a server will serve
 * ```ts
 * import { type GrpcService, implement, NotFoundError } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const fail = async () => { throw new NotFoundError(); };
 * const services: GrpcService[] = [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })];
 * const paths = services.flatMap((s) => Object.values(s.definition).map((m) => m.path));
 * ```
 */
export interface GrpcService {
  /** The generated definition, e.g. `OrdersServiceService`. */
  readonly definition: ServiceDefinition;
  /** Handlers keyed by the definition's method names. */
  readonly implementation: Readonly<Record<string, UnaryHandler<never, unknown>>>;
}

/**
 * Pairs a generated service definition with async handlers, type-checked against the definition's messages.
 * Only unary methods are supported; a streaming method throws a `TypeError`.
 *
 * @example Implement the orders service
 * ```ts
 * import { implement, NotFoundError } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const orders = implement(OrdersServiceService, {
 *   createOrder: async (req) => ({
 *     id: "o-1", customerId: req.customerId, items: req.items, status: "PENDING",
 *     totalCents: 0, reason: "", createdAt: "", updatedAt: "",
 *   }),
 *   getOrder: async (req) => { throw new NotFoundError(`order ${req.id} not found`); },
 * });
 * ```
 */
export function implement<D extends ServiceDefinition>(definition: D, implementation: UnaryHandlers<D>): GrpcService {
  for (const [name, method] of Object.entries(definition)) {
    if (method.requestStream || method.responseStream) {
      throw new TypeError(`Cannot implement ${method.path} as a unary handler: current value is a streaming method`);
    }
    if (typeof (implementation as Record<string, unknown>)[name] !== "function") {
      throw new TypeError(`Cannot implement ${method.path}: current value of handler "${name}" is not a function`);
    }
  }
  return { definition, implementation: implementation as GrpcService["implementation"] };
}

/**
 * Options for {@linkcode serveGrpc}.
 *
 * @example Orders on a fixed port, with authorization, a logger and a 5 s default deadline
 * ```ts
 * import { createLogger } from "../log/mod.ts";
 * import { implement, NotFoundError, type ServeGrpcOptions } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const fail = async () => { throw new NotFoundError(); };
 * const options: ServeGrpcOptions = {
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 *   hostname: "127.0.0.1",
 *   port: 50051,
 *   authorize: (metadata) => metadata.get("authorization").length > 0,
 *   logger: createLogger("orders", { write: () => {} }),
 *   defaultBudgetMs: 5_000,
 * };
 * ```
 */
export interface ServeGrpcOptions {
  /** Services to serve, each built with {@linkcode implement}. */
  services: readonly GrpcService[];
  /** Interface to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to listen on; 0 picks a free one (read it from the returned handle). @default {0} */
  port?: number;
  /**
   * Per-call authorization, shorthand for `authorization(authorize, { logger })` ahead of `interceptors`; every call
   * is allowed when absent. @default {undefined}
   */
  authorize?: Authorize;
  /** Where unexpected handler failures and authorization denials are logged. @default {undefined} (not logged) */
  logger?: Logger;
  /**
   * Interceptors around every handler, outermost first. They run inside the call's context, after
   * `recoverErrors({ logger })` and the `authorize` shorthand and before the handler. @default {[]}
   */
  interceptors?: readonly ServerInterceptor[];
  /** Deadline for calls whose caller sent none. @default {undefined} (no deadline) */
  defaultBudgetMs?: number;
  /** Passed to the grpc-js `Server` (message size limits, keepalive). @default {{}} */
  serverOptions?: ServerOptions;
}

/**
 * A running gRPC server, as {@linkcode serveGrpc} returns it; `await using` closes it with the default grace period.
 *
 * @example Read the address, then close giving in-flight calls 1 s
 * ```ts
 * import { type GrpcServer, implement, NotFoundError, serveGrpc } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const fail = async () => { throw new NotFoundError(); };
 * const server: GrpcServer = await serveGrpc({
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 * });
 * const target = server.address; // "127.0.0.1:<port>", for createGrpcClient
 * await server.close(1_000);
 * ```
 */
export interface GrpcServer extends AsyncDisposable {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** `host:port` to give clients. */
  readonly address: string;
  /**
   * Stops accepting calls and waits for in-flight calls to finish; after `graceMs` it cancels the rest. Calling it
   * again returns the same promise.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Starts a grpc-js server for `services`. Every call runs inside a platform {@linkcode Context} opened from its
 * metadata (`x-request-id`, `traceparent`, `x-deadline-ms`) and its gRPC deadline, whichever is earlier; the context
 * signal also fires when the client cancels. Each call then goes through `recoverErrors({ logger })`, the `authorize`
 * shorthand and `interceptors` to its handler. Thrown {@linkcode GrpcError}s keep their code and message; anything
 * else answers `INTERNAL` with a generic message (see {@linkcode toGrpcError}).
 *
 * @example Serve the orders service on a free loopback port
 * ```ts
 * import { implement, NotFoundError, serveGrpc } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const fail = async () => { throw new NotFoundError(); };
 * await using server = await serveGrpc({
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 *   authorize: (metadata) => metadata.get("authorization").length > 0,
 * });
 * console.log(`orders gRPC on ${server.address}`);
 * ```
 */
export async function serveGrpc(options: ServeGrpcOptions): Promise<GrpcServer> {
  const { hostname = "127.0.0.1", port: requestedPort = 0 } = options;
  const server = new Server(options.serverOptions);
  const drain: Drain = { draining: false, inFlight: 0, onIdle: [], running: new Set() };
  const { authorize, logger, interceptors = [] } = options;
  const intercept = chainInterceptors<ServerHandler>(
    recoverErrors({ logger }),
    ...(authorize ? [authorization(authorize, { logger })] : []),
    ...interceptors,
  );
  for (const service of options.services) {
    const wrapped: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(service.definition)) {
      const handler = service.implementation[name];
      const handle = intercept(function handle(call) {
        return handler(call.request as never, call.ctx);
      });
      wrapped[name] = adapt(method.path, handle, options.defaultBudgetMs, drain);
    }
    server.addService(service.definition, wrapped);
  }
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  // We own the listening socket (grpc-js connection injector) rather than using bindAsync, so that close() can end the
  // TCP connections itself without an HTTP/2 GOAWAY: every grpc-js way to close a session (tryShutdown,
  // forceShutdown, session.close/destroy) sends one, and a Deno 2.9 client that receives a GOAWAY can abort in nghttp2
  // (`find_stream_on_goaway_func` assertion, or SIGSEGV), taking the whole calling service down
  // (https://github.com/denoland/deno/issues/36788). A plain connection close makes clients reconnect just the same.
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const sockets = new Set<Socket>();
  const listener = createNetServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => {}); // a peer reset; the http2 session reports it to grpc-js
    injector.injectConnection(socket);
  });
  const port = await new Promise<number>((resolve, reject) => {
    listener.once("error", (err) => {
      server.forceShutdown();
      reject(err);
    });
    listener.listen(requestedPort, hostname, () => resolve((listener.address() as { port: number }).port));
  });
  let closing: Promise<void> | undefined;
  // Drains in-flight calls ourselves (new calls meanwhile get UNAVAILABLE, which clients retry elsewhere or later),
  // answers calls still running after `graceMs` with CANCELLED, then closes the connections without a GOAWAY (see
  // above) before shutting grpc-js down.
  const close = (graceMs = 5_000) =>
    closing ??= (async () => {
      drain.draining = true;
      const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
      if (drain.inFlight > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((resolve) => drain.onIdle.push(resolve)),
          new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs)),
        ]);
        clearTimeout(timer);
        for (const cancel of [...drain.running]) cancel();
      }
      // Let the last responses leave the http2 session before ending the sockets; end() flushes what was written.
      await new Promise((resolve) => setTimeout(resolve, 20));
      await Promise.all([...sockets].map(endSocket));
      await listenerClosed;
      server.forceShutdown();
    })();
  return { port, address: `${host}:${port}`, close, [Symbol.asyncDispose]: () => close() };
}

/** Calls in flight, so `close()` can wait for them. */
interface Drain {
  draining: boolean;
  inFlight: number;
  onIdle: (() => void)[];
  /** Answers each running call with CANCELLED and aborts its handler's signal, for close() after the grace period. */
  running: Set<() => void>;
}

/**
 * Ends a socket (FIN after pending writes, no HTTP/2 frame), destroying it if the peer has not closed within 1 s;
 * resolves once its HTTP/2 session has seen it close.
 */
function endSocket(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), 1_000);
    socket.once("close", () => {
      clearTimeout(timer);
      // The HTTP/2 session's 'close' handlers (grpc-js forgets the session there) run after the socket's; let them
      // finish, or forceShutdown() would still find the session and destroy it, sending a GOAWAY.
      setTimeout(resolve, 0);
    });
    socket.end();
  });
}

/** Opens the call's context (it needs the raw grpc-js call, so it cannot be an interceptor) and runs `handle` in it. */
function adapt(
  path: string,
  handle: ServerHandler,
  defaultBudgetMs: number | undefined,
  drain: Drain,
): handleUnaryCall<unknown, unknown> {
  return function grpcUnary(call: ServerUnaryCall<unknown, unknown>, callback) {
    if (drain.draining) {
      callback({ code: status.UNAVAILABLE, details: "server is shutting down" });
      return;
    }
    drain.inFlight++;
    const cancel = new AbortController();
    const onCancelled = () => cancel.abort(new DOMException("call cancelled by the client", "AbortError"));
    call.once("cancelled", onCancelled);
    let answered = false;
    const answer: typeof callback = (...args) => {
      if (answered) return;
      answered = true;
      callback(...args);
    };
    const shutDown = () => {
      answer({ code: status.CANCELLED, details: "server is shutting down" });
      cancel.abort(new DOMException("server is shutting down", "AbortError"));
    };
    drain.running.add(shutDown);
    const { ctx, dispose } = contextFromHeaders(readMetadata(call), {
      signal: cancel.signal,
      defaultBudgetMs,
    });
    runWithContext(ctx, async () => {
      try {
        answer(null, await handle({ method: path, request: call.request, metadata: call.metadata, ctx }));
      } catch (err) {
        const { code, message } = toGrpcError(err, ctx);
        answer({ code, details: message });
      } finally {
        dispose();
        call.off("cancelled", onCancelled);
        drain.running.delete(shutDown);
        if (--drain.inFlight === 0) { for (const resolve of drain.onIdle.splice(0)) resolve(); }
      }
    });
  };
}

/** Reads context headers from metadata, with the deadline header lowered to the gRPC deadline when that is earlier. */
function readMetadata(call: ServerUnaryCall<unknown, unknown>): (name: string) => string | undefined {
  const grpcDeadline = Number(call.getDeadline()); // a Date or Infinity
  return (name) => {
    const [value] = call.metadata.get(name);
    const text = typeof value === "string" ? value : undefined;
    if (name !== ContextHeaders.deadline || !Number.isFinite(grpcDeadline)) return text;
    const sent = Number(text);
    return String(Number.isFinite(sent) && sent > 0 ? Math.min(sent, grpcDeadline) : grpcDeadline);
  };
}
