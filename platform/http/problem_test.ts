import assert from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { DatabaseUnavailableError } from "../db/mod.ts";
import { CircuitOpenError } from "../resilience/mod.ts";
import { badRequest, errorResponse, HttpError, notFound, problemResponse, unprocessable } from "./problem.ts";

const ctx = { requestId: "req-42", signal: new AbortController().signal };

Deno.test("problemResponse() answers application/problem+json with a type URI, title, status and detail", async () => {
  const res = problemResponse(404, "not-found", "Not found", { detail: "no order o-1", instance: "/v1/orders/o-1" });
  assert.equal(res.status, 404);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.deepEqual(await res.json(), {
    type: "https://trellis.dev/problems/not-found",
    title: "Not found",
    status: 404,
    detail: "no order o-1",
    instance: "/v1/orders/o-1",
  });
});

Deno.test("problemResponse() keeps a type that is already a URI", async () => {
  const res = problemResponse(400, "urn:example:bad", "Bad");
  assert.equal((await res.json()).type, "urn:example:bad");
});

Deno.test("problemResponse() adds the current context's request id, extensions and headers", async () => {
  const res = runWithContext(ctx, () =>
    problemResponse(429, "rate-limited", "Too many requests", {
      extensions: { retryAfterSeconds: 3 },
      headers: { "retry-after": "3", "content-type": "text/plain" },
    }));
  assert.equal(res.headers.get("retry-after"), "3");
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const body = await res.json();
  assert.equal(body.requestId, "req-42");
  assert.equal(body.retryAfterSeconds, 3);
});

Deno.test("errorResponse() keeps an HttpError's status, type, detail, extensions and headers", async () => {
  const err = new HttpError(409, "conflict", "Conflict", {
    detail: "order o-1 already paid",
    extensions: { orderId: "o-1" },
    headers: { etag: '"v2"' },
  });
  const res = runWithContext(ctx, () => errorResponse(err, "/v1/orders/o-1"));
  assert.equal(res.status, 409);
  assert.equal(res.headers.get("etag"), '"v2"');
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.deepEqual(await res.json(), {
    type: "https://trellis.dev/problems/conflict",
    title: "Conflict",
    status: 409,
    detail: "order o-1 already paid",
    instance: "/v1/orders/o-1",
    requestId: "req-42",
    orderId: "o-1",
  });
});

Deno.test("errorResponse() turns anything else into a 500 that reveals nothing of its internals", async () => {
  const thrown: unknown[] = [
    new Error("password=hunter2 at db.internal:5432"),
    "a string",
    { secret: "s3cr3t" },
    undefined,
  ];
  for (const err of thrown) {
    const res = runWithContext(ctx, () => errorResponse(err));
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const text = await res.text();
    assert.deepEqual(JSON.parse(text), {
      type: "https://trellis.dev/problems/internal",
      title: "Internal server error",
      status: 500,
      requestId: "req-42",
    });
    assert.doesNotMatch(text, /hunter2|s3cr3t|string/);
  }
});

Deno.test("badRequest(), notFound() and unprocessable() build HttpErrors with their status and type", () => {
  const cases: { err: HttpError; status: number; type: string; detail: string }[] = [
    { err: badRequest("missing id"), status: 400, type: "bad-request", detail: "missing id" },
    { err: notFound("no order o-1"), status: 404, type: "not-found", detail: "no order o-1" },
    {
      err: unprocessable([{ path: "/qty", reason: "must be > 0" }, { path: "/sku", reason: "required" }]),
      status: 422,
      type: "validation",
      detail: "/qty: must be > 0; /sku: required",
    },
  ];
  for (const c of cases) {
    assert.ok(c.err instanceof HttpError);
    assert.equal(c.err.status, c.status, c.type);
    assert.equal(c.err.type, c.type);
    assert.equal(c.err.detail, c.detail);
    assert.equal(c.err.message, c.detail);
  }
  assert.deepEqual(unprocessable([{ path: "/a", reason: "r" }]).extensions, { errors: [{ path: "/a", reason: "r" }] });
});

Deno.test("errorResponse() answers a DatabaseUnavailableError, even as a cause, with 503 and Retry-After in whole seconds", async () => {
  const wrapped = new Error("cannot list orders", {
    cause: new DatabaseUnavailableError("database unavailable", { retryAfterMs: 1_200 }),
  });
  const res = errorResponse(wrapped);
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "2");
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const body = await res.json();
  assert.equal(body.status, 503);
  assert.ok(!JSON.stringify(body).includes("cannot list orders"), "the problem leaks the internal message");
});

Deno.test("errorResponse() gives every 503 HttpError a Retry-After unless it has one", () => {
  assert.equal(errorResponse(new HttpError(503, "upstream", "Upstream failure")).headers.get("retry-after"), "1");
  const own = new HttpError(503, "draining", "Draining", { headers: { "Retry-After": "7" } });
  assert.equal(errorResponse(own).headers.get("retry-after"), "7");
  assert.equal(errorResponse(new HttpError(502, "upstream", "Bad gateway")).headers.get("retry-after"), null);
});

Deno.test("errorResponse() answers an open circuit, however wrapped, 503 with the breaker's Retry-After", async () => {
  const open = new CircuitOpenError("inventory", 2_500);
  const res = errorResponse(new Error("pricing failed", { cause: open }));
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "3");
  const body = await res.json();
  assert.equal(body.type, "https://trellis.dev/problems/unavailable");
  assert.match(body.detail, /inventory/);
  const wrapped = errorResponse(new HttpError(503, "upstream", "Upstream failure", { cause: open }));
  assert.equal(wrapped.headers.get("retry-after"), "3", "an HttpError caused by it takes the breaker's wait too");
  await wrapped.body?.cancel();
});
