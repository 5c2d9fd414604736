import assert from "node:assert/strict";
import { currentContext } from "@trellis/platform/context";
import { createHttpClient, Router } from "@trellis/platform/http";
import { createLogger } from "@trellis/platform/log";
import { Service } from "@trellis/platform/service";
import { within } from "@trellis/platform/testing";

Deno.test("a request's deadline cancels the work: the handler's signal fires and the downstream call is aborted", async () => {
  let downstreamAborted!: () => void;
  const downstreamSawAbort = new Promise<void>((r) => downstreamAborted = r);
  await using downstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new Promise<Response>((resolve) => {
        req.signal.addEventListener("abort", () => {
          downstreamAborted();
          resolve(new Response(null, { status: 499 }));
        });
      }),
  );
  const client = createHttpClient({ baseUrl: `http://127.0.0.1:${downstream.addr.port}`, retry: { maxAttempts: 1 } });
  let handlerSignal: AbortSignal | undefined;
  const svc = new Service({ name: "caller", logger: createLogger("caller", { write: () => {} }) });
  svc.handle(
    new Router().get("/call", async () => {
      handlerSignal = currentContext()!.signal;
      const res = await client.request("GET", "/slow");
      return new Response(res.body, { status: res.status });
    }).handler,
  );
  await svc.start();
  try {
    const started = performance.now();
    const res = await fetch(`${svc.url}/call`, { headers: { "x-deadline-ms": String(Date.now() + 200) } });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    await res.body?.cancel();
    assert.ok(elapsed < 2_000, `answered after ${elapsed.toFixed(0)} ms`);
    assert.equal(handlerSignal?.aborted, true, "the handler's signal fired");
    await within(downstreamSawAbort, 2_000, "the downstream server to see its request aborted");
  } finally {
    await svc.stop();
  }
});
