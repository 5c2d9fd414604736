import assert from "node:assert/strict";
import { type Context, currentContext } from "../context/mod.ts";
import { createLogger } from "../log/mod.ts";
import { chain, type Handler } from "./handler.ts";
import { accessLog, recovery, requestContext } from "./middleware.ts";
import { HttpError, notFound, problemResponse } from "./problem.ts";
import { json } from "./json.ts";
import { tracing } from "./tracing.ts";
import { Router } from "./router.ts";
import { within } from "../testing/mod.ts";

function memoryLog() {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger("test", { level: "debug", write: (l) => lines.push(JSON.parse(l)) }), lines };
}

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

const ok: Handler = () => Promise.resolve(new Response("ok"));

Deno.test("requestContext() echoes a valid x-request-id and exposes it to the handler", async () => {
  let seen: Context | undefined;
  const h = chain(requestContext())(() => {
    seen = currentContext();
    return ok(new Request("http://x/"));
  });
  const res = await h(new Request("http://svc/", { headers: { "x-request-id": "abc-123" } }));
  await res.body?.cancel();
  assert.equal(res.headers.get("x-request-id"), "abc-123");
  assert.equal(seen?.requestId, "abc-123");
  assert.ok(seen!.deadline! > Date.now(), "the default budget gives the request a deadline");
});

Deno.test("requestContext() replaces an unusable x-request-id with a fresh one and echoes that", async () => {
  for (const id of [undefined, "has space", "x".repeat(200)]) {
    const headers = new Headers();
    if (id !== undefined) headers.set("x-request-id", id);
    const res = await chain(requestContext())(ok)(new Request("http://svc/", { headers }));
    await res.body?.cancel();
    const echoed = res.headers.get("x-request-id");
    assert.ok(echoed && echoed !== id, `${id}`);
    assert.match(echoed, /^[A-Za-z0-9._:-]{1,128}$/);
  }
});

Deno.test("requestContext() echoes the request id on a response whose headers are immutable", async () => {
  const h = chain(requestContext())(() => Promise.resolve(Response.redirect("http://svc/elsewhere", 303)));
  const res = await h(new Request("http://svc/", { headers: { "x-request-id": "redir-1" } }));
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "http://svc/elsewhere");
  assert.equal(res.headers.get("x-request-id"), "redir-1");
});

Deno.test("requestContext() answers 504 problem when the handler outlives the deadline, and aborts its signal", async () => {
  let handlerSignal: AbortSignal | undefined;
  let handlerDone!: () => void;
  const finished = new Promise<void>((r) => handlerDone = r);
  const slow: Handler = async () => {
    handlerSignal = currentContext()!.signal;
    await within(aborted(handlerSignal), 5_000, "the handler's signal to abort at the deadline");
    handlerDone();
    return new Response("too late");
  };
  const res = await chain(requestContext())(slow)(
    new Request("http://svc/", { headers: { "x-request-id": "slow-1", "x-deadline-ms": String(Date.now() + 30) } }),
  );
  assert.equal(res.status, 504);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.equal(res.headers.get("x-request-id"), "slow-1");
  const body = await res.json();
  assert.equal(body.type, "https://trellis.dev/problems/deadline-exceeded");
  assert.equal(body.requestId, "slow-1");
  assert.equal(handlerSignal?.aborted, true);
  assert.equal((handlerSignal?.reason as DOMException).name, "TimeoutError");
  await within(finished, 2_000, "the slow handler to finish after its signal aborted");
});

Deno.test("requestContext() uses its default budget when the request carries no deadline", async () => {
  const h = chain(requestContext({ defaultBudgetMs: 20 }))(async () => {
    await within(aborted(currentContext()!.signal), 5_000, "the handler's signal to abort after the default budget");
    throw currentContext()!.signal.reason;
  });
  const res = await h(new Request("http://svc/"));
  assert.equal(res.status, 504);
  await res.body?.cancel();
});

Deno.test("requestContext() aborts the handler's signal when the client goes away", async () => {
  const client = new AbortController();
  let reached!: () => void;
  const inHandler = new Promise<void>((r) => reached = r);
  const h = chain(requestContext())(async () => {
    reached();
    await within(aborted(currentContext()!.signal), 5_000, "the handler's signal to abort with the client");
    return new Response("gone");
  });
  const pending = h(new Request("http://svc/", { signal: client.signal }));
  await within(inHandler, 2_000, "the request to reach the handler");
  client.abort();
  const res = await within(pending, 2_000, "the answer after the client went away");
  await res.body?.cancel();
  assert.equal(res.status, 504);
});

Deno.test("requestContext() passes on what the handler throws before the deadline", async () => {
  const cases: unknown[] = [new HttpError(409, "conflict", "Conflict"), new Error("boom")];
  for (const thrown of cases) {
    const h = chain(requestContext())(() => Promise.reject(thrown));
    await assert.rejects(h(new Request("http://svc/")), (err) => err === thrown);
  }
});

Deno.test("recovery() logs an unexpected error and answers a 500 problem without its internals", async () => {
  const { log, lines } = memoryLog();
  const h = chain(recovery(log))(() => Promise.reject(new Error("db password is hunter2")));
  const res = await h(new Request("http://svc/v1/orders?x=1"));
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const text = await res.text();
  assert.equal(JSON.parse(text).type, "https://trellis.dev/problems/internal");
  assert.doesNotMatch(text, /hunter2/);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, "error");
  assert.equal(lines[0].msg, "handler failed");
  assert.equal(lines[0].path, "/v1/orders");
  assert.equal((lines[0].err as { message: string }).message, "db password is hunter2");
  assert.match((lines[0].err as { stack: string }).stack, /hunter2/);
});

Deno.test("recovery() turns an HttpError into its problem without logging it", async () => {
  const { log, lines } = memoryLog();
  const h = chain(recovery(log))(() => Promise.reject(new HttpError(404, "not-found", "Not found", { detail: "o-1" })));
  const res = await h(new Request("http://svc/"));
  assert.equal(res.status, 404);
  assert.equal((await res.json()).detail, "o-1");
  assert.equal(lines.length, 0);
});

Deno.test("recovery() passes a successful response through untouched", async () => {
  const { log, lines } = memoryLog();
  const res = await chain(recovery(log))(ok)(new Request("http://svc/"));
  assert.equal(await res.text(), "ok");
  assert.equal(lines.length, 0);
});

Deno.test("accessLog() writes one line with method, route template, status, duration and request id", async () => {
  const { log, lines } = memoryLog();
  const router = new Router().get("/v1/orders/:id", () => Promise.resolve(new Response(null, { status: 204 })));
  const h = chain(requestContext(), accessLog(log))(router.handler);
  const cases: { method: string; path: string; route: string; status: number }[] = [
    { method: "GET", path: "/v1/orders/o-1", route: "/v1/orders/:id", status: 204 },
    { method: "POST", path: "/v1/orders/o-1", route: "unmatched", status: 405 },
    { method: "GET", path: "/nowhere", route: "unmatched", status: 404 },
  ];
  for (const c of cases) {
    const res = await h(new Request(`http://svc${c.path}`, { method: c.method, headers: { "x-request-id": "a-1" } }));
    await res.body?.cancel();
  }
  assert.equal(lines.length, cases.length);
  cases.forEach((c, i) => {
    const line = lines[i];
    assert.equal(line.msg, "request");
    assert.equal(line.level, "info");
    assert.equal(line.method, c.method);
    assert.equal(line.route, c.route);
    assert.equal(line.status, c.status);
    assert.equal(line.requestId, "a-1");
    assert.equal(typeof line.ms, "number");
  });
});

Deno.test("accessLog() logs the body size when it is known without reading the body, and the trace id", async () => {
  const { log, lines } = memoryLog();
  const stream = () => new Response(new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(3)), c.close()) }));
  const cases: { name: string; res: () => Response; known: boolean }[] = [
    { name: "json() with non-ASCII text", res: () => json({ name: "Zoë 🚀 \ud800" }), known: true },
    { name: "problem", res: () => problemResponse(409, "conflict", "Conflict"), known: true },
    { name: "null body", res: () => new Response(null, { status: 204 }), known: true },
    { name: "declared length", res: () => new Response("hello", { headers: { "content-length": "5" } }), known: true },
    { name: "stream of unknown length", res: stream, known: false },
  ];
  for (const c of cases) {
    const h = chain(requestContext(), tracing({ responseHeader: false }), accessLog(log))(() =>
      Promise.resolve(c.res())
    );
    const res = await h(
      new Request("http://svc/", {
        headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      }),
    );
    const body = new Uint8Array(await res.arrayBuffer());
    const line = lines.at(-1)!;
    assert.equal(line.traceId, "0af7651916cd43dd8448eb211c80319c", c.name);
    // The logged size is the size of the bytes the client gets.
    assert.equal(line.bytes, c.known ? body.byteLength : undefined, c.name);
  }
});

Deno.test("accessLog() writes a 500 line when the handler throws, and rethrows", async () => {
  const { log, lines } = memoryLog();
  const boom = new Error("boom");
  await assert.rejects(chain(accessLog(log))(() => Promise.reject(boom))(new Request("http://svc/x")), boom);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].status, 500);
  assert.equal(lines[0].route, "unmatched");
});

Deno.test("accessLog() records the status of a thrown HttpError, not 500", async () => {
  const lines: string[] = [];
  const log = createLogger("t", { level: "info", write: (l) => lines.push(l) });
  const h = chain(requestContext(), recovery(log), accessLog(log))(() => Promise.reject(notFound("nothing here")));
  const res = await h(new Request("http://x/missing"));
  assert.equal(res.status, 404);
  await res.body?.cancel();
  assert.equal(JSON.parse(lines.at(-1)!).status, 404);
});
