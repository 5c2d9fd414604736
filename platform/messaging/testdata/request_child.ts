// Run with OTEL_DENO=true by tracing_test.ts: a request answered by a responder and a request nobody answers, each
// inside a span of its own over a traced in-memory bus; prints the two trace ids, one per line.
import { inSpan } from "../../telemetry/mod.ts";
import { createMemoryBroker, reply, tracePubSub } from "../mod.ts";

const bus = tracePubSub(createMemoryBroker(), "memory");
await bus.subscribe("pricing.quote", (msg) => reply(msg, { payload: new TextEncoder().encode("42") }), {
  group: "pricing",
});
const ids: string[] = [];
await inSpan("quote", {}, async (span) => {
  ids.push(span!.spanContext().traceId);
  await bus.request!("pricing.quote", { payload: new TextEncoder().encode("sku-1") }, { timeoutMs: 5_000 });
});
await inSpan("quote nobody answers", {}, async (span) => {
  ids.push(span!.spanContext().traceId);
  await bus.request!("pricing.nobody", { payload: new Uint8Array() }, { timeoutMs: 200 }).catch(() => {});
});
await bus.close();
console.log(ids.join("\n"));
