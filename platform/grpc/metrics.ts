import { Counter, Histogram, type Registry } from "prom-client";
import { GrpcError, status } from "./errors.ts";
import type { ClientInterceptor, ServerInterceptor } from "./interceptor.ts";
import { toGrpcError } from "./recover_errors.ts";

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Counts handled calls and observes their durations: `grpc_server_handled_total{method,code}` and
 * `grpc_server_handling_seconds{method}` on `registry`, `method` being the full path and `code` the status name the
 * client gets (`OK`, `NOT_FOUND`, …), wherever the interceptor sits in the chain. Put it before `authorization` to
 * count refused calls too. Several servers may share one registry.
 *
 * @example Serve with metrics on a registry
 * ```ts
 * import { Registry } from "prom-client";
 * import { implement, NotFoundError, serveGrpc, serverMetrics } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const registry = new Registry();
 * const fail = async () => { throw new NotFoundError(); };
 * await using server = await serveGrpc({
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 *   interceptors: [serverMetrics(registry)],
 * });
 * ```
 */
export function serverMetrics(registry: Registry): ServerInterceptor {
  const { handled, seconds } = metricsOn(registry, "server", "Unary gRPC calls handled by this server");
  return (next) =>
    async function serverMetrics(call) {
      const start = performance.now();
      let code: status = status.OK;
      try {
        return await next(call);
      } catch (err) {
        code = toGrpcError(err, call.ctx).code;
        throw err;
      } finally {
        handled.inc({ method: call.method, code: status[code] });
        seconds.observe({ method: call.method }, (performance.now() - start) / 1000);
      }
    };
}

/**
 * Counts calls made and observes their durations: `grpc_client_handled_total{method,code}` and
 * `grpc_client_handling_seconds{method}` on `registry`. Among a client's interceptors it sees each call once, retries
 * included, with the status the caller gets (`UNKNOWN` for a failure that is not a {@linkcode GrpcError}). Several
 * clients may share one registry.
 *
 * @example A client reporting its calls
 * ```ts
 * import { Registry } from "prom-client";
 * import { clientMetrics, createGrpcClient } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const registry = new Registry();
 * using orders = createGrpcClient(OrdersServiceService, "127.0.0.1:50051", {
 *   interceptors: [clientMetrics(registry)],
 * });
 * ```
 */
export function clientMetrics(registry: Registry): ClientInterceptor {
  const { handled, seconds } = metricsOn(registry, "client", "Unary gRPC calls made by this process");
  return (next) =>
    async function clientMetrics(call) {
      const start = performance.now();
      let code: status = status.OK;
      try {
        return await next(call);
      } catch (err) {
        code = err instanceof GrpcError ? err.code : status.UNKNOWN;
        throw err;
      } finally {
        handled.inc({ method: call.method, code: status[code] });
        seconds.observe({ method: call.method }, (performance.now() - start) / 1000);
      }
    };
}

type CallMetrics = { handled: Counter<"method" | "code">; seconds: Histogram<"method"> };

/** The metrics of one side on `registry`, registered by the first interceptor that asks. */
function metricsOn(registry: Registry, side: "server" | "client", help: string): CallMetrics {
  const handledName = `grpc_${side}_handled_total`;
  const secondsName = `grpc_${side}_handling_seconds`;
  const handled = registry.getSingleMetric(handledName) as Counter<"method" | "code"> | undefined ??
    new Counter({
      name: handledName,
      help: `${help}, by method and status code.`,
      labelNames: ["method", "code"] as const,
      registers: [registry],
    });
  const seconds = registry.getSingleMetric(secondsName) as Histogram<"method"> | undefined ??
    new Histogram({
      name: secondsName,
      help: `${help}: duration in seconds, by method.`,
      labelNames: ["method"] as const,
      buckets: BUCKETS,
      registers: [registry],
    });
  return { handled, seconds };
}
