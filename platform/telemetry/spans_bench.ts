// Per-request cost of the tracing instrumentation, off and on: run once as is (tracing off) and once with
// `OTEL_DENO=true` (on; spans are exported to OTEL_EXPORTER_OTLP_ENDPOINT, or dropped when nothing listens):
//
//   deno bench -A platform/telemetry/spans_bench.ts
//   OTEL_DENO=true OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1 deno bench -A platform/telemetry/spans_bench.ts
//
// "request" is what the gateway's HTTP path runs per request (request context, tracing middleware, router) inside a
// server span as Deno.serve makes one when tracing is on; the baseline runs the same chain with a plain handler in
// place of the router. "span" is one instrumentation point (inSpan) against calling its function directly.
import { trace } from "@opentelemetry/api";
import { chain, json, requestContext, Router, tracing } from "../http/mod.ts";
import { inSpan, querySpan, tracingEnabled } from "./mod.ts";

const tracer = trace.getTracer("bench");
const router = new Router({ service: "gateway" }).post("/v1/orders", () => Promise.resolve(json({ ok: true })));
const routed = chain(requestContext(), tracing())(router.handler);
const bare = chain(requestContext(), tracing())(() => Promise.resolve(json({ ok: true })));
const asServer = <T>(fn: () => Promise<T>) =>
  tracingEnabled ? tracer.startActiveSpan("POST", async (span) => (await fn().finally(() => span.end()))) : fn();
const request = () => new Request("http://api/v1/orders", { method: "POST" });

Deno.bench("request: context + tracing + handler", { group: "request", baseline: true, n: 100_000 }, async () => {
  await (await asServer(() => bare(request()))).body?.cancel();
});
Deno.bench("request: context + tracing + router", { group: "request", n: 100_000 }, async () => {
  await (await asServer(() => routed(request()))).body?.cancel();
});

const work = () => Promise.resolve(1);
Deno.bench("span: direct call", { group: "span", baseline: true, n: 200_000 }, async () => {
  await asServer(work);
});
Deno.bench("span: inSpan", { group: "span", n: 200_000 }, async () => {
  await asServer(() => inSpan("step", {}, work));
});
Deno.bench("span: querySpan", { group: "span", n: 200_000 }, async () => {
  await asServer(() => querySpan("postgresql", "select * from orders where id = $1", work));
});
