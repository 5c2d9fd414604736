import { inSpan, type Span, SpanKind, tracingEnabled, withService } from "../telemetry/mod.ts";
import { ContextHeaders } from "../context/mod.ts";
import { GrpcError, status } from "./errors.ts";
import type { ClientInterceptor, ServerInterceptor } from "./interceptor.ts";
import { toGrpcError } from "./recover_errors.ts";

/**
 * A server span per call, named after the method (`trellis.orders.v1.OrdersService/CreateOrder`), continuing the
 * caller's `traceparent` metadata, with `rpc.grpc.status_code` and status ERROR on failure; the call's context
 * carries the span as its `traceparent`, and spans the handler starts belong to `service`. Put it first, so refused
 * calls are traced too. With tracing off (`OTEL_DENO` unset) it is the handler itself.
 *
 * @example Serve with tracing
 * ```ts
 * import { implement, NotFoundError, serveGrpc, serverTracing } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 * const fail = async () => { throw new NotFoundError(); };
 * await using server = await serveGrpc({
 *   services: [implement(OrdersServiceService, { createOrder: fail, getOrder: fail })],
 *   interceptors: [serverTracing("orders")],
 * });
 * ```
 */
export function serverTracing(service: string): ServerInterceptor {
  return (next) => {
    if (!tracingEnabled) return next;
    return function serverTracing(call) {
      const parent = call.metadata.get(ContextHeaders.traceparent)[0];
      return withService(service, () =>
        inSpan(
          spanName(call.method),
          { kind: SpanKind.SERVER, parent: typeof parent === "string" ? parent : undefined, attributes: rpc(call) },
          async (span) => {
            const { traceId, spanId, traceFlags } = span!.spanContext();
            call.ctx.traceId = traceId;
            call.ctx.traceparent = `00-${traceId}-${spanId}-${(traceFlags & 1) === 1 ? "01" : "00"}`;
            try {
              const res = await next(call);
              span!.setAttribute("rpc.grpc.status_code", status.OK);
              return res;
            } catch (err) {
              recordStatus(span, toGrpcError(err, call.ctx).code);
              throw err;
            }
          },
        ));
    };
  };
}

/**
 * A client span per call (retries included), named after the method, whose `traceparent` is sent as metadata so the
 * server's span is its child; records `rpc.grpc.status_code`, and status ERROR on failure. `createGrpcClient` puts it
 * first in every client. With tracing off it is the next handler itself.
 *
 * @example A client chain with tracing outermost
 * ```ts
 * import { chainInterceptors, type ClientHandler, clientTracing } from "./mod.ts";
 * const intercept = chainInterceptors<ClientHandler>(clientTracing());
 * ```
 */
export function clientTracing(): ClientInterceptor {
  return (next) => {
    if (!tracingEnabled) return next;
    return function clientTracing(call) {
      return inSpan(spanName(call.method), { kind: SpanKind.CLIENT, attributes: rpc(call) }, async (span) => {
        const { traceId, spanId, traceFlags } = span!.spanContext();
        const traceparent = `00-${traceId}-${spanId}-${(traceFlags & 1) === 1 ? "01" : "00"}`;
        const metadata = { ...call.options.metadata, [ContextHeaders.traceparent]: traceparent };
        try {
          const res = await next({ ...call, options: { ...call.options, metadata } });
          span!.setAttribute("rpc.grpc.status_code", status.OK);
          return res;
        } catch (err) {
          recordStatus(span, err instanceof GrpcError ? err.code : status.UNKNOWN);
          throw err;
        }
      });
    };
  };
}

/** `/pkg.Service/Method` → `pkg.Service/Method`, as OpenTelemetry's RPC conventions name spans. */
function spanName(method: string): string {
  return method.startsWith("/") ? method.slice(1) : method;
}

function rpc(call: { method: string }): Record<string, string> {
  const [service = "", method = ""] = spanName(call.method).split("/");
  return { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
}

function recordStatus(span: Span | undefined, code: status): void {
  span?.setAttribute("rpc.grpc.status_code", code);
}
