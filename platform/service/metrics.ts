import { collectDefaultMetrics, Counter, Histogram, type Registry } from "prom-client";
import { currentContext } from "../context/mod.ts";
import { type Middleware, withOutcome } from "../http/mod.ts";

/** Methods labelled as themselves; any other is "OTHER", so a client cannot mint label sets at will. */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * RED metrics per route template: `http_requests_total{method,route,status}` and
 * `http_request_duration_seconds{method,route}`. Methods outside the standard ones are labelled `OTHER` and requests
 * that matched no route `unmatched`, so clients cannot grow the label sets.
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
  // prom-client hashes the label object on every call; a child per label set, looked up by one string, does not.
  type Children = { requests: ReturnType<typeof requests.labels>; duration: ReturnType<typeof duration.labels> };
  const children = new Map<string, Children>();
  const childrenFor = (method: string, route: string, status: number): Children => {
    const key = `${method} ${status} ${route}`;
    let c = children.get(key);
    if (!c) {
      c = {
        requests: requests.labels({ method, route, status: String(status) }),
        duration: duration.labels({ method, route }),
      };
      children.set(key, c);
    }
    return c;
  };
  return (next) =>
    function redMetrics(req) {
      const start = performance.now();
      return withOutcome(next, req, (status) => {
        const c = childrenFor(
          KNOWN_METHODS.has(req.method) ? req.method : "OTHER",
          currentContext()?.route ?? "unmatched",
          status,
        );
        c.requests.inc();
        c.duration.observe((performance.now() - start) / 1000);
      });
    };
}

/**
 * prom-client defaults left out: three gauges named `_total`, which `promtool check metrics` refuses (their unsuffixed
 * twins stay), and `nodejs_gc_duration_seconds`, which stays empty on Deno (it emits no `gc` performance entries).
 */
const DROPPED_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
  "nodejs_gc_duration_seconds",
];

/**
 * Registers the process and runtime metrics on `registry`: prom-client's defaults as they work on Deno (CPU
 * `process_cpu_seconds_total`, memory `process_resident_memory_bytes`, `nodejs_heap_size_used_bytes` and the V8 heap
 * spaces, open file descriptors, event-loop lag `nodejs_eventloop_lag_seconds` and its percentiles), less those that
 * are misnamed or stay empty on Deno (GC durations: Deno reports no garbage-collection events to measure).
 * {@linkcode Service} calls it for its registry.
 *
 * @example
 * ```ts
 * import { Registry } from "prom-client";
 * import { runtimeMetrics } from "./metrics.ts";
 * const registry = new Registry();
 * runtimeMetrics(registry);
 * (await registry.metrics()).includes("process_resident_memory_bytes"); // true
 * ```
 */
export function runtimeMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULTS) registry.removeSingleMetric(name);
}
