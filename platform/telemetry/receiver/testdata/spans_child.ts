// Run with OTEL_DENO=true by receiver_test.ts: a served request whose route span, a child span and a failed SQL span
// are exported by Deno's exporter; prints the trace id.
import { inSpan, nameServerSpan, recordError, SpanKind, withService } from "../../mod.ts";

let traceId = "";
const server = Deno.serve({ port: 0, onListen: () => {} }, (_req) =>
  withService("inventory", async () => {
    nameServerSpan("GET", "/items/:id", "inventory");
    await inSpan("load item", {}, async (span) => {
      traceId = span!.spanContext().traceId;
      await inSpan("SELECT items", { kind: SpanKind.CLIENT, attributes: { "db.system": "postgresql" } }, (sql) => {
        recordError(sql, new Error("relation missing"));
      });
    });
    return new Response("ok");
  }));
await (await fetch(`http://127.0.0.1:${server.addr.port}/items/1`)).text();
await server.shutdown();
console.log(traceId);
