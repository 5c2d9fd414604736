import { Counter, Histogram, type Registry } from "prom-client";
import { currentContext } from "../context/context.ts";
import type { Middleware } from "../http/handler.ts";
import { withOutcome } from "../http/middleware.ts";

/**
 * RED metrics per route template: `http_requests_total{method,route,status}` and
 * `http_request_duration_seconds{method,route}`.
 *
 * @example
 * ```ts
 * import { Registry } from "prom-client";
 * import { redMetrics } from "./metrics.ts";
 * const mw = redMetrics(new Registry());
 * ```
 */
export function redMetrics(registry: Registry): Middleware {
  const requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests by method, route template and status.",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request duration by method and route template.",
    labelNames: ["method", "route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return (next) =>
    function redMetrics(req) {
      const start = performance.now();
      return withOutcome(next, req, (status) => {
        const route = currentContext()?.route ?? "unmatched";
        requests.inc({ method: req.method, route, status: String(status) });
        duration.observe({ method: req.method, route }, (performance.now() - start) / 1000);
      });
    };
}
