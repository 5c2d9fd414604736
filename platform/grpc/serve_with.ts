import type { Service } from "../service/mod.ts";
import { serverTracing } from "./tracing.ts";
import { type GrpcServer, serveGrpc, type ServeGrpcOptions } from "./server.ts";

/**
 * Options for {@linkcode serveGrpcWith}: those of `serveGrpc`, with `logger` defaulting to the service's.
 *
 * @example Orders on a free port, in-flight calls getting 2 s when the service stops
 * ```ts
 * import { implement, NotFoundError, serveGrpcWith, type ServeGrpcWithOptions } from "./mod.ts";
 * import { createLogger } from "../log/mod.ts";
 * import { Service } from "../service/mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const fail = async () => { throw new NotFoundError(); };
 * const options: ServeGrpcWithOptions = {
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 *   port: 0,
 *   graceMs: 2_000,
 * };
 * const svc = new Service({ name: "orders", logger: createLogger("orders", { write: () => {} }) });
 * const server = serveGrpcWith(svc, options);
 * ```
 */
export interface ServeGrpcWithOptions extends ServeGrpcOptions {
  /** Where unexpected handler failures and authorization denials are logged. @default {svc.logger} */
  logger?: ServeGrpcOptions["logger"];
  /** Time in-flight calls get to finish when the service stops (0 when the stop is already late). @default {5000} */
  graceMs?: number;
}

/**
 * Serves gRPC from start to stop of `svc`: the server starts with the service's other start hooks and closes (in
 * flight calls get `graceMs`) when it stops. Returns a getter for the running server (undefined before start and
 * after stop), for its bound address.
 *
 * @example Serve orders as part of a service
 * ```ts
 * import { createGrpcClient, implement, NotFoundError, serveGrpcWith, serverMetrics } from "./mod.ts";
 * import { createLogger } from "../log/mod.ts";
 * import { Service } from "../service/mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const svc = new Service({ name: "orders", port: 0, logger: createLogger("orders", { write: () => {} }) });
 * const fail = async () => { throw new NotFoundError("no orders here"); };
 * const server = serveGrpcWith(svc, {
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 *   interceptors: [serverMetrics(svc.registry)],
 * });
 * await svc.start();
 * using orders = createGrpcClient(OrdersServiceService, server()!.address);
 * await orders.getOrder({ id: "o-1", customerId: "" }).catch((err) => err); // NotFoundError
 * await svc.stop();
 * ```
 */
export function serveGrpcWith(svc: Service, options: ServeGrpcWithOptions): () => GrpcServer | undefined {
  const { graceMs = 5_000, ...serveOptions } = options;
  let running: GrpcServer | undefined;
  svc.onStart("grpc", async () => {
    const server = await serveGrpc({
      logger: svc.logger,
      ...serveOptions,
      interceptors: [serverTracing(svc.name), ...(serveOptions.interceptors ?? [])],
    });
    running = server;
    svc.onStop("grpc", async (signal) => {
      await server.close(signal.aborted ? 0 : graceMs);
      running = undefined;
    });
  });
  return () => running;
}
